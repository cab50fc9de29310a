/* gemm_avx512.c - the engine's own GEMM for convolutions, on AVX-512, with weights packed
 * once at load. See gemm_avx512.h for why it exists.
 *
 * Layout: b [k][n] is packed into panels of 32 columns, panel p = [k][32] floats (zero beyond
 * n). The micro-kernel computes 8 rows x 32 columns in 16 zmm accumulators: per k, two loads
 * of the panel row, eight broadcasts of a[r][k], sixteen FMAs. Every output element is
 * acc = fma(a[r][k], b[k][j], acc) for k = 0..K-1 from zero, whatever the tile, the tail or
 * the number of rows in the call: that is what makes one GEMM over a whole batch
 * batch-invariant. Only this file uses intrinsics; callers check gemm_avx512_available().
 */
#include "gemm_avx512.h"

#include <immintrin.h>
#include <string.h>

int gemm_avx512_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

size_t gemm_packed_floats(int k, int n)
{
    return (size_t)k * ((n + 31) / 32 * 32);
}

void gemm_pack_b(const float *b, int k, int n, float *packed)
{
    for (int p = 0; p < (n + 31) / 32; p++) {
        float *dst = packed + (size_t)p * k * 32;
        int cols = n - p * 32 < 32 ? n - p * 32 : 32;
        for (int kk = 0; kk < k; kk++) {
            memcpy(dst + (size_t)kk * 32, b + (size_t)kk * n + p * 32, cols * sizeof(float));
            memset(dst + (size_t)kk * 32 + cols, 0, (32 - cols) * sizeof(float));
        }
    }
}

/* Rows [0, R) of one 8x32 tile, epilogue included; R is a compile-time constant at each call
 * so the accumulators stay in registers. */
#define TILE(R)                                                                                    \
    __attribute__((target("avx512f"))) static void tile_##R(                                       \
        const float *a, size_t lda, const float *bp, int k, float *c, size_t ldc,                  \
        const gemm_epilogue *e, const float *bias, const float *res, __mmask16 m0, __mmask16 m1)   \
    {                                                                                              \
        __m512 acc0[R], acc1[R];                                                                   \
        for (int r = 0; r < R; r++) acc0[r] = _mm512_setzero_ps(), acc1[r] = _mm512_setzero_ps();  \
        for (int kk = 0; kk < k; kk++) {                                                           \
            __m512 b0 = _mm512_loadu_ps(bp + (size_t)kk * 32);                                     \
            __m512 b1 = _mm512_loadu_ps(bp + (size_t)kk * 32 + 16);                                \
            for (int r = 0; r < R; r++) {                                                          \
                __m512 av = _mm512_set1_ps(a[r * lda + kk]);                                       \
                acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);                                        \
                acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);                                        \
            }                                                                                      \
        }                                                                                          \
        __m512 lo = _mm512_set1_ps(e->lo), hi = _mm512_set1_ps(e->hi);                             \
        __m512 bias0 = _mm512_maskz_loadu_ps(m0, bias),                                            \
               bias1 = _mm512_maskz_loadu_ps(m1, bias + 16);                                       \
        for (int r = 0; r < R; r++) {                                                              \
            __m512 v0 = _mm512_add_ps(acc0[r], bias0), v1 = _mm512_add_ps(acc1[r], bias1);         \
            __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();                             \
            if (res) {                                                                             \
                s0 = _mm512_maskz_loadu_ps(m0, res + r * ldc);                                     \
                s1 = _mm512_maskz_loadu_ps(m1, res + r * ldc + 16);                                \
            }                                                                                      \
            if (res && !e->res_after_act) v0 = _mm512_add_ps(v0, s0), v1 = _mm512_add_ps(v1, s1);  \
            v0 = _mm512_min_ps(_mm512_max_ps(v0, lo), hi);                                         \
            v1 = _mm512_min_ps(_mm512_max_ps(v1, lo), hi);                                         \
            if (res && e->res_after_act) v0 = _mm512_add_ps(v0, s0), v1 = _mm512_add_ps(v1, s1);   \
            _mm512_mask_storeu_ps(c + r * ldc, m0, v0);                                            \
            _mm512_mask_storeu_ps(c + r * ldc + 16, m1, v1);                                       \
        }                                                                                          \
    }

TILE(8)
TILE(1)
TILE(2)
TILE(3)
TILE(4)
TILE(5)
TILE(6)
TILE(7)

typedef void tile_fn(const float *, size_t, const float *, int, float *, size_t,
                     const gemm_epilogue *, const float *, const float *, __mmask16, __mmask16);
static tile_fn *const tiles[9] = {NULL,   tile_1, tile_2, tile_3, tile_4,
                                  tile_5, tile_6, tile_7, tile_8};

void gemm_packed(const float *a, int m, int k, const float *packed, int n, int p_lo, int p_hi,
                 float *c, const gemm_epilogue *e)
{
    for (int p = p_lo; p < p_hi; p++) {
        const float *bp = packed + (size_t)p * k * 32;
        int cols = n - p * 32 < 32 ? n - p * 32 : 32;
        __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
        __mmask16 m1 = cols <= 16 ? 0 : cols >= 32 ? 0xffff : (__mmask16)((1u << (cols - 16)) - 1);
        for (int r = 0; r < m; r += 8) {
            int rows = m - r < 8 ? m - r : 8;
            tiles[rows](a + (size_t)r * k, (size_t)k, bp, k, c + (size_t)r * n + p * 32, (size_t)n,
                        e, e->bias + p * 32, e->res ? e->res + (size_t)r * n + p * 32 : NULL, m0,
                        m1);
        }
    }
}
