/* safetensors.c - see safetensors.h. Every check here exists because a model file is input
 * from outside: a lying header must fail at load with a message, never fault later. */
#include "engine/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"

static int fail_msg(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

static int cmp_by_offset(const void *a, const void *b)
{
    const st_tensor *x = a, *y = b;
    return x->data < y->data ? -1 : x->data > y->data;
}

/* Parse one header entry into *t. `data`/`data_size` are the data section. */
static int parse_entry(const cJSON *e, const unsigned char *data, size_t data_size, st_tensor *t,
                       char *err, size_t errlen)
{
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return fail_msg(err, errlen, XBN_EFORMAT, "tensor '%s': entry is not an object", name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dtype) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs))
        return fail_msg(err, errlen, XBN_EFORMAT,
                        "tensor '%s': needs string dtype, array shape and data_offsets", name);
    if (strcmp(dtype->valuestring, "F32"))
        return fail_msg(err, errlen, XBN_EFORMAT, "tensor '%s': dtype %s, only F32 is supported",
                        name, dtype->valuestring);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > ST_MAX_DIMS)
        return fail_msg(err, errlen, XBN_EFORMAT, "tensor '%s': %d dimensions", name, ndim);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        const cJSON *d = cJSON_GetArrayItem(shape, i);
        if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > (double)ST_MAX_DIM ||
            d->valuedouble != (double)(int64_t)d->valuedouble)
            return fail_msg(err, errlen, XBN_EFORMAT, "tensor '%s': bad shape dimension %d", name,
                            i);
        t->shape[i] = (int64_t)d->valuedouble;
        if (t->shape[i] && count > SIZE_MAX / 4 / (size_t)t->shape[i])
            return fail_msg(err, errlen, XBN_EFORMAT, "tensor '%s': shape overflows", name);
        count *= (size_t)t->shape[i];
    }
    if (cJSON_GetArraySize(offs) != 2)
        return fail_msg(err, errlen, XBN_EFORMAT, "tensor '%s': data_offsets needs 2 numbers",
                        name);
    double b = cJSON_GetArrayItem(offs, 0)->valuedouble;
    double e2 = cJSON_GetArrayItem(offs, 1)->valuedouble;
    if (!cJSON_IsNumber(cJSON_GetArrayItem(offs, 0)) ||
        !cJSON_IsNumber(cJSON_GetArrayItem(offs, 1)) || b < 0 || e2 < b || e2 > (double)data_size ||
        b != (double)(size_t)b || e2 != (double)(size_t)e2)
        return fail_msg(err, errlen, XBN_EFORMAT,
                        "tensor '%s': data_offsets [%.0f, %.0f] outside the %zu-byte data section",
                        name, b, e2, data_size);
    if ((size_t)e2 - (size_t)b != count * 4)
        return fail_msg(err, errlen, XBN_EFORMAT,
                        "tensor '%s': %zu bytes of data for a shape of %zu floats", name,
                        (size_t)e2 - (size_t)b, count);
    t->name = name;
    t->ndim = ndim;
    t->count = count;
    t->data = data + (size_t)b;
    t->used = 0;
    return 0;
}

/* Open `path` and map it whole, read-only. */
static int map_file(const char *path, st_file *f, char *err, size_t errlen)
{
    int rc = XBN_EFORMAT, fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0) {
        rc = fail_msg(err, errlen, XBN_EIO, "%s: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(sb.st_mode) || sb.st_size < 8) {
        rc = fail_msg(err, errlen, XBN_EFORMAT, "%s: not a safetensors file (%lld bytes)", path,
                      (long long)sb.st_size);
        goto done;
    }
    f->map_size = (size_t)sb.st_size;
    f->map = mmap(NULL, f->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        rc = fail_msg(err, errlen, XBN_EIO, "%s: mmap: %s", path, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (fd >= 0) close(fd);
    return rc;
}

/* The JSON header (after its 8-byte length) into f->header, f->meta and f->tensors; the data
 * section that follows it is [*data, *data + *data_size). */
static int parse_header(const char *path, st_file *f, const unsigned char **data, size_t *data_size,
                        char *err, size_t errlen)
{
    const unsigned char *p = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | p[i];
    if (hlen > ST_MAX_HEADER_BYTES || hlen > f->map_size - 8)
        return fail_msg(err, errlen, XBN_EFORMAT,
                        "%s: header length %llu is absurd or past the end of the %zu-byte file",
                        path, (unsigned long long)hlen, f->map_size);
    f->header = cJSON_ParseWithLength((const char *)p + 8, (size_t)hlen);
    if (!f->header || !cJSON_IsObject((cJSON *)f->header))
        return fail_msg(err, errlen, XBN_EFORMAT, "%s: header is not a JSON object", path);
    *data = p + 8 + hlen;
    *data_size = f->map_size - 8 - (size_t)hlen;
    int n = cJSON_GetArraySize(f->header);
    f->tensors = calloc((size_t)n + 1, sizeof *f->tensors);
    if (!f->tensors) return fail_msg(err, errlen, XBN_ENOMEM, "out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, (cJSON *)f->header)
    {
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e))
                return fail_msg(err, errlen, XBN_EFORMAT, "%s: __metadata__ is not an object",
                                path);
            f->meta = (void *)e;
            continue;
        }
        int rc = parse_entry(e, *data, *data_size, &f->tensors[f->n_tensors], err, errlen);
        if (rc) return rc;
        f->total_floats += f->tensors[f->n_tensors].count;
        f->n_tensors++;
    }
    return 0;
}

