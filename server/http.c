/* http.c - libmicrohttpd glue (see http.h): the daemon, the request record, the body, the
 * answer. Nothing here knows what a route does; routes.c says which function answers.
 *
 * A request's life, all on the HTTP thread that owns its connection unless noted:
 *   request line (URI log callback): create the record, note the target's length.
 *   1st call   (headers in): start the request, match the route, refuse at the door
 *              (400/414/431/404/405/404/admit/413) by queueing the answer at once: MHD
 *              then reads no body and closes.
 *   body calls: append to the body buffer, never past max_body_bytes.
 *   last call  (*upload_data_size == 0): the route's handler; it answers, or suspends.
 *   http_wake  (any thread, e.g. a compute worker): mark woken; resume if suspended.
 *   resumed    (last call again): the route's resume handler answers.
 *   completed  (request_completed): log, count, free.
 * The suspend/wake race (the work may finish before the handler suspends) is closed by
 * r->mu: the handler suspends only if not woken yet, and the waker resumes only if the
 * handler has suspended. The waker touches nothing of r after unlocking.
 */
#include "server/http.h"

#include <ctype.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/cors.h"
#include "server/listener.h"
#include "server/num.h"
#include "server/routes.h"
#include "server/tls.h"

enum { ST_NEW, ST_BODY, ST_WAIT, ST_ANSWERED }; /* request.state */

/* ---- answers ---- */

/* cors.h: nothing unless cors_allow_origins is set and the route takes part. */
static void add_cors(const request *r, struct MHD_Response *resp)
{
    const char *list = r->s->cfg.cors_allow_origins;
    if (!list[0] || !r->rt || !cors_route(r->rt->endpoint)) return;
    MHD_add_response_header(resp, "Vary", "Origin");
    const char *origin = http_header(r, "Origin");
    if (!cors_origin_allowed(list, origin)) return;
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
    if (r->preflight) {
        char methods[64];
        snprintf(methods, sizeof methods, "%s, OPTIONS", routes_allow(r->rt));
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", methods);
        MHD_add_response_header(resp, "Access-Control-Allow-Headers", CORS_ALLOW_HEADERS);
        MHD_add_response_header(resp, "Access-Control-Max-Age", CORS_MAX_AGE);
    } else {
        MHD_add_response_header(resp, "Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS);
    }
}

/* Queue `body` (malloc'd, taken) with status `code`, and the header hname: hval if hname. */
static int send_body(request *r, int code, char *body, size_t len, const char *ctype,
                     const char *hname, const char *hval)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return -1;
    }
    MHD_add_response_header(resp, "Content-Type", ctype);
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    if (hname) MHD_add_response_header(resp, hname, hval);
    char tp[TRACE_HEADER_LEN + 1];
    trace_header(&r->trace, tp);
    MHD_add_response_header(resp, "traceparent", tp);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (r->csp) MHD_add_response_header(resp, "Content-Security-Policy", r->csp);
    add_cors(r, resp);
    if (code == 503) MHD_add_response_header(resp, "Retry-After", "1");
    if (code == 405) MHD_add_response_header(resp, "Allow", routes_allow(r->rt));
    if (code == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"xbnserve\"");
    if (r->close || atomic_load(&r->s->draining))
        MHD_add_response_header(resp, "Connection", "close");
    metrics_response_bytes(r->s->met, r->model, r->rt ? r->rt->endpoint : "other", len);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)code, resp);
    MHD_destroy_response(resp);
    r->status = code;
    r->state = ST_ANSWERED;
    return ret == MHD_YES ? 0 : -1;
}

int http_send_with(request *r, int code, sbuf *b, const char *content_type, const char *hname,
                   const char *hval)
{
    size_t len;
    char *p = sbuf_take(b, &len);
    if (!p) {
        static const char oom[] = "{\"error\":\"out of memory\"}\n";
        p = strdup(oom);
        if (!p) return -1;
        len = sizeof oom - 1;
        code = 500;
        content_type = "application/json";
        hname = NULL;
    }
    return send_body(r, code, p, len, content_type, hname, hval);
}

