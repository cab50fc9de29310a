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
        sbuf_json_str(&b, r->id);
        sbuf_puts(&b, ",\"trace_id\":");
        sbuf_json_str(&b, r->trace_id);
        sbuf_puts(&b, ",\"method\":");
        sbuf_json_str(&b, r->method);
        sbuf_puts(&b, ",\"path\":");
        sbuf_json_str(&b, r->path);
        sbuf_puts(&b, ",\"model\":");
        sbuf_json_str(&b, r->model);
        sbuf_printf(&b, ",\"status\":%d,\"images\":%d,\"batch\":%d,\"latency_ms\":%.3f", r->status,
                    r->images, r->batch, r->latency_ms);
        if (r->error && r->error[0]) {
            sbuf_puts(&b, ",\"error\":");
            sbuf_json_str(&b, r->error);
        }
        sbuf_puts(&b, "}");
    } else {
        char path[201];
        size_t i = 0;
        for (; r->path[i] && i < sizeof path - 1; i++) {
            unsigned char c = (unsigned char)r->path[i];
            path[i] = (c < 0x21 || c == 0x7f) ? '?' : (char)c;
        }
        path[i] = 0;
        sbuf_printf(&b,
                    "%s info  request id=%s trace_id=%s %s %s model=%s status=%d images=%d "
                    "batch=%d latency_ms=%.3f",
                    ts, r->id, r->trace_id, r->method, path, r->model[0] ? r->model : "-",
                    r->status, r->images, r->batch, r->latency_ms);
        if (r->error && r->error[0]) {
            sbuf_puts(&b, " error=");
            sbuf_json_str(&b, r->error);
        }
    }
    emit(lg, &b);
}
