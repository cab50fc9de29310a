/* infer.c - request -> batch job -> response, for the two inference routes (see infer.h).
 *
 * The HTTP thread parses the body and prepares the job; the decode stage, on a decode pool
 * thread, decodes and resizes the images and submits the job, so HTTP threads stay free for
 * other connections (probes included) and compute workers only normalise bytes and run the
 * engine. The functions under "the decode stage" run on a decode thread; the two under
 * "compute workers" on a worker thread, where they read the request's decoded images and
 * wake it, nothing else. While a decode thread or a worker holds the request, its HTTP thread
 * touches only the suspend state (http.h).
 */
#include "server/infer.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/api/multipart.h"
#include "server/api/v1.h"
#include "server/http.h"
#include "server/num.h"

/* ---- compute workers ---- */

/* batch_job.load, on the worker assembling a batch: image i's bytes to the model's float
 * input, written straight into the batch. */
static void infer_load_image(const batch_job *job, int i, float *dst)
{
    const request *r = job->user;
    const srv_model *m = r->work.m;
    image_normalise(&m->pre, r->work.px + (size_t)i * m->in_elems, dst);
}

/* batch_job.done, on the worker that finished the job's last image (or the thread that
 * cancelled it): wake the request; infer_finish answers on an HTTP thread. */
static void infer_job_done(batch_job *job)
{
    http_wake(job->user);
}

/* ---- the body ---- */

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
    return st == IMG_EUNSUPPORTED ? 415
           : st == IMG_ETOOBIG    ? 413
           : st == IMG_ENOMEM     ? 500
           : st == IMG_ETIMEOUT   ? 504
                                  : 400;
}

/* top_k from the body (-1 when absent), else the query string, else 5. 0 or 400. */
static int v1_top_k_of(request *r, long body_top_k)
{
    long top_k = body_top_k;
    const char *q = top_k < 0 ? http_query(r, "top_k") : NULL;
    if (q) {
        long long k;
        if (num_parse_ll(q, 0, LONG_MAX, &k)) {
            snprintf(r->err, sizeof r->err, "top_k must be a non-negative integer");
            return 400;
        }
        top_k = (long)k;
    }
    r->work.top_k = top_k < 0 ? 5 : top_k;
    return 0;
}

/* curl's -d and --data-binary send application/x-www-form-urlencoded unless told
 * otherwise. No form a client means starts as a JSON object, a JPEG or a PNG does, so such
 * a body is taken for what its first bytes say: the media type to read it as, or "" when
 * they say none of the three. */
static const char *sniff_form(const unsigned char *b, size_t n)
{
    static const unsigned char jpeg[] = {0xff, 0xd8, 0xff};
    static const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= sizeof jpeg && !memcmp(b, jpeg, sizeof jpeg)) return "image/jpeg";
    if (n >= sizeof png && !memcmp(b, png, sizeof png)) return "image/png";
    size_t i = 0;
    while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n')) i++;
    return i < n && b[i] == '{' ? "application/json" : "";
}

#define FORM_TYPE "application/x-www-form-urlencoded"

/* A v1 body, by its Content-Type, into *imgs (owned by the caller, possibly borrowing
 * r->body) and top_k. 0 or an HTTP status with r->err set. */
static int v1_read_body(request *r, blob **imgs, int *nimg)
{
    int max_img = (int)r->s->cfg.max_images_per_request;
    const char *ctype = http_header(r, "Content-Type");
    char ct[128];
    media_type(ctype, ct, sizeof ct);
    long top_k = -1;
    int st = PARSE_OK;
    if (!strcmp(ct, FORM_TYPE)) {
        const char *as = sniff_form(r->body, r->len);
        if (!as[0]) {
            snprintf(r->err, sizeof r->err,
                     "an " FORM_TYPE " body (curl -d's default) must be JPEG or PNG bytes or a "
                     "JSON object; send an image with --data-binary @FILE and Content-Type: "
                     "image/jpeg or image/png (curl -d strips line ends and breaks it)");
            return 415;
        }
        snprintf(ct, sizeof ct, "%s", as);
    }
    if (!strcmp(ct, "application/json")) {
        st = v1_parse_json((const char *)r->body, r->len, max_img, imgs, nimg, &top_k,
                           &r->work.form, r->err, sizeof r->err);
    } else if (!strcmp(ct, "multipart/form-data")) {
        st = multipart_parse(ctype, r->body, r->len, max_img, imgs, nimg, &top_k, r->err,
                             sizeof r->err);
    } else if (!ct[0] || !strcmp(ct, "image/jpeg") || !strcmp(ct, "image/png") ||
               !strcmp(ct, "application/octet-stream")) {
        *imgs = calloc(1, sizeof **imgs);
        if (!*imgs) {
            snprintf(r->err, sizeof r->err, "out of memory");
            return 500;
        }
        (*imgs)[0] = (blob){.data = r->body, .len = r->len};
        *nimg = 1;
    } else {
        snprintf(r->err, sizeof r->err,
                 "unsupported Content-Type '%.60s' (send image/jpeg, image/png, "
                 "application/octet-stream, multipart/form-data or application/json)",
                 ct);
        return 415;
    }
    if (st) return http_of_parse(st);
    return v1_top_k_of(r, top_k);
}

