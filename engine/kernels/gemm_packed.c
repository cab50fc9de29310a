/* gemm_packed.c - the engine's own GEMM for convolutions, on AVX-512 or AVX2 + FMA, with
 * weights packed once at load. See gemm_packed.h for why it exists.
 *
 * Layout: b [k][n] is packed into panels of 32 columns (zero beyond n). The AVX-512
 * micro-kernel computes 8 rows x 32 columns in 16 zmm accumulators: per k, two loads of the
 * panel row ([k][32]), eight broadcasts of a[r][k], sixteen FMAs. AVX2 has 16 registers, not
 * 32, so there a tile is 6 rows, run as two 6x16 blocks of 12 ymm accumulators, one per half
 * of the panel, each half packed on its own ([k][16]) so a block reads one line per k.
 * Every output element is acc = fma(a[r][k], b[k][j], acc) for k = 0..K-1 from zero, then the
 * epilogue, whatever the tile, the tail, the number of rows in the call or the instruction
 * set: that is what makes one GEMM over a whole batch batch-invariant, and an AVX2 machine
 * give the same bits as an AVX-512 one.
 *
 * The file is built for x86-64-v3 (AVX2 + FMA), its AVX-512 functions by target attribute; the
 * shared driver (run_tiles) is inlined into each instruction set's entry points with that set's
 * tile function and height as constants, so no call tests the instruction set.
 */
#include "engine/kernels/gemm_packed.h"
#include "engine/kernels/kernels.h"
#include "engine/limits.h"

#include <immintrin.h>
#include <string.h>

/* The panel width and the tiles' row-pointer stride, as the macros below spell them. */
#define PANEL GEMM_PANEL_COLS
#define AP_STRIDE GEMM_MAX_TILE_ROWS
/* The AVX2 tile's width: half a panel, packed on its own (gemm_pack_b_halves). */
#define HALF 16
/* Bytes per cache line. */
#define LINE 64

/* GEMMs of up to this many rows (ResNet50 at batch 1: the 7x7 layers' 49, layer4's Winograd
 * GEMMs' 16, the GroupNorm-fused steps of about 48, a two-thread team's 98 rows of the 14x14
 * layers) read each panel from memory for a few row tiles only, so the first tile waits on its
 * lines (layer4 streams 4-17 MB of weights per op). There the tiles of a panel ask for the
 * next part's lines into L2 as they go (the next panel's, or the rest of this one's when it
 * is taken in parts), one panel row every few k-steps between FMAs (not in a burst: that held
 * up the tiles' own loads, 0.85-0.97x). Batch 1, two threads, one process alternating builds,
 * up to 64 rows: on Zen 3 (AVX2) layer4's Winograd convolutions 1.22-1.30x, its 1x1s
 * 1.07-1.12x, ResNet50 1.01-1.02x; on an Emerald Rapids Xeon (AVX-512) layer4 1.35-1.50x,
 * layer3's GroupNorm-fused 1x1s 1.22-1.28x, ResNet50 1.07-1.10x; batch 8 and MobileNetV2
 * within 1-3%. Across parts (torch's 3x3/2 layer4.0.conv2, 49 rows) and up to 128 rows, on the
 * Xeon: layer4.0.conv2 1.43-1.46x, layer3's 1x1s from 1024 channels 1.20-1.25x, ResNet50
 * 1.018-1.033x, MobileNetV2 1.005-1.015x (AVX2 kernels: those ops 1.05-1.20x, the network
 * 0.996x). */
#define NEXT_PANEL_MAX_ROWS 128

/* A tile's sums may be taken in parts over k (run_tiles): a part after the first starts from
 * the sums the part before stored in c, and a part before the last stores its sums as they are,
 * no epilogue. A stored float reloads exactly, so every element gets the same FMA sequence as
 * in one part. */
#define PART_CONTINUE 1
#define PART_MORE 2

