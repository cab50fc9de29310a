/* fuzz_v2.c - libFuzzer driver: the KServe V2 infer body (v2_parse_infer) and its response
 * builder (v2_format_infer, which echoes the request's "id").
 *
 * Input: one selector byte, then the body. The selector picks the model input side S (4, so
 * a whole FP32 tensor fits in a corpus entry, or 224 as served) and max_images_per_request;
 * with its top bit set, two more bytes (little-endian) give the JSON part's length of a
 * binary-extension body (Inference-Header-Content-Length), clamped to the body.
 * Checks: on success the kind's buffers are set and sized, on failure everything is released
 * and a message set; the response ends in a newline.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/sbuf.h"
#include "server/api/v2.h"

#define CLASSES 3

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int S = data[0] & 1 ? 224 : 4;
    int max_images = 1 + (data[0] >> 1) % 16;
    size_t skip = data[0] & 0x80 ? 3 : 1;
    if (size < skip) return 0;
    size_t len = size - skip, json_len = len;
    if (skip == 3) json_len = (size_t)data[1] | (size_t)data[2] << 8;
    if (json_len > len) json_len = len;
    char *body = malloc(len ? len : 1);
    if (!body) return 0;
    memcpy(body, data + skip, len);
    v2_infer r;
    char err[256];
    err[0] = 0;
    int rc = v2_parse_infer(body, len, json_len, S, CLASSES, max_images, &r, err, sizeof err);
    if (rc == PARSE_OK) {
        if (r.n < 1 || r.n > max_images || !memchr(r.id, 0, sizeof r.id)) abort();
        if (r.kind == V2_FP32 && (!r.fp32 || r.imgs)) abort();
        if (r.kind == V2_BYTES && (!r.imgs || r.fp32)) abort();
        if (r.nouts < 1 || r.nouts > V2_MAX_OUTPUTS) abort();
        for (int i = 0; i < r.nouts; i++)
            if (r.outs[i].classification < 0 || r.outs[i].classification > CLASSES) abort();
        for (int i = 0; r.kind == V2_BYTES && i < r.n; i++) { /* in bounds, or owned */
            const char *d = (const char *)r.imgs[i].data;
            if (!r.imgs[i].own && (d < body + json_len || d + r.imgs[i].len > body + len)) abort();
        }
        if (r.kind == V2_FP32) { /* touch every element: ASan checks the size */
            volatile float sum = 0;
            for (size_t i = 0; i < (size_t)r.n * 3 * S * S; i++) sum += r.fp32[i];
            (void)sum;
        }
        float *logits = calloc((size_t)r.n * CLASSES, sizeof(float));
        float *probs = calloc((size_t)r.n * CLASSES, sizeof(float));
        if (logits && probs) {
            logits[0] = NAN;
            static const char *const labels[CLASSES] = {"a", NULL, "c:d"};
            sbuf b, bin;
            sbuf_init(&b, 1 << 20);
            sbuf_init(&bin, 1 << 20);
            if (v2_format_infer(&b, &bin, "small", "1", &r, logits, probs, CLASSES, labels) == 0 &&
                (b.len == 0 || b.p[b.len - 1] != '\n' || (bin.len > 0) != v2_has_binary(&r)))
                abort();
            sbuf_free(&b);
            sbuf_free(&bin);
        }
        free(logits);
        free(probs);
    } else {
        if (r.fp32 || r.imgs || !err[0]) abort();
    }
    v2_infer_free(&r);
    v2_infer_free(&r); /* idempotent */
    free(body);
    return 0;
}
