/* pixmap.h - a decoded 8-bit image as the decoders hand it to the resizer.
 *
 * A pixmap owns one malloc'd buffer of h rows of `stride` bytes, `channels` (1 gray or 3 RGB)
 * interleaved bytes per pixel, exactly as stored in the file: orientation is not applied to
 * the pixels but recorded in `orient` and applied by reading through a pixmap_view, which
 * maps upright coordinates onto the stored bytes with signed strides (no copy).
 *
 * A JPEG may have been decoded at 1/denom of its size (DCT scaling): full_w x full_h is the
 * size in the file, dec_w x dec_h = ceil(full / denom) what the decoder produces; the decoded
 * pixels cover full_w / denom (a fraction, when the last block is partial) of their own units.
 * A pixmap may hold only a window of that image, the pixels the resize will read: w x h pixels
 * whose top-left is stored pixel (win_x, win_y).
 */
#ifndef XBN_PIXMAP_H
#define XBN_PIXMAP_H

#include <stddef.h>

typedef struct {
    int w, h;           /* pixels held: the window */
    int channels;       /* 1 or 3 */
    size_t stride;      /* bytes per row */
    unsigned char *px;  /* the window's top-left pixel, inside mem */
    unsigned char *mem; /* owned */
    int orient;         /* EXIF orientation 1..8 still to apply */
    int full_w, full_h; /* size in the file */
    int denom;          /* DCT scale denominator: 1, 2, 4 or 8 */
    int dec_w, dec_h;   /* the whole decoded image */
    int win_x, win_y;   /* the window's position in it, stored orientation */
} pixmap;

/* An upright view of the whole image, of which the window [x0, x1) x [y0, y1) has pixels:
 * pixel (x, y), channel c is origin[(x - x0) * sx + (y - y0) * sy + c]. */
typedef struct {
    const unsigned char *origin;
    ptrdiff_t sx, sy;
    int w, h;     /* upright size of the whole image */
    int channels; /* 1 or 3 */
    int x0, y0, x1, y1;
} pixmap_view;

/* A decoder's check of the shape from the header, before it allocates: stored w x h, the
 * orientation (0 when not yet known) and the DCT scale's denominator. Returns IMG_OK, or an
 * IMG_E* status (image.h) with a message in msg[msglen]. */
typedef int (*img_shape_fn)(int w, int h, int orient, int denom, void *ctx, char *msg,
                            size_t msglen);

/* Allocate w x h x channels (fails with -1 when that exceeds SIZE_MAX or malloc fails): the
 * whole image, px = mem; sets full and decoded sizes to w x h, denom 1, orient 1. */
int pixmap_alloc(pixmap *pm, int w, int h, int channels);
void pixmap_free(pixmap *pm); /* frees mem and zeroes *pm; accepts NULL */

/* The upright view of pm under orientation `orient` (1..8; anything else is 1). */
pixmap_view pixmap_oriented(const pixmap *pm, int orient);

/* 1 when orientation o swaps width and height (5..8). */
int orient_transposes(int o);

/* 1 when upright x (y) runs backwards through the stored pixels under orientation o. */
int orient_reverses_x(int o);
int orient_reverses_y(int o);

/* The stored window [x0, x1) x [y0, y1) (win[4]) of a dec_w x dec_h image holding the upright
 * window uwin[4] under orientation o. */
void orient_window_stored(int o, int dec_w, int dec_h, const int uwin[4], int win[4]);

#endif
