/* pixmap.h - a decoded 8-bit image as the decoders hand it to the resizer.
 *
 * A pixmap owns one malloc'd buffer of h rows of `stride` bytes, `channels` (1 gray or 3 RGB)
 * interleaved bytes per pixel, exactly as stored in the file: orientation is not applied to
 * the pixels but recorded in `orient` and applied by reading through a pixmap_view, which
 * maps upright coordinates onto the stored bytes with signed strides (no copy).
 *
 * A JPEG may have been decoded at 1/denom of its size (DCT scaling): full_w x full_h is the
 * size in the file, w x h = ceil(full / denom) what was decoded; the decoded pixels cover
 * full_w / denom (a fraction, when the last block is partial) of their own units.
 */
#ifndef XBN_PIXMAP_H
#define XBN_PIXMAP_H

#include <stddef.h>

typedef struct {
    int w, h;           /* decoded size */
    int channels;       /* 1 or 3 */
    size_t stride;      /* bytes per row */
    unsigned char *px;  /* owned */
    int orient;         /* EXIF orientation 1..8 still to apply */
    int full_w, full_h; /* size in the file */
    int denom;          /* DCT scale denominator: 1, 2, 4 or 8 */
} pixmap;

/* An upright view: pixel (x, y), channel c is origin[x * sx + y * sy + c]. */
typedef struct {
    const unsigned char *origin;
    ptrdiff_t sx, sy;
    int w, h;     /* upright size */
    int channels; /* 1 or 3 */
} pixmap_view;

/* Allocate px for w x h x channels (fails with -1 when that exceeds SIZE_MAX or malloc
 * fails); sets full_w/full_h = w/h, denom 1, orient 1. */
int pixmap_alloc(pixmap *pm, int w, int h, int channels);
void pixmap_free(pixmap *pm); /* frees px and zeroes *pm; accepts NULL */

/* The upright view of pm under orientation `orient` (1..8; anything else is 1). */
pixmap_view pixmap_oriented(const pixmap *pm, int orient);

/* 1 when orientation o swaps width and height (5..8). */
int orient_transposes(int o);

#endif
