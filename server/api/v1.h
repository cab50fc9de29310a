/* v1.h - the TF-Serving-style predict API: the JSON request body and every v1 response.
 *
 * Request (POST /v1/models/{name}:predict, Content-Type application/json):
 *   {"instances": [{"b64": "..."}, {"image": {"b64": "..."}}, ...], "top_k": 5}
 * Response: {"model": NAME, "untrained": BOOL, "predictions": [[{"index": I, "label": L,
 *   "score": P}, ...], ...]}: one list per image in request order, best score first.
 */
#ifndef XBN_V1_H
#define XBN_V1_H

#include <stddef.h>

#include "server/api/parse.h"
#include "server/sbuf.h"

/* Parse a JSON predict body. On success *imgs is a malloc'd array of *n blobs holding the
 * decoded images (free with blobs_free) and *top_k the JSON field or -1 if absent.
 * A pure function over (body, len). */
int v1_parse_json(const char *body, size_t len, int max_images, blob **imgs, int *n, long *top_k,
                  char *err, size_t errlen);

/* Order the class indices of one probability row best first (ties: lower index first) and
 * return how many to report: top_k, or all when top_k is 0 or larger than classes.
 * idx must hold `classes` ints. */
int v1_top_k(const float *probs, int classes, long top_k, int *idx);

/* Append the v1 response for n rows of probabilities [n, classes]. labels may be NULL
 * (the index is printed instead). Returns nonzero if out of memory (b->err). */
int v1_format(sbuf *b, const char *model, int untrained, const char *const *labels, int classes,
              const float *probs, int n, long top_k);

#endif
