/* metrics.h - the daemon's Prometheus metrics, rendered as text exposition format 0.0.4.
 *
 * A `metrics` owns every counter and histogram behind one mutex (updates are a few adds;
 * contention is negligible next to a forward pass). Models are registered at start and
 * referred to by index. Gauges that belong to other modules (queue depth, in-flight) are
 * passed to metrics_render by the caller.
 *
 *   xbnserve_requests_total{model,endpoint,code}       counter
 *   xbnserve_request_duration_seconds{model,endpoint}  histogram (arrival to response)
 *   xbnserve_queue_wait_seconds{model}                 histogram, per image
 *   xbnserve_compute_seconds{model}                    histogram, per engine batch
 *   xbnserve_batch_size{model}                         histogram, images per engine batch
 *   xbnserve_images_total{model}                       counter, images computed
 *   xbnserve_queue_depth{model}, xbnserve_requests_in_flight   gauges
 *   xbnserve_model_load_seconds{model}, xbnserve_model_ready{model}  gauges
 *   xbnserve_process_resident_memory_bytes             gauge, from /proc/self/statm
 */
#ifndef XBN_METRICS_H
#define XBN_METRICS_H

#include "server/sbuf.h"

#define METRICS_MAX_SERIES 1024 /* distinct (model, endpoint, code) request series */

typedef struct metrics metrics;

metrics *metrics_new(int nmodels, const char *const *model_names);
void metrics_free(metrics *m); /* accepts NULL */

/* model: index or -1 for requests not addressed to a model. endpoint: a static string. */
void metrics_request(metrics *m, int model, const char *endpoint, int code, double seconds);
void metrics_batch(metrics *m, int model, int n, double compute_s, const double *waits_s);
void metrics_model_loaded(metrics *m, int model, double seconds);

/* Append the exposition text. queue_depth[nmodels], ready[nmodels]. */
void metrics_render(metrics *m, sbuf *b, const long *queue_depth, const int *ready, long in_flight);

#endif
