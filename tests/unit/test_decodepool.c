/* test_decodepool.c - the decode pool with fake tasks: every task run once, oldest first;
 * threads run tasks side by side; the queue bound and its depth; stopping cancels the tasks
 * still waiting (on the stopping thread), lets the running one finish, then refuses. */
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/decodepool.h"
#include "tests/unit/testutil.h"

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int order[64], n;      /* task ids in the order they ran */
    int cancelled[64];     /* by id: run with cancelled set */
    pthread_t ran_on[64];  /* by id */
    int running, max_both; /* tasks inside run() now; whether two ever were at once */
    int gate_open;         /* gated tasks wait for this */
} log_t;

typedef struct {
    decode_task t;
    log_t *log;
    int id, gated, wait_for_two;
} ftask;

/* Wait on l->cv under l->mu until *flag, at most 5 s (a broken pool fails, never hangs). */
static void wait_flag(log_t *l, const int *flag)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    while (!*flag && pthread_cond_timedwait(&l->cv, &l->mu, &ts) == 0) {
    }
}

static void f_run(decode_task *t, int cancelled)
{
    ftask *f = t->user;
    log_t *l = f->log;
    pthread_mutex_lock(&l->mu);
    l->running++;
    if (l->running == 2) l->max_both = 1;
    pthread_cond_broadcast(&l->cv);
    if (!cancelled && f->gated) wait_flag(l, &l->gate_open);
    if (!cancelled && f->wait_for_two) wait_flag(l, &l->max_both);
    l->order[l->n++] = f->id;
    l->cancelled[f->id] = cancelled;
    l->ran_on[f->id] = pthread_self();
    l->running--;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static void log_init(log_t *l)
{
    memset(l, 0, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
}

static void task_init(ftask *f, log_t *l, int id)
{
    memset(f, 0, sizeof *f);
    f->t.run = f_run;
    f->t.user = f;
    f->log = l;
    f->id = id;
}

/* Until n tasks have run (at most 5 s). */
static void wait_ran(log_t *l, int n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    pthread_mutex_lock(&l->mu);
    while (l->n < n && pthread_cond_timedwait(&l->cv, &l->mu, &ts) == 0) {
    }
    pthread_mutex_unlock(&l->mu);
}

/* Until a task is inside run() (at most 5 s). */
static void wait_running(log_t *l)
{
    pthread_mutex_lock(&l->mu);
    wait_flag(l, &l->running);
    pthread_mutex_unlock(&l->mu);
}

static void test_every_task_once_oldest_first(void **state)
{
    (void)state;
    static log_t l;
    static ftask f[20];
    log_init(&l);
    decodepool *p;
    assert_int_equal(decodepool_new(1, 64, &p), DECODE_OK);
    for (int i = 0; i < 20; i++) {
        task_init(&f[i], &l, i);
        assert_int_equal(decodepool_submit(p, &f[i].t), DECODE_OK);
    }
    wait_ran(&l, 20);
    decodepool_free(p);
    assert_int_equal(l.n, 20);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(l.order[i], i);
        assert_int_equal(l.cancelled[i], 0);
    }
}

static void test_threads_side_by_side(void **state)
{
    (void)state;
    static log_t l;
    static ftask f[2];
    log_init(&l);
    decodepool *p;
    assert_int_equal(decodepool_new(2, 4, &p), DECODE_OK);
    for (int i = 0; i < 2; i++) {
        task_init(&f[i], &l, i);
        f[i].wait_for_two = 1; /* each waits for the other to be running too */
        assert_int_equal(decodepool_submit(p, &f[i].t), DECODE_OK);
    }
    wait_ran(&l, 2);
    decodepool_free(p);
    assert_int_equal(l.max_both, 1);
    assert_false(pthread_equal(l.ran_on[0], l.ran_on[1]));
}

static void test_bound_and_depth(void **state)
{
    (void)state;
    static log_t l;
    static ftask f[5];
    log_init(&l);
    decodepool *p;
    assert_int_equal(decodepool_new(1, 3, &p), DECODE_OK);
    for (int i = 0; i < 5; i++) task_init(&f[i], &l, i);
    f[0].gated = 1;
    assert_int_equal(decodepool_submit(p, &f[0].t), DECODE_OK);
    wait_running(&l); /* the thread holds task 0: it no longer counts as waiting */
    assert_int_equal(decodepool_depth(p), 0);
    for (int i = 1; i < 4; i++) assert_int_equal(decodepool_submit(p, &f[i].t), DECODE_OK);
    assert_int_equal(decodepool_depth(p), 3);
    assert_int_equal(decodepool_submit(p, &f[4].t), DECODE_EFULL); /* never run */
    pthread_mutex_lock(&l.mu);
    l.gate_open = 1;
    pthread_cond_broadcast(&l.cv);
    pthread_mutex_unlock(&l.mu);
    wait_ran(&l, 4);
    assert_int_equal(decodepool_depth(p), 0);
    decodepool_free(p);
    assert_int_equal(l.n, 4);
    for (int i = 0; i < 4; i++) assert_int_equal(l.order[i], i);
}

static void *open_gate_later(void *arg)
{
    log_t *l = arg;
    usleep(50000);
    pthread_mutex_lock(&l->mu);
    l->gate_open = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void test_stop_cancels_waiting_lets_running_finish(void **state)
{
    (void)state;
    static log_t l;
    static ftask f[5];
    log_init(&l);
    decodepool *p;
    assert_int_equal(decodepool_new(1, 8, &p), DECODE_OK);
    for (int i = 0; i < 5; i++) task_init(&f[i], &l, i);
    f[0].gated = 1;
    assert_int_equal(decodepool_submit(p, &f[0].t), DECODE_OK);
    wait_running(&l);
    for (int i = 1; i < 4; i++) assert_int_equal(decodepool_submit(p, &f[i].t), DECODE_OK);
    pthread_t opener;
    assert_int_equal(pthread_create(&opener, NULL, open_gate_later, &l), 0);
    decodepool_stop(p); /* returns once task 0 has finished */
    pthread_join(opener, NULL);
    assert_int_equal(l.n, 4);
    for (int i = 1; i < 4; i++) {
        assert_int_equal(l.cancelled[i], 1);
        assert_true(pthread_equal(l.ran_on[i], pthread_self()));
    }
    assert_int_equal(l.cancelled[0], 0);
    assert_false(pthread_equal(l.ran_on[0], pthread_self()));
    assert_int_equal(decodepool_submit(p, &f[4].t), DECODE_ESTOPPED);
    decodepool_stop(p); /* again: nothing happens */
    decodepool_free(p);
    assert_int_equal(l.n, 4);
}

static void test_invalid(void **state)
{
    (void)state;
    decodepool *p = (decodepool *)&p;
    assert_int_equal(decodepool_new(0, 1, &p), DECODE_EINVAL);
    assert_null(p);
    assert_int_equal(decodepool_new(1, 0, &p), DECODE_EINVAL);
    decodepool_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_task_once_oldest_first),
        cmocka_unit_test(test_threads_side_by_side),
        cmocka_unit_test(test_bound_and_depth),
        cmocka_unit_test(test_stop_cancels_waiting_lets_running_finish),
        cmocka_unit_test(test_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
