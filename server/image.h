/* image.h - encoded image bytes (JPEG, PNG) to the model's input tensor.
 *
 * image_to_tensor decodes, orients, resizes and normalises one image into a caller-owned
 * float buffer of 3*S*S (planes in the spec's channel order, S = spec->crop), in the same
 * way as PIL + torchvision (docs/images.md). It checks limits from the header before any
 * pixel is decoded, and never allocates more than the limits allow.
 */
#ifndef XBN_IMAGE_H
#define XBN_IMAGE_H

#include <stddef.h>

#include "engine.h"

enum {
    IMG_OK = 0,
    IMG_EUNSUPPORTED = -1, /* not a JPEG or PNG (maps to HTTP 415) */
    IMG_ECORRUPT = -2,     /* truncated or invalid data (HTTP 400) */
    IMG_ETOOBIG = -3,      /* over max_bytes or max_pixels (HTTP 413) */
    IMG_ENOMEM = -4,       /* allocation failed (HTTP 500) */
};

typedef struct {
    size_t max_bytes;  /* encoded size limit */
    long max_pixels;   /* width * height limit, checked from the header */
} image_limits;

int image_to_tensor(const unsigned char *data, size_t len, const preprocess_spec *pre,
                    const image_limits *lim, float *out, char *err, size_t errlen);

#endif
