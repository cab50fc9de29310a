/* http.c - see http.h.
 *
 * Request life cycle, all on one MHD thread except the done callback:
 *   1st call   (headers in): allocate `req`, route, refuse early (404/405/413/414/503) by
 *              queueing the answer at once: MHD then reads no body and closes.
 *   body calls: append to the body buffer, never past max_body_bytes.
 *   last call  (*upload_data_size == 0): parse, decode, submit to the batcher, suspend.
 *   done_cb    (a compute worker): mark done; resume if suspended.
 *   resumed    (last call again): softmax, format, queue the response.
 *   completed  (request_completed): log, count, free.
 * The suspend/resume race (the job may finish before the handler suspends) is closed by
 * req->mu: the handler suspends only if the job is not done yet, and the worker resumes
 * only if the handler has suspended. The worker touches nothing of req after unlocking.
 */
#include "server/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/api/multipart.h"
#include "server/sbuf.h"
#include "server/api/v1.h"
#include "server/api/v2.h"

#define RESPONSE_MAX (256u << 20) /* bytes of one response body */
#define ERRLEN 256

typedef enum {
    RT_NONE,
    RT_HEALTHZ,
    RT_READYZ,
    RT_METRICS,
    RT_V1_MODELS,
    RT_V1_MODEL,
    RT_V1_PREDICT,
    RT_V2_SERVER,
    RT_V2_LIVE,
    RT_V2_READY,
    RT_V2_MODEL,
    RT_V2_MODEL_READY,
    RT_V2_INFER,
} route;

typedef enum { ST_NEW, ST_BODY, ST_WAIT, ST_ANSWERED } req_state;

typedef struct {
    server *s;
    struct MHD_Connection *conn;
    req_state state;
    route rt;
    const char *endpoint; /* static: metric label */
    int model;            /* index or -1 */
    char id[72];
    char method[12];
    char path[256];
    long long t0;
    /* body */
    unsigned char *body;
    size_t len, cap;
    int overflow;
    /* work */
    long top_k;
    int nimg;
    float *in, *out;   /* in: a V2 FP32 tensor */
    unsigned char *px; /* or the decoded images, 8-bit (image_to_pixels) */
    v2_infer v2;
    int is_v2;
    batch_job job;
    pthread_mutex_t mu;
    int done, suspended;
    /* answer */
    int status;
    char err[ERRLEN];
} req;

static const char *method_of(const char *m)
{
    return !strcmp(m, "HEAD") ? "GET" : m;
}

static int model_index(server *s, const char *name, size_t n)
{
    for (int i = 0; i < s->nmodels; i++)
        if (strlen(s->models[i].cfg->name) == n && !strncmp(s->models[i].cfg->name, name, n))
            return i;
    return -1;
}

/* Map URL to a route, its method, its metric label and its model. 0 = no such path. */
static route route_of(server *s, const char *url, const char **need, const char **ep, int *model,
                      int *unknown_model)
{
    *model = -1;
    *unknown_model = 0;
    *need = "GET";
    static const struct {
        const char *path;
        route rt;
        const char *ep;
    } fixed[] = {
        {"/healthz", RT_HEALTHZ, "healthz"},          {"/readyz", RT_READYZ, "readyz"},
        {"/metrics", RT_METRICS, "metrics"},          {"/v1/models", RT_V1_MODELS, "v1_models"},
        {"/v2", RT_V2_SERVER, "v2_server"},           {"/v2/health/live", RT_V2_LIVE, "v2_live"},
        {"/v2/health/ready", RT_V2_READY, "v2_ready"}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!strcmp(url, fixed[i].path)) {
            *ep = fixed[i].ep;
            return fixed[i].rt;
        }
    const char *name;
    size_t n;
    route rt = RT_NONE;
    if (!strncmp(url, "/v1/models/", 11)) {
        name = url + 11;
        const char *colon = strrchr(name, ':');
        if (colon && !strcmp(colon, ":predict")) {
            n = (size_t)(colon - name);
            rt = RT_V1_PREDICT;
            *need = "POST";
            *ep = "v1_predict";
        } else if (!strchr(name, '/') && !strchr(name, ':')) {
            n = strlen(name);
            rt = RT_V1_MODEL;
            *ep = "v1_model";
        } else {
            return RT_NONE;
        }
    } else if (!strncmp(url, "/v2/models/", 11)) {
        name = url + 11;
        const char *slash = strchr(name, '/');
        n = slash ? (size_t)(slash - name) : strlen(name);
        if (!slash) {
            rt = RT_V2_MODEL;
            *ep = "v2_model";
        } else if (!strcmp(slash, "/ready")) {
            rt = RT_V2_MODEL_READY;
            *ep = "v2_model_ready";
        } else if (!strcmp(slash, "/infer")) {
            rt = RT_V2_INFER;
            *need = "POST";
            *ep = "v2_infer";
        } else {
            return RT_NONE;
        }
    } else {
        return RT_NONE;
    }
    *model = model_index(s, name, n);
    if (*model < 0) *unknown_model = 1;
    return rt;
}

