/* safetensors.h - read-only, validating reader for safetensors files.
 *
 * st_open maps the file, parses the JSON header with cJSON and checks every tensor entry:
 * dtype F32, a sane shape, data_offsets inside the data section that match the shape,
 * no overlaps and no holes. After a successful open every tensor's bytes are known to be in
 * the mapping; st_close unmaps and frees everything. Tensor data may be unaligned: read it
 * with memcpy (st_read_f32).
 */
#ifndef XBN_SAFETENSORS_H
#define XBN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/limits.h" /* ST_MAX_HEADER_BYTES, ST_MAX_DIMS, ST_MAX_DIM */

typedef struct {
    const char *name; /* points into the parsed header */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t count;              /* number of floats */
    const unsigned char *data; /* count * 4 bytes, little-endian, maybe unaligned */
    int used;                  /* set by the consumer: lets it report unexpected tensors */
} st_tensor;

typedef struct {
    void *map;
    size_t map_size;
    void *header; /* cJSON root */
    void *meta;   /* cJSON __metadata__ object or NULL */
    st_tensor *tensors;
    int n_tensors;
    size_t total_floats;
} st_file;

/* Open and validate `path`. On failure writes a message naming the problem and leaves *f
 * closed (st_close is still safe). */
int st_open(const char *path, st_file *f, char *err, size_t errlen);
void st_close(st_file *f);

/* Tensor by name, or NULL. */
st_tensor *st_find(const st_file *f, const char *name);
/* Metadata string value, or NULL if absent or not a string. */
const char *st_meta(const st_file *f, const char *key);
/* Copy a tensor's floats into dst (count floats). */
void st_read_f32(const st_tensor *t, float *dst);
/* Drop the mapped pages read so far from the process's memory (the file stays in the page
 * cache; pages read again fault back in). A loader that copies the weights calls it as it
 * goes, so the model is resident once, not twice, even at the peak of loading. */
void st_release(const st_file *f);

#endif