/* `count` panels of `width` columns (32, or 16 for the AVX2 halves), each [k][width], zero
 * beyond n (a panel wholly past n is all zeros). */
static void pack_panels(const float *b, int k, int n, int width, int count, float *packed)
{
    for (int p = 0; p < count; p++) {
        float *dst = packed + (size_t)p * k * width;
        int cols = n - p * width < width ? n - p * width : width;
        if (cols < 0) cols = 0;
        for (int kk = 0; kk < k; kk++) {
            /* a panel past n has no source columns: b + p * width would point beyond b */
            if (cols)
                memcpy(dst + (size_t)kk * width, b + (size_t)kk * n + p * width,
                       cols * sizeof(float));
            memset(dst + (size_t)kk * width + cols, 0, (width - cols) * sizeof(float));
        }
    }
}

void gemm_pack_b(const float *b, int k, int n, float *packed)
{
    pack_panels(b, k, n, PANEL, (n + PANEL - 1) / PANEL, packed);
}

void gemm_pack_b_halves(const float *b, int k, int n, float *packed)
{
    /* a panel of 32 columns is its two halves of 16, [k][16] each, one after the other */
    pack_panels(b, k, n, HALF, (n + PANEL - 1) / PANEL * 2, packed);
}

/* ROWS_R(X) expands X for rows 0..R-1: the tiles below keep each row's accumulators in named
 * variables, not arrays. As arrays, the AVX-512 tile's lived on the stack outside the k-loop
 * (zeroed with `rep stos`, loaded before it, stored after it, reloaded for the epilogue): about
 * 150 cycles a call, which small k pays most for. Named, on a Zen 5 EPYC (one process
 * alternating builds, 2 threads): ResNet50 batch 1 1.06x (torch) / 1.08x (keras), batch 8
 * 1.04x, MobileNetV2 1.12-1.16x; a 3136 x 64 -> 256 GEMM 1.17-1.31x. */
#define ROWS_1(X) X(0)
#define ROWS_2(X) ROWS_1(X) X(1)
#define ROWS_3(X) ROWS_2(X) X(2)
#define ROWS_4(X) ROWS_3(X) X(3)
#define ROWS_5(X) ROWS_4(X) X(4)
#define ROWS_6(X) ROWS_5(X) X(5)
#define ROWS_7(X) ROWS_6(X) X(6)
#define ROWS_8(X) ROWS_7(X) X(7)
#define ROW_PTR(r) a##r = ap[t * AP_STRIDE + r];

/* AVX-512: the epilogue of one row of a tile (masks m0, m1 over its two 16-column halves). */
static inline __attribute__((always_inline, target("avx512f"))) void
store_row512(__m512 acc0, __m512 acc1, float *cr, const float *rr, const gemm_epilogue *e,
             __m512 bias0, __m512 bias1, __mmask16 m0, __mmask16 m1)
{
    __m512 lo = _mm512_set1_ps(e->lo), hi = _mm512_set1_ps(e->hi);
    __m512 v0 = _mm512_add_ps(acc0, bias0), v1 = _mm512_add_ps(acc1, bias1);
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    if (rr) s0 = _mm512_maskz_loadu_ps(m0, rr), s1 = _mm512_maskz_loadu_ps(m1, rr + 16);
    if (rr && !e->res_after_act) v0 = _mm512_add_ps(v0, s0), v1 = _mm512_add_ps(v1, s1);
    v0 = _mm512_min_ps(_mm512_max_ps(v0, lo), hi);
    v1 = _mm512_min_ps(_mm512_max_ps(v1, lo), hi);
    if (rr && e->res_after_act) v0 = _mm512_add_ps(v0, s0), v1 = _mm512_add_ps(v1, s1);
    _mm512_mask_storeu_ps(cr, m0, v0);
    _mm512_mask_storeu_ps(cr + 16, m1, v1);
}

#define ZROW_DECL(r)                                                                               \
    __m512 z##r##0 = _mm512_setzero_ps(), z##r##1 = _mm512_setzero_ps();                           \
    const float *a##r = NULL;
