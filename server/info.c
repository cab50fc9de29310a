/* info.c - the read-only endpoints (see info.h). Each builds its body in an sbuf and answers
 * through http.c; the only lock taken is the one around a queue depth (server.h). */
#include "server/info.h"

#include <stdio.h>

#include "server/api/v2.h"

/* Every model loaded and warmed up, and no drain begun. */
static int server_ready(const server *s)
{
    for (int i = 0; i < s->nmodels; i++)
        if (!atomic_load_explicit(&s->models[i].ready, memory_order_acquire)) return 0;
    return !atomic_load(&s->draining);
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
    long depth[CFG_MAX_MODELS];
    int rd[CFG_MAX_MODELS];
    for (int i = 0; i < s->nmodels; i++) {
        rd[i] = atomic_load_explicit(&s->models[i].ready, memory_order_acquire);
        depth[i] = rd[i] ? server_queue_depth(s, &s->models[i]) : 0;
    }
    sbuf b;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    metrics_render(s->met, &b, depth, rd, atomic_load(&s->inflight));
    return http_send(r, 200, &b, "text/plain; version=0.0.4; charset=utf-8");
}

/* One model of GET /v1/models and GET /v1/models/{name}. */
static void model_json(sbuf *b, const srv_model *m)
{
    int ready = atomic_load_explicit(&m->ready, memory_order_acquire);
    sbuf_puts(b, "{\"name\":");
    sbuf_json_str(b, m->cfg->name);
    sbuf_printf(b, ",\"status\":\"%s\"", ready ? "ready" : "loading");
    /* What KServe V1 clients ("ready") and TF Serving clients (model_version_status) read. */
    sbuf_printf(b,
                ",\"ready\":%s,\"model_version_status\":[{\"version\":\"1\",\"state\":\"%s\","
                "\"status\":{\"error_code\":\"OK\",\"error_message\":\"\"}}]",
                ready ? "true" : "false", ready ? "AVAILABLE" : "LOADING");
    if (ready) {
        sbuf_printf(b,
                    ",\"arch\":\"%s\",\"flavour\":\"%s\",\"classes\":%d,\"input_size\":%d,"
                    "\"untrained\":%s,\"max_batch_size\":%lld,\"workers\":%lld",
                    arch_name(m->info.arch), flavour_name(m->info.flavour), m->classes, m->S,
                    m->info.untrained ? "true" : "false", m->cfg->max_batch_size, m->cfg->workers);
        if (m->info.arch == ARCH_MOBILENETV2)
            sbuf_printf(b, ",\"width\":%g", (double)m->info.width);
        sbuf_puts(b, ",\"source\":");
        sbuf_json_str(b, m->info.source ? m->info.source : "");
    }
    sbuf_puts(b, "}");
}

int info_v1_models(request *r)
{
    const server *s = r->s;
    sbuf b;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    sbuf_puts(&b, "{\"models\":[");
    for (int i = 0; i < s->nmodels; i++) {
        if (i) sbuf_puts(&b, ",");
        model_json(&b, &s->models[i]);
    }
    sbuf_puts(&b, "]}\n");
    return http_send_json(r, 200, &b);
}

int info_v1_model(request *r)
{
    sbuf b;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    model_json(&b, &r->s->models[r->model]);
    sbuf_puts(&b, "\n");
    return http_send_json(r, 200, &b);
}

/* TF Serving's model metadata: one "serving_default" signature, base64 images in (the
 * "b64" form of v1 predict), probabilities out. */
int info_v1_metadata(request *r)
{
    const srv_model *m = &r->s->models[r->model];
    if (!atomic_load_explicit(&m->ready, memory_order_acquire))
        return http_send_error(r, 503, "model is loading");
    sbuf b;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    sbuf_puts(&b, "{\"model_spec\":{\"name\":");
    sbuf_json_str(&b, m->cfg->name);
    sbuf_printf(&b,
                ",\"signature_name\":\"\",\"version\":\"1\"},\"metadata\":{\"signature_def\":"
                "{\"signature_def\":{\"serving_default\":{\"inputs\":{\"image_bytes\":{"
                "\"dtype\":\"DT_STRING\",\"tensor_shape\":{\"dim\":[{\"size\":\"-1\","
                "\"name\":\"\"}],\"unknown_rank\":false},\"name\":\"image_bytes\"}},"
                "\"outputs\":{\"probabilities\":{\"dtype\":\"DT_FLOAT\",\"tensor_shape\":{"
                "\"dim\":[{\"size\":\"-1\",\"name\":\"\"},{\"size\":\"%d\",\"name\":\"\"}],"
                "\"unknown_rank\":false},\"name\":\"probabilities\"}},"
                "\"method_name\":\"tensorflow/serving/predict\"}}}}}\n",
                m->classes);
    return http_send_json(r, 200, &b);
}

int info_v2_server(request *r)
{
    sbuf b;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    sbuf_puts(&b, "{\"name\":\"xbnserve\",\"version\":\"1\",\"extensions\":[\"binary_tensor_data\","
                  "\"classification\"]}\n");
    return http_send_json(r, 200, &b);
}

int info_v2_model(request *r)
{
    const srv_model *m = &r->s->models[r->model];
    if (!atomic_load_explicit(&m->ready, memory_order_acquire))
        return http_send_error(r, 503, "model is loading");
    sbuf b;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    v2_format_model(&b, m->cfg->name, m->S, m->classes, arch_name(m->info.arch),
                    flavour_name(m->info.flavour), m->info.untrained);
    return http_send_json(r, 200, &b);
}

int info_v2_model_ready(request *r)
{
    const srv_model *m = &r->s->models[r->model];
    int ready =
        atomic_load_explicit(&m->ready, memory_order_acquire) && !atomic_load(&r->s->draining);
    sbuf b;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    sbuf_puts(&b, "{\"name\":");
    sbuf_json_str(&b, m->cfg->name);
    sbuf_printf(&b, ",\"ready\":%s}\n", ready ? "true" : "false");
    return http_send_json(r, ready ? 200 : 503, &b);
}
