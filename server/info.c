/* info.c - the read-only endpoints (see info.h). Each builds its body in an sbuf and answers
 * through http.c; the only lock taken is the one around a queue depth (server.h). */
#include "server/info.h"

#include <stdio.h>

#include "server/api/v2.h"

/* Every model of the start-up configuration loaded and warmed up, and no drain begun. A
 * reload does not take readiness away: the models it keeps or replaces serve throughout. */
static int server_ready(const server *s)
{
    return atomic_load(&s->started) && !atomic_load(&s->draining);
}

/* A readiness probe's answer: 200, or 503 logged as "not ready". */
static int probe_answer(request *r, int ready, sbuf *b)
{
    if (!ready) snprintf(r->err, sizeof r->err, "not ready");
    return http_send_json(r, ready ? 200 : 503, b);
}

int info_healthz(request *r)
{
    sbuf b;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    sbuf_puts(&b, "{\"status\":\"ok\"}\n");
    return http_send_json(r, 200, &b);
}

int info_v2_live(request *r)
{
    sbuf b;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    sbuf_puts(&b, "{\"live\":true}\n");
    return http_send_json(r, 200, &b);
}

int info_readyz(request *r)
{
    int ready = server_ready(r->s);
    sbuf b;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    sbuf_printf(&b, "{\"status\":\"%s\"}\n",
                ready                          ? "ready"
                : atomic_load(&r->s->draining) ? "draining"
                                               : "starting");
    return probe_answer(r, ready, &b);
}

int info_v2_ready(request *r)
{
    int ready = server_ready(r->s);
    sbuf b;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    sbuf_printf(&b, "{\"ready\":%s}\n", ready ? "true" : "false");
    return probe_answer(r, ready, &b);
}

int info_metrics(request *r)
{
    server *s = r->s;
    if (!s->cfg.metrics) return http_send_error(r, 404, "metrics are disabled (metrics: false)");
    /* every slot so far; one the main thread adds meanwhile is in the next scrape */
    metrics_model_state st[CFG_MAX_MODELS];
    int ns = atomic_load_explicit(&s->nslots, memory_order_acquire);
    for (int i = 0; i < ns; i++) {
        srv_model *m = server_acquire(s, i);
        st[i].listed = atomic_load(&s->slots[i].listed);
        st[i].ready = m != NULL;
        st[i].queue_depth = m ? server_queue_depth(s, m) : 0;
        server_release(s, m);
    }
    sbuf b;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    metrics_render(s->met, &b, st, ns, atomic_load(&s->inflight), decodepool_depth(s->decode));
    return http_send(r, 200, &b, "text/plain; version=0.0.4; charset=utf-8");
}

/* The served versions of slot as a JSON array of strings ("1" for a model whose instance has
 * no version), or only `only` when it is not 0 (a versioned path). */
static void versions_json(server *s, int slot, long long only, char *buf, size_t n)
{
    long long v[VERSIONS_MAX];
    int k = only ? 1 : server_versions(s, slot, v);
    if (only) v[0] = only;
    size_t w = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < k && w < n; i++)
        w += (size_t)snprintf(buf + w, n - w, "%s\"%lld\"", i ? "," : "", v[i] ? v[i] : 1);
    if (w < n) snprintf(buf + w, n - w, "]");
}

/* One model of GET /v1/models and GET /v1/models/{name}: its current instance, if any, and
 * the error of its last failed load, if any (the previous instance, if any, still serves).
 * With `only` (GET /v1/models/{name}/versions/{v}): that version alone. */
static void model_json(sbuf *b, server *s, int slot, long long only)
{
    char last_error[SRV_ERR_MAX];
    server_last_error(s, slot, last_error, sizeof last_error);
    srv_model *m = server_acquire_version(s, slot, only);
    sbuf_puts(b, "{\"name\":");
    sbuf_json_str(b, s->slots[slot].name);
    int unloaded = server_unloaded(s, slot);
    sbuf_printf(b, ",\"status\":\"%s\"",
                m                           ? "ready"
                : unloaded                  ? "unloaded"
                : !atomic_load(&s->started) ? "loading"
                                            : "unavailable");
    /* What KServe V1 clients ("ready") and TF Serving clients (model_version_status, one entry
     * a served version, the highest first as TF Serving lists them) read. */
    long long v[VERSIONS_MAX];
    int nv = only ? 1 : server_versions(s, slot, v);
    if (only) v[0] = only;
    sbuf_printf(b, ",\"ready\":%s,\"model_version_status\":[", m ? "true" : "false");
    if (!nv && !unloaded) v[nv++] = 0; /* nothing served yet: version 1 (a plain file's), loading */
    for (int i = nv - 1; i >= 0; i--)
        sbuf_printf(b,
                    "%s{\"version\":\"%lld\",\"state\":\"%s\","
                    "\"status\":{\"error_code\":\"OK\",\"error_message\":\"\"}}",
                    i < nv - 1 ? "," : "", v[i] ? v[i] : 1, v[i] ? "AVAILABLE" : "LOADING");
    sbuf_puts(b, "]");
    if (m) {
        sbuf_printf(b,
                    ",\"arch\":\"%s\",\"flavour\":\"%s\",\"classes\":%d,\"input_size\":%d,"
                    "\"untrained\":%s,\"max_batch_size\":%lld,\"workers\":%lld",
                    arch_name(m->info.arch), flavour_name(m->info.flavour), m->classes, m->S,
                    m->info.untrained ? "true" : "false", m->cfg->max_batch_size, m->cfg->workers);
        if (m->info.arch == ARCH_MOBILENETV2)
            sbuf_printf(b, ",\"width\":%g", (double)m->info.width);
        sbuf_puts(b, ",\"source\":");
        sbuf_json_str(b, m->info.source ? m->info.source : "");
        sbuf_puts(b, ",\"path\":");
        sbuf_json_str(b, m->cfg->path);
    }
    if (last_error[0]) {
        sbuf_puts(b, ",\"last_error\":");
        sbuf_json_str(b, last_error);
    }
    sbuf_puts(b, "}");
    server_release(s, m);
}

