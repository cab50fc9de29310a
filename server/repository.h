/* repository.h - Triton's model repository extension, the index only:
 * POST /v2/repository/index lists every configured model and each version it serves.
 *
 * Off unless `repository_api: true` (the route does not exist otherwise: 404 "no such
 * route"). An admin route (endpoint "admin_repository_index"): with admin_token_file /
 * XBNSERVE_ADMIN_TOKEN set it takes that token, else the user token (auth.h). Runs on HTTP
 * threads; reads the model set through server_versions / server_last_error under server.mu.
 */
#ifndef XBN_REPOSITORY_H
#define XBN_REPOSITORY_H

#include "server/http.h"

/* The body: a JSON object with an optional boolean "ready" (an empty body is refused as on
 * every POST route) (true: only the
 * versions that serve). The answer: [{"name","version","state":"READY"}, ...], and for a
 * model serving no version {"name","state":"UNAVAILABLE","reason"}. */
int repository_index(request *r);

#endif
