/* config.c - see config.h.
 *
 * Two tables (server keys, per-model keys) describe every setting once: its file key, type,
 * field offset, range and help. The file parser, the env reader, the CLI parser, --help and
 * --check-config all walk these tables, so a new setting is one table line.
 */
#include "server/config.h"

#include <cJSON.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/num.h"

/* A setting's key, or a flag's name, with its NUL: the longest key is 22 bytes, and a longer
 * flag is unknown anyway. */
#define KEY_MAX 96

/* K_LIST: a K_STR holding comma-separated items; a JSON array of strings in the file. */
typedef enum { K_INT, K_STR, K_BOOL, K_ENUM, K_LIST } ktype;

typedef struct {
    const char *key;
    ktype type;
    size_t off, size; /* size: K_STR capacity */
    long long min, max;
    const char *const *names; /* K_ENUM */
    const char *help;
} setting;

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const log_formats[] = {"text", "json", NULL};
static const char *const gemm_names[] = {"auto", "avx512", "avx2", "blas", NULL}; /* engine_gemm */

#define S_INT(k, lo, hi, h)                                                                        \
    {                                                                                              \
#k, K_INT, offsetof(config, k), 0, lo, hi, NULL, h                                         \
    }
#define M_INT(k, lo, hi, h)                                                                        \
    {                                                                                              \
#k, K_INT, offsetof(model_cfg, k), 0, lo, hi, NULL, h                                      \
    }

static const setting server_keys[] = {
    {"listen_address", K_STR, offsetof(config, listen_address), sizeof((config *)0)->listen_address,
     0, 0, NULL, "IPv4 address to listen on"},
    S_INT(port, CFG_PORT_MIN, CFG_PORT_MAX, "TCP port (0: any free port, printed in the log)"),
    {"reuse_port", K_BOOL, offsetof(config, reuse_port), 0, 0, 1, NULL,
     "share the port with daemons that set it too (replacement; docs/deploy.md)"},
    S_INT(http_threads, CFG_HTTP_THREADS_MIN, CFG_HTTP_THREADS_MAX,
          "HTTP threads (0: usable CPUs)"),
    S_INT(decode_threads, CFG_DECODE_THREADS_MIN, CFG_DECODE_THREADS_MAX,
          "image decode threads (0: usable CPUs)"),
    S_INT(decode_queue_size, CFG_DECODE_QUEUE_SIZE_MIN, CFG_DECODE_QUEUE_SIZE_MAX,
          "requests waiting for a decode thread (503 above)"),
    S_INT(max_connections, CFG_MAX_CONNECTIONS_MIN, CFG_MAX_CONNECTIONS_MAX,
          "concurrent connections"),
    S_INT(connection_timeout_s, CFG_CONNECTION_TIMEOUT_S_MIN, CFG_CONNECTION_TIMEOUT_S_MAX,
          "idle connection timeout, seconds"),
    S_INT(max_body_bytes, CFG_MAX_BODY_BYTES_MIN, CFG_MAX_BODY_BYTES_MAX,
          "request body limit (413 above)"),
    S_INT(max_image_pixels, CFG_MAX_IMAGE_PIXELS_MIN, CFG_MAX_IMAGE_PIXELS_MAX,
          "width*height limit of one image (413 above)"),
    S_INT(max_images_per_request, CFG_MAX_IMAGES_PER_REQUEST_MIN, CFG_MAX_IMAGES_PER_REQUEST_MAX,
          "images in one request (413 above)"),
    S_INT(max_header_bytes, CFG_MAX_HEADER_BYTES_MIN, CFG_MAX_HEADER_BYTES_MAX,
          "request line + headers as sent, line ends included (431 above)"),
    S_INT(max_url_bytes, CFG_MAX_URL_BYTES_MIN, CFG_MAX_URL_BYTES_MAX,
          "URL incl. query as sent, %XX = 3 bytes (414 above)"),
    S_INT(drain_timeout_ms, CFG_DRAIN_TIMEOUT_MS_MIN, CFG_DRAIN_TIMEOUT_MS_MAX,
          "SIGTERM: longest wait for in-flight requests"),
    {"log_level", K_ENUM, offsetof(config, log_level), 0, 0, 0, log_levels,
     "error|warn|info|debug (info logs one line per request)"},
    {"log_format", K_ENUM, offsetof(config, log_format), 0, 0, 0, log_formats, "text|json"},
    {"metrics", K_BOOL, offsetof(config, metrics), 0, 0, 1, NULL, "serve GET /metrics"},
    {"auth_token_file", K_STR, offsetof(config, auth_token_file), CFG_PATH_MAX, 0, 0, NULL,
     "bearer token file (or env XBNSERVE_AUTH_TOKEN; never a flag)"},
    {"admin_token_file", K_STR, offsetof(config, admin_token_file), CFG_PATH_MAX, 0, 0, NULL,
     "admin bearer token file (or env XBNSERVE_ADMIN_TOKEN): the admin routes' only token"},
    {"auth_exempt_probes", K_BOOL, offsetof(config, auth_exempt_probes), 0, 0, 1, NULL,
     "health probes need no token"},
    {"auth_exempt_metrics", K_BOOL, offsetof(config, auth_exempt_metrics), 0, 0, 1, NULL,
     "/metrics needs no token"},
    {"ui", K_BOOL, offsetof(config, ui), 0, 0, 1, NULL, "serve the try-it page at GET /"},
    {"repository_api", K_BOOL, offsetof(config, repository_api), 0, 0, 1, NULL,
     "serve the admin routes /v2/repository/index, .../models/M/load|unload (docs/versions.md); "
     "once a token is set, only the admin token opens them"},
    {"cors_allow_origins", K_LIST, offsetof(config, cors_allow_origins),
     sizeof((config *)0)->cors_allow_origins, 0, 0, NULL,
     "origins allowed cross-origin calls, exact, comma-separated (empty: no CORS)"},
    {"gemm", K_ENUM, offsetof(config, gemm), 0, 0, 0, gemm_names,
     "auto|avx512|avx2|blas: the engine's kernels (auto: the CPU's best)"},
    {"tls_cert_file", K_STR, offsetof(config, tls_cert_file), CFG_PATH_MAX, 0, 0, NULL,
     "PEM certificate (chain) for HTTPS; needs tls_key_file"},
    {"tls_key_file", K_STR, offsetof(config, tls_key_file), CFG_PATH_MAX, 0, 0, NULL,
     "PEM private key for HTTPS; needs tls_cert_file"},
    {"metrics_listen_address", K_STR, offsetof(config, metrics_listen_address),
     sizeof((config *)0)->metrics_listen_address, 0, 0, NULL,
     "IPv4 address of the metrics listener (empty: listen_address)"},
    S_INT(metrics_port, CFG_METRICS_PORT_MIN, CFG_PORT_MAX,
          "serve /metrics only on this port (-1: on the main port)"),
};

