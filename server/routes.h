/* routes.h - the route table: method and path to the functions that answer them.
 *
 * Every endpoint of docs/api.md is one row of routes.c: its path (exact, or a prefix and a
 * suffix around a model's name), the method it takes (a GET route answers HEAD too), its
 * metric label and its handlers, which live with the work they do: info.c for the
 * read-only endpoints, infer.c for inference. http.c matches a request's path once its
 * headers are in and calls the row's functions; the table itself is constant.
 */
#ifndef XBN_ROUTES_H
#define XBN_ROUTES_H

#include "server/http.h"

struct route {
    const char *prefix;    /* the whole path, or what precedes the model's name */
    const char *suffix;    /* what follows the model's name; NULL: no name, exact path */
    const char *name_stop; /* bytes the model's name may not contain */
    const char *method;    /* "GET" or "POST" */
    const char *endpoint;  /* metric label, static */
    /* POST only, optional: refuse from the headers alone, before the body is read: 0, or an
     * HTTP status with *why. */
    int (*admit)(request *r, const char **why);
    /* The body is in: answer, or suspend (http.h). */
    int (*handle)(request *r);
    /* After http_wake: answer. Only for routes whose handler suspends. */
    int (*resume)(request *r);
};

/* The route of `url`, or NULL. *model_idx is the index of the model the path names, or -1;
 * *unknown_model is 1 when it names a model that is not served, 2 when it names a version
 * of a served model that is not served, 3 when the model is unloaded (repository.h) and the
 * route is not one of those that tell its state. On the repository's load and unload routes
 * the model need not exist: *unknown_model is 1 only for a name no model could have. The
 * repository routes exist only with repository_api. *version is the version the path names
 * ("/versions/{v}"), 0 when it names none (the highest served). */
const route *routes_match(server *s, const char *url, int *model_idx, int *unknown_model,
                          long long *version);

/* Does the route take `method`? */
int routes_method_ok(const route *rt, const char *method);

/* May the route's POST body be empty? (Every other POST route refuses an empty body.) */
int routes_body_optional(const route *rt);

/* The Allow header of a 405 on this route. */
const char *routes_allow(const route *rt);

#endif
