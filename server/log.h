/* log.h - the daemon's stderr log: one line per event, text or JSON.
 *
 * A `logger` is a level, a format and a stream; it holds no lock of its own: each line is
 * formatted into a local buffer and written with one fwrite (stderr is unbuffered), so
 * lines from different threads do not interleave.
 */
#ifndef XBN_LOG_H
#define XBN_LOG_H

#include <stdio.h>

typedef struct {
    int level; /* LOG_* from config.h: lines above it are dropped */
    int json;  /* 1: one JSON object per line */
    FILE *out;
} logger;

/* One request, as logged at LOG_INFO when it completes. */
typedef struct {
    const char *id;
    const char *trace_id; /* W3C trace id, 32 hex digits */
    const char *method;
    const char *path;
    const char *model; /* "" if none */
    int status;
    int images;
    int batch; /* largest engine batch the request's images ran in; 0 if none */
    double latency_ms;
    const char *error; /* "" or the error message sent */
} log_request_rec;

void log_msg(const logger *lg, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Log one request. Its strings come from the client: in a text line every byte outside
 * printable ASCII (and space, backslash) is written \xHH, in a JSON line \u00XX. */
void log_request(const logger *lg, const log_request_rec *r);

#endif
