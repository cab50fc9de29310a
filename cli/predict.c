/* predict.c - `xbnserve predict` and `xbnserve inspect`: the engine without the daemon.
 *
 * predict prints one JSON document: for each sample its top-k classes and, with --logits,
 * every logit, floats as %.9g so that equal bits print equal text.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "engine/engine.h"
#include "image/image.h"
#include "cli/npy.h"
#include "server/api/v1.h"

#define PREDICT_MAX_IMAGE_BYTES (64u << 20)
#define PREDICT_MAX_THREADS 64 /* --threads: the engine's team, far above this machine's cores */
#define PREDICT_BATCH 16       /* samples per session_run */
#define INSPECT_MAX_SIDE 8192  /* --size */

typedef struct {
    const char *model, *gemm;
    int top_k, logits, threads;
    char **inputs;
    int n_inputs;
    model_load_opts load;
} predict_args;

static void predict_usage(FILE *f)
{
    fprintf(f, "usage: xbnserve predict --model MODEL [--top-k K] [--logits] [--threads T] "
               "INPUT...\n"
               "  INPUT: an image (JPEG, PNG) or a float32 .npy [N,3,H,W] or [3,H,W]\n"
               "  --top-k K    classes per sample, by score (default 5; 0: all)\n"
               "  --logits     also print every logit\n"
               "  --threads T  engine threads (default 1)\n"
               "  --gemm K     the engine's kernels: auto (default), avx512, avx2, blas\n");
}

