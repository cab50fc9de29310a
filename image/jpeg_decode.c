/* jpeg_decode.c - libjpeg-turbo decode with longjmp error handling; see jpeg_decode.h. */
#include "image/jpeg_decode.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "image/exif.h"
#include "image/image.h"

#define XBN_STR_(x) #x
#define XBN_STR(x) XBN_STR_(x)

typedef struct {
    struct jpeg_error_mgr pub; /* first: libjpeg casts cinfo->err to this struct */
    struct jpeg_progress_mgr progress;
    jmp_buf jb;
    int status;
    char msg[JMSG_LENGTH_MAX + 64];
    long long deadline_ns;    /* 0 = none */
    const atomic_int *cancel; /* NULL = none */
    int last_scan;            /* the scan counted in `walked` last */
    long long walked, budget; /* blocks walked by the scans so far; their limit */
    /* owned resources, freed after a longjmp */
    pixmap pm;
    unsigned char *row;
} jdec;

static int status_of(int code)
{
    switch (code) {
    case JERR_OUT_OF_MEMORY:
        return IMG_ENOMEM;
    case JERR_SOF_UNSUPPORTED:
    case JERR_BAD_PRECISION:
    case JERR_NOT_COMPILED:
    case JERR_ARITH_NOTIMPL:
        return IMG_EUNSUPPORTED;
    case JERR_IMAGE_TOO_BIG:
    case JERR_WIDTH_OVERFLOW:
        return IMG_ETOOBIG;
    default:
        return IMG_ECORRUPT;
    }
}

static void on_error(j_common_ptr c)
{
    jdec *d = (jdec *)c->err;
    char m[JMSG_LENGTH_MAX];
    c->err->format_message(c, m);
    snprintf(d->msg, sizeof d->msg, "JPEG: %s", m);
    d->status = status_of(c->err->msg_code);
    longjmp(d->jb, 1);
}

/* Warnings that mean pixels were lost or invented. */
static int fatal_warning(int code)
{
    switch (code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
        return 1;
    default:
        return 0;
    }
}

static void on_message(j_common_ptr c, int level)
{
    if (level == -1 && fatal_warning(c->err->msg_code)) {
        jdec *d = (jdec *)c->err;
        char m[JMSG_LENGTH_MAX];
        c->err->format_message(c, m);
        snprintf(d->msg, sizeof d->msg, "JPEG: %s", m);
        d->status = IMG_ECORRUPT;
        longjmp(d->jb, 1);
    }
}

static void on_output(j_common_ptr c)
{
    (void)c; /* never print */
}

static void stop(j_common_ptr c, int status, const char *m)
{
    jdec *d = (jdec *)c->err;
    snprintf(d->msg, sizeof d->msg, "JPEG: %s", m);
    d->status = status;
    longjmp(d->jb, 1);
}

/* Called per row of iMCUs while scans are read (jpeg_start_decompress of a progressive file)
 * and per output row: the scan budget at the start of each scan, and the deadline. */
static void on_progress(j_common_ptr c)
{
    if (!c->is_decompressor) return;
    j_decompress_ptr di = (j_decompress_ptr)c;
    jdec *d = (jdec *)c->err;
    if (di->input_scan_number > JPEG_MAX_SCANS)
        stop(c, IMG_ECORRUPT,
             "more than " XBN_STR(JPEG_MAX_SCANS) " scans (progressive scan bomb?)");
    if (di->progressive_mode && di->input_scan_number != d->last_scan) {
        d->last_scan = di->input_scan_number;
        for (int i = 0; i < di->comps_in_scan; i++)
            d->walked += (long long)di->cur_comp_info[i]->width_in_blocks *
                         di->cur_comp_info[i]->height_in_blocks;
        if (d->walked > d->budget) {
            char m[160];
            snprintf(m, sizeof m,
                     "progressive scans would walk over %d times the image's blocks "
                     "(stopped at scan %d)",
                     JPEG_SCAN_PASSES, di->input_scan_number);
            stop(c, IMG_ETOOBIG, m);
        }
    }
    if (d->deadline_ns && image_now_ns() > d->deadline_ns)
        stop(c, IMG_ETIMEOUT, "decode stopped at the request's deadline");
    if (d->cancel && atomic_load_explicit(d->cancel, memory_order_relaxed))
        stop(c, IMG_ETIMEOUT, "decode cancelled (shutting down)");
}

