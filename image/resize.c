/* resize.c - Pillow-exact bilinear resample + crop; see resize.h.
 *
 * Layout of the work: the crop selects output columns [x0, x1) and rows [y0, y1) of the
 * resized image. Horizontal coefficients exist for those columns only, vertical ones for
 * those rows only. Source rows are resampled horizontally on demand, in increasing order,
 * into a ring of kv + 8 rows (kv = vertical taps): the window of source rows an output row
 * needs only moves forward and is at most kv tall, and rows are made at most 8 ahead, so row
 * r lives in slot r % (kv + 8) for as long as any output row needs it. The ring's rows are
 * planar (one run of ncols bytes per channel), so the vertical pass writes each output
 * plane's row straight into `out`.
 *
 * On AVX2 the horizontal pass takes 8 upright rows at once, one per 32-bit lane: their bytes
 * are transposed so that a tap is a plain load and a broadcast coefficient (with 8 columns in
 * the lanes instead, every tap was a gather, 2x slower), and the results transposed back.
 * The vertical pass runs 8 columns at a time. The sums are integers, exact in any order, so
 * the bytes are the scalar loops' (a unit test compares the two).
 *
 * The program is built for baseline x86-64: the AVX2 functions carry a target attribute, and
 * resize_plan_make records whether the CPU has AVX2 (resize_plan.avx2), which resize_run
 * passes down; with it clear the scalar loops run.
 */
#include "image/resize.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS 22 /* Pillow's 8-bit path: 32 - 8 - 2 */

static double bilinear(double x)
{
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static int round_half_even_half(int d) /* Python round(d / 2) for d >= 0 */
{
    int q = d / 2;
    if (d % 2 == 0) return q;
    return q % 2 == 0 ? q : q + 1;
}

static void crop_offset(int n, int s, int *off)
{
    *off = s > n ? -((s - n) / 2) : round_half_even_half(n - s);
}

int resize_plan_make(const preprocess_spec *pre, int w, int h, resize_plan *p)
{
    if (w <= 0 || h <= 0 || pre->crop <= 0 || pre->crop > RESIZE_MAX_SIDE) return RESIZE_EINVAL;
    __builtin_cpu_init();
    p->avx2 = __builtin_cpu_supports("avx2");
    p->crop = pre->crop;
    if (pre->mode == RESIZE_DIRECT) {
        p->out_w = p->out_h = pre->crop;
    } else {
        if (pre->resize <= 0 || pre->resize > RESIZE_MAX_SIDE) return RESIZE_EINVAL;
        long long sh = w <= h ? w : h, lo = w <= h ? h : w;
        /* torchvision: int(R * long / short), a correctly rounded double truncated */
        double nl = (double)(pre->resize * lo) / (double)sh;
        if (nl >= (double)(INT32_MAX / 4)) return RESIZE_ETOOBIG;
        int new_long = (int)nl;
        p->out_w = w <= h ? pre->resize : new_long;
        p->out_h = w <= h ? new_long : pre->resize;
    }
    crop_offset(p->out_w, p->crop, &p->crop_x);
    crop_offset(p->out_h, p->crop, &p->crop_y);
    return RESIZE_OK;
}

void resize_chan_map(const preprocess_spec *pre, int src_channels, int chan[3])
{
    for (int p = 0; p < 3; p++) chan[p] = src_channels == 1 ? 0 : pre->bgr ? 2 - p : p;
}

int resize_ksize(double in0, double in1, int out_size)
{
    double scale = (in1 - in0) / out_size;
    double support = scale < 1.0 ? 1.0 : scale; /* bilinear support 1, widened */
    return (int)ceil(support) * 2 + 1;
}

/* Output pixel i of an in_size -> out_size resize of [in0, in1): its first input pixel and
 * how many it reads (before the ksize bound), and the filter's centre and scale. */
typedef struct {
    double scale, support, ss;
} filter1d;

static filter1d filter_of(double in0, double in1, int out_size)
{
    double scale = (in1 - in0) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    return (filter1d){scale, filterscale, 1.0 / filterscale};
}

static int filter_span(const filter1d *f, int in_size, double in0, int i, double *center, int *xmin)
{
    *center = in0 + (i + 0.5) * f->scale;
    int lo = (int)(*center - f->support + 0.5);
    if (lo < 0) lo = 0;
    int hi = (int)(*center + f->support + 0.5);
    if (hi > in_size) hi = in_size;
    *xmin = lo;
    return hi - lo;
}

void resize_coeffs(int in_size, double in0, double in1, int out_size, int first, int count,
                   int ksize, int *bounds, int32_t *k)
{
    filter1d f = filter_of(in0, in1, out_size);
    for (int i = 0; i < count; i++) {
        double center;
        int xmin, xmax = filter_span(&f, in_size, in0, first + i, &center, &xmin);
        if (xmax > ksize) xmax = ksize; /* cannot happen; keeps the writes in bounds */
        if (xmax < 0) xmax = 0;
        /* Each tap's weight is computed twice (sum, then scale) rather than kept in a
         * scratch array: the same doubles either way, and no buffer sized by the image. */
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) ww += bilinear((x + xmin - center + 0.5) * f.ss);
        int32_t *kr = k + (size_t)i * ksize;
        for (int x = 0; x < ksize; x++) {
            double w = x < xmax ? bilinear((x + xmin - center + 0.5) * f.ss) : 0.0;
            double v = x < xmax ? (ww != 0.0 ? w / ww : w) : 0.0;
            kr[x] = (int32_t)(v < 0 ? -0.5 + v * (1 << PRECISION_BITS)
                                    : 0.5 + v * (1 << PRECISION_BITS));
        }
        bounds[2 * i] = xmin;
        bounds[2 * i + 1] = xmax;
    }
}

