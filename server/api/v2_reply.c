/* v2_reply.c - the V2 infer response (see v2.h): each output asked for as an FP32 tensor or
 * as classification strings, in JSON "data" or in the binary part that follows the JSON.
 *
 * Classification strings are "value:index[:label]" as Triton's classification extension
 * prints them (value with six decimals, "%f"), best first, ties to the lower index. In the
 * binary part a BYTES element is a 4-byte little-endian length and its bytes; FP32 values
 * are little-endian IEEE 754, row-major.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/api/v1.h"
#include "server/api/v2.h"

static void put_le32(sbuf *b, uint32_t u)
{
    unsigned char p[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                          (unsigned char)(u >> 24)};
    sbuf_add(b, p, 4);
}

/* One classification string into s, emptied first. */
static void class_str(sbuf *s, const float *row, int idx, const char *const *labels)
{
    s->len = 0;
    sbuf_printf(s, "%f:%d", (double)row[idx], idx);
    if (labels && labels[idx]) {
        sbuf_add(s, ":", 1);
        sbuf_puts(s, labels[idx]);
    }
}

/* The top-K strings of every row: JSON "data" into json, or elements into bin. */
static void classification(sbuf *json, sbuf *bin, const v2_output *o, const float *x, int n,
                           int classes, const char *const *labels)
{
    int *idx = malloc((size_t)classes * sizeof *idx);
    sbuf s;
    sbuf_init(&s, 1 << 20);
    size_t bin0 = bin->len;
    if (!idx) {
        json->err = 1;
        goto done;
    }
    if (!o->binary) sbuf_puts(json, ",\"data\":[");
    for (int i = 0; i < n; i++) {
        const float *row = x + (size_t)i * (size_t)classes;
        v1_top_k(row, classes, o->classification, idx);
        for (int j = 0; j < o->classification; j++) {
            class_str(&s, row, idx[j], labels);
            if (s.err) {
                json->err = 1;
                goto done;
            }
            if (o->binary) {
                put_le32(bin, (uint32_t)s.len);
                sbuf_add(bin, s.p, s.len);
            } else {
                if (i || j) sbuf_add(json, ",", 1);
                sbuf_json_str(json, s.p);
            }
        }
    }
    if (o->binary)
        sbuf_printf(json, ",\"parameters\":{\"binary_data_size\":%zu}", bin->len - bin0);
    else
        sbuf_add(json, "]", 1);
done:
    free(idx);
    sbuf_free(&s);
}

static void fp32(sbuf *json, sbuf *bin, const v2_output *o, const float *x, size_t total)
{
    if (o->binary) {
        for (size_t i = 0; i < total; i++) {
            uint32_t u;
            memcpy(&u, &x[i], 4);
            put_le32(bin, u);
        }
        sbuf_printf(json, ",\"parameters\":{\"binary_data_size\":%zu}", total * 4);
        return;
    }
    sbuf_puts(json, ",\"data\":[");
    for (size_t i = 0; i < total; i++) {
        if (i) sbuf_add(json, ",", 1);
        sbuf_float(json, x[i]);
    }
    sbuf_add(json, "]", 1);
}

int v2_has_binary(const v2_infer *r)
{
    for (int i = 0; i < r->nouts; i++)
        if (r->outs[i].binary) return 1;
    return 0;
}

int v2_format_infer(sbuf *json, sbuf *bin, const char *model, const char *version,
                    const v2_infer *r, const float *logits, const float *probs, int classes,
                    const char *const *labels)
{
    sbuf_puts(json, "{\"model_name\":");
    sbuf_json_str(json, model);
    sbuf_puts(json, ",\"model_version\":");
    sbuf_json_str(json, version);
    if (r->id[0]) {
        sbuf_puts(json, ",\"id\":");
        sbuf_json_str(json, r->id);
    }
    sbuf_puts(json, ",\"outputs\":[");
    for (int i = 0; i < r->nouts; i++) {
        const v2_output *o = &r->outs[i];
        const float *x = o->which == V2_PROBS ? probs : logits;
        if (i) sbuf_add(json, ",", 1);
        sbuf_puts(json, "{\"name\":");
        sbuf_json_str(json, o->which == V2_PROBS ? "probabilities" : "logits");
        if (o->classification) {
            sbuf_printf(json, ",\"datatype\":\"BYTES\",\"shape\":[%d,%d]", r->n, o->classification);
            classification(json, bin, o, x, r->n, classes, labels);
        } else {
            sbuf_printf(json, ",\"datatype\":\"FP32\",\"shape\":[%d,%d]", r->n, classes);
            fp32(json, bin, o, x, (size_t)r->n * (size_t)classes);
        }
        sbuf_add(json, "}", 1);
    }
    sbuf_puts(json, "]}\n");
    return json->err || bin->err;
}
