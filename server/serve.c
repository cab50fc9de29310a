/* serve.c - `xbnserve serve`: the daemon's life cycle.
 *
 *   1. Configuration (config.c): flags > XBNSERVE_* > file > defaults; --check-config stops
 *      here. Thread counts default to the CPUs the process may really use (cpus.c).
 *   2. SIGTERM/SIGINT/SIGPIPE are blocked before any thread of ours starts (the mask is
 *      inherited), and the main thread takes SIGTERM/SIGINT with sigwaitinfo: no global
 *      flag. Threads created before main (OpenBLAS's pool, started by its constructor) do
 *      not block them, so a handler re-sends any signal such a thread catches to the main
 *      thread (tgkill to tid == pid). A second signal during the drain is ignored.
 *   3. The HTTP daemon starts first, so /healthz answers and /readyz says 503 while models
 *      load. Each model is loaded, its preprocessing/labels overridden from the config, and
 *      its batcher started: one engine session per worker, each running a warm-up batch.
 *      Only then is the model marked ready. Any failure stops the start (exit 1).
 *   4. On SIGTERM/SIGINT: readiness turns 503 at once, new connections are refused
 *      (http_quiesce), and the main thread waits up to drain_timeout_ms for every accepted
 *      request to be answered, and up to FRESH_WAIT_MS for connections accepted before
 *      that have not sent their request yet. Past that bound, queued images are cancelled
 *      (503) and, after at most DRAIN_GRACE_MS more, the daemon stops. Exit 0.
 *
 * Engine threads: each worker's session runs its own team of threads_per_worker threads
 * (the engine keeps BLAS itself single-threaded). Automatic: usable CPUs / total workers,
 * at least 1.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "server/serve.h"
#include "server/config.h"
#include "server/cpus.h"
#include "server/http.h"
#include "server/server.h"

#define DRAIN_GRACE_MS 2000   /* after drain_timeout_ms: time for cancelled answers to go out */
#define FRESH_WAIT_MS 1000    /* how long the drain waits for connections still to send */
#define QUIESCE_SETTLE_MS 100 /* see drain() */
#define LABELS_MAX (8u << 20) /* labels file size */

extern char **environ;

/* Runs only on threads that do not block the signal: hand it to the main thread. */
static void forward_to_main(int sig)
{
    pid_t pid = getpid();
    if ((pid_t)syscall(SYS_gettid) != pid) syscall(SYS_tgkill, pid, pid, sig);
}

/* ---- batcher callbacks: one engine session per worker ---- */

static int worker_init(void *arg, int w, void **ctx)
{
    srv_model *m = arg;
    char err[256];
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

static int worker_run(void *ctx, const float *in, int n, float *out)
{
    return session_run(ctx, in, n, out);
}

static float *worker_input(void *ctx)
{
    return session_input(ctx);
}

static void worker_fini(void *ctx)
{
    session_free(ctx);
}

static void worker_stats(void *arg, int n, double compute_s, const double *waits)
{
    srv_model *m = arg;
    metrics_batch(m->met, m->idx, n, compute_s, waits);
}

/* ---- model loading ---- */

static int load_labels(srv_model *m, char *err, size_t errlen)
{
    FILE *f = fopen(m->cfg->labels, "rb");
    if (!f) {
        snprintf(err, errlen, "labels file %.200s: cannot open", m->cfg->labels);
        return -1;
    }
    char *buf = malloc(LABELS_MAX + 1);
    size_t n = buf ? fread(buf, 1, LABELS_MAX + 1, f) : 0;
    fclose(f);
    if (!buf || n > LABELS_MAX) {
        free(buf);
        snprintf(err, errlen, "labels file %.200s: unreadable or too large", m->cfg->labels);
        return -1;
    }
    buf[n] = 0;
    m->labels_blob = buf;
    m->labels_own = calloc((size_t)m->classes, sizeof(char *));
    if (!m->labels_own) return -1;
    int k = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line[strcspn(line, "\r")] = 0;
        if (k == m->classes) {
            k++;
            break;
        }
        m->labels_own[k++] = line;
    }
    if (k != m->classes) {
        snprintf(err, errlen, "labels file %.200s: %s lines than the model's %d classes",
                 m->cfg->labels, k > m->classes ? "more" : "fewer", m->classes);
        return -1;
    }
    m->info.labels = (const char *const *)m->labels_own;
    return 0;
}

static void apply_preprocess(preprocess_spec *p, const cfg_preprocess *o)
{
    if (o->has_mode) p->mode = o->mode ? RESIZE_DIRECT : RESIZE_SHORTER_CROP;
    if (o->has_resize) p->resize = o->resize;
    if (o->has_crop) p->crop = o->crop;
    if (o->has_bgr) p->bgr = o->bgr;
    if (o->has_exif) p->exif_orient = o->exif;
    for (int c = 0; c < 3; c++) {
        if (o->has_mean) p->mean[c] = o->mean[c];
        if (o->has_std) p->std[c] = o->std[c];
    }
}