static const setting model_keys[] = {
    {"name", K_STR, offsetof(model_cfg, name), CFG_NAME_MAX, 0, 0, NULL,
     "model name in URLs ([A-Za-z0-9._-])"},
    {"path", K_STR, offsetof(model_cfg, path), CFG_PATH_MAX, 0, 0, NULL, "model file"},
    {"labels", K_STR, offsetof(model_cfg, labels), CFG_PATH_MAX, 0, 0, NULL,
     "labels file overriding the model's, one per line"},
    M_INT(max_batch_size, CFG_MAX_BATCH_SIZE_MIN, CFG_MAX_BATCH_SIZE_MAX, "images per engine call"),
    M_INT(max_queue_delay_us, CFG_MAX_QUEUE_DELAY_US_MIN, CFG_MAX_QUEUE_DELAY_US_MAX,
          "longest wait for a batch to fill, microseconds"),
    M_INT(max_queue_size, CFG_MAX_QUEUE_SIZE_MIN, CFG_MAX_QUEUE_SIZE_MAX,
          "images waiting per model (503 above)"),
    M_INT(request_timeout_ms, CFG_REQUEST_TIMEOUT_MS_MIN, CFG_REQUEST_TIMEOUT_MS_MAX,
          "deadline; not computed by then = 504"),
    M_INT(workers, CFG_WORKERS_MIN, CFG_WORKERS_MAX, "compute threads per model"),
    M_INT(threads_per_worker, CFG_THREADS_PER_WORKER_MIN, CFG_THREADS_PER_WORKER_MAX,
          "engine threads per worker (0: usable CPUs / workers)"),
    {"version_policy", K_STR, offsetof(model_cfg, version_policy), VERSIONS_TEXT_MAX, 0, 0, NULL,
     "versions served from a version directory: latest:N|specific:1,3|all (docs/versions.md)"},
};

#define NSERVER (sizeof server_keys / sizeof server_keys[0])
#define NMODEL (sizeof model_keys / sizeof model_keys[0])

void model_cfg_defaults(model_cfg *m)
{
    memset(m, 0, sizeof *m);
    m->max_batch_size = CFG_MAX_BATCH_SIZE_DEFAULT;
    m->max_queue_delay_us = CFG_MAX_QUEUE_DELAY_US_DEFAULT;
    m->max_queue_size = CFG_MAX_QUEUE_SIZE_DEFAULT;
    m->request_timeout_ms = CFG_REQUEST_TIMEOUT_MS_DEFAULT;
    m->workers = CFG_WORKERS_DEFAULT;
    m->threads_per_worker = CFG_THREADS_PER_WORKER_DEFAULT;
}

