/* cors.h - opt-in cross-origin access (cors_allow_origins), for pages served elsewhere.
 *
 * With the setting empty (the default) no response carries a CORS header and OPTIONS is
 * 405 as everywhere else. With a list of origins, the inference and metadata routes (the
 * v1 and v2 APIs) take part: every answer on them says `Vary: Origin`, and one whose
 * request's Origin is exactly a listed item also echoes it in Access-Control-Allow-Origin;
 * an OPTIONS preflight on them is answered 204 with the allowed methods and headers.
 * Origins are compared byte for byte (scheme, host and port, as browsers send them): no
 * wildcards, so a credential-free API is never opened to every site by mistake. http.c
 * adds the headers; this file only decides.
 */
#ifndef XBN_CORS_H
#define XBN_CORS_H

/* Is `origin` exactly one of the comma-separated items of `list`? NULL or "" is never. */
int cors_origin_allowed(const char *list, const char *origin);

/* Does the route with this metric label take part (the v1_* and v2_* routes)? */
int cors_route(const char *endpoint);

/* The request headers a preflight may ask for. */
#define CORS_ALLOW_HEADERS "Content-Type, X-Request-Id"
/* The response headers a cross-origin script may read besides the simple ones. */
#define CORS_EXPOSE_HEADERS "X-Request-Id, Retry-After"
#define CORS_MAX_AGE "600"

#endif
