/* repository.h - Triton's model repository extension: the index, load and unload.
 *
 *   POST /v2/repository/index               every configured model and each version it serves
 *   POST /v2/repository/models/{m}/load     load m from the configuration, or reload it
 *   POST /v2/repository/models/{m}/unload   stop serving m
 *
 * Off unless `repository_api: true` (the routes do not exist otherwise: 404 "no such
 * route"). Admin routes (endpoints "admin_repository_*"): with admin_token_file /
 * XBNSERVE_ADMIN_TOKEN set they take that token only; with the user token set and no admin
 * token they answer 401 to everyone; without any token they are open (auth.h). They run on
 * HTTP threads, which read the model set through server_versions / server_last_error under
 * server.mu, and never load a model themselves: a load or unload is queued for the main
 * thread (server_op_submit), which does it between signals as it does a SIGHUP reload
 * (reload_op), and the connection is suspended until it is done.
 *
 * A load reads the configuration again (as SIGHUP does) and applies the named model's entry
 * alone: a new model is loaded, a changed version replaced, an unchanged one kept; the answer
 * comes once it serves (200 {}), or with the load's error (400; what served keeps serving),
 * or 404 when the configuration has no such model. An unload retires every version of a
 * served model (200 {}; requests already admitted finish on it): its routes then answer 404
 * "model is unloaded" but for GET /v2/models/{m}/ready (503, ready false) and
 * GET /v1/models/{m} (status "unloaded"), and the index lists it UNAVAILABLE, reason
 * "unloaded", until a load or a reload that finds its configuration entry changed (reload.h).
 * Both answer 503 during start-up and the drain.
 */
#ifndef XBN_REPOSITORY_H
#define XBN_REPOSITORY_H

#include "server/http.h"

/* The body: a JSON object with an optional boolean "ready" (an empty body is refused as on
 * every POST route) (true: only the
 * versions that serve). The answer: [{"name","version","state":"READY"}, ...], and for a
 * model serving no version {"name","state":"UNAVAILABLE","reason"}. */
int repository_index(request *r);

/* Admission of a load or unload, from the headers: 503 during start-up and the drain. */
int repository_admit(request *r, const char **why);

/* The body is in: empty, or {"parameters": {...}}; unload understands the parameter
 * "unload_dependents" (a boolean: no model has dependents), load none (Triton's "config"
 * override included: settings come from the configuration). Anything else is a 400 naming
 * it. Then the op is queued and the connection suspended. */
int repository_load(request *r);
int repository_unload(request *r);

/* After the main thread has done the op: the answer. */
int repository_finish(request *r);

#endif
