/* v2.c - see v2.h: the request side and the model metadata; v2_reply.c builds infer
 * responses. */
#include "server/api/v2.h"

#include <cJSON.h>
#include <stdint.h>
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
        *root = json_parse_strict(text, tlen);
        free(text); /* cJSON keeps copies of what it needs */
    } else {
        *root = json_parse_strict(body, len);
    }
    if (!cJSON_IsObject(*root)) {
        snprintf(err, errlen, "body is not a JSON object");
        return PARSE_EINVAL;
    }
    return PARSE_OK;
}

/* A non-negative integer below 2^53, or -1. */
static long long count_of(const cJSON *v)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740991.0 ||
        v->valuedouble != (double)(long long)v->valuedouble)
        return -1;
    return (long long)v->valuedouble;
}

/* Refuse any member of `params` (absent, or an object) not in the NULL-terminated `known`.
 * `where` names the level for the message. */
static int check_params(const cJSON *params, const char *const *known, const char *where, char *err,
                        size_t errlen)
{
    if (!params) return PARSE_OK;
    if (!cJSON_IsObject(params)) {
        snprintf(err, errlen, "%s \"parameters\" must be an object", where);
        return PARSE_EINVAL;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, params)
    {
        int ok = 0;
        for (const char *const *k = known; *k && !ok; k++) ok = !strcmp(it->string, *k);
        if (!ok) {
            snprintf(err, errlen, "unknown %s parameter '%.64s'", where, it->string);
            return PARSE_EINVAL;
        }
    }
    return PARSE_OK;
}

/* A bool parameter: 0 or 1 into *v when present (else *v unchanged), -1 when not a bool. */
static int bool_param(const cJSON *params, const char *key, int *v, char *err, size_t errlen)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(params, key);
    if (!b) return PARSE_OK;
    if (!cJSON_IsBool(b)) {
        snprintf(err, errlen, "parameter \"%s\" must be true or false", key);
        return PARSE_EINVAL;
    }
    *v = cJSON_IsTrue(b);
    return PARSE_OK;
}

/* One entry of "outputs" into *o; binary defaults to the request's binary_data_output. */
static int parse_output(const cJSON *it, int classes, int binary, v2_output *o, char *err,
                        size_t errlen)
{
    static const char *const known[] = {"binary_data", "classification", NULL};
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
    if (cJSON_IsString(nm) && !strcmp(nm->valuestring, "probabilities")) {
        o->which = V2_PROBS;
    } else if (cJSON_IsString(nm) && !strcmp(nm->valuestring, "logits")) {
        o->which = V2_LOGITS;
    } else {
        snprintf(err, errlen, "unknown output (known: probabilities, logits)");
        return PARSE_EINVAL;
    }
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(it, "parameters");
    int st = check_params(params, known, "output", err, errlen);
    o->binary = binary;
    if (!st) st = bool_param(params, "binary_data", &o->binary, err, errlen);
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(params, "classification");
    if (!st && k) {
        long long K = count_of(k);
        if (K < 1 || K > classes) {
            snprintf(err, errlen, "output \"classification\" must be an integer from 1 to %d",
                     classes);
            return PARSE_EINVAL;
        }
        o->classification = (int)K;
    }
    return st;
}

/* "id", the request's "parameters" and "outputs". */
static int parse_id_outputs(const cJSON *root, int classes, v2_infer *out, char *err, size_t errlen)
{
    static const char *const known[] = {"binary_data_output", NULL};
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
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "parameters");
    int binary = 0;
    int st = check_params(params, known, "request", err, errlen);
    if (!st) st = bool_param(params, "binary_data_output", &binary, err, errlen);
    if (st) return st;
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(root, "outputs"), *it;
    if (outs && !cJSON_IsArray(outs)) {
        snprintf(err, errlen, "\"outputs\" must be an array");
        return PARSE_EINVAL;
    }
    cJSON_ArrayForEach(it, outs)
    {
        if (out->nouts == V2_MAX_OUTPUTS) {
            snprintf(err, errlen, "an output is asked for twice");
            return PARSE_EINVAL;
        }
        v2_output *o = &out->outs[out->nouts];
        if ((st = parse_output(it, classes, binary, o, err, errlen))) return st;
        if (out->nouts && out->outs[0].which == o->which) {
            snprintf(err, errlen, "an output is asked for twice");
            return PARSE_EINVAL;
        }
        out->nouts++;
    }
    if (!out->nouts) out->outs[out->nouts++] = (v2_output){V2_PROBS, binary, 0};
    return PARSE_OK;
}

