/* png_decode.h - PNG bytes to an 8-bit pixmap through libpng.
 *
 * Every PNG colour type and depth is accepted: gray 1/2/4/8/16 bit (low depths scaled to
 * 0..255), RGB 8/16, palette 1..8 bit, gray+alpha and RGBA 8/16, tRNS transparency, Adam7
 * interlacing. 16-bit samples keep their high byte (what Pillow does for RGB(A) 16-bit).
 * Gray stays one channel; everything else becomes RGB.
 *
 * Alpha is composited onto an opaque white background (PNG_BACKGROUND = 255 in every
 * channel): out = (c * a + 255 * (255 - a) + 127) / 255 with 8-bit alpha. A transparent
 * logo thus looks as it does on a web page, instead of showing whatever colour the encoder
 * left under alpha = 0 (Pillow's convert("RGB") simply drops alpha). gAMA, cHRM, iCCP and
 * sRGB are ignored, as Pillow ignores them.
 *
 * EXIF: with use_exif, the orientation in an eXIf chunk (before or after the image data)
 * is recorded in the pixmap, as Pillow's exif_transpose uses it.
 *
 * Limits and errors: width * height from IHDR is checked against max_pixels, then `shape`
 * is called, before any row is allocated or image data inflated; ancillary chunks other
 * than tRNS and eXIf are skipped unread (PNG_CHUNK_* in limits.h bound what is kept); a
 * decode still running at deadline_ns stops after its current row with IMG_ETIMEOUT; libpng errors
 * (bad CRC in a critical chunk, bad zlib stream, truncation inside the image data) longjmp back
 * here and are returned with libpng's message. Damage after the last image row (missing IEND, bad
 * trailing chunk) is ignored.
 */
#ifndef XBN_PNG_DECODE_H
#define XBN_PNG_DECODE_H

#include <stdatomic.h>
#include <stddef.h>

#include "image/pixmap.h"

#define PNG_BACKGROUND 255

typedef struct {
    long max_pixels;          /* width * height limit, checked from IHDR */
    int use_exif;             /* record the EXIF orientation */
    img_shape_fn shape;       /* NULL: no check; else called from IHDR (orientation 0: unknown) */
    void *ctx;                /* passed to shape */
    long long deadline_ns;    /* CLOCK_MONOTONIC ns: a decode still running stops; 0 = none */
    const atomic_int *cancel; /* non-NULL and set: a decode still running stops */
} png_decode_opts;

/* Decode data[0..len) into *out (caller frees with pixmap_free). Returns IMG_OK or an IMG_E*
 * status (image.h) with a message in err; *out is empty on failure. */
int png_decode(const unsigned char *data, size_t len, const png_decode_opts *o, pixmap *out,
               char *err, size_t errlen);

#endif