#define ZROW_LOAD(r)                                                                               \
    z##r##0 = _mm512_maskz_loadu_ps(m0, c + (size_t)r * ldc);                                      \
    z##r##1 = _mm512_maskz_loadu_ps(m1, c + (size_t)r * ldc + 16);
#define ZROW_FMA(r)                                                                                \
    {                                                                                              \
        __m512 av = _mm512_set1_ps(a##r[kk]);                                                      \
        z##r##0 = _mm512_fmadd_ps(av, b0, z##r##0);                                                \
        z##r##1 = _mm512_fmadd_ps(av, b1, z##r##1);                                                \
    }
#define ZROW_SAVE(r)                                                                               \
    _mm512_mask_storeu_ps(c + (size_t)r * ldc, m0, z##r##0);                                       \
    _mm512_mask_storeu_ps(c + (size_t)r * ldc + 16, m1, z##r##1);
#define ZROW_STORE(r)                                                                              \
    store_row512(z##r##0, z##r##1, c + (size_t)r * ldc, res ? res + (size_t)r * ldc : NULL, e,     \
                 bias0, bias1, m0, m1);

/* Rows [0, R) of one 8x32 tile, epilogue included; R is a compile-time constant at each call
 * so the accumulators stay in registers. Row r of A is `taps` runs of `run` floats, run t
 * starting at ap[t * AP_STRIDE + r] (for a plain matrix: one run of k floats per row; for a
 * convolution: one run of Cin floats per kernel tap, straight from the input, or from a zero
 * run where the tap falls in the padding). Element (r, j) is summed over t, then the run, in
 * order: the same sequence as over the rows of an im2col matrix. */
#define TILE(R, NAME, PF)                                                                          \
    __attribute__((target("avx512f"))) static void NAME(                                           \
        const float *const *ap, int taps, int run, const float *bp, float *c, size_t ldc,          \
        const gemm_epilogue *e, const float *bias, const float *res, __mmask16 m0, __mmask16 m1,   \
        int part, const char *pf, int pf_every)                                                    \
    {                                                                                              \
        int pf_left = pf_every;                                                                    \
        ROWS_##R(ZROW_DECL);                                                                       \
        if (part & PART_CONTINUE) {                                                                \
            ROWS_##R(ZROW_LOAD);                                                                   \
        }                                                                                          \
        for (int t = 0; t < taps; t++) {                                                           \
            ROWS_##R(ROW_PTR);                                                                     \
            const float *b = bp + (size_t)t * run * PANEL;                                         \
            for (int kk = 0; kk < run; kk++) {                                                     \
                if (PF && --pf_left == 0) { /* a panel row is two lines */                         \
                    pf_left = pf_every;                                                            \
                    _mm_prefetch(pf, _MM_HINT_T1);                                                 \
                    _mm_prefetch(pf + LINE, _MM_HINT_T1);                                          \
                    pf += 2 * LINE;                                                                \
                }                                                                                  \
                __m512 b0 = _mm512_loadu_ps(b + (size_t)kk * PANEL);                               \
                __m512 b1 = _mm512_loadu_ps(b + (size_t)kk * PANEL + 16);                          \
                ROWS_##R(ZROW_FMA);                                                                \
            }                                                                                      \
        }                                                                                          \
        if (part & PART_MORE) {                                                                    \
            ROWS_##R(ZROW_SAVE);                                                                   \
            return;                                                                                \
        }                                                                                          \
        __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();               \
        __m512 bias1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();          \
        ROWS_##R(ZROW_STORE);                                                                      \
    }

/* Each height twice: the prefetching variant (PF 1) also asks, across its k-steps, for lines
 * of weights a later tile will read (run_tiles); the other's k-loop has no test. */
#define TILES(R) TILE(R, tile_##R, 0) TILE(R, tilepf_##R, 1)
TILES(1)
TILES(2)
TILES(3)
TILES(4)
TILES(5)
TILES(6)
TILES(7)
TILES(8)

typedef void tile_fn(const float *const *, int, int, const float *, float *, size_t,
                     const gemm_epilogue *, const float *, const float *, __mmask16, __mmask16, int,
                     const char *, int);
static tile_fn *const tiles[2][9] = {
    {NULL, tile_1, tile_2, tile_3, tile_4, tile_5, tile_6, tile_7, tile_8},
    {NULL, tilepf_1, tilepf_2, tilepf_3, tilepf_4, tilepf_5, tilepf_6, tilepf_7, tilepf_8}};

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
 * tile. The accumulators are named variables, one pair per row (ROWS_R): as arrays, with 16
 * registers, GCC stored them to the stack on every step, which halved the speed.
 * GCC does not unroll the k-loop at -O3; unrolled four times, ResNet50 ran 1.02-1.04x faster
 * (in one process against the loop as written; twice or eight times measured the same). */
#define ROW_DECL(r)                                                                                \
    __m256 x##r##0 = _mm256_setzero_ps(), x##r##1 = _mm256_setzero_ps();                           \
    const float *a##r = NULL;
#define ROW_FMA(r)                                                                                 \
    {                                                                                              \
        __m256 av = _mm256_broadcast_ss(a##r + kk);                                                \
        x##r##0 = _mm256_fmadd_ps(av, b0, x##r##0);                                                \
        x##r##1 = _mm256_fmadd_ps(av, b1, x##r##1);                                                \
    }
#define ROW_STORE(r)                                                                               \
    store_row(x##r##0, x##r##1, c + (size_t)r * ldc, res ? res + (size_t)r * ldc : NULL, e, bias0, \
              bias1, m0, m1, cols);

#define ROW_LOAD(r)                                                                                \
    x##r##0 = _mm256_maskload_ps(c + (size_t)r * ldc, m0);                                         \
    x##r##1 = _mm256_maskload_ps(c + (size_t)r * ldc + 8, m1);
#define ROW_SAVE(r)                                                                                \
    _mm256_maskstore_ps(c + (size_t)r * ldc, m0, x##r##0);                                         \
    _mm256_maskstore_ps(c + (size_t)r * ldc + 8, m1, x##r##1);

#define BLOCK(R)                                                                                   \
    static inline __attribute__((always_inline, target("avx2,fma"))) void block_##R(               \
        const float *const *ap, int taps, int run, const float *bp, float *c, size_t ldc,          \
        const gemm_epilogue *e, const float *bias, const float *res, int cols, int part,           \
        const char *pf, int pf_every)                                                              \
    {                                                                                              \
        int pf_left = pf_every;                                                                    \
        __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);                                  \
        __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);                            \
        __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lane);                        \
        ROWS_##R(ROW_DECL);                                                                        \
        if (part & PART_CONTINUE) {                                                                \
            ROWS_##R(ROW_LOAD);                                                                    \
        }                                                                                          \
        for (int t = 0; t < taps; t++) {                                                           \
            ROWS_##R(ROW_PTR);                                                                     \
            const float *b = bp + (size_t)t * run * HALF;                                          \
            _Pragma("GCC unroll 4") for (int kk = 0; kk < run; kk++)                               \
            {                                                                                      \
                if (pf && --pf_left == 0) {                                                        \
                    pf_left = pf_every;                                                            \
                    _mm_prefetch(pf, _MM_HINT_T1);                                                 \
                    pf += LINE;                                                                    \
                }                                                                                  \
                __m256 b0 = _mm256_loadu_ps(b + (size_t)kk * HALF);                                \
                __m256 b1 = _mm256_loadu_ps(b + (size_t)kk * HALF + 8);                            \
                ROWS_##R(ROW_FMA);                                                                 \
            }                                                                                      \
        }                                                                                          \
        if (part & PART_MORE) {                                                                    \
            ROWS_##R(ROW_SAVE);                                                                    \
            return;                                                                                \
        }                                                                                          \
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

/* Rows [0, R) of one 6x32 tile on AVX2: each 16-column half of the panel. The prefetching
 * variant (PF 1) also asks, across its k-steps, for rows of weights a later tile will read
 * (run_tiles), each half's block for its half (`half` floats on); the other gets a constant
 * NULL, so its k-loop has no test. */
#define TILE_AVX2(R, NAME, PF)                                                                     \
    __attribute__((target("avx2,fma"))) static void NAME(                                          \
        const float *const *ap, int taps, int run, const float *bp, float *c, size_t ldc,          \
        const gemm_epilogue *e, const float *bias, const float *res, int cols, int part,           \
        size_t half, const float *pf, int pf_every)                                                \
    {                                                                                              \
        for (int h = 0; h < cols; h += HALF)                                                       \
            block_##R(ap, taps, run, bp + (h ? half : 0), c + h, ldc, e, bias ? bias + h : NULL,   \
                      res ? res + h : NULL, cols - h < HALF ? cols - h : HALF, part,               \
                      PF ? (const char *)(pf + (h ? half : 0)) : NULL, pf_every);                  \
    }

#define TILES_AVX2(R) TILE_AVX2(R, tile2_##R, 0) TILE_AVX2(R, tile2pf_##R, 1)
TILES_AVX2(1)
TILES_AVX2(2)
TILES_AVX2(3)
TILES_AVX2(4)
TILES_AVX2(5)
TILES_AVX2(6)

typedef void tile2_fn(const float *const *, int, int, const float *, float *, size_t,
                      const gemm_epilogue *, const float *, const float *, int, int, size_t,
                      const float *, int);
static tile2_fn *const tiles2[2][7] = {
    {NULL, tile2_1, tile2_2, tile2_3, tile2_4, tile2_5, tile2_6},
    {NULL, tile2pf_1, tile2pf_2, tile2pf_3, tile2pf_4, tile2pf_5, tile2pf_6}};

/* Where the tile at row r0 of the call meets panel p: its weights, bias, residual, output,
 * and how many of the panel's columns exist (1..32). */
typedef struct {
    const float *b, *bias, *res;
    float *c;
    int cols;
} tile_at;

static inline tile_at locate(int r0, size_t k, const float *packed, int n, int p, float *c,
                             const gemm_epilogue *e)
{
    tile_at t = {packed + (size_t)p * k * PANEL, e->bias ? e->bias + p * PANEL : NULL,
                 e->res ? e->res + (size_t)r0 * n + p * PANEL : NULL,
                 c + (size_t)r0 * n + p * PANEL, n - p * PANEL < PANEL ? n - p * PANEL : PANEL};
    return t;
}

/* One tile (rows r0.. of the call, `rows` of them, pointers in ap) against panel p, from its
 * row k0 on (a part, `part` saying which: see PART_CONTINUE); unless pf_panel is NULL, asking
 * for that packed panel's rows from pf_k0 on into L2, one every pf_every k-steps
 * (NEXT_PANEL_MAX_ROWS). */
typedef void tile_panel_fn(const float *const *ap, int r0, int rows, int taps, int run, size_t k,
                           size_t k0, const float *packed, int n, int p, float *c,
                           const gemm_epilogue *e, int part, const float *pf_panel, size_t pf_k0,
                           int pf_every);

static void tile_panel_avx512(const float *const *ap, int r0, int rows, int taps, int run, size_t k,
                              size_t k0, const float *packed, int n, int p, float *c,
                              const gemm_epilogue *e, int part, const float *pf_panel, size_t pf_k0,
                              int pf_every)
{
    const char *pf = pf_panel ? (const char *)(pf_panel + pf_k0 * PANEL) : NULL;
    tile_at t = locate(r0, k, packed, n, p, c, e);
    t.b += k0 * PANEL;
    __mmask16 m0 = t.cols >= 16 ? 0xffff : (__mmask16)((1u << t.cols) - 1);
    __mmask16 m1 = t.cols <= 16   ? 0
                   : t.cols >= 32 ? 0xffff
                                  : (__mmask16)((1u << (t.cols - 16)) - 1);
    tiles[pf != NULL][rows](ap, taps, run, t.b, t.c, (size_t)n, e, t.bias, t.res, m0, m1, part, pf,
                            pf_every);
}

static void tile_panel_avx2(const float *const *ap, int r0, int rows, int taps, int run, size_t k,
                            size_t k0, const float *packed, int n, int p, float *c,
                            const gemm_epilogue *e, int part, const float *pf_panel, size_t pf_k0,
                            int pf_every)
{
    tile_at t = locate(r0, k, packed, n, p, c, e);
    t.b += k0 * HALF; /* the first half's rows from k0; the second half's k * HALF floats on */
    const float *pf = pf_panel ? pf_panel + pf_k0 * HALF : NULL;
    tiles2[pf != NULL][rows](ap, taps, run, t.b, t.c, (size_t)n, e, t.bias, t.res, t.cols, part,
                             k * HALF, pf, pf_every);
}

/* Ask for the output (to write) and residual lines of tile (r0, p) a tile ahead. With small
 * weights the time goes to these streams (ResNet50's 56x56 convolutions write 3.2 MB per
 * sample and read as much residual), which the hardware prefetcher alone does not hide:
 * ResNet50 batch 8 measured ~3% faster with this. Panel by panel, a tile's rows are a row
 * stride apart (4-8 KB in ResNet50's layer3 and 4), a pattern the prefetcher follows badly:
 * ask there too (196x256 -> 1024 with residual alone, one thread: 1.7-5% faster;
 * ResNet50's residual 1x1s ~1.5% faster against its other 1x1s, one thread). */
static void prefetch_tile(const float *c, const float *res, int r0, int th, int n, int p)
{
    for (int r = r0; r < r0 + th; r++) {
        size_t off = (size_t)r * n + p * PANEL;
        __builtin_prefetch(c + off, 1);
        __builtin_prefetch(c + off + 16, 1);
        if (res) {
            __builtin_prefetch(res + off);
            __builtin_prefetch(res + off + 16);
        }
    }
}

/* Rows of the tile at row r0 of m, for tiles of th rows. A tile of R rows keeps 2R chains of
 * FMAs in flight (two accumulators per row, AVX2 and AVX-512 alike); with fewer than
 * TILE_BUSY_ROWS rows the chains do not cover the FMA latency (4 cycles on 2 pipes: 8 chains),
 * and a k-step costs as much as at TILE_BUSY_ROWS rows. So the last th + 1..3 rows are not
 * run as a full tile and a short one but as two of about half (AVX2, 49 rows: 6 + 1 -> 4 + 3,
 * 8 cycles a k-step instead of 10). An element's arithmetic is the same in any tile. */
#define TILE_BUSY_ROWS 4

static inline int tile_height(int r0, int m, int th)
{
    int left = m - r0;
    if (left > th && left < th + TILE_BUSY_ROWS) return (left + 1) / 2;
    return left < th ? left : th;
}

/* The tap after the part of a panel that starts at tap t0. */
static inline int part_end(int t0, int taps, int part_taps)
{
    return taps - t0 < part_taps ? taps : t0 + part_taps;
}

/* Every tile (th rows, the instruction set's tile_panel) of rows [0, m) against panels [p_lo,
 * p_hi); `rows_of` fills the tile's row pointers, as `taps` runs of `run` floats, or as `taps /
 * merge` runs of `run * merge` floats when it returns 1 (consecutive taps that are consecutive
 * in memory: the same sums in the same order, fewer and longer runs). The loop order only
 * changes what stays in cache, never an element's arithmetic: with small weights, tiles outside
 * and panels inside (a tile's rows are read and its pointers made once, the weights come from
 * L2: ResNet50's 56x56 1x1 convolutions and the stem); with large weights, or few rows, panels
 * outside (one panel, k x 32 floats, stays in cache while the rows stream past it, and the
 * next one is asked for: NEXT_PANEL_MAX_ROWS). With few rows the rows are the smaller stream:
 * ResNet50's Winograd GEMMs at batch 1 (49 rows, 128-256 KB of weights per position, each
 * position's weights read once per sample) ran 1.22-1.39x faster panels outside on an Emerald
 * Rapids Xeon (AVX-512), 1.10-1.27x with its AVX2 kernels; the network 1.03-1.05x (AVX-512),
 * 1.00x (AVX2). Inlined into each entry point, so tile_panel, th and rows_of are constants
 * there. */
static inline __attribute__((always_inline)) void
run_tiles(tile_panel_fn *tile_panel, int th, int m, int taps, int run, int merge,
          const float *packed, int n, int p_lo, int p_hi, float *c, const gemm_epilogue *e,
          int (*rows_of)(const void *, int r0, int rows, const float **ap), const void *arg)
{
    size_t k = (size_t)taps * run;
    const float *ap[AP_STRIDE * KERNEL_MAX_TAPS];
    ENGINE_ASSERT(taps >= 1 && taps <= KERNEL_MAX_TAPS && th >= 1 && th <= AP_STRIDE);
    if (m > NEXT_PANEL_MAX_ROWS &&
        k * PANEL * sizeof(float) * (p_hi - p_lo) <= GEMM_TILES_OUTER_BYTES) {
        for (int r0 = 0, rows; r0 < m; r0 += rows) {
            rows = tile_height(r0, m, th);
            int merged = rows_of(arg, r0, rows, ap);
            for (int p = p_lo; p < p_hi; p++) {
                if (r0 + 2 * th <= m) prefetch_tile(c, e->res, r0 + th, th, n, p);
                tile_panel(ap, r0, rows, merged ? taps / merge : taps, merged ? run * merge : run,
                           k, 0, packed, n, p, c, e, 0, NULL, 0, 0);
            }
        }
        return;
    }
    /* taps per part: whole kernel rows (merge taps), as many as fit GEMM_PART_BYTES */
    int part_taps = (int)(GEMM_PART_BYTES / ((size_t)run * merge * PANEL * sizeof(float))) * merge;
    if (part_taps < merge) part_taps = merge;
    if (part_taps > taps) part_taps = taps;
    /* With few rows, each tile also asks for its share of the weights the next part reads
     * (the rest of the panel's taps, or the next panel's first part), spread over its own
     * k-steps (NEXT_PANEL_MAX_ROWS) */
    int n_tiles = 0;
    if (m <= NEXT_PANEL_MAX_ROWS)
        for (int r0 = 0; r0 < m; r0 += tile_height(r0, m, th)) n_tiles++;
    for (int p = p_lo; p < p_hi; p++)
        for (int t0 = 0; t0 < taps; t0 += part_taps) {
            int t1 = part_end(t0, taps, part_taps);
            int part = (t0 > 0 ? PART_CONTINUE : 0) | (t1 < taps ? PART_MORE : 0);
            int next_p = t1 < taps ? p : p + 1, next_t0 = t1 < taps ? t1 : 0;
            size_t share =
                n_tiles && next_p < p_hi /* rows per tile */
                    ? (size_t)(part_end(next_t0, taps, part_taps) - next_t0) * run / n_tiles
                    : 0;
            const float *next = share ? packed + (size_t)next_p * k * PANEL : NULL;
            size_t steps = (size_t)(t1 - t0) * run; /* this part's k-steps */
            int every = share && steps > share ? (int)(steps / share) : 1;
            for (int r0 = 0, rows, i = 0; r0 < m; r0 += rows, i++) {
                rows = tile_height(r0, m, th);
                int merged = rows_of(arg, r0, rows, ap);
                const float *const *at = ap + (size_t)(merged ? t0 / merge : t0) * AP_STRIDE;
                if (!(part & PART_MORE) && r0 + rows + th <= m)
                    prefetch_tile(c, e->res, r0 + rows, th, n, p);
                tile_panel(at, r0, rows, merged ? (t1 - t0) / merge : t1 - t0,
                           merged ? run * merge : run, k, (size_t)t0 * run, packed, n, p, c, e,
                           part, next, (size_t)next_t0 * run + i * share, every);
            }
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

void gemm_packed_avx512(const float *a, int m, int k, const float *packed, int n, int p_lo,
                        int p_hi, float *c, const gemm_epilogue *e)
{
    plain_rows pr = {a, k};
    run_tiles(tile_panel_avx512, GEMM_AVX512_TILE_ROWS, m, 1, k, 1, packed, n, p_lo, p_hi, c, e,
              plain_rows_of, &pr);
}

void gemm_packed_avx2(const float *a, int m, int k, const float *packed, int n, int p_lo, int p_hi,
                      float *c, const gemm_epilogue *e)
{
    plain_rows pr = {a, k};
    run_tiles(tile_panel_avx2, GEMM_AVX2_TILE_ROWS, m, 1, k, 1, packed, n, p_lo, p_hi, c, e,
              plain_rows_of, &pr);
}

typedef struct {
    const float *in, *zeros;
    const conv_geom *g;
    int k, stride, lo;
    float *edge; /* AP_STRIDE rows x k kernel rows x k * KERNEL_MERGE_MAX_C floats */
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
    if (k > 1 && (inside || c <= KERNEL_MERGE_MAX_C)) {
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
                        float *copy = cr->edge + (size_t)(ky * AP_STRIDE + r) * k * c;
                        for (int kx = 0; kx < k; kx++)
                            if (ix + kx >= 0 && ix + kx < g->w)
                                memcpy(copy + kx * c, line + (size_t)(ix + kx) * c,
                                       c * sizeof *copy);
                            else
                                memset(copy + kx * c, 0, c * sizeof *copy);
                        row = copy;
                    }
                }
                ap[ky * AP_STRIDE + r] = row;
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
                ap[(ky * k + kx) * AP_STRIDE + r] =
                    in_map ? cr->in + ((size_t)iy * g->w + ix) * c : cr->zeros;
            }
    }
    return 0;
}

static inline __attribute__((always_inline)) void
conv_packed(tile_panel_fn *tile_panel, int th, const float *in, const conv_geom *g, int k,
            int stride, int lo, int hi, const float *zeros, const float *packed, int n, int p_lo,
            int p_hi, float *out, const gemm_epilogue *e)
{
    float edge[AP_STRIDE * KERNEL_MAX_TAPS * KERNEL_MERGE_MAX_C];
    ENGINE_ASSERT(k >= 1 && k <= KERNEL_MAX_SIDE && lo <= hi);
    conv_rows cr = {in, zeros, g, k, stride, lo, edge};
    run_tiles(tile_panel, th, hi - lo, k * k, g->c, k, packed, n, p_lo, p_hi, out, e, conv_rows_of,
              &cr);
}

void conv_packed_avx512(const float *in, const conv_geom *g, int k, int stride, int lo, int hi,
                        const float *zeros, const float *packed, int n, int p_lo, int p_hi,
                        float *out, const gemm_epilogue *e)
{
    conv_packed(tile_panel_avx512, GEMM_AVX512_TILE_ROWS, in, g, k, stride, lo, hi, zeros, packed,
                n, p_lo, p_hi, out, e);
}

void conv_packed_avx2(const float *in, const conv_geom *g, int k, int stride, int lo, int hi,
                      const float *zeros, const float *packed, int n, int p_lo, int p_hi,
                      float *out, const gemm_epilogue *e)
{
    conv_packed(tile_panel_avx2, GEMM_AVX2_TILE_ROWS, in, g, k, stride, lo, hi, zeros, packed, n,
                p_lo, p_hi, out, e);
}
