/* gemm_row_invariance.c - does OpenBLAS give a GEMM row the same bits whatever the number of
 * rows in the call? If it did, the engine could run one GEMM over a whole batch and stay
 * batch-invariant. It does not (docs/engine.md): for each conv shape (K, N) of the two
 * families, the first U rows computed alone are compared with the same rows inside calls of
 * U, 2U, ... 1600 rows. usage: gemm_row_invariance U   (run with and without
 * OPENBLAS_CORETYPE to see both kernel families). Build: cc -O2 gemm_row_invariance.c
 * $(pkg-config --cflags --libs openblas). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static void gemm(const float *a, const float *b, float *out, int m, int n, int k)
{
    cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, m, k, 1.0f, b, n, a, k, 0.0f, out, n);
}
int main(int argc, char **argv)
{
    int U = argc > 1 ? atoi(argv[1]) : 32;
    if (U < 1 || U > 1600) return 2;
    openblas_set_num_threads(1);
    int shapes[][2] = {{64, 64},    {576, 64},   {147, 64},   {256, 64},   {512, 128},
                       {1152, 128}, {2304, 256}, {4608, 512}, {2048, 512}, {1024, 2048},
                       {960, 160},  {96, 24},    {16, 96},    {144, 24},   {320, 1280}};
    int maxm = 1600;
    int bad = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int k = shapes[s][0], n = shapes[s][1];
        float *a = malloc(sizeof(float) * maxm * k), *b = malloc(sizeof(float) * k * n),
              *c0 = malloc(sizeof(float) * maxm * n), *c1 = malloc(sizeof(float) * maxm * n);
        unsigned r = 7;
        for (long i = 0; i < (long)maxm * k; i++) {
            r = r * 1103515245u + 12345u;
            a[i] = (r >> 9) / 4194304.0f - 1;
        }
        for (long i = 0; i < (long)k * n; i++) {
            r = r * 1103515245u + 12345u;
            b[i] = (r >> 9) / 4194304.0f - 1;
        }
        gemm(a, b, c0, U, n, k); /* reference: first U rows alone */
        for (int m = U; m <= maxm; m += U) {
            gemm(a, b, c1, m, n, k);
            if (memcmp(c0, c1, sizeof(float) * U * n)) {
                bad++;
                printf("k=%d n=%d: rows differ at m=%d\n", k, n, m);
                break;
            }
        }
        free(a);
        free(b);
        free(c0);
        free(c1);
    }
    printf("U=%d %s: %d shapes differ\n", U, openblas_get_corename(), bad);
}
