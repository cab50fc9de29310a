/* server.h - the struct the daemon hangs off, and the rules for the state its threads share.
 *
 * Ownership: serve_main (serve.c) creates the server, owns everything in it and frees it
 * after the drain; there are no mutable globals. Three kinds of thread touch it:
 *   - the main thread (serve.c): loads the models, waits for a signal, drains;
 *   - HTTP threads (http.c and the handlers it calls: routes.c, info.c, infer.c);
 *   - each model's compute workers (batcher.c, calling worker.c and infer.c's job callbacks).
 * Models are loaded by the main thread after the HTTP daemon has started (so /healthz and
 * /readyz answer during start-up); a model's fields are written before its `ready` flag is
 * set (release) and read by HTTP threads only after they see it set (acquire). A model's
 * batcher is reached only through the functions below, under `mu`: the drain takes it away
 * under the same lock before freeing it. The other state HTTP threads and the main thread
 * share is atomic: `draining`, `inflight`, `fresh_conns`, `next_id`; the main thread waits
 * for inflight and fresh_conns to drop on `mu`/`cv`.
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
#include "server/log.h"
#include "server/metrics.h"

typedef struct {
    int idx;
    const model_cfg *cfg;
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
    atomic_int ready; /* loaded and warmed up */
} srv_model;

typedef struct server {
    config cfg;
    auth auth; /* tokens, read once at start (auth.h) */
    logger log;
    metrics *met;
    srv_model *models;
    int nmodels;
    int http_threads;
    image_limits img;
    struct MHD_Daemon *mhd;
    int listen_fd; /* bound, not yet MHD's; or after http_quiesce: closed by http_stop */
    int port;      /* bound port */
    atomic_int draining;
    atomic_long inflight;
    atomic_long fresh_conns; /* accepted connections that have not sent a request yet */
    atomic_ulong next_id;
    pthread_mutex_t mu; /* with cv: the main thread waits for inflight to drop */
    pthread_cond_t cv;
} server;

/* Images queued for the model now; 0 once the drain has taken its batcher. */
long server_queue_depth(server *s, srv_model *m);

/* batcher_submit to the model's batcher, or BATCH_ESTOPPED once the drain has taken it.
 * Never blocks on compute. */
int server_submit(server *s, srv_model *m, batch_job *job);

/* Take the model's batcher away (the drain, before freeing it): later submissions get
 * BATCH_ESTOPPED instead of a freed batcher. The caller owns the result. */
batcher *server_take_batcher(server *s, srv_model *m);

#endif
