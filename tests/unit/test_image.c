/* test_image.c - image input: EXIF parser, orientation views, resize geometry, the resize
 * kernel against a naive reference, and decoders fed corrupt, truncated and oversized data.
 * Comparisons with PIL + torchvision themselves are in tests/integration/test_images.py. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "tests/unit/testutil.h"

#include "image/exif.h"
#include "image/image.h"
#include "image/jpeg_decode.h"
#include "image/pixmap.h"
#include "image/resize.h"

/* ---- EXIF ---------------------------------------------------------------------------- */

/* A TIFF blob with one IFD0 entry (tag, type, count, value) in the given byte order. */
static size_t tiff1(unsigned char *b, int le, unsigned tag, unsigned type, uint32_t count,
                    uint32_t value)
{
    memset(b, 0, 64);
#define P16(o, v)                                                                                  \
    (le ? (b[o] = (v)&255, b[o + 1] = (v) >> 8) : (b[o] = (v) >> 8, b[o + 1] = (v)&255))
#define P32(o, v)                                                                                  \
    (le ? (P16(o, (v)&0xffff), P16(o + 2, (v) >> 16)) : (P16(o, (v) >> 16), P16(o + 2, (v)&0xffff)))
    b[0] = b[1] = le ? 'I' : 'M';
    P16(2, 42);
    P32(4, 8);
    P16(8, 1);
    P16(10, tag);
    P16(12, type);
    P32(14, count);
    if (type == 3)
        P16(18, value);
    else if (type == 1)
        b[18] = (unsigned char)value;
    else
        P32(18, value);
    return 26;
#undef P16
#undef P32
}

static void test_exif_valid(void **state)
{
    (void)state;
    unsigned char b[64 + 6];
    for (int le = 0; le < 2; le++)
        for (uint32_t o = 1; o <= 8; o++) {
            size_t n = tiff1(b, le, 0x112, 3, 1, o);
            assert_int_equal(exif_orientation(b, n), (int)o);
        }
    size_t n = tiff1(b, 1, 0x112, 4, 1, 6); /* LONG */
    assert_int_equal(exif_orientation(b, n), 6);
    n = tiff1(b + 6, 0, 0x112, 3, 1, 8); /* with the APP1 "Exif\0\0" prefix */
    memcpy(b, "Exif\0\0", 6);
    assert_int_equal(exif_orientation(b, n + 6), 8);
}

static void test_exif_invalid(void **state)
{
    (void)state;
    unsigned char b[64];
    size_t n = tiff1(b, 1, 0x112, 3, 1, 6);
    assert_int_equal(exif_orientation(NULL, 0), 1);
    assert_int_equal(exif_orientation(b, 7), 1);                              /* too short */
    for (size_t k = 0; k < 22; k++) assert_true(exif_orientation(b, k) == 1); /* entry cut */
    assert_int_equal(exif_orientation(b, 22), 6); /* the next-IFD offset is not needed */
    tiff1(b, 1, 0x112, 3, 1, 9);
    assert_int_equal(exif_orientation(b, n), 1); /* out of range */
    tiff1(b, 1, 0x112, 3, 1, 0);
    assert_int_equal(exif_orientation(b, n), 1);
    tiff1(b, 1, 0x112, 3, 2, 6);
    assert_int_equal(exif_orientation(b, n), 1); /* count 2 */
    tiff1(b, 1, 0x112, 2, 1, 6);
    assert_int_equal(exif_orientation(b, n), 1); /* ASCII type */
    tiff1(b, 1, 0x113, 3, 1, 6);
    assert_int_equal(exif_orientation(b, n), 1); /* other tag */
    tiff1(b, 1, 0x112, 3, 1, 6);
    b[0] = 'X';
    assert_int_equal(exif_orientation(b, n), 1); /* bad byte order */
    tiff1(b, 1, 0x112, 3, 1, 6);
    b[2] = 43;
    assert_int_equal(exif_orientation(b, n), 1); /* bad magic */
    tiff1(b, 1, 0x112, 3, 1, 6);
    b[4] = b[5] = b[6] = b[7] = 0xff;
    assert_int_equal(exif_orientation(b, n), 1); /* IFD offset 2^32 - 1 */
    tiff1(b, 1, 0x112, 3, 1, 6);
    b[8] = b[9] = 0xff;                          /* 65535 entries, 1 present */
    assert_int_equal(exif_orientation(b, n), 6); /* scanned only as far as the data goes */
    b[10] = 0;                                   /* ...and the one present is not it */
    assert_int_equal(exif_orientation(b, n), 1);
    test_rng r = {7}; /* random blobs never read out of bounds (ASan build checks) */
    for (int i = 0; i < 20000; i++) {
        size_t len = rng_u32(&r) % 64;
        tiff1(b, i & 1, 0x112, 3, 1, 6);
        for (int f = 0; f < 3; f++) b[rng_u32(&r) % 64] = (unsigned char)rng_u32(&r);
        unsigned char *c = malloc(len ? len : 1);
        memcpy(c, b, len);
        int o = exif_orientation(c, len);
        assert_true(o >= 1 && o <= 8);
        free(c);
    }
}

/* ---- orientation views ----------------------------------------------------------------- */

static void test_orient_views(void **state)
{
    (void)state;
    pixmap pm;
    int w = 5, h = 3;
    assert_int_equal(pixmap_alloc(&pm, w, h, 3), 0);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                pm.px[y * pm.stride + x * 3 + c] = (unsigned char)(y * 16 + x + c * 64);
    for (int o = 1; o <= 8; o++) {
        pixmap_view v = pixmap_oriented(&pm, o);
        int t = o >= 5;
        assert_int_equal(v.w, t ? h : w);
        assert_int_equal(v.h, t ? w : h);
        for (int Y = 0; Y < v.h; Y++)
            for (int X = 0; X < v.w; X++) {
                int x, y; /* PIL exif_transpose: upright (X, Y) shows stored (x, y) */
                switch (o) {
                case 2:
                    x = w - 1 - X, y = Y;
                    break;
                case 3:
                    x = w - 1 - X, y = h - 1 - Y;
                    break;
                case 4:
                    x = X, y = h - 1 - Y;
                    break;
                case 5:
                    x = Y, y = X;
                    break;
                case 6:
                    x = Y, y = h - 1 - X;
                    break;
                case 7:
                    x = w - 1 - Y, y = h - 1 - X;
                    break;
                case 8:
                    x = w - 1 - Y, y = X;
                    break;
                default:
                    x = X, y = Y;
                    break;
                }
                for (int c = 0; c < 3; c++)
                    assert_int_equal(v.origin[X * v.sx + Y * v.sy + c],
                                     pm.px[y * pm.stride + x * 3 + c]);
            }
    }
    pixmap_free(&pm);
    pixmap_free(NULL);
}

