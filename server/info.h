/* info.h - the read-only endpoints: liveness and readiness probes, the Prometheus
 * metrics, model listings and metadata (v1 and V2).
 *
 * Each is a route handler (routes.h) that answers at once on the HTTP thread from the
 * server's state: the models' `ready` flags, `draining`, the metrics and the queue depths.
 * None reads a body or waits for compute. The responses are in docs/api.md.
 */
#ifndef XBN_INFO_H
#define XBN_INFO_H

#include "server/http.h"

int info_healthz(request *r);        /* GET /healthz */
int info_readyz(request *r);         /* GET /readyz: 503 while loading or draining */
int info_metrics(request *r);        /* GET /metrics: 404 when metrics are disabled */
int info_v1_models(request *r);      /* GET /v1/models */
int info_v1_model(request *r);       /* GET /v1/models/{name} */
int info_v1_metadata(request *r);    /* GET /v1/models/{name}/metadata (TF Serving) */
int info_v2_server(request *r);      /* GET /v2 */
int info_v2_live(request *r);        /* GET /v2/health/live */
int info_v2_ready(request *r);       /* GET /v2/health/ready */
int info_v2_model(request *r);       /* GET /v2/models/{name}: 503 while it loads */
int info_v2_model_ready(request *r); /* GET /v2/models/{name}/ready */

#endif
