/* test_batcher.c - the dynamic batcher with a fake engine: every row reassembled in order
 * (copied from job->in or written by job->load), batches never over max_batch, a full batch
 * exactly max_batch and run at once, the delay bound, full queue, deadlines, cancel, init
 * failure. */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "server/batcher.h"
#include "tests/unit/testutil.h"

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signals running and hold's release; only where hold is used */
    int max_seen, batches, fail_init, usleep_per_batch;
    int hold;              /* a run waits while set, after setting running */
    int running;           /* a run has started */
    int sizes[16], nsizes; /* each run's batch size, in order (the first 16) */
    float *buf;            /* the context's own batch buffer (cfg.input), or NULL */
    int foreign_in;        /* runs whose input was not buf */
} fake;

static int f_init(void *arg, int w, void **ctx)
{
    fake *f = arg;
    (void)w;
    *ctx = f;
    return f->fail_init ? -1 : 0;
}

/* out[i] = {in[i][0] * 2, in[i][1] + 1}: depends only on the row. */
static int f_run(void *ctx, const float *in, int n, float *out)
{
    fake *f = ctx;
    pthread_mutex_lock(&f->mu);
    if (f->hold) {
        f->running = 1;
        pthread_cond_broadcast(&f->cv);
        while (f->hold) pthread_cond_wait(&f->cv, &f->mu);
    }
    pthread_mutex_unlock(&f->mu);
    if (f->usleep_per_batch) usleep((useconds_t)f->usleep_per_batch);
    for (int i = 0; i < n; i++) {
        out[2 * i] = in[3 * i] * 2;
        out[2 * i + 1] = in[3 * i + 1] + 1;
    }
    pthread_mutex_lock(&f->mu);
    if (f->buf && in != f->buf) f->foreign_in++;
    if (n > f->max_seen) f->max_seen = n;
    if (f->nsizes < 16) f->sizes[f->nsizes++] = n;
    f->batches++;
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static float *f_input(void *ctx)
{
    return ((fake *)ctx)->buf;
}

typedef struct {
    batch_job job;
    float in[3 * 16], out[2 * 16];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} tjob;

static void t_done(batch_job *j)
{
    tjob *t = j->user;
    pthread_mutex_lock(&t->mu);
    t->done = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void tjob_init(tjob *t, int n, float base)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    for (int i = 0; i < n; i++) t->in[3 * i] = base + (float)i, t->in[3 * i + 1] = -(float)i;
    t->job.n = n;
    t->job.in = t->in;
    t->job.out = t->out;
    t->job.done = t_done;
    t->job.user = t;
}

/* batch_job.load: the row from the job's own storage, as a job queuing bytes would. */
static void t_load(const batch_job *j, int i, float *dst)
{
    const tjob *t = j->user;
    dst[0] = t->in[3 * i], dst[1] = t->in[3 * i + 1], dst[2] = 0;
}

static void tjob_wait(tjob *t)
{
    pthread_mutex_lock(&t->mu);
    while (!t->done) pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
}

static batcher_cfg cfg_for(fake *f, int max_batch, int workers, int max_queue, long long delay)
{
    return (batcher_cfg){.max_batch = max_batch,
                         .workers = workers,
                         .max_queue = max_queue,
                         .max_delay_us = delay,
                         .in_elems = 3,
                         .out_elems = 2,
                         .arg = f,
                         .init = f_init,
                         .run = f_run};
}

/* Submits 8 jobs of 1..7 images (every other one through job->load) and checks that every row
 * comes back in order, in batches of at most max_batch. */
static void run_jobs(batcher *b, int max_batch)
{
    enum { NJ = 8 };
    static tjob jobs[NJ];
    for (int j = 0; j < NJ; j++) {
        tjob_init(&jobs[j], 1 + j % 7, 100.0f * (float)j);
        if (j % 2) jobs[j].job.in = NULL, jobs[j].job.load = t_load;
        assert_int_equal(batcher_submit(b, &jobs[j].job), BATCH_OK);
    }
    for (int j = 0; j < NJ; j++) {
        tjob_wait(&jobs[j]);
        assert_int_equal(atomic_load(&jobs[j].job.status), BATCH_OK);
        for (int i = 0; i < jobs[j].job.n; i++) {
            assert_true(jobs[j].out[2 * i] == 2 * (100.0f * (float)j + (float)i));
            assert_true(jobs[j].out[2 * i + 1] == 1 - (float)i);
        }
        assert_true(atomic_load(&jobs[j].job.max_batch) <= max_batch);
    }
}

static void test_rows_in_order(void **state)
{
    (void)state;
    fake f = {.mu = PTHREAD_MUTEX_INITIALIZER};
    batcher_cfg c = cfg_for(&f, 4, 2, 64, 1000);
    batcher *b;
    assert_int_equal(batcher_new(&c, &b), BATCH_OK);
    run_jobs(b, 4);
    assert_true(f.max_seen <= 4 && f.max_seen >= 2);
    batcher_free(b);
}

/* cfg.input: batches are assembled in the context's buffer (the engine session's arena). */
static void test_input_from_context(void **state)
{
    (void)state;
    static float buf[4 * 3];
    fake f = {.mu = PTHREAD_MUTEX_INITIALIZER, .buf = buf};
    batcher_cfg c = cfg_for(&f, 4, 1, 64, 1000);
    c.input = f_input;
    batcher *b;
    assert_int_equal(batcher_new(&c, &b), BATCH_OK);
    run_jobs(b, 4);
    batcher_free(b);
    assert_true(f.batches >= 2); /* the warm-up and at least one batch of jobs */
    assert_int_equal(f.foreign_in, 0);
}

static void test_delay_bound_single_image(void **state)
{
    (void)state;
    fake f = {.mu = PTHREAD_MUTEX_INITIALIZER};
    batcher_cfg c = cfg_for(&f, 8, 1, 16, 50000); /* 50 ms */
    batcher *b;
    assert_int_equal(batcher_new(&c, &b), BATCH_OK);
    tjob t;
    tjob_init(&t, 1, 1);
    long long t0 = batcher_now_ns();
    assert_int_equal(batcher_submit(b, &t.job), BATCH_OK);
    tjob_wait(&t);
    double ms = (double)(batcher_now_ns() - t0) * 1e-6;
    assert_true(ms >= 45 && ms < 1000); /* waited for the batch to fill, then ran alone */
    assert_int_equal(atomic_load(&t.job.max_batch), 1);
    batcher_free(b);
}

/* A full batch is exactly max_batch images. While the worker computes a batch, max_batch +
 * extra one-image jobs queue up; once it is free, the first max_batch run as one batch at
 * once, not after max_delay_us (1 s), and an extra one runs after them, alone. */
static void full_batch(int extra)
{
    enum { MB = 4 };
    fake f = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    batcher_cfg c = cfg_for(&f, MB, 1, 16, 1000000);
    batcher *b;
    static tjob busy, jobs[MB + 1];
    assert_int_equal(batcher_new(&c, &b), BATCH_OK);
    pthread_mutex_lock(&f.mu);
    f.nsizes = 0; /* not the warm-up */
    f.hold = 1;
    pthread_mutex_unlock(&f.mu);
    tjob_init(&busy, MB, 0); /* a full batch itself: taken at once */
    assert_int_equal(batcher_submit(b, &busy.job), BATCH_OK);
    pthread_mutex_lock(&f.mu);
    while (!f.running) pthread_cond_wait(&f.cv, &f.mu);
    pthread_mutex_unlock(&f.mu);
    for (int j = 0; j < MB + extra; j++) {
        tjob_init(&jobs[j], 1, 10.0f * (float)(j + 1));
        assert_int_equal(batcher_submit(b, &jobs[j].job), BATCH_OK);
    }
    assert_int_equal(batcher_depth(b), MB + extra);
    pthread_mutex_lock(&f.mu);
    f.hold = 0;
    pthread_cond_broadcast(&f.cv);
    pthread_mutex_unlock(&f.mu);
    long long t0 = batcher_now_ns();
    for (int j = 0; j < MB; j++) tjob_wait(&jobs[j]);
    double ms = (double)(batcher_now_ns() - t0) * 1e-6;
    assert_true(ms < 500); /* the full batch did not wait for the delay */
    for (int j = 0; j < MB + extra; j++) {
        if (j == MB) tjob_wait(&jobs[j]);
        assert_int_equal(atomic_load(&jobs[j].job.status), BATCH_OK);
        assert_int_equal(atomic_load(&jobs[j].job.max_batch), j < MB ? MB : 1);
        assert_true(jobs[j].out[0] == 20.0f * (float)(j + 1) && jobs[j].out[1] == 1.0f);
    }
    batcher_free(b);
    int want[] = {MB, MB, 1};
    assert_int_equal(f.nsizes, 2 + extra);
    for (int i = 0; i < f.nsizes; i++) assert_int_equal(f.sizes[i], want[i]);
}

static void test_full_batch_is_max_batch(void **state)
{
    (void)state;
    full_batch(0);
    full_batch(1);
}

static void test_full_queue_and_deadline(void **state)
{
    (void)state;
    fake f = {.mu = PTHREAD_MUTEX_INITIALIZER};
    batcher_cfg c = cfg_for(&f, 4, 1, 4, 200000); /* 200 ms fill wait */
    batcher *b;
    assert_int_equal(batcher_new(&c, &b), BATCH_OK);
    tjob a, bb, big, c2;
    tjob_init(&a, 1, 1);
    a.job.deadline_ns = batcher_now_ns() + 10 * 1000000LL; /* 10 ms: passes while waiting */
    tjob_init(&bb, 2, 1);
    tjob_init(&big, 5, 1);
    tjob_init(&c2, 2, 1);
    assert_int_equal(batcher_submit(b, &big.job), BATCH_EINVAL); /* can never fit */
    assert_int_equal(batcher_submit(b, &a.job), BATCH_OK);
    assert_int_equal(batcher_submit(b, &bb.job), BATCH_OK);
    /* 3 queued, batch not full: the worker waits; 3 + 2 > 4 is refused at once */
    assert_int_equal(batcher_submit(b, &c2.job), BATCH_EFULL);
    tjob_wait(&a);
    tjob_wait(&bb);
    assert_int_equal(atomic_load(&a.job.status), BATCH_EDEADLINE);
    assert_int_equal(atomic_load(&bb.job.status), BATCH_OK);
    assert_int_equal(atomic_load(&bb.job.max_batch), 2);
    batcher_free(b);

    /* a lone image whose deadline passes during the fill wait: 504 */
    assert_int_equal(batcher_new(&c, &b), BATCH_OK);
    tjob d;
    tjob_init(&d, 1, 1);
    d.job.deadline_ns = batcher_now_ns() + 5 * 1000000LL;
    assert_int_equal(batcher_submit(b, &d.job), BATCH_OK);
    tjob_wait(&d);
    assert_int_equal(atomic_load(&d.job.status), BATCH_EDEADLINE);
    batcher_free(b);
}

static void test_cancel_and_free_finish_everything(void **state)
{
    (void)state;
    fake f = {.mu = PTHREAD_MUTEX_INITIALIZER, .usleep_per_batch = 20000};
    batcher_cfg c = cfg_for(&f, 1, 1, 32, 0);
    batcher *b;
    assert_int_equal(batcher_new(&c, &b), BATCH_OK);
    static tjob js[6];
    for (int i = 0; i < 6; i++) {
        tjob_init(&js[i], 3, 0);
        assert_int_equal(batcher_submit(b, &js[i].job), BATCH_OK);
    }
    batcher_cancel(b);
    tjob late;
    tjob_init(&late, 1, 0);
    assert_int_equal(batcher_submit(b, &late.job), BATCH_ESTOPPED);
    batcher_free(b); /* joins: every job's done() has run */
    int cancelled = 0;
    for (int i = 0; i < 6; i++) {
        assert_int_equal(js[i].done, 1);
        cancelled += atomic_load(&js[i].job.status) == BATCH_ECANCELLED;
    }
    assert_true(cancelled >= 4);
}

static void test_init_failure(void **state)
{
    (void)state;
    fake f = {.mu = PTHREAD_MUTEX_INITIALIZER, .fail_init = 1};
    batcher_cfg c = cfg_for(&f, 2, 2, 8, 0);
    batcher *b = (batcher *)1;
    assert_int_equal(batcher_new(&c, &b), BATCH_EINIT);
    assert_null(b);
    c.max_queue = 1; /* < max_batch */
    assert_int_equal(batcher_new(&c, &b), BATCH_EINVAL);
    batcher_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_in_order),
        cmocka_unit_test(test_input_from_context),
        cmocka_unit_test(test_delay_bound_single_image),
        cmocka_unit_test(test_full_batch_is_max_batch),
        cmocka_unit_test(test_full_queue_and_deadline),
        cmocka_unit_test(test_cancel_and_free_finish_everything),
        cmocka_unit_test(test_init_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