/* A pixmap holding a window: orient_window_stored finds the stored pixels of an upright
 * window, and the oriented view of just those shows what the whole image's view shows. */
static void test_orient_windows(void **state)
{
    (void)state;
    int w = 7, h = 5;
    pixmap full;
    assert_int_equal(pixmap_alloc(&full, w, h, 3), 0);
    for (size_t i = 0; i < full.stride * (size_t)h; i++) full.px[i] = (unsigned char)(i * 37);
    test_rng r = {5};
    for (int o = 1; o <= 8; o++)
        for (int k = 0; k < 40; k++) {
            pixmap_view fv = pixmap_oriented(&full, o);
            int u[4], s[4];
            u[0] = (int)(rng_u32(&r) % (unsigned)fv.w);
            u[1] = (int)(rng_u32(&r) % (unsigned)fv.h);
            u[2] = u[0] + 1 + (int)(rng_u32(&r) % (unsigned)(fv.w - u[0]));
            u[3] = u[1] + 1 + (int)(rng_u32(&r) % (unsigned)(fv.h - u[1]));
            orient_window_stored(o, w, h, u, s);
            pixmap p;
            assert_int_equal(pixmap_alloc(&p, s[2] - s[0], s[3] - s[1], 3), 0);
            for (int y = 0; y < p.h; y++)
                memcpy(p.px + (size_t)y * p.stride,
                       full.px + (size_t)(s[1] + y) * full.stride + 3 * s[0], p.stride);
            p.dec_w = w, p.dec_h = h, p.win_x = s[0], p.win_y = s[1];
            pixmap_view v = pixmap_oriented(&p, o);
            assert_int_equal(v.w, fv.w);
            assert_int_equal(v.h, fv.h);
            assert_int_equal(v.x0, u[0]);
            assert_int_equal(v.y0, u[1]);
            assert_int_equal(v.x1, u[2]);
            assert_int_equal(v.y1, u[3]);
            for (int Y = u[1]; Y < u[3]; Y++)
                for (int X = u[0]; X < u[2]; X++)
                    for (int c = 0; c < 3; c++)
                        assert_int_equal(v.origin[(X - v.x0) * v.sx + (Y - v.y0) * v.sy + c],
                                         fv.origin[X * fv.sx + Y * fv.sy + c]);
            pixmap_free(&p);
        }
    pixmap_free(&full);
}

/* ---- geometry -------------------------------------------------------------------------- */

static preprocess_spec torch_spec(void)
{
    preprocess_spec s = {RESIZE_SHORTER_CROP, 256, 224, 0, {0, 0, 0}, {1, 1, 1}, 1};
    return s;
}

static void test_plan(void **state)
{
    (void)state;
    preprocess_spec s = torch_spec();
    resize_plan p;
    assert_int_equal(resize_plan_make(&s, 500, 375, &p), 0);
    assert_int_equal(p.out_w, 341); /* int(256 * 500 / 375) = int(341.33) */
    assert_int_equal(p.out_h, 256);
    assert_int_equal(p.crop_x, 58); /* round(117 / 2) = round(58.5) = 58, half to even */
    assert_int_equal(p.crop_y, 16);
    assert_int_equal(resize_plan_make(&s, 375, 501, &p), 0);
    assert_int_equal(p.out_h, 342);
    assert_int_equal(p.crop_y, 59); /* round(59.0) */
    assert_int_equal(resize_plan_make(&s, 2000, 1493, &p), 0);
    assert_int_equal(p.out_w, 342); /* 342.9 truncated */
    s.resize = 257;
    assert_int_equal(resize_plan_make(&s, 100, 100, &p), 0);
    assert_int_equal(p.crop_x, 16); /* round(16.5) = 16 */
    s.resize = 259;
    assert_int_equal(resize_plan_make(&s, 100, 100, &p), 0);
    assert_int_equal(p.crop_x, 18); /* round(17.5) = 18 */
    s.resize = 100;
    assert_int_equal(resize_plan_make(&s, 100, 300, &p), 0);
    assert_int_equal(p.crop_x, -62); /* pad (224 - 100) // 2 on the left */
    assert_int_equal(p.crop_y, 38);
    s.resize = 99;
    assert_int_equal(resize_plan_make(&s, 99, 99, &p), 0);
    assert_int_equal(p.crop_x, -62); /* 125 // 2 left, 63 right */
    s.mode = RESIZE_DIRECT;
    assert_int_equal(resize_plan_make(&s, 7, 5000, &p), 0);
    assert_true(p.out_w == 224 && p.out_h == 224 && p.crop_x == 0 && p.crop_y == 0);
    s.crop = 0;
    assert_int_equal(resize_plan_make(&s, 7, 5000, &p), RESIZE_EINVAL);
    s = torch_spec();
    assert_int_equal(resize_plan_make(&s, 1, 2000000000, &p), RESIZE_ETOOBIG);
}

/* ---- resize kernel vs a naive reference ------------------------------------------------ */

/* The upright pixel (X, Y) of a w x h image stored under EXIF orientation o: the stored
 * (x, y) that PIL.ImageOps.exif_transpose shows there (the table of test_orient_views). */
static void stored_of_upright(int o, int w, int h, int X, int Y, int *x, int *y)
{
    switch (o) {
    case 2:
        *x = w - 1 - X, *y = Y;
        break;
    case 3:
        *x = w - 1 - X, *y = h - 1 - Y;
        break;
    case 4:
        *x = X, *y = h - 1 - Y;
        break;
    case 5:
        *x = Y, *y = X;
        break;
    case 6:
        *x = Y, *y = h - 1 - X;
        break;
    case 7:
        *x = w - 1 - Y, *y = h - 1 - X;
        break;
    case 8:
        *x = w - 1 - Y, *y = X;
        break;
    default:
        *x = X, *y = Y;
        break;
    }
}

/* Python's round(d / 2) for an integer d >= 0: half to even. */
static int round_half_even_2(int d)
{
    return d % 2 == 0 ? d / 2 : (d / 2) % 2 == 0 ? d / 2 : d / 2 + 1;
}

/* The geometry of docs/images.md, computed here from the rule: torchvision's Resize(R)
 * (shorter side to R, longer to int(R * long / short), which for these sizes is the integer
 * quotient) or Resize((S, S)), then CenterCrop(S): offset round((n - S) / 2), or, where n < S,
 * padding (S - n) // 2 before. */
typedef struct {
    int out_w, out_h, crop_x, crop_y;
} ref_geometry;

