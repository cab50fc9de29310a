/* exif.h - the one EXIF field xbnserve uses: the IFD0 Orientation tag (0x0112).
 *
 * Phones store photos as the sensor saw them and record in EXIF how to turn them upright.
 * exif_orientation reads that tag from an EXIF blob (a TIFF structure, optionally preceded
 * by the "Exif\0\0" prefix of a JPEG APP1 segment or of some PNG eXIf chunks). It only
 * reads inside [p, p+n): every offset is bounds-checked, any malformed structure (bad byte
 * order mark, IFD outside the blob, truncated entry, wrong type or count, value outside
 * 1..8) means "no orientation" and yields 1. It never allocates and cannot fail.
 *
 * Values follow the EXIF/TIFF spec; the transform each needs (what PIL's
 * ImageOps.exif_transpose does): 1 none, 2 mirror left-right, 3 rotate 180, 4 mirror
 * top-bottom, 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 counter-clockwise.
 */
#ifndef XBN_EXIF_H
#define XBN_EXIF_H

#include <stddef.h>

/* Orientation 1..8 from the EXIF blob p[0..n); 1 when absent or invalid. p may be NULL if n
 * is 0. */
int exif_orientation(const unsigned char *p, size_t n);

#endif
