/* pixmap.c - decoded image storage and EXIF-oriented views; see pixmap.h. */
#include "pixmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int pixmap_alloc(pixmap *pm, int w, int h, int channels)
{
    memset(pm, 0, sizeof *pm);
    if (w <= 0 || h <= 0 || channels <= 0) return -1;
    size_t stride = (size_t)w * (size_t)channels;
    if (stride / (size_t)channels != (size_t)w || (size_t)h > SIZE_MAX / stride) return -1;
    pm->px = malloc(stride * (size_t)h);
    if (!pm->px) return -1;
    pm->w = pm->full_w = w;
    pm->h = pm->full_h = h;
    pm->channels = channels;
    pm->stride = stride;
    pm->orient = 1;
    pm->denom = 1;
    return 0;
}

void pixmap_free(pixmap *pm)
{
    if (!pm) return;
    free(pm->px);
    memset(pm, 0, sizeof *pm);
}

int orient_transposes(int o)
{
    return o >= 5 && o <= 8;
}

pixmap_view pixmap_oriented(const pixmap *pm, int orient)
{
    ptrdiff_t c = pm->channels, r = (ptrdiff_t)pm->stride;
    ptrdiff_t right = (ptrdiff_t)(pm->w - 1) * c, bottom = (ptrdiff_t)(pm->h - 1) * r;
    pixmap_view v = {pm->px, c, r, pm->w, pm->h, pm->channels};
    /* upright (x, y) -> stored (sx_, sy_) per PIL's exif_transpose */
    switch (orient) {
    case 2: /* mirror: stored (w-1-x, y) */
        v.origin += right, v.sx = -c;
        break;
    case 3: /* rotate 180: stored (w-1-x, h-1-y) */
        v.origin += right + bottom, v.sx = -c, v.sy = -r;
        break;
    case 4: /* flip: stored (x, h-1-y) */
        v.origin += bottom, v.sy = -r;
        break;
    case 5: /* transpose: stored (y, x) */
        v.sx = r, v.sy = c;
        break;
    case 6: /* rotate 90 cw: stored (y, h-1-x) */
        v.origin += bottom, v.sx = -r, v.sy = c;
        break;
    case 7: /* transverse: stored (w-1-y, h-1-x) */
        v.origin += right + bottom, v.sx = -r, v.sy = -c;
        break;
    case 8: /* rotate 90 ccw: stored (w-1-y, x) */
        v.origin += right, v.sx = r, v.sy = -c;
        break;
    default:
        break;
    }
    if (orient_transposes(orient)) {
        v.w = pm->h;
        v.h = pm->w;
    }
    return v;
}