/* The crop's columns [c[0], c[2]) and rows [c[1], c[3]) of the resized image; 0 if empty. */
static int crop_range(const resize_plan *p, int c[4])
{
    int S = p->crop;
    c[0] = p->crop_x > 0 ? p->crop_x : 0;
    c[1] = p->crop_y > 0 ? p->crop_y : 0;
    c[2] = p->crop_x + S < p->out_w ? p->crop_x + S : p->out_w;
    c[3] = p->crop_y + S < p->out_h ? p->crop_y + S : p->out_h;
    return c[2] > c[0] && c[3] > c[1];
}

int resize_window(int w, int h, const double box[4], const resize_plan *p, int win[4])
{
    int c[4];
    if (!crop_range(p, c) || (box[2] - box[0]) / p->out_w > RESIZE_MAX_FACTOR ||
        (box[3] - box[1]) / p->out_h > RESIZE_MAX_FACTOR)
        return RESIZE_EINVAL;
    for (int axis = 0; axis < 2; axis++) {
        int size = axis ? h : w, out = axis ? p->out_h : p->out_w;
        double in0 = box[axis], in1 = box[axis + 2], center;
        filter1d f = filter_of(in0, in1, out);
        int first, last, n = filter_span(&f, size, in0, c[axis + 2] - 1, &center, &last);
        filter_span(&f, size, in0, c[axis], &center, &first);
        win[axis] = first;
        win[axis + 2] = last + n;
    }
    return RESIZE_OK;
}

static inline unsigned char clip8(int32_t ss)
{
    ss >>= PRECISION_BITS;
    return ss < 0 ? 0 : ss > 255 ? 255 : (unsigned char)ss;
}

/* The two passes on 8 x 32-bit lanes: the same integer sums as the scalar loops (exact in
 * any order), so the same bytes. Run only when resize_plan.avx2 says the CPU has AVX2. */
#define AVX2 __attribute__((target("avx2")))

static inline AVX2 __m128i pack8(__m256i v) /* 8 ints in [0, 255] -> 8 bytes in the low half */
{
    __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return _mm_packus_epi16(w, w);
}

static inline AVX2 __m256i clip8x8(__m256i acc)
{
    __m256i v = _mm256_srai_epi32(acc, PRECISION_BITS);
    return _mm256_min_epi32(_mm256_max_epi32(v, _mm256_setzero_si256()), _mm256_set1_epi32(255));
}

/* The 8-row block pass (hpass_rows) works on the rows' bytes transposed: byte i of row r
 * goes to t[8 * i + r], so the 8 rows' values of one source byte are one 8-byte load. */
