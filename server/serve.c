/* serve.c - `xbnserve serve`: the daemon's life cycle, on the main thread. Requests are
 * http.c's; this file starts the pieces, loads the models and stops everything in order.
 *
 *   1. Configuration (config.c): flags > XBNSERVE_* > file > defaults; --check-config stops
 *      here. Thread counts default to the CPUs the process may really use (cpus.c).
 *   2. SIGTERM/SIGINT/SIGHUP/SIGUSR1/SIGPIPE are blocked before any thread of ours starts
 *      (the mask is inherited), and the main thread takes SIGTERM/SIGINT/SIGHUP and SIGUSR1
 *      (SRV_WAKE_SIGNAL, an HTTP thread's wake-up) with sigtimedwait: no global flag.
 *      Threads created before main (OpenBLAS's pool, started by its constructor) do not
 *      block them, so a handler re-sends any signal such a thread catches to the main
 *      thread (tgkill to tid == pid). A second signal during the drain is ignored.
 *   3. The decode pool starts (decodepool.h), then the HTTP daemon, so /healthz answers and
 *      /readyz says 503 while models load. Each model is loaded (load_model), its
 *      preprocessing/labels overridden from the config, and its batcher started: one engine
 *      session per worker (worker.c), each running a warm-up batch. Only then is the model
 *      marked ready. Any failure stops the start (exit 1).
 *   4. On SIGHUP the main thread reloads the model set (reload.c); on SRV_WAKE_SIGNAL it
 *      does the loads and unloads HTTP threads queued (repository.h), so models are only
 *      ever loaded here, one at a time; and between signals it frees the model instances a
 *      reload or an unload retired once no request holds them.
 *   5. On SIGTERM/SIGINT: readiness turns 503 at once, new connections are refused
 *      (http_quiesce; a metrics listener keeps answering, and stops last, in http_stop),
 *      and the main thread waits up to drain_timeout_ms for every accepted request to be
 *      answered, and up to FRESH_WAIT_MS for connections accepted before that have not
 *      sent their request yet. Past that bound, decodes in progress stop (504), requests
 *      waiting for a decode thread and queued images are cancelled (503) and, after at most
 *      DRAIN_GRACE_MS more, the daemon stops. Exit 0.
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
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "server/serve.h"
#include "server/config.h"
#include "server/cpus.h"
#include "server/http.h"
#include "server/reload.h"
#include "server/server.h"
#include "server/versions.h"
#include "server/worker.h"

#define DRAIN_GRACE_MS 2000   /* after drain_timeout_ms: time for cancelled answers to go out */
#define FRESH_WAIT_MS 1000    /* how long the drain waits for connections still to send */
#define QUIESCE_SETTLE_MS 100 /* see drain() */
#define REAP_TICK_MS 100      /* how often the main thread frees retired model instances */

extern char **environ;

/* Runs only on threads that do not block the signal: hand it to the main thread. */
static void forward_to_main(int sig)
{
    pid_t pid = getpid();
    if ((pid_t)syscall(SYS_gettid) != pid) syscall(SYS_tgkill, pid, pid, sig);
}

/* ---- model loading ---- */

