/* gemm_packed.c - the engine's own GEMM for convolutions, on AVX-512 or AVX2 + FMA, with
 * weights packed once at load. See gemm_packed.h for why it exists.
 *
 * Layout: b [k][n] is packed into panels of 32 columns, panel p = [k][32] floats (zero beyond
 * n). The AVX-512 micro-kernel computes 8 rows x 32 columns in 16 zmm accumulators: per k, two
 * loads of the panel row, eight broadcasts of a[r][k], sixteen FMAs. AVX2 has 16 registers,
 * not 32, so there a tile is 6 rows, run as two 6x16 blocks of 12 ymm accumulators.
 * Every output element is acc = fma(a[r][k], b[k][j], acc) for k = 0..K-1 from zero, then the
 * epilogue, whatever the tile, the tail, the number of rows in the call or the instruction
 * set: that is what makes one GEMM over a whole batch batch-invariant, and an AVX2 machine
 * give the same bits as an AVX-512 one. Only this file and winograd.c use intrinsics.
 */
#include "engine/kernels/gemm_packed.h"
#include "engine/kernels/kernels.h"

#include <immintrin.h>
#include <string.h>

gemm_isa gemm_isa_best(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return GEMM_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return GEMM_AVX2;
    return GEMM_NONE;
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
 * so the accumulators stay in registers. Row r of A is `taps` runs of `run` floats, run t
 * starting at ap[t * 8 + r] (for a plain matrix: one run of k floats per row; for a
 * convolution: one run of Cin floats per kernel tap, straight from the input, or from a zero
 * run where the tap falls in the padding). Element (r, j) is summed over t, then the run, in
 * order: the same sequence as over the rows of an im2col matrix. */
#define TILE(R)                                                                                    \
    __attribute__((target("avx512f"))) static void tile_##R(                                       \
        const float *const *ap, int taps, int run, const float *bp, float *c, size_t ldc,          \
        const gemm_epilogue *e, const float *bias, const float *res, __mmask16 m0, __mmask16 m1)   \
    {                                                                                              \
        __m512 acc0[R], acc1[R];                                                                   \
        for (int r = 0; r < R; r++) acc0[r] = _mm512_setzero_ps(), acc1[r] = _mm512_setzero_ps();  \
        for (int t = 0; t < taps; t++) {                                                           \
            const float *a[R];                                                                     \
            for (int r = 0; r < R; r++) a[r] = ap[t * 8 + r];                                      \
            const float *b = bp + (size_t)t * run * 32;                                            \
            for (int kk = 0; kk < run; kk++) {                                                     \
                __m512 b0 = _mm512_loadu_ps(b + (size_t)kk * 32);                                  \
                __m512 b1 = _mm512_loadu_ps(b + (size_t)kk * 32 + 16);                             \
                for (int r = 0; r < R; r++) {                                                      \
                    __m512 av = _mm512_set1_ps(a[r][kk]);                                          \
                    acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);                                    \
                    acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);                                    \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        __m512 lo = _mm512_set1_ps(e->lo), hi = _mm512_set1_ps(e->hi);                             \
        __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();               \
        __m512 bias1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();          \
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

typedef void tile_fn(const float *const *, int, int, const float *, float *, size_t,
                     const gemm_epilogue *, const float *, const float *, __mmask16, __mmask16);
static tile_fn *const tiles[9] = {NULL,   tile_1, tile_2, tile_3, tile_4,
                                  tile_5, tile_6, tile_7, tile_8};

/* AVX2: the epilogue of one row of a block, `cols` (1..16) columns at cr. */
static inline __attribute__((always_inline, target("avx2,fma"))) void
store_row(__m256 acc0, __m256 acc1, float *cr, const float *rr, const gemm_epilogue *e,
          __m256 bias0, __m256 bias1, __m256i m0, __m256i m1, int cols)
{
    __m256 lo = _mm256_set1_ps(e->lo), hi = _mm256_set1_ps(e->hi);
    __m256 v0 = _mm256_add_ps(acc0, bias0), v1 = _mm256_add_ps(acc1, bias1);
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    if (rr) s0 = _mm256_maskload_ps(rr, m0), s1 = _mm256_maskload_ps(rr + 8, m1);
    if (rr && !e->res_after_act) v0 = _mm256_add_ps(v0, s0), v1 = _mm256_add_ps(v1, s1);
    v0 = _mm256_min_ps(_mm256_max_ps(v0, lo), hi);
    v1 = _mm256_min_ps(_mm256_max_ps(v1, lo), hi);
    if (rr && e->res_after_act) v0 = _mm256_add_ps(v0, s0), v1 = _mm256_add_ps(v1, s1);
    if (cols == 16) {
        _mm256_storeu_ps(cr, v0);
        _mm256_storeu_ps(cr + 8, v1);
    } else {
        _mm256_maskstore_ps(cr, m0, v0);
        _mm256_maskstore_ps(cr + 8, m1, v1);
    }
}

/* AVX2: rows [0, R) (R <= 6) of one tile against `cols` (1..16) columns of the panel starting
 * at bp / c / bias / res: up to 12 ymm accumulators (with two panel vectors and a broadcast,
 * 15 of the 16 registers; 8 loads per 12 FMAs), the same sums and epilogue as the AVX-512
 * tile. The accumulators are named variables, one pair per row (ROWS_R expands X for rows
 * 0..R-1): as arrays, with 16 registers, GCC stored them to the stack on every step, which
 * halved the speed (the AVX-512 tile, with 32 registers, keeps its arrays in registers). */
#define ROWS_1(X) X(0)
#define ROWS_2(X) ROWS_1(X) X(1)
#define ROWS_3(X) ROWS_2(X) X(2)
#define ROWS_4(X) ROWS_3(X) X(3)
#define ROWS_5(X) ROWS_4(X) X(4)
#define ROWS_6(X) ROWS_5(X) X(5)
#define ROW_DECL(r)                                                                                \
    __m256 x##r##0 = _mm256_setzero_ps(), x##r##1 = _mm256_setzero_ps();                           \
    const float *a##r = NULL;
#define ROW_PTR(r) a##r = ap[t * 8 + r];
#define ROW_FMA(r)                                                                                 \
    {                                                                                              \
        __m256 av = _mm256_broadcast_ss(a##r + kk);                                                \
        x##r##0 = _mm256_fmadd_ps(av, b0, x##r##0);                                                \
        x##r##1 = _mm256_fmadd_ps(av, b1, x##r##1);                                                \
    }
#define ROW_STORE(r)                                                                               \
    store_row(x##r##0, x##r##1, c + (size_t)r * ldc, res ? res + (size_t)r * ldc : NULL, e, bias0, \
              bias1, m0, m1, cols);

#define BLOCK(R)                                                                                   \
    static inline __attribute__((always_inline, target("avx2,fma"))) void block_##R(               \
        const float *const *ap, int taps, int run, const float *bp, float *c, size_t ldc,          \
        const gemm_epilogue *e, const float *bias, const float *res, int cols)                     \
    {                                                                                              \
        ROWS_##R(ROW_DECL);                                                                        \
        for (int t = 0; t < taps; t++) {                                                           \
            ROWS_##R(ROW_PTR);                                                                     \
            const float *b = bp + (size_t)t * run * 32;                                            \
            for (int kk = 0; kk < run; kk++) {                                                     \
                __m256 b0 = _mm256_loadu_ps(b + (size_t)kk * 32);                                  \
                __m256 b1 = _mm256_loadu_ps(b + (size_t)kk * 32 + 8);                              \
                ROWS_##R(ROW_FMA);                                                                 \
            }                                                                                      \
        }                                                                                          \
        __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);                                  \
        __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);                            \
        __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lane);                        \
        __m256 bias0 = bias ? _mm256_maskload_ps(bias, m0) : _mm256_setzero_ps();                  \
        __m256 bias1 = bias ? _mm256_maskload_ps(bias + 8, m1) : _mm256_setzero_ps();              \
        ROWS_##R(ROW_STORE);                                                                       \
    }

