/* sbuf.h - a growable byte buffer with a hard maximum size, for building responses.
 *
 * Appends never fail loudly: the first failure (allocation, or growing past `max`) sets a
 * sticky `err` flag and later appends do nothing, so a builder checks once at the end.
 * The buffer is always NUL-terminated when non-empty. sbuf_take hands the bytes to the
 * caller (free() them); sbuf_free releases them.
 */
#ifndef XBN_SBUF_H
#define XBN_SBUF_H

#include <stddef.h>

typedef struct {
    char *p;
    size_t len, cap, max;
    int err;
} sbuf;

void sbuf_init(sbuf *b, size_t max);
void sbuf_add(sbuf *b, const void *p, size_t n);
void sbuf_puts(sbuf *b, const char *s);
void sbuf_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append `s` as a JSON string literal, quotes included, escaping as RFC 8259 requires; each
 * byte that is not part of valid UTF-8 becomes U+FFFD, so any echoed string gives valid JSON. */
void sbuf_json_str(sbuf *b, const char *s);
/* Append a float so that strtof gives back the same bits (%.9g); NaN/Inf become null. */
void sbuf_float(sbuf *b, float f);
/* Transfer the bytes to the caller (NUL-terminated, free() them); the sbuf is emptied.
 * Returns NULL if err is set or nothing could be allocated. */
char *sbuf_take(sbuf *b, size_t *len);
void sbuf_free(sbuf *b);

#endif