static int load_labels(srv_model *m, char *err, size_t errlen)
{
    FILE *f = fopen(m->cfg->labels, "rb");
    if (!f) {
        snprintf(err, errlen, "labels file %.200s: cannot open", m->cfg->labels);
        return -1;
    }
    char *buf = malloc(CFG_LABELS_MAX + 1);
    size_t n = buf ? fread(buf, 1, CFG_LABELS_MAX + 1, f) : 0;
    fclose(f);
    if (!buf || n > CFG_LABELS_MAX) {
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

static int load_model(server *s, srv_model *m, char *err, size_t errlen)
{
    long long t0 = batcher_now_ns();
    char e[SRV_ERR_MAX];
    model_load_opts opts = {.gemm = (engine_gemm)s->cfg.gemm}; /* config.c's names, in order */
    if (model_load(m->cfg->path, &opts, &m->m, e, sizeof e)) {
        snprintf(err, errlen, "model %s (%.200s): %.300s", m->cfg->name, m->cfg->path, e);
        return -1;
    }
    m->info = *model_get_info(m->m);
    /* the file's spec is refused here as model_load refuses the rest of a bad file */
    if (preprocess_from_model(m->info.preprocess_json, m->info.input_size, &m->pre, e, sizeof e)) {
        snprintf(err, errlen, "model %s (%.200s): %.300s", m->cfg->name, m->cfg->path, e);
        return -1;
    }
    preprocess_apply(&m->pre, &m->cfg->pre, m->cfg->pre_set);
    m->S = m->pre.crop;
    m->classes = m->info.classes;
    m->in_elems = 3 * (size_t)m->S * (size_t)m->S;
    if (m->cfg->labels[0] && load_labels(m, e, sizeof e)) {
        snprintf(err, errlen, "model %s: %.300s", m->cfg->name, e);
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
    char ver[24]; /* the version loaded last is the highest: versions load in ascending order */
    snprintf(ver, sizeof ver, "%lld", m->cfg->version ? m->cfg->version : 1);
    metrics_model_info(s->met, m->idx, ver, &m->info);
    log_msg(&s->log, LOG_INFO,
            "model %s loaded in %.2fs: %s %s classes=%d input=%dx%d gemm=%s max_batch_size=%lld "
            "workers=%lld%s",
            m->cfg->name, m->load_s, arch_name(m->info.arch), flavour_name(m->info.flavour),
            m->classes, m->S, m->S, m->info.gemm, m->cfg->max_batch_size, m->cfg->workers,
            m->info.untrained ? " UNTRAINED (generated weights: scores are meaningless)" : "");
    atomic_store_explicit(&m->ready, 1, memory_order_release);
    return 0;
}

/* reload_load_fn: a new instance of cfg for slot, around load_model. */
static int model_instance(server *s, int slot, const model_cfg *cfg, int tpw_auto, srv_model **out,
                          char *err, size_t errlen)
{
    srv_model *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "model %s: out of memory", cfg->name);
        return -1;
    }
    m->idx = slot;
    m->cfgv = *cfg;
    m->cfg = &m->cfgv;
    m->tpw_auto = tpw_auto;
    m->srv = s;
    m->met = s->met;
    m->log = &s->log;
    struct stat st; /* before the load: a file replaced during it is seen as changed */
    if (!stat(cfg->path, &st)) {
        m->file_size = (long long)st.st_size;
        m->file_mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    }
    if (load_model(s, m, err, errlen)) {
        server_model_free(m);
        return -1;
    }
    *out = m;
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
    reload_ops_refuse(s); /* queued loads and unloads are answered 503, later ones too */
    http_quiesce(s);
    /* a pool thread may have accepted a connection just as the socket was shut; give it the
     * moment it takes to register the connection as fresh before anything counts as idle */
    nanosleep(&(struct timespec){0, QUIESCE_SETTLE_MS * 1000000L}, NULL);
    log_msg(&s->log, LOG_INFO, "draining: %ld requests in flight, waiting up to %lld ms",
            atomic_load(&s->inflight), s->cfg.drain_timeout_ms);
    long long until = t0 + s->cfg.drain_timeout_ms * 1000000LL;
    int n;
    srv_model **all = server_instances(s, &n); /* current and retired ones */
    if (!wait_idle(s, t0 + FRESH_WAIT_MS * 1000000LL, until)) {
        log_msg(&s->log, LOG_WARN, "drain timeout: cancelling queued images (503)");
        atomic_store(&s->cancel_decodes, 1);
        decodepool_stop(s->decode); /* waiting decodes 503, running ones stop at once */
        for (int i = 0; i < n; i++) batcher_cancel(all[i]->b);
        wait_idle(s, 0, batcher_now_ns() + DRAIN_GRACE_MS * 1000000LL);
    }
    /* Whatever is still decoding arrived after the wait (a kept-alive connection): it stops
     * too. Joined here, before the batchers go, so every decoded job reached its batcher or
     * was answered. */
    atomic_store(&s->cancel_decodes, 1);
    decodepool_stop(s->decode);
    for (int i = 0; i < n; i++) /* joins workers: every job is done after this */
        batcher_free(server_take_batcher(s, all[i]));
    free(all);
    wait_idle(s, 0, batcher_now_ns() + DRAIN_GRACE_MS * 1000000LL);
    long left = atomic_load(&s->inflight);
    http_stop(s);
    log_msg(&s->log, left ? LOG_WARN : LOG_INFO, "stopped after %.3fs (%ld requests cut off)",
            (double)(batcher_now_ns() - t0) * 1e-9, left);
}

static int start_listening(server *s, int cpus, char *err, size_t errlen)
{
    if (http_start(s, err, errlen)) return -1;
    log_msg(
        &s->log, LOG_INFO,
        "listening on %s:%d (%s, usable CPUs %d, http_threads %d, decode_threads %d, %d models)",
        s->cfg.listen_address, s->port, s->tls.cert ? "https" : "http", cpus, s->http_threads,
        s->decode_threads, s->nmodels);
    if (s->metrics_mhd) /* not "listening on": that line names the main port */
        log_msg(&s->log, LOG_INFO, "metrics on %s:%d (http, GET /metrics and /healthz only)",
                s->cfg.metrics_listen_address[0] ? s->cfg.metrics_listen_address
                                                 : s->cfg.listen_address,
                s->metrics_port);
    return 0;
}

/* ---- thread sizing ---- */

static void size_threads(server *s, int cpus, int *autos)
{
    config *c = &s->cfg;
    s->http_threads = c->http_threads ? (int)c->http_threads : cpus;
    s->decode_threads = c->decode_threads ? (int)c->decode_threads : cpus;
    reload_size_models(c, cpus, autos);
}

/* ---- start-up ---- */

static server *server_new(void)
{
    server *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    return s;
}

static void server_free(server *s)
{
    if (!s) return;
    while (s->all) {
        srv_model *m = s->all;
        s->all = m->next;
        server_model_free(m);
    }
    decodepool_free(s->decode); /* stopped by the drain; no HTTP thread is left */
    metrics_free(s->met);
    auth_free(&s->auth);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* --check-config: every model and labels file readable, then the effective configuration
 * on stdout. The exit code. */
static int check_config(const server *s, int cpus)
{
    for (int i = 0; i < s->cfg.nmodels; i++) {
        const model_cfg *m = &s->cfg.models[i];
        if (access(m->path, R_OK) || (m->labels[0] && access(m->labels, R_OK))) {
            fprintf(stderr, "xbnserve serve: models[%d] (%s): cannot read %s\n", i, m->name,
                    access(m->path, R_OK) ? m->path : m->labels);
            return 1;
        }
        version_policy vp; /* a version directory: the versions the policy picks exist */
        long long v[VERSIONS_MAX];
        int nv;
        char e[SRV_ERR_MAX];
        if (versions_policy_parse(m->version_policy, &vp, e, sizeof e) ||
            versions_resolve(m->path, &vp, v, &nv, e, sizeof e)) {
            fprintf(stderr, "xbnserve serve: models[%d] (%s): %s\n", i, m->name, e);
            return 1;
        }
    }
    config_print(&s->cfg, stdout);
    fprintf(stderr, "config ok (%d models, usable CPUs %d, http_threads %d, decode_threads %d)\n",
            s->cfg.nmodels, cpus, s->http_threads, s->decode_threads);
    return 0;
}

/* Block SIGTERM, SIGINT, SIGHUP, SRV_WAKE_SIGNAL and SIGPIPE before any thread of ours
 * starts (the mask is inherited); *sigs gets the two that stop the daemon. SIGHUP and
 * SRV_WAKE_SIGNAL stay pending during start-up and are taken by the main loop once the daemon
 * is ready. */
static void block_signals(sigset_t *sigs)
{
    sigemptyset(sigs);
    sigaddset(sigs, SIGTERM);
    sigaddset(sigs, SIGINT);
    sigaddset(sigs, SIGHUP);
    sigaddset(sigs, SRV_WAKE_SIGNAL);
    sigaddset(sigs, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, sigs, NULL);
    sigdelset(sigs, SIGPIPE);
    sigdelset(sigs, SIGHUP);
    sigdelset(sigs, SRV_WAKE_SIGNAL);
    struct sigaction sa = {0};
    sa.sa_handler = forward_to_main;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SRV_WAKE_SIGNAL, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* The metrics, with room for as many models as there are slots, and one slot per
 * configured model, nothing loaded yet. 0, or -1 out of memory. */
static int models_init(server *s)
{
    if (!(s->met = metrics_new(CFG_MAX_MODELS))) return -1;
    s->nmodels = s->cfg.nmodels;
    for (int i = 0; i < s->nmodels; i++) {
        server_slot(s, s->cfg.models[i].name); /* slot i: names are unique (config_validate) */
        atomic_store(&s->slots[i].listed, 1);
    }
    return 0;
}

/* Load the models in turn while HTTP already answers the probes. 0 when every one is ready;
 * otherwise the daemon has been drained: -1 after a failure, 1 after a signal. */
static int load_models(server *s, const int *autos, const sigset_t *sigs, char *err, size_t errlen)
{
    for (int i = 0; i < s->nmodels; i++) {
        int loaded;
        if (reload_model(s, i, &s->cfg.models[i], autos[i], model_instance, &loaded, err, errlen)) {
            log_msg(&s->log, LOG_ERROR, "%s", err);
            s->cfg.drain_timeout_ms = 0; /* answer nothing more: stop at once */
            drain(s);
            return -1;
        }
        struct timespec zero = {0, 0};
        if (sigtimedwait(sigs, NULL, &zero) > 0) {
            log_msg(&s->log, LOG_INFO, "signal during start-up");
            drain(s);
            return 1;
        }
    }
    return 0;
}

/* The ready daemon's main loop: SIGHUP reloads (reload.c); SRV_WAKE_SIGNAL says loads or
 * unloads are queued (one is done a turn, and the queue is looked at on every turn all the
 * same); and every REAP_TICK_MS the instances a reload or an unload retired are freed once
 * no request holds them. Returns SIGTERM or SIGINT. */
static int wait_signal(server *s, int argc, char **argv, int cpus, const sigset_t *stop)
{
    sigset_t sigs = *stop;
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SRV_WAKE_SIGNAL);
    int more = 0;
    for (;;) {
        struct timespec tick = {0, more ? 0 : REAP_TICK_MS * 1000000L};
        int sig = sigtimedwait(&sigs, NULL, &tick);
        /* sigtimedwait takes the lowest signal number first (SIGHUP, SRV_WAKE_SIGNAL), but a
         * pending SIGTERM or SIGINT goes before another reload or load */
        struct timespec zero = {0, 0};
        int stop_sig = sig == SIGTERM || sig == SIGINT ? sig : sigtimedwait(stop, NULL, &zero);
        if (stop_sig > 0) return stop_sig;
        if (sig == SIGHUP) reload_run(s, argc, argv, cpus, model_instance);
        more = reload_op(s, argc, argv, cpus, model_instance);
        server_reap(s);
    }
}

int serve_main(int argc, char **argv)
{
    char err[SRV_ERR_MAX];
    config_opts o;
    int rc = 1;
    server *s = server_new();
    if (!s) return 1;
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
    if (auth_load(&s->auth, &s->cfg, environ, err, sizeof err)) {
        fprintf(stderr, "xbnserve serve: %s\n", err);
        rc = 2;
        goto out;
    }
    s->log = (logger){(int)s->cfg.log_level, s->cfg.log_format == LOGFMT_JSON, stderr};
    if (s->cfg.repository_api && s->auth.user && !s->auth.admin)
        log_msg(&s->log, LOG_WARN,
                "repository_api: a user token and no admin token: the repository routes answer "
                "401 until admin_token_file or XBNSERVE_ADMIN_TOKEN is set");
    int cpus = cpus_usable();
    int autos[CFG_MAX_MODELS];
    size_threads(s, cpus, autos);
    if (o.check_only) {
        rc = check_config(s, cpus);
        goto out;
    }
    sigset_t sigs;
    block_signals(&sigs);
    if (models_init(s)) {
        fprintf(stderr, "xbnserve serve: out of memory\n");
        goto out;
    }
    if (decodepool_new(s->decode_threads, (long)s->cfg.decode_queue_size, &s->decode)) {
        fprintf(stderr, "xbnserve serve: cannot start %d decode threads\n", s->decode_threads);
        goto out;
    }
    s->img.max_bytes = (size_t)s->cfg.max_body_bytes;
    s->img.max_pixels = (long)s->cfg.max_image_pixels;
    s->img.cancel = &s->cancel_decodes;
    /* The port is claimed before the models load, so a taken one fails at once. With
     * reuse_port the daemon starts listening only when ready: the kernel spreads a shared
     * port's connections over its listeners, and one still loading could not answer. */
    int late = (int)s->cfg.reuse_port;
    if (http_bind(s, err, sizeof err) || (!late && start_listening(s, cpus, err, sizeof err))) {
        log_msg(&s->log, LOG_ERROR, "%s", err);
        http_stop(s);
        goto out;
    }
    int st = load_models(s, autos, &sigs, err, sizeof err);
    if (st) {
        rc = st > 0 ? 0 : 1;
        goto out;
    }
    /* Loading freed big temporaries (weight transforms, packing) that malloc keeps for reuse;
     * give their pages back once instead of carrying ~5 MB for the daemon's lifetime. */
    malloc_trim(0);
    if (late && start_listening(s, cpus, err, sizeof err)) {
        log_msg(&s->log, LOG_ERROR, "%s", err);
        s->cfg.drain_timeout_ms = 0;
        drain(s);
        goto out;
    }
    atomic_store(&s->started, 1);
    log_msg(&s->log, LOG_INFO, "ready");
    int sig = wait_signal(s, argc, argv, cpus, &sigs);
    log_msg(&s->log, LOG_INFO, "got %s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    drain(s);
    rc = 0;
out:
    server_free(s);
    return rc;
}