BLOCK(1)
BLOCK(2)
BLOCK(3)
BLOCK(4)
BLOCK(5)
BLOCK(6)

/* Rows [0, R) of one 6x32 tile on AVX2: each 16-column half of the panel. */
#define TILE_AVX2(R)                                                                               \
    __attribute__((target("avx2,fma"))) static void tile2_##R(                                     \
        const float *const *ap, int taps, int run, const float *bp, float *c, size_t ldc,          \
        const gemm_epilogue *e, const float *bias, const float *res, int cols)                     \
    {                                                                                              \
        for (int h = 0; h < cols; h += 16)                                                         \
            block_##R(ap, taps, run, bp + h, c + h, ldc, e, bias ? bias + h : NULL,                \
                      res ? res + h : NULL, cols - h < 16 ? cols - h : 16);                        \
    }

TILE_AVX2(1)
TILE_AVX2(2)
TILE_AVX2(3)
TILE_AVX2(4)
TILE_AVX2(5)
TILE_AVX2(6)

typedef void tile2_fn(const float *const *, int, int, const float *, float *, size_t,
                      const gemm_epilogue *, const float *, const float *, int);
static tile2_fn *const tiles2[7] = {NULL, tile2_1, tile2_2, tile2_3, tile2_4, tile2_5, tile2_6};

