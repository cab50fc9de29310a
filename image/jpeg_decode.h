/* jpeg_decode.h - JPEG bytes to an 8-bit pixmap through libjpeg-turbo.
 *
 * Accepts what libjpeg-turbo 2.1 decodes in 8 bits: baseline and progressive, Huffman or
 * arithmetic coded, restart markers, any chroma subsampling. Colour: grayscale stays one
 * channel; YCbCr and RGB become RGB; CMYK and YCCK become RGB with Pillow's CMYK->RGB
 * formula (R = (255 - K) - (255 - K) * C / 255, in ink units), the stored values read as
 * inverted when an Adobe APP14 marker is present (what Photoshop and libjpeg write; Pillow
 * assumes it always) and as plain ink otherwise. Lossless and 12-bit JPEGs, and colour spaces
 * libjpeg cannot identify, are refused as IMG_EUNSUPPORTED naming what was found.
 *
 * Limits and errors: width * height from the frame header is checked against max_pixels
 * before anything is decoded; a multi-scan file (progressive, or a scan per component), which
 * libjpeg decodes through a buffer of all its coefficients (2 bytes per sample), is held to
 * JPEG_COEF_BYTES_PER_PIXEL bytes of them per pixel of max_pixels (IMG_ETOOBIG: 4:2:0 up to
 * max_pixels, 4:4:4 up to half of it); then `shape` (if not NULL) with the size and scale
 * chosen.
 * Progressive files are refused at the start of a scan that would take the blocks walked
 * by all scans so far over JPEG_SCAN_PASSES times the image's blocks (at least
 * JPEG_SCAN_MIN_BLOCKS), or past JPEG_MAX_SCANS scans: a cheap file can otherwise cost
 * minutes of CPU. A decode still running at deadline_ns stops with IMG_ETIMEOUT (checked
 * per row of blocks through libjpeg's progress monitor). libjpeg errors longjmp back here
 * and are returned with its message; of its warnings, those that mean lost image data
 * (premature end of file, corrupt entropy-coded data) are errors too, while harmless ones
 * (extraneous bytes between markers, unknown JFIF version) are ignored. Data after the last
 * scan, including a missing EOI marker, is not read.
 *
 * EXIF: with use_exif, the orientation tag of the first APP1 "Exif" segment is recorded in
 * the pixmap (pixels stay as stored). DCT scaling: after the header is read, `scale` (if not
 * NULL) is called with the stored size and orientation and returns the denominator (1, 2, 4
 * or 8) to decode at; libjpeg-turbo then runs a reduced IDCT, so the full-size image is
 * never produced. Window: `window` (if not NULL) is then called with the geometry (a pixmap
 * without pixels: full and decoded sizes, denom, orientation) and fills the stored window
 * [x0, x1) x [y0, y1) it needs; only that window is kept, and decoded with a margin of one
 * iMCU (jpeg_crop_scanline, jpeg_skip_scanlines), so its pixels are those of a full decode:
 * at a cut, fancy upsampling would otherwise see an image edge. The rows after it are still
 * entropy-decoded, so corrupt or truncated data anywhere is an error as before.
 */
#ifndef XBN_JPEG_DECODE_H
#define XBN_JPEG_DECODE_H

#include <stdatomic.h>
#include <stddef.h>

#include "image/limits.h"
#include "image/pixmap.h"

typedef int (*jpeg_scale_fn)(int w, int h, int orient, void *ctx);
typedef void (*jpeg_window_fn)(const pixmap *geom, void *ctx, int win[4]);

typedef struct {
    long max_pixels;          /* width * height limit, checked from the header */
    int use_exif;             /* record the EXIF orientation */
    jpeg_scale_fn scale;      /* NULL: decode at full size */
    jpeg_window_fn window;    /* NULL: keep the whole image */
    void *ctx;                /* passed to all three */
    img_shape_fn shape;       /* NULL: no check; else called after `scale`, before any allocation */
    long long deadline_ns;    /* CLOCK_MONOTONIC ns: a decode still running stops; 0 = none */
    const atomic_int *cancel; /* non-NULL and set: a decode still running stops */
} jpeg_decode_opts;

/* Decode data[0..len) into *out (owned by the caller afterwards; free with pixmap_free).
 * Returns IMG_OK or an IMG_E* status (image.h) with a message in err; *out is empty on
 * failure. */
int jpeg_decode(const unsigned char *data, size_t len, const jpeg_decode_opts *o, pixmap *out,
                char *err, size_t errlen);

#endif
