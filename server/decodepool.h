/* decodepool.h - the decode pool: a few threads that run the costly middle of an inference
 * request (decoding, orienting, resizing its images) so that no HTTP thread ever does.
 *
 * An HTTP thread that has parsed a request's body into encoded images queues one
 * `decode_task` and suspends the connection; a pool thread takes the oldest task and calls
 * its `run`, which decodes and hands the images on to the model's batcher (infer.c). The
 * queue is bounded: decodepool_submit refuses a task at once when max_queue tasks already
 * wait (DECODE_EFULL -> HTTP 503), and never blocks.
 *
 * Each submitted task's `run` is called exactly once: on a pool thread with cancelled 0, or
 * with cancelled 1 on the thread calling decodepool_stop when the pool stops before a thread
 * took it. After `run` returns the pool never touches the task again; until then the caller
 * keeps it alive.
 *
 * Threads meet only at the queue: one mutex, one condition variable. A pool never allocates
 * after decodepool_new: the queue is a list threaded through the tasks themselves.
 */
#ifndef XBN_DECODEPOOL_H
#define XBN_DECODEPOOL_H

enum {
    DECODE_OK = 0,
    DECODE_EFULL = -1,    /* max_queue tasks already wait (503) */
    DECODE_ESTOPPED = -2, /* the pool is stopping (503) */
    DECODE_ENOMEM = -3,   /* decodepool_new: out of memory */
    DECODE_ETHREAD = -4,  /* decodepool_new: a thread could not be started */
    DECODE_EINVAL = -5,   /* decodepool_new: threads or max_queue < 1 */
};

typedef struct decode_task decode_task;
struct decode_task {
    /* Set by the caller before decodepool_submit. */
    void (*run)(decode_task *t, int cancelled);
    void *user;
    /* Private. */
    decode_task *next;
};

typedef struct decodepool decodepool;

/* Start `threads` threads (>= 1) over a queue of at most max_queue (>= 1) waiting tasks.
 * DECODE_OK with *out, or DECODE_EINVAL / DECODE_ENOMEM / DECODE_ETHREAD with nothing left
 * running. The threads inherit the caller's signal mask. */
int decodepool_new(int threads, long max_queue, decodepool **out);

/* Queue t. DECODE_OK: t->run will be called exactly once. Otherwise it will not, and t is
 * the caller's again. Never blocks on a decode. */
int decodepool_submit(decodepool *p, decode_task *t);

/* Tasks waiting for a thread now (not those being run). */
long decodepool_depth(decodepool *p);

/* Refuse new tasks, run every waiting one with cancelled = 1 on this thread, and join the
 * threads once they finish the tasks they are running. Idempotent. */
void decodepool_stop(decodepool *p);

/* Stop, then free. NULL ok. */
void decodepool_free(decodepool *p);

#endif