/* Weights up to this size are read per row tile from L2 (run_tiles). */
#define TILES_OUTER_BYTES (256 << 10)

/* One tile (rows r0.. of the call, pointers in ap) against panel p. */
static void tile_panel(const float *const *ap, int r0, int rows, int taps, int run, size_t k,
                       const float *packed, int n, int p, float *c, const gemm_epilogue *e,
                       int avx512)
{
    int cols = n - p * 32 < 32 ? n - p * 32 : 32;
    const float *bp = packed + (size_t)p * k * 32, *bias = e->bias ? e->bias + p * 32 : NULL;
    const float *res = e->res ? e->res + (size_t)r0 * n + p * 32 : NULL;
    float *cp = c + (size_t)r0 * n + p * 32;
    if (!avx512) {
        tiles2[rows](ap, taps, run, bp, cp, (size_t)n, e, bias, res, cols);
        return;
    }
    __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    __mmask16 m1 = cols <= 16 ? 0 : cols >= 32 ? 0xffff : (__mmask16)((1u << (cols - 16)) - 1);
    tiles[rows](ap, taps, run, bp, cp, (size_t)n, e, bias, res, m0, m1);
}

/* Ask for the output (to write) and residual lines of tile (r0, p) a tile ahead. With small
 * weights the time goes to these streams (ResNet50's 56x56 convolutions write 3.2 MB per
 * sample and read as much residual), which the hardware prefetcher alone does not hide:
 * ResNet50 batch 8 measured ~3% faster with this. */
static void prefetch_tile(const float *c, const float *res, int r0, int th, int n, int p)
{
    for (int r = r0; r < r0 + th; r++) {
        size_t off = (size_t)r * n + p * 32;
        __builtin_prefetch(c + off, 1);
        __builtin_prefetch(c + off + 16, 1);
        if (res) {
            __builtin_prefetch(res + off);
            __builtin_prefetch(res + off + 16);
        }
    }
}

/* Every tile (8 rows on AVX-512, 6 on AVX2) of rows [0, m) against panels [p_lo, p_hi); `rows_of`
 * fills the tile's row pointers, as `taps` runs of `run` floats, or as `taps / merge` runs of `run
 * * merge` floats when it returns 1 (consecutive taps that are consecutive in memory: the same sums
 * in the same order, fewer and longer runs). The loop order only changes what stays in cache, never
 * an element's arithmetic: with small weights, tiles outside and panels inside (a tile's rows
 * are read and its pointers made once, the weights come from L2: ResNet50's 56x56 1x1
 * convolutions and the stem); with large weights, panels outside (one panel, k x 32 floats,
 * stays in cache while the rows stream past it). */
static void run_tiles(int m, int taps, int run, int merge, const float *packed, int n, int p_lo,
                      int p_hi, float *c, const gemm_epilogue *e,
                      int (*rows_of)(const void *, int r0, int rows, const float **ap),
                      const void *arg, gemm_isa isa)
{
    size_t k = (size_t)taps * run;
    const float *ap[8 * 49]; /* taps <= 49: the largest kernel of both families is 7x7 */
    int avx512 = isa == GEMM_AVX512, th = avx512 ? 8 : 6;
    if (k * 32 * sizeof(float) * (p_hi - p_lo) <= TILES_OUTER_BYTES) {
        for (int r0 = 0; r0 < m; r0 += th) {
            int rows = m - r0 < th ? m - r0 : th;
            int merged = rows_of(arg, r0, rows, ap);
            for (int p = p_lo; p < p_hi; p++) {
                if (r0 + 2 * th <= m) prefetch_tile(c, e->res, r0 + th, th, n, p);
                tile_panel(ap, r0, rows, merged ? taps / merge : taps, merged ? run * merge : run,
                           k, packed, n, p, c, e, avx512);
            }
        }
        return;
    }
    for (int p = p_lo; p < p_hi; p++)
        for (int r0 = 0; r0 < m; r0 += th) {
            int rows = m - r0 < th ? m - r0 : th;
            int merged = rows_of(arg, r0, rows, ap);
            tile_panel(ap, r0, rows, merged ? taps / merge : taps, merged ? run * merge : run, k,
                       packed, n, p, c, e, avx512);
        }
}

