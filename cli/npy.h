/* npy.h - read and write NumPy .npy files holding little-endian float32 arrays.
 *
 * npy_read_f32 accepts format 1.0/2.0 headers with descr '<f4', fortran_order False and up to
 * NPY_MAX_DIMS dimensions, and refuses anything else with a message. The caller frees *data.
 */
#ifndef XBN_NPY_H
#define XBN_NPY_H

#include <stddef.h>

#define NPY_MAX_DIMS 8
#define NPY_MAX_BYTES (4ull << 30) /* refuse arrays over 4 GiB */

int npy_read_f32(const char *path, float **data, int *ndim, long shape[NPY_MAX_DIMS], char *err,
                 size_t errlen);
/* Parse an in-memory .npy (the fuzzable core of npy_read_f32). *data is a fresh copy. */
int npy_parse_f32(const unsigned char *buf, size_t len, float **data, int *ndim,
                  long shape[NPY_MAX_DIMS], char *err, size_t errlen);
/* Write `data` with the given shape as a version 1.0 '<f4' C-order .npy. */
int npy_write_f32(const char *path, const float *data, int ndim, const long *shape, char *err,
                  size_t errlen);

#endif