/* The scan budget: JPEG_SCAN_PASSES times the blocks of every component. */
static long long scan_budget(j_decompress_ptr di)
{
    long long blocks = 0;
    for (int i = 0; i < di->num_components; i++)
        blocks += (long long)di->comp_info[i].width_in_blocks * di->comp_info[i].height_in_blocks;
    blocks *= JPEG_SCAN_PASSES;
    return blocks > JPEG_SCAN_MIN_BLOCKS ? blocks : JPEG_SCAN_MIN_BLOCKS;
}

/* A multi-scan file (progressive, or sequential with fewer components in its first scan than
 * in the frame: libjpeg's has_multiple_scans) is decoded through a buffer of every DCT
 * coefficient of the image, allocated by jpeg_start_decompress (jdcoefct.c): per component
 * width_in_blocks x height_in_blocks rounded up to its sampling factors, that is h x v blocks
 * of 64 JCOEFs per MCU of max_h x max_v blocks. So each pixel costs 2 * sum(h * v) /
 * (max_h * max_v) bytes (3 at 4:2:0, 6 at 4:4:4), and the file is refused when its pixels
 * would take more than JPEG_COEF_BYTES_PER_PIXEL bytes per pixel of max_pixels. The image's
 * own pixels are counted, not the padding to whole MCUs (under one MCU row and column), so
 * a 4:2:0 image that fits the pixel limit always fits this one. 0, or -1 with the message. */
static int check_coefficients(j_decompress_ptr di, jdec *d, long max_pixels)
{
    if (!di->progressive_mode && di->comps_in_scan >= di->num_components) return 0;
    /* Sides under 2^16 and at most MAX_COMPONENTS (10) of 16 blocks per MCU: 2 * blocks *
     * pixels stays under 2^41, which no budget from 2^40 pixels on is exceeded by (and the
     * budget times 16 blocks per MCU stays far inside a long long below that). */
    if (max_pixels >= 1L << 40) return 0;
    long long per_mcu = 0; /* blocks per MCU, of all components */
    for (int i = 0; i < di->num_components; i++)
        per_mcu += (long long)di->comp_info[i].h_samp_factor * di->comp_info[i].v_samp_factor;
    long long mcu = (long long)di->max_h_samp_factor * di->max_v_samp_factor;
    long long px = (long long)di->image_width * di->image_height;
    long long budget = JPEG_COEF_BYTES_PER_PIXEL * (long long)max_pixels;
    /* need = 2 * per_mcu * px / mcu bytes: compared without the division */
    if ((long long)sizeof(JCOEF) * per_mcu * px > budget * mcu) {
        double per_px = (double)sizeof(JCOEF) * (double)per_mcu / (double)mcu;
        double need = per_px * (double)px;
        char n[32], b[32];
        if (need < 1e6)
            snprintf(n, sizeof n, "%.0f bytes", need);
        else
            snprintf(n, sizeof n, "%.1f MB", need / 1e6);
        if (budget < 1000000)
            snprintf(b, sizeof b, "%lld bytes", budget);
        else
            snprintf(b, sizeof b, "%.1f MB", (double)budget / 1e6);
        snprintf(d->msg, sizeof d->msg,
                 "%s JPEG %ux%u needs %s of coefficients (%.3g bytes per pixel), over the limit "
                 "of %s (%d bytes x the pixel limit of %ld)",
                 di->progressive_mode ? "progressive" : "multi-scan", di->image_width,
                 di->image_height, n, per_px, b, JPEG_COEF_BYTES_PER_PIXEL, max_pixels);
        d->status = IMG_ETOOBIG;
        return -1;
    }
    return 0;
}

static int find_orientation(j_decompress_ptr di)
{
    for (jpeg_saved_marker_ptr m = di->marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && !memcmp(m->data, "Exif\0\0", 6))
            return exif_orientation(m->data, m->data_length);
    return 1;
}