typedef struct {
    const float *a;
    int k;
} plain_rows;

static int plain_rows_of(const void *arg, int r0, int rows, const float **ap)
{
    const plain_rows *pr = arg;
    for (int r = 0; r < rows; r++) ap[r] = pr->a + (size_t)(r0 + r) * pr->k;
    return 0;
}

void gemm_packed(const float *a, int m, int k, const float *packed, int n, int p_lo, int p_hi,
                 float *c, const gemm_epilogue *e, gemm_isa isa)
{
    plain_rows pr = {a, k};
    run_tiles(m, 1, k, 1, packed, n, p_lo, p_hi, c, e, plain_rows_of, &pr, isa);
}

/* Channels up to which a tap row at the edge of the input is copied, zero-padded, so that
 * every tile can use one run per kernel row: the 3-channel stems. */
#define MERGE_MAX_C 8

typedef struct {
    const float *in, *zeros;
    const conv_geom *g;
    int k, stride, lo;
    float *edge; /* 8 rows x k kernel rows x k * MERGE_MAX_C floats */
} conv_rows;

/* One run per kernel row (k taps of c floats, consecutive in memory in the input and in the
 * weights) when every row of the tile has its kernel row inside the input horizontally, or
 * when channels are few enough to copy the rows that do not (the copy is zero-padded); kernel
 * rows in the padding above or below read a run of zeros. Otherwise one run per tap. The
 * merged form is what makes a 3-channel stem fast: 7 runs of 21 floats, not 49 of 3. */
static int conv_rows_of(const void *arg, int r0, int rows, const float **ap)
{
    const conv_rows *cr = arg;
    const conv_geom *g = cr->g;
    int k = cr->k, c = g->c, inside = 1;
    for (int r = 0; r < rows; r++) {
        int ix = (cr->lo + r0 + r) % g->ow * cr->stride - g->pl;
        inside &= ix >= 0 && ix + k <= g->w;
    }
    if (k > 1 && (inside || c <= MERGE_MAX_C)) {
        for (int r = 0; r < rows; r++) {
            int out = cr->lo + r0 + r, oy = out / g->ow, ox = out % g->ow;
            int ix = ox * cr->stride - g->pl;
            for (int ky = 0; ky < k; ky++) {
                int iy = oy * cr->stride - g->pt + ky;
                const float *row = cr->zeros; /* kernel rows in the padding */
                if (iy >= 0 && iy < g->h) {
                    const float *line = cr->in + (size_t)iy * g->w * c;
                    if (ix >= 0 && ix + k <= g->w) {
                        row = line + (size_t)ix * c;
                    } else {
                        float *copy = cr->edge + (size_t)(ky * 8 + r) * k * c;
                        for (int kx = 0; kx < k; kx++)
                            if (ix + kx >= 0 && ix + kx < g->w)
                                memcpy(copy + kx * c, line + (size_t)(ix + kx) * c,
                                       c * sizeof *copy);
                            else
                                memset(copy + kx * c, 0, c * sizeof *copy);
                        row = copy;
                    }
                }
                ap[ky * 8 + r] = row;
            }
        }
        return 1;
    }
    for (int r = 0; r < rows; r++) {
        int out = cr->lo + r0 + r, oy = out / g->ow, ox = out % g->ow;
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                int iy = oy * cr->stride - g->pt + ky, ix = ox * cr->stride - g->pl + kx;
                int in_map = iy >= 0 && iy < g->h && ix >= 0 && ix < g->w;
                ap[(ky * k + kx) * 8 + r] =
                    in_map ? cr->in + ((size_t)iy * g->w + ix) * c : cr->zeros;
            }
    }
    return 0;
}

void conv_packed(const float *in, const conv_geom *g, int k, int stride, int lo, int hi,
                 const float *zeros, const float *packed, int n, int p_lo, int p_hi, float *out,
                 const gemm_epilogue *e, gemm_isa isa)
{
    float edge[8 * 7 * 7 * MERGE_MAX_C];
    conv_rows cr = {in, zeros, g, k, stride, lo, edge};
    run_tiles(hi - lo, k * k, g->c, k, packed, n, p_lo, p_hi, out, e, conv_rows_of, &cr, isa);
}
