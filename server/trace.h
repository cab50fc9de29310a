/* trace.h - W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent`
 * request header, and the one the server sends back.
 *
 * A request's `traceparent` is accepted only in the version-00 form the specification
 * defines: "00-" 32 lower-case hex digits of trace id (not all zero) "-" 16 of parent id
 * (not all zero) "-" 2 of flags, 55 bytes in all. Anything else counts as absent, and the
 * server starts a new trace (the specification's rule for a receiver that cannot parse the
 * header). Either way the request gets a span id of its own, and the answer carries
 * `traceparent: 00-<trace id>-<the server's span id>-<flags>`: the same trace, with the
 * server's span as the parent of anything the caller records after it. Flags are the
 * caller's; 00 (not sampled) on a trace the server started.
 */
#ifndef XBN_TRACE_H
#define XBN_TRACE_H

#define TRACE_ID_LEN 32
#define TRACE_SPAN_LEN 16
#define TRACE_HEADER_LEN 55 /* "00-" trace "-" span "-" flags */

typedef struct {
    char trace_id[TRACE_ID_LEN + 1];  /* lower-case hex */
    char span_id[TRACE_SPAN_LEN + 1]; /* the server's span for this request */
    char flags[3];
    int from_client; /* 1 when trace_id came from a valid traceparent */
} trace_ctx;

/* Parse `header` (may be NULL). 0 when it is a valid version-00 traceparent (t's trace id
 * and flags are taken from it), -1 otherwise (t untouched). */
int trace_parse(const char *header, trace_ctx *t);

/* The request's context: the header's trace id and flags when valid, else a new random
 * trace id with flags 00; a new random span id in both cases. */
void trace_begin(const char *header, trace_ctx *t);

/* The `traceparent` value to answer with, into out[TRACE_HEADER_LEN + 1]. */
void trace_header(const trace_ctx *t, char *out);

#endif
