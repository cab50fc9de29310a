/* ab_inproc.c - A/B of engine builds in one process, interleaved run by run.
 *
 * usage: build/ab_inproc --model FILE [--batch B] [--threads T] [--runs N] [--block K]
 *                        [--gemm auto|avx512|avx2|blas] [--profile] NAME=LIB.so NAME=LIB.so ...
 *
 * Each LIB.so is one build of the engine (bench/engine_so.sh TREE OUT.so builds a tree's
 * engine with that tree's flags), loaded with dlopen into a namespace of its own, with its
 * own model and session (and thread team) on the same input. Then N rounds: in each, every
 * build runs the batch once, in forward order on even rounds and reversed on odd ones. On a
 * shared machine bench/ab.py compares two processes seconds apart, and the load moves in
 * between; here the builds alternate every few milliseconds, so they see the same machine.
 *
 * Reported: per build the median and the 10th percentile of a run's time; per build against
 * the first, the speed ratio (first's time / build's time) of each block of K consecutive
 * rounds, with the minimum and median over the blocks (docs/benchmarks.md asks for at least
 * 5 pairs: N/K blocks). --profile also times every convolution (session_op_stats, builds
 * that have it) and prints each one's fastest run per build, the same op of the builds
 * being the same index (the op lists of the networks have not changed). --gemm picks the
 * kernels, as `xbnserve --gemm` does (builds that have the option): the AVX2 ones can then be
 * measured on an AVX-512 machine.
 *
 * The first builds of the tree (before 2026-12-07) take model_load(path, &m, err, len); later
 * ones model_load(path, opts, &m, err, len), told apart by engine_gemm_parse, which came with
 * the options.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/timing.h"
#include "engine/engine.h"

#define MAX_BUILDS 8
#define MAX_RUNS 100000
#define MAX_OPS 512

typedef int load_old_fn(const char *, model **, char *, size_t);
typedef int load_fn(const char *, const model_load_opts *, model **, char *, size_t);
typedef int gemm_parse_fn(const char *, engine_gemm *);
typedef const model_info *info_fn(const model *);
typedef int session_new_fn(const model *, int, int, int, int, session **, char *, size_t);
typedef int run_fn(session *, const float *, int, float *);
typedef int profile_fn(session *, int);
typedef int op_count_fn(const session *);
typedef int op_stats_fn(const session *, int, session_op_stats *);

typedef struct {
    char name[32];
    session *s;
    run_fn *run;
    profile_fn *profile;
    op_count_fn *op_count;
    op_stats_fn *op_stats; /* NULL in builds without it */
    double *t;             /* seconds of each round's run */
    double op_best[MAX_OPS];
} build;

/* The q-quantile of v[0..n), v left unchanged. */
static double quantile(const double *v, int n, double q)
{
    double *c = malloc((size_t)n * sizeof *c);
    if (!c) return 0;
    memcpy(c, v, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, cmp_double);
    double r = c[(int)(q * (n - 1) + 0.5)];
    free(c);
    return r;
}

static int open_build(build *b, const char *spec, const char *path, const char *gemm, int batch,
                      int threads)
{
    char lib[512], err[512];
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || (size_t)(eq - spec) >= sizeof b->name) {
        fprintf(stderr, "ab_inproc: '%s' is not NAME=LIB.so\n", spec);
        return -1;
    }
    snprintf(b->name, sizeof b->name, "%.*s", (int)(eq - spec), spec);
    snprintf(lib, sizeof lib, "%s", eq + 1);
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "ab_inproc: %s\n", dlerror());
        return -1;
    }
    model *m = NULL;
    model_load_opts opts = {0};
    gemm_parse_fn *parse = (gemm_parse_fn *)dlsym(h, "engine_gemm_parse");
    if (gemm && (!parse || parse(gemm, &opts.gemm))) {
        fprintf(stderr, "ab_inproc: %s: no kernels named '%s'\n", b->name, gemm);
        return -1;
    }
    int rc = parse ? ((load_fn *)dlsym(h, "model_load"))(path, &opts, &m, err, sizeof err)
                   : ((load_old_fn *)dlsym(h, "model_load"))(path, &m, err, sizeof err);
    int size = rc ? 0 : ((info_fn *)dlsym(h, "model_get_info"))(m)->input_size;
    if (rc || ((session_new_fn *)dlsym(h, "session_new_threads"))(m, size, size, batch, threads,
                                                                  &b->s, err, sizeof err)) {
        fprintf(stderr, "ab_inproc: %s: %s\n", b->name, err);
        return -1;
    }
    b->run = (run_fn *)dlsym(h, "session_run");
    b->profile = (profile_fn *)dlsym(h, "session_profile");
    b->op_count = (op_count_fn *)dlsym(h, "session_op_count");
    b->op_stats = (op_stats_fn *)dlsym(h, "session_op_stats_get");
    for (int i = 0; i < MAX_OPS; i++) b->op_best[i] = 1e30;
    return size;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ab_inproc --model FILE [--batch B] [--threads T] [--runs N] [--block K]\n"
               "                 [--gemm auto|avx512|avx2|blas] [--profile] NAME=LIB.so ...\n");
}

