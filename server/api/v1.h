/* v1.h - the TF-Serving-style predict API: the JSON request body and every v1 response.
 *
 * Request (POST /v1/models/{name}:predict, Content-Type application/json), in TF Serving's
 * row form or its columnar form:
 *   {"instances": [{"b64": "..."}, {"image": {"b64": "..."}}, ...], "top_k": 5}
 *   {"inputs": [{"b64": "..."}, ...]}, {"inputs": {"b64": "..."}} (one image),
 *   {"inputs": {"image": [{"b64": "..."}, ...]}} or {"inputs": {"image": {"b64": "..."}}}
 * Response: {"model": NAME, "untrained": BOOL, "predictions": [[{"index": I, "label": L,
 *   "score": P}, ...], ...]}: one list per image in request order, best score first. A
 *   columnar request is answered with "outputs" in place of "predictions", as TF Serving does.
 */
#ifndef XBN_V1_H
#define XBN_V1_H

#include <stddef.h>

#include "server/api/parse.h"
#include "server/sbuf.h"

/* Which of TF Serving's two forms a JSON body used; the answer follows it. */
typedef enum {
    V1_ROW = 0,  /* "instances", answered with "predictions" (and every non-JSON body) */
    V1_COLUMNAR, /* "inputs", answered with "outputs" */
} v1_form;

/* Parse a JSON predict body. On success *imgs is a malloc'd array of *n blobs holding the
 * decoded images (free with blobs_free), *top_k the JSON field or -1 if absent, and *form
 * the form used. A body with both "instances" and "inputs" is an error. A pure function
 * over (body, len). */
int v1_parse_json(const char *body, size_t len, int max_images, blob **imgs, int *n, long *top_k,
                  v1_form *form, char *err, size_t errlen);

/* Order the class indices of one probability row best first (ties: lower index first) and
 * return how many to report: top_k, or all when top_k is 0 or larger than classes.
 * idx must hold `classes` ints. */
int v1_top_k(const float *probs, int classes, long top_k, int *idx);

/* Append the v1 response for n rows of probabilities [n, classes], its key the one `form`
 * is answered with. labels may be NULL (the index is printed instead). Returns nonzero if
 * out of memory (b->err). */
int v1_format(sbuf *b, const char *model, int untrained, const char *const *labels, int classes,
              const float *probs, int n, long top_k, v1_form form);

#endif
