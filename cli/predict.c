/* cmd_predict.c - `xbnserve predict` and `xbnserve inspect`: the engine without the daemon.
 *
 * predict prints one JSON document: for each sample its top-k classes and, with --logits,
 * every logit, floats as %.9g so that equal bits print equal text.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/engine.h"
#include "image/image.h"
#include "cli/npy.h"
#include "server/api/v1.h"

#define PREDICT_MAX_IMAGE_BYTES (64u << 20)

typedef struct {
    const char *model;
    int top_k, logits, threads, size;
    char **inputs;
    int n_inputs;
    model_load_opts opts; /* --gemm */
} predict_args;

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv, predict_args *a, int need_inputs)
{
    *a = (predict_args){.top_k = 5, .threads = 1};
    a->inputs = argv;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--model") && i + 1 < argc)
            a->model = argv[++i];
        else if (!strcmp(s, "--top-k") && i + 1 < argc) {
            if (parse_int(argv[++i], 0, 1 << 20, &a->top_k)) return -1;
        } else if (!strcmp(s, "--threads") && i + 1 < argc) {
            if (parse_int(argv[++i], 1, 64, &a->threads)) return -1;
        } else if (!strcmp(s, "--size") && i + 1 < argc) {
            if (parse_int(argv[++i], 1, 8192, &a->size)) return -1;
        } else if (!strcmp(s, "--gemm") && i + 1 < argc) {
            if (engine_gemm_parse(argv[++i], &a->opts.gemm)) return -1;
        } else if (!strcmp(s, "--logits"))
            a->logits = 1;
        else if (s[0] == '-' && s[1])
            return -1;
        else
            a->inputs[a->n_inputs++] = argv[i];
    }
    if (!need_inputs && !a->model && a->n_inputs == 1) a->model = a->inputs[0], a->n_inputs = 0;
    return a->model && (!need_inputs || a->n_inputs) ? 0 : -1;
}

static cJSON *result_json(const model_info *info, const char *input, int item, const float *logits,
                          int top_k, int with_logits)
{
    int c = info->classes, k;
    float *p = malloc((size_t)c * sizeof *p);
    int *idx = malloc((size_t)c * sizeof *idx);
    cJSON *r = cJSON_CreateObject(), *top = cJSON_CreateArray();
    if (!p || !idx || !r || !top) goto fail;
    softmax(logits, c, p);
    k = v1_top_k(p, c, top_k, idx); /* the daemon's order: score desc, index asc */
    cJSON_AddStringToObject(r, "input", input);
    cJSON_AddNumberToObject(r, "item", item);
    for (int i = 0; i < k; i++) {
        char num[32];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToArray(top, e);
        cJSON_AddNumberToObject(e, "index", idx[i]);
        if (info->labels) cJSON_AddStringToObject(e, "label", info->labels[idx[i]]);
        snprintf(num, sizeof num, "%.9g", p[idx[i]]);
        cJSON_AddRawToObject(e, "score", num);
    }
    cJSON_AddItemToObject(r, "top", top);
    top = NULL;
    if (with_logits) {
        cJSON *arr = cJSON_AddArrayToObject(r, "logits");
        for (int i = 0; i < c; i++) {
            char num[32];
            snprintf(num, sizeof num, "%.9g", logits[i]);
            cJSON_AddItemToArray(arr, cJSON_CreateRaw(num));
        }
    }
    free(p);
    free(idx);
    return r;
fail:
    free(p);
    free(idx);
    cJSON_Delete(r);
    cJSON_Delete(top);
    return NULL;
}

/* Load one input into a freshly allocated [n,3,h,w] tensor. */
static int load_input(const char *path, const model_info *info, float **x, int *n, int *h, int *w)
{
    char err[256];
    size_t len = strlen(path);
    *x = NULL;
    if (len > 4 && !strcmp(path + len - 4, ".npy")) {
        int nd;
        long sh[NPY_MAX_DIMS];
        if (npy_read_f32(path, x, &nd, sh, err, sizeof err)) {
            fprintf(stderr, "predict: %s\n", err);
            return -1;
        }
        int off = nd == 4 ? 1 : 0;
        if ((nd != 3 && nd != 4) || sh[off] != 3 || sh[off + 1] < 1 || sh[off + 1] > 8192 ||
            sh[off + 2] < 1 || sh[off + 2] > 8192 || (nd == 4 && (sh[0] < 1 || sh[0] > 4096))) {
            fprintf(stderr, "predict: %s: expected float32 [N,3,H,W] or [3,H,W]\n", path);
            free(*x);
            *x = NULL;
            return -1;
        }
        *n = nd == 4 ? (int)sh[0] : 1, *h = (int)sh[off + 1], *w = (int)sh[off + 2];
        return 0;
    }
    int rc = -1;
    unsigned char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "predict: %s: %s\n", path, strerror(errno));
        return -1;
    }
    buf = malloc(PREDICT_MAX_IMAGE_BYTES);
    size_t got = buf ? fread(buf, 1, PREDICT_MAX_IMAGE_BYTES, f) : 0;
    int s = info->pre.crop;
    image_limits lim = {.max_bytes = PREDICT_MAX_IMAGE_BYTES, .max_pixels = 100000000L};
    if (!buf || ferror(f) || got == PREDICT_MAX_IMAGE_BYTES) {
        fprintf(stderr, "predict: %s: unreadable or larger than %u bytes\n", path,
                PREDICT_MAX_IMAGE_BYTES);
        goto done;
    }
    if (!(*x = malloc((size_t)3 * s * s * sizeof **x))) goto done;
    if (image_to_tensor(buf, got, &info->pre, &lim, *x, err, sizeof err)) {
        fprintf(stderr, "predict: %s: %s\n", path, err);
        free(*x);
        *x = NULL;
        goto done;
    }
    *n = 1, *h = s, *w = s;
    rc = 0;