/* CLI_GO_ON with *a filled, or the exit code. */
static int predict_parse(int argc, char **argv, predict_args *a)
{
    *a = (predict_args){.top_k = 5, .threads = 1, .inputs = argv};
    const cli_opt opts[] = {
        CLI_OPT_STR("--model", &a->model),
        CLI_OPT_INT("--top-k", &a->top_k, 0, 1 << 20),
        CLI_OPT_SET("--logits", &a->logits, 1),
        CLI_OPT_INT("--threads", &a->threads, 1, PREDICT_MAX_THREADS),
        CLI_OPT_STR("--gemm", &a->gemm),
    };
    const cli_cmd cmd = {"predict", predict_usage, opts, sizeof opts / sizeof opts[0]};
    int rc = cli_args_parse(&cmd, argc, argv, a->inputs, &a->n_inputs);
    if (rc != CLI_GO_ON) return rc;
    if (!a->model) return cli_usage_error(&cmd, "--model is required");
    if (!a->n_inputs) return cli_usage_error(&cmd, "no INPUT given");
    return cli_gemm(&cmd, a->gemm, &a->load);
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
static int load_input(const char *path, const preprocess_spec *pre, float **x, int *n, int *h,
                      int *w)
{
    char err[CLI_ERR_MAX];
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
        *n = nd == 4 ? (int)sh[0] : 1;
        *h = (int)sh[off + 1];
        *w = (int)sh[off + 2];
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
    int s = pre->crop;
    image_limits lim = {.max_bytes = PREDICT_MAX_IMAGE_BYTES, .max_pixels = 100000000L};
    if (!buf || ferror(f) || got == PREDICT_MAX_IMAGE_BYTES) {
        fprintf(stderr, "predict: %s: unreadable or larger than %u bytes\n", path,
                PREDICT_MAX_IMAGE_BYTES);
        goto done;
    }
    if (!(*x = malloc((size_t)3 * s * s * sizeof **x))) goto done;
    if (image_to_tensor(buf, got, pre, &lim, *x, err, sizeof err)) {
        fprintf(stderr, "predict: %s: %s\n", path, err);
        free(*x);
        *x = NULL;
        goto done;
    }
    *n = 1;
    *h = *w = s;
    rc = 0;
done:
    free(buf);
    fclose(f);
    return rc;
}

/* Classify one input (an image or a .npy of n samples) and append its results; *s is the
 * session, remade when the input's size changes. 0 or -1 (message printed). */
static int predict_one(const predict_args *a, const char *input, const model *m,
                       const preprocess_spec *pre, session **s, int hw[2], cJSON *results)
{
    const model_info *info = model_get_info(m);
    char err[CLI_ERR_MAX];
    float *x = NULL, *logits = NULL;
    int n, h, w, rc = -1;
    if (load_input(input, pre, &x, &n, &h, &w)) return -1;
    if (!*s || h != hw[0] || w != hw[1]) { /* a session per input size */
        session_free(*s);
        *s = NULL;
        if (session_new_threads(m, h, w, PREDICT_BATCH, a->threads, s, err, sizeof err)) {
            fprintf(stderr, "predict: %s\n", err);
            goto done;
        }
        hw[0] = h;
        hw[1] = w;
    }
    if (!(logits = malloc((size_t)n * info->classes * sizeof *logits))) goto done;
    for (int b = 0; b < n; b += PREDICT_BATCH) {
        int nb = n - b < PREDICT_BATCH ? n - b : PREDICT_BATCH;
        session_run(*s, x + (size_t)b * 3 * h * w, nb, logits + (size_t)b * info->classes);
    }
    for (int b = 0; b < n; b++) {
        cJSON *r =
            result_json(info, input, b, logits + (size_t)b * info->classes, a->top_k, a->logits);
        if (!r) goto done;
        cJSON_AddItemToArray(results, r);
    }
    rc = 0;
done:
    free(x);
    free(logits);
    return rc;
}

int cmd_predict(int argc, char **argv)
{
    predict_args a;
    model *m = NULL;
    session *s = NULL;
    preprocess_spec pre;
    cJSON *doc = NULL, *results;
    char *out = NULL;
    int rc = predict_parse(argc, argv, &a), hw[2] = {0, 0};
    if (rc != CLI_GO_ON) return rc;
    rc = 1;
    if (cli_load_model("predict", a.model, &a.load, &m, &pre)) return 1;
    if (!(doc = cJSON_CreateObject()) || !cJSON_AddStringToObject(doc, "model", a.model) ||
        !(results = cJSON_AddArrayToObject(doc, "results")))
        goto done;
    for (int i = 0; i < a.n_inputs; i++)
        if (predict_one(&a, a.inputs[i], m, &pre, &s, hw, results)) goto done;
    if (!(out = cJSON_PrintUnformatted(doc))) goto done;
    puts(out);
    rc = 0;
done:
    free(out);
    cJSON_Delete(doc);
    session_free(s);
    model_free(m);
    return rc;
}

static void inspect_usage(FILE *f)
{
    fprintf(f, "usage: xbnserve inspect [--model] MODEL [--size S] [--gemm K]\n"
               "  --size S  plan for S x S inputs (default: the model's input size)\n"
               "  --gemm K  the engine's kernels: auto (default), avx512, avx2, blas\n");
}

int cmd_inspect(int argc, char **argv)
{
    const char *path = NULL, *gemm = NULL;
    model_load_opts load = {0};
    char err[CLI_ERR_MAX], **operands = argv;
    model *m = NULL;
    session *s = NULL;
    preprocess_spec pre;
    int size = 0, n;
    const cli_opt opts[] = {
        CLI_OPT_STR("--model", &path),
        CLI_OPT_INT("--size", &size, 1, INSPECT_MAX_SIDE),
        CLI_OPT_STR("--gemm", &gemm),
    };
    const cli_cmd cmd = {"inspect", inspect_usage, opts, sizeof opts / sizeof opts[0]};
    int rc = cli_args_parse(&cmd, argc, argv, operands, &n);
    if (rc != CLI_GO_ON) return rc;
    if (n > (path ? 0 : 1)) return cli_usage_error(&cmd, "one model at a time");
    if (!path && !(path = n ? operands[0] : NULL)) return cli_usage_error(&cmd, "no MODEL given");
    if ((rc = cli_gemm(&cmd, gemm, &load)) != CLI_GO_ON) return rc;
    if (cli_load_model("inspect", path, &load, &m, &pre)) return 1;
    const model_info *in = model_get_info(m);
    if (!size) size = in->input_size;
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
