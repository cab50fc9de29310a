/* fmapeak.c - the machine's FMA peak, and how close the engine's convolutions come to it.
 *
 * usage: build/fmapeak [--seconds S]                      the peak alone
 *        build/fmapeak --layers [--rounds R] [--models-dir DIR] [--models A,B,...]
 *                      [--json FILE] [--md FILE]           the peak and the per-layer report
 *
 * The peak: a loop of fused multiply-adds on 12 independent vector accumulators that never
 * leave the registers (no load, no store). Zen 3 issues FMAs on 2 pipes with a 4-cycle
 * latency, so at least 2 x 4 = 8 dependency chains must be in flight to keep both pipes busy;
 * 12 leaves margin, and covers Intel's 2 x 4 as well. One loop per instruction set the CPU has
 * (AVX2 + FMA always on x86-64-v3; AVX-512F where the CPU has it, by target attribute as the
 * kernels are built), on 1 and on 2 threads running at the same time. GFLOP/s is 2 x lanes x
 * FMAs over the wall time of a ~20 ms sample; the peak is the best of a few samples.
 *
 * The layers (--layers): each model runs in a session with per-op profiling
 * (session_op_stats: the wall time of every op on the calling thread) at batch 1 and 8 on one
 * thread, and batch 1 on two (at batch 8 two threads take whole samples each, and the profile
 * times only the caller's). Every round first measures the peak on the same thread count and
 * instruction set as the model's kernels, then runs the batch once. Two figures per layer:
 * the best, each op's fastest round against the highest peak of the rounds (an op lasts
 * micro- to milliseconds, so on a shared machine it runs undisturbed in some round even when
 * the whole run does not), and the median over the rounds of the layer's GFLOP/s in that
 * run over the peak measured just before it, so slower drift cancels in the ratio.
 * Convolutions of the same shape and kind in a model are one row (their times summed).
 * GFLOP/s are useful FLOPs: the direct convolution's 2 x multiply-adds. Winograd layers run
 * fewer multiplications (their GEMMs: (m+2)^2 x tiles x cin x cout), which is what the
 * hardware executes, so their fraction of the peak is taken on those.
 *
 * Benchmark code, not the engine's: it reaches the engine only through engine/engine.h, and
 * its own SIMD (the peak loops) stays in this file.
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/timing.h"
#include "engine/engine.h"

#define MAX_ROUNDS 64
#define MAX_OPS 256
#define MAX_GROUPS 128
#define MAX_MODELS 8
#define PEAK_THREADS 2
#define PEAK_SAMPLE_S                                                                              \
    0.02               /* one peak sample: long against timer and wake-up, short against drift */
#define PEAK_SAMPLES 3 /* per peak measurement: the best is the machine's */

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- the peak ---- */

/* acc = acc * m + c converges to c / (1 - m) = 1: no overflow, no denormals, and the result
 * is summed and kept so the compiler cannot drop the loop. The accumulators are named
 * variables (ACC12 expands X for 0..11): GCC keeps those in registers. */
#define ACC12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

__attribute__((target("avx2,fma"))) static float fma_loop_avx2(long iters)
{
#define DECL2(i) __m256 a##i = _mm256_set1_ps(1.0f + (i)*1e-3f);
#define STEP2(i) a##i = _mm256_fmadd_ps(a##i, m, c);
#define SUM2(i) s = _mm256_add_ps(s, a##i);
    __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f), s = _mm256_setzero_ps();
    ACC12(DECL2)
    for (long i = 0; i < iters; i++) {
        ACC12(STEP2)
        __asm__ volatile("" ::: "memory"); /* one iteration = 12 FMAs, not merged by the compiler */
    }
    ACC12(SUM2)
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0];
}

__attribute__((target("avx512f"))) static float fma_loop_avx512(long iters)
{
#define DECL5(i) __m512 a##i = _mm512_set1_ps(1.0f + (i)*1e-3f);
#define STEP5(i) a##i = _mm512_fmadd_ps(a##i, m, c);
#define SUM5(i) s = _mm512_add_ps(s, a##i);
    __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f), s = _mm512_setzero_ps();
    ACC12(DECL5)
    for (long i = 0; i < iters; i++) {
        ACC12(STEP5)
        __asm__ volatile("" ::: "memory");
    }
    ACC12(SUM5)
    float out[16];
    _mm512_storeu_ps(out, s);
    return out[0];
}