void config_defaults(config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen_address, sizeof c->listen_address, "127.0.0.1");
    c->port = CFG_PORT_DEFAULT;
    c->http_threads = CFG_HTTP_THREADS_DEFAULT;
    c->decode_threads = CFG_DECODE_THREADS_DEFAULT;
    c->decode_queue_size = CFG_DECODE_QUEUE_SIZE_DEFAULT;
    c->max_connections = CFG_MAX_CONNECTIONS_DEFAULT;
    c->connection_timeout_s = CFG_CONNECTION_TIMEOUT_S_DEFAULT;
    c->max_body_bytes = CFG_MAX_BODY_BYTES_DEFAULT;
    c->max_image_pixels = CFG_MAX_IMAGE_PIXELS_DEFAULT;
    c->max_images_per_request = CFG_MAX_IMAGES_PER_REQUEST_DEFAULT;
    c->max_header_bytes = CFG_MAX_HEADER_BYTES_DEFAULT;
    c->max_url_bytes = CFG_MAX_URL_BYTES_DEFAULT;
    c->drain_timeout_ms = CFG_DRAIN_TIMEOUT_MS_DEFAULT;
    c->log_level = LOG_INFO;
    c->log_format = LOGFMT_TEXT;
    c->metrics = 1;
    c->auth_exempt_probes = 1;
    c->auth_exempt_metrics = 1;
    c->ui = 1;
    c->metrics_port = CFG_METRICS_PORT_OFF;
}

static const setting *find(const setting *t, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(t[i].key, key)) return &t[i];
    return NULL;
}

static void range_err(const setting *s, const char *where, const char *got, char *err,
                      size_t errlen)
{
    if (s->type == K_INT)
        snprintf(err, errlen, "%s: expected an integer in [%lld, %lld], got '%.40s'", where, s->min,
                 s->max, got);
    else if (s->type == K_BOOL)
        snprintf(err, errlen, "%s: expected true or false, got '%.40s'", where, got);
    else if (s->type == K_ENUM) {
        char list[128] = "";
        for (int i = 0; s->names[i]; i++) {
            if (i) strncat(list, "|", sizeof list - strlen(list) - 1);
            strncat(list, s->names[i], sizeof list - strlen(list) - 1);
        }
        snprintf(err, errlen, "%s: expected one of %s, got '%.40s'", where, list, got);
    } else
        snprintf(err, errlen, "%s: expected a string of at most %zu bytes", where, s->size - 1);
}

/* A K_LIST's text: empty, or items without blanks or empty items between the commas. */
static int list_ok(const char *v)
{
    if (!*v) return 1;
    for (const char *q = v; *q; q++)
        if (isspace((unsigned char)*q) || (*q == ',' && (q == v || !q[1] || q[1] == ','))) return 0;
    return 1;
}

/* Set one field from text. `where` names the source for the message. */
static int set_text(const setting *s, void *base, const char *v, const char *where, char *err,
                    size_t errlen)
{
    char *p = (char *)base + s->off;
    if (s->type == K_STR || s->type == K_LIST) {
        size_t n = strlen(v);
        if (n >= s->size || (s->type == K_LIST && !list_ok(v))) goto bad;
        memcpy(p, v, n + 1);
        return 0;
    }
    long long x;
    if (s->type == K_INT) {
        if (num_parse_ll(v, s->min, s->max, &x)) goto bad;
    } else if (s->type == K_BOOL) {
        if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes"))
            x = 1;
        else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no"))
            x = 0;
        else
            goto bad;
    } else {
        for (x = 0; s->names[x] && strcmp(s->names[x], v); x++) {
        }
        if (!s->names[x]) goto bad;
    }
    memcpy(p, &x, sizeof x);
    return 0;
bad:
    range_err(s, where, v, err, errlen);
    return -1;
}

/* A K_LIST from a JSON array of strings: joined with commas, then checked as text. */
static int set_json_list(const setting *s, void *base, const cJSON *v, const char *where, char *err,
                         size_t errlen)
{
    char buf[CFG_LIST_MAX] = "";
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        const char *item = cJSON_GetStringValue(it);
        size_t k = item ? strlen(item) : 0;
        if (!k || strchr(item, ',') || n + k + 2 > sizeof buf) {
            range_err(s, where, item ? item : "(not a JSON string)", err, errlen);
            return -1;
        }
        if (n) buf[n++] = ',';
        memcpy(buf + n, item, k + 1);
        n += k;
    }
    return set_text(s, base, buf, where, err, errlen);
}

