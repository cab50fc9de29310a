/* v2.c - see v2.h. */
#include "server/api/v2.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/api/b64.h"
#include "server/api/json_scan.h"

/* Arrays nested in FP32 "data": [N][3][S][S] needs 4. */
#define FP32_MAX_DEPTH 8

static int get_shape(const cJSON *shape, long dims[4], int *nd)
{
    if (!cJSON_IsArray(shape)) return -1;
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, shape)
    {
        if (k == 4 || !cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 1e9 ||
            it->valuedouble != (double)(long)it->valuedouble)
            return -1;
        dims[k++] = (long)it->valuedouble;
    }
    *nd = k;
    return 0;
}

static int nomem(char *err, size_t errlen)
{
    snprintf(err, errlen, "out of memory");
    return PARSE_ENOMEM;
}

/* Count the body's values and parse it with inputs[0].data cut out of the text cJSON sees
 * (replaced by []): *sc locates that data in body, to be read on its own. */
static int parse_outline(const char *body, size_t len, size_t limit, json_scan_result *sc,
                         cJSON **root, char *err, size_t errlen)
{
    if (json_scan(body, len, "inputs", "data", sc)) {
        snprintf(err, errlen, "body is not a JSON object");
        return PARSE_EINVAL;
    }
    if (sc->values > limit) {
        snprintf(err, errlen, "JSON body has more than %zu values besides the input's data", limit);
        return PARSE_ETOOMANY;
    }
    if (sc->found) {
        size_t tlen = len - (sc->hi - sc->lo) + 2;
        char *text = malloc(tlen);
        if (!text) return nomem(err, errlen);
        memcpy(text, body, sc->lo);
        memcpy(text + sc->lo, "[]", 2);
        memcpy(text + sc->lo + 2, body + sc->hi, len - sc->hi);
        *root = cJSON_ParseWithLength(text, tlen);
        free(text); /* cJSON keeps copies of what it needs */
    } else {
        *root = cJSON_ParseWithLength(body, len);
    }
    if (!cJSON_IsObject(*root)) {
        snprintf(err, errlen, "body is not a JSON object");
        return PARSE_EINVAL;
    }
    return PARSE_OK;
}

/* "id" and "outputs". */
static int parse_id_outputs(const cJSON *root, v2_infer *out, char *err, size_t errlen)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (id) {
        size_t n = cJSON_IsString(id) ? strlen(id->valuestring) : sizeof out->id;
        if (n >= sizeof out->id) {
            snprintf(err, errlen, "\"id\" must be a string of at most %zu bytes",
                     sizeof out->id - 1);
            return PARSE_EINVAL;
        }
        memcpy(out->id, id->valuestring, n + 1);
    }
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(root, "outputs"), *it;
    if (outs && !cJSON_IsArray(outs)) {
        snprintf(err, errlen, "\"outputs\" must be an array");
        return PARSE_EINVAL;
    }
    cJSON_ArrayForEach(it, outs)
    {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
        if (cJSON_IsString(nm) && !strcmp(nm->valuestring, "probabilities")) {
            out->want_probs = 1;
        } else if (cJSON_IsString(nm) && !strcmp(nm->valuestring, "logits")) {
            out->want_logits = 1;
        } else {
            snprintf(err, errlen, "unknown output (known: probabilities, logits)");
            return PARSE_EINVAL;
        }
    }
    if (!out->want_probs && !out->want_logits) out->want_probs = 1;
    return PARSE_OK;
}

/* The one input tensor's shape and datatype; sets out->n. */
static int parse_input(const cJSON *root, int found, int max_images, long d[4], int *nd,
                       const char **datatype, v2_infer *out, char *err, size_t errlen)
{
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(root, "inputs");
    if (!cJSON_IsArray(ins) || cJSON_GetArraySize(ins) != 1) {
        snprintf(err, errlen, "\"inputs\" must be an array of exactly one tensor");
        return PARSE_EINVAL;
    }
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(ins->child, "datatype");
    if (get_shape(cJSON_GetObjectItemCaseSensitive(ins->child, "shape"), d, nd)) {
        snprintf(err, errlen, "input \"shape\" must be an array of non-negative integers");
        return PARSE_EINVAL;
    }
    if (!cJSON_IsString(dt) || !found) {
        snprintf(err, errlen, "input needs a \"datatype\" string and a \"data\" array");
        return PARSE_EINVAL;
    }
    if (*nd < 1 || d[0] < 1) {
        snprintf(err, errlen, "input shape must start with a batch size >= 1");
        return PARSE_EINVAL;
    }
    if (d[0] > max_images) {
        snprintf(err, errlen, "more than %d images in one request", max_images);
        return PARSE_ETOOMANY;
    }
    out->n = (int)d[0];
    *datatype = dt->valuestring;
    return PARSE_OK;
}

/* FP32 data, shape [N,3,S,S], straight into out->fp32. */
static int read_fp32(const char *data, size_t len, int S, const long d[4], int nd, v2_infer *out,
                     char *err, size_t errlen)
{
    out->kind = V2_FP32;
    if (nd != 4 || d[1] != 3 || d[2] != S || d[3] != S) {
        snprintf(err, errlen, "FP32 input shape must be [N,3,%d,%d]", S, S);
        return PARSE_EINVAL;
    }
    size_t want = (size_t)out->n * 3 * (size_t)S * (size_t)S, got;
    if (!(out->fp32 = malloc(want * sizeof(float)))) return nomem(err, errlen);
    if (json_numbers(data, len, FP32_MAX_DEPTH, out->fp32, want, &got) || got != want) {
        snprintf(err, errlen,
                 "FP32 data must be an array of exactly %zu numbers within float range", want);
        return PARSE_EINVAL;
    }
    return PARSE_OK;
}

