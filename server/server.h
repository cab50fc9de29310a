/* server.h - the one struct the daemon hangs off, shared by serve.c (lifecycle) and
 * http.c (requests). Built in serve_main; no mutable globals anywhere.
 *
 * Ownership: serve_main owns the server and everything in it. Models are loaded by the
 * main thread after the HTTP daemon has started (so /healthz and /readyz answer during
 * start-up); a model's fields are written before its `ready` flag is set (release) and read
 * by HTTP threads only after they see it set (acquire). `draining` and `inflight` are the
 * only other state HTTP threads and the main thread share; the main thread waits for
 * inflight == 0 on `mu`/`cv`.
 */
#ifndef XBN_SERVER_H
#define XBN_SERVER_H

#include <pthread.h>
#include <stdatomic.h>

#include "server/batcher.h"
#include "server/config.h"
#include "engine/engine.h"
#include "image/image.h"
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
    batcher *b;
    double load_s;
    atomic_int ready; /* loaded and warmed up */
} srv_model;

typedef struct server {
    config cfg;
    logger log;
    metrics *met;
    srv_model *models;
    int nmodels;
    int http_threads;
    image_limits img;
    struct MHD_Daemon *mhd;
    int listen_fd; /* after http_quiesce: closed by http_stop, once the HTTP threads are gone */
    int port;      /* bound port */
    atomic_int draining;
    atomic_long inflight;
    atomic_long fresh_conns; /* accepted connections that have not sent a request yet */
    atomic_ulong next_id;
    pthread_mutex_t mu; /* with cv: the main thread waits for inflight to drop */
    pthread_cond_t cv;
} server;

#endif