/* Set one field from a JSON value. */
static int set_json(const setting *s, void *base, const cJSON *v, const char *where, char *err,
                    size_t errlen)
{
    char tmp[32];
    if (s->type == K_INT) {
        /* range first: casting a double outside long long's range is undefined */
        if (!cJSON_IsNumber(v) || !(fabs(v->valuedouble) < 9e18) ||
            v->valuedouble != (double)(long long)v->valuedouble) {
            snprintf(err, errlen, "%s: expected an integer in [%lld, %lld]", where, s->min, s->max);
            return -1;
        }
        snprintf(tmp, sizeof tmp, "%lld", (long long)v->valuedouble);
        return set_text(s, base, tmp, where, err, errlen);
    }
    if (s->type == K_BOOL) {
        if (!cJSON_IsBool(v)) {
            range_err(s, where, "(not a JSON boolean)", err, errlen);
            return -1;
        }
        return set_text(s, base, cJSON_IsTrue(v) ? "true" : "false", where, err, errlen);
    }
    if (s->type == K_LIST && cJSON_IsArray(v)) return set_json_list(s, base, v, where, err, errlen);
    if (!cJSON_IsString(v)) {
        range_err(s, where, "(not a JSON string)", err, errlen);
        return -1;
    }
    return set_text(s, base, v->valuestring, where, err, errlen);
}

/* TF Serving's object form of version_policy ({"latest": {"num_versions": N}} too) into
 * the text form versions.h reads; checked by config_validate. */
static int policy_json(const cJSON *o, model_cfg *m, const char *where, char *err, size_t errlen)
{
    char buf[VERSIONS_TEXT_MAX] = "";
    const cJSON *v = o->child;
    if (!v || v->next) goto bad;
    if (!strcmp(v->string, "all") && cJSON_IsTrue(v)) {
        snprintf(buf, sizeof buf, "all");
    } else if (!strcmp(v->string, "latest")) {
        const cJSON *x = cJSON_IsObject(v) ? cJSON_GetObjectItem(v, "num_versions") : v;
        if (!cJSON_IsNumber(x) || x->valuedouble != (double)(int)x->valuedouble) goto bad;
        snprintf(buf, sizeof buf, "latest:%d", (int)x->valuedouble);
    } else if (!strcmp(v->string, "specific")) {
        const cJSON *x = cJSON_IsObject(v) ? cJSON_GetObjectItem(v, "versions") : v;
        const cJSON *it;
        size_t n = (size_t)snprintf(buf, sizeof buf, "specific:");
        if (!cJSON_IsArray(x) || !cJSON_GetArraySize(x)) goto bad;
        cJSON_ArrayForEach(it, x)
        {
            if (!cJSON_IsNumber(it) || it->valuedouble < 1 || it->valuedouble > 1e12 ||
                it->valuedouble != (double)(long long)it->valuedouble)
                goto bad;
            int w = snprintf(buf + n, sizeof buf - n, "%s%lld", it != x->child ? "," : "",
                             (long long)it->valuedouble);
            if (w < 0 || (size_t)w >= sizeof buf - n) goto bad;
            n += (size_t)w;
        }
    } else
        goto bad;
    memcpy(m->version_policy, buf, sizeof buf);
    return 0;
bad:
    snprintf(err, errlen,
             "%s: expected {\"latest\": N}, {\"specific\": [v, ...]} or {\"all\": true}", where);
    return -1;
}

static int parse_model(const cJSON *o, model_cfg *m, int idx, char *err, size_t errlen)
{
    char where[96];
    if (!cJSON_IsObject(o)) {
        snprintf(err, errlen, "models[%d]: expected an object", idx);
        return -1;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        snprintf(where, sizeof where, "models[%d].%.40s", idx, it->string);
        if (!strcmp(it->string, "preprocess")) {
            if (preprocess_parse(it, &m->pre, &m->pre_set, where, err, errlen)) return -1;
            continue;
        }
        if (!strcmp(it->string, "version_policy") && cJSON_IsObject(it)) {
            if (policy_json(it, m, where, err, errlen)) return -1;
            continue;
        }
        const setting *s = find(model_keys, NMODEL, it->string);
        if (!s) {
            snprintf(err, errlen, "%s: unknown key", where);
            return -1;
        }
        if (set_json(s, m, it, where, err, errlen)) return -1;
    }
    return 0;
}