int http_send(request *r, int code, sbuf *b, const char *content_type)
{
    return http_send_with(r, code, b, content_type, NULL, NULL);
}

int http_send_json(request *r, int code, sbuf *b)
{
    return http_send(r, code, b, "application/json");
}

int http_send_error(request *r, int code, const char *msg)
{
    sbuf b;
    sbuf_init(&b, 4096);
    sbuf_puts(&b, "{\"error\":");
    sbuf_json_str(&b, msg);
    sbuf_puts(&b, "}\n");
    if (msg != r->err) snprintf(r->err, sizeof r->err, "%s", msg);
    return http_send_json(r, code, &b);
}

/* ---- what handlers read and do ---- */

const char *http_header(const request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_query(const request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

void http_release_body(request *r)
{
    free(r->body);
    r->body = NULL;
    r->len = r->cap = 0;
}

int http_suspend(request *r)
{
    r->state = ST_WAIT;
    pthread_mutex_lock(&r->mu);
    int woken = r->woken;
    if (!woken) {
        MHD_suspend_connection(r->conn);
        r->suspended = 1;
    }
    pthread_mutex_unlock(&r->mu);
    return woken;
}

void http_wake(request *r)
{
    pthread_mutex_lock(&r->mu);
    r->woken = 1;
    int susp = r->suspended;
    struct MHD_Connection *c = r->conn;
    pthread_mutex_unlock(&r->mu);
    if (susp) MHD_resume_connection(c);
}

/* ---- the request record ---- */

/* X-Request-Id: the client's if it is 1-63 bytes of [A-Za-z0-9._-], else a counter. */
static void request_id(request *r)
{
    const char *rid = http_header(r, "X-Request-Id");
    int ok = rid && strlen(rid) > 0 && strlen(rid) < 64;
    for (const char *p = rid; ok && *p; p++)
        ok = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
             *p == '-' || *p == '_' || *p == '.';
    if (ok)
        snprintf(r->id, sizeof r->id, "%s", rid);
    else
        snprintf(r->id, sizeof r->id, "%lx", (unsigned long)atomic_fetch_add(&r->s->next_id, 1));
}

/* MHD_OPTION_URI_LOG_CALLBACK: libmicrohttpd calls it once per request with the request
 * target as the client sent it (path and query, not yet percent-decoded), before the
 * headers are parsed, and hands what it returns to the handler as the request's context.
 * The record is born here so max_url_bytes counts the bytes on the wire; request_start
 * fills in the rest once the headers are in. A NULL target (a request line without one)
 * counts 0: libmicrohttpd refuses such a line before any handler call. */
static void *request_seen(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    request *r = calloc(1, sizeof *r); /* NULL: the handler drops the connection */
    if (r) r->url_bytes = uri ? strlen(uri) : 0;
    return r;
}

/* The headers are in: the record becomes a request in flight (the drain waits for it). */
static void request_start(request *r, server *s, struct MHD_Connection *conn, const char *url,
                          const char *method)
{
    r->s = s;
    r->conn = conn;
    r->model = -1;
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
    request_id(r);
    trace_begin(http_header(r, "traceparent"), &r->trace);
}

static void request_free(request *r)
{
    free(r->body);
    infer_work_free(&r->work);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* ---- the door, the body ---- */

/* The request line and the header lines as libmicrohttpd read them, each with its line end,
 * and the blank line that ends them: the bytes on the wire, whatever the spacing. Known
 * from the first handler call on; 0 if libmicrohttpd ever said otherwise (its pool still
 * bounds the block). */
static size_t header_block_bytes(const request *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    return ci ? ci->header_size : 0;
}

/* MHD_KeyValueIterator: count the Content-Length and Transfer-Encoding headers. */
static enum MHD_Result count_length_headers(void *cls, enum MHD_ValueKind kind, const char *key,
                                            const char *value)
{
    (void)kind;
    (void)value;
    int *n = cls;
    if (!strcasecmp(key, "Content-Length")) n[0]++;
    if (!strcasecmp(key, "Transfer-Encoding")) n[1]++;
    return MHD_YES;
}

/* RFC 9112's framing rules that libmicrohttpd 0.9.75 does not enforce itself. Where the body's
 * end is in doubt the connection is closed after the 400: the bytes that follow could be read
 * as another request (request smuggling behind a proxy that framed them differently). A body
 * on a GET or HEAD is refused before it is read. A control byte in the path, raw or
 * percent-decoded (unescape() turns %00 into DEL, since a NUL would cut the path and
 * "/metrics%00x" would be "/metrics"), is a 400 too. Returns a message, or NULL. */
static const char *bad_framing(request *r, const char *url, const char *method)
{
    int n[2] = {0, 0};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_length_headers, n);
    const char *cl = http_header(r, "Content-Length");
    r->close = n[0] > 1 || n[1] > 0 || (cl && strcmp(cl, "0"));
    if (n[0] > 1) return "more than one Content-Length";
    if (n[0] && n[1]) return "both Content-Length and Transfer-Encoding";
    if (n[1] > 1) return "more than one Transfer-Encoding";
    if (cl && (!*cl || strspn(cl, "0123456789") != strlen(cl))) return "invalid Content-Length";
    if ((!strcmp(method, "GET") || !strcmp(method, "HEAD")) && r->close)
        return "a GET or HEAD request has no body";
    r->close = 0;
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        if (*p < 0x20 || *p == 0x7f) {
            r->close = 1;
            return "control character in the path";
        }
    return NULL;
}

/* MHD_UnescapeCallback: percent-decode in place, as libmicrohttpd does, except that %00
 * becomes DEL (0x7f): the path stays whole and bad_framing sees the control byte. */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    char *w = s;
    for (const char *p = s; *p; p++) {
        if (p[0] == '%' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])) {
            char hex[3] = {p[1], p[2], 0};
            unsigned char c = (unsigned char)strtoul(hex, NULL, 16);
            *w++ = (char)(c ? c : 0x7f);
            p += 2;
        } else {
            *w++ = *p;
        }
    }
    *w = 0;
    return (size_t)(w - s);
}