/* Inference-Header-Content-Length (binary tensor extension): the JSON part's length into
 * *json_len, r->len when absent. 0 or 400. */
static int v2_json_len(request *r, size_t *json_len)
{
    const char *h = http_header(r, "Inference-Header-Content-Length");
    *json_len = r->len;
    if (!h) return 0;
    long long n;
    if (num_parse_ll(h, 0, (long long)r->len, &n)) {
        snprintf(r->err, sizeof r->err,
                 "Inference-Header-Content-Length must be a byte count of at most the body's "
                 "%zu bytes",
                 r->len);
        return 400;
    }
    *json_len = (size_t)n;
    return 0;
}

/* A V2 body into r->work.v2; an FP32 tensor moves to r->work.in. 0 or an HTTP status.
 * Clients of the binary extension send no Content-Type, or application/octet-stream. */
static int v2_read_body(request *r, const srv_model *m)
{
    infer_work *w = &r->work;
    char ct[128];
    size_t json_len;
    media_type(http_header(r, "Content-Type"), ct, sizeof ct);
    int code = v2_json_len(r, &json_len);
    if (code) return code;
    int binary = http_header(r, "Inference-Header-Content-Length") != NULL;
    if (!binary && !strcmp(ct, FORM_TYPE) &&
        !strcmp(sniff_form(r->body, r->len), "application/json"))
        ct[0] = 0; /* curl -d '{...}' */
    if (ct[0] && strcmp(ct, "application/json") &&
        !(binary && !strcmp(ct, "application/octet-stream"))) {
        snprintf(r->err, sizeof r->err,
                 "V2 infer takes application/json (or application/octet-stream with "
                 "Inference-Header-Content-Length), not %.60s",
                 ct);
        return 415;
    }
    w->is_v2 = 1;
    int st = v2_parse_infer((const char *)r->body, r->len, json_len, m->S, m->classes,
                            (int)r->s->cfg.max_images_per_request, &w->v2, r->err, sizeof r->err);
    if (st) return http_of_parse(st);
    if (w->v2.kind == V2_FP32) {
        w->in = w->v2.fp32;
        w->v2.fp32 = NULL;
    }
    return 0;
}

/* The V2 answer: JSON, or JSON and the binary outputs after it (binary tensor extension). */
static int v2_answer(request *r, const srv_model *m, const float *probs)
{
    const infer_work *w = &r->work;
    sbuf b, bin;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    sbuf_init(&bin, HTTP_RESPONSE_MAX);
    char ver[24]; /* the version that answered: the one the request was admitted to */
    snprintf(ver, sizeof ver, "%lld", m->cfg->version ? m->cfg->version : 1);
    v2_format_infer(&b, &bin, m->cfg->name, ver, &w->v2, w->out, probs, m->classes, m->info.labels);
    if (!v2_has_binary(&w->v2)) {
        sbuf_free(&bin);
        return http_send_json(r, 200, &b);
    }
    char json_len[24];
    snprintf(json_len, sizeof json_len, "%zu", b.len);
    sbuf_add(&b, bin.p, bin.len);
    if (bin.err) b.err = 1;
    sbuf_free(&bin);
    return http_send_with(r, 200, &b, "application/octet-stream", "Inference-Header-Content-Length",
                          json_len);
}

/* ---- the job: prepared on the HTTP thread ---- */

/* Check nimg against the queue and allocate the job's buffers (8-bit planes for encoded
 * images; an FP32 tensor is already in w->in). 0 or an HTTP status with r->err set. */
