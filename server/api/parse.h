/* parse.h - what the request-body parsers (multipart.c, v1.c, v2.c, b64.c) share.
 *
 * Every parser is a pure function over (bytes, len): no I/O, no globals, bounded
 * allocation, so a libFuzzer driver can call it directly. They return PARSE_OK (0) or a
 * negative status and write a one-line reason into `err`. server/infer.c maps the status:
 * PARSE_EINVAL -> 400, PARSE_ETOOMANY -> 413, PARSE_ENOMEM -> 500.
 *
 * A `blob` is one encoded image found in a body. `data` points either into the request
 * body (borrowed: multipart parts) or into `own` (decoded base64, owned by the blob and
 * released by blobs_free).
 */
#ifndef XBN_PARSE_H
#define XBN_PARSE_H

#include <stddef.h>
#include <stdlib.h>

enum {
    PARSE_OK = 0,
    PARSE_EINVAL = -1,   /* malformed body (HTTP 400) */
    PARSE_ETOOMANY = -2, /* more images than max_images_per_request (HTTP 413) */
    PARSE_ENOMEM = -3,   /* allocation failed (HTTP 500) */
};

/* The most JSON values (json_scan.h) a body may hold for cJSON to parse: the structure around
 * up to max_images images. cJSON spends ~80 bytes per value, so this bounds its memory. */
#define PARSE_MAX_JSON_VALUES(max_images) (1024 + 4 * (size_t)(max_images))

typedef struct {
    const unsigned char *data;
    size_t len;
    unsigned char *own; /* NULL when `data` is borrowed */
    /* multipart: the part's form name (borrowed, not terminated; 0 bytes: none), so an
     * error can say which part it is about */
    const char *name;
    size_t name_len;
} blob;

/* Free the owned bytes of n blobs and the array itself; accepts NULL. */
static inline void blobs_free(blob *b, int n)
{
    if (!b) return;
    for (int i = 0; i < n; i++) free(b[i].own);
    free(b);
}

#endif