/* KServe V1's listing, {"models": [NAME, ...]}, and each model's status under "details", in
 * the same order (what the try-it page reads). The listed slots are read once, so a reload
 * meanwhile cannot make the two lists differ. */
int info_v1_models(request *r)
{
    server *s = r->s;
    int listed[CFG_MAX_MODELS], n = 0;
    int ns = atomic_load_explicit(&s->nslots, memory_order_acquire);
    for (int i = 0; i < ns; i++)
        if (atomic_load(&s->slots[i].listed)) listed[n++] = i;
    sbuf b;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    sbuf_puts(&b, "{\"models\":[");
    for (int i = 0; i < n; i++) {
        if (i) sbuf_puts(&b, ",");
        sbuf_json_str(&b, s->slots[listed[i]].name);
    }
    sbuf_puts(&b, "],\"details\":[");
    for (int i = 0; i < n; i++) {
        if (i) sbuf_puts(&b, ",");
        model_json(&b, s, listed[i], 0);
    }
    sbuf_puts(&b, "]}\n");
    return http_send_json(r, 200, &b);
}

int info_v1_model(request *r)
{
    sbuf b;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    model_json(&b, r->s, r->model, r->version);
    sbuf_puts(&b, "\n");
    return http_send_json(r, 200, &b);
}

/* TF Serving's model metadata: one "serving_default" signature, base64 images in (the
 * "b64" form of v1 predict), probabilities out. */
int info_v1_metadata(request *r)
{
    srv_model *m = server_acquire_version(r->s, r->model, r->version);
    if (!m) return http_send_error(r, 503, "model is loading");
    sbuf b;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    sbuf_puts(&b, "{\"model_spec\":{\"name\":");
    sbuf_json_str(&b, m->cfg->name);
    sbuf_printf(&b,
                ",\"signature_name\":\"\",\"version\":\"%lld\"},\"metadata\":{\"signature_def\":"
                "{\"signature_def\":{\"serving_default\":{\"inputs\":{\"image_bytes\":{"
                "\"dtype\":\"DT_STRING\",\"tensor_shape\":{\"dim\":[{\"size\":\"-1\","
                "\"name\":\"\"}],\"unknown_rank\":false},\"name\":\"image_bytes\"}},"
                "\"outputs\":{\"probabilities\":{\"dtype\":\"DT_FLOAT\",\"tensor_shape\":{"
                "\"dim\":[{\"size\":\"-1\",\"name\":\"\"},{\"size\":\"%d\",\"name\":\"\"}],"
                "\"unknown_rank\":false},\"name\":\"probabilities\"}},"
                "\"method_name\":\"tensorflow/serving/predict\"}}}}}\n",
                m->cfg->version ? m->cfg->version : 1, m->classes);
    server_release(r->s, m);
    return http_send_json(r, 200, &b);
}

int info_v2_server(request *r)
{
    sbuf b;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    sbuf_puts(&b, "{\"name\":\"xbnserve\",\"version\":\"1\",\"extensions\":[\"binary_tensor_data\","
                  "\"classification\"");
    /* Triton's names: unload takes unload_dependents (no model has any) */
    if (r->s->cfg.repository_api)
        sbuf_puts(&b, ",\"model_repository\",\"model_repository(unload_dependents)\"");
    sbuf_puts(&b, "]}\n");
    return http_send_json(r, 200, &b);
}

int info_v2_model(request *r)
{
    srv_model *m = server_acquire_version(r->s, r->model, r->version);
    if (!m) return http_send_error(r, 503, "model is loading");
    sbuf b;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    char vers[VERSIONS_MAX * 16];
    versions_json(r->s, r->model, r->version, vers, sizeof vers);
    v2_format_model(&b, m->cfg->name, vers, m->S, m->classes, arch_name(m->info.arch),
                    flavour_name(m->info.flavour), m->info.untrained);
    server_release(r->s, m);
    return http_send_json(r, 200, &b);
}

int info_v2_model_ready(request *r)
{
    srv_model *m = server_acquire_version(r->s, r->model, r->version);
    int ready = m && !atomic_load(&r->s->draining);
    server_release(r->s, m);
    sbuf b;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    sbuf_puts(&b, "{\"name\":");
    sbuf_json_str(&b, r->s->slots[r->model].name);
    sbuf_printf(&b, ",\"ready\":%s}\n", ready ? "true" : "false");
    return http_send_json(r, ready ? 200 : 503, &b);
}
