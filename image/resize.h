/* resize.h - PIL-exact antialiased bilinear resize and centre crop, in one pass from 8-bit
 * pixels to 8-bit planes.
 *
 * Geometry (resize_plan_make) follows torchvision 0.14 on PIL images: Resize(R) scales the
 * shorter side to R and the longer to int(R * long / short) (truncated); CenterCrop(S) takes
 * offsets round((n - S) / 2) with Python's round-half-to-even, and pads with zeros (pixel
 * value 0) on the sides where the image is smaller than S, (S - n) // 2 on the left/top.
 * RESIZE_DIRECT resizes straight to S x S.
 *
 * Resampling (resize_run) reproduces Pillow's Image.resize(BILINEAR) on 8-bit images bit for
 * bit: a separable triangle filter whose support is widened by the downscale factor,
 * coefficients normalised per output pixel then rounded to 22-bit fixed point, a horizontal
 * pass rounded to 8 bits, then a vertical pass. Only output pixels inside the crop are
 * computed, and the horizontal pass keeps only a ring of as many rows as the vertical filter
 * is tall, so memory is O(filter height x S), never a full-size copy. The result stays 8-bit
 * (what PIL hands to ToTensor); image_normalise (image.h) makes the float tensor.
 */
#ifndef XBN_RESIZE_H
#define XBN_RESIZE_H

#include <stdint.h>

#include "image/limits.h"
#include "image/pixmap.h"
#include "image/preprocess.h"

enum {
    RESIZE_OK = 0,
    RESIZE_EINVAL = -1,  /* bad spec: size <= 0 or above RESIZE_MAX_SIDE */
    RESIZE_ETOOBIG = -2, /* resized size overflows, or a side shrinks > RESIZE_MAX_FACTOR */
    RESIZE_ENOMEM = -3,
};

typedef struct {
    int out_w, out_h;   /* the resized image, before cropping */
    int crop;           /* S: the output is S x S */
    int crop_x, crop_y; /* top-left of the crop in the resized image; < 0 pads with zeros */
    int avx2; /* run the AVX2 passes (the CPU has AVX2); 0: the scalar loops, same bytes */
} resize_plan;

/* Plan the resize of an upright w x h image per `pre`. */
int resize_plan_make(const preprocess_spec *pre, int w, int h, resize_plan *p);

/* Channel order: output plane p reads source channel chan[p] (1 or 3 source channels). */
void resize_chan_map(const preprocess_spec *pre, int src_channels, int chan[3]);

/* The upright source pixels resize_run reads for a w x h image: [win[0], win[2]) x
 * [win[1], win[3]), so a decoder may produce only those. RESIZE_EINVAL for a plan or box
 * resize_run would refuse. */
int resize_window(int w, int h, const double box[4], const resize_plan *p, int win[4]);

/* Resample box = [x0, x1) x [y0, y1) of src (upright pixel units; the whole image is
 * {0, 0, w, h}) to p->out_w x p->out_h, crop, and write 8-bit planes [3][S][S] to out
 * (padding is 0). src's window must hold resize_window's pixels (else RESIZE_EINVAL). */
int resize_run(const pixmap_view *src, const double box[4], const resize_plan *p, const int chan[3],
               unsigned char *out);

/* Filter taps per output pixel for mapping [in0, in1) onto out_size pixels. */
int resize_ksize(double in0, double in1, int out_size);

/* Pillow's coefficients for output pixels first .. first+count-1 of an in_size -> out_size
 * resize of [in0, in1): bounds[2i] = first input pixel, bounds[2i+1] = taps used, and
 * k[i * ksize + t] = weight in 1/2^22 units. */
void resize_coeffs(int in_size, double in0, double in1, int out_size, int first, int count,
                   int ksize, int *bounds, int32_t *k);

#endif
