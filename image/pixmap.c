/* pixmap.c - decoded image storage and EXIF-oriented views; see pixmap.h. */
#include "image/pixmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int pixmap_alloc(pixmap *pm, int w, int h, int channels)
{
    memset(pm, 0, sizeof *pm);
    if (w <= 0 || h <= 0 || channels <= 0) return -1;
    size_t stride = (size_t)w * (size_t)channels;
    if (stride / (size_t)channels != (size_t)w || (size_t)h > SIZE_MAX / stride) return -1;
    pm->px = pm->mem = malloc(stride * (size_t)h);
    if (!pm->mem) return -1;
    pm->w = pm->full_w = pm->dec_w = w;
    pm->h = pm->full_h = pm->dec_h = h;
    pm->channels = channels;
    pm->stride = stride;
    pm->orient = 1;
    pm->denom = 1;
    return 0;
}

void pixmap_free(pixmap *pm)
{
    if (!pm) return;
    free(pm->mem);
    memset(pm, 0, sizeof *pm);
}

int orient_transposes(int o)
{
    return o >= 5 && o <= 8;
}

/* Whether orientation o reads the stored x (or y) axis backwards (PIL's exif_transpose). */
static int mirrors_x(int o)
{
    return o == 2 || o == 3 || o == 7 || o == 8;
}

static int mirrors_y(int o)
{
    return o == 3 || o == 4 || o == 6 || o == 7;
}

int orient_reverses_x(int o)
{
    return orient_transposes(o) ? mirrors_y(o) : mirrors_x(o);
}

int orient_reverses_y(int o)
{
    return orient_transposes(o) ? mirrors_x(o) : mirrors_y(o);
}

void orient_window_stored(int o, int dec_w, int dec_h, const int uwin[4], int win[4])
{
    int t = orient_transposes(o);
    int ax0 = t ? uwin[1] : uwin[0], ax1 = t ? uwin[3] : uwin[2]; /* along stored x */
    int ay0 = t ? uwin[0] : uwin[1], ay1 = t ? uwin[2] : uwin[3];
    win[0] = mirrors_x(o) ? dec_w - ax1 : ax0;
    win[2] = mirrors_x(o) ? dec_w - ax0 : ax1;
    win[1] = mirrors_y(o) ? dec_h - ay1 : ay0;
    win[3] = mirrors_y(o) ? dec_h - ay0 : ay1;
}

pixmap_view pixmap_oriented(const pixmap *pm, int orient)
{
    if (orient < 1 || orient > 8) orient = 1;
    ptrdiff_t c = pm->channels, r = (ptrdiff_t)pm->stride;
    int t = orient_transposes(orient);
    pixmap_view v = {pm->px, c, r, pm->dec_w, pm->dec_h, pm->channels, 0, 0, 0, 0};
    /* upright (x, y) -> stored (x_, y_); the origin is the window's upright top-left */
    switch (orient) {
    case 2: /* mirror: stored (w-1-x, y) */
        v.sx = -c;
        break;
    case 3: /* rotate 180: stored (w-1-x, h-1-y) */
        v.sx = -c, v.sy = -r;
        break;
    case 4: /* flip: stored (x, h-1-y) */
        v.sy = -r;
        break;
    case 5: /* transpose: stored (y, x) */
        v.sx = r, v.sy = c;
        break;
    case 6: /* rotate 90 cw: stored (y, h-1-x) */
        v.sx = -r, v.sy = c;
        break;
    case 7: /* transverse: stored (w-1-y, h-1-x) */
        v.sx = -r, v.sy = -c;
        break;
    case 8: /* rotate 90 ccw: stored (w-1-y, x) */
        v.sx = r, v.sy = -c;
        break;
    default:
        break;
    }
    if (mirrors_x(orient)) v.origin += (ptrdiff_t)(pm->w - 1) * c;
    if (mirrors_y(orient)) v.origin += (ptrdiff_t)(pm->h - 1) * r;
    int ax0 = mirrors_x(orient) ? pm->dec_w - pm->win_x - pm->w : pm->win_x;
    int ay0 = mirrors_y(orient) ? pm->dec_h - pm->win_y - pm->h : pm->win_y;
    v.x0 = t ? ay0 : ax0;
    v.y0 = t ? ax0 : ay0;
    v.x1 = v.x0 + (t ? pm->h : pm->w);
    v.y1 = v.y0 + (t ? pm->w : pm->h);
    if (t) {
        v.w = pm->dec_h;
        v.h = pm->dec_w;
    }
    return v;
}
