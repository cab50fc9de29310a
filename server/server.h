/* server.h - the struct the daemon hangs off, and the rules for the state its threads share.
 *
 * Ownership: serve_main (serve.c) creates the server, owns everything in it and frees it
 * after the drain; there are no mutable globals. Four kinds of thread touch it:
 *   - the main thread (serve.c): loads the models, waits for a signal, drains;
 *   - HTTP threads (http.c and the handlers it calls: routes.c, info.c, infer.c);
 *   - the decode pool's threads (decodepool.c, calling infer.c's decode stage);
 *   - each model's compute workers (batcher.c, calling worker.c and infer.c's job callbacks).
 * Models are loaded by the main thread after the HTTP daemon has started (so /healthz and
 * /readyz answer during start-up), and again on SIGHUP (reload.c). Each model name has a
 * slot; each loaded copy of a model is an instance (srv_model), published in its slot under
 * `mu` once it is ready. Requests take a reference to the current instance at admission and
 * keep it until they are freed, so a request finishes on the instance it started on even if
 * a reload replaces it meanwhile; the replaced instance is retired and freed by the main
 * thread when its last reference is gone. An instance's batcher is reached only through the
 * functions below, under `mu`: the drain takes it away under the same lock before freeing
 * it. The decode pool has its own lock; the drain stops it (later submissions are refused)
 * but it is freed only with the server, once no HTTP thread is left to submit. The other
 * state HTTP threads and the main thread share is atomic: `draining`, `inflight`,
 * `fresh_conns`, `next_id`; the main thread waits for inflight and fresh_conns to drop on
 * `mu`/`cv`. A load or unload asked over HTTP (repository.h) is never done on the HTTP
 * thread: it is queued under `mu` (server_op_submit) for the main thread, which does it
 * between signals, as it does a SIGHUP reload.
 */
#ifndef XBN_SERVER_H
#define XBN_SERVER_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "engine/engine.h"
#include "image/image.h"
#include "server/auth.h"
#include "server/batcher.h"
#include "server/config.h"
#include "server/decodepool.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/tls.h"
#include "server/versions.h"

/* One loaded instance of a model: its file, its settings, its batcher. Requests hold a
 * reference from admission until they are freed (server_acquire / server_release); a reload
 * that replaces or removes the model retires the instance, and the main thread frees it once
 * no request holds it (server_reap). Everything but `refs`, `retired`, `next` and `b` is
 * written before the instance is published and read-only afterwards. */
typedef struct srv_model {
    int idx;              /* its slot */
    const model_cfg *cfg; /* &cfgv */
    model_cfg cfgv;       /* the settings it was loaded with (threads_per_worker resolved) */
    int tpw_auto;         /* threads_per_worker was 0 (automatic) in the configuration */
    long long file_mtime_ns, file_size; /* of cfg->path when loaded */
    struct server *srv;
    metrics *met; /* the server's, for the batcher's on_batch */
    const logger *log;
    model *m;
    model_info info;     /* the model's, with the config's labels applied */
    preprocess_spec pre; /* the file's spec with the config's overrides applied */
    char **labels_own;   /* labels read from cfg->labels, or NULL */
    char *labels_blob;   /* their storage */
    int S, classes;
    size_t in_elems; /* 3*S*S */
    batcher *b;      /* set before `ready`; then used under server.mu only (below) */
    double load_s;
    atomic_int ready;       /* loaded and warmed up */
    int refs;               /* under server.mu: requests holding it */
    int retired;            /* under server.mu: no longer its slot's current instance */
    struct srv_model *next; /* under server.mu: every instance, current or retired */
} srv_model;

/* A model name the server has served since it started. The name is written once, before
 * nslots counts the slot (release), and never changes, so HTTP threads read it without a
 * lock; a request refers to its model by slot index. */
typedef struct {
    char name[CFG_NAME_MAX];
    atomic_int listed; /* in the current configuration */
    srv_model *cur;    /* under server.mu: the instance requests without a version get (the highest
                        * served version, vers[nvers-1]); NULL if none */
    srv_model *vers[VERSIONS_MAX]; /* under server.mu: each served version, ascending */
    int nvers;                     /* under server.mu */
    char last_error[SRV_ERR_MAX];  /* under server.mu: why the last load failed; "" */
    /* Unloaded through POST /v2/repository/models/{m}/unload: listed, serving nothing, and
     * its routes other than the state ones answer 404 until a load, or until a reload finds
     * its configuration entry changed (reload.h). Written under server.mu. */
    atomic_int unloaded;
    /* Main thread only: the configuration entry the slot was last brought in line with
     * (reload_model), and whether its threads_per_worker was automatic. */
    model_cfg conf;
    int conf_auto;
} srv_slot;

/* A load or unload of a model (the repository routes, repository.h) handed to the main
 * thread, which loads models one at a time, between and never during SIGHUP reloads. The
 * caller owns it (it lives in the request) and must keep it until done() is called. */
enum { SRV_OP_LOAD, SRV_OP_UNLOAD };
/* srv_op.result */
enum {
    SRV_OP_OK,        /* loaded (or kept as it was), or unloaded */
    SRV_OP_ENOMODEL,  /* no such model: not in the configuration, or not served */
    SRV_OP_EFAILED,   /* the load failed (err says why); what served keeps serving */
    SRV_OP_ESHUTDOWN, /* the daemon drains: nothing was done */
};
typedef struct srv_op {
    int kind;                        /* SRV_OP_LOAD or SRV_OP_UNLOAD */
    char name[CFG_NAME_MAX];         /* the model */
    int result;                      /* SRV_OP_*, set by the main thread before done() */
    char err[SRV_ERR_MAX];           /* with a failure: the message for the client */
    void (*done)(struct srv_op *op); /* main thread, once; the op is the caller's again */
    void *user;
    struct srv_op *next; /* under server.mu: the queue */
} srv_op;