static unsigned muldiv255(unsigned a, unsigned b) /* Pillow's MULDIV255 */
{
    unsigned t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

/* CMYK row (inverted: stored = 255 - ink, when `inverted`) -> RGB, Pillow's cmyk2rgb. */
static void cmyk_row(const unsigned char *in, unsigned char *out, int w, int inverted)
{
    for (int x = 0; x < w; x++, in += 4, out += 3) {
        unsigned k = inverted ? 255u - in[3] : in[3], nk = 255u - k;
        for (int c = 0; c < 3; c++) {
            unsigned ink = inverted ? 255u - in[c] : in[c];
            int v = (int)nk - (int)muldiv255(ink, nk);
            out[c] = (unsigned char)(v < 0 ? 0 : v);
        }
    }
}

/* The output colour space for the file's: 0, or -1 with the message (libjpeg cannot say
 * what the components are). *cmyk: decode as CMYK, converted per row. */
static int choose_colour(j_decompress_ptr di, jdec *d, int *cmyk)
{
    *cmyk = 0;
    switch (di->jpeg_color_space) {
    case JCS_GRAYSCALE:
        di->out_color_space = JCS_GRAYSCALE;
        return 0;
    case JCS_YCbCr:
    case JCS_RGB:
        di->out_color_space = JCS_RGB;
        return 0;
    case JCS_CMYK:
    case JCS_YCCK:
        di->out_color_space = JCS_CMYK;
        *cmyk = 1;
        return 0;
    default:
        snprintf(d->msg, sizeof d->msg, "JPEG with %d components in an unknown colour space",
                 di->num_components);
        d->status = IMG_EUNSUPPORTED;
        return -1;
    }
}

/* After jpeg_start_decompress: decode the stored window win[] of the output image into d->pm
 * with at least one iMCU around it, then entropy-decode the rows after it (a skip that stops
 * one row short, as a skip to the end returns without reading, and the last row), so damage
 * anywhere is still an error. Sets d->pm.px to the window's first pixel. 0, or -1 with the
 * message when libjpeg stalls; its errors longjmp to jpeg_decode. */
static int read_window(j_decompress_ptr di, jdec *d, const int win[4], int channels, int cmyk)
{
    int ow = (int)di->output_width, oh = (int)di->output_height;
    int mw = di->max_h_samp_factor * di->min_DCT_scaled_size;
    int mh = di->max_v_samp_factor * di->min_DCT_scaled_size;
    JDIMENSION cx = (JDIMENSION)(win[0] > mw ? win[0] - mw : 0);
    JDIMENSION cw = (JDIMENSION)(win[2] + mw < ow ? win[2] + mw : ow) - cx;
    if (cx > 0 || (int)cw < ow) jpeg_crop_scanline(di, &cx, &cw); /* cx rounds down */
    /* whole iMCU rows: a skip that starts inside a row group is where libjpeg-turbo has had
     * bugs */
    int ry0 = win[1] > mh ? (win[1] - mh) / mh * mh : 0, ry1 = (win[3] / mh + 2) * mh;
    if (ry1 > oh) ry1 = oh;
    if (pixmap_alloc(&d->pm, (int)cw, ry1 - ry0, channels)) {
        snprintf(d->msg, sizeof d->msg, "JPEG: out of memory for %ux%d pixels", cw, ry1 - ry0);
        d->status = IMG_ENOMEM;
        return -1;
    }
    if (!(d->row = malloc((size_t)cw * (cmyk ? 4 : (size_t)di->output_components)))) {
        snprintf(d->msg, sizeof d->msg, "JPEG: out of memory");
        d->status = IMG_ENOMEM;
        return -1;
    }
    if (ry0 > 0 && jpeg_skip_scanlines(di, (JDIMENSION)ry0) != (JDIMENSION)ry0) goto stalled;
    while ((int)di->output_scanline < ry1) {
        unsigned char *dst = d->pm.mem + (size_t)(di->output_scanline - ry0) * d->pm.stride;
        JSAMPROW r = cmyk ? d->row : dst;
        if (jpeg_read_scanlines(di, &r, 1) != 1) goto stalled;
        if (cmyk) cmyk_row(d->row, dst, (int)cw, di->saw_Adobe_marker);
    }
    if (ry1 < oh - 1 &&
        jpeg_skip_scanlines(di, (JDIMENSION)(oh - 1 - ry1)) != (JDIMENSION)(oh - 1 - ry1))
        goto stalled;
    while (di->output_scanline < di->output_height) {
        JSAMPROW r = d->row;
        if (jpeg_read_scanlines(di, &r, 1) != 1) goto stalled;
    }
    d->pm.px = d->pm.mem + (size_t)(win[1] - ry0) * d->pm.stride +
               (size_t)(win[0] - (int)cx) * (size_t)channels;
    return 0;
stalled:
    snprintf(d->msg, sizeof d->msg, "JPEG: decoder stalled");
    d->status = IMG_ECORRUPT;
    return -1;
}

/* The sizes, scale and orientation of `geom`, and the window win[] the pixels hold. */
static void set_geometry(pixmap *pm, const pixmap *geom, const int win[4])
{
    pm->w = win[2] - win[0];
    pm->h = win[3] - win[1];
    pm->win_x = win[0];
    pm->win_y = win[1];
    pm->dec_w = geom->dec_w;
    pm->dec_h = geom->dec_h;
    pm->full_w = geom->full_w;
    pm->full_h = geom->full_h;
    pm->denom = geom->denom;
    pm->orient = geom->orient;
}

int jpeg_decode(const unsigned char *data, size_t len, const jpeg_decode_opts *o, pixmap *out,
                char *err, size_t errlen)
{
    struct jpeg_decompress_struct di;
    jdec d;
    int cmyk;
    memset(&d, 0, sizeof d);
    memset(out, 0, sizeof *out);
    di.err = jpeg_std_error(&d.pub);
    d.pub.error_exit = on_error;
    d.pub.emit_message = on_message;
    d.pub.output_message = on_output;
    d.progress.progress_monitor = on_progress;
    d.deadline_ns = o->deadline_ns;
    d.cancel = o->cancel;
    d.budget = JPEG_SCAN_MIN_BLOCKS;
    if (setjmp(d.jb)) goto fail;
    jpeg_create_decompress(&di);
    di.progress = &d.progress;
    jpeg_mem_src(&di, data, (unsigned long)len);
    if (o->use_exif) jpeg_save_markers(&di, JPEG_APP0 + 1, EXIF_MAX_BYTES);
    jpeg_read_header(&di, TRUE);
    d.budget = scan_budget(&di);

    int w = (int)di.image_width, h = (int)di.image_height;
    if ((long long)w * h > o->max_pixels) {
        snprintf(d.msg, sizeof d.msg, "JPEG is %dx%d = %lld pixels, over the limit of %ld", w, h,
                 (long long)w * h, o->max_pixels);
        d.status = IMG_ETOOBIG;
        goto fail;
    }
    if (check_coefficients(&di, &d, o->max_pixels)) goto fail;
    if (choose_colour(&di, &d, &cmyk)) goto fail;
    int orient = o->use_exif ? find_orientation(&di) : 1;
    int denom = o->scale ? o->scale(w, h, orient, o->ctx) : 1;
    if (denom != 2 && denom != 4 && denom != 8) denom = 1;
    if (o->shape && (d.status = o->shape(w, h, orient, denom, o->ctx, d.msg, sizeof d.msg)))
        goto fail;
    di.scale_num = 1;
    di.scale_denom = (unsigned)denom;
    di.dct_method = JDCT_ISLOW; /* libjpeg's default and Pillow's: accurate integer IDCT */
    jpeg_start_decompress(&di);

    int ow = (int)di.output_width, oh = (int)di.output_height, win[4] = {0, 0, ow, oh};
    pixmap geom = {.full_w = w,
                   .full_h = h,
                   .denom = denom,
                   .dec_w = ow,
                   .dec_h = oh,
                   .orient = orient,
                   .channels = cmyk ? 3 : di.output_components};
    if (o->window) o->window(&geom, o->ctx, win);
    if (win[0] < 0 || win[1] < 0 || win[2] > ow || win[3] > oh || win[0] >= win[2] ||
        win[1] >= win[3])
        memcpy(win, (int[4]){0, 0, ow, oh}, sizeof win); /* a bad window: the whole image */
    if (read_window(&di, &d, win, geom.channels, cmyk)) goto fail;
    set_geometry(&d.pm, &geom, win);
    *out = d.pm;
    free(d.row);
    jpeg_destroy_decompress(&di);
    return IMG_OK;
fail:
    snprintf(err, errlen, "%s", d.msg);
    pixmap_free(&d.pm);
    free(d.row);
    jpeg_destroy_decompress(&di);
    return d.status ? d.status : IMG_ECORRUPT;
}
