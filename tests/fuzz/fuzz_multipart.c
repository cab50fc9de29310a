/* fuzz_multipart.c - libFuzzer driver: multipart/form-data bodies (multipart_parse, with the
 * boundary parser).
 *
 * Input: the Content-Type value up to the first '\n', then the body. Without a '\n' the whole
 * input is the body under a fixed Content-Type. Checks: every part lies inside the body, the
 * part count respects max_parts, top_k is -1 or non-negative, the message is set on failure.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/api/multipart.h"

#define MAX_PARTS 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char ct[512] = "multipart/form-data; boundary=XyZ";
    const uint8_t *nl = memchr(data, '\n', size);
    if (nl) {
        size_t n = (size_t)(nl - data);
        if (n >= sizeof ct) return 0;
        memcpy(ct, data, n);
        ct[n] = 0;
        size -= n + 1;
        data = nl + 1;
    }
    /* An exact-size copy, so ASan sees any read past the end of the body. */
    unsigned char *body = malloc(size ? size : 1);
    if (!body) return 0;
    memcpy(body, data, size);
    blob *parts = NULL;
    int n = -1;
    long top_k = -2;
    char err[256];
    err[0] = 0;
    int rc = multipart_parse(ct, body, size, MAX_PARTS, &parts, &n, &top_k, err, sizeof err);
    if (rc == PARSE_OK) {
        if (!parts || n < 1 || n > MAX_PARTS || top_k < -1) abort();
        for (int i = 0; i < n; i++) {
            if (parts[i].own || parts[i].data < body || parts[i].data + parts[i].len > body + size)
                abort();
        }
    } else {
        if (parts || n != 0 || !err[0]) abort();
        if (rc != PARSE_EINVAL && rc != PARSE_ETOOMANY && rc != PARSE_ENOMEM) abort();
    }
    blobs_free(parts, n > 0 ? n : 0);
    char b[MULTIPART_MAX_BOUNDARY + 1];
    if (multipart_boundary(ct, b, sizeof b) == PARSE_OK && (!b[0] || strlen(b) > 70)) abort();
    free(body);
    return 0;
}
