/* auth.c - see auth.h. */
#include "server/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Routes answered without a token while their exemption is on (metric labels, routes.c). */
static const char *const probes[] = {"healthz", "readyz", "v2_live", "v2_ready"};

static const char *env_get(char **envp, const char *name)
{
    size_t n = strlen(name);
    for (char **e = envp; e && *e; e++)
        if (!strncmp(*e, name, n) && (*e)[n] == '=') return *e + n + 1;
    return NULL;
}

/* Check and copy one token: the text up to the first line end, whitespace trimmed. */
static int take_token(const char *text, size_t n, const char *where, char **out, size_t *outlen,
                      char *err, size_t errlen)
{
    size_t b = 0, e;
    while (b < n && (text[b] == ' ' || text[b] == '\t')) b++;
    e = b;
    while (e < n && text[e] != '\n' && text[e] != '\r') e++;
    while (e > b && (text[e - 1] == ' ' || text[e - 1] == '\t')) e--;
    size_t len = e - b;
    if (len < AUTH_TOKEN_MIN || len > AUTH_TOKEN_MAX) {
        snprintf(err, errlen, "%s: a token must be %d-%d bytes", where, AUTH_TOKEN_MIN,
                 AUTH_TOKEN_MAX);
        return -1;
    }
    for (size_t i = b; i < e; i++)
        if (text[i] < 0x21 || text[i] > 0x7e) {
            snprintf(err, errlen, "%s: a token must be visible ASCII", where);
            return -1;
        }
    *out = malloc(len + 1);
    if (!*out) {
        snprintf(err, errlen, "%s: out of memory", where);
        return -1;
    }
    memcpy(*out, text + b, len);
    (*out)[len] = 0;
    *outlen = len;
    return 0;
}

static int load_one(const char *path, const char *var, char **envp, char **out, size_t *outlen,
                    char *err, size_t errlen)
{
    char buf[AUTH_TOKEN_MAX + 64], where[CFG_PATH_MAX + 32];
    int rc = -1;
    if (!path[0]) {
        const char *v = env_get(envp, var);
        if (!v) return 0;
        snprintf(where, sizeof where, "env %s", var);
        return take_token(v, strlen(v), where, out, outlen, err, errlen);
    }
    snprintf(where, sizeof where, "token file %s", path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open", where);
        return -1;
    }
    size_t n = fread(buf, 1, sizeof buf, f);
    if (ferror(f) || n == sizeof buf) {
        snprintf(err, errlen, "%s: unreadable or too long", where);
        goto fail;
    }
    rc = take_token(buf, n, where, out, outlen, err, errlen);
fail:
    memset(buf, 0, sizeof buf);
    fclose(f);
    return rc;
}

int auth_load(auth *a, const config *c, char **envp, char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    a->exempt_probes = (int)c->auth_exempt_probes;
    a->exempt_metrics = (int)c->auth_exempt_metrics;
    if (load_one(c->auth_token_file, "XBNSERVE_AUTH_TOKEN", envp, &a->user, &a->user_len, err,
                 errlen) ||
        load_one(c->admin_token_file, "XBNSERVE_ADMIN_TOKEN", envp, &a->admin, &a->admin_len, err,
                 errlen)) {
        auth_free(a);
        return -1;
    }
    return 0;
}

static void wipe(char *p, size_t n)
{
    if (!p) return;
    volatile char *v = p;
    for (size_t i = 0; i < n; i++) v[i] = 0;
    free(p);
}

void auth_free(auth *a)
{
    wipe(a->user, a->user_len);
    wipe(a->admin, a->admin_len);
    memset(a, 0, sizeof *a);
}

int auth_level(const auth *a, const char *endpoint)
{
    if (!strncmp(endpoint, "admin_", 6)) return AUTH_ADMIN; /* auth_check: open without tokens */
    if (!a->user) return AUTH_OPEN;
    if (a->exempt_metrics && !strcmp(endpoint, "metrics")) return AUTH_OPEN;
    for (size_t i = 0; a->exempt_probes && i < sizeof probes / sizeof probes[0]; i++)
        if (!strcmp(endpoint, probes[i])) return AUTH_OPEN;
    return AUTH_USER;
}

/* Equal? In a time that depends on the token's length only, never on where they differ. */
static int same(const char *given, size_t glen, const char *token, size_t tlen)
{
    volatile unsigned char diff = glen != tlen;
    for (size_t i = 0; i < tlen; i++) diff |= (unsigned char)(token[i] ^ (i < glen ? given[i] : 0));
    return diff == 0;
}

const char *auth_check(const auth *a, int level, const char *authorization)
{
    const char *token = a->user;
    size_t tlen = a->user_len;
    if (level == AUTH_ADMIN) {
        /* Any token configured: the admin token only, and without one no one. */
        if (!a->admin && a->user) return AUTH_NO_ADMIN_TOKEN;
        token = a->admin, tlen = a->admin_len;
    }
    if (level == AUTH_OPEN || !token) return NULL;
    if (!authorization || strncasecmp(authorization, "Bearer ", 7)) return AUTH_BAD_TOKEN;
    const char *g = authorization + 7;
    while (*g == ' ') g++;
    size_t glen = strlen(g);
    while (glen && g[glen - 1] == ' ') glen--;
    return same(g, glen, token, tlen) ? NULL : AUTH_BAD_TOKEN;
}
