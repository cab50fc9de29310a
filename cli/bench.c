/* bench.c - `xbnserve bench`: the engine alone on synthetic input, one JSON line out.
 *
 * Runs forward passes of one batch size for a fixed time after a warm-up and reports images
 * per second, per-batch latency percentiles, effective GFLOP/s and the BLAS kernel in use.
 * With --slices N the time comes in N slices, each started by a line on stdin, so that a
 * harness can alternate two loaded, warm engines slice by slice (bench/run.py): the machine's
 * drift then reaches both alike.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "engine/engine.h"

#define BENCH_MAX_BATCH 4096   /* --batch */
#define BENCH_MAX_THREADS 64   /* --threads: far above this machine's cores */
#define BENCH_MAX_SIDE 4096    /* --size: the engine's own input limit */
#define BENCH_MAX_ITER 1000000 /* batches measured at most: the latency array's length */
#define BENCH_MAX_SLICES 1000  /* --slices */

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

typedef struct {
    const char *model, *gemm;
    double seconds;
    int batch, threads, size, profile, slices;
    model_load_opts load;
} bench_args;

static void bench_usage(FILE *f)
{
    fprintf(f, "usage: xbnserve bench --model MODEL [--batch B] [--threads T] [--seconds S] "
               "[--size S] [--gemm K] [--profile] [--slices N]\n"
               "  --batch B    samples per forward pass (default 1)\n"
               "  --threads T  engine threads (default 1)\n"
               "  --seconds S  how long to measure, after a warm-up (default 5)\n"
               "  --size S     input side (default: the model's input size)\n"
               "  --gemm K     the engine's kernels: auto (default), avx512, avx2, blas\n"
               "  --profile    per-op times on stderr\n"
               "  --slices N   print {\"ready\":true} after the warm-up, then measure N slices of\n"
               "               S/N seconds, each when a line arrives on stdin and each answered\n"
               "               with a {\"slice\":...} line; the last line sums them all\n");
}

/* CLI_GO_ON with *a filled, or the exit code. */
static int bench_parse(int argc, char **argv, bench_args *a)
{
    int n;
    *a = (bench_args){.seconds = 5, .batch = 1, .threads = 1};
    const cli_opt opts[] = {
        CLI_OPT_STR("--model", &a->model),
        CLI_OPT_INT("--batch", &a->batch, 1, BENCH_MAX_BATCH),
        CLI_OPT_INT("--threads", &a->threads, 1, BENCH_MAX_THREADS),
        CLI_OPT_DOUBLE("--seconds", &a->seconds, 0.01, 3600),
        CLI_OPT_INT("--size", &a->size, 32, BENCH_MAX_SIDE),
        CLI_OPT_SET("--profile", &a->profile, 1),
        CLI_OPT_STR("--gemm", &a->gemm),
        CLI_OPT_INT("--slices", &a->slices, 1, BENCH_MAX_SLICES),
    };
    const cli_cmd cmd = {"bench", bench_usage, opts, sizeof opts / sizeof opts[0]};
    int rc = cli_args_parse(&cmd, argc, argv, argv, &n);
    if (rc != CLI_GO_ON) return rc;
    if (n) return cli_usage_error(&cmd, "unexpected argument '%.60s'", argv[0]);
    if (!a->model) return cli_usage_error(&cmd, "--model is required");
    return cli_gemm(&cmd, a->gemm, &a->load);
}

/* Run batches of the synthetic input x for `seconds` (at least 3 batches); lat[] gets each
 * batch's seconds. Returns the batches run, with *total their seconds. */
static size_t bench_measure(const bench_args *a, session *s, const float *x, float *logits,
                            double seconds, double *lat, size_t max_iter, double *total)
{
    size_t it = 0;
    double t0 = now_s(), t = t0;
    while (it < max_iter && (t - t0 < seconds || it < 3)) {
        session_run(s, x, a->batch, logits);
        double t1 = now_s();
        lat[it++] = t1 - t;
        t = t1;
    }
    *total = t - t0;
    return it;
}

