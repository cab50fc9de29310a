/* auth.h - optional bearer tokens: who may call which route.
 *
 * Two tokens, each read once at start from a file (auth_token_file, admin_token_file: the
 * first line, surrounding whitespace dropped) or from the environment (XBNSERVE_AUTH_TOKEN,
 * XBNSERVE_ADMIN_TOKEN); never from a flag, where any local user could read it in the
 * process list. A file wins over the variable. A token is 16-4096 bytes of visible ASCII.
 *
 * With the user token set, every route needs "Authorization: Bearer <token>" except the
 * probes and /metrics while auth_exempt_probes / auth_exempt_metrics are true (the default).
 * Admin routes take the admin token when it is set, else the user token (and are as open as
 * the rest without either). A refusal is a 401 with WWW-Authenticate (http.c adds it to every
 * 401). Comparisons take the same time whatever bytes match. Tokens are never logged.
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

/* Does the Authorization header `authorization` (NULL if absent) grant `level`? */
int auth_ok(const auth *a, int level, const char *authorization);

#endif