static AVX2 void transpose_in(const unsigned char *const rows[8], size_t n, unsigned char *t)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16, t += 128) {
        __m128i a[8], b[8];
        for (int r = 0; r < 8; r++) a[r] = _mm_loadu_si128((const __m128i *)(rows[r] + i));
        for (int r = 0; r < 8; r += 2) { /* bytes of rows r, r + 1 interleaved */
            b[r] = _mm_unpacklo_epi8(a[r], a[r + 1]);
            b[r + 1] = _mm_unpackhi_epi8(a[r], a[r + 1]);
        }
        for (int h = 0; h < 2; h++) { /* 4 rows of 4 bytes, then 8 rows of 2 */
            __m128i q0 = _mm_unpacklo_epi16(b[h], b[h + 2]),
                    q1 = _mm_unpackhi_epi16(b[h], b[h + 2]);
            __m128i q2 = _mm_unpacklo_epi16(b[h + 4], b[h + 6]);
            __m128i q3 = _mm_unpackhi_epi16(b[h + 4], b[h + 6]);
            __m128i *o = (__m128i *)(t + 64 * h);
            _mm_storeu_si128(o + 0, _mm_unpacklo_epi32(q0, q2));
            _mm_storeu_si128(o + 1, _mm_unpackhi_epi32(q0, q2));
            _mm_storeu_si128(o + 2, _mm_unpacklo_epi32(q1, q3));
            _mm_storeu_si128(o + 3, _mm_unpackhi_epi32(q1, q3));
        }
    }
    for (; i < n; i++, t += 8)
        for (int r = 0; r < 8; r++) t[r] = rows[r][i];
}

/* The inverse: u[8 * j + r] -> rows[r][j] for j < n. */
static AVX2 void transpose_out(const unsigned char *u, size_t n, unsigned char *const rows[8])
{
    size_t j = 0;
    for (; j + 16 <= n; j += 16, u += 128) {
        __m128i b[8], q[8];
        for (int k = 0; k < 8; k++) /* columns 2k, 2k + 1 interleaved: row r at bytes 2r.. */
            b[k] = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(u + 16 * k)),
                                     _mm_loadl_epi64((const __m128i *)(u + 16 * k + 8)));
        for (int k = 0; k < 8; k += 2) { /* rows 0-3, then 4-7, of 4 columns */
            q[k] = _mm_unpacklo_epi16(b[k], b[k + 1]);
            q[k + 1] = _mm_unpackhi_epi16(b[k], b[k + 1]);
        }
        for (int h = 0; h < 2; h++) {
            __m128i lo01 = _mm_unpacklo_epi32(q[h], q[h + 2]),
                    lo23 = _mm_unpackhi_epi32(q[h], q[h + 2]);
            __m128i hi01 = _mm_unpacklo_epi32(q[h + 4], q[h + 6]);
            __m128i hi23 = _mm_unpackhi_epi32(q[h + 4], q[h + 6]);
            int r = 4 * h;
            _mm_storeu_si128((__m128i *)(rows[r] + j), _mm_unpacklo_epi64(lo01, hi01));
            _mm_storeu_si128((__m128i *)(rows[r + 1] + j), _mm_unpackhi_epi64(lo01, hi01));
            _mm_storeu_si128((__m128i *)(rows[r + 2] + j), _mm_unpacklo_epi64(lo23, hi23));
            _mm_storeu_si128((__m128i *)(rows[r + 3] + j), _mm_unpackhi_epi64(lo23, hi23));
        }
    }
    for (; j < n; j++, u += 8)
        for (int r = 0; r < 8; r++) rows[r][j] = u[r];
}

/* Columns [0, ncols) of 8 transposed source rows, one row per 32-bit lane: each tap is one
 * 8-byte load per channel and one broadcast coefficient (no gathers). t holds the rows'
 * bytes from the first column's first pixel; results go to u, transposed, channel c's
 * column j at u + 8 * (c * ncols + j). nch is a constant at each call. */
static inline __attribute__((always_inline)) AVX2 void
hpass_lanes_n(const unsigned char *t, int ncols, int kh, const int *hb, const int32_t *hk,
              unsigned char *u, const int nch)
{
    int x0 = hb[0];
    for (int j = 0; j < ncols; j++) {
        const unsigned char *s = t + (size_t)8 * nch * (hb[2 * j] - x0);
        const int32_t *k = hk + (size_t)j * kh;
        __m256i acc[3];
        for (int c = 0; c < nch; c++) acc[c] = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
        for (int i = 0; i < hb[2 * j + 1]; i++, s += 8 * nch) {
            __m256i w = _mm256_set1_epi32(k[i]);
            for (int c = 0; c < nch; c++) {
                __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(s + 8 * c)));
                acc[c] = _mm256_add_epi32(acc[c], _mm256_mullo_epi32(v, w));
            }
        }
        for (int c = 0; c < nch; c++)
            _mm_storel_epi64((__m128i *)(u + 8 * ((size_t)c * ncols + j)), pack8(clip8x8(acc[c])));
    }
}