typedef struct {
    const char *name; /* as model_info.gemm names the kernel table of this instruction set */
    int lanes;
    float (*loop)(long iters);
    long iters; /* per sample, calibrated */
} isa_loop;

static isa_loop isas[2] = {{"avx2", 8, fma_loop_avx2, 0}, {"avx512", 16, fma_loop_avx512, 0}};
static int n_isas;

typedef struct {
    const isa_loop *isa;
    pthread_barrier_t *start;
    volatile float sink;
} peak_arg;

static void *peak_member(void *p)
{
    peak_arg *a = p;
    pthread_barrier_wait(a->start);
    a->sink = a->isa->loop(a->isa->iters);
    return NULL;
}

/* One sample: `threads` threads (the caller one of them) run the loop at once; GFLOP/s of all. */
static double peak_sample(const isa_loop *isa, int threads)
{
    pthread_t tid[PEAK_THREADS];
    peak_arg args[PEAK_THREADS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads);
    for (int t = 0; t < threads; t++) args[t] = (peak_arg){isa, &start, 0};
    for (int t = 1; t < threads; t++) pthread_create(&tid[t], NULL, peak_member, &args[t]);
    pthread_barrier_wait(&start);
    double t0 = now_s();
    args[0].sink = isa->loop(isa->iters);
    for (int t = 1; t < threads; t++) pthread_join(tid[t], NULL);
    double dt = now_s() - t0;
    pthread_barrier_destroy(&start);
    return 2.0 * 12 * isa->lanes * isa->iters * threads / dt / 1e9;
}

static double peak_best(const isa_loop *isa, int threads)
{
    double best = 0;
    for (int i = 0; i < PEAK_SAMPLES; i++) {
        double g = peak_sample(isa, threads);
        if (g > best) best = g;
    }
    return best;
}

static void peak_init(void)
{
    __builtin_cpu_init();
    n_isas = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
    if (n_isas && __builtin_cpu_supports("avx512f")) n_isas = 2;
    for (int i = 0; i < n_isas; i++) {
        isa_loop *isa = &isas[i];
        long iters = 1 << 20;
        double dt = 1e9;
        isa->loop(iters);             /* wake the vector unit up */
        for (int k = 0; k < 5; k++) { /* the fastest: a run cut by another process is longer */
            double t0 = now_s();
            isa->loop(iters);
            if (now_s() - t0 < dt) dt = now_s() - t0;
        }
        isa->iters = (long)(iters * PEAK_SAMPLE_S / (dt > 1e-6 ? dt : 1e-6));
    }
}

static const isa_loop *isa_named(const char *name)
{
    for (int i = 0; i < n_isas; i++)
        if (!strcmp(isas[i].name, name)) return &isas[i];
    return NULL;
}

static const char *cpu_model(char *buf, size_t len)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    snprintf(buf, len, "unknown");
    if (!f) return buf;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            char *v = strchr(line, ':') + 2;
            v[strcspn(v, "\n")] = 0;
            snprintf(buf, len, "%s", v);
            break;
        }
    fclose(f);
    return buf;
}

/* ---- the layers ---- */

/* The configurations of the layer report: batch 8 on two threads is not among them (see the
 * head of this file). */
static const struct {
    int batch, threads;
} configs[] = {{1, 1}, {8, 1}, {1, 2}};
#define N_CONFIGS (int)(sizeof configs / sizeof configs[0])

typedef struct {
    session_op_stats s; /* of its first op */
    char name[64];      /* the first op's name (s.name points into the model, freed early) */
    int ops[MAX_OPS], n_ops;
    double flops, mul_flops; /* per sample, all its ops */
    /* per configuration. best: each op's fastest round, against the highest peak of the
     * rounds (robust to a busy machine: a short op often runs undisturbed in some round);
     * median: of the rounds' own ratios, each run against the peak measured just before */
    double ms[N_CONFIGS], gflops[N_CONFIGS], mul_gflops[N_CONFIGS], pct[N_CONFIGS];
    double share[N_CONFIGS], pct_median[N_CONFIGS], gflops_median[N_CONFIGS];
} group;