/* Sorted by offset, the tensors' ranges must tile the data section exactly: no overlap, no
 * hole, nothing after the last. */
static int check_tiling(const char *path, const st_file *f, const unsigned char *data,
                        size_t data_size, char *err, size_t errlen)
{
    int rc = 0;
    st_tensor *sorted = malloc((size_t)f->n_tensors * sizeof *sorted + 1);
    if (!sorted) return fail_msg(err, errlen, XBN_ENOMEM, "out of memory");
    memcpy(sorted, f->tensors, (size_t)f->n_tensors * sizeof *sorted);
    qsort(sorted, (size_t)f->n_tensors, sizeof *sorted, cmp_by_offset);
    const unsigned char *at = data;
    for (int i = 0; i < f->n_tensors && !rc; i++) {
        if (sorted[i].data != at)
            rc = fail_msg(err, errlen, XBN_EFORMAT, "%s: tensor '%s' %s the previous tensor", path,
                          sorted[i].name, sorted[i].data < at ? "overlaps" : "leaves a gap after");
        at += sorted[i].count * 4;
    }
    free(sorted);
    if (!rc && at != data + data_size)
        rc = fail_msg(err, errlen, XBN_EFORMAT, "%s: %zu bytes after the last tensor", path,
                      (size_t)(data + data_size - at));
    return rc;
}

/* NaN or Inf weights would load, warm up and answer NaN scores: refuse them here. */
static int check_finite(const char *path, const st_file *f, char *err, size_t errlen)
{
    for (int i = 0; i < f->n_tensors; i++) {
        const st_tensor *t = &f->tensors[i];
        for (size_t k = 0; k < t->count; k++) {
            uint32_t u;
            memcpy(&u, t->data + 4 * k, 4);
            if ((u & 0x7f800000u) == 0x7f800000u)
                return fail_msg(err, errlen, XBN_EFORMAT, "%s: tensor '%s' holds %s at element %zu",
                                path, t->name, u & 0x007fffffu ? "NaN" : "Inf", k);
        }
    }
    return 0;
}

int st_open(const char *path, st_file *f, char *err, size_t errlen)
{
    const unsigned char *data = NULL;
    size_t data_size = 0;
    int rc;
    memset(f, 0, sizeof *f);
    if ((rc = map_file(path, f, err, errlen)) ||
        (rc = parse_header(path, f, &data, &data_size, err, errlen)) ||
        (rc = check_tiling(path, f, data, data_size, err, errlen)) ||
        (rc = check_finite(path, f, err, errlen))) {
        st_close(f);
        return rc;
    }
    return 0;
}

void st_close(st_file *f)
{
    if (!f) return;
    if (f->map) munmap(f->map, f->map_size);
    cJSON_Delete(f->header);
    free(f->tensors);
    memset(f, 0, sizeof *f);
}

st_tensor *st_find(const st_file *f, const char *name)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

const char *st_meta(const st_file *f, const char *key)
{
    if (!f->meta) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive((const cJSON *)f->meta, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

void st_read_f32(const st_tensor *t, float *dst)
{
    memcpy(dst, t->data, t->count * 4); /* little-endian host: x86-64 and arm64 */
}

void st_release(const st_file *f)
{
    if (f->map) madvise(f->map, f->map_size, MADV_DONTNEED);
}