int config_parse_json(const char *bytes, size_t len, config *c, char *err, size_t errlen)
{
    int st = -1;
    cJSON *root = cJSON_ParseWithLength(bytes, len);
    if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "not a valid JSON object");
        goto out;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, root)
    {
        if (!strcmp(it->string, "models")) {
            if (!cJSON_IsArray(it)) {
                snprintf(err, errlen, "models: expected an array");
                goto out;
            }
            int n = cJSON_GetArraySize(it);
            if (n > CFG_MAX_MODELS) {
                snprintf(err, errlen, "models: at most %d models", CFG_MAX_MODELS);
                goto out;
            }
            c->nmodels = 0;
            const cJSON *m;
            cJSON_ArrayForEach(m, it)
            {
                model_cfg_defaults(&c->models[c->nmodels]);
                if (parse_model(m, &c->models[c->nmodels], c->nmodels, err, errlen)) goto out;
                c->nmodels++;
            }
            continue;
        }
        if (!strcmp(it->string, "_comment") || !strncmp(it->string, "//", 2)) continue;
        const setting *s = find(server_keys, NSERVER, it->string);
        if (!s) {
            snprintf(err, errlen, "%.60s: unknown key", it->string);
            goto out;
        }
        if (set_json(s, c, it, it->string, err, errlen)) goto out;
    }
    st = 0;
out:
    cJSON_Delete(root);
    return st;
}

int config_set(config *c, int model, const char *key, const char *value, char *err, size_t errlen)
{
    const setting *s = find(server_keys, NSERVER, key);
    if (s) {
        if (model >= 0) {
            snprintf(err, errlen, "%s: a server key, not a model key", key);
            return -1;
        }
        return set_text(s, c, value, key, err, errlen);
    }
    int lo = model < 0 ? 0 : model, hi = model < 0 ? c->nmodels : model + 1;
    if (!strcmp(key, "preprocess")) { /* parsed once, even for no model, then applied */
        preprocess_spec p = {0};
        unsigned set = 0;
        if (preprocess_parse_text(value, strlen(value), &p, &set, key, err, errlen)) return -1;
        for (int i = lo; i < hi; i++) {
            preprocess_apply(&c->models[i].pre, &p, set);
            c->models[i].pre_set |= set;
        }
        return 0;
    }
    s = find(model_keys, NMODEL, key);
    if (!s || (model < 0 && (!strcmp(key, "name") || !strcmp(key, "path")))) {
        snprintf(err, errlen, "%.60s: unknown key", key);
        return -1;
    }
    for (int i = lo; i < hi; i++)
        if (set_text(s, &c->models[i], value, key, err, errlen)) return -1;
    return 0;
}

int config_name_ok(const char *s, size_t n)
{
    if (!n || n >= CFG_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-') return 0;
    return 1;
}

int config_validate(const config *c, char *err, size_t errlen)
{
    /* The same test listener_bind makes, so --check-config refuses what serve would. */
    struct in_addr a;
    if (inet_pton(AF_INET, c->listen_address, &a) != 1) {
        snprintf(err, errlen, "listen_address: '%s' is not an IPv4 address", c->listen_address);
        return -1;
    }
    if (c->nmodels == 0) {
        snprintf(err, errlen,
                 "models: no model configured (config file \"models\", --model "
                 "NAME=PATH or XBNSERVE_MODELS)");
        return -1;
    }
    if (!c->tls_cert_file[0] != !c->tls_key_file[0]) {
        snprintf(err, errlen, "tls_cert_file and tls_key_file: set both for HTTPS, or neither");
        return -1;
    }
    for (int i = 0; i < c->nmodels; i++) {
        const model_cfg *m = &c->models[i];
        if (!config_name_ok(m->name, strlen(m->name))) {
            snprintf(err, errlen, "models[%d].name: '%s' must be non-empty [A-Za-z0-9._-]", i,
                     m->name);
            return -1;
        }
        if (!m->path[0]) {
            snprintf(err, errlen, "models[%d].path: missing", i);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(c->models[j].name, m->name)) {
                snprintf(err, errlen, "models[%d].name: '%s' used twice", i, m->name);
                return -1;
            }
        if (m->max_queue_size < m->max_batch_size) {
            snprintf(err, errlen, "models[%d].max_queue_size: must be >= max_batch_size", i);
            return -1;
        }
        version_policy vp;
        char e[200];
        if (versions_policy_parse(m->version_policy, &vp, e, sizeof e)) {
            snprintf(err, errlen, "models[%d].%s", i, e);
            return -1;
        }
    }
    return 0;
}

/* "NAME=PATH" into a fresh model entry. */
static int add_model(config *c, const char *spec, const char *where, char *err, size_t errlen)
{
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1] || (size_t)(eq - spec) >= CFG_NAME_MAX ||
        strlen(eq + 1) >= CFG_PATH_MAX) {
        snprintf(err, errlen, "%s: expected NAME=PATH, got '%.60s'", where, spec);
        return -1;
    }
    if (c->nmodels == CFG_MAX_MODELS) {
        snprintf(err, errlen, "%s: at most %d models", where, CFG_MAX_MODELS);
        return -1;
    }
    model_cfg *m = &c->models[c->nmodels++];
    model_cfg_defaults(m);
    memcpy(m->name, spec, (size_t)(eq - spec));
    memcpy(m->path, eq + 1, strlen(eq + 1) + 1); /* length checked above */
    return 0;
}

