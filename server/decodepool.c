/* decodepool.c - see decodepool.h.
 *
 * The queue is a FIFO list threaded through the tasks (head, tail, count). Threads sleep on
 * the one condition variable; a submit signals one of them, stopping wakes them all. A
 * thread runs its task outside the lock.
 */
#include "server/decodepool.h"

#include <pthread.h>
#include <stdlib.h>

struct decodepool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    decode_task *head, *tail;
    long count, max_queue;
    int stopping;
    int nthreads; /* started */
    int joined;
    pthread_t *th;
};

/* Under mu: the oldest waiting task, or NULL. */
static decode_task *pop(decodepool *p)
{
    decode_task *t = p->head;
    if (!t) return NULL;
    p->head = t->next;
    if (!p->head) p->tail = NULL;
    p->count--;
    t->next = NULL;
    return t;
}

static void *thread_main(void *arg)
{
    decodepool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stopping) pthread_cond_wait(&p->cv, &p->mu);
        if (p->stopping) break; /* what is left is cancelled by decodepool_stop */
        decode_task *t = pop(p);
        pthread_mutex_unlock(&p->mu);
        t->run(t, 0);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int decodepool_new(int threads, long max_queue, decodepool **out)
{
    *out = NULL;
    if (threads < 1 || max_queue < 1) return DECODE_EINVAL;
    decodepool *p = calloc(1, sizeof *p);
    if (!p) return DECODE_ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->max_queue = max_queue;
    p->th = calloc((size_t)threads, sizeof *p->th);
    int st = DECODE_ENOMEM;
    if (!p->th) goto fail;
    for (; p->nthreads < threads; p->nthreads++)
        if (pthread_create(&p->th[p->nthreads], NULL, thread_main, p)) {
            st = DECODE_ETHREAD;
            goto fail;
        }
    *out = p;
    return DECODE_OK;
fail:
    decodepool_free(p);
    return st;
}

int decodepool_submit(decodepool *p, decode_task *t)
{
    int st = DECODE_OK;
    t->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->stopping)
        st = DECODE_ESTOPPED;
    else if (p->count >= p->max_queue)
        st = DECODE_EFULL;
    else {
        if (p->tail)
            p->tail->next = t;
        else
            p->head = t;
        p->tail = t;
        p->count++;
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return st;
}

long decodepool_depth(decodepool *p)
{
    pthread_mutex_lock(&p->mu);
    long n = p->count;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void decodepool_stop(decodepool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (;;) { /* one at a time, outside the lock: run() may take other locks */
        pthread_mutex_lock(&p->mu);
        decode_task *t = pop(p);
        pthread_mutex_unlock(&p->mu);
        if (!t) break;
        t->run(t, 1);
    }
    if (p->joined) return;
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->th[i], NULL);
    p->joined = 1;
}

void decodepool_free(decodepool *p)
{
    if (!p) return;
    decodepool_stop(p);
    free(p->th);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
