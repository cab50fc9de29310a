/* batcher.c - see batcher.h.
 *
 * The queue is a ring of (job, index, enqueue time) entries, one per image, sized
 * max_queue at creation: submitting never allocates. Workers wait on the one condition
 * variable; a submit broadcasts (workers are few) so a worker waiting for its batch to fill
 * sees new images at once. The condition variable uses CLOCK_MONOTONIC for its timed waits.
 */
#include "server/batcher.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    batch_job *job;
    int idx;
    long long t_enq;
} item;

typedef struct {
    batcher *b;
    int id;
    pthread_t th;
    int started;
    void *ctx;
    float *in, *out; /* in: the batch being assembled (cfg.input's, or own_in) */
    float *own_in;
    double *waits;
    item *take;
} worker;

struct batcher {
    batcher_cfg cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    item *q;
    long head, count;
    int stop, rejecting;
    int inited, init_failed; /* workers done with init + warm-up, and failures */
    worker *w;
};

long long batcher_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void finish(batch_job *j, int status, int batch)
{
    if (status != BATCH_OK) {
        int ok = BATCH_OK;
        atomic_compare_exchange_strong(&j->status, &ok, status);
    }
    int m = atomic_load(&j->max_batch);
    while (batch > m && !atomic_compare_exchange_weak(&j->max_batch, &m, batch)) {
    }
    if (atomic_fetch_sub(&j->remaining, 1) == 1) j->done(j);
}

/* Pop k images from the head; caller holds mu. */
static void pop(batcher *b, item *dst, long k)
{
    long cap = b->cfg.max_queue;
    for (long i = 0; i < k; i++) {
        dst[i] = b->q[b->head];
        b->head = (b->head + 1) % cap;
    }
    b->count -= k;
}

static void timed_wait(batcher *b, long long until_ns)
{
    struct timespec ts = {(time_t)(until_ns / 1000000000LL), (long)(until_ns % 1000000000LL)};
    pthread_cond_timedwait(&b->cv, &b->mu, &ts);
}

