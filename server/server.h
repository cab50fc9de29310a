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
 * `mu`/`cv`.
 */
#ifndef XBN_SERVER_H
#define XBN_SERVER_H

#include <pthread.h>
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
} srv_slot;

typedef struct server {
    config cfg;
    auth auth; /* tokens, read once at start (auth.h) */
    logger log;
    metrics *met;
    srv_slot slots[CFG_MAX_MODELS];
    atomic_int nslots;
    int nmodels;    /* models at start: the metrics' series (a model added later has none) */
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
    pthread_mutex_t mu; /* with cv: the main thread waits for inflight and refs to drop */
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

/* Main thread. The slot named name, or a new one (not listed until server_publish); -1 when
 * all are taken. */
int server_slot(server *s, const char *name);
/* Main thread. Make m (loaded, ready; NULL to remove the model) the slot's current instance
 * and retire the one it replaces; err (may be NULL) becomes the slot's last_error. */
void server_publish(server *s, int slot, srv_model *m, int listed, const char *err);
/* Main thread. Make ms[0, n) (loaded, ready, ascending by version, n <= VERSIONS_MAX) the
 * slot's served versions, listed, and retire every instance it served that is not among
 * them; err as above. Requests hold the instances they started on until they finish. */
void server_publish_versions(server *s, int slot, srv_model **ms, int n, const char *err);
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