/* The signal an HTTP thread sends the main thread (tgkill) when it queues an op: it is
 * blocked in every thread, and the main loop's sigtimedwait takes it. From outside the
 * process it only makes the main thread look at an empty queue. */
#define SRV_WAKE_SIGNAL SIGUSR1

typedef struct server {
    config cfg;
    auth auth; /* tokens, read once at start (auth.h) */
    logger log;
    metrics *met;
    srv_slot slots[CFG_MAX_MODELS];
    atomic_int nslots;
    int nmodels;    /* models at start, slots 0 to nmodels - 1 */
    srv_model *all; /* under mu: every instance (srv_model.next) */
    int http_threads;
    int decode_threads;
    /* Decodes the images of inference requests off the HTTP threads (infer.c); created
     * before the HTTP daemon starts, stopped by the drain, freed with the server. */
    decodepool *decode;
    image_limits img;
    struct MHD_Daemon *mhd;
    int listen_fd; /* bound, not yet MHD's; or after http_quiesce: closed by http_stop */
    int port;      /* bound port */
    tls_pem tls;   /* HTTPS certificate and key; empty: plain HTTP (tls.h) */
    /* The metrics listener (metrics_port >= 0), as mhd/listen_fd/port above (http.h). */
    struct MHD_Daemon *metrics_mhd;
    int metrics_fd;
    int metrics_port;
    atomic_int started; /* every model of the start-up configuration was ready */
    atomic_int draining;
    atomic_int cancel_decodes; /* set at drain_timeout_ms: decodes in flight stop (img.cancel) */
    atomic_long inflight;
    atomic_long fresh_conns; /* accepted connections that have not sent a request yet */
    atomic_ulong next_id;
    srv_op *ops, *ops_tail; /* under mu: loads and unloads waiting for the main thread */
    int ops_closed;         /* under mu: the drain has begun, no op is taken any more */
    pthread_mutex_t mu;     /* with cv: the main thread waits for inflight and refs to drop */
    pthread_cond_t cv;
} server;

/* The slot of a model in the current configuration, by name[0, n); -1 if none. */
int server_find(const server *s, const char *name, size_t n);

/* A reference to the slot's current instance, or NULL when it has none (loading, removed,
 * failed). The caller gives it back with server_release. */
srv_model *server_acquire(server *s, int slot);
void server_release(server *s, srv_model *m); /* accepts NULL */
/* The same for version v of the slot (cfg->version); v 0 is the highest served, as above. */
srv_model *server_acquire_version(server *s, int slot, long long v);
/* The slot's served versions, ascending, into out[VERSIONS_MAX]; how many. */
int server_versions(server *s, int slot, long long *out);

/* The slot's last load error into buf ("" if none). */
void server_last_error(server *s, int slot, char *buf, size_t n);

/* Main thread. The slot named name, or a new one (not listed until server_publish), whose
 * index is also its index in s->met, named there as it is created (metrics_model_add); -1 when
 * all are taken. A slot is never given up: a name removed and configured again gets its
 * slot, and so its metrics series, back. */
int server_slot(server *s, const char *name);
/* Main thread. Make m (loaded, ready; NULL to remove the model) the slot's current instance
 * and retire the one it replaces; err (may be NULL) becomes the slot's last_error. */
void server_publish(server *s, int slot, srv_model *m, int listed, const char *err);
/* Main thread. Make ms[0, n) (loaded, ready, ascending by version, n <= VERSIONS_MAX) the
 * slot's served versions, listed, and retire every instance it served that is not among
 * them; err as above. Requests hold the instances they started on until they finish. */
void server_publish_versions(server *s, int slot, srv_model **ms, int n, const char *err);
/* Main thread. Retire every version the slot serves (requests already admitted finish on
 * them) and mark it unloaded (or no longer, unloaded 0, which changes nothing else). */
void server_set_unloaded(server *s, int slot, int unloaded);
/* Is the slot unloaded? Any thread. */
int server_unloaded(const server *s, int slot);

/* HTTP threads. Queue op for the main thread and wake it (SRV_WAKE_SIGNAL). 0, or -1 when
 * the drain has begun: the op was not taken. */
int server_op_submit(server *s, srv_op *op);
/* Main thread. The oldest queued op, or NULL; *more says whether others wait behind it. */
srv_op *server_op_take(server *s, int *more);
/* Main thread, the drain: refuse later submissions, and hand back the queued ops, oldest
 * first, linked by next. */
srv_op *server_ops_close(server *s);

/* Main thread. Free every retired instance no request holds any more. */
void server_reap(server *s);
/* Main thread. Every instance, current or retired, into a malloc'd array (*n of them). */
srv_model **server_instances(server *s, int *n);
/* Free an instance that is no longer shared: its batcher (joining its workers), its model. */
void server_model_free(srv_model *m);

/* Images queued for the instance now; 0 once the drain has taken its batcher. */
long server_queue_depth(server *s, srv_model *m);

/* batcher_submit to the model's batcher, or BATCH_ESTOPPED once the drain has taken it.
 * Never blocks on compute. */
int server_submit(server *s, srv_model *m, batch_job *job);

/* Take the model's batcher away (the drain, before freeing it): later submissions get
 * BATCH_ESTOPPED instead of a freed batcher. The caller owns the result. */
batcher *server_take_batcher(server *s, srv_model *m);

#endif