static void run_batch(worker *w, int k)
{
    batcher *b = w->b;
    const batcher_cfg *c = &b->cfg;
    long long now = batcher_now_ns();
    int n = 0;
    /* Drop expired images first; compact the live ones to the front. */
    for (int i = 0; i < k; i++) {
        item it = w->take[i];
        if (it.job->deadline_ns && now > it.job->deadline_ns) {
            finish(it.job, BATCH_EDEADLINE, 0);
            continue;
        }
        w->take[n] = it;
        w->waits[n] = (double)(now - it.t_enq) * 1e-9;
        float *dst = w->in + (size_t)n * c->in_elems;
        if (it.job->load)
            it.job->load(it.job, it.idx, dst);
        else
            memcpy(dst, it.job->in + (size_t)it.idx * c->in_elems, c->in_elems * sizeof(float));
        n++;
    }
    if (n == 0) return;
    long long t0 = batcher_now_ns();
    int r = c->run(w->ctx, w->in, n, w->out);
    double dt = (double)(batcher_now_ns() - t0) * 1e-9;
    if (c->on_batch && r == 0) c->on_batch(c->arg, n, dt, w->waits);
    for (int i = 0; i < n; i++) {
        item it = w->take[i];
        if (r == 0)
            memcpy(it.job->out + (size_t)it.idx * c->out_elems, w->out + (size_t)i * c->out_elems,
                   c->out_elems * sizeof(float));
        finish(it.job, r == 0 ? BATCH_OK : BATCH_ERUN, n);
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    batcher *b = w->b;
    const batcher_cfg *c = &b->cfg;
    int ok = c->init(c->arg, w->id, &w->ctx) == 0;
    if (ok && c->input) w->in = c->input(w->ctx);
    if (ok) {
        memset(w->in, 0, (size_t)c->max_batch * c->in_elems * sizeof(float));
        ok = c->run(w->ctx, w->in, c->max_batch, w->out) == 0;
    }
    pthread_mutex_lock(&b->mu);
    b->inited++;
    if (!ok) b->init_failed++;
    pthread_cond_broadcast(&b->cv);
    if (!ok) goto out;
    for (;;) {
        while (b->count == 0 && !b->stop) pthread_cond_wait(&b->cv, &b->mu);
        if (b->stop) break;
        long long until = b->q[b->head].t_enq + c->max_delay_us * 1000LL;
        while (b->count > 0 && b->count < c->max_batch && !b->stop && batcher_now_ns() < until)
            timed_wait(b, until);
        if (b->stop) break;
        if (b->count == 0) continue;
        int k = b->count < c->max_batch ? (int)b->count : c->max_batch;
        pop(b, w->take, k);
        if (b->count > 0) pthread_cond_broadcast(&b->cv);
        pthread_mutex_unlock(&b->mu);
        run_batch(w, k);
        pthread_mutex_lock(&b->mu);
    }
out:
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

static void stop_workers(batcher *b)
{
    pthread_mutex_lock(&b->mu);
    b->stop = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < b->cfg.workers; i++)
        if (b->w[i].started) pthread_join(b->w[i].th, NULL);
}

int batcher_new(const batcher_cfg *cfg, batcher **out)
{
    *out = NULL;
    if (cfg->max_batch < 1 || cfg->workers < 1 || cfg->max_queue < cfg->max_batch || !cfg->init ||
        !cfg->run)
        return BATCH_EINVAL;
    batcher *b = calloc(1, sizeof *b);
    if (!b) return BATCH_ENOMEM;
    b->cfg = *cfg;
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    b->q = calloc((size_t)cfg->max_queue, sizeof *b->q);
    b->w = calloc((size_t)cfg->workers, sizeof *b->w);
    int st = BATCH_ENOMEM;
    if (!b->q || !b->w) goto fail;
    for (int i = 0; i < cfg->workers; i++) {
        worker *w = &b->w[i];
        w->b = b;
        w->id = i;
        if (!cfg->input)
            w->in = w->own_in = malloc((size_t)cfg->max_batch * cfg->in_elems * sizeof(float));
        w->out = malloc((size_t)cfg->max_batch * cfg->out_elems * sizeof(float));
        w->waits = malloc((size_t)cfg->max_batch * sizeof(double));
        w->take = malloc((size_t)cfg->max_batch * sizeof(item));
        if ((!cfg->input && !w->in) || !w->out || !w->waits || !w->take) goto fail;
    }
    int started = 0;
    for (int i = 0; i < cfg->workers; i++) {
        if (pthread_create(&b->w[i].th, NULL, worker_main, &b->w[i])) break;
        b->w[i].started = 1;
        started++;
    }
    pthread_mutex_lock(&b->mu);
    while (b->inited < started) pthread_cond_wait(&b->cv, &b->mu);
    int failed = b->init_failed || started < cfg->workers;
    pthread_mutex_unlock(&b->mu);
    if (failed) {
        st = BATCH_EINIT;
        goto fail;
    }
    *out = b;
    return BATCH_OK;
fail:
    batcher_free(b);
    return st;
}

int batcher_submit(batcher *b, batch_job *j)
{
    if (j->n < 1 || j->n > b->cfg.max_queue) return BATCH_EINVAL;
    atomic_store(&j->status, BATCH_OK);
    atomic_store(&j->max_batch, 0);
    atomic_store(&j->remaining, j->n);
    long long now = batcher_now_ns();
    pthread_mutex_lock(&b->mu);
    int st = BATCH_OK;
    if (b->rejecting || b->stop)
        st = BATCH_ESTOPPED;
    else if (b->count + j->n > b->cfg.max_queue)
        st = BATCH_EFULL;
    else {
        long cap = b->cfg.max_queue;
        for (int i = 0; i < j->n; i++) {
            b->q[(b->head + b->count) % cap] = (item){j, i, now};
            b->count++;
        }
        pthread_cond_broadcast(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
    return st;
}

long batcher_depth(batcher *b)
{
    pthread_mutex_lock(&b->mu);
    long n = b->count;
    pthread_mutex_unlock(&b->mu);
    return n;
}

/* Take every queued image and finish it with BATCH_ECANCELLED, outside the lock. */
static void drain_queue(batcher *b)
{
    for (;;) {
        item it;
        pthread_mutex_lock(&b->mu);
        b->rejecting = 1;
        long k = b->count;
        if (k) pop(b, &it, 1);
        pthread_mutex_unlock(&b->mu);
        if (!k) return;
        finish(it.job, BATCH_ECANCELLED, 0);
    }
}

void batcher_cancel(batcher *b)
{
    if (b) drain_queue(b);
}

void batcher_free(batcher *b)
{
    if (!b) return;
    if (b->w) {
        drain_queue(b);
        stop_workers(b);
        drain_queue(b);
        for (int i = 0; i < b->cfg.workers; i++) {
            worker *w = &b->w[i];
            if (w->ctx && b->cfg.fini) b->cfg.fini(w->ctx);
            free(w->own_in);
            free(w->out);
            free(w->waits);
            free(w->take);
        }
    }
    free(b->w);
    free(b->q);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
}