static int read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "config file %s: cannot open", path);
        return -1;
    }
    char *buf = malloc(CFG_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, CFG_FILE_MAX + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad || n > CFG_FILE_MAX) {
        free(buf);
        snprintf(err, errlen, "config file %s: unreadable or larger than %d bytes", path,
                 CFG_FILE_MAX);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* "--max-body-bytes" -> "max_body_bytes" */
static void flag_to_key(const char *flag, char *key, size_t n)
{
    size_t i = 0;
    for (; flag[i] && i + 1 < n; i++) key[i] = flag[i] == '-' ? '_' : flag[i];
    key[i] = 0;
}

static void key_to_env(const char *key, char *env, size_t n)
{
    size_t i = snprintf(env, n, "XBNSERVE_");
    for (size_t j = 0; key[j] && i + 1 < n; j++, i++) env[i] = (char)toupper(key[j]);
    env[i] = 0;
}

static const char *env_get(char **envp, const char *name)
{
    size_t n = strlen(name);
    for (char **e = envp; e && *e; e++)
        if (!strncmp(*e, name, n) && (*e)[n] == '=') return *e + n + 1;
    return NULL;
}

/* One flag of argv, kept until the file and the environment are applied. */
typedef struct {
    char key[KEY_MAX]; /* the setting's key ("max_body_bytes") */
    const char *value;
    enum { FLAG_SETTING, FLAG_MODEL, FLAG_MODEL_SET } kind;
} flag_pair;

/* 1. Read argv's flags into pairs[0..*np) (room for argc); the actions (--help,
 * --check-config, --config) go into *o. 0, or -1 with a message. */
static int read_flags(int argc, char **argv, config_opts *o, flag_pair *pairs, int *np, char *err,
                      size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            o->help = 1;
            continue;
        }
        if (!strcmp(a, "--check-config")) {
            o->check_only = 1;
            continue;
        }
        if (strncmp(a, "--", 2) || !a[2]) {
            snprintf(err, errlen, "unexpected argument '%.60s'", a);
            return -1;
        }
        const char *eq = strchr(a, '=');
        char flag[KEY_MAX];
        size_t kn = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (kn >= sizeof flag) kn = sizeof flag - 1;
        memcpy(flag, a + 2, kn);
        flag[kn] = 0;
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            snprintf(err, errlen, "flag --%s: missing value", flag);
            return -1;
        }
        flag_pair *p = &pairs[*np];
        flag_to_key(flag, p->key, sizeof p->key);
        if (!strcmp(p->key, "config")) {
            if (strlen(val) >= sizeof o->config_path) {
                snprintf(err, errlen, "flag --config: path too long");
                return -1;
            }
            snprintf(o->config_path, sizeof o->config_path, "%s", val);
            continue;
        }
        p->kind = !strcmp(p->key, "model")       ? FLAG_MODEL
                  : !strcmp(p->key, "model_set") ? FLAG_MODEL_SET
                                                 : FLAG_SETTING;
        if (p->kind == FLAG_SETTING && !find(server_keys, NSERVER, p->key) &&
            (!find(model_keys, NMODEL, p->key) || !strcmp(p->key, "name") ||
             !strcmp(p->key, "path")) &&
            strcmp(p->key, "preprocess")) {
            snprintf(err, errlen, "flag --%s: unknown flag (see serve --help)", flag);
            return -1;
        }
        p->value = val;
        (*np)++;
    }
    return 0;
}

/* 2. The file: --config, else XBNSERVE_CONFIG, else none. */
static int apply_file(config *c, config_opts *o, char **envp, char *err, size_t errlen)
{
    char *file = NULL, msg[SRV_ERR_MAX];
    size_t len;
    const char *cp = o->config_path[0] ? o->config_path : env_get(envp, "XBNSERVE_CONFIG");
    int st = -1;
    if (!cp || !*cp) return 0;
    if (!o->config_path[0]) snprintf(o->config_path, sizeof o->config_path, "%s", cp);
    if (read_file(cp, &file, &len, err, errlen)) return -1;
    if (config_parse_json(file, len, c, msg, sizeof msg)) {
        snprintf(err, errlen, "config file %s: %s", cp, msg);
        goto out;
    }
    st = 0;
out:
    free(file);
    return st;
}

