/* server.c - a model's batcher as HTTP threads and the drain share it (see server.h).
 *
 * HTTP threads submit jobs and read queue depths while the main thread may be draining;
 * the drain takes each batcher away under s->mu before freeing it, so every use here holds
 * the same lock. A request arriving on a kept-alive connection at the end of the drain then
 * gets a 503 instead of a freed batcher. None of these calls blocks on compute. The same
 * lock guards the slots' instances and the queue of loads and unloads for the main thread.
 */
#include "server/server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

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

/* ---- the model registry: slots and instances ---- */

int server_find(const server *s, const char *name, size_t n)
{
    int ns = atomic_load_explicit(&s->nslots, memory_order_acquire);
    for (int i = 0; i < ns; i++)
        if (strlen(s->slots[i].name) == n && !strncmp(s->slots[i].name, name, n) &&
            atomic_load(&s->slots[i].listed))
            return i;
    return -1;
}

srv_model *server_acquire(server *s, int slot)
{
    if (slot < 0) return NULL;
    pthread_mutex_lock(&s->mu);
    srv_model *m = s->slots[slot].cur;
    if (m) m->refs++;
    pthread_mutex_unlock(&s->mu);
    return m;
}

srv_model *server_acquire_version(server *s, int slot, long long v)
{
    if (!v) return server_acquire(s, slot);
    if (slot < 0) return NULL;
    srv_model *m = NULL;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->slots[slot].nvers; i++)
        if (s->slots[slot].vers[i]->cfg->version == v) m = s->slots[slot].vers[i];
    if (m) m->refs++;
    pthread_mutex_unlock(&s->mu);
    return m;
}

