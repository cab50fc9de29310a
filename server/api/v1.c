/* v1.c - see v1.h. */
#include "server/api/v1.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/api/b64.h"
#include "server/api/json_scan.h"

/* The image of a row-form sample: {"b64": ...}, or a named input holding one,
 * {"image": {"b64": ...}}. NULL when it is neither. */
static const cJSON *b64_field(const cJSON *inst)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(inst, "b64");
    if (s) return s;
    if (cJSON_IsObject(inst) && inst->child && !inst->child->next && cJSON_IsObject(inst->child))
        return cJSON_GetObjectItemCaseSensitive(inst->child, "b64");
    return NULL;
}

/* The images of a body: `count` cJSON items from `first` on (siblings, linked by ->next). */
typedef struct {
    const cJSON *first;
    int count;
    int named_ok;   /* a sample may be a named input {"image": {"b64": ...}} (row form) */
    char where[64]; /* what an error calls them: "instances", "inputs" or "inputs.NAME" */
} samples;

/* A tensor of TF Serving's columnar form: a list of {"b64": ...} images, or one such
 * object (one image). */
static int tensor_samples(const cJSON *v, samples *s, char *err, size_t errlen)
{
    if (cJSON_IsArray(v)) {
        s->first = v->child;
        s->count = cJSON_GetArraySize(v);
        return 0;
    }
    if (cJSON_IsObject(v) && cJSON_GetObjectItemCaseSensitive(v, "b64")) {
        s->first = v;
        s->count = 1;
        return 0;
    }
    snprintf(err, errlen, "\"%s\" must be a list of {\"b64\": ...} images or one of them",
             s->where);
    return -1;
}

/* "inputs": a tensor, or a map of input names to tensors. The models take one input, so the
 * map has one name (any: the row form's named inputs are not checked either). */
static int columnar_samples(const cJSON *in, samples *s, char *err, size_t errlen)
{
    snprintf(s->where, sizeof s->where, "inputs");
    if (cJSON_IsObject(in) && !cJSON_GetObjectItemCaseSensitive(in, "b64")) {
        int k = cJSON_GetArraySize(in);
        if (k != 1) {
            snprintf(err, errlen, "\"inputs\" names %d inputs; the model takes one (the image)", k);
            return -1;
        }
        snprintf(s->where, sizeof s->where, "inputs.%.40s", in->child->string);
        in = in->child;
    }
    return tensor_samples(in, s, err, errlen);
}

/* The body's images, from "instances" (row form) or "inputs" (columnar form); *form says
 * which. */
static int find_samples(const cJSON *root, samples *s, v1_form *form, char *err, size_t errlen)
{
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "instances");
    const cJSON *cols = cJSON_GetObjectItemCaseSensitive(root, "inputs");
    *form = cols ? V1_COLUMNAR : V1_ROW;
    if (rows && cols) {
        snprintf(err, errlen,
                 "a body has \"instances\" (row form) or \"inputs\" (columnar form), not both");
        return -1;
    }
    if (cols) return columnar_samples(cols, s, err, errlen);
    if (!cJSON_IsArray(rows)) {
        snprintf(err, errlen,
                 rows ? "JSON body needs an \"instances\" array"
                      : "JSON body needs an \"instances\" array or \"inputs\"");
        return -1;
    }
    snprintf(s->where, sizeof s->where, "instances");
    s->named_ok = 1;
    s->first = rows->child;
    s->count = cJSON_GetArraySize(rows);
    return 0;
}

static int read_top_k(const cJSON *root, long *top_k, char *err, size_t errlen)
{
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(root, "top_k");
    if (!tk) return 0;
    if (!cJSON_IsNumber(tk) || tk->valuedouble < 0 || tk->valuedouble > 1e9 ||
        tk->valuedouble != (double)(long)tk->valuedouble) {
        snprintf(err, errlen, "top_k must be a non-negative integer");
        return -1;
    }
    *top_k = (long)tk->valuedouble;
    return 0;
}

/* Each sample's base64 into out[0, s->count), zeroed before. PARSE_OK or an error status
 * (blobs_free(out, s->count) then frees what was decoded). */
static int decode_samples(const samples *s, blob *out, char *err, size_t errlen)
{
    const cJSON *it = s->first;
    for (int i = 0; i < s->count; i++, it = it->next) {
        const cJSON *b = s->named_ok ? b64_field(it) : cJSON_GetObjectItemCaseSensitive(it, "b64");
        if (!cJSON_IsString(b)) {
            snprintf(err, errlen, "%s[%d] needs a \"b64\" string", s->where, i);
            return PARSE_EINVAL;
        }
        int r = b64_decode_alloc(b->valuestring, strlen(b->valuestring), &out[i].own, &out[i].len);
        if (r == -3) {
            snprintf(err, errlen, "out of memory");
            return PARSE_ENOMEM;
        }
        if (r) {
            snprintf(err, errlen, "%s[%d].b64 is not valid base64", s->where, i);
            return PARSE_EINVAL;
        }
        out[i].data = out[i].own;
    }
    return PARSE_OK;
}

int v1_parse_json(const char *body, size_t len, int max_images, blob **imgs, int *n, long *top_k,
                  v1_form *form, char *err, size_t errlen)
{
    int st = PARSE_EINVAL;
    blob *out = NULL;
    samples s = {0};
    *imgs = NULL;
    *n = 0;
    *top_k = -1;
    *form = V1_ROW;
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
    if (read_top_k(root, top_k, err, errlen) || find_samples(root, &s, form, err, errlen))
        goto fail;
    if (s.count == 0) {
        snprintf(err, errlen, "\"%s\" is empty", s.where);
        goto fail;
    }
    if (s.count > max_images) {
        st = PARSE_ETOOMANY;
        snprintf(err, errlen, "more than %d images in one request", max_images);
        goto fail;
    }
    out = calloc((size_t)s.count, sizeof *out);
    if (!out) {
        st = PARSE_ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    st = decode_samples(&s, out, err, errlen);
    if (st) goto fail;
    cJSON_Delete(root);
    *imgs = out;
    *n = s.count;
    return PARSE_OK;
fail:
    blobs_free(out, out ? s.count : 0);
    cJSON_Delete(root);
    *top_k = -1;
    *form = V1_ROW;
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
              const float *probs, int n, long top_k, v1_form form)
{
    int *idx = malloc((size_t)classes * sizeof *idx);
    if (!idx) {
        b->err = 1;
        return 1;
    }
    sbuf_puts(b, "{\"model\":");
    sbuf_json_str(b, model);
    /* TF Serving answers the row form with "predictions", the columnar form with "outputs"
     * (one output: its value, unnamed). */
    sbuf_printf(b, ",\"untrained\":%s,\"%s\":[", untrained ? "true" : "false",
                form == V1_COLUMNAR ? "outputs" : "predictions");
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