typedef struct {
    char name[64];
    const char *gemm;
    int n_groups;
    group g[MAX_GROUPS];
    double peak[N_CONFIGS], peak_median[N_CONFIGS];         /* the rounds' highest, and median */
    double total_ms[N_CONFIGS], total_ms_median[N_CONFIGS]; /* per sample: best, median */
} model_report;

static int same_group(const session_op_stats *a, const session_op_stats *b)
{
    return a->k == b->k && a->stride == b->stride && a->cin == b->cin && a->cout == b->cout &&
           a->h == b->h && a->w == b->w && a->wino == b->wino && a->residual == b->residual &&
           a->gn_fused == b->gn_fused && a->tail == b->tail;
}

/* The convolutions the report covers: every one of ResNet50, the 1x1s of MobileNetV2. */
static int reported(const session_op_stats *st, int mobilenet)
{
    return !strcmp(st->kind, "conv") && (!mobilenet || st->k == 1);
}

static void make_groups(model_report *r, session *s, int mobilenet)
{
    r->n_groups = 0;
    for (int i = 0; i < session_op_count(s) && i < MAX_OPS; i++) {
        session_op_stats st;
        session_op_stats_get(s, i, &st);
        if (!reported(&st, mobilenet)) continue;
        int gi = 0;
        while (gi < r->n_groups && !same_group(&r->g[gi].s, &st)) gi++;
        if (gi == r->n_groups) {
            if (r->n_groups == MAX_GROUPS) continue;
            memset(&r->g[gi], 0, sizeof r->g[gi]);
            r->g[gi].s = st;
            snprintf(r->g[gi].name, sizeof r->g[gi].name, "%s", st.name);
            r->n_groups++;
        }
        group *g = &r->g[gi];
        g->ops[g->n_ops++] = i;
        g->flops += st.flops;
        g->mul_flops += st.mul_flops;
    }
}

/* One configuration of one model: `rounds` of (peak, one profiled run). */
static int measure(model_report *r, const model *m, int ci, int rounds, int mobilenet)
{
    char err[256];
    session *s = NULL;
    int b = configs[ci].batch, t = configs[ci].threads, size = model_get_info(m)->input_size;
    const isa_loop *isa = isa_named(r->gemm);
    if (!isa) {
        fprintf(stderr, "fmapeak: %s: kernels '%s' have no peak loop here\n", r->name, r->gemm);
        return -1;
    }
    if (session_new_threads(m, size, size, b, t, &s, err, sizeof err)) {
        fprintf(stderr, "fmapeak: %s: %s\n", r->name, err);
        return -1;
    }
    float *x = session_input(s), *logits = malloc((size_t)b * model_get_info(m)->classes * 4);
    if (!logits) {
        session_free(s);
        return -1;
    }
    unsigned seed = 1;
    for (size_t i = 0; i < (size_t)b * 3 * size * size; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = (seed >> 16) / 32768.0f - 1;
    }
    if (ci == 0) make_groups(r, s, mobilenet);
    for (int i = 0; i < 2; i++) session_run(s, x, b, logits); /* warm-up */
    static double ms[MAX_ROUNDS][MAX_OPS], peaks[MAX_ROUNDS], totals[MAX_ROUNDS];
    int n_ops = session_op_count(s) < MAX_OPS ? session_op_count(s) : MAX_OPS;
    for (int k = 0; k < rounds; k++) {
        peaks[k] = peak_best(isa, t);
        session_profile(s, 1); /* resets the counts */
        session_run(s, x, b, logits);
        totals[k] = 0;
        for (int i = 0; i < n_ops; i++) {
            session_op_stats st;
            session_op_stats_get(s, i, &st);
            ms[k][i] = st.ms / st.samples;
            totals[k] += ms[k][i];
        }
    }
    double best_ms[MAX_OPS], best_total = 0, best_peak = 0;
    for (int i = 0; i < n_ops; i++) {
        best_ms[i] = ms[0][i];
        for (int k = 1; k < rounds; k++)
            if (ms[k][i] < best_ms[i]) best_ms[i] = ms[k][i];
        best_total += best_ms[i];
    }
    for (int k = 0; k < rounds; k++)
        if (peaks[k] > best_peak) best_peak = peaks[k];
    for (int gi = 0; gi < r->n_groups; gi++) {
        group *g = &r->g[gi];
        double gf[MAX_ROUNDS], pct[MAX_ROUNDS], best = 0;
        for (int j = 0; j < g->n_ops; j++) best += best_ms[g->ops[j]];
        for (int k = 0; k < rounds; k++) {
            double sum = 0;
            for (int j = 0; j < g->n_ops; j++) sum += ms[k][g->ops[j]];
            gf[k] = g->flops / (sum * 1e6);
            pct[k] = 100 * g->mul_flops / (sum * 1e6) / peaks[k];
        }
        g->ms[ci] = best;
        g->gflops[ci] = g->flops / (best * 1e6);
        g->mul_gflops[ci] = g->mul_flops / (best * 1e6);
        g->pct[ci] = 100 * g->mul_gflops[ci] / best_peak;
        g->share[ci] = 100 * best / best_total;
        g->gflops_median[ci] = median(gf, rounds);
        g->pct_median[ci] = median(pct, rounds);
    }
    r->peak[ci] = best_peak;
    r->peak_median[ci] = median(peaks, rounds);
    r->total_ms[ci] = best_total;
    r->total_ms_median[ci] = median(totals, rounds);
    free(logits);
    session_free(s);
    return 0;
}

