/* b64.h - base64 decoding (RFC 4648, standard and URL-safe alphabets), a pure function.
 *
 * Whitespace is skipped and the '=' padding is optional; any other byte outside the
 * alphabet, data after padding, or a dangling single character makes the input invalid.
 */
#ifndef XBN_B64_H
#define XBN_B64_H

#include <stddef.h>

/* Upper bound of the decoded size of n input characters. */
static inline size_t b64_decoded_max(size_t n)
{
    return n / 4 * 3 + 3;
}

/* Decode in[0..n) into out (room for b64_decoded_max(n) bytes); *outlen gets the size.
 * Returns 0, or -1 if the input is not base64. */
int b64_decode(const char *in, size_t n, unsigned char *out, size_t *outlen);

/* Decode into a new malloc'd buffer (*out, free() it). Returns 0, -1 invalid, -3 no memory. */
int b64_decode_alloc(const char *in, size_t n, unsigned char **out, size_t *outlen);

#endif