/* BYTES data, shape [N] (or [N,1]): N base64 strings, counted before cJSON parses them,
 * decoded into out->imgs. */
static int read_bytes(const char *data, size_t len, size_t limit, const long d[4], int nd,
                      v2_infer *out, char *err, size_t errlen)
{
    out->kind = V2_BYTES;
    json_scan_result ds;
    if (json_scan(data, len, NULL, NULL, &ds) || ds.values > limit) {
        snprintf(err, errlen, "BYTES data must be an array of N base64 strings");
        return PARSE_EINVAL;
    }
    int st = PARSE_EINVAL, i = 0;
    cJSON *bytes = cJSON_ParseWithLength(data, len);
    const cJSON *it;
    if (!cJSON_IsArray(bytes) || !(nd == 1 || (nd == 2 && d[1] == 1)) ||
        cJSON_GetArraySize(bytes) != out->n) {
        snprintf(err, errlen, "BYTES input must have shape [N] and N data elements");
        goto done;
    }
    out->imgs = calloc((size_t)out->n, sizeof *out->imgs);
    if (!out->imgs) {
        st = nomem(err, errlen);
        goto done;
    }
    cJSON_ArrayForEach(it, bytes)
    {
        const cJSON *s = cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, "b64") : it;
        if (!cJSON_IsString(s)) {
            snprintf(err, errlen, "BYTES element %d must be a base64 string", i);
            goto done;
        }
        blob *b = &out->imgs[i];
        int rc = b64_decode_alloc(s->valuestring, strlen(s->valuestring), &b->own, &b->len);
        if (rc == -3) {
            st = nomem(err, errlen);
            goto done;
        }
        if (rc) {
            snprintf(err, errlen, "BYTES element %d is not valid base64", i);
            goto done;
        }
        b->data = b->own;
        i++;
    }
    st = PARSE_OK;
done:
    cJSON_Delete(bytes);
    return st;
}

int v2_parse_infer(const char *body, size_t len, int S, int max_images, v2_infer *out, char *err,
                   size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t limit = PARSE_MAX_JSON_VALUES(max_images);
    json_scan_result sc;
    cJSON *root = NULL;
    long d[4];
    int nd = 0;
    const char *dt = NULL;
    int st = parse_outline(body, len, limit, &sc, &root, err, errlen);
    if (!st) st = parse_id_outputs(root, out, err, errlen);
    if (!st) st = parse_input(root, sc.found, max_images, d, &nd, &dt, out, err, errlen);
    if (!st && !strcmp(dt, "FP32")) {
        st = read_fp32(body + sc.lo, sc.hi - sc.lo, S, d, nd, out, err, errlen);
    } else if (!st && !strcmp(dt, "BYTES")) {
        st = read_bytes(body + sc.lo, sc.hi - sc.lo, limit, d, nd, out, err, errlen);
    } else if (!st) {
        snprintf(err, errlen, "datatype must be FP32 or BYTES");
        st = PARSE_EINVAL;
    }
    cJSON_Delete(root);
    if (st) v2_infer_free(out);
    return st;
}

void v2_infer_free(v2_infer *r)
{
    if (!r) return;
    free(r->fp32);
    blobs_free(r->imgs, r->kind == V2_BYTES ? r->n : 0);
    r->fp32 = NULL;
    r->imgs = NULL;
}

static void tensor(sbuf *b, const char *name, const float *x, int n, int classes)
{
    sbuf_puts(b, "{\"name\":");
    sbuf_json_str(b, name);
    sbuf_printf(b, ",\"datatype\":\"FP32\",\"shape\":[%d,%d],\"data\":[", n, classes);
    size_t total = (size_t)n * (size_t)classes;
    for (size_t i = 0; i < total; i++) {
        if (i) sbuf_add(b, ",", 1);
        sbuf_float(b, x[i]);
    }
    sbuf_puts(b, "]}");
}

int v2_format_infer(sbuf *b, const char *model, const v2_infer *r, const float *logits,
                    const float *probs, int classes)
{
    sbuf_puts(b, "{\"model_name\":");
    sbuf_json_str(b, model);
    sbuf_puts(b, ",\"model_version\":\"1\"");
    if (r->id[0]) {
        sbuf_puts(b, ",\"id\":");
        sbuf_json_str(b, r->id);
    }
    sbuf_puts(b, ",\"outputs\":[");
    if (r->want_probs) tensor(b, "probabilities", probs, r->n, classes);
    if (r->want_probs && r->want_logits) sbuf_add(b, ",", 1);
    if (r->want_logits) tensor(b, "logits", logits, r->n, classes);
    sbuf_puts(b, "]}\n");
    return b->err;
}

int v2_format_model(sbuf *b, const char *model, int S, int classes, const char *arch,
                    const char *flavour, int untrained)
{
    sbuf_puts(b, "{\"name\":");
    sbuf_json_str(b, model);
    sbuf_puts(b, ",\"versions\":[\"1\"],\"platform\":\"xbnserve\",\"parameters\":{\"arch\":");
    sbuf_json_str(b, arch);
    sbuf_puts(b, ",\"flavour\":");
    sbuf_json_str(b, flavour);
    sbuf_printf(b, ",\"untrained\":%s},", untrained ? "true" : "false");
    sbuf_printf(b,
                "\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[-1,3,%d,%d]},"
                "{\"name\":\"image\",\"datatype\":\"BYTES\",\"shape\":[-1]}],"
                "\"outputs\":[{\"name\":\"probabilities\",\"datatype\":\"FP32\",\"shape\":[-1,%d]},"
                "{\"name\":\"logits\",\"datatype\":\"FP32\",\"shape\":[-1,%d]}]}\n",
                S, S, classes, classes);
    return b->err;
}
