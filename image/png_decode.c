/* png_decode.c - libpng decode from memory with setjmp error handling; see png_decode.h. */
#include "image/png_decode.h"

#include <ctype.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "image/exif.h"
#include "image/image.h"
#include "image/limits.h"

typedef struct {
    const unsigned char *data;
    size_t len, pos;
    char msg[256];
    int status;
    int skip_end; /* trailing chunks lie about their length: do not read them */
    long long deadline_ns;
    const atomic_int *cancel;
    /* owned, freed on every path */
    unsigned char *buf;
    png_bytep *rows;
} pdec;

static void on_error(png_structp png, png_const_charp m)
{
    pdec *d = png_get_error_ptr(png);
    if (!d->status) {
        snprintf(d->msg, sizeof d->msg, "PNG: %s", m);
        d->status = IMG_ECORRUPT;
    }
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp m)
{
    (void)png;
    (void)m;
}

static void on_read(png_structp png, png_bytep dst, size_t n)
{
    pdec *d = png_get_io_ptr(png);
    if (n > d->len - d->pos) {
        snprintf(d->msg, sizeof d->msg, "PNG: truncated (file ends after %zu bytes)", d->len);
        d->status = IMG_ECORRUPT;
        png_error(png, "truncated");
    }
    memcpy(dst, d->data + d->pos, n);
    d->pos += n;
}

/* After each row (of each Adam7 pass): stop at the deadline. */
static void on_row(png_structp png, png_uint_32 row, int pass)
{
    (void)row;
    (void)pass;
    pdec *d = png_get_error_ptr(png);
    if (d->deadline_ns && image_now_ns() > d->deadline_ns) {
        snprintf(d->msg, sizeof d->msg, "PNG: decode stopped at the request's deadline");
        d->status = IMG_ETIMEOUT;
        png_error(png, "deadline");
    }
    if (d->cancel && atomic_load_explicit(d->cancel, memory_order_relaxed)) {
        snprintf(d->msg, sizeof d->msg, "PNG: decode cancelled (shutting down)");
        d->status = IMG_ETIMEOUT;
        png_error(png, "cancelled");
    }
}

/* Skip every ancillary chunk the pipeline does not read (text, iCCP, sPLT, gAMA, ... and
 * unknown ones) unread, keep tRNS and eXIf, and bound what libpng still stores. */
static void limit_chunks(png_structp png)
{
    static const png_byte keep[] = "eXIf";
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_AS_DEFAULT, keep, 1);
    png_set_chunk_cache_max(png, PNG_CHUNK_CACHE_MAX);
    png_set_chunk_malloc_max(png, PNG_CHUNK_MALLOC_MAX);
}

static int info_orientation(png_structp png, png_infop info)
{
    png_uint_32 n = 0;
    png_bytep exif = NULL;
    if (info && png_get_eXIf_1(png, info, &n, &exif) && exif) return exif_orientation(exif, n);
    return 0;
}

/* In place: n pixels of ch (2 or 4) channels with alpha last -> ch - 1 channels on white. */
static void composite(unsigned char *p, size_t n, int ch)
{
    unsigned char *o = p;
    for (size_t i = 0; i < n; i++, p += ch) {
        unsigned a = p[ch - 1];
        for (int c = 0; c < ch - 1; c++)
            *o++ = (unsigned char)((p[c] * a + PNG_BACKGROUND * (255u - a) + 127u) / 255u);
    }
}

/* libpng allocates an ancillary chunk's declared length before reading its bytes (eXIf,
 * in 1.6.39, with no cap): a 200-byte file could make it allocate 2 GB. Walk the chunk
 * list first. A chunk running past the end of the data before the image data is complete
 * fails the decode here (it would fail later as truncated anyway); one after the image
 * data sets *skip_end, and the trailing chunks are not read. Returns 0 or -1 with d->msg. */
