/* http.h - the HTTP front end (libmicrohttpd): the daemon, one `request` record per
 * request, and what a route's handlers may do with it.
 *
 * One MHD daemon with an internal thread pool of s->http_threads threads, speaking HTTPS
 * when tls_cert_file is set (tls.h); with metrics_port >= 0 a second one, one thread, plain
 * HTTP, for /metrics and /healthz only. http.c is the only file that speaks to
 * libmicrohttpd. When a request's headers are in, it creates the
 * record, matches the route (routes.h) and refuses at the door what the headers already
 * condemn: URL over max_url_bytes (414: the request target's bytes as sent, query
 * included), request line and headers over max_header_bytes (431: the bytes as read, line
 * ends included), no route (404), wrong method (405, with Allow),
 * unknown model (404), the route's own admission check (infer.c: 503), a Content-Length
 * over max_body_bytes (413). MHD then reads no body and closes. Otherwise the body is
 * accumulated, never past max_body_bytes (a chunked body growing past it closes the
 * connection), and once it is in, the route's handler runs on the same HTTP thread.
 *
 * A handler either answers (http_send_*) or hands the work to another thread and suspends
 * the connection (http_suspend), so the HTTP thread serves other connections meanwhile;
 * whoever finishes the work calls http_wake, and the route's resume handler answers on an
 * HTTP thread. Handlers and http_send_* return 0, or -1 when the connection must be dropped.
 *
 * Ownership: the record lives in MHD's per-connection pointer from the moment the request
 * line is read (MHD's URI log callback creates it) to the request-completed callback, which
 * logs the request, counts it in the metrics and frees the record with everything in it
 * (the body, and the inference state through infer_work_free); a record whose headers never
 * came (libmicrohttpd refused them, or the client left) is freed unlogged. See docs/api.md for the
 * endpoints, docs/architecture.md for the path of one request through these files.
 */
#ifndef XBN_HTTP_H
#define XBN_HTTP_H

#include <pthread.h>
#include <stddef.h>

#include "server/infer.h"
#include "server/sbuf.h"
#include "server/server.h"
#include "server/trace.h"

#define HTTP_RESPONSE_MAX (256u << 20) /* bytes of one response body */
#define HTTP_METRICS_CONNECTIONS 16    /* concurrent connections of the metrics listener */

typedef struct route route; /* routes.h */
typedef struct request request;

struct request {
    server *s;        /* NULL until the headers are in (http.c request_start) */
    size_t url_bytes; /* the request target as sent, query included (max_url_bytes) */
    const route *rt;  /* the matched route; NULL for none */
    int model;        /* index into s->models, or -1 */
    /* The model version the path names (routes_match); 0 when none: the highest served. */
    long long version;
    char id[72];     /* X-Request-Id: the client's when sane, else a fresh one */
    trace_ctx trace; /* W3C traceparent: the caller's trace or a new one (trace.h) */
    char method[12]; /* method and path as received, for the log */
    char path[256];
    long long t0;        /* arrival, CLOCK_MONOTONIC ns (batcher_now_ns) */
    unsigned char *body; /* the body, len bytes; NULL after http_release_body */
    size_t len;
    int status;            /* the answer's HTTP status once queued; 0 before */
    char err[SRV_ERR_MAX]; /* the error message sent, for the log; "" if none */
    infer_work work;       /* the inference routes' state (infer.c) */
    srv_op op;             /* the repository's load and unload (repository.c) */
    const char *csp;       /* the answer's Content-Security-Policy, static; NULL: none */
    /* http.c's own. */
    struct MHD_Connection *conn;
    int state;
    size_t cap;
    int overflow;
    int close;          /* answer with Connection: close (framing in doubt) */
    int preflight;      /* a CORS preflight (OPTIONS), answered 204 once the (empty) body is in */
    int metrics_side;   /* arrived on the metrics listener */
    pthread_mutex_t mu; /* http_suspend against http_wake */
    int woken, suspended;
};

/* Read the HTTPS certificate and key when configured (tls.h; refused when this
 * libmicrohttpd has no TLS) and bind the listening socket (server/listener.h): s->listen_fd
 * and s->port are set, and a taken port fails here, at once, with the holder named; with
 * metrics_port >= 0 the metrics listener's too (s->metrics_fd, s->metrics_port). http_stop
 * closes them and frees the key, also after a failure here. */
int http_bind(server *s, char *err, size_t errlen);
/* Listen on the bound socket and start serving: s->mhd is set, serving HTTPS when a
 * certificate was loaded. With metrics_port >= 0, the metrics listener starts too
 * (s->metrics_mhd): plain HTTP, one thread, GET /metrics and /healthz only, while /metrics
 * on the main listener answers 404. */
int http_start(server *s, char *err, size_t errlen);
/* Stop accepting new connections on the main listener (existing ones are still served).
 * The metrics listener keeps answering, so the drain can be watched. */
void http_quiesce(server *s);
/* Close every connection and stop the threads: the main listener's, then the metrics
 * listener's. Every batcher job must be finished. */
void http_stop(server *s);

/* Queue r's one answer: status `code`, the bytes of b (taken; a failed b becomes a 500
 * "out of memory"). Every answer carries X-Request-Id, traceparent (trace.h) and
 * X-Content-Type-Options: nosniff; a 503 also Retry-After: 1, a 405 the route's Allow, one
 * with r->csp set that policy, one on a CORS route the CORS headers (cors.h), and every
 * answer while draining Connection: close. Sets r->status. */
int http_send(request *r, int code, sbuf *b, const char *content_type);
int http_send_json(request *r, int code, sbuf *b);
/* http_send with one more header, hname: hval (a failed b is answered without it). */
int http_send_with(request *r, int code, sbuf *b, const char *content_type, const char *hname,
                   const char *hval);
/* Answer {"error": msg}; msg is also kept in r->err for the log. */
int http_send_error(request *r, int code, const char *msg);

/* A request header's value, or a query argument's; NULL when absent. Valid until the answer
 * is sent. */
const char *http_header(const request *r, const char *name);
const char *http_query(const request *r, const char *name);

/* Free the body early, once nothing borrows it: a request waiting for compute holds no
 * encoded bytes. Called by the handler, or by the thread it handed the request to (a decode
 * thread): the body is never touched by http.c between the handler and the wake. */
void http_release_body(request *r);

/* Suspend r's connection until http_wake(r). Returns 0 once suspended (the HTTP thread
 * returns from the handler; the route's resume handler answers later), or 1 when http_wake
 * has already been called (answer now). Called at most once per request. */
int http_suspend(request *r);

/* Wake r, from any thread, exactly once, when the work its handler started is finished
 * (possibly before http_suspend). The caller must not touch r afterwards: it may be
 * answered and freed at once. */
void http_wake(request *r);

#endif
