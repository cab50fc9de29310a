/* worker.h - where a model's batcher meets the engine: the callbacks of batcher_cfg.
 *
 * Each compute worker of a model's batcher owns one engine session (session_new_threads,
 * with the model's threads_per_worker threads), created on the worker's own thread by
 * worker_init and freed by worker_fini. The batcher assembles each batch straight into the
 * session's input buffer (worker_input) and calls worker_run, one session_run per batch;
 * worker_stats counts each batch in the metrics. `arg` is the srv_model (server.h), `ctx`
 * the session. serve.c's load_model wires them into the model's batcher.
 */
#ifndef XBN_WORKER_H
#define XBN_WORKER_H

int worker_init(void *arg, int w, void **ctx);
int worker_run(void *ctx, const float *in, int n, float *out);
float *worker_input(void *ctx);
void worker_fini(void *ctx);
void worker_stats(void *arg, int n, double compute_s, const double *waits);

#endif
