/* v1.c - see v1.h. */
#include "server/api/v1.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/api/b64.h"
#include "server/api/json_scan.h"

static const cJSON *b64_field(const cJSON *inst)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(inst, "b64");
    if (s) return s;
    /* {"image": {"b64": ...}}: a named input holding the encoded image. */
    if (cJSON_IsObject(inst) && inst->child && !inst->child->next && cJSON_IsObject(inst->child))
        return cJSON_GetObjectItemCaseSensitive(inst->child, "b64");
    return NULL;
}

int v1_parse_json(const char *body, size_t len, int max_images, blob **imgs, int *n, long *top_k,
                  char *err, size_t errlen)
{
    int st = PARSE_EINVAL, count = 0;
    blob *out = NULL;
    *imgs = NULL;
    *n = 0;
    *top_k = -1;
    json_scan_result sc;
    cJSON *root = NULL;
    /* A text the scan cannot read is not JSON either: refuse it before cJSON builds a tree
     * of its every value. */
    if (json_scan(body, len, NULL, NULL, &sc)) {
        snprintf(err, errlen, "body is not a JSON object");
        goto fail;
    }
    if (sc.values > PARSE_MAX_JSON_VALUES(max_images)) {
        st = PARSE_ETOOMANY;
        snprintf(err, errlen, "JSON body has more than %zu values",
                 PARSE_MAX_JSON_VALUES(max_images));
        goto fail;
    }
    root = json_parse_strict(body, len);
    if (!root || !cJSON_IsObject(root)) {
        snprintf(err, errlen, "body is not a JSON object");
        goto fail;
    }
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(root, "top_k");
    if (tk) {
        if (!cJSON_IsNumber(tk) || tk->valuedouble < 0 || tk->valuedouble > 1e9 ||
            tk->valuedouble != (double)(long)tk->valuedouble) {
            snprintf(err, errlen, "top_k must be a non-negative integer");
            goto fail;
        }
        *top_k = (long)tk->valuedouble;
    }
    const cJSON *inst = cJSON_GetObjectItemCaseSensitive(root, "instances");
    if (!cJSON_IsArray(inst)) {
        snprintf(err, errlen, "JSON body needs an \"instances\" array");
        goto fail;
    }
    int total = cJSON_GetArraySize(inst);
    if (total == 0) {
        snprintf(err, errlen, "\"instances\" is empty");
        goto fail;
    }
    if (total > max_images) {
        st = PARSE_ETOOMANY;
        snprintf(err, errlen, "more than %d images in one request", max_images);
        goto fail;
    }
    out = calloc((size_t)total, sizeof *out);
    if (!out) goto nomem;
    const cJSON *it;
    cJSON_ArrayForEach(it, inst)
    {
        const cJSON *s = b64_field(it);
        if (!cJSON_IsString(s)) {
            snprintf(err, errlen, "instances[%d] needs a \"b64\" string", count);
            goto fail;
        }
        int r = b64_decode_alloc(s->valuestring, strlen(s->valuestring), &out[count].own,
                                 &out[count].len);
        if (r == -3) goto nomem;
        if (r) {
            snprintf(err, errlen, "instances[%d].b64 is not valid base64", count);
            goto fail;
        }
        out[count].data = out[count].own;
        count++;
    }
    cJSON_Delete(root);
    *imgs = out;
    *n = count;
    return PARSE_OK;
nomem:
    st = PARSE_ENOMEM;
    snprintf(err, errlen, "out of memory");
fail:
    blobs_free(out, count);
    cJSON_Delete(root);
    return st;
}

int v1_top_k(const float *probs, int classes, long top_k, int *idx)
{
    int k = (top_k <= 0 || top_k > classes) ? classes : (int)top_k;
    for (int i = 0; i < classes; i++) idx[i] = i;
    /* Partial selection sort for the first k positions: k is small in practice, and a
     * stable comparison (score desc, index asc) makes the order deterministic. */
    for (int i = 0; i < k; i++) {
        int best = i;
        for (int j = i + 1; j < classes; j++) {
            float a = probs[idx[j]], b = probs[idx[best]];
            if (a > b || (a == b && idx[j] < idx[best])) best = j;
        }
        int t = idx[i];
        idx[i] = idx[best];
        idx[best] = t;
    }
    return k;
}

int v1_format(sbuf *b, const char *model, int untrained, const char *const *labels, int classes,
              const float *probs, int n, long top_k)
{
    int *idx = malloc((size_t)classes * sizeof *idx);
    if (!idx) {
        b->err = 1;
        return 1;
    }
    sbuf_puts(b, "{\"model\":");
    sbuf_json_str(b, model);
    sbuf_printf(b, ",\"untrained\":%s,\"predictions\":[", untrained ? "true" : "false");
    for (int i = 0; i < n; i++) {
        const float *row = probs + (size_t)i * (size_t)classes;
        int k = v1_top_k(row, classes, top_k, idx);
        sbuf_puts(b, i ? ",[" : "[");
        for (int j = 0; j < k; j++) {
            sbuf_printf(b, "%s{\"index\":%d,\"label\":", j ? "," : "", idx[j]);
            if (labels && labels[idx[j]])
                sbuf_json_str(b, labels[idx[j]]);
            else
                sbuf_printf(b, "\"%d\"", idx[j]);
            sbuf_puts(b, ",\"score\":");
            sbuf_float(b, row[idx[j]]);
            sbuf_puts(b, "}");
        }
        sbuf_puts(b, "]");
    }
    sbuf_puts(b, "]}\n");
    free(idx);
    return b->err;
}