/* dst[j] = clip8(sum_t rows[t][j] * k[t]) for j < n, 8 at a time; returns how many done. */
static AVX2 size_t vpass_avx2(const unsigned char *const *rows, const int32_t *k, int cnt, size_t n,
                              unsigned char *dst)
{
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256i acc = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
        for (int t = 0; t < cnt; t++) {
            __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(rows[t] + j)));
            acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(v, _mm256_set1_epi32(k[t])));
        }
        _mm_storel_epi64((__m128i *)(dst + j), pack8(clip8x8(acc)));
    }
    return j;
}

/* The horizontal filter for the crop's columns. */
typedef struct {
    int ncols, kh;
    const int *hb;     /* per column: first source pixel, taps */
    const int32_t *hk; /* [ncols][kh] coefficients */
    int same;          /* the axis keeps its size: each output pixel is its source pixel (the
                        * filter is [1, 0]; Pillow skips such a pass) */
    size_t lo, span;   /* the bytes of a source row the columns read: [lo, lo + span) */
    /* scratch of the 8-row block pass: t [span][8], u [nch][ncols][8]; NULL when the pass
     * does not apply (no AVX2, or not an upright view) */
    unsigned char *t, *u;
} hfilter;

/* Source rows y.. y+7 resampled through the block pass (f->t set) into their ring slots. */
static AVX2 void hpass_block(const pixmap_view *src, int y, const hfilter *f, unsigned char *ring,
                             int slots)
{
    int nch = src->channels, ncols = f->ncols;
    size_t rowb = (size_t)ncols * nch;
    const unsigned char *in[8];
    unsigned char *out[8];
    for (int r = 0; r < 8; r++)
        in[r] = src->origin + (ptrdiff_t)(y + r - src->y0) * src->sy + f->lo;
    transpose_in(in, f->span, f->t);
    if (nch == 3)
        hpass_lanes_n(f->t, ncols, f->kh, f->hb, f->hk, f->u, 3);
    else
        hpass_lanes_n(f->t, ncols, f->kh, f->hb, f->hk, f->u, 1);
    for (int c = 0; c < nch; c++) {
        for (int r = 0; r < 8; r++)
            out[r] = ring + (size_t)((y + r) % slots) * rowb + (size_t)c * ncols;
        transpose_out(f->u + (size_t)8 * c * ncols, (size_t)ncols, out);
    }
}

/* One source row y -> f->ncols pixels of nch channels, planar: channel c at dst + c * ncols. */
static void hpass_row(const pixmap_view *src, int y, const hfilter *f, unsigned char *dst)
{
    const unsigned char *row = src->origin + (ptrdiff_t)(y - src->y0) * src->sy;
    ptrdiff_t sx = src->sx;
    int ncols = f->ncols, kh = f->kh, nch = src->channels;
    const int *hb = f->hb;
    if (f->same) {
        for (int j = 0; j < ncols; j++) {
            const unsigned char *s = row + (ptrdiff_t)(hb[2 * j] - src->x0) * sx;
            for (int c = 0; c < nch; c++) dst[(size_t)c * ncols + j] = s[c];
        }
        return;
    }
    for (int j = 0; j < ncols; j++) {
        const int32_t *k = f->hk + (size_t)j * kh;
        const unsigned char *s = row + (ptrdiff_t)(hb[2 * j] - src->x0) * sx;
        for (int c = 0; c < nch; c++) {
            int32_t a = 1 << (PRECISION_BITS - 1);
            for (int t = 0; t < hb[2 * j + 1]; t++) a += s[(ptrdiff_t)t * sx + c] * k[t];
            dst[(size_t)c * ncols + j] = clip8(a);
        }
    }
}

/* Source rows from y on, resampled into their ring slots (row r in slot r % slots): 8 at once
 * when 8 are wanted before `end` and the block pass applies, else one. Returns how many. */
static int hpass_rows(const pixmap_view *src, int y, int end, const hfilter *f, unsigned char *ring,
                      int slots)
{
    size_t rowb = (size_t)f->ncols * src->channels;
    if (f->t && end - y >= 8) {
        hpass_block(src, y, f, ring, slots);
        return 8;
    }
    hpass_row(src, y, f, ring + (size_t)(y % slots) * rowb);
    return 1;
}

/* dst[j] = clip8(sum_t rows[t][j] * k[t]) for j < n; 8 at a time with avx2. */
static void vpass(const unsigned char *const *rows, const int32_t *k, int cnt, size_t n,
                  unsigned char *dst, int avx2)
{
    size_t j = avx2 ? vpass_avx2(rows, k, cnt, n, dst) : 0;
    for (; j < n; j++) {
        int32_t a = 1 << (PRECISION_BITS - 1);
        for (int t = 0; t < cnt; t++) a += rows[t][j] * k[t];
        dst[j] = clip8(a);
    }
}