static ref_geometry ref_plan(const preprocess_spec *s, int w, int h)
{
    ref_geometry g;
    if (s->mode == RESIZE_DIRECT) {
        g.out_w = g.out_h = s->crop;
    } else if (w <= h) {
        g.out_w = s->resize, g.out_h = (int)((long long)s->resize * h / w);
    } else {
        g.out_h = s->resize, g.out_w = (int)((long long)s->resize * w / h);
    }
    g.crop_x =
        g.out_w >= s->crop ? round_half_even_2(g.out_w - s->crop) : -((s->crop - g.out_w) / 2);
    g.crop_y =
        g.out_h >= s->crop ? round_half_even_2(g.out_h - s->crop) : -((s->crop - g.out_h) / 2);
    return g;
}

/* Naive twin: full-size resize of the upright image img (w x h x ch, already transposed by
 * the test) in doubles (Pillow's filter definition, intermediate rounded to 8 bits as Pillow
 * does), then the crop with zero padding; planes in R,G,B or B,G,R order per s->bgr. */
static void naive(const unsigned char *img, int w, int h, int ch, const double box[4],
                  const ref_geometry *g, const preprocess_spec *sp, float *out)
{
    int ow = g->out_w, oh = g->out_h, S = sp->crop;
    double *tmp = calloc((size_t)h * ow * ch, sizeof *tmp);
    for (int axis = 0; axis < 2; axis++) {
        int in = axis ? h : w, n = axis ? oh : ow;
        double in0 = box[axis], in1 = box[axis + 2], scale = (in1 - in0) / n;
        double fs = scale < 1 ? 1 : scale;
        for (int o = 0; o < n; o++) {
            double c = in0 + (o + 0.5) * scale, wsum = 0, wt[20000];
            int lo = (int)(c - fs + 0.5), hi = (int)(c + fs + 0.5);
            if (lo < 0) lo = 0;
            if (hi > in) hi = in;
            for (int i = lo; i < hi; i++) {
                double d = fabs((i - c + 0.5) / fs);
                wt[i - lo] = d < 1 ? 1 - d : 0;
                wsum += wt[i - lo];
            }
            if (axis == 0) {
                for (int y = 0; y < h; y++)
                    for (int k = 0; k < ch; k++) {
                        double s = 0;
                        for (int i = lo; i < hi; i++)
                            s += wt[i - lo] / wsum * img[((size_t)y * w + i) * ch + k];
                        tmp[((size_t)y * ow + o) * ch + k] = s < 0     ? 0
                                                             : s > 255 ? 255
                                                                       : floor(s + 0.5);
                    }
            } else {
                int oy = o - g->crop_y;
                if (oy < 0 || oy >= S) continue;
                for (int x = 0; x < ow; x++) {
                    int ox = x - g->crop_x;
                    if (ox < 0 || ox >= S) continue;
                    for (int k = 0; k < 3; k++) {
                        int src = ch == 1 ? 0 : sp->bgr ? 2 - k : k;
                        double s = 0;
                        for (int i = lo; i < hi; i++)
                            s += wt[i - lo] / wsum * tmp[((size_t)i * ow + x) * ch + src];
                        out[(size_t)k * S * S + (size_t)oy * S + ox] =
                            (float)(floor(s + 0.5) / 255.0);
                    }
                }
            }
        }
    }
    free(tmp);
}

/* The geometry rule against resize_plan_make on many sizes, both modes, padding included. */
static void test_plan_vs_rule(void **state)
{
    (void)state;
    test_rng r = {17};
    for (int iter = 0; iter < 20000; iter++) {
        preprocess_spec s = torch_spec();
        s.mode = iter % 5 ? RESIZE_SHORTER_CROP : RESIZE_DIRECT;
        s.resize = 1 + (int)(rng_u32(&r) % 600);
        s.crop = 1 + (int)(rng_u32(&r) % 600);
        int w = 1 + (int)(rng_u32(&r) % (iter % 3 ? 5000 : 40));
        int h = 1 + (int)(rng_u32(&r) % (iter % 2 ? 5000 : 40));
        resize_plan p;
        assert_int_equal(resize_plan_make(&s, w, h, &p), RESIZE_OK);
        ref_geometry g = ref_plan(&s, w, h);
        if (p.out_w != g.out_w || p.out_h != g.out_h || p.crop_x != g.crop_x ||
            p.crop_y != g.crop_y || p.crop != s.crop)
            fail_msg("%dx%d mode %d R %d S %d: plan %dx%d at (%d,%d), rule %dx%d at (%d,%d)", w, h,
                     s.mode, s.resize, s.crop, p.out_w, p.out_h, p.crop_x, p.crop_y, g.out_w,
                     g.out_h, g.crop_x, g.crop_y);
    }
}

static void test_resize_vs_naive(void **state)
{
    (void)state;
    test_rng r = {42};
    int ran = 0, bgr_ran = 0, gray_ran = 0;
    for (int iter = 0; iter < 60; iter++) {
        int w = 1 + (int)(rng_u32(&r) % 90), h = 1 + (int)(rng_u32(&r) % 90);
        int ch = rng_u32(&r) % 2 ? 3 : 1, o = 1 + (int)(rng_u32(&r) % 8);
        preprocess_spec s = torch_spec();
        s.mode = rng_u32(&r) % 3 ? RESIZE_SHORTER_CROP : RESIZE_DIRECT;
        s.resize = 8 + (int)(rng_u32(&r) % 60);
        s.crop = 4 + (int)(rng_u32(&r) % 60);
        s.bgr = iter % 3 == 1;
        pixmap pm;
        assert_int_equal(pixmap_alloc(&pm, w, h, ch), 0);
        for (size_t i = 0; i < pm.stride * (size_t)h; i++) /* smooth + noise */
            pm.px[i] = (unsigned char)((i * 7 % 200) + rng_u32(&r) % 56);
        /* the upright image, transposed here from the stored pixels by the PIL table */
        int uw = o >= 5 ? h : w, uh = o >= 5 ? w : h;
        unsigned char *up = malloc((size_t)uw * uh * ch);
        for (int Y = 0; Y < uh; Y++)
            for (int X = 0; X < uw; X++) {
                int x, y;
                stored_of_upright(o, w, h, X, Y, &x, &y);
                memcpy(up + ((size_t)Y * uw + X) * ch,
                       pm.px + (size_t)y * pm.stride + (size_t)x * ch, (size_t)ch);
            }
        ref_geometry g = ref_plan(&s, uw, uh);
        assert_true((long)g.out_w * g.out_h <= 400000); /* sizes above stay small */
        pixmap_view v = pixmap_oriented(&pm, o);
        resize_plan p;
        assert_int_equal(resize_plan_make(&s, v.w, v.h, &p), RESIZE_OK);
        double box[4] = {0, 0, uw, uh};
        if (iter % 4 == 3) box[0] = 0.3, box[2] = uw - 0.2; /* fractional boxes (DCT scaling) */
        int chan[3];
        resize_chan_map(&s, ch, chan);
        size_t n = (size_t)3 * s.crop * s.crop;
        float *got = malloc(n * sizeof *got), *want = calloc(n, sizeof *want);
        unsigned char *px = malloc(n);
        assert_int_equal(resize_run(&v, box, &p, chan, px), RESIZE_OK);
        image_normalise(&s, px, got);
        free(px);
        naive(up, uw, uh, ch, box, &g, &s, want);
        char what[128];
        snprintf(what, sizeof what, "%dx%dx%d orient %d mode %d R %d S %d bgr %d", w, h, ch, o,
                 s.mode, s.resize, s.crop, s.bgr);
        /* fixed-point vs double rounding: at most one 8-bit step per pass */
        expect_close(got, want, n, 2.01 / 255, 0, what);
        ran++, bgr_ran += s.bgr && ch == 3, gray_ran += ch == 1;
        free(up);
        free(got);
        free(want);
        pixmap_free(&pm);
    }
    assert_int_equal(ran, 60);
    assert_true(bgr_ran >= 5 && gray_ran >= 10);
}

