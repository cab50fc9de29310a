/* image.c - format sniffing and the decode -> orient -> resize pipeline; see image.h. */
#include "image/image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image/jpeg_decode.h"
#include "image/pixmap.h"
#include "image/png_decode.h"
#include "image/resize.h"

static int starts(const unsigned char *d, size_t n, size_t off, const char *magic, size_t m)
{
    return n >= off + m && !memcmp(d + off, magic, m);
}

const char *image_format_name(const unsigned char *d, size_t n)
{
    static const struct {
        size_t off;
        const char *magic;
        size_t len;
        const char *name;
    } fmts[] = {
        {0, "\xff\xd8\xff", 3, "JPEG"},
        {0, "\x89PNG\r\n\x1a\n", 8, "PNG"},
        {0, "GIF87a", 6, "GIF"},
        {0, "GIF89a", 6, "GIF"},
        {0, "BM", 2, "BMP"},
        {8, "WEBP", 4, "WebP"},
        {0, "II*\0", 4, "TIFF"},
        {0, "MM\0*", 4, "TIFF"},
        {4, "ftypavif", 8, "AVIF"},
        {4, "ftypheic", 8, "HEIC"},
        {4, "ftypheix", 8, "HEIC"},
        {4, "ftypmif1", 8, "HEIF"},
        {0, "\0\0\0\x0cjP  ", 8, "JPEG 2000"},
        {0, "\xff\x4f\xff\x51", 4, "JPEG 2000"},
        {0, "\xff\x0a", 2, "JPEG XL"},
        {0, "\0\0\0\x0cJXL ", 8, "JPEG XL"},
        {0, "\0\0\1\0", 4, "ICO"},
        {0, "8BPS", 4, "PSD"},
        {0, "%PDF", 4, "PDF"},
        {0, "\x1a\x45\xdf\xa3", 4, "Matroska/WebM video"},
        {4, "ftyp", 4, "MP4/QuickTime"},
        {0, "\x93NUMPY", 6, "NumPy .npy"},
        {0, "<", 1, "text (HTML, XML or SVG)"},
        {0, "{", 1, "text (JSON)"},
    };
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++)
        if (starts(d, n, fmts[i].off, fmts[i].magic, fmts[i].len)) return fmts[i].name;
    return NULL;
}

typedef struct {
    const preprocess_spec *pre;
    double margin;
} decode_ctx;

/* DCT scale: largest 1/denom keeping >= margin source pixels per resized pixel. */
static int choose_denom(int w, int h, int orient, void *vctx)
{
    const decode_ctx *c = vctx;
    if (c->margin < 0) return 1;
    int uw = orient_transposes(orient) ? h : w, uh = orient_transposes(orient) ? w : h;
    resize_plan p;
    if (resize_plan_make(c->pre, uw, uh, &p)) return 1;
    for (int denom = 8; denom > 1; denom /= 2)
        if ((double)uw / denom >= c->margin * p.out_w && (double)uh / denom >= c->margin * p.out_h)
            return denom;
    return 1;
}

/* Whether a w x h stored image shown with `orient` and decoded at 1/denom can be resized:
 * the factor check resize_run makes, from the header. A bad spec passes here (its message
 * comes after the decode, as before). */
static int shape_fits(const preprocess_spec *pre, int w, int h, int orient, int denom)
{
    int t = orient_transposes(orient), uw = t ? h : w, uh = t ? w : h;
    resize_plan p;
    int rc = resize_plan_make(pre, uw, uh, &p);
    if (rc == RESIZE_EINVAL) return 1;
    return rc == RESIZE_OK && (double)uw / denom / p.out_w <= RESIZE_MAX_FACTOR &&
           (double)uh / denom / p.out_h <= RESIZE_MAX_FACTOR;
}

/* img_shape_fn: refuse before any pixel what the resize would refuse after the decode.
 * orient 0 (a PNG's eXIf may follow the pixels): the image passes if it fits either way up. */
static int check_shape(int w, int h, int orient, int denom, void *vctx, char *msg, size_t msglen)
{
    const decode_ctx *c = vctx;
    int o = c->pre->exif_orient && orient ? orient : 1, t = orient_transposes(o);
    if (shape_fits(c->pre, w, h, o, denom) ||
        (!orient && c->pre->exif_orient && shape_fits(c->pre, w, h, 6, denom)))
        return IMG_OK;
    snprintf(msg, msglen, "%dx%d image: aspect ratio too extreme to resize (limit %gx)", t ? h : w,
             t ? w : h, RESIZE_MAX_FACTOR);
    return IMG_ETOOBIG;
}

long long image_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The resize of a decoded image (pixels or not yet): the plan, from the upright size in the
 * file, and the box the decoded pixels cover, in upright decoded units: full / denom of
 * them, so an axis read backwards starts late. Also the upright decoded size. */
static int resize_geometry(const preprocess_spec *pre, const pixmap *pm, int orient,
                           resize_plan *plan, double box[4], int *uw, int *uh)
{
    int t = orient_transposes(orient);
    int full_w = t ? pm->full_h : pm->full_w, full_h = t ? pm->full_w : pm->full_h;
    *uw = t ? pm->dec_h : pm->dec_w;
    *uh = t ? pm->dec_w : pm->dec_h;
    double ex = (double)full_w / pm->denom, ey = (double)full_h / pm->denom;
    box[0] = orient_reverses_x(orient) ? *uw - ex : 0;
    box[1] = orient_reverses_y(orient) ? *uh - ey : 0;
    box[2] = box[0] + ex;
    box[3] = box[1] + ey;
    return resize_plan_make(pre, full_w, full_h, plan);
}

