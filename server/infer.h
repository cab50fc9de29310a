/* infer.h - the inference routes: a request's body becomes one batch job, and the job's
 * logits become the JSON answer.
 *
 * POST /v1/models/{name}:predict (infer_v1) and POST /v2/models/{name}/infer (infer_v2) run
 * on the HTTP thread that received the body: parse it (server/api/) into encoded images (or
 * an FP32 tensor), allocate the job, queue it on the decode pool (decodepool.h) and suspend
 * the connection (http_suspend). The HTTP thread never decodes an image. A decode thread
 * decodes and preprocesses every image into 8-bit planes (image/), releases the encoded
 * bytes and submits the job to the model's batcher (server_submit); an FP32 tensor skips the
 * decode stage and is submitted by the HTTP thread. The images wait in the queue as bytes;
 * two callbacks run on the batcher's compute workers: infer_load_image normalises one image
 * into the batch being assembled, and infer_job_done, on the worker that finished the job's
 * last image (or the drain's thread when it cancels the job), wakes the request
 * (http_wake). A request whose decode stage fails (bad image, deadline, full queue) is woken
 * by the decode thread instead, with the error to answer. infer_finish then runs on an HTTP
 * thread: softmax, format, answer.
 *
 * Ownership: the state below lives in the request (http.h) and is freed with it by
 * infer_work_free, which also drops the request's reference to its model instance; the
 * decode pool borrows the request from decodepool_submit until its decode stage has
 * submitted or woken it, the batcher the job, its input and its output until done().
 */
#ifndef XBN_INFER_H
#define XBN_INFER_H

#include "server/api/v1.h"
#include "server/api/v2.h"
#include "server/batcher.h"
#include "server/decodepool.h"

typedef struct request request;     /* http.h */
typedef struct srv_model srv_model; /* server.h */

typedef struct {
    srv_model *m; /* the model instance, referenced from admission until infer_work_free */
    int is_v2;
    long top_k;   /* v1: classes per image to report */
    v1_form form; /* v1: the JSON form the answer follows (row for non-JSON bodies) */
    int nimg;     /* images in the job (also logged) */
    v2_infer v2;  /* V2: the parsed body */
    blob *enc;    /* the encoded images (nenc), possibly borrowing the body, until decoded */
    int nenc;
    float *in;          /* V2 FP32: the preprocessed tensor [nimg, in_elems], or NULL */
    unsigned char *px;  /* otherwise the decoded images, 8-bit planes [nimg, in_elems] */
    float *out;         /* logits [nimg, classes] */
    int code;           /* the decode stage failed: the HTTP status to answer (message in err) */
    decode_task decode; /* the request's place in the decode pool's queue */
    batch_job job;      /* job.max_batch is logged */
} infer_work;

/* Admission at the door, from the headers alone: 0, or 503 with *why when the model is
 * still loading or its queue is already full, and for v1 (whose body is always images) when
 * the decode queue is already full too (a 503 then costs microseconds, not a read and a
 * decode; the submissions still have the last word), or 404 when it was unloaded since its
 * route was matched. V2 requests are not held to the decode queue at the door: a V2 FP32
 * tensor is never decoded, and a body of BYTES images is refused when it is queued. */
int infer_admit_v1(request *r, const char **why);
int infer_admit_v2(request *r, const char **why);

/* The body is in: parse, queue the decode (or submit), suspend (or answer an error). */
int infer_v1(request *r);
int infer_v2(request *r);

/* The job is done: answer with the v1 or V2 response, or 503/504/500 for a failed job. */
int infer_finish(request *r);

void infer_work_free(infer_work *w); /* accepts a zeroed struct */

#endif
