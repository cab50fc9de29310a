/* sgemm_ceiling.c - the machine's sgemm GFLOP/s on large square matrices, for context in
 * docs/benchmarks.md. usage: sgemm_ceiling THREADS [N] ; prints one JSON line. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1, n = argc > 2 ? atoi(argv[2]) : 2048;
    if (threads < 1 || n < 64) return 2;
    openblas_set_num_threads(threads);
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n);
    float *c = malloc(sizeof(float) * n * n);
    if (!a || !b || !c) return 1;
    for (long i = 0; i < (long)n * n; i++) a[i] = (float)(i % 7) * 0.1f, b[i] = (float)(i % 5);
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        double g = 2.0 * n * n * n / (now_s() - t) / 1e9;
        if (g > best) best = g;
    }
    printf("{\"threads\":%d,\"n\":%d,\"sgemm_gflops\":%.1f,\"blas_kernel\":\"%s\"}\n", threads, n,
           best, openblas_get_corename());
    free(a), free(b), free(c);
    return 0;
}