/* With a metrics listener, /metrics is served there only, and it serves nothing else but
 * /healthz: a scraper's port reaches neither the models nor the admin routes. */
static int side_ok(const request *r)
{
    int scrape = !strcmp(r->rt->endpoint, "metrics");
    if (!r->metrics_side) return !scrape;
    return scrape || !strcmp(r->rt->endpoint, "healthz");
}

/* The headers are in: refuse what they condemn, or get ready for the body. */
static int at_the_door(request *r, const char *url, const char *method)
{
    server *s = r->s;
    const char *bad = bad_framing(r, url, method);
    if (bad) return http_send_error(r, 400, bad);
    if (r->url_bytes > (size_t)s->cfg.max_url_bytes) return http_send_error(r, 414, "URL too long");
    if (header_block_bytes(r) > (size_t)s->cfg.max_header_bytes) {
        snprintf(r->err, sizeof r->err, "request header block larger than max_header_bytes (%lld)",
                 s->cfg.max_header_bytes);
        return http_send_error(r, 431, r->err);
    }
    int unknown;
    r->rt = routes_match(s, url, &r->model, &unknown, &r->version);
    if (!r->rt) return http_send_error(r, 404, "no such route");
    if (s->cfg.metrics_port >= 0 && !side_ok(r)) { /* counted as no route at all: "other" */
        r->rt = NULL;
        r->model = -1;
        return http_send_error(r, 404, "no such route");
    }
    if (!strcmp(method, "OPTIONS") && s->cfg.cors_allow_origins[0] && cors_route(r->rt->endpoint)) {
        r->preflight = 1; /* answered with the (empty) body, like a GET; browsers send no token */
        r->state = ST_BODY;
        return 0;
    }
    /* Before the method and the model: without a token nothing about them is told. */
    const char *refused = auth_check(&s->auth, auth_level(&s->auth, r->rt->endpoint),
                                     http_header(r, "Authorization"));
    if (refused) return http_send_error(r, 401, refused);
    if (!routes_method_ok(r->rt, method)) {
        snprintf(r->err, sizeof r->err, "method %s not allowed, use %s", method, r->rt->method);
        return http_send_error(r, 405, r->err);
    }
    if (unknown)
        return http_send_error(r, 404,
                               unknown == 2   ? "no such model version"
                               : unknown == 3 ? "model is unloaded"
                                              : "no such model");
    if (!strcmp(r->rt->method, "GET")) {
        /* Answered on the next call: a response queued before MHD has seen the (empty)
         * body makes it close the connection, which would defeat keep-alive. */
        r->state = ST_BODY;
        return 0;
    }
    const char *why;
    int code = r->rt->admit ? r->rt->admit(r, &why) : 0;
    if (code) return http_send_error(r, code, why);
    const char *cl = http_header(r, "Content-Length");
    if (cl) {
        long long n;
        if (num_parse_ll(cl, 0, s->cfg.max_body_bytes, &n)) { /* not a count, or too large */
            snprintf(r->err, sizeof r->err, "body larger than max_body_bytes (%lld)",
                     s->cfg.max_body_bytes);
            return http_send_error(r, 413, r->err);
        }
        r->cap = (size_t)n;
    }
    r->state = ST_BODY;
    return 0;
}

