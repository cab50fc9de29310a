/* batcher.h - one model's dynamic batcher: a bounded queue of images and a pool of compute
 * workers, with Triton's dynamic-batching semantics.
 *
 * A request becomes one `batch_job` of n images (already preprocessed: [n, in_elems] floats,
 * or whatever job->load turns into them when the batch is assembled). batcher_submit queues
 * its n images, or refuses the whole job at once when the queue cannot hold them
 * (BATCH_EFULL -> HTTP 503). Each worker loops: wait for an image;
 * if fewer than max_batch are queued, wait until max_batch are, or until the oldest queued
 * image has waited max_delay_us; take up to max_batch images (oldest first), drop those whose
 * job deadline has passed (BATCH_EDEADLINE -> 504), run the rest as one engine batch, copy
 * each output row into its job. The images of one job may run in different batches and on
 * different workers; every row lands at its index, so results come back in request order.
 *
 * When the last image of a job is finished, job->done(job) is called exactly once, on the
 * thread that finished it (a worker, or the caller of batcher_cancel / batcher_free). After
 * done() the batcher never touches the job again; until then the caller must keep the job,
 * its input and its output alive.
 *
 * Threads meet only at the queue: one mutex, one condition variable. Compute contexts (one
 * engine session per worker) are created by cfg.init on the worker thread, and each worker
 * runs one warm-up batch of max_batch zero images before batcher_new returns.
 */
#ifndef XBN_BATCHER_H
#define XBN_BATCHER_H

#include <stdatomic.h>
#include <stddef.h>

enum {
    BATCH_OK = 0,
    BATCH_EFULL = -1,      /* queue cannot take the job's images now (503) */
    BATCH_ESTOPPED = -2,   /* batcher is shutting down (503) */
    BATCH_EINVAL = -3,     /* n < 1 or more images than the queue could ever hold */
    BATCH_EDEADLINE = -4,  /* deadline passed before compute (504) */
    BATCH_ECANCELLED = -5, /* dropped by batcher_cancel / batcher_free (503) */
    BATCH_ERUN = -6,       /* the run callback failed (500) */
    BATCH_EINIT = -7,      /* batcher_new: a worker's init or warm-up failed */
    BATCH_ENOMEM = -8,
};

typedef struct batch_job batch_job;
struct batch_job {
    /* Set by the caller before batcher_submit. */
    int n;
    const float *in; /* [n, in_elems]; unused when load is set */
    /* Optional: write image i's input, in_elems floats, to dst. Called on a worker thread
     * while it assembles a batch, so a job can queue a compact form of its images. */
    void (*load)(const batch_job *job, int i, float *dst);
    float *out;            /* [n, out_elems] */
    long long deadline_ns; /* CLOCK_MONOTONIC nanoseconds; 0 = none */
    void (*done)(batch_job *job);
    void *user;
    /* Results, valid in done(). */
    atomic_int status;    /* BATCH_OK or the first failure among the images */
    atomic_int max_batch; /* largest engine batch an image of this job ran in */
    /* Private. */
    atomic_int remaining;
};

typedef struct {
    int max_batch;          /* images per run call */
    int workers;            /* threads */
    int max_queue;          /* images queued at most */
    long long max_delay_us; /* longest wait for a batch to fill */
    size_t in_elems, out_elems;
    void *arg;
    /* Create worker `w`'s compute context; runs on that worker's thread. 0 = ok. */
    int (*init)(void *arg, int w, void **ctx);
    /* in [n, in_elems] -> out [n, out_elems]; 0 = ok. */
    int (*run)(void *ctx, const float *in, int n, float *out);
    void (*fini)(void *ctx);
    /* Optional: where worker ctx assembles its batches, max_batch * in_elems floats owned by
     * ctx (the engine session's own input buffer); without it the batcher allocates one. */
    float *(*input)(void *ctx);
    /* Optional: after each batch, its size, compute time and each image's queue wait. */
    void (*on_batch)(void *arg, int n, double compute_s, const double *waits_s);
} batcher_cfg;

typedef struct batcher batcher;

/* Start the workers, wait until every one has initialised and run its warm-up batch.
 * Returns BATCH_OK with *out, or BATCH_EINIT / BATCH_ENOMEM (nothing left running). */
int batcher_new(const batcher_cfg *cfg, batcher **out);

/* Queue the job's n images. On BATCH_OK, done() will be called exactly once; on any
 * other status it will not, and the job is the caller's again. Never blocks on compute. */
int batcher_submit(batcher *b, batch_job *job);

/* Images queued now (not yet taken by a worker). */
long batcher_depth(batcher *b);

/* Refuse new jobs and finish every queued image with BATCH_ECANCELLED. Images already in
 * a running batch complete normally. */
void batcher_cancel(batcher *b);

/* Cancel, let running batches finish, join the workers, release everything. NULL ok. */
void batcher_free(batcher *b);

/* CLOCK_MONOTONIC now, in nanoseconds. */
long long batcher_now_ns(void);

#endif