/* "wino4+res", "gemm+gn", "conv", ...: how the engine runs the group. */
static const char *kernel_label(const session_op_stats *st, char *buf, size_t len)
{
    const char *base = st->wino == 4                   ? "wino4"
                       : st->wino == 2                 ? "wino2"
                       : st->k == 1 && st->stride == 1 ? "gemm"
                                                       : "conv";
    snprintf(buf, len, "%s%s%s%s", base, st->gn_fused ? "+gn" : "", st->residual ? "+res" : "",
             st->tail ? " (tail)" : "");
    return buf;
}

static void print_markdown(FILE *f, const model_report *rs, int n)
{
    fprintf(f, "| model | kernels |");
    for (int ci = 0; ci < N_CONFIGS; ci++)
        fprintf(f, " b%d t%d: ms per sample, FMA peak GFLOP/s (best; median) |", configs[ci].batch,
                configs[ci].threads);
    fprintf(f, "\n|---|---|");
    for (int ci = 0; ci < N_CONFIGS; ci++) fprintf(f, "---|");
    fprintf(f, "\n");
    for (int mi = 0; mi < n; mi++) {
        fprintf(f, "| %s | %s |", rs[mi].name, rs[mi].gemm);
        for (int ci = 0; ci < N_CONFIGS; ci++)
            fprintf(f, " %.2f, %.1f (%.2f, %.1f) |", rs[mi].total_ms[ci], rs[mi].peak[ci],
                    rs[mi].total_ms_median[ci], rs[mi].peak_median[ci]);
        fprintf(f, "\n");
    }
    fprintf(f, "\n");
    fprintf(f, "| model | layer (count) | input, kernel -> cout | kernel |");
    for (int ci = 0; ci < N_CONFIGS; ci++)
        fprintf(f, " b%d t%d: GFLOP/s | %% peak (median) | %% of net |", configs[ci].batch,
                configs[ci].threads);
    fprintf(f, "\n|---|---|---|---|");
    for (int ci = 0; ci < N_CONFIGS; ci++) fprintf(f, "---|---|---|");
    fprintf(f, "\n");
    for (int mi = 0; mi < n; mi++) {
        const model_report *r = &rs[mi];
        for (int gi = 0; gi < r->n_groups; gi++) {
            const group *g = &r->g[gi];
            char kl[64];
            fprintf(f, "| %s | %s (%d) | %dx%dx%d, %dx%d/%d -> %d | %s |", r->name, g->name,
                    g->n_ops, g->s.h, g->s.w, g->s.cin, g->s.k, g->s.k, g->s.stride, g->s.cout,
                    kernel_label(&g->s, kl, sizeof kl));
            for (int ci = 0; ci < N_CONFIGS; ci++) {
                if (g->s.wino)
                    fprintf(f, " %.0f (mul %.0f) |", g->gflops[ci], g->mul_gflops[ci]);
                else
                    fprintf(f, " %.0f |", g->gflops[ci]);
                fprintf(f, " %.0f%% (%.0f%%) | %.1f%% |", g->pct[ci], g->pct_median[ci],
                        g->share[ci]);
            }
            fprintf(f, "\n");
        }
    }
}

