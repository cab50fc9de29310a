/* worker.c - the batcher's compute callbacks: one engine session per worker (see worker.h).
 * Everything here runs on a compute worker's thread. */
#include "server/worker.h"

#include "server/server.h"

int worker_init(void *arg, int w, void **ctx)
{
    srv_model *m = arg;
    char err[SRV_ERR_MAX];
    session *s = NULL;
    if (session_new_threads(m->m, m->S, m->S, (int)m->cfg->max_batch_size,
                            (int)m->cfg->threads_per_worker, &s, err, sizeof err)) {
        log_msg(m->log, LOG_ERROR, "model %s worker %d: %s", m->cfg->name, w, err);
        return -1;
    }
    log_msg(m->log, LOG_INFO, "model %s worker %d: engine arena %.1f MB, %d threads", m->cfg->name,
            w, session_arena_bytes(s) / 1e6, (int)m->cfg->threads_per_worker);
    *ctx = s;
    return 0;
}

int worker_run(void *ctx, const float *in, int n, float *out)
{
    return session_run(ctx, in, n, out);
}

float *worker_input(void *ctx)
{
    return session_input(ctx);
}

void worker_fini(void *ctx)
{
    session_free(ctx);
}

void worker_stats(void *arg, int n, double compute_s, const double *waits)
{
    srv_model *m = arg;
    metrics_batch(m->met, m->idx, n, compute_s, waits);
}