/* XBNSERVE_MODELS=NAME=PATH,NAME=PATH: replaces the model list. */
static int env_models(config *c, const char *list, const char *where, char *err, size_t errlen)
{
    char *copy = strdup(list), *save = NULL;
    int r = 0;
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->nmodels = 0;
    for (char *t = strtok_r(copy, ",", &save); t && !r; t = strtok_r(NULL, ",", &save))
        r = add_model(c, t, where, err, errlen);
    free(copy);
    return r;
}

/* The XBNSERVE_* variable's key ("max_body_bytes"), lower-cased, into key; its value, or NULL
 * when the entry is no XBNSERVE_* variable. */
static const char *env_key(const char *entry, char *key, size_t n)
{
    const char *eq = strchr(entry, '=');
    if (strncmp(entry, "XBNSERVE_", 9) || !eq) return NULL;
    size_t kn = (size_t)(eq - entry - 9);
    if (kn >= n) kn = n - 1;
    for (size_t j = 0; j < kn; j++) key[j] = (char)tolower((unsigned char)entry[9 + j]);
    key[kn] = 0;
    return eq + 1;
}

/* 3. The model list: XBNSERVE_MODELS replaces the file's, --model flags replace both. The
 * list is final before any setting is applied, so a per-model variable or flag reaches
 * every model whichever source named it. */
static int apply_models(config *c, char **envp, const flag_pair *pairs, int np, char *err,
                        size_t errlen)
{
    char key[KEY_MAX];
    int replaced = 0;
    for (char **e = envp; e && *e; e++) {
        const char *v = env_key(*e, key, sizeof key);
        if (v && !strcmp(key, "models") && env_models(c, v, "env XBNSERVE_MODELS", err, errlen))
            return -1;
    }
    for (int i = 0; i < np; i++) {
        if (pairs[i].kind != FLAG_MODEL) continue;
        if (!replaced) {
            c->nmodels = 0;
            replaced = 1;
        }
        if (add_model(c, pairs[i].value, "flag --model", err, errlen)) return -1;
    }
    return 0;
}

/* 4. The environment's settings: every XBNSERVE_* must be a known key. */
static int apply_env(config *c, char **envp, char *err, size_t errlen)
{
    char key[KEY_MAX], where[KEY_MAX + 32], msg[SRV_ERR_MAX];
    for (char **e = envp; e && *e; e++) {
        const char *v = env_key(*e, key, sizeof key);
        if (!v) continue;
        /* the file's path and the list: steps 2 and 3; the tokens: read by server/auth.c,
         * and never flags or file keys */
        if (!strcmp(key, "config") || !strcmp(key, "models") || !strcmp(key, "auth_token") ||
            !strcmp(key, "admin_token"))
            continue;
        snprintf(where, sizeof where, "env %.*s", (int)(v - 1 - *e), *e);
        if (!find(server_keys, NSERVER, key) && !find(model_keys, NMODEL, key) &&
            strcmp(key, "preprocess")) {
            snprintf(err, errlen, "%s: unknown variable", where);
            return -1;
        }
        if (config_set(c, -1, key, v, msg, sizeof msg)) {
            snprintf(err, errlen, "%s: %s", where, msg);
            return -1;
        }
    }
    return 0;
}

/* --model-set NAME.KEY=VALUE: names may hold dots, so the key follows the last one. */
static int model_set(config *c, const char *v, char *err, size_t errlen)
{
    char key[KEY_MAX], msg[SRV_ERR_MAX];
    const char *eq = strchr(v, '='), *dot = NULL;
    int m = -1;
    for (const char *p = v; eq && p < eq; p++)
        if (*p == '.') dot = p;
    if (dot && eq) {
        for (int j = 0; j < c->nmodels; j++)
            if (strlen(c->models[j].name) == (size_t)(dot - v) &&
                !strncmp(c->models[j].name, v, (size_t)(dot - v)))
                m = j;
    }
    if (m < 0 || (size_t)(eq - dot - 1) >= sizeof key) {
        snprintf(err, errlen,
                 "flag --model-set: expected NAME.KEY=VALUE for a configured model, got '%.60s'",
                 v);
        return -1;
    }
    memcpy(key, dot + 1, (size_t)(eq - dot - 1));
    key[eq - dot - 1] = 0;
    if (config_set(c, m, key, eq + 1, msg, sizeof msg)) {
        snprintf(err, errlen, "flag --model-set %s: %s", c->models[m].name, msg);
        return -1;
    }
    return 0;
}

/* 5. The flags' settings, in their order (the --model flags were step 3). */
static int apply_flags(config *c, const flag_pair *pairs, int np, char *err, size_t errlen)
{
    char msg[SRV_ERR_MAX];
    for (int i = 0; i < np; i++) {
        if (pairs[i].kind == FLAG_MODEL_SET && model_set(c, pairs[i].value, err, errlen)) return -1;
        if (pairs[i].kind == FLAG_SETTING &&
            config_set(c, -1, pairs[i].key, pairs[i].value, msg, sizeof msg)) {
            snprintf(err, errlen, "flag --%s: %s", pairs[i].key, msg);
            return -1;
        }
    }
    return 0;
}

