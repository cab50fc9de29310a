/* b64.h - base64 decoding (RFC 4648, standard and URL-safe alphabets), a pure function.
 *
 * The rule, for the data characters (whitespace ' ', '\t', '\r', '\n' is skipped anywhere):
 *  - padding is optional: "AA" and "AAA" decode like "AA==" and "AAA=";
 *  - when present it is exactly the '=' that complete the last quad: two after a quad of two
 *    data characters ("AA=="), one after a quad of three ("AAA="), never any after a full
 *    quad ("AAAA=", "="), never too few or too many ("AA=", "AA===", "AAA=="), never a
 *    lone data character in the last quad, padded or not ("A", "A===", "AAAAA");
 *  - nothing but whitespace may follow the padding ("AA==AA==" is invalid);
 *  - any other byte outside the alphabet makes the input invalid.
 * The unused low bits of a last partial quad are not checked ("AB==" decodes to one byte).
 * The empty input is valid and decodes to nothing.
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
 * Returns 0, or -1 if the input is not base64 by the rule above. */
int b64_decode(const char *in, size_t n, unsigned char *out, size_t *outlen);

/* Decode into a new malloc'd buffer (*out, free() it). Returns 0, -1 invalid, -3 no memory. */
int b64_decode_alloc(const char *in, size_t n, unsigned char **out, size_t *outlen);

#endif