/* Append n bytes of body; past max_body_bytes, drop the connection. */
static int add_body(request *r, const char *data, size_t n)
{
    size_t max = (size_t)r->s->cfg.max_body_bytes;
    if (r->overflow) return 0;
    if (r->len + n > max) {
        /* Chunked body past the cap: too late to answer, drop the connection. */
        r->overflow = 1;
        snprintf(r->err, sizeof r->err, "body larger than max_body_bytes");
        return -1;
    }
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 65536;
        while (cap < r->len + n) cap *= 2;
        if (cap > max) cap = max;
        unsigned char *p = realloc(r->body, cap);
        if (!p) return -1;
        r->body = p;
        r->cap = cap;
    } else if (!r->body) {
        r->body = malloc(r->cap ? r->cap : 1);
        if (!r->body) return -1;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    return 0;
}

/* The body is in: the route's handler. */
static int body_done(request *r)
{
    if (r->preflight) {
        char *empty = strdup("");
        return empty ? send_body(r, 204, empty, 0, "text/plain", NULL, NULL) : -1;
    }
    if (strcmp(r->rt->method, "GET") && r->len == 0 && !routes_body_optional(r->rt))
        return http_send_error(r, 400, "empty body");
    metrics_request_bytes(r->s->met, r->model, r->rt->endpoint, r->len);
    return r->rt->handle(r);
}

/* Called again after http_wake resumed the connection: the route's resume handler. */
static int resumed(request *r)
{
    pthread_mutex_lock(&r->mu);
    int woken = r->woken;
    r->suspended = 0;
    pthread_mutex_unlock(&r->mu);
    if (!woken) return 0; /* spurious: cannot happen, but stay safe */
    return r->rt->resume(r);
}

/* MHD_AccessHandlerCallback: one call with the headers, one per piece of body, one at the
 * end, and one more after a resume. */
static enum MHD_Result serve_call(server *s, int metrics_side, struct MHD_Connection *conn,
                                  const char *url, const char *method, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    request *r = *con_cls; /* from request_seen */
    int rc = -1;
    if (!r) return MHD_NO; /* out of memory when the request line came */
    if (!r->s) {
        request_start(r, s, conn, url, method);
        r->metrics_side = metrics_side;
        rc = at_the_door(r, url, method);
    } else if (r->state == ST_ANSWERED) { /* MHD may still offer data: swallow it */
        *upload_size = 0;
        rc = 0;
    } else if (r->state == ST_BODY && *upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        rc = add_body(r, upload, n);
    } else if (r->state == ST_BODY) {
        rc = body_done(r);
    } else if (r->state == ST_WAIT) {
        rc = resumed(r);
    }
    return rc ? MHD_NO : MHD_YES;
}

