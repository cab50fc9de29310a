/* fuzz_image.c - libFuzzer driver: encoded bytes -> image_to_tensor (sniff, JPEG/PNG decode,
 * EXIF, orientation, DCT scaling, resize, crop, normalise).
 *
 * Input: one selector byte, then the image. The selector picks the preprocess spec (the
 * three model defaults and a tiny odd-sized one), EXIF on/off and DCT scaling on/off, so
 * every path is reachable from one corpus. Checks: the status is one of IMG_*, the message
 * is set on failure, and a success writes only finite numbers.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"

#define FUZZ_MAX_PIXELS 4000000L /* keeps one decode far below libFuzzer's RSS limit */

static const preprocess_spec specs[4] = {
    /* torch: shorter side 256, centre crop 224, RGB, torchvision mean/std */
    {RESIZE_SHORTER_CROP, 256, 224, 0, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}, 1},
    /* keras ResNet50: direct 224, BGR, caffe */
    {RESIZE_DIRECT, 224, 224, 1, {0.4076f, 0.4580f, 0.4850f}, {1 / 255.f, 1 / 255.f, 1 / 255.f}, 1},
    /* keras MobileNetV2: direct 224, tf scaling */
    {RESIZE_DIRECT, 224, 224, 0, {0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}, 1},
    /* small and odd: crop larger than the resize (zero padding) */
    {RESIZE_SHORTER_CROP, 7, 9, 0, {0.5f, 0.5f, 0.5f}, {0.25f, 0.5f, 1.0f}, 1},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static float out[3 * 224 * 224];
    if (size < 1) return 0;
    unsigned sel = data[0];
    preprocess_spec pre = specs[sel & 3];
    pre.exif_orient = (sel >> 2) & 1;
    double margin = (sel >> 3) & 1 ? -1.0 : 0.0; /* full decode, or DCT scaling */
    image_limits lim = {.max_pixels = FUZZ_MAX_PIXELS};
    char err[256];
    err[0] = 0;
    int rc = image_to_tensor_ex(data + 1, size - 1, &pre, &lim, margin, out, err, sizeof err);
    if (rc != IMG_OK && rc != IMG_EUNSUPPORTED && rc != IMG_ECORRUPT && rc != IMG_ETOOBIG &&
        rc != IMG_ENOMEM && rc != IMG_ETIMEOUT)
        abort();
    if (rc != IMG_OK && (!err[0] || !memchr(err, 0, sizeof err))) abort();
    if (rc == IMG_OK) {
        size_t n = 3 * (size_t)pre.crop * (size_t)pre.crop;
        for (size_t i = 0; i < n; i++)
            if (!isfinite(out[i])) abort();
    }
    return 0;
}
