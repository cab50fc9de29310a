/* server.c - a model's batcher as HTTP threads and the drain share it (see server.h).
 *
 * HTTP threads submit jobs and read queue depths while the main thread may be draining;
 * the drain takes each batcher away under s->mu before freeing it, so every use here holds
 * the same lock. A request arriving on a kept-alive connection at the end of the drain then
 * gets a 503 instead of a freed batcher. None of these calls blocks on compute.
 */
#include "server/server.h"

long server_queue_depth(server *s, srv_model *m)
{
    pthread_mutex_lock(&s->mu);
    long n = m->b ? batcher_depth(m->b) : 0;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int server_submit(server *s, srv_model *m, batch_job *job)
{
    pthread_mutex_lock(&s->mu);
    int st = m->b ? batcher_submit(m->b, job) : BATCH_ESTOPPED;
    pthread_mutex_unlock(&s->mu);
    return st;
}

batcher *server_take_batcher(server *s, srv_model *m)
{
    pthread_mutex_lock(&s->mu);
    batcher *b = m->b;
    m->b = NULL;
    pthread_mutex_unlock(&s->mu);
    return b;
}
