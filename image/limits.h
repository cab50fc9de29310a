/* limits.h - every limit of the image layer, each named once with why it has its value.
 *
 * Decoding is bounded before any pixel exists: the encoded size and width * height come from
 * the caller (image_limits, image.h; the daemon passes max_body_bytes and max_image_pixels),
 * these are only the defaults for a 0 field. The rest bound what a small hostile file or an
 * odd preprocess spec could otherwise make a decoder or the resizer spend.
 */
#ifndef XBN_IMAGE_LIMITS_H
#define XBN_IMAGE_LIMITS_H

/* Encoded bytes of one image: far above a phone camera's JPEG, and the daemon's default
 * max_body_bytes. */
#define IMG_DEFAULT_MAX_BYTES (32u << 20)
/* width * height of one image, checked from the header: 50 MP covers 48 MP phone photos;
 * decoding one needs about 3 bytes per pixel (150 MB), progressive JPEGs as much (below). */
#define IMG_DEFAULT_MAX_PIXELS 50000000L
/* The DCT coefficients a multi-scan JPEG (progressive, or sequential with a scan per
 * component) keeps while its scans arrive, in bytes per pixel of the pixel limit: libjpeg
 * holds 2 bytes per sample of every component for the whole image, which is 3 bytes per
 * pixel at 4:2:0, so every 4:2:0 image the pixel limit allows still decodes, while 4:4:4
 * (6 bytes per pixel) is held to half the pixel limit and 4-component CMYK (8) to 3/8 of it:
 * the heaviest decode any JPEG costs is then that of a 4:2:0 one at the limit. */
#define JPEG_COEF_BYTES_PER_PIXEL 3

/* Scans of a progressive JPEG: each scan re-walks every coefficient, so a few kilobytes of
 * scans can cost minutes of CPU. 500 is the limit libjpeg-turbo's TurboJPEG API uses; real
 * encoders write about 10. */
#define JPEG_MAX_SCANS 500
/* The entropy-decoding work of a progressive JPEG, in blocks walked summed over its scans,
 * is held to this many times the blocks of the image (a baseline decode walks each once):
 * libjpeg's and mozjpeg's progressive scripts walk about 4 to 7 times (a component's blocks
 * in each of its scans), so real files are far below it, while a 500-scan file of a large
 * image is refused at its 13th full pass rather than after 30 s. Small images keep the
 * JPEG_MAX_SCANS allowance: below JPEG_SCAN_MIN_BLOCKS (2^20 blocks, about 0.1 s) the
 * work is not bounded by passes. */
#define JPEG_SCAN_PASSES 12
#define JPEG_SCAN_MIN_BLOCKS (1L << 20)
/* Bytes of an EXIF APP1 segment kept for the orientation tag: a JPEG marker's length field is
 * 16 bits, so no segment is longer; libjpeg keeps at most this much of it. */
#define EXIF_MAX_BYTES 0xffff
/* A PNG's side as libpng checks it: the format's own maximum (2^31 - 1). libpng's default of
 * 10^6 is lifted because max_pixels bounds the area before any row is inflated. */
#define PNG_MAX_SIDE 0x7fffffff

/* Ancillary PNG chunks: the pipeline reads only tRNS and eXIf; libpng is told to skip every
 * other one (text, iCCP, sPLT, unknown) unread, since it keeps an inflated zTXt/iTXt, up to
 * 8 MB each, until the decode ends. Whatever it still stores is held to this many chunks
 * and this many bytes each (an eXIf is at most a few tens of kilobytes). */
#define PNG_CHUNK_CACHE_MAX 64
#define PNG_CHUNK_MALLOC_MAX (1u << 20)

/* resize and crop in a preprocess spec (model file, config, CLI): 18x the usual 224, and the
 * input of a 4096 x 4096 model is already 200 MB of floats per image. */
#define PREPROCESS_MAX_SIDE 4096
/* The resizer's own bound on an output side, for any caller (every spec is within it): its
 * coefficient tables hold the filter taps of every output pixel along a side. */
#define RESIZE_MAX_SIDE 8192
/* Largest downscale factor per axis: filter taps grow with it (2 * factor + 1), so an absurd
 * aspect ratio (1 x 10^6 resized to 224 x 224) would cost memory and time. */
#define RESIZE_MAX_FACTOR 1024.0

#endif