static int load_model(server *s, srv_model *m, char *err, size_t errlen)
{
    long long t0 = batcher_now_ns();
    char e[400];
    model_load_opts opts = {.gemm = (engine_gemm)s->cfg.gemm}; /* config.c's names, in order */
    if (model_load(m->cfg->path, &opts, &m->m, e, sizeof e)) {
        snprintf(err, errlen, "model %s (%.200s): %.300s", m->cfg->name, m->cfg->path, e);
        return -1;
    }
    m->info = *model_get_info(m->m);
    apply_preprocess(&m->info.pre, &m->cfg->pre);
    m->S = m->info.pre.crop;
    m->classes = m->info.classes;
    m->in_elems = 3 * (size_t)m->S * (size_t)m->S;
    if (m->cfg->labels[0] && load_labels(m, e, sizeof e)) {
        snprintf(err, errlen, "model %s: %s", m->cfg->name, e);
        return -1;
    }
    batcher_cfg bc = {.max_batch = (int)m->cfg->max_batch_size,
                      .workers = (int)m->cfg->workers,
                      .max_queue = (int)m->cfg->max_queue_size,
                      .max_delay_us = m->cfg->max_queue_delay_us,
                      .in_elems = m->in_elems,
                      .out_elems = (size_t)m->classes,
                      .arg = m,
                      .init = worker_init,
                      .run = worker_run,
                      .input = worker_input,
                      .fini = worker_fini,
                      .on_batch = worker_stats};
    int st = batcher_new(&bc, &m->b);
    if (st) {
        snprintf(err, errlen, "model %s: cannot start its workers (%s)", m->cfg->name,
                 st == BATCH_ENOMEM ? "out of memory" : "session or warm-up failed, see above");
        return -1;
    }
    m->load_s = (double)(batcher_now_ns() - t0) * 1e-9;
    metrics_model_loaded(s->met, m->idx, m->load_s);
    log_msg(&s->log, LOG_INFO,
            "model %s loaded in %.2fs: %s %s classes=%d input=%dx%d gemm=%s max_batch_size=%lld "
            "workers=%lld%s",
            m->cfg->name, m->load_s, arch_name(m->info.arch), flavour_name(m->info.flavour),
            m->classes, m->S, m->S, m->info.gemm, m->cfg->max_batch_size, m->cfg->workers,
            m->info.untrained ? " UNTRAINED (generated weights: scores are meaningless)" : "");
    atomic_store_explicit(&m->ready, 1, memory_order_release);
    return 0;
}

/* ---- drain ---- */

/* Wait until no request is in flight and no connection is still fresh (accepted, no request
 * yet; those only until fresh_ns: a client may hold a connection open without sending), or
 * until until_ns. Times are CLOCK_MONOTONIC ns. 1 if no request is in flight. */