static int check_chunks(pdec *d)
{
    int *skip_end = &d->skip_end;
    size_t off = 8;
    int seen_idat = 0;
    *skip_end = 0;
    while (off + 8 <= d->len) {
        const unsigned char *c = d->data + off;
        size_t n = (size_t)c[0] << 24 | (size_t)c[1] << 16 | (size_t)c[2] << 8 | c[3];
        int idat = !memcmp(c + 4, "IDAT", 4);
        if (!idat && seen_idat) seen_idat = 2; /* past the image data */
        if (n > d->len - off - 8 || d->len - off - 8 - n < 4) {
            if (seen_idat == 2) {
                *skip_end = 1;
                return 0;
            }
            char t[5];
            for (int i = 0; i < 4; i++) t[i] = isalpha(c[4 + i]) ? (char)c[4 + i] : '?';
            t[4] = 0;
            snprintf(d->msg, sizeof d->msg,
                     "PNG: truncated: chunk '%s' claims %zu bytes, the file ends after %zu", t, n,
                     d->len);
            d->status = IMG_ECORRUPT;
            return -1;
        }
        if (idat) seen_idat = seen_idat ? seen_idat : 1;
        if (!memcmp(c + 4, "IEND", 4)) return 0;
        off += 12 + n;
    }
    *skip_end = seen_idat != 0; /* no IEND: the trailing part is damaged, leave it */
    return 0;
}

/* One function, past 60 lines, because it is libpng's fixed call sequence (read_info, the
 * transforms, read_image, read_end) under the setjmp its errors return to, with one cleanup
 * of what libpng may leave behind. */
int png_decode(const unsigned char *data, size_t len, const png_decode_opts *o, pixmap *out,
               char *err, size_t errlen)
{
    long max_pixels = o->max_pixels;
    int use_exif = o->use_exif;
    pdec d;
    memset(&d, 0, sizeof d);
    memset(out, 0, sizeof *out);
    d.data = data;
    d.len = len;
    d.deadline_ns = o->deadline_ns;
    d.cancel = o->cancel;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &d, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_infop end = png ? png_create_info_struct(png) : NULL;
    int rc;
    if (!png || !info || !end) {
        snprintf(d.msg, sizeof d.msg, "PNG: out of memory");
        d.status = IMG_ENOMEM;
        goto fail;
    }
    if (check_chunks(&d)) goto fail;
    if (setjmp(png_jmpbuf(png))) goto fail;
    png_set_read_fn(png, &d, on_read);
    png_set_user_limits(png, PNG_MAX_SIDE, PNG_MAX_SIDE); /* our own pixel limit applies */
    limit_chunks(png);
    png_set_read_status_fn(png, on_row);
    png_read_info(png, info);

    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    if ((long long)w * h > max_pixels) {
        snprintf(d.msg, sizeof d.msg, "PNG is %ux%u = %lld pixels, over the limit of %ld",
                 (unsigned)w, (unsigned)h, (long long)w * h, max_pixels);
        d.status = IMG_ETOOBIG;
        goto fail;
    }
    if (o->shape && (d.status = o->shape((int)w, (int)h, 0, 1, o->ctx, d.msg, sizeof d.msg)))
        goto fail;
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (depth == 16) png_set_strip_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int ch = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (ch < 1 || ch > 4 || rowbytes != (size_t)w * ch) {
        snprintf(d.msg, sizeof d.msg, "PNG: unexpected layout (%d channels)", ch);
        d.status = IMG_EUNSUPPORTED;
        goto fail;
    }
    d.buf = malloc(rowbytes * h);
    d.rows = malloc(sizeof *d.rows * h);
    if (!d.buf || !d.rows) {
        snprintf(d.msg, sizeof d.msg, "PNG: out of memory for %ux%u pixels", (unsigned)w,
                 (unsigned)h);
        d.status = IMG_ENOMEM;
        goto fail;
    }
    for (png_uint_32 y = 0; y < h; y++) d.rows[y] = d.buf + (size_t)y * rowbytes;
    png_read_image(png, d.rows);

    volatile int orient = use_exif ? info_orientation(png, info) : 0;
    if (!d.skip_end && setjmp(png_jmpbuf(png)) == 0) { /* trailing chunks: damage ignored */
        png_read_end(png, end);
        if (use_exif && !orient) orient = info_orientation(png, end);
    }
    if (ch == 2 || ch == 4) composite(d.buf, (size_t)w * h, ch);
    out->px = out->mem = d.buf;
    d.buf = NULL;
    out->w = out->full_w = out->dec_w = (int)w;
    out->h = out->full_h = out->dec_h = (int)h;
    out->channels = ch == 1 || ch == 2 ? 1 : 3;
    out->stride = (size_t)w * out->channels;
    out->denom = 1;
    out->orient = orient ? orient : 1;
    rc = IMG_OK;
    goto done;
fail:
    snprintf(err, errlen, "%s", d.msg[0] ? d.msg : "PNG: decode failed");
    rc = d.status ? d.status : IMG_ECORRUPT;
done:
    png_destroy_read_struct(png ? &png : NULL, info ? &info : NULL, end ? &end : NULL);
    free(d.buf);
    free(d.rows);
    return rc;
}