/* Queue `body` (malloc'd, taken) with status `code`. */
static enum MHD_Result send_body(req *r, int code, char *body, size_t len, const char *ctype)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", ctype);
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    if (code == 503) MHD_add_response_header(resp, "Retry-After", "1");
    if (code == 405) {
        const char *need;
        const char *ep;
        int m, u;
        route_of(r->s, r->path, &need, &ep, &m, &u);
        MHD_add_response_header(resp, "Allow", !strcmp(need, "GET") ? "GET, HEAD" : need);
    }
    if (atomic_load(&r->s->draining)) MHD_add_response_header(resp, "Connection", "close");
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)code, resp);
    MHD_destroy_response(resp);
    r->status = code;
    r->state = ST_ANSWERED;
    return ret;
}

static enum MHD_Result send_sbuf(req *r, int code, sbuf *b, const char *ctype)
{
    size_t len;
    char *p = sbuf_take(b, &len);
    if (!p) {
        static const char oom[] = "{\"error\":\"out of memory\"}\n";
        p = strdup(oom);
        if (!p) return MHD_NO;
        len = sizeof oom - 1;
        code = 500;
    }
    return send_body(r, code, p, len, ctype);
}

static enum MHD_Result send_error(req *r, int code, const char *msg)
{
    sbuf b;
    sbuf_init(&b, 4096);
    sbuf_puts(&b, "{\"error\":");
    sbuf_json_str(&b, msg);
    sbuf_puts(&b, "}\n");
    if (msg != r->err) snprintf(r->err, sizeof r->err, "%s", msg);
    return send_sbuf(r, code, &b, "application/json");
}

static enum MHD_Result send_json(req *r, int code, sbuf *b)
{
    return send_sbuf(r, code, b, "application/json");
}

static int all_ready(server *s)
{
    for (int i = 0; i < s->nmodels; i++)
        if (!atomic_load_explicit(&s->models[i].ready, memory_order_acquire)) return 0;
    return 1;
}

/* The model's batcher is used only under s->mu: the drain (serve.c) takes it away under
 * the same lock before freeing it, so a request arriving on a kept-alive connection at the
 * end of the drain gets a 503 instead of a freed batcher. Neither call blocks on compute. */