done:
    free(buf);
    fclose(f);
    return rc;
}

int cmd_predict(int argc, char **argv)
{
    predict_args a;
    char err[512];
    model *m = NULL;
    session *s = NULL;
    float *x = NULL, *logits = NULL;
    cJSON *doc = NULL, *results;
    int rc = 1, sh = 0, sw = 0;
    if (parse_args(argc, argv, &a, 1)) {
        fprintf(stderr, "usage: xbnserve predict --model MODEL [--top-k K] [--logits] "
                        "[--threads T] [--gemm auto|avx512|avx2|blas] INPUT...\n"
                        "  INPUT: an image (JPEG, PNG) or a float32 .npy [N,3,H,W] or [3,H,W]\n");
        return 2;
    }
    if (model_load(a.model, &a.opts, &m, err, sizeof err)) {
        fprintf(stderr, "predict: %s\n", err);
        return 1;
    }
    const model_info *info = model_get_info(m);
    doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "model", a.model);
    results = cJSON_AddArrayToObject(doc, "results");
    for (int i = 0; i < a.n_inputs; i++) {
        int n, h, w;
        if (load_input(a.inputs[i], info, &x, &n, &h, &w)) goto done;
        if (!s || h != sh || w != sw) { /* a session per input size */
            session_free(s);
            s = NULL;
            if (session_new_threads(m, h, w, 16, a.threads, &s, err, sizeof err)) {
                fprintf(stderr, "predict: %s\n", err);
                goto done;
            }
            sh = h, sw = w;
        }
        float *l = realloc(logits, (size_t)n * info->classes * sizeof *l);
        if (!l) goto done;
        logits = l;
        for (int b = 0; b < n; b += 16) {
            int nb = n - b < 16 ? n - b : 16;
            session_run(s, x + (size_t)b * 3 * h * w, nb, logits + (size_t)b * info->classes);
        }
        for (int b = 0; b < n; b++) {
            cJSON *r = result_json(info, a.inputs[i], b, logits + (size_t)b * info->classes,
                                   a.top_k, a.logits);
            if (!r) goto done;
            cJSON_AddItemToArray(results, r);
        }
        free(x);
        x = NULL;
    }
    char *out = cJSON_PrintUnformatted(doc);
    if (!out) goto done;
    puts(out);
    free(out);
    rc = 0;
done:
    free(x);
    free(logits);
    cJSON_Delete(doc);
    session_free(s);
    model_free(m);
    return rc;
}

int cmd_inspect(int argc, char **argv)
{
    predict_args a;
    char err[512];
    model *m = NULL;
    session *s = NULL;
    if (parse_args(argc, argv, &a, 0) || a.n_inputs) {
        fprintf(stderr, "usage: xbnserve inspect [--model] MODEL [--size S] [--gemm KERNELS]\n");
        return 2;
    }
    const char *path = a.model;
    if (model_load(path, &a.opts, &m, err, sizeof err)) {
        fprintf(stderr, "inspect: %s\n", err);
        return 1;
    }
    const model_info *in = model_get_info(m);
    int size = a.size ? a.size : in->input_size;
    if (session_new(m, size, size, 1, &s, err, sizeof err)) {
        fprintf(stderr, "inspect: %s\n", err);
        model_free(m);
        return 1;
    }
    printf("%s: %s %s, width %g, %d classes, GN groups %d, input 3x%dx%d%s\n", path,
           arch_name(in->arch), flavour_name(in->flavour), in->width, in->classes, in->gn_groups,
           size, size, in->untrained ? ", UNTRAINED (generated weights)" : "");
    session_print_plan(s, stdout);
    session_free(s);
    model_free(m);
    return 0;
}
