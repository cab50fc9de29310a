/* config.h - every setting of `xbnserve serve` and where it comes from. Defaults and ranges
 * live in server/limits.h (docs/security.md lists them too).
 *
 * Sources, highest precedence first: CLI flag (`--max-body-bytes 1048576` or
 * `--max-body-bytes=1048576`), environment (`XBNSERVE_MAX_BODY_BYTES`), the JSON config file
 * (`--config PATH` or `XBNSERVE_CONFIG`; config/xbnserve.json documents every key), built-in
 * default. Unknown keys, flags and XBNSERVE_* variables and out-of-range values are errors
 * naming the key: the daemon never starts on a setting it does not understand.
 *
 * Models: the file's "models" array; or `--model NAME=PATH` (repeatable) /
 * `XBNSERVE_MODELS=NAME=PATH,NAME=PATH`, which replace the list of the lower source.
 * Per-model keys given as plain flags / env (`--max-batch-size 8`, XBNSERVE_MAX_BATCH_SIZE)
 * apply to every model; `--model-set NAME.KEY=VALUE` sets one model's key. The list is
 * settled first, then the settings are applied by precedence, so one rule holds whichever
 * source named the models: a per-model variable or flag reaches every model of the list.
 * A model's preprocessing starts from its model file's spec; each key is overridden by the
 * file's "preprocess", then XBNSERVE_PREPROCESS, then --preprocess / --model-set
 * NAME.preprocess=... (flag > env > config file > model file).
 *
 * config_load is the only function that reads files or the environment; config_parse_json
 * and config_apply are pure functions over their inputs (fuzz them directly).
 */
#ifndef XBN_CONFIG_H
#define XBN_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "image/preprocess.h"
#include "server/limits.h"
#include "server/versions.h"

enum { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
enum { LOGFMT_TEXT, LOGFMT_JSON };

typedef struct {
    char name[CFG_NAME_MAX];
    char path[CFG_PATH_MAX];      /* model file (.safetensors), relative to the working dir */
    char labels[CFG_PATH_MAX];    /* optional labels file, one per line, overrides the model's */
    preprocess_spec pre;          /* overrides of the model file's spec: the fields in pre_set */
    unsigned pre_set;             /* PRE_* bits (image/preprocess.h) */
    long long max_batch_size;     /* images per engine call */
    long long max_queue_delay_us; /* longest wait for a batch to fill */
    long long max_queue_size;     /* images waiting; more is 503 */
    long long request_timeout_ms; /* deadline from arrival; expired before compute = 504 */
    long long workers;            /* compute threads, each with its own session */
    long long threads_per_worker; /* engine team size per worker; 0 = auto (see serve.c) */
    char version_policy[VERSIONS_TEXT_MAX]; /* as text (server/versions.h); "" = latest:1 */
    long long version; /* not a setting: the version a loaded copy serves (reload.c) */
} model_cfg;

typedef struct {
    char listen_address[64];
    long long port;
    long long reuse_port;           /* SO_REUSEPORT: share the port with other daemons */
    long long http_threads;         /* 0 = auto: CPUs the process may use */
    long long decode_threads;       /* the decode pool's threads; 0 = auto, as above */
    long long decode_queue_size;    /* requests waiting for a decode thread; more is 503 */
    long long max_connections;      /* concurrent connections; more are refused */
    long long connection_timeout_s; /* idle connection timeout */
    long long max_body_bytes;       /* request body; more is 413 before buffering */
    long long max_image_pixels;     /* width*height of one image, checked before decoding */
    long long max_images_per_request;
    long long max_header_bytes; /* request line + headers as sent; more is 431 */
    long long max_url_bytes;    /* request target as sent, query included; more is 414 */
    long long drain_timeout_ms; /* SIGTERM: longest wait for in-flight requests */
    long long log_level;        /* LOG_* */
    long long log_format;       /* LOGFMT_* */
    long long metrics;          /* serve /metrics */

    long long auth_exempt_probes;        /* probes need no token (server/auth.h) */
    long long auth_exempt_metrics;       /* /metrics needs no token */
    char auth_token_file[CFG_PATH_MAX];  /* bearer token; else XBNSERVE_AUTH_TOKEN */
    char admin_token_file[CFG_PATH_MAX]; /* admin token; else XBNSERVE_ADMIN_TOKEN */
    long long ui;                        /* serve the try-it page at / (server/page.c) */
    long long repository_api;            /* the /v2/repository routes (server/repository.h) */
    /* Origins allowed cross-origin calls, exact, comma-separated; "": no CORS (cors.c). */
    char cors_allow_origins[CFG_LIST_MAX];
    long long gemm;                   /* engine_gemm (engine.h): 0 auto, 1 avx512, 2 avx2, 3 blas */
    char tls_cert_file[CFG_PATH_MAX]; /* PEM certificate chain; with tls_key_file: HTTPS */
    char tls_key_file[CFG_PATH_MAX];  /* PEM private key (server/tls.h) */
    char metrics_listen_address[64];  /* "": listen_address */
    long long metrics_port;           /* -1: /metrics on the main listener (http.h) */
    model_cfg models[CFG_MAX_MODELS];
    int nmodels;
} config;

/* Flags that are actions, not settings. */
typedef struct {
    char config_path[CFG_PATH_MAX];
    int check_only; /* --check-config */
    int help;       /* --help */
} config_opts;

void config_defaults(config *c);
void model_cfg_defaults(model_cfg *m);

/* Parse a JSON config file's bytes into c (on top of what c holds). Returns 0, or -1 with
 * the offending key in err. */
int config_parse_json(const char *bytes, size_t len, config *c, char *err, size_t errlen);

/* Set `key` (file spelling, e.g. "max_body_bytes") to the text `value`: a server key, or a
 * per-model key applied to every model (model < 0) or to models[model]. Returns 0 or -1. */
int config_set(config *c, int model, const char *key, const char *value, char *err, size_t errlen);

/* Is name[0, n) a model name: 1-63 bytes of [A-Za-z0-9._-]? */
int config_name_ok(const char *name, size_t n);

/* Check cross-field rules (at least one model, unique valid names, ...). 0 or -1. */
int config_validate(const config *c, char *err, size_t errlen);

/* Defaults, then file, then envp (NULL-terminated "K=V" strings), then argv (the words after
 * `serve`). Errors name the source and the key. Returns 0, or -1. */
int config_load(int argc, char **argv, char **envp, config *c, config_opts *o, char *err,
                size_t errlen);

/* Print every flag, its env variable and its default. */
void config_usage(FILE *f);

/* Write the effective configuration as JSON (for --check-config and the startup log). */
void config_print(const config *c, FILE *f);

#endif
