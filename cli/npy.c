/* npy.c - see npy.h. The header is a Python dict literal; we parse just the three keys NumPy
 * writes, strictly, because the file comes from outside. */
#include "cli/npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/num.h"

static int bad(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "npy: %s", msg);
    return -1;
}

/* Find `'key':` in the header dict and return the text after the colon and spaces. */
static const char *dict_value(const char *h, const char *key)
{
    const char *p = strstr(h, key);
    if (!p) return NULL;
    p += strlen(key);
    while (*p == ' ') p++;
    if (*p++ != ':') return NULL;
    while (*p == ' ') p++;
    return p;
}

int npy_parse_f32(const unsigned char *buf, size_t len, float **data, int *ndim,
                  long shape[NPY_MAX_DIMS], char *err, size_t errlen)
{
    *data = NULL;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6)) return bad(err, errlen, "not a .npy file");
    size_t hl, off;
    if (buf[6] == 1) {
        hl = buf[8] | (size_t)buf[9] << 8, off = 10;
    } else if (buf[6] == 2 || buf[6] == 3) {
        if (len < 12) return bad(err, errlen, "truncated header");
        hl = buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        off = 12;
    } else
        return bad(err, errlen, "unknown format version");
    if (hl > 65536 || off + hl > len) return bad(err, errlen, "header length past the end");
    char h[65537];
    memcpy(h, buf + off, hl);
    h[hl] = 0;
    const char *d = dict_value(h, "'descr'"), *fo = dict_value(h, "'fortran_order'"),
               *sh = dict_value(h, "'shape'");
    if (!d || !fo || !sh) return bad(err, errlen, "header lacks descr, fortran_order or shape");
    if (strncmp(d, "'<f4'", 5)) return bad(err, errlen, "dtype is not little-endian float32 '<f4'");
    if (strncmp(fo, "False", 5)) return bad(err, errlen, "fortran_order arrays are not supported");
    if (*sh++ != '(') return bad(err, errlen, "bad shape");
    size_t count = 1;
    *ndim = 0;
    for (;;) {
        while (*sh == ' ') sh++;
        if (*sh == ')') break;
        if (*ndim == NPY_MAX_DIMS) return bad(err, errlen, "too many dimensions");
        size_t digits = strspn(sh, "0123456789");
        long long v;
        if (num_parse_ll_n(sh, digits, 0, 1LL << 40, &v)) return bad(err, errlen, "bad shape");
        shape[(*ndim)++] = (long)v;
        if (v && count > NPY_MAX_BYTES / 4 / (size_t)v) return bad(err, errlen, "array too large");
        count *= (size_t)v;
        sh += digits;
        while (*sh == ' ') sh++;
        if (*sh == ',')
            sh++;
        else if (*sh != ')')
            return bad(err, errlen, "bad shape");
    }
    if (len - off - hl != count * 4) return bad(err, errlen, "data size does not match the shape");
    if (!(*data = malloc(count * 4 + 1))) return bad(err, errlen, "out of memory");
    memcpy(*data, buf + off + hl, count * 4);
    return 0;
}

int npy_read_f32(const char *path, float **data, int *ndim, long shape[NPY_MAX_DIMS], char *err,
                 size_t errlen)
{
    int rc = -1;
    unsigned char *buf = NULL;
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) || ftell(f) < 0) {
        snprintf(err, errlen, "%s: cannot size the file", path);
        goto done;
    }
    size_t len = (size_t)ftell(f);
    rewind(f);
    if (len > NPY_MAX_BYTES + 65536) {
        snprintf(err, errlen, "%s: file too large", path);
        goto done;
    }
    if (!(buf = malloc(len + 1)) || fread(buf, 1, len, f) != len) {
        snprintf(err, errlen, "%s: read failed", path);
        goto done;
    }
    rc = npy_parse_f32(buf, len, data, ndim, shape, err, errlen);
done:
    free(buf);
    fclose(f);
    return rc;
}

int npy_write_f32(const char *path, const float *data, int ndim, const long *shape, char *err,
                  size_t errlen)
{
    char h[256], dims[160] = "";
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        snprintf(dims + strlen(dims), sizeof dims - strlen(dims), "%ld,%s", shape[i],
                 i + 1 < ndim ? " " : "");
        count *= (size_t)shape[i];
    }
    if (ndim > 1) dims[strlen(dims) - 1] = 0; /* (a, b) but (a,) for one dimension */
    int n =
        snprintf(h, sizeof h, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", dims);
    int total = (10 + n + 1 + 63) / 64 * 64; /* header padded with spaces to 64, ends in \n */
    while (10 + n < total - 1) h[n++] = ' ';
    h[n++] = '\n';
    unsigned char pre[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(n & 0xff), (unsigned char)(n >> 8)};
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(pre, 1, 10, f) != 10 || fwrite(h, 1, (size_t)n, f) != (size_t)n ||
        fwrite(data, 4, count, f) != count) {
        snprintf(err, errlen, "%s: write failed: %s", path, strerror(errno));
        if (f) fclose(f);
        return -1;
    }
    if (fclose(f)) {
        snprintf(err, errlen, "%s: write failed: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}