/* MHD_AccessHandlerCallback of the main listener, and of the metrics listener: which one a
 * request came in on is fixed by the callback, not looked up after the daemon started. */
static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    (void)version;
    return serve_call(cls, 0, conn, url, method, upload, upload_size, con_cls);
}

static enum MHD_Result metrics_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                       const char *method, const char *version, const char *upload,
                                       size_t *upload_size, void **con_cls)
{
    (void)version;
    return serve_call(cls, 1, conn, url, method, upload, upload_size, con_cls);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    server *s = cls;
    request *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    if (!r->s) { /* refused or cut off by libmicrohttpd before the headers were in */
        free(r);
        return;
    }
    double lat = (double)(batcher_now_ns() - r->t0) * 1e-9;
    int code = r->status ? r->status : 499; /* 499: client went away before an answer */
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && r->status && !r->err[0])
        snprintf(r->err, sizeof r->err, "connection closed before the answer was sent");
    log_request_rec rec = {r->id,
                           r->trace.trace_id,
                           r->method,
                           r->path,
                           r->model >= 0 ? s->slots[r->model].name : "",
                           code,
                           r->work.nimg,
                           atomic_load(&r->work.job.max_batch),
                           lat * 1e3,
                           r->status >= 400 || !r->status ? r->err : ""};
    log_request(&s->log, &rec);
    metrics_request(s->met, r->model, r->rt ? r->rt->endpoint : "other", code, lat);
    request_free(r);
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

/* libmicrohttpd 0.9.75's memory for one connection (MHD_OPTION_CONNECTION_MEMORY_LIMIT),
 * sized so that every header block within max_header_bytes and max_url_bytes reaches the
 * handler, which measures it and answers 431 or 414 itself. The pool keeps the block as read
 * (each byte once) and adds a record per header line and per query argument: its struct
 * MHD_HTTP_Header, 56 bytes, rounded up to the pool's 16-byte alignment. A header line is at
 * least 4 bytes ("a:" CRLF) and an argument at least 1 ("&"), and the query lies within the
 * URL, so a block of h bytes whose URL is u bytes makes at most u + (h - u) / 4 records:
 * h + 64 (u + (h - u) / 4) = 17 h + 48 u bytes. Then the answer's status line and headers,
 * written into the same pool. Bounded: 372 KiB with the defaults, 20 MiB at the largest
 * settings; libmicrohttpd zeroes the whole pool between two requests of a connection, so
 * an idle kept-alive connection holds all of it (docs/security.md). */
#define MHD_RECORD_BYTES 64
#define MIN_HEADER_LINE 4
#define ANSWER_HEADERS_BYTES 4096 /* ours are under 2 KiB: an allowed Origin echoed is 1 KiB */

static size_t pool_bytes(const config *c)
{
    size_t h = (size_t)c->max_header_bytes;
    size_t u = (size_t)c->max_url_bytes < h ? (size_t)c->max_url_bytes : h;
    return h + MHD_RECORD_BYTES * (u + (h - u) / MIN_HEADER_LINE) + ANSWER_HEADERS_BYTES;
}

/* The metrics listener's address: its own, or the main one's. */
static const char *metrics_addr(const server *s)
{
    return s->cfg.metrics_listen_address[0] ? s->cfg.metrics_listen_address : s->cfg.listen_address;
}

int http_bind(server *s, char *err, size_t errlen)
{
    s->listen_fd = s->metrics_fd = -1;
    if (s->cfg.tls_cert_file[0] && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        snprintf(err, errlen, "tls_cert_file: this libmicrohttpd was built without TLS support");
        return -1;
    }
    if (tls_load(&s->tls, s->cfg.tls_cert_file, s->cfg.tls_key_file, err, errlen)) return -1;
    s->listen_fd = listener_bind(s->cfg.listen_address, (int)s->cfg.port, (int)s->cfg.reuse_port,
                                 &s->port, err, errlen);
    if (s->listen_fd < 0) return -1;
    if (s->cfg.metrics_port >= 0) {
        s->metrics_fd = listener_bind(metrics_addr(s), (int)s->cfg.metrics_port, 0,
                                      &s->metrics_port, err, errlen);
        if (s->metrics_fd < 0) return -1;
    }
    if (s->cfg.reuse_port && listener_migrates() != 1)
        log_msg(&s->log, LOG_WARN,
                "reuse_port: net.ipv4.tcp_migrate_req is not 1, so connections still queued on "
                "a daemon of this port when it stops are reset (docs/deploy.md)");
    return 0;
}

