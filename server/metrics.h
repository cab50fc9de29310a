/* metrics.h - the daemon's Prometheus metrics, rendered as text exposition format 0.0.4.
 *
 * A `metrics` owns every counter and histogram behind one mutex (updates are a few adds;
 * contention is negligible next to a forward pass). Models are referred to by index: a
 * fixed table of `capacity` model entries is allocated by metrics_new, and each index gets
 * its name once, by metrics_model_add (under the same mutex, so HTTP, decode and worker
 * threads that count or render never see a half-named entry). The server's indexes are its
 * slots (server.h): a slot is created once per model name, on the main thread, when the
 * name is first configured (at start, by a SIGHUP reload or by a repository load), and a
 * name removed and added again gets its old slot back, so its counters go on from where
 * they were: they are monotonic for the process's life. Gauges that belong to other modules
 * (ready, queue depths, in-flight) are passed to metrics_render by the caller. docs/api.md
 * lists every metric with its meaning.
 *
 *   xbnserve_requests_total{model,endpoint,code}       counter
 *   xbnserve_request_duration_seconds{model,endpoint}  histogram (arrival to response), API
 *                                                      endpoints only (metrics_is_probe)
 *   xbnserve_request_bytes_total{model,endpoint}       counter, request body bytes
 *   xbnserve_response_bytes_total{model,endpoint}      counter, response body bytes
 *   xbnserve_preprocess_seconds{model}                 histogram, per image: decode + resize
 *   xbnserve_queue_wait_seconds{model}                 histogram, per image
 *   xbnserve_compute_seconds{model}                    histogram, per engine batch
 *   xbnserve_batch_size{model}                         histogram, images per engine batch
 *   xbnserve_images_total{model}                       counter, images computed
 *   xbnserve_queue_depth{model}, xbnserve_requests_in_flight   gauges
 *   xbnserve_decode_queue_depth                        gauge, requests waiting for a decode
 *   xbnserve_model_load_seconds{model}, xbnserve_model_ready{model}  gauges
 *   xbnserve_model_info{model,version,arch,flavour,width,classes,input_size,gemm,untrained} 1
 *   xbnserve_build_info{version,gemm}                  1
 *   process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
 *   process_open_fds, process_max_fds, process_start_time_seconds: read from /proc/self at
 *   each scrape, named as the Prometheus client libraries name them.
 */
#ifndef XBN_METRICS_H
#define XBN_METRICS_H

#include <stddef.h>

#include "engine/engine.h"
#include "server/limits.h"
#include "server/sbuf.h"

#define METRICS_MAX_SERIES 1024 /* distinct (model, endpoint, code) request series */

typedef struct metrics metrics;

/* Room for `capacity` models, indexes 0 to capacity - 1, none named yet. The daemon passes
 * CFG_MAX_MODELS (server/limits.h), its bound on the model names it serves. */
metrics *metrics_new(int capacity);
void metrics_free(metrics *m); /* accepts NULL */

/* Index idx is the model `name` (copied; at most CFG_NAME_MAX - 1 bytes kept) from now on,
 * for the life of m: its per-model series are rendered from this call on. 0, or -1 when idx
 * is outside the capacity or already named: that index then has no per-model series (its
 * requests count under model="", its other updates are dropped). Any thread. */
int metrics_model_add(metrics *m, int idx, const char *name);

/* The version in xbnserve_build_info: the Makefile's XBN_VERSION (git describe). */
const char *metrics_version(void);

/* 1 for the endpoints kept out of the latency histogram: probes, /metrics and unknown routes
 * ("other"). Their latency says nothing about inference and their series would outnumber
 * the API's; they are still counted in xbnserve_requests_total. */
int metrics_is_probe(const char *endpoint);

/* model: index or -1 for requests not addressed to a model (an index never named counts as
 * -1). endpoint: a static string. */
void metrics_request(metrics *m, int model, const char *endpoint, int code, double seconds);
/* Body bytes received with a request / sent in its answer (headers not counted). */
void metrics_request_bytes(metrics *m, int model, const char *endpoint, size_t bytes);
void metrics_response_bytes(metrics *m, int model, const char *endpoint, size_t bytes);
/* One image's decode and preprocessing (to the 8-bit input pixels). */
void metrics_preprocess(metrics *m, int model, double seconds);
void metrics_batch(metrics *m, int model, int n, double compute_s, const double *waits_s);
void metrics_model_loaded(metrics *m, int model, double seconds);
/* The model's xbnserve_model_info series, and its GEMM kernels for xbnserve_build_info.
 * version: as the V2 model metadata reports it. The strings are copied. */
void metrics_model_info(metrics *m, int model, const char *version, const model_info *info);
/* The model serves nothing any more (unloaded, or removed by a reload): no
 * xbnserve_model_info series, and its kernels leave xbnserve_build_info, until the next
 * metrics_model_info. */
void metrics_model_gone(metrics *m, int model);

/* What the caller knows of a model at a scrape (server.h's slot). */
typedef struct {
    int listed;       /* in the model set: loaded, loading, failed or unloaded; 0 once removed
                       * by a reload, and then no ready, queue depth or load time series */
    int ready;        /* serves an instance */
    long queue_depth; /* images waiting for a worker */
} metrics_model_state;

/* Append the exposition text. state[0, nstate) by model index; a named index at or beyond
 * nstate is taken as not listed. decode_depth: requests waiting for a decode thread. */
void metrics_render(metrics *m, sbuf *b, const metrics_model_state *state, int nstate,
                    long in_flight, long decode_depth);

/* ---- process_* metrics, split so the parsing can be tested on fixed text ---- */
typedef struct {
    double cpu_seconds;        /* user + system */
    double start_time_seconds; /* since the Unix epoch */
    long long resident_bytes, virtual_bytes;
    long open_fds, max_fds;
} metrics_proc;

/* Parse /proc/self/stat (`self_stat`) and /proc/stat or just its btime line (`sys_stat`)
 * into the CPU, memory and start-time fields of *p. 0 on success, -1 if either is malformed. */
int metrics_proc_parse(const char *self_stat, const char *sys_stat, long clk_tck, long page_size,
                       metrics_proc *p);
/* Every field from /proc/self and getrlimit. 0 on success, -1 where /proc is unreadable. */
int metrics_proc_read(metrics_proc *p);
void metrics_proc_render(sbuf *b, const metrics_proc *p);

#endif