static void print_json(FILE *f, const char *cpu, double peaks[][PEAK_THREADS][2],
                       const model_report *rs, int n)
{
    fprintf(f, "{\"cpu\":\"%s\",\"peak\":[", cpu);
    for (int i = 0; i < n_isas; i++)
        for (int t = 0; t < PEAK_THREADS; t++)
            fprintf(f,
                    "%s{\"isa\":\"%s\",\"threads\":%d,\"gflops_max\":%.1f,\"gflops_median\":%.1f}",
                    i || t ? "," : "", isas[i].name, t + 1, peaks[i][t][0], peaks[i][t][1]);
    fprintf(f, "],\"models\":[");
    for (int mi = 0; mi < n; mi++) {
        const model_report *r = &rs[mi];
        fprintf(f, "%s{\"model\":\"%s\",\"gemm\":\"%s\",\"configs\":[", mi ? "," : "", r->name,
                r->gemm);
        for (int ci = 0; ci < N_CONFIGS; ci++)
            fprintf(f,
                    "%s{\"batch\":%d,\"threads\":%d,\"peak_gflops\":%.1f,"
                    "\"peak_gflops_median\":%.1f,\"ms_per_sample\":%.3f,"
                    "\"ms_per_sample_median\":%.3f}",
                    ci ? "," : "", configs[ci].batch, configs[ci].threads, r->peak[ci],
                    r->peak_median[ci], r->total_ms[ci], r->total_ms_median[ci]);
        fprintf(f, "],\"layers\":[");
        for (int gi = 0; gi < r->n_groups; gi++) {
            const group *g = &r->g[gi];
            fprintf(f,
                    "%s{\"first_op\":\"%s\",\"ops\":%d,\"h\":%d,\"w\":%d,\"cin\":%d,\"k\":%d,"
                    "\"stride\":%d,\"cout\":%d,\"oh\":%d,\"ow\":%d,\"wino\":%d,\"residual\":%d,"
                    "\"gn_fused\":%d,\"tail\":%d,\"flops_per_sample\":%.0f,"
                    "\"mul_flops_per_sample\":%.0f,\"cells\":[",
                    gi ? "," : "", g->name, g->n_ops, g->s.h, g->s.w, g->s.cin, g->s.k, g->s.stride,
                    g->s.cout, g->s.oh, g->s.ow, g->s.wino, g->s.residual, g->s.gn_fused, g->s.tail,
                    g->flops, g->mul_flops);
            for (int ci = 0; ci < N_CONFIGS; ci++)
                fprintf(f,
                        "%s{\"batch\":%d,\"threads\":%d,\"ms_per_sample\":%.4f,\"gflops\":%.2f,"
                        "\"mul_gflops\":%.2f,\"pct_peak\":%.1f,\"pct_of_net\":%.2f,"
                        "\"gflops_median\":%.2f,\"pct_peak_median\":%.1f}",
                        ci ? "," : "", configs[ci].batch, configs[ci].threads, g->ms[ci],
                        g->gflops[ci], g->mul_gflops[ci], g->pct[ci], g->share[ci],
                        g->gflops_median[ci], g->pct_median[ci]);
            fprintf(f, "]}");
        }
        fprintf(f, "]}");
    }
    fprintf(f, "]}\n");
}

static void usage(FILE *f)
{
    fprintf(f, "usage: fmapeak [--seconds S] [--layers] [--rounds R] [--models-dir DIR]\n"
               "               [--models A,B,...] [--json FILE] [--md FILE]\n");
}

