/* b64.c - see b64.h. */
#include "server/api/b64.h"

#include <stdlib.h>

static int val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

int b64_decode(const char *in, size_t n, unsigned char *out, size_t *outlen)
{
    unsigned acc = 0;
    int bits = 0;
    size_t o = 0, chars = 0, pad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int v = val(c);
        if (v < 0 || pad) return -1; /* not base64, or data after the padding */
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        chars++;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* The last quad holds 0, 2 or 3 data characters; padding, if any, completes it. */
    size_t rem = chars % 4;
    if (rem == 1 || (pad && (rem == 0 || pad != 4 - rem))) return -1;
    *outlen = o;
    return 0;
}

int b64_decode_alloc(const char *in, size_t n, unsigned char **out, size_t *outlen)
{
    *out = malloc(b64_decoded_max(n));
    if (!*out) return -3;
    if (b64_decode(in, n, *out, outlen)) {
        free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}