static int wait_idle(server *s, long long fresh_ns, long long until_ns)
{
    pthread_mutex_lock(&s->mu);
    for (;;) {
        long long now = batcher_now_ns();
        int fresh = atomic_load(&s->fresh_conns) > 0 && now < fresh_ns;
        if ((atomic_load(&s->inflight) == 0 && !fresh) || now >= until_ns) break;
        long long t = fresh && fresh_ns < until_ns ? fresh_ns : until_ns;
        struct timespec ts = {(time_t)(t / 1000000000LL), (long)(t % 1000000000LL)};
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    int idle = atomic_load(&s->inflight) == 0;
    pthread_mutex_unlock(&s->mu);
    return idle;
}

static void drain(server *s)
{
    long long t0 = batcher_now_ns();
    atomic_store(&s->draining, 1);
    http_quiesce(s);
    /* a pool thread may have accepted a connection just as the socket was shut; give it the
     * moment it takes to register the connection as fresh before anything counts as idle */
    nanosleep(&(struct timespec){0, QUIESCE_SETTLE_MS * 1000000L}, NULL);
    log_msg(&s->log, LOG_INFO, "draining: %ld requests in flight, waiting up to %lld ms",
            atomic_load(&s->inflight), s->cfg.drain_timeout_ms);
    long long until = t0 + s->cfg.drain_timeout_ms * 1000000LL;
    if (!wait_idle(s, t0 + FRESH_WAIT_MS * 1000000LL, until)) {
        log_msg(&s->log, LOG_WARN, "drain timeout: cancelling queued images (503)");
        for (int i = 0; i < s->nmodels; i++) batcher_cancel(s->models[i].b);
        wait_idle(s, 0, batcher_now_ns() + DRAIN_GRACE_MS * 1000000LL);
    }
    for (int i = 0; i < s->nmodels; i++) {
        pthread_mutex_lock(&s->mu); /* http.c uses a batcher only under s->mu */
        batcher *b = s->models[i].b;
        s->models[i].b = NULL;
        pthread_mutex_unlock(&s->mu);
        batcher_free(b); /* joins workers: every job is done after this */
    }
    wait_idle(s, 0, batcher_now_ns() + DRAIN_GRACE_MS * 1000000LL);
    long left = atomic_load(&s->inflight);
    http_stop(s);
    log_msg(&s->log, left ? LOG_WARN : LOG_INFO, "stopped after %.3fs (%ld requests cut off)",
            (double)(batcher_now_ns() - t0) * 1e-9, left);
}

/* ---- thread sizing ---- */

static void size_threads(server *s, int cpus)
{
    config *c = &s->cfg;
    s->http_threads = c->http_threads ? (int)c->http_threads : cpus;
    long long workers = 0;
    for (int i = 0; i < c->nmodels; i++) workers += c->models[i].workers;
    for (int i = 0; i < c->nmodels; i++)
        if (c->models[i].threads_per_worker == 0)
            c->models[i].threads_per_worker = cpus / workers > 0 ? cpus / workers : 1;
}

static void server_free(server *s)
{
    if (!s) return;
    for (int i = 0; s->models && i < s->nmodels; i++) {
        srv_model *m = &s->models[i];
        batcher_free(m->b);
        model_free(m->m);
        free(m->labels_own);
        free(m->labels_blob);
    }
    free(s->models);
    metrics_free(s->met);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int serve_main(int argc, char **argv)
{
    char err[600];
    config_opts o;
    int rc = 1;
    server *s = calloc(1, sizeof *s);
    if (!s) return 1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (config_load(argc, argv, environ, &s->cfg, &o, err, sizeof err)) {
        fprintf(stderr, "xbnserve serve: %s\n", err);
        rc = 2;
        goto out;
    }
    if (o.help) {
        config_usage(stdout);
        rc = 0;
        goto out;
    }
    s->log = (logger){(int)s->cfg.log_level, s->cfg.log_format == LOGFMT_JSON, stderr};
    int cpus = cpus_usable();
    size_threads(s, cpus);
    if (o.check_only) {
        for (int i = 0; i < s->cfg.nmodels; i++) {
            const model_cfg *m = &s->cfg.models[i];
            if (access(m->path, R_OK) || (m->labels[0] && access(m->labels, R_OK))) {
                fprintf(stderr, "xbnserve serve: models[%d] (%s): cannot read %s\n", i, m->name,
                        access(m->path, R_OK) ? m->path : m->labels);
                goto out;
            }
        }
        config_print(&s->cfg, stdout);
        fprintf(stderr, "config ok (%d models, usable CPUs %d, http_threads %d)\n", s->cfg.nmodels,
                cpus, s->http_threads);
        rc = 0;
        goto out;
    }
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    sigdelset(&sigs, SIGPIPE);
    struct sigaction sa = {0};
    sa.sa_handler = forward_to_main;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    const char *names[CFG_MAX_MODELS];
    s->nmodels = s->cfg.nmodels;
    s->models = calloc((size_t)s->nmodels, sizeof *s->models);
    for (int i = 0; i < s->nmodels; i++) names[i] = s->cfg.models[i].name;
    s->met = metrics_new(s->nmodels, names);
    if (!s->models || !s->met) {
        fprintf(stderr, "xbnserve serve: out of memory\n");
        goto out;
    }
    for (int i = 0; i < s->nmodels; i++) {
        s->models[i].idx = i;
        s->models[i].cfg = &s->cfg.models[i];
        s->models[i].met = s->met;
        s->models[i].log = &s->log;
    }
    s->img.max_bytes = (size_t)s->cfg.max_body_bytes;
    s->img.max_pixels = (long)s->cfg.max_image_pixels;
    if (http_start(s, err, sizeof err)) {
        log_msg(&s->log, LOG_ERROR, "%s", err);
        goto out;
    }
    log_msg(&s->log, LOG_INFO, "listening on %s:%d (usable CPUs %d, http_threads %d, %d models)",
            s->cfg.listen_address, s->port, cpus, s->http_threads, s->nmodels);
    for (int i = 0; i < s->nmodels; i++) {
        if (load_model(s, &s->models[i], err, sizeof err)) {
            log_msg(&s->log, LOG_ERROR, "%s", err);
            s->cfg.drain_timeout_ms = 0; /* answer nothing more: stop at once */
            drain(s);
            goto out;
        }
        struct timespec zero = {0, 0};
        if (sigtimedwait(&sigs, NULL, &zero) > 0) {
            log_msg(&s->log, LOG_INFO, "signal during start-up");
            drain(s);
            rc = 0;
            goto out;
        }
    }
    /* Loading freed big temporaries (weight transforms, packing) that malloc keeps for reuse;
     * give their pages back once instead of carrying ~5 MB for the daemon's lifetime. */
    malloc_trim(0);
    log_msg(&s->log, LOG_INFO, "ready");
    int sig;
    while ((sig = sigwaitinfo(&sigs, NULL)) < 0 && errno == EINTR) {
    }
    log_msg(&s->log, LOG_INFO, "got %s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    drain(s);
    rc = 0;
out:
    server_free(s);
    return rc;
}