static long queue_depth(server *s, srv_model *m)
{
    pthread_mutex_lock(&s->mu);
    long n = m->b ? batcher_depth(m->b) : 0;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static int submit(server *s, srv_model *m, batch_job *job)
{
    pthread_mutex_lock(&s->mu);
    int st = m->b ? batcher_submit(m->b, job) : BATCH_ESTOPPED;
    pthread_mutex_unlock(&s->mu);
    return st;
}

static void model_json(sbuf *b, const srv_model *m)
{
    int ready = atomic_load_explicit(&m->ready, memory_order_acquire);
    sbuf_puts(b, "{\"name\":");
    sbuf_json_str(b, m->cfg->name);
    sbuf_printf(b, ",\"status\":\"%s\"", ready ? "ready" : "loading");
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

static enum MHD_Result handle_get(req *r)
{
    server *s = r->s;
    sbuf b;
    sbuf_init(&b, RESPONSE_MAX);
    int ready = all_ready(s) && !atomic_load(&s->draining);
    switch (r->rt) {
    case RT_HEALTHZ:
    case RT_V2_LIVE:
        sbuf_puts(&b, r->rt == RT_HEALTHZ ? "{\"status\":\"ok\"}\n" : "{\"live\":true}\n");
        return send_json(r, 200, &b);
    case RT_READYZ:
    case RT_V2_READY:
        if (r->rt == RT_V2_READY)
            sbuf_printf(&b, "{\"ready\":%s}\n", ready ? "true" : "false");
        else
            sbuf_printf(&b, "{\"status\":\"%s\"}\n",
                        ready                       ? "ready"
                        : atomic_load(&s->draining) ? "draining"
                                                    : "starting");
        if (!ready) snprintf(r->err, sizeof r->err, "not ready");
        return send_json(r, ready ? 200 : 503, &b);
    case RT_METRICS: {
        if (!s->cfg.metrics) {
            sbuf_free(&b);
            return send_error(r, 404, "metrics are disabled (metrics: false)");
        }
        long depth[CFG_MAX_MODELS];
        int rd[CFG_MAX_MODELS];
        for (int i = 0; i < s->nmodels; i++) {
            rd[i] = atomic_load_explicit(&s->models[i].ready, memory_order_acquire);
            depth[i] = rd[i] ? queue_depth(s, &s->models[i]) : 0;
        }
        metrics_render(s->met, &b, depth, rd, atomic_load(&s->inflight));
        return send_sbuf(r, 200, &b, "text/plain; version=0.0.4; charset=utf-8");
    }
    case RT_V1_MODELS:
        sbuf_puts(&b, "{\"models\":[");
        for (int i = 0; i < s->nmodels; i++) {
            if (i) sbuf_puts(&b, ",");
            model_json(&b, &s->models[i]);
        }
        sbuf_puts(&b, "]}\n");
        return send_json(r, 200, &b);
    case RT_V1_MODEL:
        model_json(&b, &s->models[r->model]);
        sbuf_puts(&b, "\n");
        return send_json(r, 200, &b);
    case RT_V2_SERVER:
        sbuf_puts(&b, "{\"name\":\"xbnserve\",\"version\":\"1\",\"extensions\":[]}\n");
        return send_json(r, 200, &b);
    case RT_V2_MODEL_READY: {
        int mr = atomic_load_explicit(&s->models[r->model].ready, memory_order_acquire) &&
                 !atomic_load(&s->draining);
        sbuf_puts(&b, "{\"name\":");
        sbuf_json_str(&b, s->models[r->model].cfg->name);
        sbuf_printf(&b, ",\"ready\":%s}\n", mr ? "true" : "false");
        return send_json(r, mr ? 200 : 503, &b);
    }
    case RT_V2_MODEL: {
        const srv_model *m = &s->models[r->model];
        if (!atomic_load_explicit(&m->ready, memory_order_acquire)) {
            sbuf_free(&b);
            return send_error(r, 503, "model is loading");
        }
        v2_format_model(&b, m->cfg->name, m->S, m->classes, arch_name(m->info.arch),
                        flavour_name(m->info.flavour), m->info.untrained);
        return send_json(r, 200, &b);
    }
    default:
        sbuf_free(&b);
        return send_error(r, 404, "no such route");
    }
}

/* Content-Type without parameters, lower-case, into out. */
static void media_type(const char *ct, char *out, size_t n)
{
    size_t i = 0;
    for (; ct && ct[i] && ct[i] != ';' && ct[i] != ' ' && i + 1 < n; i++)
        out[i] = (char)((ct[i] >= 'A' && ct[i] <= 'Z') ? ct[i] + 32 : ct[i]);
    out[i] = 0;
}

static int http_of_parse(int st)
{
    return st == PARSE_ETOOMANY ? 413 : st == PARSE_ENOMEM ? 500 : 400;
}

static int http_of_image(int st)
{
    return st == IMG_EUNSUPPORTED ? 415 : st == IMG_ETOOBIG ? 413 : st == IMG_ENOMEM ? 500 : 400;
}

static void done_cb(batch_job *job)
{
    req *r = job->user;
    pthread_mutex_lock(&r->mu);
    r->done = 1;
    int susp = r->suspended;
    struct MHD_Connection *c = r->conn;
    pthread_mutex_unlock(&r->mu);
    if (susp) MHD_resume_connection(c);
}

/* batch_job.load: image i's bytes to the model's float input. */
static void load_pixels(const batch_job *job, int i, float *dst)
{
    const req *r = job->user;
    const srv_model *m = &r->s->models[r->model];
    image_normalise(&m->pre, r->px + (size_t)i * m->in_elems, dst);
}

/* Decode n images into r->px. Returns 0 or an HTTP status with r->err set. */
static int decode_all(req *r, const srv_model *m, const blob *imgs, int n)
{
    for (int i = 0; i < n; i++) {
        char e[200];
        int st = image_to_pixels(imgs[i].data, imgs[i].len, &m->pre, &r->s->img, 0,
                                 r->px + (size_t)i * m->in_elems, e, sizeof e);
        if (st) {
            snprintf(r->err, sizeof r->err, "image %d: %s", i, e);
            return http_of_image(st);
        }
    }
    return 0;
}

/* The last call of a POST: body to tensors to batcher. Returns 1 when the job finished
 * before the connection could be suspended (answer now); otherwise 0 with *res set. */
static int start_inference(req *r, enum MHD_Result *res)
{
    server *s = r->s;
    srv_model *m = &s->models[r->model];
    int code = 0, st;
    blob *imgs = NULL;
    int nimg = 0;
    long top_k = -1;
    char ct[128];
    media_type(MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type"), ct,
               sizeof ct);
    int max_img = (int)s->cfg.max_images_per_request;
    if (r->rt == RT_V2_INFER) {
        if (ct[0] && strcmp(ct, "application/json")) {
            code = 415;
            snprintf(r->err, sizeof r->err, "V2 infer takes application/json, not %s", ct);
            goto fail;
        }
        r->is_v2 = 1;
        st = v2_parse_infer((const char *)r->body, r->len, m->S, max_img, &r->v2, r->err,
                            sizeof r->err);
        if (st) {
            code = http_of_parse(st);
            goto fail;
        }
        nimg = r->v2.n;
        if (r->v2.kind == V2_FP32) {
            r->in = r->v2.fp32;
            r->v2.fp32 = NULL;
        }
    } else {
        if (!strcmp(ct, "application/json")) {
            st = v1_parse_json((const char *)r->body, r->len, max_img, &imgs, &nimg, &top_k, r->err,
                               sizeof r->err);
        } else if (!strcmp(ct, "multipart/form-data")) {
            st = multipart_parse(
                MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type"), r->body,
                r->len, max_img, &imgs, &nimg, &top_k, r->err, sizeof r->err);
        } else if (!ct[0] || !strcmp(ct, "image/jpeg") || !strcmp(ct, "image/png") ||
                   !strcmp(ct, "application/octet-stream")) {
            st = PARSE_OK;
            imgs = calloc(1, sizeof *imgs);
            if (!imgs) {
                code = 500;
                snprintf(r->err, sizeof r->err, "out of memory");
                goto fail;
            }
            imgs[0].data = r->body;
            imgs[0].len = r->len;
            nimg = 1;
        } else {
            code = 415;
            snprintf(r->err, sizeof r->err,
                     "unsupported Content-Type '%.60s' (send image/jpeg, image/png, "
                     "application/octet-stream, multipart/form-data or application/json)",
                     ct);
            goto fail;
        }
        if (st) {
            code = http_of_parse(st);
            goto fail;
        }
        if (top_k < 0) {
            const char *q = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "top_k");
            if (q) {
                char *end;
                top_k = strtol(q, &end, 10);
                if (!*q || *end || top_k < 0) {
                    code = 400;
                    snprintf(r->err, sizeof r->err, "top_k must be a non-negative integer");
                    goto fail;
                }
            }
        }
        r->top_k = top_k < 0 ? 5 : top_k;
    }
    if (nimg > m->cfg->max_queue_size) {
        code = 413;
        snprintf(r->err, sizeof r->err, "%d images exceed this model's max_queue_size %lld", nimg,
                 m->cfg->max_queue_size);
        goto fail;
    }
    r->nimg = nimg;
    /* Images wait in the queue as bytes and are normalised when their batch is assembled. */
    if (!r->in) r->px = malloc((size_t)nimg * m->in_elems);
    r->out = malloc((size_t)nimg * (size_t)m->classes * sizeof(float));
    if ((!r->in && !r->px) || !r->out) {
        code = 500;
        snprintf(r->err, sizeof r->err, "out of memory");
        goto fail;
    }
    if (r->is_v2 && r->v2.kind == V2_BYTES) {
        code = decode_all(r, m, r->v2.imgs, nimg);
    } else if (!r->is_v2) {
        code = decode_all(r, m, imgs, nimg);
    }
    if (code) goto fail;
    blobs_free(imgs, nimg);
    imgs = NULL;
    /* The encoded bytes are no longer needed: release them before the wait. */
    free(r->body);
    r->body = NULL;
    r->len = r->cap = 0;
    if (r->is_v2) {
        blobs_free(r->v2.imgs, r->v2.kind == V2_BYTES ? r->v2.n : 0);
        r->v2.imgs = NULL;
    }
    r->job = (batch_job){.n = nimg,
                         .in = r->in,
                         .load = r->px ? load_pixels : NULL,
                         .out = r->out,
                         .deadline_ns = r->t0 + m->cfg->request_timeout_ms * 1000000LL,
                         .done = done_cb,
                         .user = r};
    st = submit(s, m, &r->job);
    if (st) {
        *res = send_error(r, 503,
                          st == BATCH_EFULL ? "queue full, retry later" : "model is shutting down");
        return 0;
    }
    r->state = ST_WAIT;
    pthread_mutex_lock(&r->mu);
    int wait = !r->done;
    if (wait) {
        MHD_suspend_connection(r->conn);
        r->suspended = 1;
    }
    pthread_mutex_unlock(&r->mu);
    *res = MHD_YES;
    return !wait;
fail:
    blobs_free(imgs, nimg);
    *res = send_error(r, code ? code : 500, r->err);
    return 0;
}

/* The job is done: format the answer. */
static enum MHD_Result finish_inference(req *r)
{
    server *s = r->s;
    srv_model *m = &s->models[r->model];
    int st = atomic_load(&r->job.status);
    if (st == BATCH_EDEADLINE)
        return send_error(r, 504, "deadline (request_timeout_ms) passed before compute");
    if (st == BATCH_ECANCELLED) return send_error(r, 503, "server is shutting down");
    if (st) return send_error(r, 500, "inference failed");
    size_t total = (size_t)r->nimg * (size_t)m->classes;
    float *probs = malloc(total * sizeof(float));
    if (!probs) return send_error(r, 500, "out of memory");
    for (int i = 0; i < r->nimg; i++)
        softmax(r->out + (size_t)i * (size_t)m->classes, m->classes,
                probs + (size_t)i * (size_t)m->classes);
    sbuf b;
    sbuf_init(&b, RESPONSE_MAX);
    if (r->is_v2)
        v2_format_infer(&b, m->cfg->name, &r->v2, r->out, probs, m->classes);
    else
        v1_format(&b, m->cfg->name, m->info.untrained, m->info.labels, m->classes, probs, r->nimg,
                  r->top_k);
    free(probs);
    return send_json(r, 200, &b);
}

/* MHD_KeyValueIterator: add "key=value&" lengths of the query arguments to *cls. */
static enum MHD_Result add_arg_len(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 2;
    return MHD_YES;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    (void)version;
    server *s = cls;
    req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        *con_cls = r;
        r->s = s;
        r->conn = conn;
        r->model = -1;
        r->endpoint = "other";
        r->t0 = batcher_now_ns();
        pthread_mutex_init(&r->mu, NULL);
        atomic_fetch_add(&s->inflight, 1);
        /* after counting it in flight: the drain never sees the request as neither */
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        int *fresh = ci ? ci->socket_context : NULL;
        if (fresh && *fresh) {
            *fresh = 0;
            atomic_fetch_sub(&s->fresh_conns, 1);
        }
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->path, sizeof r->path, "%s", url);
        const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
        int ok = rid && strlen(rid) > 0 && strlen(rid) < 64;
        for (const char *p = rid; ok && *p; p++)
            ok = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                 *p == '-' || *p == '_' || *p == '.';
        if (ok)
            snprintf(r->id, sizeof r->id, "%s", rid);
        else
            snprintf(r->id, sizeof r->id, "%lx", (unsigned long)atomic_fetch_add(&s->next_id, 1));
        size_t ulen = strlen(url); /* MHD strips the query: count its arguments too */
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_arg_len, &ulen);
        if (ulen > (size_t)s->cfg.max_url_bytes) return send_error(r, 414, "URL too long");
        const char *need;
        int unknown;
        r->rt = route_of(s, url, &need, &r->endpoint, &r->model, &unknown);
        if (r->rt == RT_NONE) return send_error(r, 404, "no such route");
        if (strcmp(method_of(method), need)) {
            snprintf(r->err, sizeof r->err, "method %s not allowed, use %s", method, need);
            return send_error(r, 405, r->err);
        }
        if (unknown) return send_error(r, 404, "no such model");
        if (!strcmp(need, "GET")) {
            /* Answered on the next call: a response queued before MHD has seen the (empty)
             * body makes it close the connection, which would defeat keep-alive. */
            r->state = ST_BODY;
            return MHD_YES;
        }
        /* POST: refuse at the door before reading any body. While draining, requests on
         * connections accepted earlier are still served (answered with Connection: close). */
        if (!atomic_load_explicit(&s->models[r->model].ready, memory_order_acquire))
            return send_error(r, 503, "model is loading");
        /* A full queue refuses before the body is read and decoded (batcher_submit still
         * has the last word): under overload a 503 costs microseconds, not a decode. */
        if (queue_depth(s, &s->models[r->model]) >= s->models[r->model].cfg->max_queue_size)
            return send_error(r, 503, "queue full, retry later");
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end;
            unsigned long long n = strtoull(cl, &end, 10);
            if (*end || n > (unsigned long long)s->cfg.max_body_bytes) {
                snprintf(r->err, sizeof r->err, "body larger than max_body_bytes (%lld)",
                         s->cfg.max_body_bytes);
                return send_error(r, 413, r->err);
            }
            r->cap = (size_t)n;
        }
        r->state = ST_BODY;
        return MHD_YES;
    }
    if (r->state == ST_ANSWERED) { /* MHD may still offer data: swallow it */
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->state == ST_BODY && *upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->overflow) return MHD_YES;
        if (r->len + n > (size_t)s->cfg.max_body_bytes) {
            /* Chunked body past the cap: too late to answer, drop the connection. */
            r->overflow = 1;
            snprintf(r->err, sizeof r->err, "body larger than max_body_bytes");
            return MHD_NO;
        }
        if (r->len + n > r->cap) {
            size_t cap = r->cap ? r->cap : 65536;
            while (cap < r->len + n) cap *= 2;
            if (cap > (size_t)s->cfg.max_body_bytes) cap = (size_t)s->cfg.max_body_bytes;
            unsigned char *p = realloc(r->body, cap);
            if (!p) return MHD_NO;
            r->body = p;
            r->cap = cap;
        } else if (!r->body) {
            r->body = malloc(r->cap ? r->cap : 1);
            if (!r->body) return MHD_NO;
        }
        memcpy(r->body + r->len, upload, n);
        r->len += n;
        return MHD_YES;
    }
    if (r->state == ST_BODY) {
        if (r->rt != RT_V1_PREDICT && r->rt != RT_V2_INFER) return handle_get(r);
        if (r->len == 0) return send_error(r, 400, "empty body");
        enum MHD_Result res = MHD_NO;
        if (start_inference(r, &res)) return finish_inference(r); /* done before suspend */
        return res;
    }
    if (r->state == ST_WAIT) {
        pthread_mutex_lock(&r->mu);
        int done = r->done;
        r->suspended = 0;
        pthread_mutex_unlock(&r->mu);
        if (!done) return MHD_YES; /* spurious: cannot happen, but stay safe */
        return finish_inference(r);
    }
    return MHD_NO;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    server *s = cls;
    req *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    double lat = (double)(batcher_now_ns() - r->t0) * 1e-9;
    int code = r->status ? r->status : 499; /* 499: client went away before an answer */
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && r->status && !r->err[0])
        snprintf(r->err, sizeof r->err, "connection closed before the answer was sent");
    log_request_rec rec = {r->id,
                           r->method,
                           r->path,
                           r->model >= 0 ? s->models[r->model].cfg->name : "",
                           code,
                           r->nimg,
                           atomic_load(&r->job.max_batch),
                           lat * 1e3,
                           r->status >= 400 || !r->status ? r->err : ""};
    log_request(&s->log, &rec);
    metrics_request(s->met, r->model, r->endpoint, code, lat);
    free(r->body);
    free(r->in);
    free(r->px);
    free(r->out);
    v2_infer_free(&r->v2);
    pthread_mutex_destroy(&r->mu);
    free(r);
    pthread_mutex_lock(&s->mu);
    if (atomic_fetch_sub(&s->inflight, 1) == 1) pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Connections start "fresh" until their first request: the drain waits for them a little
 * (serve.c), so a client that connected before SIGTERM is answered rather than told 503.
 * The flag lives in MHD's socket context; a connection is used by one pool thread only. */
