/* auth.h - optional bearer tokens: who may call which route.
 *
 * Two tokens, each read once at start from a file (auth_token_file, admin_token_file: the
 * first line, surrounding whitespace dropped) or from the environment (XBNSERVE_AUTH_TOKEN,
 * XBNSERVE_ADMIN_TOKEN); never from a flag, where any local user could read it in the
 * process list. A file wins over the variable. A token is 16-4096 bytes of visible ASCII.
 *
 * With the user token set, every route needs "Authorization: Bearer <token>" except the
 * probes and /metrics while auth_exempt_probes / auth_exempt_metrics are true (the default).
 * Admin routes (the model repository's) take the admin token only; with the user token set
 * and no admin token they refuse everyone, and only without any token are they open like the
 * rest. A refusal is a 401 with WWW-Authenticate (http.c adds it to every 401). Comparisons
 * take the same time whatever bytes match. Tokens are never logged.
 *
 * Ownership: auth_load fills a caller-owned `auth`; auth_free wipes and frees the tokens.
 * After auth_load the struct is read-only, shared by every HTTP thread.
 */
#ifndef XBN_AUTH_H
#define XBN_AUTH_H

#include <stddef.h>

#include "server/config.h"

#define AUTH_TOKEN_MIN 16
#define AUTH_TOKEN_MAX 4096

enum { AUTH_OPEN, AUTH_USER, AUTH_ADMIN }; /* what a route needs */

typedef struct {
    char *user, *admin; /* NULL: not configured */
    size_t user_len, admin_len;
    int exempt_probes, exempt_metrics;
} auth;

/* Read the tokens c names, or the XBNSERVE_*_TOKEN variables of envp. 0, or -1 with err
 * naming the source (never the token). */
int auth_load(auth *a, const config *c, char **envp, char *err, size_t errlen);

void auth_free(auth *a);

/* What the route with metric label `endpoint` needs: AUTH_ADMIN for the admin routes (their
 * labels start with "admin_"), AUTH_OPEN for the exempt probes and metrics and when no token
 * is set, AUTH_USER for the rest. */
int auth_level(const auth *a, const char *endpoint);

/* The two refusals auth_check gives, the 401's error text. */
#define AUTH_BAD_TOKEN "missing or invalid bearer token"
#define AUTH_NO_ADMIN_TOKEN                                                                        \
    "an admin token must be configured for the repository API (admin_token_file or "               \
    "XBNSERVE_ADMIN_TOKEN)"

/* Does the Authorization header `authorization` (NULL if absent) grant `level`? NULL if so,
 * else why not: AUTH_BAD_TOKEN, or AUTH_NO_ADMIN_TOKEN for an admin route while the user
 * token is set and the admin token is not (whatever the header holds). */
const char *auth_check(const auth *a, int level, const char *authorization);

#endif
