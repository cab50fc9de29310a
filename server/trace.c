/* trace.c - see trace.h. Random ids come from getrandom(2): no state shared between the
 * HTTP threads that call this. */
#include "server/trace.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static int lower_hex(const char *p, int n, int *nonzero)
{
    *nonzero = 0;
    for (int i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return 0;
        if (c != '0') *nonzero = 1;
    }
    return 1;
}

int trace_parse(const char *h, trace_ctx *t)
{
    int nz_trace, nz_parent, nz;
    if (!h || strlen(h) != TRACE_HEADER_LEN || strncmp(h, "00-", 3) || h[35] != '-' || h[52] != '-')
        return -1;
    if (!lower_hex(h + 3, TRACE_ID_LEN, &nz_trace) || !nz_trace ||
        !lower_hex(h + 36, TRACE_SPAN_LEN, &nz_parent) || !nz_parent || !lower_hex(h + 53, 2, &nz))
        return -1;
    memcpy(t->trace_id, h + 3, TRACE_ID_LEN);
    t->trace_id[TRACE_ID_LEN] = 0;
    memcpy(t->flags, h + 53, 2);
    t->flags[2] = 0;
    t->from_client = 1;
    return 0;
}

/* n random bytes as 2n lower-case hex digits, never all zero. */
static void random_hex(char *out, int n)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    int nonzero = 0;
    if (getrandom(b, (size_t)n, 0) != (ssize_t)n) { /* cannot really fail for <= 256 bytes */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        unsigned long long x =
            (unsigned long long)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (unsigned long long)ts.tv_sec;
        for (int i = 0; i < n; i++) b[i] = (unsigned char)(x >> (8 * (i % 8))) ^ (unsigned char)i;
    }
    for (int i = 0; i < n; i++) nonzero |= b[i];
    if (!nonzero) b[n - 1] = 1;
    for (int i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = 0;
}

void trace_begin(const char *header, trace_ctx *t)
{
    if (trace_parse(header, t)) {
        random_hex(t->trace_id, TRACE_ID_LEN / 2);
        snprintf(t->flags, sizeof t->flags, "00");
        t->from_client = 0;
    }
    random_hex(t->span_id, TRACE_SPAN_LEN / 2);
}

void trace_header(const trace_ctx *t, char *out)
{
    snprintf(out, TRACE_HEADER_LEN + 1, "00-%s-%s-%s", t->trace_id, t->span_id, t->flags);
}
