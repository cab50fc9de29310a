/* v2.h - the KServe V2 / Open Inference Protocol JSON bodies (REST, no binary extension).
 *
 * Infer request (POST /v2/models/{name}/infer), exactly one input:
 *   FP32:  {"inputs":[{"name":"input","datatype":"FP32","shape":[N,3,S,S],"data":[...]}]}
 *          data flattened row-major or nested; already preprocessed (planes in the model's
 *          channel order, normalised).
 *   BYTES: {"inputs":[{"name":"image","datatype":"BYTES","shape":[N],"data":["<b64>",..]}]}
 *          each element an encoded JPEG/PNG in base64 (a string, or {"b64": "..."}).
 *   Optional "id" (echoed) and "outputs":[{"name":"probabilities"}|{"name":"logits"}].
 * Infer response: {"model_name","model_version":"1","id","outputs":[{"name","datatype":
 *   "FP32","shape":[N,classes],"data":[...]}]} with probabilities (default) and/or logits.
 */
#ifndef XBN_V2_H
#define XBN_V2_H

#include <stddef.h>

#include "server/api/parse.h"
#include "server/sbuf.h"

typedef enum { V2_FP32, V2_BYTES } v2_kind;

typedef struct {
    v2_kind kind;
    int n;          /* images in the batch */
    float *fp32;    /* FP32: n*3*S*S floats, malloc'd */
    blob *imgs;     /* BYTES: n decoded images */
    char id[128];   /* request "id", "" if none */
    int want_probs; /* outputs to return */
    int want_logits;
} v2_infer;

/* Parse an infer body for a model with input side S. On success *out owns its buffers
 * (release with v2_infer_free). A pure function over (body, len). */
int v2_parse_infer(const char *body, size_t len, int S, int max_images, v2_infer *out, char *err,
                   size_t errlen);
void v2_infer_free(v2_infer *r); /* accepts NULL and a zeroed struct */

/* Append the infer response; logits and probs are [n, classes]. */
int v2_format_infer(sbuf *b, const char *model, const v2_infer *r, const float *logits,
                    const float *probs, int classes);

/* Append the model metadata response (GET /v2/models/{name}). */
int v2_format_model(sbuf *b, const char *model, int S, int classes, const char *arch,
                    const char *flavour, int untrained);

#endif