/* The vectorised passes (upright rows) against the scalar ones (the same image stored mirrored
 * and viewed through EXIF orientation 2, and the plan told the CPU has no AVX2, as on a
 * baseline x86-64 CPU): the same integer sums, so identical bytes. */
static void test_resize_simd_equals_scalar(void **state)
{
    (void)state;
    test_rng r = {7};
    int simd = 0;
    for (int iter = 0; iter < 40; iter++) {
        int w = 20 + (int)(rng_u32(&r) % 700), h = 20 + (int)(rng_u32(&r) % 300);
        int ch = iter % 2 ? 3 : 1;
        preprocess_spec s = torch_spec();
        s.resize = 16 + (int)(rng_u32(&r) % 240);
        s.crop = 8 + (int)(rng_u32(&r) % (size_t)s.resize);
        pixmap up, mir;
        assert_int_equal(pixmap_alloc(&up, w, h, ch), 0);
        assert_int_equal(pixmap_alloc(&mir, w, h, ch), 0);
        for (size_t i = 0; i < up.stride * (size_t)h; i++) up.px[i] = (unsigned char)rng_u32(&r);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                memcpy(mir.px + y * mir.stride + (size_t)(w - 1 - x) * ch,
                       up.px + y * up.stride + (size_t)x * ch, (size_t)ch);
        pixmap_view vu = pixmap_oriented(&up, 1), vm = pixmap_oriented(&mir, 2);
        resize_plan p;
        assert_int_equal(resize_plan_make(&s, w, h, &p), 0);
        double box[4] = {0, 0, w, h};
        if (iter % 4 >= 2) box[0] = 0.6, box[2] = w - 0.3; /* fractional, as DCT scaling makes */
        int chan[3];
        resize_chan_map(&s, ch, chan);
        size_t n = (size_t)3 * s.crop * s.crop;
        unsigned char *a = malloc(n), *b = malloc(n);
        assert_int_equal(resize_run(&vu, box, &p, chan, a), RESIZE_OK);
        assert_int_equal(resize_run(&vm, box, &p, chan, b), RESIZE_OK);
        assert_memory_equal(a, b, n);
        resize_plan scalar = p;
        simd |= p.avx2;
        scalar.avx2 = 0;
        assert_int_equal(resize_run(&vu, box, &scalar, chan, b), RESIZE_OK);
        assert_memory_equal(a, b, n);
        free(a);
        free(b);
        pixmap_free(&up);
        pixmap_free(&mir);
    }
    if (!simd) skip(); /* no AVX2 here: only the scalar loops ran */
}

static void test_resize_normalise_and_bgr(void **state)
{
    (void)state;
    pixmap pm;
    assert_int_equal(pixmap_alloc(&pm, 4, 4, 3), 0);
    for (int i = 0; i < 16; i++) pm.px[3 * i] = 10, pm.px[3 * i + 1] = 20, pm.px[3 * i + 2] = 30;
    preprocess_spec s = {RESIZE_DIRECT, 0, 2, 1, {0.1f, 0.2f, 0.3f}, {0.5f, 0.25f, 2.0f}, 0};
    resize_plan p;
    int chan[3];
    unsigned char px[12];
    float out[12];
    assert_int_equal(resize_plan_make(&s, 4, 4, &p), 0);
    resize_chan_map(&s, 3, chan);
    pixmap_view v = pixmap_oriented(&pm, 1);
    double box[4] = {0, 0, 4, 4};
    assert_int_equal(resize_run(&v, box, &p, chan, px), 0);
    image_normalise(&s, px, out);
    float want[3] = {(30 / 255.0f - 0.1f) / 0.5f, (20 / 255.0f - 0.2f) / 0.25f,
                     (10 / 255.0f - 0.3f) / 2.0f};
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 4; i++) assert_true(out[c * 4 + i] == want[c]);
    pixmap_free(&pm);
}

/* ---- decoders: encode small files in memory, then break them ------------------------------ */

/* A JPEG of w x h: comps 1 (grey), 3 (YCbCr, luma sampled hs x vs against chroma) or 4 (CMYK);
 * progressive 0 (baseline), 1 (libjpeg's progressive script) or 2 (sequential, one scan per
 * component); restart interval in MCU rows (0: none); noise > 0 adds that much pseudo-random
 * texture to the gradient. */
static unsigned char *make_jpeg_ex(int w, int h, int comps, int progressive, int orient, int hs,
                                   int vs, int restart, int noise, unsigned long *len)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    unsigned char *buf = NULL;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &buf, len);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = comps == 1 ? JCS_GRAYSCALE : comps == 4 ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    if (comps == 3) {
        c.comp_info[0].h_samp_factor = hs;
        c.comp_info[0].v_samp_factor = vs;
    }
    c.restart_in_rows = restart;
    jpeg_scan_info per_comp[4];
    if (progressive == 1) jpeg_simple_progression(&c);
    if (progressive == 2) {
        for (int i = 0; i < comps; i++)
            per_comp[i] = (jpeg_scan_info){.comps_in_scan = 1, .component_index = {i}, .Se = 63};
        c.scan_info = per_comp;
        c.num_scans = comps;
    }
    jpeg_start_compress(&c, TRUE);
    if (orient) {
        unsigned char app1[6 + 64];
        memcpy(app1, "Exif\0\0", 6);
        size_t n = tiff1(app1 + 6, 0, 0x112, 3, 1, (uint32_t)orient);
        jpeg_write_marker(&c, JPEG_APP0 + 1, app1, (unsigned)(n + 6));
    }
    unsigned char *row = malloc((size_t)w * comps);
    test_rng r = {(uint64_t)(w * 131 + h)};
    while (c.next_scanline < c.image_height) {
        for (int x = 0; x < w * comps; x++)
            row[x] = (unsigned char)(x * 3 + c.next_scanline * 5 +
                                     (noise ? rng_u32(&r) % (unsigned)noise : 0));
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    return buf;
}

