/* repository.c - see repository.h. */
#include "server/repository.h"

#include <cJSON.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "server/routes.h"
#include "server/sbuf.h"
#include "server/server.h"

int repository_index(request *r)
{
    server *s = r->s;
    int ready_only = 0;
    if (r->len) {
        cJSON *o = cJSON_ParseWithLength((const char *)r->body, r->len);
        const cJSON *rd = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "ready") : NULL;
        int ok =
            cJSON_IsObject(o) && (!rd || cJSON_IsBool(rd)) && cJSON_GetArraySize(o) == (rd ? 1 : 0);
        ready_only = ok && cJSON_IsTrue(rd);
        cJSON_Delete(o);
        if (!ok) return http_send_error(r, 400, "body: expected {} or {\"ready\": true|false}");
    }
    sbuf b;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    sbuf_puts(&b, "[");
    int ns = atomic_load_explicit(&s->nslots, memory_order_acquire), first = 1;
    for (int i = 0; i < ns; i++) {
        if (!atomic_load(&s->slots[i].listed)) continue;
        long long v[VERSIONS_MAX];
        int nv = server_versions(s, i, v);
        for (int k = 0; k < nv; k++) {
            sbuf_puts(&b, first ? "{\"name\":" : ",{\"name\":");
            first = 0;
            sbuf_json_str(&b, s->slots[i].name);
            sbuf_printf(&b, ",\"version\":\"%lld\",\"state\":\"READY\"}", v[k] ? v[k] : 1);
        }
        if (nv || ready_only) continue;
        char err[SRV_ERR_MAX];
        server_last_error(s, i, err, sizeof err);
        sbuf_puts(&b, first ? "{\"name\":" : ",{\"name\":");
        first = 0;
        sbuf_json_str(&b, s->slots[i].name);
        sbuf_puts(&b, ",\"state\":\"UNAVAILABLE\",\"reason\":");
        sbuf_json_str(&b, server_unloaded(s, i) ? "unloaded" : err[0] ? err : "loading");
        sbuf_puts(&b, "}");
    }
    sbuf_puts(&b, "]\n");
    return http_send_json(r, 200, &b);
}

/* ---- load and unload ---- */

int repository_admit(request *r, const char **why)
{
    *why = !atomic_load(&r->s->started)   ? "models are still loading (start-up)"
           : atomic_load(&r->s->draining) ? "server is shutting down"
                                          : NULL;
    return *why ? 503 : 0;
}

/* Is p a parameter the op takes? Else r->err says why not. */
static int param_ok(request *r, int kind, const cJSON *p)
{
    if (kind == SRV_OP_UNLOAD && !strcmp(p->string, "unload_dependents")) {
        if (cJSON_IsBool(p)) return 1; /* nothing depends on a model: either way, just it */
        snprintf(r->err, sizeof r->err, "parameter 'unload_dependents': expected true or false");
    } else if (kind == SRV_OP_LOAD && !strcmp(p->string, "config")) {
        snprintf(r->err, sizeof r->err,
                 "parameter 'config' is not supported: a model's settings come from the "
                 "configuration");
    } else {
        snprintf(r->err, sizeof r->err, "unknown parameter '%.64s'", p->string);
    }
    return 0;
}

/* The body of a load or unload: empty, or an object whose only member is "parameters", an
 * object of parameters the op takes. 0, or -1 with r->err set. */
static int read_op_body(request *r, int kind)
{
    int rc = -1;
    if (!r->len) return 0;
    cJSON *o = cJSON_ParseWithLength((const char *)r->body, r->len);
    if (!cJSON_IsObject(o)) {
        snprintf(r->err, sizeof r->err, "body: expected {} or {\"parameters\": {...}}");
        goto fail;
    }
    for (const cJSON *k = o->child; k; k = k->next) {
        if (strcmp(k->string, "parameters")) {
            snprintf(r->err, sizeof r->err, "body: unknown field '%.64s'", k->string);
            goto fail;
        }
        if (!cJSON_IsObject(k)) {
            snprintf(r->err, sizeof r->err, "parameters: expected an object");
            goto fail;
        }
        for (const cJSON *p = k->child; p; p = p->next)
            if (!param_ok(r, kind, p)) goto fail;
    }
    rc = 0;
fail:
    cJSON_Delete(o);
    return rc;
}

/* srv_op.done, on the main thread: the answer is ready. */
static void op_done(srv_op *op)
{
    http_wake(op->user);
}

/* Check the body, queue the op for the main thread and suspend until it is done. */
static int repository_op(request *r, int kind)
{
    srv_op *op = &r->op;
    if (r->len > REPO_BODY_MAX) {
        snprintf(r->err, sizeof r->err, "body larger than %d bytes", REPO_BODY_MAX);
        return http_send_error(r, 413, r->err);
    }
    if (read_op_body(r, kind)) return http_send_error(r, 400, r->err);
    /* the name between the prefix and the suffix: routes_match checked its spelling, so it
     * fits, and r->path holds it whole */
    size_t lp = strlen(r->rt->prefix), n = strlen(r->path) - lp - strlen(r->rt->suffix);
    snprintf(op->name, sizeof op->name, "%.*s", (int)n, r->path + lp);
    op->kind = kind;
    op->done = op_done;
    op->user = r;
    if (server_op_submit(r->s, op)) return http_send_error(r, 503, "server is shutting down");
    if (http_suspend(r)) return repository_finish(r); /* done before the suspend */
    return 0;
}

int repository_load(request *r)
{
    return repository_op(r, SRV_OP_LOAD);
}

int repository_unload(request *r)
{
    return repository_op(r, SRV_OP_UNLOAD);
}

int repository_finish(request *r)
{
    const srv_op *op = &r->op;
    if (op->result == SRV_OP_OK) {
        sbuf b;
        sbuf_init(&b, HTTP_RESPONSE_MAX);
        sbuf_puts(&b, "{}\n");
        return http_send_json(r, 200, &b);
    }
    return http_send_error(r,
                           op->result == SRV_OP_ENOMODEL    ? 404
                           : op->result == SRV_OP_ESHUTDOWN ? 503
                                                            : 400,
                           op->err);
}