static int prepare_job(request *r, const srv_model *m, int nimg)
{
    infer_work *w = &r->work;
    if (nimg > m->cfg->max_queue_size) {
        snprintf(r->err, sizeof r->err, "%d images exceed this model's max_queue_size %lld", nimg,
                 m->cfg->max_queue_size);
        return 413;
    }
    w->nimg = nimg;
    /* Images wait in the queue as bytes and are normalised when their batch is assembled. */
    if (w->enc) w->px = malloc((size_t)nimg * m->in_elems);
    w->out = malloc((size_t)nimg * (size_t)m->classes * sizeof(float));
    if ((w->enc && !w->px) || !w->out) {
        snprintf(r->err, sizeof r->err, "out of memory");
        return 500;
    }
    return 0;
}

/* The encoded images are decoded (or will never be): drop them and the body they borrow. */
static void release_encoded(request *r)
{
    infer_work *w = &r->work;
    blobs_free(w->enc, w->nenc);
    w->enc = NULL;
    w->nenc = 0;
    http_release_body(r);
}

/* Hand the job to the model's batcher; infer_job_done wakes the request. 0, or 503 with
 * r->err set (the job is then the request's again). */
static int submit(request *r, srv_model *m)
{
    infer_work *w = &r->work;
    w->job = (batch_job){.n = w->nimg,
                         .in = w->in,
                         .load = w->px ? infer_load_image : NULL,
                         .out = w->out,
                         .deadline_ns = r->t0 + m->cfg->request_timeout_ms * 1000000LL,
                         .done = infer_job_done,
                         .user = r};
    int st = server_submit(r->s, m, &w->job);
    if (st)
        snprintf(r->err, sizeof r->err, "%s",
                 st == BATCH_EFULL ? "queue full, retry later" : "model is shutting down");
    return st ? 503 : 0;
}

/* ---- the decode stage: a decode pool thread ---- */

/* r->err for image i's failure e: "image i: e", naming its multipart part if it has one
 * (printable bytes only: never the data). */
static void image_error(request *r, const blob *img, int i, const char *e)
{
    char part[72] = "";
    size_t k = 0;
    for (; k < img->name_len && k < 40; k++) {
        char c = img->name[k];
        part[k] = c > 0x20 && c < 0x7f && c != '\'' ? c : '?';
    }
    part[k] = 0;
    if (k)
        snprintf(r->err, sizeof r->err, "image %d: %.200s (part '%s')", i, e, part);
    else
        snprintf(r->err, sizeof r->err, "image %d: %.200s", i, e); /* room for the prefix */
}

/* Decode the encoded images into the job's 8-bit planes. A decode stops at the request's
 * deadline, and none starts after it (the request may have waited for a decode thread).
 * 0 or an HTTP status with r->err set. */
static int decode_images(request *r, const srv_model *m)
{
    infer_work *w = &r->work;
    image_limits lim = r->s->img;
    lim.deadline_ns = r->t0 + m->cfg->request_timeout_ms * 1000000LL;
    if (batcher_now_ns() > lim.deadline_ns) {
        snprintf(r->err, sizeof r->err, "deadline (request_timeout_ms) passed before decode");
        return 504;
    }
    for (int i = 0; i < w->nenc; i++) {
        char e[SRV_ERR_MAX];
        long long t0 = batcher_now_ns();
        int st = image_to_pixels(w->enc[i].data, w->enc[i].len, &m->pre, &lim, 0,
                                 w->px + (size_t)i * m->in_elems, e, sizeof e);
        if (st) {
            image_error(r, &w->enc[i], i, e);
            return http_of_image(st);
        }
        metrics_preprocess(r->s->met, r->model, (double)(batcher_now_ns() - t0) * 1e-9);
    }
    return 0;
}

/* decode_task.run, on a decode thread, or with `cancelled` on the thread stopping the pool:
 * decode, drop the encoded bytes, submit. The request is woken by the batcher once its job
 * is computed, or here with w->code (and r->err) for infer_finish when anything failed.
 * Nothing of r is touched once it is submitted or woken: it may be answered at once. */
static void infer_decode(decode_task *t, int cancelled)
{
    request *r = t->user;
    infer_work *w = &r->work;
    int code;
    if (cancelled) {
        snprintf(r->err, sizeof r->err, "server is shutting down");
        code = 503;
    } else {
        code = decode_images(r, w->m);
    }
    release_encoded(r);
    if (!code) code = submit(r, w->m);
    if (!code) return;
    w->code = code;
    http_wake(r);
}

/* ---- the HTTP thread again ---- */

/* The body is parsed: prepare the job and send it on, to the decode pool when it has
 * images to decode, else (an FP32 tensor) straight to the batcher; then suspend until it is
 * done. Failures before that are answered at once. */