static void notify_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode code)
{
    server *s = cls;
    (void)conn;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        int *fresh = malloc(sizeof *fresh);
        if (!fresh) return; /* not waited for: at worst the old behaviour */
        *fresh = 1;
        *socket_context = fresh;
        atomic_fetch_add(&s->fresh_conns, 1);
        return;
    }
    int *fresh = *socket_context;
    if (fresh && *fresh) {
        pthread_mutex_lock(&s->mu);
        if (atomic_fetch_sub(&s->fresh_conns, 1) == 1) pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    free(fresh);
    *socket_context = NULL;
}

int http_start(server *s, char *err, size_t errlen)
{
    s->listen_fd = -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)s->cfg.port);
    if (inet_pton(AF_INET, s->cfg.listen_address, &sa.sin_addr) != 1) {
        snprintf(err, errlen, "listen_address: '%s' is not an IPv4 address", s->cfg.listen_address);
        return -1;
    }
    /* poll(), not epoll: libmicrohttpd 0.9.75's MHD_quiesce_daemon races with its own epoll
     * loop on a thread pool (both remove the listen socket; the loser's EPOLL_CTL_DEL fails
     * and MHD_PANIC aborts the process mid-drain). A few hundred connections per thread are
     * cheap to poll. */
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_POLL | MHD_USE_ITC;
    size_t mem = (size_t)s->cfg.max_header_bytes + 4096;
    s->mhd = MHD_start_daemon(
        flags, (uint16_t)s->cfg.port, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, &sa,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->http_threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)s->cfg.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)s->cfg.connection_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem,
        MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_NOTIFY_CONNECTION, notify_connection,
        s, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, MHD_OPTION_END);
    if (!s->mhd) {
        snprintf(err, errlen, "cannot listen on %s:%lld (in use, or not permitted)",
                 s->cfg.listen_address, s->cfg.port);
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : (int)s->cfg.port;
    return 0;
}

void http_quiesce(server *s)
{
    if (!s->mhd) return;
    /* The socket is ours now, but a pool thread may still be in poll() on it: libmicrohttpd
     * says to close it only after MHD_stop_daemon. shutdown() takes it out of listening at
     * once, so new connections are refused instead of waiting in the backlog. */
    MHD_socket fd = MHD_quiesce_daemon(s->mhd);
    if (fd == MHD_INVALID_SOCKET) return;
    shutdown(fd, SHUT_RDWR);
    s->listen_fd = fd;
}

void http_stop(server *s)
{
    if (s->mhd) MHD_stop_daemon(s->mhd);
    s->mhd = NULL;
    if (s->listen_fd >= 0) close(s->listen_fd);
    s->listen_fd = -1;
}
