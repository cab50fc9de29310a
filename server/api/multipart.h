/* multipart.h - multipart/form-data (RFC 7578) bodies split into their parts, zero-copy.
 *
 * multipart_parse reads the boundary from the Content-Type value, then finds every part
 * of `body`. Parts borrow the body: each blob's `data` points into it (own = NULL), so the
 * body must outlive them. Parts whose Content-Disposition name is "top_k" and that carry
 * no Content-Type are form fields, returned in *top_k (-1 when absent) instead of as images.
 * A pure function over (content_type, body, len): fuzz it directly.
 */
#ifndef XBN_MULTIPART_H
#define XBN_MULTIPART_H

#include <stddef.h>

#include "server/api/parse.h"

#define MULTIPART_MAX_BOUNDARY 70 /* RFC 2046 */

/* Copy the boundary parameter of a multipart Content-Type into out (>= 71 bytes).
 * Returns PARSE_OK or PARSE_EINVAL. */
int multipart_boundary(const char *content_type, char *out, size_t outlen);

/* Split body into at most max_parts image parts. On success *parts is a malloc'd array of
 * *nparts blobs (free with blobs_free) and *top_k holds the form field or -1. More image
 * parts than max_parts is PARSE_ETOOMANY; zero image parts is PARSE_EINVAL. */
int multipart_parse(const char *content_type, const unsigned char *body, size_t len, int max_parts,
                    blob **parts, int *nparts, long *top_k, char *err, size_t errlen);

#endif
