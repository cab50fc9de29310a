/* fuzz_npy.c - libFuzzer driver: the .npy reader (npy_parse_f32; npy_read_f32 adds only the
 * file read). Checks: on success the shape's product matches the data that follows the
 * header and every float can be read; on failure no buffer and a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    float *x = NULL;
    int ndim = -1;
    long shape[NPY_MAX_DIMS];
    char err[256];
    err[0] = 0;
    if (npy_parse_f32(data, size, &x, &ndim, shape, err, sizeof err) == 0) {
        if (!x || ndim < 0 || ndim > NPY_MAX_DIMS) abort();
        size_t count = 1;
        for (int i = 0; i < ndim; i++) {
            if (shape[i] < 0) abort();
            count *= (size_t)shape[i];
        }
        if (count * 4 > size) abort();
        volatile float sum = 0;
        for (size_t i = 0; i < count; i++) sum += x[i];
        (void)sum;
        free(x);
    } else if (x || !err[0]) {
        abort();
    }
    return 0;
}