static int dispatch(request *r, srv_model *m, int nimg)
{
    infer_work *w = &r->work;
    int code = prepare_job(r, m, nimg);
    if (!code && w->enc) {
        w->decode = (decode_task){.run = infer_decode, .user = r};
        int st = decodepool_submit(r->s->decode, &w->decode);
        if (st) {
            snprintf(r->err, sizeof r->err, "%s",
                     st == DECODE_EFULL ? "decode queue full, retry later"
                                        : "server is shutting down");
            code = 503;
        }
    } else if (!code) {
        release_encoded(r);
        code = submit(r, m);
    }
    if (code) return http_send_error(r, code, r->err);
    if (http_suspend(r)) return infer_finish(r); /* done before the suspend */
    return 0;
}

/* ---- the routes ---- */

/* The door check of both routes; `decoded`: the request's images will be decoded, so a full
 * decode queue refuses it too. */
static int admit(request *r, int decoded, const char **why)
{
    server *s = r->s;
    *why = NULL;
    /* The request keeps this instance until it is freed (infer_work_free), whatever a
     * reload does meanwhile. While draining, requests on connections accepted earlier are
     * still served. */
    srv_model *m = r->work.m = server_acquire_version(s, r->model, r->version);
    if (!m && server_unloaded(s, r->model)) { /* unloaded since routes_match looked */
        *why = "model is unloaded";
        return 404;
    }
    if (!m)
        *why = atomic_load(&s->started) ? "model is not loaded (GET /v1/models has last_error)"
                                        : "model is loading";
    else if (server_queue_depth(s, m) >= m->cfg->max_queue_size)
        *why = "queue full, retry later";
    else if (decoded && decodepool_depth(s->decode) >= s->cfg.decode_queue_size)
        *why = "decode queue full, retry later";
    return *why ? 503 : 0;
}

int infer_admit_v1(request *r, const char **why)
{
    return admit(r, 1, why); /* every v1 body is images */
}

int infer_admit_v2(request *r, const char **why)
{
    /* Only the body says whether it holds images (BYTES) or a tensor (FP32): a BYTES request
     * meets a full decode queue when it is queued (dispatch), an FP32 one never waits there. */
    return admit(r, 0, why);
}

int infer_v1(request *r)
{
    srv_model *m = r->work.m;
    infer_work *w = &r->work;
    if (!m) return http_send_error(r, 503, "model is loading");
    int code = v1_read_body(r, &w->enc, &w->nenc);
    if (code) return http_send_error(r, code, r->err);
    return dispatch(r, m, w->nenc);
}

int infer_v2(request *r)
{
    srv_model *m = r->work.m;
    infer_work *w = &r->work;
    if (!m) return http_send_error(r, 503, "model is loading");
    int code = v2_read_body(r, m);
    if (code) return http_send_error(r, code, r->err);
    if (w->v2.kind == V2_BYTES) { /* the images move to the job; the rest stays for the answer */
        w->enc = w->v2.imgs;
        w->nenc = w->v2.n;
        w->v2.imgs = NULL;
    }
    return dispatch(r, m, w->v2.n);
}

int infer_finish(request *r)
{
    const srv_model *m = r->work.m;
    const infer_work *w = &r->work;
    if (w->code) return http_send_error(r, w->code, r->err); /* failed before its batch */
    int st = atomic_load(&w->job.status);
    if (st == BATCH_EDEADLINE)
        return http_send_error(r, 504, "deadline (request_timeout_ms) passed before compute");
    if (st == BATCH_ECANCELLED) return http_send_error(r, 503, "server is shutting down");
    if (st) return http_send_error(r, 500, "inference failed");
    size_t total = (size_t)w->nimg * (size_t)m->classes;
    float *probs = malloc(total * sizeof(float));
    if (!probs) return http_send_error(r, 500, "out of memory");
    for (int i = 0; i < w->nimg; i++)
        softmax(w->out + (size_t)i * (size_t)m->classes, m->classes,
                probs + (size_t)i * (size_t)m->classes);
    int rc;
    if (w->is_v2) {
        rc = v2_answer(r, m, probs);
    } else {
        sbuf b;
        sbuf_init(&b, HTTP_RESPONSE_MAX);
        v1_format(&b, m->cfg->name, m->info.untrained, m->info.labels, m->classes, probs, w->nimg,
                  w->top_k, w->form);
        rc = http_send_json(r, 200, &b);
    }
    free(probs);
    return rc;
}

void infer_work_free(infer_work *w)
{
    free(w->in);
    free(w->px);
    free(w->out);
    blobs_free(w->enc, w->nenc);
    v2_infer_free(&w->v2);
    if (w->m) server_release(w->m->srv, w->m);
    w->m = NULL;
}
