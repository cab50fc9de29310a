/* cmd_bench.c - `xbnserve bench`: the engine alone on synthetic input, one JSON line out.
 *
 * Runs forward passes of one batch size for a fixed time after a warm-up and reports images
 * per second, per-batch latency percentiles, effective GFLOP/s and the BLAS kernel in use.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "engine/engine.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int arg_num(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    const char *path = NULL;
    double batch = 1, threads = 1, seconds = 5, size = 0;
    int profile = 0;
    model_load_opts opts = {0};
    for (int i = 1; i < argc; i++) {
        int bad = i + 1 >= argc;
        if (!strcmp(argv[i], "--profile"))
            profile = 1, bad = 0;
        else if (!bad && !strcmp(argv[i], "--model"))
            path = argv[++i];
        else if (!bad && !strcmp(argv[i], "--batch"))
            bad = arg_num(argv[++i], 1, 4096, &batch);
        else if (!bad && !strcmp(argv[i], "--threads"))
            bad = arg_num(argv[++i], 1, 64, &threads);
        else if (!bad && !strcmp(argv[i], "--seconds"))
            bad = arg_num(argv[++i], 0.01, 3600, &seconds);
        else if (!bad && !strcmp(argv[i], "--size"))
            bad = arg_num(argv[++i], 32, 4096, &size);
        else if (!bad && !strcmp(argv[i], "--gemm"))
            bad = engine_gemm_parse(argv[++i], &opts.gemm);
        else
            bad = 1;
        if (bad) {
            fprintf(stderr, "usage: xbnserve bench --model MODEL [--batch B] [--threads T] "
                            "[--seconds S] [--size S] [--gemm auto|avx512|avx2|blas] "
                            "[--profile]\n");
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "bench: --model is required\n");
        return 2;
    }
    char err[512];
    model *m = NULL;
    session *s = NULL;
    float *x = NULL, *logits = NULL;
    double *lat = NULL;
    int rc = 1, b = (int)batch;
    if (model_load(path, &opts, &m, err, sizeof err)) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    const model_info *info = model_get_info(m);
    int sz = size ? (int)size : info->input_size;
    if (session_new_threads(m, sz, sz, b, (int)threads, &s, err, sizeof err)) {
        fprintf(stderr, "bench: %s\n", err);
        goto done;
    }
    size_t n_in = (size_t)b * 3 * sz * sz;
    size_t max_iter = 1000000;
    x = malloc(n_in * sizeof *x);
    logits = malloc((size_t)b * info->classes * sizeof *logits);
    lat = malloc(max_iter * sizeof *lat);
    if (!x || !logits || !lat) goto done;
    unsigned r = 1;
    for (size_t i = 0; i < n_in; i++) r = r * 1103515245u + 12345u, x[i] = (r >> 16) / 32768.0f - 1;
    for (int i = 0; i < 2; i++) session_run(s, x, b, logits); /* warm-up: caches, page faults */
    if (profile && session_profile(s, 1)) goto done;
    size_t it = 0;
    double t0 = now_s(), t = t0;
    while (it < max_iter && (t - t0 < seconds || it < 3)) {
        session_run(s, x, b, logits);
        double t1 = now_s();
        lat[it++] = t1 - t;
        t = t1;
    }
    double total = t - t0;
    qsort(lat, it, sizeof *lat, cmp_double);
    double flops = session_flops_per_sample(s) * b * it / total;
    printf("{\"model\":\"%s\",\"arch\":\"%s\",\"flavour\":\"%s\",\"size\":%d,\"batch\":%d,"
           "\"threads\":%d,\"iterations\":%zu,\"img_per_s\":%.2f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
           "\"gflops\":%.2f,\"gemm\":\"%s\",\"blas_kernel\":\"%s\"}\n",
           path, arch_name(info->arch), flavour_name(info->flavour), sz, b, (int)threads, it,
           b * it / total, lat[it / 2] * 1e3, lat[(size_t)(it * 0.99)] * 1e3, flops / 1e9,
           info->gemm, engine_blas_core());
    if (profile) session_print_profile(s, stderr);
    rc = 0;
done:
    free(x);
    free(logits);
    free(lat);
    session_free(s);
    model_free(m);
    return rc;
}