int main(int argc, char **argv)
{
    double seconds = 2;
    int layers = 0, rounds = 7;
    const char *dir = "build/models", *json = NULL, *md = NULL;
    char models[256] = "resnet50-torch,resnet50-keras,mobilenetv2-torch";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--layers")) {
            layers = 1;
            continue;
        }
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            usage(stderr);
            return 2;
        }
        i++;
        if (!strcmp(a, "--seconds"))
            seconds = atof(v);
        else if (!strcmp(a, "--rounds"))
            rounds = atoi(v);
        else if (!strcmp(a, "--models-dir"))
            dir = v;
        else if (!strcmp(a, "--models"))
            snprintf(models, sizeof models, "%s", v);
        else if (!strcmp(a, "--json"))
            json = v;
        else if (!strcmp(a, "--md"))
            md = v;
        else {
            usage(stderr);
            return 2;
        }
    }
    if (rounds < 1 || rounds > MAX_ROUNDS || seconds <= 0) {
        usage(stderr);
        return 2;
    }
    peak_init();
    if (!n_isas) {
        fprintf(stderr, "fmapeak: this CPU has no AVX2 + FMA\n");
        return 1;
    }
    char cpu[256];
    cpu_model(cpu, sizeof cpu);

    /* The peak alone: alternating thread counts and instruction sets, for `seconds`. */
    static double samples[2][PEAK_THREADS][1024];
    double peaks[2][PEAK_THREADS][2];
    int n_samples = 0;
    for (double t0 = now_s(); n_samples < 1024 && (now_s() - t0 < seconds || n_samples < 3);
         n_samples++)
        for (int i = 0; i < n_isas; i++)
            for (int t = 0; t < PEAK_THREADS; t++)
                samples[i][t][n_samples] = peak_sample(&isas[i], t + 1);
    printf("CPU: %s\n", cpu);
    for (int i = 0; i < n_isas; i++)
        for (int t = 0; t < PEAK_THREADS; t++) {
            peaks[i][t][1] = median(samples[i][t], n_samples);
            peaks[i][t][0] = samples[i][t][n_samples - 1];
            printf("FMA peak %-6s %d thread%s: %6.1f GFLOP/s (best of %d samples; median %.1f)\n",
                   isas[i].name, t + 1, t ? "s" : " ", peaks[i][t][0], n_samples, peaks[i][t][1]);
        }
    fflush(stdout);
    if (!layers) {
        if (json) {
            FILE *f = fopen(json, "w");
            if (!f) return 1;
            print_json(f, cpu, peaks, NULL, 0);
            fclose(f);
        }
        return 0;
    }

    static model_report reports[MAX_MODELS];
    int n = 0;
    for (char *save = NULL, *name = strtok_r(models, ",", &save); name && n < MAX_MODELS;
         name = strtok_r(NULL, ",", &save)) {
        char path[512], err[256];
        model *m = NULL;
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, name);
        if (model_load(path, NULL, &m, err, sizeof err)) {
            fprintf(stderr, "fmapeak: %s\n", err);
            return 1;
        }
        model_report *r = &reports[n];
        snprintf(r->name, sizeof r->name, "%s", name);
        r->gemm = model_get_info(m)->gemm;
        int mobilenet = model_get_info(m)->arch == ARCH_MOBILENETV2, rc = 0;
        for (int ci = 0; ci < N_CONFIGS && !rc; ci++) {
            rc = measure(r, m, ci, rounds, mobilenet);
            if (!rc)
                fprintf(stderr, "%s b%d t%d: %.2f ms per sample, peak %.1f GFLOP/s (%s)\n", name,
                        configs[ci].batch, configs[ci].threads, r->total_ms[ci], r->peak[ci],
                        r->gemm);
        }
        model_free(m);
        if (rc) return 1;
        n++;
    }
    print_markdown(stdout, reports, n);
    if (md) {
        FILE *f = fopen(md, "w");
        if (!f) return 1;
        print_markdown(f, reports, n);
        fclose(f);
    }
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) return 1;
        print_json(f, cpu, peaks, reports, n);
        fclose(f);
    }
    return 0;
}