/* The one input tensor's shape, datatype and binary_data_size (-1: its data is JSON); sets
 * out->n. */
static int parse_input(const cJSON *root, int found, int max_images, long d[4], int *nd,
                       const char **datatype, long long *bin_size, v2_infer *out, char *err,
                       size_t errlen)
{
    static const char *const known[] = {"binary_data_size", NULL};
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(root, "inputs");
    if (!cJSON_IsArray(ins) || cJSON_GetArraySize(ins) != 1) {
        snprintf(err, errlen, "\"inputs\" must be an array of exactly one tensor");
        return PARSE_EINVAL;
    }
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(ins->child, "datatype");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(ins->child, "parameters");
    if (check_params(params, known, "input", err, errlen)) return PARSE_EINVAL;
    const cJSON *bs = cJSON_GetObjectItemCaseSensitive(params, "binary_data_size");
    *bin_size = bs ? count_of(bs) : -1;
    if (bs && *bin_size < 0) {
        snprintf(err, errlen, "input \"binary_data_size\" must be a non-negative integer");
        return PARSE_EINVAL;
    }
    if (bs && cJSON_GetObjectItemCaseSensitive(ins->child, "data")) {
        snprintf(err, errlen, "input has both \"data\" and \"binary_data_size\"");
        return PARSE_EINVAL;
    }
    if (get_shape(cJSON_GetObjectItemCaseSensitive(ins->child, "shape"), d, nd)) {
        snprintf(err, errlen, "input \"shape\" must be an array of non-negative integers");
        return PARSE_EINVAL;
    }
    if (!cJSON_IsString(dt) || (!found && !bs)) {
        snprintf(err, errlen,
                 "input needs a \"datatype\" string and a \"data\" array or \"binary_data_size\"");
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

static int fp32_shape_ok(int S, const long d[4], int nd, char *err, size_t errlen)
{
    if (nd == 4 && d[1] == 3 && d[2] == S && d[3] == S) return 1;
    snprintf(err, errlen, "FP32 input shape must be [N,3,%d,%d]", S, S);
    return 0;
}

/* FP32 data, shape [N,3,S,S], straight into out->fp32. */
static int read_fp32(const char *data, size_t len, int S, const long d[4], int nd, v2_infer *out,
                     char *err, size_t errlen)
{
    out->kind = V2_FP32;
    if (!fp32_shape_ok(S, d, nd, err, errlen)) return PARSE_EINVAL;
    size_t want = (size_t)out->n * 3 * (size_t)S * (size_t)S, got;
    if (!(out->fp32 = malloc(want * sizeof(float)))) return nomem(err, errlen);
    if (json_numbers(data, len, FP32_MAX_DEPTH, out->fp32, want, &got) || got != want) {
        snprintf(err, errlen,
                 "FP32 data must be an array of exactly %zu numbers within float range", want);
        return PARSE_EINVAL;
    }
    return PARSE_OK;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* FP32 binary data: len bytes of little-endian floats, row-major [N,3,S,S]. */
static int read_fp32_bin(const unsigned char *data, size_t len, int S, const long d[4], int nd,
                         v2_infer *out, char *err, size_t errlen)
{
    out->kind = V2_FP32;
    if (!fp32_shape_ok(S, d, nd, err, errlen)) return PARSE_EINVAL;
    size_t want = (size_t)out->n * 3 * (size_t)S * (size_t)S;
    if (len != want * 4) {
        snprintf(err, errlen,
                 "FP32 input of shape [%d,3,%d,%d] needs binary_data_size %zu, not %zu", out->n, S,
                 S, want * 4, len);
        return PARSE_EINVAL;
    }
    if (!(out->fp32 = malloc(want * sizeof(float)))) return nomem(err, errlen);
    for (size_t i = 0; i < want; i++) {
        uint32_t u = le32(data + 4 * i);
        memcpy(&out->fp32[i], &u, 4);
    }
    return PARSE_OK;
}

static int bytes_shape_ok(const long d[4], int nd, char *err, size_t errlen)
{
    if (nd == 1 || (nd == 2 && d[1] == 1)) return 1;
    snprintf(err, errlen, "BYTES input must have shape [N] and N data elements");
    return 0;
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
    cJSON *bytes = json_parse_strict(data, len);
    const cJSON *it;
    if (!bytes_shape_ok(d, nd, err, errlen)) goto done;
    if (!cJSON_IsArray(bytes) || cJSON_GetArraySize(bytes) != out->n) {
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

/* BYTES binary data: N elements, each a 4-byte little-endian length and that many bytes,
 * filling len exactly; out->imgs borrow them. */
static int read_bytes_bin(const unsigned char *data, size_t len, const long d[4], int nd,
                          v2_infer *out, char *err, size_t errlen)
{
    out->kind = V2_BYTES;
    if (!bytes_shape_ok(d, nd, err, errlen)) return PARSE_EINVAL;
    out->imgs = calloc((size_t)out->n, sizeof *out->imgs);
    if (!out->imgs) return nomem(err, errlen);
    size_t at = 0;
    for (int i = 0; i < out->n; i++) {
        size_t n = len - at >= 4 ? le32(data + at) : 0;
        if (len - at < 4 || n > len - at - 4) {
            snprintf(err, errlen,
                     "BYTES binary data ends inside element %d (each element is a 4-byte "
                     "little-endian length and that many bytes)",
                     i);
            return PARSE_EINVAL;
        }
        out->imgs[i] = (blob){.data = data + at + 4, .len = n};
        at += 4 + n;
    }
    if (at != len) {
        snprintf(err, errlen, "BYTES binary data has %zu bytes after its %d elements", len - at,
                 out->n);
        return PARSE_EINVAL;
    }
    return PARSE_OK;
}

int v2_parse_infer(const char *body, size_t len, size_t json_len, int S, int classes,
                   int max_images, v2_infer *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t limit = PARSE_MAX_JSON_VALUES(max_images);
    json_scan_result sc;
    cJSON *root = NULL;
    long d[4];
    int nd = 0;
    const char *dt = NULL;
    long long bin_size = -1;
    if (json_len > len) {
        snprintf(err, errlen, "the JSON header is longer than the body");
        return PARSE_EINVAL;
    }
    const unsigned char *bin = (const unsigned char *)body + json_len;
    size_t blen = len - json_len;
    int st = parse_outline(body, json_len, limit, &sc, &root, err, errlen);
    if (!st) st = parse_id_outputs(root, classes, out, err, errlen);
    if (!st) st = parse_input(root, sc.found, max_images, d, &nd, &dt, &bin_size, out, err, errlen);
    if (!st && (unsigned long long)(bin_size < 0 ? 0 : bin_size) != blen) {
        snprintf(err, errlen,
                 "the binary part of the body (after Inference-Header-Content-Length bytes of "
                 "JSON) has %zu bytes, but the inputs' binary_data_size add up to %lld",
                 blen, bin_size < 0 ? 0 : bin_size);
        st = PARSE_EINVAL;
    }
    int fp32 = !st && !strcmp(dt, "FP32"), bytes = !st && !strcmp(dt, "BYTES");
    if (fp32 && bin_size >= 0) {
        st = read_fp32_bin(bin, blen, S, d, nd, out, err, errlen);
    } else if (fp32) {
        st = read_fp32(body + sc.lo, sc.hi - sc.lo, S, d, nd, out, err, errlen);
    } else if (bytes && bin_size >= 0) {
        st = read_bytes_bin(bin, blen, d, nd, out, err, errlen);
    } else if (bytes) {
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

int v2_format_model(sbuf *b, const char *model, const char *versions, int S, int classes,
                    const char *arch, const char *flavour, int untrained)
{
    sbuf_puts(b, "{\"name\":");
    sbuf_json_str(b, model);
    sbuf_printf(b,
                ",\"versions\":%s,\"platform\":\"xbnserve\",\"parameters\":{\"arch\":", versions);
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