int resize_run(const pixmap_view *src, const double box[4], const resize_plan *p, const int chan[3],
               unsigned char *out)
{
    int S = p->crop, nch = src->channels, c[4], need[4];
    if (!crop_range(p, c) || (nch != 1 && nch != 3)) return RESIZE_EINVAL;
    if ((box[2] - box[0]) / p->out_w > RESIZE_MAX_FACTOR ||
        (box[3] - box[1]) / p->out_h > RESIZE_MAX_FACTOR)
        return RESIZE_ETOOBIG;
    /* the pixels read must be in the view's window */
    resize_window(src->w, src->h, box, p, need);
    if (need[0] < src->x0 || need[1] < src->y0 || need[2] > src->x1 || need[3] > src->y1)
        return RESIZE_EINVAL;
    int x0 = c[0], y0 = c[1], ncols = c[2] - c[0], nrows = c[3] - c[1];
    int kh = resize_ksize(box[0], box[2], p->out_w), kv = resize_ksize(box[1], box[3], p->out_h);
    /* an axis resized to its own size copies (a photo already sent at the model's size) */
    int h_same = p->out_w == src->w && box[0] == 0 && box[2] == src->w;
    int v_same = p->out_h == src->h && box[1] == 0 && box[3] == src->h;
    size_t rowb = (size_t)ncols * nch;
    /* a block of 8 rows may be resampled ahead of the kv rows in use */
    int slots = kv + 8, rc = RESIZE_ENOMEM;
    int *hb = malloc(sizeof *hb * 2 * (size_t)ncols), *vb = malloc(sizeof *vb * 2 * (size_t)nrows);
    int32_t *hk = malloc(sizeof *hk * (size_t)kh * ncols),
            *vk = malloc(sizeof *vk * (size_t)kv * nrows);
    unsigned char *ring = malloc(rowb * (size_t)slots), *scratch = NULL;
    const unsigned char **rows = malloc(sizeof *rows * (size_t)kv); /* one output row's sources */
    if (!hb || !vb || !hk || !vk || !ring || !rows) goto fail;
    resize_coeffs(src->w, box[0], box[2], p->out_w, x0, ncols, kh, hb, hk);
    resize_coeffs(src->h, box[1], box[3], p->out_h, y0, nrows, kv, vb, vk);
    size_t lo = (size_t)nch * (hb[0] - src->x0), span = (size_t)nch * (need[2] - hb[0]);
    hfilter hf = {ncols, kh, hb, hk, h_same, lo, span, NULL, NULL};
    if (p->avx2 && !h_same && src->sx == nch) {
        scratch = malloc(8 * (span + rowb));
        if (!scratch) goto fail;
        hf.t = scratch, hf.u = scratch + 8 * span;
    }
    size_t plane = (size_t)S * S;
    if (ncols < S || nrows < S) memset(out, 0, 3 * plane); /* zero padding: pixel value 0 */

    int next = 0; /* first source row not yet resampled horizontally */
    for (int i = 0; i < nrows; i++) {
        int ymin = vb[2 * i], ycnt = vb[2 * i + 1];
        if (next < ymin) next = ymin;
        while (next < ymin + ycnt) next += hpass_rows(src, next, need[3], &hf, ring, slots);
        size_t orow = (size_t)(y0 - p->crop_y + i) * S + (size_t)(x0 - p->crop_x);
        const int32_t *k = vk + (size_t)i * kv;
        for (int pl = 0; pl < 3; pl++) {
            unsigned char *o = out + pl * plane + orow;
            if (pl > 0 && chan[pl] == chan[pl - 1]) { /* grey: the same plane again */
                memcpy(o, o - plane, (size_t)ncols);
                continue;
            }
            size_t coff = (size_t)chan[pl] * ncols;
            if (v_same) { /* the axis keeps its size: the output row is the source row */
                memcpy(o, ring + (size_t)(ymin % slots) * rowb + coff, (size_t)ncols);
                continue;
            }
            for (int t = 0; t < ycnt; t++)
                rows[t] = ring + (size_t)((ymin + t) % slots) * rowb + coff;
            vpass(rows, k, ycnt, (size_t)ncols, o, p->avx2);
        }
    }
    rc = RESIZE_OK;
fail:
    free(hb);
    free(vb);
    free(hk);
    free(vk);
    free(ring);
    free(scratch);
    free(rows);
    return rc;
}