/* Decode only the pixels the resize reads (the whole image when it would refuse). */
static void needed_window(const pixmap *geom, void *vctx, int win[4])
{
    const decode_ctx *c = vctx;
    int orient = c->pre->exif_orient ? geom->orient : 1, uw, uh, uwin[4];
    resize_plan plan;
    double box[4];
    if (resize_geometry(c->pre, geom, orient, &plan, box, &uw, &uh) ||
        resize_window(uw, uh, box, &plan, uwin))
        return;
    orient_window_stored(orient, geom->dec_w, geom->dec_h, uwin, win);
}

void image_normalise(const preprocess_spec *pre, const unsigned char *px, float *out)
{
    size_t plane = (size_t)pre->crop * (size_t)pre->crop;
    /* Computed, not looked up: the compiler vectorises it, and the float operations are
     * the same, so the values are too. It runs on the worker assembling a batch. */
    for (int p = 0; p < 3; p++) {
        float mean = pre->mean[p], std = pre->std[p];
        for (size_t i = p * plane; i < (p + 1) * plane; i++)
            out[i] = ((float)px[i] / 255.0f - mean) / std;
    }
}

int image_to_tensor(const unsigned char *data, size_t len, const preprocess_spec *pre,
                    const image_limits *lim, float *out, char *err, size_t errlen)
{
    return image_to_tensor_ex(data, len, pre, lim, 0, out, err, errlen);
}

int image_to_tensor_ex(const unsigned char *data, size_t len, const preprocess_spec *pre,
                       const image_limits *lim, double dct_margin, float *out, char *err,
                       size_t errlen)
{
    /* a bad crop gets its message from image_to_pixels */
    int ok = pre->crop > 0 && pre->crop <= RESIZE_MAX_SIDE;
    unsigned char *px = malloc(ok ? 3 * (size_t)pre->crop * (size_t)pre->crop : 1);
    if (!px) {
        snprintf(err, errlen, "out of memory");
        return IMG_ENOMEM;
    }
    int rc = image_to_pixels(data, len, pre, lim, dct_margin, px, err, errlen);
    if (rc == IMG_OK) image_normalise(pre, px, out);
    free(px);
    return rc;
}

int image_to_pixels(const unsigned char *data, size_t len, const preprocess_spec *pre,
                    const image_limits *lim, double dct_margin, unsigned char *px, char *err,
                    size_t errlen)
{
    size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : IMG_DEFAULT_MAX_BYTES;
    long max_pixels = lim && lim->max_pixels ? lim->max_pixels : IMG_DEFAULT_MAX_PIXELS;
    long long deadline = lim ? lim->deadline_ns : 0;
    const atomic_int *cancel = lim ? lim->cancel : NULL;
    decode_ctx dc = {pre, dct_margin ? dct_margin : IMG_DCT_MARGIN};
    pixmap pm = {0};
    int rc;
    if (!data || len == 0) {
        snprintf(err, errlen, "empty image");
        return IMG_ECORRUPT;
    }
    if (len > max_bytes) {
        snprintf(err, errlen, "image is %zu bytes, over the limit of %zu", len, max_bytes);
        return IMG_ETOOBIG;
    }
    const char *fmt = image_format_name(data, len);
    if (fmt && !strcmp(fmt, "JPEG")) {
        jpeg_decode_opts o = {.max_pixels = max_pixels,
                              .use_exif = pre->exif_orient,
                              .scale = choose_denom,
                              .window = needed_window,
                              .ctx = &dc,
                              .shape = check_shape,
                              .deadline_ns = deadline,
                              .cancel = cancel};
        rc = jpeg_decode(data, len, &o, &pm, err, errlen);
    } else if (fmt && !strcmp(fmt, "PNG")) {
        png_decode_opts o = {.max_pixels = max_pixels,
                             .use_exif = pre->exif_orient,
                             .shape = check_shape,
                             .ctx = &dc,
                             .deadline_ns = deadline,
                             .cancel = cancel};
        rc = png_decode(data, len, &o, &pm, err, errlen);
    } else {
        if (fmt)
            snprintf(err, errlen, "unsupported image format %s: only JPEG and PNG are accepted",
                     fmt);
        else
            snprintf(err, errlen,
                     "unrecognised data (first bytes %02x %02x %02x %02x): only JPEG and PNG "
                     "are accepted",
                     data[0], len > 1 ? data[1] : 0, len > 2 ? data[2] : 0, len > 3 ? data[3] : 0);
        return IMG_EUNSUPPORTED;
    }
    if (rc) return rc;

    int orient = pre->exif_orient ? pm.orient : 1, uw, uh, t = orient_transposes(orient);
    int full_w = t ? pm.full_h : pm.full_w, full_h = t ? pm.full_w : pm.full_h; /* upright */
    pixmap_view v = pixmap_oriented(&pm, orient);
    double box[4];
    resize_plan plan;
    int chan[3];
    rc = resize_geometry(pre, &pm, orient, &plan, box, &uw, &uh);
    if (rc == RESIZE_OK) {
        resize_chan_map(pre, pm.channels, chan);
        rc = resize_run(&v, box, &plan, chan, px);
    }
    switch (rc) {
    case RESIZE_OK:
        break;
    case RESIZE_ENOMEM:
        snprintf(err, errlen, "out of memory resizing %dx%d", full_w, full_h);
        rc = IMG_ENOMEM;
        break;
    case RESIZE_ETOOBIG:
        snprintf(err, errlen, "%dx%d image: aspect ratio too extreme to resize (limit %gx)", full_w,
                 full_h, RESIZE_MAX_FACTOR);
        rc = IMG_ETOOBIG;
        break;
    default:
        snprintf(err, errlen, "invalid preprocess spec (resize %d, crop %d)", pre->resize,
                 pre->crop);
        rc = IMG_EUNSUPPORTED;
        break;
    }
    pixmap_free(&pm);
    return rc;
}