int config_load(int argc, char **argv, char **envp, config *c, config_opts *o, char *err,
                size_t errlen)
{
    int st = -1, np = 0;
    flag_pair *pairs = calloc((size_t)argc + 1, sizeof *pairs);
    config_defaults(c);
    memset(o, 0, sizeof *o);
    if (!pairs) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (read_flags(argc, argv, o, pairs, &np, err, errlen)) goto out;
    if (o->help) {
        st = 0;
        goto out;
    }
    if (apply_file(c, o, envp, err, errlen) || apply_models(c, envp, pairs, np, err, errlen) ||
        apply_env(c, envp, err, errlen) || apply_flags(c, pairs, np, err, errlen))
        goto out;
    st = config_validate(c, err, errlen);
out:
    free(pairs);
    return st;
}

static void usage_table(FILE *f, const setting *t, size_t n, const void *defaults)
{
    char flag[64], env[96];
    for (size_t i = 0; i < n; i++) {
        const setting *s = &t[i];
        size_t j = 0;
        for (; s->key[j] && j < sizeof flag - 1; j++) flag[j] = s->key[j] == '_' ? '-' : s->key[j];
        flag[j] = 0;
        key_to_env(s->key, env, sizeof env);
        const char *p = (const char *)defaults + s->off;
        long long x;
        memcpy(&x, p, sizeof x);
        fprintf(f, "  --%-24s %-34s ", flag, env);
        if (s->type == K_STR || s->type == K_LIST)
            fprintf(f, "[%s] ", p);
        else if (s->type == K_ENUM)
            fprintf(f, "[%s] ", s->names[x]);
        else if (s->type == K_BOOL)
            fprintf(f, "[%s] ", x ? "true" : "false");
        else
            fprintf(f, "[%lld] ", x);
        fprintf(f, "%s\n", s->help);
    }
}

void config_usage(FILE *f)
{
    config c;
    model_cfg m;
    config_defaults(&c);
    model_cfg_defaults(&m);
    fprintf(f,
            "usage: xbnserve serve [--config FILE] [--check-config] [--FLAG VALUE ...]\n"
            "Precedence: flag > XBNSERVE_* environment > config file > default (preprocess\n"
            "keys: > the model file's). Per-model flags and variables apply to every model,\n"
            "whichever source (file, XBNSERVE_MODELS, --model) named it.\n"
            "  --config FILE              XBNSERVE_CONFIG   JSON config (config/xbnserve.json)\n"
            "  --check-config                               validate, print, exit\n"
            "  --model NAME=PATH          XBNSERVE_MODELS=NAME=PATH,...  replace the model list\n"
            "  --model-set NAME.KEY=VAL                     one model's key (incl. preprocess "
            "JSON)\n"
            "Server:\n");
    usage_table(f, server_keys, NSERVER, &c);
    fprintf(f, "Per model (a flag or variable applies to every model):\n");
    usage_table(f, model_keys + 2, NMODEL - 2, &m);
}

static void print_keys(FILE *f, const setting *t, size_t n, const void *base, const char *ind)
{
    for (size_t i = 0; i < n; i++) {
        const setting *s = &t[i];
        const char *p = (const char *)base + s->off;
        long long x;
        memcpy(&x, p, sizeof x);
        fprintf(f, "%s\"%s\": ", ind, s->key);
        if (s->type == K_STR || s->type == K_LIST) {
            fputc('"', f);
            for (; *p; p++) fprintf(f, (*p == '"' || *p == '\\') ? "\\%c" : "%c", *p);
            fputc('"', f);
        } else if (s->type == K_ENUM)
            fprintf(f, "\"%s\"", s->names[x]);
        else if (s->type == K_BOOL)
            fprintf(f, "%s", x ? "true" : "false");
        else
            fprintf(f, "%lld", x);
        fprintf(f, ",\n");
    }
}

void config_print(const config *c, FILE *f)
{
    fprintf(f, "{\n");
    print_keys(f, server_keys, NSERVER, c, "  ");
    fprintf(f, "  \"models\": [");
    for (int i = 0; i < c->nmodels; i++) {
        fprintf(f, "%s\n    {\n", i ? "," : "");
        print_keys(f, model_keys, NMODEL, &c->models[i], "      ");
        fprintf(f, "      \"preprocess_overrides\": %s\n    }",
                c->models[i].pre_set ? "true" : "false");
    }
    fprintf(f, "\n  ]\n}\n");
}
