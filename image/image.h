/* image.h - encoded image bytes (JPEG, PNG) to the model's input tensor.
 *
 * image_to_pixels decodes, orients, resizes and crops one image into a caller-owned 8-bit
 * buffer of 3*S*S (planes in the spec's channel order, S = spec->crop), in the same way as
 * PIL + torchvision (docs/images.md); image_normalise turns those bytes into the model's
 * float input, (v/255 - mean)/std. The server queues images as bytes (a quarter of the
 * memory) and normalises when it assembles a batch; image_to_tensor does both at once. It
 * checks limits from the header before any pixel is decoded, and never allocates more than
 * the limits allow.
 *
 * The pipeline, one module each: format sniffing (here), jpeg_decode.h / png_decode.h
 * (decode to 8-bit gray or RGB, EXIF orientation recorded, alpha composited on white),
 * pixmap.h (orientation applied as a strided view, no copy), resize.h (Pillow-exact
 * bilinear resize + centre crop, written straight into `px`).
 *
 * Big JPEGs are decoded with libjpeg-turbo's DCT scaling at 1/2, 1/4 or 1/8: the largest
 * reduction that leaves at least `dct_margin` (default IMG_DCT_MARGIN) source pixels per
 * resized pixel on both axes, so the resize still averages over >= that many pixels. The
 * result then differs slightly from a full decode (docs/images.md has the measurements).
 * A NULL `lim`, or a 0 field in it, means the IMG_DEFAULT_* value.
 */
#ifndef XBN_IMAGE_H
#define XBN_IMAGE_H

#include <stdatomic.h>
#include <stddef.h>

#include "image/limits.h"
#include "image/preprocess.h"

enum {
    IMG_OK = 0,
    IMG_EUNSUPPORTED = -1, /* not a JPEG or PNG (maps to HTTP 415) */
    IMG_ECORRUPT = -2,     /* truncated or invalid data (HTTP 400) */
    IMG_ETOOBIG = -3,      /* over max_bytes or max_pixels (HTTP 413) */
    IMG_ENOMEM = -4,       /* allocation failed (HTTP 500) */
    IMG_ETIMEOUT = -5,     /* the deadline passed mid-decode (HTTP 504) */
};

/* Minimum source pixels per resized pixel kept by DCT scaling; see docs/images.md. */
#define IMG_DCT_MARGIN 4.0

typedef struct {
    size_t max_bytes;         /* encoded size limit; 0 = IMG_DEFAULT_MAX_BYTES */
    long max_pixels;          /* width * height limit, checked from the header; 0 = default */
    long long deadline_ns;    /* CLOCK_MONOTONIC ns (image_now_ns) at which a decode in progress
                               * stops with IMG_ETIMEOUT; 0 = none */
    const atomic_int *cancel; /* a decode stops (IMG_ETIMEOUT) once this is non-zero; NULL =
                               * never (the daemon's drain sets it at drain_timeout_ms) */
} image_limits;

/* CLOCK_MONOTONIC in nanoseconds, the clock of image_limits.deadline_ns. */
long long image_now_ns(void);

/* Decode data[0..len) per `pre` into px[3 * pre->crop * pre->crop]. dct_margin: 0 =
 * IMG_DCT_MARGIN, < 0 = always decode JPEGs at full size (tests and benchmarks compare
 * both). Returns IMG_OK, or an IMG_E* status with a one-line message in err (errlen bytes,
 * NUL-terminated) naming what was wrong (format received, size against the limit, decoder
 * message). `px` is unspecified on failure. Thread-safe; allocations are freed before
 * returning. */
int image_to_pixels(const unsigned char *data, size_t len, const preprocess_spec *pre,
                    const image_limits *lim, double dct_margin, unsigned char *px, char *err,
                    size_t errlen);

/* px[3 * S * S] -> out[3 * S * S]: plane p's byte v becomes (v / 255 - mean[p]) / std[p],
 * the same float32 operations as torchvision's ToTensor + Normalize. */
void image_normalise(const preprocess_spec *pre, const unsigned char *px, float *out);

/* image_to_pixels then image_normalise, into out[3 * S * S]. */
int image_to_tensor(const unsigned char *data, size_t len, const preprocess_spec *pre,
                    const image_limits *lim, float *out, char *err, size_t errlen);
int image_to_tensor_ex(const unsigned char *data, size_t len, const preprocess_spec *pre,
                       const image_limits *lim, double dct_margin, float *out, char *err,
                       size_t errlen);

/* A short name for the format of data[0..len) ("JPEG", "PNG", "GIF", "WebP", ...), or NULL
 * when unrecognised. */
const char *image_format_name(const unsigned char *data, size_t len);

#endif