static unsigned char *make_jpeg(int w, int h, int comps, int progressive, int orient,
                                unsigned long *len)
{
    return make_jpeg_ex(w, h, comps, progressive, orient, 2, 2, 0, 0, len);
}

typedef struct {
    unsigned char *p;
    size_t n, cap;
} membuf;

static void png_mem_write(png_structp png, png_bytep d, size_t n)
{
    membuf *m = png_get_io_ptr(png);
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2;
        m->p = realloc(m->p, m->cap);
    }
    memcpy(m->p + m->n, d, n);
    m->n += n;
}

static void png_mem_flush(png_structp png)
{
    (void)png;
}

static unsigned char *make_png(int w, int h, int ctype, int depth, int interlace, size_t *len)
{
    membuf m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_set_write_fn(png, &m, png_mem_write, png_mem_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, ctype,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_color pal[256];
    for (int i = 0; i < 256; i++) pal[i].red = pal[i].green = pal[i].blue = (png_byte)i;
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_PLTE(png, info, pal, 1 << depth);
    png_write_info(png, info);
    size_t rb = png_get_rowbytes(png, info);
    unsigned char *row = malloc(rb);
    int passes = png_set_interlace_handling(png);
    for (int pass = 0; pass < passes; pass++)
        for (int y = 0; y < h; y++) {
            for (size_t x = 0; x < rb; x++) row[x] = (unsigned char)(x * 7 + (size_t)y * 3);
            png_write_row(png, row);
        }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(row);
    *len = m.n;
    return m.p;
}

static int run(const unsigned char *d, size_t n, const image_limits *lim, char *err)
{
    preprocess_spec s = torch_spec();
    s.crop = 32, s.resize = 40;
    float out[3 * 32 * 32];
    int rc = image_to_tensor(d, n, &s, lim, out, err, 256);
    if (rc == IMG_OK)
        for (size_t i = 0; i < sizeof out / sizeof out[0]; i++)
            assert_true(out[i] >= 0 && out[i] <= 1);
    return rc;
}

static void test_decode_variants(void **state)
{
    (void)state;
    char err[256];
    unsigned long jl;
    size_t pl;
    for (int comps = 1; comps <= 4; comps += (comps == 1 ? 2 : 1))
        for (int prog = 0; prog < 2; prog++) {
            unsigned char *j = make_jpeg(67, 45, comps, prog, 6, &jl);
            assert_int_equal(run(j, jl, NULL, err), IMG_OK);
            free(j);
        }
    static const int pngs[][2] = {{PNG_COLOR_TYPE_GRAY, 1},       {PNG_COLOR_TYPE_GRAY, 2},
                                  {PNG_COLOR_TYPE_GRAY, 4},       {PNG_COLOR_TYPE_GRAY, 8},
                                  {PNG_COLOR_TYPE_GRAY, 16},      {PNG_COLOR_TYPE_RGB, 8},
                                  {PNG_COLOR_TYPE_RGB, 16},       {PNG_COLOR_TYPE_PALETTE, 1},
                                  {PNG_COLOR_TYPE_PALETTE, 4},    {PNG_COLOR_TYPE_PALETTE, 8},
                                  {PNG_COLOR_TYPE_GRAY_ALPHA, 8}, {PNG_COLOR_TYPE_GRAY_ALPHA, 16},
                                  {PNG_COLOR_TYPE_RGBA, 8},       {PNG_COLOR_TYPE_RGBA, 16}};
    for (size_t i = 0; i < sizeof pngs / sizeof pngs[0]; i++)
        for (int il = 0; il < 2; il++) {
            unsigned char *p = make_png(37, 23, pngs[i][0], pngs[i][1], il, &pl);
            int rc = run(p, pl, NULL, err);
            if (rc) fprintf(stderr, "ctype %d depth %d: %s\n", pngs[i][0], pngs[i][1], err);
            assert_int_equal(rc, IMG_OK);
            free(p);
        }
}

static void test_truncated_and_corrupt(void **state)
{
    (void)state;
    char err[256];
    unsigned long jl;
    size_t pl;
    unsigned long jpl;
    unsigned char *j = make_jpeg(50, 40, 3, 0, 0, &jl), *jp = make_jpeg(50, 40, 3, 1, 0, &jpl);
    unsigned char *p = make_png(50, 40, PNG_COLOR_TYPE_RGB, 8, 0, &pl);
    /* every prefix: an error (or, for the last bytes after the image data, success) */
    for (unsigned long n = 0; n < jl; n++) {
        int rc = run(j, n, NULL, err);
        if (n < 3) /* too short to recognise */
            assert_true(rc == IMG_ECORRUPT || rc == IMG_EUNSUPPORTED);
        else if (n + 2 < jl)
            assert_int_equal(rc, IMG_ECORRUPT);
    }
    for (unsigned long n = 3; n + 2 < jpl; n++)
        assert_int_equal(run(jp, n, NULL, err), IMG_ECORRUPT);
    for (size_t n = 0; n < pl; n++) {
        int rc = run(p, n, NULL, err);
        if (n >= 8 && n + 12 < pl) assert_int_equal(rc, IMG_ECORRUPT); /* IEND may go missing */
    }
    assert_int_equal(run(j, jl / 2, NULL, err), IMG_ECORRUPT);
    assert_non_null(strstr(err, "Premature end"));
    /* random damage: never a crash or leak (ASan build), and the status the damage calls
     * for: a broken signature is not recognised; a PNG is CRC-checked chunk by chunk, so any
     * damage before IEND is an error, while IEND itself is not needed; a JPEG's entropy data
     * carries no check, so damage there may decode, but both outcomes must occur. */
    test_rng r = {3};
    int ok[3] = {0}, bad[3] = {0};
    for (int i = 0; i < 600; i++) {
        int kind = i % 3; /* baseline JPEG, progressive JPEG, PNG */
        unsigned char *src = kind == 0 ? j : kind == 1 ? jp : p;
        size_t n = kind == 0 ? jl : kind == 1 ? jpl : pl;
        unsigned char *c = malloc(n);
        memcpy(c, src, n);
        for (int f = 0; f < 1 + i % 4; f++)
            c[rng_u32(&r) % n] ^= (unsigned char)(1 + rng_u32(&r) % 255);
        size_t first = 0;
        while (first < n && c[first] == src[first]) first++;
        err[0] = 0;
        int rc = run(c, n, NULL, err);
        assert_true(rc == IMG_OK || rc == IMG_ECORRUPT || rc == IMG_EUNSUPPORTED ||
                    rc == IMG_ETOOBIG);
        if (rc != IMG_OK && !err[0]) fail_msg("damage %d: status %d without a message", i, rc);
        size_t sig = kind == 2 ? 8 : 2;
        if (first < sig && rc != IMG_EUNSUPPORTED)
            fail_msg("damage %d: signature byte %zu changed, status %d", i, first, rc);
        if (kind == 2 && first >= sig && first + 12 < n && rc == IMG_OK)
            fail_msg("damage %d: PNG byte %zu of %zu changed, decoded anyway", i, first, n);
        if (kind == 2 && first + 12 >= n && rc != IMG_OK)
            fail_msg("damage %d: only IEND changed, status %d (%s)", i, rc, err);
        rc == IMG_OK ? ok[kind]++ : bad[kind]++;
        free(c);
    }
    for (int k = 0; k < 2; k++)
        if (ok[k] < 20 || bad[k] < 20)
            fail_msg("JPEG kind %d: %d decoded, %d refused", k, ok[k], bad[k]);
    assert_true(bad[2] >= 150);
    free(j);
    free(jp);
    free(p);
}

/* ---- a window of a JPEG against the whole decode ---------------------------------------- */

typedef struct {
    int denom, win[4];
} window_ctx;

static int fixed_denom(int w, int h, int orient, void *ctx)
{
    (void)w, (void)h, (void)orient;
    return ((window_ctx *)ctx)->denom;
}

static void fixed_window(const pixmap *geom, void *ctx, int win[4])
{
    (void)geom;
    memcpy(win, ((window_ctx *)ctx)->win, sizeof((window_ctx *)ctx)->win);
}

/* Every sampling libjpeg writes, progressive or not, with restarts, at every DCT scale: the
 * window's pixels are the whole decode's, byte for byte (fancy upsampling at a cut would
 * differ), and truncated data below the window is still an error. */
static void test_jpeg_window_exact(void **state)
{
    (void)state;
    static const int samp[][3] = {{1, 1, 1}, {3, 1, 1}, {3, 2, 1}, {3, 1, 2},
                                  {3, 2, 2}, {3, 4, 1}, {4, 1, 1}};
    test_rng r = {11};
    char err[256];
    for (size_t sc = 0; sc < sizeof samp / sizeof samp[0]; sc++)
        for (int prog = 0; prog < 2; prog++)
            for (int denom = 1; denom <= 8; denom *= 2) {
                int w = 1 + (int)(rng_u32(&r) % 300), h = 1 + (int)(rng_u32(&r) % 300);
                unsigned long len;
                unsigned char *j = make_jpeg_ex(w, h, samp[sc][0], prog, 0, samp[sc][1],
                                                samp[sc][2], (int)(sc % 2), 60, &len);
                window_ctx wc = {denom, {0, 0, 0, 0}};
                jpeg_decode_opts all = {.max_pixels = 1L << 30, .scale = fixed_denom, .ctx = &wc};
                pixmap f;
                assert_int_equal(jpeg_decode(j, len, &all, &f, err, sizeof err), IMG_OK);
                for (int k = 0; k < 12; k++) {
                    int *v = wc.win;
                    v[0] = (int)(rng_u32(&r) % (unsigned)f.w);
                    v[1] = (int)(rng_u32(&r) % (unsigned)f.h);
                    v[2] = v[0] + 1 + (int)(rng_u32(&r) % (unsigned)(f.w - v[0]));
                    v[3] = v[1] + 1 + (int)(rng_u32(&r) % (unsigned)(f.h - v[1]));
                    jpeg_decode_opts part = {.max_pixels = 1L << 30,
                                             .scale = fixed_denom,
                                             .window = fixed_window,
                                             .ctx = &wc};
                    pixmap p;
                    assert_int_equal(jpeg_decode(j, len, &part, &p, err, sizeof err), IMG_OK);
                    assert_int_equal(p.dec_w, f.w);
                    assert_int_equal(p.dec_h, f.h);
                    assert_int_equal(p.win_x, v[0]);
                    assert_int_equal(p.win_y, v[1]);
                    assert_int_equal(p.w, v[2] - v[0]);
                    assert_int_equal(p.h, v[3] - v[1]);
                    for (int y = 0; y < p.h; y++) {
                        const unsigned char *want =
                            f.px + (size_t)(v[1] + y) * f.stride + (size_t)v[0] * f.channels;
                        if (memcmp(p.px + (size_t)y * p.stride, want, (size_t)p.w * p.channels))
                            fail_msg("comps %d sampling %dx%d prog %d denom %d, %dx%d image, "
                                     "window [%d,%d)x[%d,%d): row %d differs",
                                     samp[sc][0], samp[sc][1], samp[sc][2], prog, denom, w, h, v[0],
                                     v[2], v[1], v[3], v[1] + y);
                    }
                    pixmap_free(&p);
                }
                /* the top rows only, of a file cut short: still corrupt */
                if (!prog && f.h > 32) {
                    int top[4] = {0, 0, f.w, 1};
                    memcpy(wc.win, top, sizeof top);
                    jpeg_decode_opts part = {.max_pixels = 1L << 30,
                                             .scale = fixed_denom,
                                             .window = fixed_window,
                                             .ctx = &wc};
                    pixmap p;
                    assert_int_equal(jpeg_decode(j, len * 3 / 4, &part, &p, err, sizeof err),
                                     IMG_ECORRUPT);
                }
                pixmap_free(&f);
                free(j);
            }
}

/* The copy of a progressive JPEG with its DC refinement scan repeated until it has `scans`
 * scans, and its length in *len: the scan is one raw bit per block (no Huffman code can go
 * wrong), and each repeat makes the decoder walk every block again. */
static unsigned char *repeat_dc_scan(const unsigned char *j, unsigned long jl, int scans,
                                     unsigned long *len)
{
    unsigned long i = 2, a = 0, b = 0;
    int n = 0;
    while (i + 4 <= jl && j[i] == 0xff && j[i + 1] != 0xd9) {
        unsigned long seg = (unsigned long)j[i + 2] << 8 | j[i + 3];
        if (j[i + 1] != 0xda) {
            i += 2 + seg;
            continue;
        }
        unsigned long start = i;
        const unsigned char *ss = j + i + 5 + 2 * j[i + 4]; /* Ss, Se, Ah/Al */
        n++;
        for (i += 2 + seg; i + 1 < jl; i++)
            if (j[i] == 0xff && j[i + 1] && (j[i + 1] < 0xd0 || j[i + 1] > 0xd7)) break;
        if (ss[0] == 0 && ss[2] >> 4) a = start, b = i;
    }
    assert_true(n > 0 && n < scans && b > a);
    unsigned long end = i; /* the EOI */
    *len = end + (unsigned long)(scans - n) * (b - a) + 2;
    unsigned char *o = malloc(*len);
    memcpy(o, j, end);
    for (int k = 0; k < scans - n; k++) memcpy(o + end + (unsigned long)k * (b - a), j + a, b - a);
    o[*len - 2] = 0xff, o[*len - 1] = 0xd9;
    return o;
}

/* Hostile images are refused from their headers, before the work they would cost. */
static void test_hostile_bounded_before_decode(void **state)
{
    (void)state;
    char err[256];
    float out[3 * 32 * 32];
    preprocess_spec direct = torch_spec();
    direct.mode = RESIZE_DIRECT, direct.crop = 32;
    /* 1 x 40000 to 32 x 32 shrinks 1250x (over RESIZE_MAX_FACTOR): refused from IHDR or the
     * frame header, so damaged pixel data after it is never reached (it was: ECORRUPT) */
    size_t pl;
    unsigned char *p = make_png(1, 40000, PNG_COLOR_TYPE_GRAY, 8, 0, &pl);
    p[pl - 20] ^= 0x55; /* inside IDAT: bad CRC */
    assert_int_equal(image_to_tensor(p, pl, &direct, NULL, out, err, sizeof err), IMG_ETOOBIG);
    assert_string_equal(err, "1x40000 image: aspect ratio too extreme to resize (limit 1024x)");
    free(p);
    p = make_png(40000, 1, PNG_COLOR_TYPE_RGBA, 16, 0, &pl);
    p[pl - 20] ^= 0x55;
    assert_int_equal(image_to_tensor(p, pl, &direct, NULL, out, err, sizeof err), IMG_ETOOBIG);
    free(p);
    unsigned long jl;
    unsigned char *j = make_jpeg(40000, 1, 3, 0, 0, &jl);
    assert_int_equal(image_to_tensor(j, jl * 3 / 4, &direct, NULL, out, err, sizeof err),
                     IMG_ETOOBIG);
    assert_string_equal(err, "40000x1 image: aspect ratio too extreme to resize (limit 1024x)");
    free(j);
    /* 3000 x 3000 progressive: libjpeg's script decodes; 60 repeats of its DC refinement scan walk
     * over JPEG_SCAN_PASSES times the blocks, and stop at the start of the scan past it */
    for (int comps = 1; comps <= 3; comps += 2) {
        j = make_jpeg_ex(3000, 3000, comps, 1, 0, 2, 2, 0, 0, &jl);
        assert_int_equal(run(j, jl, NULL, err), IMG_OK);
        unsigned long bl;
        unsigned char *bomb = repeat_dc_scan(j, jl, 60, &bl);
        assert_int_equal(run(bomb, bl, NULL, err), IMG_ETOOBIG);
        assert_non_null(strstr(err, "progressive scans would walk over 12 times"));
        free(bomb);
        free(j);
    }
    /* small images keep the JPEG_MAX_SCANS allowance */
    j = make_jpeg(64, 48, 3, 1, 0, &jl);
    unsigned long bl;
    unsigned char *bomb = repeat_dc_scan(j, jl, 400, &bl);
    assert_int_equal(run(bomb, bl, NULL, err), IMG_OK);
    free(bomb);
    bomb = repeat_dc_scan(j, jl, 501, &bl);
    assert_int_equal(run(bomb, bl, NULL, err), IMG_ECORRUPT);
    assert_non_null(strstr(err, "more than 500 scans"));
    free(bomb);
    free(j);
}

/* A multi-scan JPEG keeps every coefficient while its scans arrive, 2 bytes per sample: it is
 * refused when that comes to more than JPEG_COEF_BYTES_PER_PIXEL (3) bytes per pixel of
 * max_pixels, from the header. */
static void test_jpeg_coefficient_budget(void **state)
{
    (void)state;
    char err[256];
    unsigned long jl;
    image_limits lim = {.max_pixels = 8192}; /* a budget of 24576 bytes */
    /* 4:4:4, 6 bytes per pixel: 64 x 64 is the budget exactly; a block column or row more, or
     * a pixel less of limit, is over it */
    unsigned char *j = make_jpeg_ex(64, 64, 3, 1, 0, 1, 1, 0, 0, &jl);
    assert_int_equal(run(j, jl, &lim, err), IMG_OK);
    lim.max_pixels = 8191;
    assert_int_equal(run(j, jl, &lim, err), IMG_ETOOBIG);
    assert_string_equal(err, "progressive JPEG 64x64 needs 24576 bytes of coefficients (6 bytes "
                             "per pixel), over the limit of 24573 bytes (3 bytes x the pixel "
                             "limit of 8191)");
    free(j);
    lim.max_pixels = 8192;
    j = make_jpeg_ex(72, 64, 3, 1, 0, 1, 1, 0, 0, &jl);
    assert_int_equal(run(j, jl, &lim, err), IMG_ETOOBIG);
    assert_string_equal(err, "progressive JPEG 72x64 needs 27648 bytes of coefficients (6 bytes "
                             "per pixel), over the limit of 24576 bytes (3 bytes x the pixel "
                             "limit of 8192)");
    free(j);
    j = make_jpeg_ex(64, 72, 3, 1, 0, 1, 1, 0, 0, &jl);
    assert_int_equal(run(j, jl, &lim, err), IMG_ETOOBIG);
    free(j);
    /* the same 72 x 64 in one interleaved scan: no coefficient buffer, only the pixel limit */
    j = make_jpeg_ex(72, 64, 3, 0, 0, 1, 1, 0, 0, &jl);
    assert_int_equal(run(j, jl, &lim, err), IMG_OK);
    free(j);
    /* sequential with a scan per component: buffered like a progressive file */
    j = make_jpeg_ex(64, 64, 3, 2, 0, 1, 1, 0, 0, &jl);
    assert_int_equal(run(j, jl, &lim, err), IMG_OK);
    free(j);
    j = make_jpeg_ex(72, 64, 3, 2, 0, 1, 1, 0, 0, &jl);
    assert_int_equal(run(j, jl, &lim, err), IMG_ETOOBIG);
    assert_non_null(strstr(err, "multi-scan JPEG 72x64 needs 27648 bytes"));
    free(j);
    /* 4:2:0, 3 bytes per pixel: whatever the pixel limit allows, even where libjpeg pads the
     * buffer to whole 16 x 16 MCUs (100 x 100 as 112 x 112) */
    lim.max_pixels = 10000;
    j = make_jpeg_ex(100, 100, 3, 1, 0, 2, 2, 0, 0, &jl);
    assert_int_equal(run(j, jl, &lim, err), IMG_OK);
    free(j);
    /* 4:2:2, 4 bytes per pixel: 3/4 of the pixel limit */
    lim.max_pixels = 4096;
    j = make_jpeg_ex(64, 48, 3, 1, 0, 2, 1, 0, 0, &jl);
    assert_int_equal(run(j, jl, &lim, err), IMG_OK);
    free(j);
    j = make_jpeg_ex(64, 56, 3, 1, 0, 2, 1, 0, 0, &jl);
    assert_int_equal(run(j, jl, &lim, err), IMG_ETOOBIG);
    assert_non_null(strstr(err, "(4 bytes per pixel)"));
    free(j);
    /* CMYK, four components of 2 bytes: 3/8 of the pixel limit */
    j = make_jpeg_ex(48, 32, 4, 1, 0, 1, 1, 0, 0, &jl);
    assert_int_equal(run(j, jl, &lim, err), IMG_OK);
    free(j);
    j = make_jpeg_ex(56, 32, 4, 1, 0, 1, 1, 0, 0, &jl);
    assert_int_equal(run(j, jl, &lim, err), IMG_ETOOBIG);
    assert_non_null(strstr(err, "(8 bytes per pixel)"));
    free(j);
    /* grey, 2 bytes per pixel: never over it within the pixel limit */
    j = make_jpeg_ex(64, 64, 1, 1, 0, 1, 1, 0, 0, &jl);
    assert_int_equal(run(j, jl, &lim, err), IMG_OK);
    free(j);
}

/* A decode running past its deadline stops with IMG_ETIMEOUT; before it, nothing changes. */
static void test_decode_deadline(void **state)
{
    (void)state;
    char err[256];
    unsigned long jl;
    size_t pl;
    unsigned char *enc[3];
    size_t lens[3];
    enc[0] = make_jpeg(300, 200, 3, 0, 0, &jl), lens[0] = jl;
    enc[1] = make_jpeg(300, 200, 3, 1, 0, &jl), lens[1] = jl;
    enc[2] = make_png(300, 200, PNG_COLOR_TYPE_RGB, 8, 1, &pl), lens[2] = pl;
    for (int i = 0; i < 3; i++) {
        image_limits lim = {.deadline_ns = image_now_ns() - 1};
        assert_int_equal(run(enc[i], lens[i], &lim, err), IMG_ETIMEOUT);
        assert_non_null(strstr(err, "deadline"));
        lim.deadline_ns = image_now_ns() + 60000000000LL;
        assert_int_equal(run(enc[i], lens[i], &lim, err), IMG_OK);
        atomic_int cancel = 0;
        lim.cancel = &cancel;
        assert_int_equal(run(enc[i], lens[i], &lim, err), IMG_OK);
        atomic_store(&cancel, 1);
        assert_int_equal(run(enc[i], lens[i], &lim, err), IMG_ETIMEOUT);
        assert_non_null(strstr(err, "cancelled"));
        free(enc[i]);
    }
}

static void test_limits_and_formats(void **state)
{
    (void)state;
    char err[256];
    unsigned long jl;
    size_t pl;
    unsigned char *j = make_jpeg(50, 40, 3, 0, 0, &jl);
    unsigned char *p = make_png(50, 40, PNG_COLOR_TYPE_RGB, 8, 0, &pl);
    image_limits lim = {.max_pixels = 1999};
    assert_int_equal(run(j, jl, &lim, err), IMG_ETOOBIG);
    assert_non_null(strstr(err, "50x40"));
    assert_int_equal(run(p, pl, &lim, err), IMG_ETOOBIG);
    lim.max_pixels = 2000;
    assert_int_equal(run(j, jl, &lim, err), IMG_OK);
    lim.max_bytes = jl - 1;
    assert_int_equal(run(j, jl, &lim, err), IMG_ETOOBIG);
    /* a header claiming 60000 x 60000 is refused before any allocation for it */
    for (unsigned long i = 2; i + 8 < jl; i++)
        if (j[i] == 0xff && j[i + 1] == 0xc0) {
            j[i + 5] = j[i + 7] = 0xea, j[i + 6] = j[i + 8] = 0x60;
            break;
        }
    assert_int_equal(run(j, jl, NULL, err), IMG_ETOOBIG);
    p[16] = p[20] = 0, p[17] = p[21] = 0, p[18] = p[22] = 0xea, p[19] = p[23] = 0x60;
    /* (IHDR CRC now wrong: libpng reports it as corrupt, also before allocating) */
    int rc = run(p, pl, NULL, err);
    assert_true(rc == IMG_ETOOBIG || rc == IMG_ECORRUPT);
    assert_int_equal(run((const unsigned char *)"GIF89a....", 10, NULL, err), IMG_EUNSUPPORTED);
    assert_non_null(strstr(err, "GIF"));
    assert_int_equal(run((const unsigned char *)"\x01\x02\x03", 3, NULL, err), IMG_EUNSUPPORTED);
    assert_non_null(strstr(err, "01 02 03"));
    assert_int_equal(run(NULL, 0, NULL, err), IMG_ECORRUPT);
    free(j);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exif_valid),
        cmocka_unit_test(test_exif_invalid),
        cmocka_unit_test(test_orient_views),
        cmocka_unit_test(test_orient_windows),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_plan_vs_rule),
        cmocka_unit_test(test_resize_vs_naive),
        cmocka_unit_test(test_resize_simd_equals_scalar),
        cmocka_unit_test(test_resize_normalise_and_bgr),
        cmocka_unit_test(test_decode_variants),
        cmocka_unit_test(test_truncated_and_corrupt),
        cmocka_unit_test(test_jpeg_window_exact),
        cmocka_unit_test(test_limits_and_formats),
        cmocka_unit_test(test_hostile_bounded_before_decode),
        cmocka_unit_test(test_jpeg_coefficient_budget),
        cmocka_unit_test(test_decode_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