/* The measured batches, all at once or in --slices slices: each slice waits for a line on
 * stdin and starts with one untimed batch (the caches after the other engine's slice). lat[]
 * gets every batch's seconds, sorted. Returns the batches, or 0 when stdin ends early. */
static size_t bench_slices(const bench_args *a, session *s, const float *x, float *logits,
                           double *lat, double *total)
{
    size_t it = 0;
    int n = a->slices ? a->slices : 1;
    char line[64];
    *total = 0;
    if (a->slices) {
        printf("{\"ready\":true}\n");
        fflush(stdout);
    }
    for (int k = 0; k < n; k++) {
        double t;
        if (a->slices) {
            if (!fgets(line, sizeof line, stdin)) {
                fprintf(stderr, "bench: stdin ended after %d of %d slices\n", k, n);
                return 0;
            }
            session_run(s, x, a->batch, logits);
        }
        size_t got =
            bench_measure(a, s, x, logits, a->seconds / n, lat + it, BENCH_MAX_ITER - it, &t);
        it += got, *total += t;
        if (a->slices) {
            printf("{\"slice\":%d,\"iterations\":%zu,\"seconds\":%.6f}\n", k, got, t);
            fflush(stdout);
        }
    }
    qsort(lat, it, sizeof *lat, cmp_double);
    return it;
}

int cmd_bench(int argc, char **argv)
{
    bench_args a;
    char err[CLI_ERR_MAX];
    model *m = NULL;
    session *s = NULL;
    float *x = NULL, *logits = NULL;
    double *lat = NULL, total;
    preprocess_spec pre;
    int rc = bench_parse(argc, argv, &a);
    if (rc != CLI_GO_ON) return rc;
    rc = 1;
    if (cli_load_model("bench", a.model, &a.load, &m, &pre)) return 1;
    const model_info *info = model_get_info(m);
    int b = a.batch, sz = a.size ? a.size : info->input_size;
    if (session_new_threads(m, sz, sz, b, a.threads, &s, err, sizeof err)) {
        fprintf(stderr, "bench: %s\n", err);
        goto done;
    }
    size_t n_in = (size_t)b * 3 * sz * sz;
    x = malloc(n_in * sizeof *x);
    logits = malloc((size_t)b * info->classes * sizeof *logits);
    lat = malloc(BENCH_MAX_ITER * sizeof *lat);
    if (!x || !logits || !lat) goto done;
    unsigned r = 1;
    for (size_t i = 0; i < n_in; i++) {
        r = r * 1103515245u + 12345u;
        x[i] = (r >> 16) / 32768.0f - 1;
    }
    for (int i = 0; i < 2; i++) session_run(s, x, b, logits); /* warm-up: caches, page faults */
    if (a.profile && session_profile(s, 1)) goto done;
    size_t it = bench_slices(&a, s, x, logits, lat, &total);
    if (!it) goto done;
    double flops = session_flops_per_sample(s) * b * it / total;
    printf("{\"model\":\"%s\",\"arch\":\"%s\",\"flavour\":\"%s\",\"size\":%d,\"batch\":%d,"
           "\"threads\":%d,\"iterations\":%zu,\"img_per_s\":%.2f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
           "\"gflops\":%.2f,\"gemm\":\"%s\",\"blas_kernel\":\"%s\"}\n",
           a.model, arch_name(info->arch), flavour_name(info->flavour), sz, b, a.threads, it,
           b * it / total, lat[it / 2] * 1e3, lat[(size_t)(it * 0.99)] * 1e3, flops / 1e9,
           info->gemm, engine_blas_core());
    if (a.profile) session_print_profile(s, stderr);
    rc = 0;
done:
    free(x);
    free(logits);
    free(lat);
    session_free(s);
    model_free(m);
    return rc;
}
