/* v2.h - the KServe V2 / Open Inference Protocol bodies (REST), with the binary tensor data
 * and classification extensions.
 *
 * Infer request (POST /v2/models/{name}[/versions/{v}]/infer), exactly one input:
 *   FP32:  {"inputs":[{"name":"input","datatype":"FP32","shape":[N,3,S,S],"data":[...]}]}
 *          data flattened row-major or nested; already preprocessed (planes in the model's
 *          channel order, normalised).
 *   BYTES: {"inputs":[{"name":"image","datatype":"BYTES","shape":[N],"data":["<b64>",..]}]}
 *          each element an encoded JPEG/PNG in base64 (a string, or {"b64": "..."}).
 *   Optional "id" (echoed) and "outputs":[{"name":"probabilities"}|{"name":"logits"}].
 * Binary form: the body is json_len bytes of JSON followed by a binary part (the request's
 * Inference-Header-Content-Length header gives json_len). An input with
 * "parameters":{"binary_data_size":B} has no "data": its B bytes are the binary part, FP32
 * little-endian row-major, BYTES as N elements of a 4-byte little-endian length + bytes.
 * Parameters understood: request "binary_data_output" (bool: outputs default to binary),
 * input "binary_data_size", output "binary_data" (bool) and "classification" (K: the top K
 * classes per image as BYTES "value:index[:label]"). Any other parameter is refused.
 * Infer response: {"model_name","model_version","id","outputs":[...]} with the outputs
 * asked for (probabilities by default); a binary output has "parameters":
 * {"binary_data_size":B} and no "data", its bytes follow the JSON in output order.
 */
#ifndef XBN_V2_H
#define XBN_V2_H

#include <stddef.h>

#include "server/api/parse.h"
#include "server/sbuf.h"

typedef enum { V2_FP32, V2_BYTES } v2_kind;
typedef enum { V2_PROBS, V2_LOGITS } v2_tensor;

#define V2_MAX_OUTPUTS 2

typedef struct {
    v2_tensor which;
    int binary;         /* bytes in the response's binary part rather than JSON "data" */
    int classification; /* K > 0: [N,K] BYTES "value:index[:label]" instead of the tensor */
} v2_output;

typedef struct {
    v2_kind kind;
    int n;        /* images in the batch */
    float *fp32;  /* FP32: n*3*S*S floats, malloc'd */
    blob *imgs;   /* BYTES: n encoded images (base64-decoded, or borrowed from the body) */
    char id[128]; /* request "id", "" if none */
    v2_output outs[V2_MAX_OUTPUTS]; /* outputs to return, in the request's order */
    int nouts;
} v2_infer;

/* Parse an infer body of len bytes whose first json_len bytes are JSON (json_len == len:
 * no binary part), for a model with input side S and `classes` outputs. On success *out
 * owns its buffers (release with v2_infer_free); BYTES images from the binary part borrow
 * body. A pure function over (body, len). */
int v2_parse_infer(const char *body, size_t len, size_t json_len, int S, int classes,
                   int max_images, v2_infer *out, char *err, size_t errlen);
void v2_infer_free(v2_infer *r); /* accepts NULL and a zeroed struct */

/* Does the response have a binary part? */
int v2_has_binary(const v2_infer *r);

/* Append the infer response: its JSON to json, the binary outputs' bytes to bin (nothing
 * when v2_has_binary is 0). logits and probs are [n, classes]; labels may be NULL. */
int v2_format_infer(sbuf *json, sbuf *bin, const char *model, const char *version,
                    const v2_infer *r, const float *logits, const float *probs, int classes,
                    const char *const *labels);

/* Append the model metadata response (GET /v2/models/{name}); versions: the served ones, a
 * JSON array of strings. */
int v2_format_model(sbuf *b, const char *model, const char *versions, int S, int classes,
                    const char *arch, const char *flavour, int untrained);

#endif