int server_versions(server *s, int slot, long long *out)
{
    pthread_mutex_lock(&s->mu);
    int n = s->slots[slot].nvers;
    for (int i = 0; i < n; i++) out[i] = s->slots[slot].vers[i]->cfg->version;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void server_release(server *s, srv_model *m)
{
    if (!m) return;
    pthread_mutex_lock(&s->mu);
    m->refs--;
    pthread_mutex_unlock(&s->mu);
}

void server_last_error(server *s, int slot, char *buf, size_t n)
{
    pthread_mutex_lock(&s->mu);
    snprintf(buf, n, "%s", s->slots[slot].last_error);
    pthread_mutex_unlock(&s->mu);
}

int server_slot(server *s, const char *name)
{
    int ns = atomic_load(&s->nslots);
    for (int i = 0; i < ns; i++)
        if (!strcmp(s->slots[i].name, name)) return i;
    if (ns == CFG_MAX_MODELS) return -1;
    snprintf(s->slots[ns].name, sizeof s->slots[ns].name, "%s", name);
    /* its metrics series from now on, before any request can reach it; once per name, and
     * so once per process, since a slot is never given up */
    if (metrics_model_add(s->met, ns, name))
        log_msg(&s->log, LOG_WARN,
                "model %s: no room for its metrics: served without per-model series", name);
    atomic_store_explicit(&s->nslots, ns + 1, memory_order_release);
    return ns;
}

/* Under s->mu: the slot serves ms[0, n) from now on. */
static void set_versions(server *s, srv_slot *sl, srv_model **ms, int n)
{
    for (int i = 0; i < sl->nvers; i++) {
        int kept = 0;
        for (int j = 0; j < n; j++) kept |= ms[j] == sl->vers[i];
        if (!kept) sl->vers[i]->retired = 1;
    }
    for (int j = 0; j < n; j++) {
        int known = 0;
        for (int i = 0; i < sl->nvers; i++) known |= ms[j] == sl->vers[i];
        if (!known) {
            ms[j]->next = s->all;
            s->all = ms[j];
        }
    }
    for (int j = 0; j < n; j++) sl->vers[j] = ms[j];
    sl->nvers = n;
    sl->cur = n ? ms[n - 1] : NULL;
}

void server_publish(server *s, int slot, srv_model *m, int listed, const char *err)
{
    srv_slot *sl = &s->slots[slot];
    pthread_mutex_lock(&s->mu);
    if (m || !listed) /* replaced or removed; a failed load (m NULL, listed) keeps it */
        set_versions(s, sl, &m, m ? 1 : 0);
    if (err) snprintf(sl->last_error, sizeof sl->last_error, "%s", err);
    atomic_store(&sl->listed, listed);
    pthread_mutex_unlock(&s->mu);
}

void server_publish_versions(server *s, int slot, srv_model **ms, int n, const char *err)
{
    srv_slot *sl = &s->slots[slot];
    pthread_mutex_lock(&s->mu);
    set_versions(s, sl, ms, n);
    if (err) snprintf(sl->last_error, sizeof sl->last_error, "%s", err);
    atomic_store(&sl->listed, 1);
    pthread_mutex_unlock(&s->mu);
}

void server_set_unloaded(server *s, int slot, int unloaded)
{
    srv_slot *sl = &s->slots[slot];
    pthread_mutex_lock(&s->mu);
    if (unloaded) {
        set_versions(s, sl, NULL, 0);
        sl->last_error[0] = 0; /* the index and the listing say "unloaded" instead */
    }
    atomic_store(&sl->unloaded, unloaded);
    pthread_mutex_unlock(&s->mu);
}

int server_unloaded(const server *s, int slot)
{
    return atomic_load(&s->slots[slot].unloaded);
}

int server_op_submit(server *s, srv_op *op)
{
    op->next = NULL;
    pthread_mutex_lock(&s->mu);
    int closed = s->ops_closed;
    if (!closed) {
        if (s->ops_tail)
            s->ops_tail->next = op;
        else
            s->ops = op;
        s->ops_tail = op;
    }
    pthread_mutex_unlock(&s->mu);
    if (closed) return -1;
    /* The main thread is the process's first thread: its tid is the pid. A wake-up that
     * arrives while it is busy stays pending until its next sigtimedwait. */
    pid_t pid = getpid();
    syscall(SYS_tgkill, pid, pid, SRV_WAKE_SIGNAL);
    return 0;
}

srv_op *server_op_take(server *s, int *more)
{
    pthread_mutex_lock(&s->mu);
    srv_op *op = s->ops;
    if (op) s->ops = op->next;
    if (!s->ops) s->ops_tail = NULL;
    *more = s->ops != NULL;
    pthread_mutex_unlock(&s->mu);
    return op;
}

srv_op *server_ops_close(server *s)
{
    pthread_mutex_lock(&s->mu);
    srv_op *list = s->ops;
    s->ops = s->ops_tail = NULL;
    s->ops_closed = 1;
    pthread_mutex_unlock(&s->mu);
    return list;
}

void server_reap(server *s)
{
    for (;;) {
        srv_model *dead = NULL;
        pthread_mutex_lock(&s->mu);
        for (srv_model **p = &s->all; *p; p = &(*p)->next)
            if ((*p)->retired && (*p)->refs == 0) {
                dead = *p;
                *p = dead->next;
                break;
            }
        pthread_mutex_unlock(&s->mu);
        if (!dead) return;
        /* No request holds it and none can take it: its queue is empty. */
        log_msg(&s->log, LOG_INFO, "model %s: retired instance freed", dead->cfg->name);
        server_model_free(dead);
    }
}

srv_model **server_instances(server *s, int *n)
{
    pthread_mutex_lock(&s->mu);
    int k = 0;
    for (srv_model *m = s->all; m; m = m->next) k++;
    srv_model **v = calloc((size_t)k + 1, sizeof *v);
    k = 0;
    for (srv_model *m = s->all; v && m; m = m->next) v[k++] = m;
    pthread_mutex_unlock(&s->mu);
    *n = k;
    return v;
}

void server_model_free(srv_model *m)
{
    if (!m) return;
    batcher_free(m->b);
    model_free(m->m);
    free(m->labels_own);
    free(m->labels_blob);
    free(m);
}