int main(int argc, char **argv)
{
    const char *path = NULL, *gemm = NULL;
    int batch = 1, threads = 1, runs = 200, block = 20, profile = 0, n = 0;
    static build builds[MAX_BUILDS];
    const char *specs[MAX_BUILDS];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--profile"))
            profile = 1;
        else if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (a[0] != '-' && n < MAX_BUILDS)
            specs[n++] = a;
        else if (!v) {
            usage(stderr);
            return 2;
        } else {
            i++;
            if (!strcmp(a, "--model"))
                path = v;
            else if (!strcmp(a, "--gemm"))
                gemm = v;
            else if (!strcmp(a, "--batch"))
                batch = atoi(v);
            else if (!strcmp(a, "--threads"))
                threads = atoi(v);
            else if (!strcmp(a, "--runs"))
                runs = atoi(v);
            else if (!strcmp(a, "--block"))
                block = atoi(v);
            else {
                usage(stderr);
                return 2;
            }
        }
    }
    if (!path || n < 2 || batch < 1 || threads < 1 || runs < 1 || runs > MAX_RUNS || block < 1 ||
        block > runs) {
        usage(stderr);
        return 2;
    }
    int size = 0;
    for (int i = 0; i < n; i++) {
        int s = open_build(&builds[i], specs[i], path, gemm, batch, threads);
        if (s <= 0) return 1;
        if (size && s != size) {
            fprintf(stderr, "ab_inproc: the builds disagree on the input size\n");
            return 1;
        }
        size = s;
        if (!(builds[i].t = malloc((size_t)runs * sizeof(double)))) return 1;
    }
    size_t n_in = (size_t)batch * 3 * size * size;
    float *x = malloc(n_in * sizeof *x), *logits = malloc((size_t)batch * 100000 * sizeof *logits);
    if (!x || !logits) return 1;
    unsigned r = 1;
    for (size_t i = 0; i < n_in; i++) {
        r = r * 1103515245u + 12345u;
        x[i] = (r >> 16) / 32768.0f - 1;
    }
    for (int i = 0; i < n; i++)
        for (int w = 0; w < 3; w++) builds[i].run(builds[i].s, x, batch, logits); /* warm-up */

    for (int k = 0; k < runs; k++)
        for (int j = 0; j < n; j++) {
            build *b = &builds[k % 2 ? n - 1 - j : j];
            int prof = profile && b->op_stats;
            if (prof) b->profile(b->s, 1); /* resets the counts */
            double t0 = now_s();
            b->run(b->s, x, batch, logits);
            b->t[k] = now_s() - t0;
            for (int i = 0; prof && i < b->op_count(b->s) && i < MAX_OPS; i++) {
                session_op_stats st;
                b->op_stats(b->s, i, &st);
                if (st.ms / st.samples < b->op_best[i]) b->op_best[i] = st.ms / st.samples;
            }
        }

    printf("%s, batch %d, %d thread%s, %d rounds\n", path, batch, threads, threads > 1 ? "s" : "",
           runs);
    for (int i = 0; i < n; i++) {
        double med = quantile(builds[i].t, runs, 0.5);
        printf("%-10s run: median %.3f ms (%.1f img/s), p10 %.3f ms\n", builds[i].name, med * 1e3,
               batch / med, quantile(builds[i].t, runs, 0.1) * 1e3);
    }
    int blocks = runs / block;
    double *ratio = malloc((size_t)blocks * sizeof *ratio);
    if (!ratio) return 1;
    for (int i = 1; i < n; i++) {
        double lo = 1e30;
        for (int q = 0; q < blocks; q++) {
            double ta = 0, tb = 0;
            for (int k = q * block; k < (q + 1) * block; k++)
                ta += builds[0].t[k], tb += builds[i].t[k];
            ratio[q] = ta / tb;
            if (ratio[q] < lo) lo = ratio[q];
        }
        printf("%s / %s speed, %d blocks of %d rounds: min %.3f median %.3f (", builds[i].name,
               builds[0].name, blocks, block, lo, quantile(ratio, blocks, 0.5));
        for (int q = 0; q < blocks; q++) printf("%s%.3f", q ? " " : "", ratio[q]);
        printf(")\n");
    }
    int ref = 0; /* the per-op listing follows the first build that has op stats */
    while (ref < n && !builds[ref].op_stats) ref++;
    if (profile && ref < n) {
        printf("\nconvolutions: each one's fastest run, ms per sample, and %s's time over each "
               "build's\n",
               builds[ref].name);
        for (int i = 0; i < builds[ref].op_count(builds[ref].s) && i < MAX_OPS; i++) {
            session_op_stats st;
            builds[ref].op_stats(builds[ref].s, i, &st);
            if (strcmp(st.kind, "conv")) continue;
            printf("%3d %-24s %dx%dx%d %dx%d/%d -> %d%s", i, st.name, st.h, st.w, st.cin, st.k,
                   st.k, st.stride, st.cout,
                   st.wino == 4 ? " wino4"
                   : st.wino    ? " wino2"
                                : "");
            for (int j = 0; j < n; j++)
                if (builds[j].op_stats) printf("  %s %.4f", builds[j].name, builds[j].op_best[i]);
            for (int j = 0; j < n; j++)
                if (builds[j].op_stats && j != ref)
                    printf("  %.3f", builds[ref].op_best[i] / builds[j].op_best[i]);
            printf("\n");
        }
    }
    return 0;
}