/* MHD closes the listen socket on some of its failure paths and not on others: close it
 * here only if it is still the same socket. */
static void close_if_same(int fd, const struct stat *was)
{
    struct stat st;
    if (!fstat(fd, &st) && st.st_ino == was->st_ino && st.st_dev == was->st_dev) close(fd);
}

/* The metrics listener: plain HTTP (scrapers stay inside the cluster), one thread, a few
 * connections, no suspended requests. It is not counted in fresh_conns: the drain does not
 * wait for idle scrapers. */
static int metrics_start(server *s, char *err, size_t errlen)
{
    int fd = s->metrics_fd;
    if (listener_listen(fd, metrics_addr(s), s->metrics_port, 0, err, errlen)) return -1;
    struct stat st = {0};
    (void)fstat(fd, &st);
    size_t mem = pool_bytes(&s->cfg);
    s->metrics_fd = -1;
    s->metrics_mhd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC, 0, NULL, NULL,
        metrics_handler, s, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)HTTP_METRICS_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)s->cfg.connection_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem,
        MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_URI_LOG_CALLBACK, request_seen, NULL,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_END);
    if (!s->metrics_mhd) {
        close_if_same(fd, &st);
        snprintf(err, errlen, "cannot serve metrics on %s:%d: libmicrohttpd did not start",
                 metrics_addr(s), s->metrics_port);
        return -1;
    }
    return 0;
}

int http_start(server *s, char *err, size_t errlen)
{
    int fd = s->listen_fd;
    if (listener_listen(fd, s->cfg.listen_address, s->port, (int)s->cfg.reuse_port, err, errlen))
        return -1; /* the socket stays in s->listen_fd for http_stop */
    struct stat st = {0};
    (void)fstat(fd, &st); /* cannot fail on an open socket; if it did, nothing is closed */
    /* poll(), not epoll: libmicrohttpd 0.9.75's MHD_quiesce_daemon races with its own epoll
     * loop on a thread pool (both remove the listen socket; the loser's EPOLL_CTL_DEL fails
     * and MHD_PANIC aborts the process mid-drain). A few hundred connections per thread are
     * cheap to poll. */
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_POLL | MHD_USE_ITC;
    size_t mem = pool_bytes(&s->cfg);
    /* HTTPS: libmicrohttpd copies the PEM into GnuTLS's credentials at start. */
    struct MHD_OptionItem tls[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls.cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls.key},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES},
        {MHD_OPTION_END, 0, NULL},
    };
    if (s->tls.cert) flags |= MHD_USE_TLS;
    s->listen_fd = -1; /* MHD's now; MHD_quiesce_daemon gives it back */
    s->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, handler, s, MHD_OPTION_ARRAY, s->tls.cert ? tls : tls + 3,
        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->http_threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->cfg.connection_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, notify_connection, s, MHD_OPTION_URI_LOG_CALLBACK,
        request_seen, NULL, MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_END);
    if (!s->mhd) {
        close_if_same(fd, &st);
        snprintf(err, errlen, "cannot serve on %s:%d: libmicrohttpd did not start",
                 s->cfg.listen_address, s->port);
        return -1;
    }
    return s->metrics_fd >= 0 ? metrics_start(s, err, errlen) : 0;
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
    if (s->metrics_mhd) MHD_stop_daemon(s->metrics_mhd);
    s->metrics_mhd = NULL;
    if (s->metrics_fd >= 0) close(s->metrics_fd);
    s->metrics_fd = -1;
    tls_free(&s->tls);
}
