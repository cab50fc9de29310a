/* log.c - see log.h. */
#include "server/log.h"

#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "server/config.h"
#include "server/sbuf.h"

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static void stamp(char *buf, size_t n)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, n - k, ".%03dZ", (int)(tv.tv_usec / 1000));
}

/* Client-controlled text for a text log line: every byte outside printable ASCII, the space
 * and the backslash as \xHH, so a request can neither send terminal escapes nor forge
 * fields or lines. At most `max` input bytes. */
static void text_str(sbuf *b, const char *s, size_t max)
{
    for (const unsigned char *p = (const unsigned char *)s; *p && max; p++, max--) {
        if (*p < 0x21 || *p >= 0x7f || *p == '\\')
            sbuf_printf(b, "\\x%02x", *p);
        else
            sbuf_add(b, p, 1);
    }
}

/* A JSON string for a log line: as sbuf_json_str, and DEL and bytes past ASCII as \u00XX,
 * so the line stays valid JSON and inert on a terminal whatever the client sent. */
static void json_str(sbuf *b, const char *s)
{
    sbuf_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            sbuf_add(b, e, 2);
        } else if (*p < 0x20 || *p >= 0x7f) {
            sbuf_printf(b, "\\u%04x", *p);
        } else {
            sbuf_add(b, p, 1);
        }
    }
    sbuf_add(b, "\"", 1);
}

static void emit(const logger *lg, sbuf *b)
{
    sbuf_add(b, "\n", 1);
    if (!b->err) fwrite(b->p, 1, b->len, lg->out);
    sbuf_free(b);
}

void log_msg(const logger *lg, int level, const char *fmt, ...)
{
    if (!lg || level > lg->level) return;
    char ts[40], msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    stamp(ts, sizeof ts);
    sbuf b;
    sbuf_init(&b, 8192);
    if (lg->json) {
        sbuf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_names[level]);
        sbuf_json_str(&b, msg);
        sbuf_puts(&b, "}");
    } else {
        sbuf_printf(&b, "%s %-5s %s", ts, level_names[level], msg);
    }
    emit(lg, &b);
}

void log_request(const logger *lg, const log_request_rec *r)
{
    if (!lg || LOG_INFO > lg->level) return;
    char ts[40];
    stamp(ts, sizeof ts);
    sbuf b;
    sbuf_init(&b, 8192);
    if (lg->json) {
        sbuf_printf(&b, "{\"ts\":\"%s\",\"level\":\"info\",\"msg\":\"request\",\"id\":", ts);
        json_str(&b, r->id);
        sbuf_puts(&b, ",\"trace_id\":");
        json_str(&b, r->trace_id);
        sbuf_puts(&b, ",\"method\":");
        json_str(&b, r->method);
        sbuf_puts(&b, ",\"path\":");
        json_str(&b, r->path);
        sbuf_puts(&b, ",\"model\":");
        json_str(&b, r->model);
        sbuf_printf(&b, ",\"status\":%d,\"images\":%d,\"batch\":%d,\"latency_ms\":%.3f", r->status,
                    r->images, r->batch, r->latency_ms);
        if (r->error && r->error[0]) {
            sbuf_puts(&b, ",\"error\":");
            json_str(&b, r->error);
        }
        sbuf_puts(&b, "}");
    } else {
        sbuf_printf(&b, "%s info  request id=", ts);
        text_str(&b, r->id, 100);
        sbuf_puts(&b, " trace_id=");
        text_str(&b, r->trace_id, 40);
        sbuf_puts(&b, " ");
        text_str(&b, r->method, 100);
        sbuf_puts(&b, " ");
        text_str(&b, r->path, 200);
        sbuf_puts(&b, " model=");
        text_str(&b, r->model[0] ? r->model : "-", 100);
        sbuf_printf(&b, " status=%d images=%d batch=%d latency_ms=%.3f", r->status, r->images,
                    r->batch, r->latency_ms);
        if (r->error && r->error[0]) {
            sbuf_puts(&b, " error=");
            json_str(&b, r->error);
        }
    }
    emit(lg, &b);
}
