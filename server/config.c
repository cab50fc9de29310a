/* config.c - see config.h.
 *
 * Two tables (server keys, per-model keys) describe every setting once: its file key, type,
 * field offset, range and help. The file parser, the env reader, the CLI parser, --help and
 * --check-config all walk these tables, so a new setting is one table line.
 */
#include "server/config.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum { K_INT, K_STR, K_BOOL, K_ENUM } ktype;

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
    S_INT(port, 0, 65535, "TCP port (0: any free port, printed in the log)"),
    S_INT(http_threads, 0, CFG_MAX_THREADS, "HTTP/decode threads (0: usable CPUs)"),
    S_INT(max_connections, 1, 100000, "concurrent connections"),
    S_INT(connection_timeout_s, 1, 3600, "idle connection timeout, seconds"),
    S_INT(max_body_bytes, 1024, 1LL << 32, "request body limit (413 above)"),
    S_INT(max_image_pixels, 1, 1LL << 32, "width*height limit of one image (413 above)"),
    S_INT(max_images_per_request, 1, 4096, "images in one request (413 above)"),
    S_INT(max_header_bytes, 1024, 1 << 20, "request line + headers limit"),
    S_INT(max_url_bytes, 64, 65536, "URL limit incl. query (414 above)"),
    S_INT(drain_timeout_ms, 0, 3600000, "SIGTERM: longest wait for in-flight requests"),
    {"log_level", K_ENUM, offsetof(config, log_level), 0, 0, 0, log_levels,
     "error|warn|info|debug (info logs one line per request)"},
    {"log_format", K_ENUM, offsetof(config, log_format), 0, 0, 0, log_formats, "text|json"},
    {"metrics", K_BOOL, offsetof(config, metrics), 0, 0, 1, NULL, "serve GET /metrics"},
    {"gemm", K_ENUM, offsetof(config, gemm), 0, 0, 0, gemm_names,
     "auto|avx512|avx2|blas: the engine's kernels (auto: the CPU's best)"},
};

static const setting model_keys[] = {
    {"name", K_STR, offsetof(model_cfg, name), CFG_NAME_MAX, 0, 0, NULL,
     "model name in URLs ([A-Za-z0-9._-])"},
    {"path", K_STR, offsetof(model_cfg, path), CFG_PATH_MAX, 0, 0, NULL, "model file"},
    {"labels", K_STR, offsetof(model_cfg, labels), CFG_PATH_MAX, 0, 0, NULL,
     "labels file overriding the model's, one per line"},
    M_INT(max_batch_size, 1, CFG_MAX_BATCH, "images per engine call"),
    M_INT(max_queue_delay_us, 0, 10000000, "longest wait for a batch to fill, microseconds"),
    M_INT(max_queue_size, 1, 1000000, "images waiting per model (503 above)"),
    M_INT(request_timeout_ms, 1, 3600000, "deadline; not computed by then = 504"),
    M_INT(workers, 1, CFG_MAX_THREADS, "compute threads per model"),
    M_INT(threads_per_worker, 0, CFG_MAX_THREADS,
          "engine threads per worker (0: usable CPUs / workers)"),
};

#define NSERVER (sizeof server_keys / sizeof server_keys[0])
#define NMODEL (sizeof model_keys / sizeof model_keys[0])

void model_cfg_defaults(model_cfg *m)
{
    memset(m, 0, sizeof *m);
    m->max_batch_size = 8;
    m->max_queue_delay_us = 2000;
    m->max_queue_size = 256;
    m->request_timeout_ms = 30000;
    m->workers = 1;
    m->threads_per_worker = 0;
}

void config_defaults(config *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->listen_address, "127.0.0.1");
    c->port = 8080;
    c->http_threads = 0;
    c->max_connections = 512;
    c->connection_timeout_s = 30;
    c->max_body_bytes = 32LL << 20;
    c->max_image_pixels = 40000000;
    c->max_images_per_request = 64;
    c->max_header_bytes = 16384;
    c->max_url_bytes = 2048;
    c->drain_timeout_ms = 30000;
    c->log_level = LOG_INFO;
    c->log_format = LOGFMT_TEXT;
    c->metrics = 1;
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

/* Set one field from text. `where` names the source for the message. */
static int set_text(const setting *s, void *base, const char *v, const char *where, char *err,
                    size_t errlen)
{
    char *p = (char *)base + s->off;
    if (s->type == K_STR) {
        if (strlen(v) >= s->size) goto bad;
        strcpy(p, v);
        return 0;
    }
    long long x;
    if (s->type == K_INT) {
        char *end;
        errno = 0;
        x = strtoll(v, &end, 10);
        if (!*v || *end || errno || x < s->min || x > s->max) goto bad;
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
    if (!cJSON_IsString(v)) {
        range_err(s, where, "(not a JSON string)", err, errlen);
        return -1;
    }
    return set_text(s, base, v->valuestring, where, err, errlen);
}

static int float3(const cJSON *a, float out[3])
{
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 3) return -1;
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, a)
    {
        if (!cJSON_IsNumber(it)) return -1;
        out[i++] = (float)it->valuedouble;
    }
    return 0;
}

static int parse_preprocess(const cJSON *o, cfg_preprocess *p, const char *where, char *err,
                            size_t errlen)
{
    if (!cJSON_IsObject(o)) {
        snprintf(err, errlen, "%s: expected an object", where);
        return -1;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        const char *k = it->string;
        if (!strcmp(k, "resize_mode")) {
            const char *v = cJSON_GetStringValue(it);
            if (!v || (strcmp(v, "shorter_crop") && strcmp(v, "direct"))) goto bad;
            p->has_mode = 1;
            p->mode = !strcmp(v, "direct");
        } else if (!strcmp(k, "resize") || !strcmp(k, "crop")) {
            if (!cJSON_IsNumber(it) || it->valuedouble < 1 || it->valuedouble > 4096 ||
                it->valuedouble != (double)(int)it->valuedouble)
                goto bad;
            if (k[0] == 'r') {
                p->has_resize = 1;
                p->resize = (int)it->valuedouble;
            } else {
                p->has_crop = 1;
                p->crop = (int)it->valuedouble;
            }
        } else if (!strcmp(k, "channel_order")) {
            const char *v = cJSON_GetStringValue(it);
            if (!v || (strcmp(v, "RGB") && strcmp(v, "BGR"))) goto bad;
            p->has_bgr = 1;
            p->bgr = !strcmp(v, "BGR");
        } else if (!strcmp(k, "mean")) {
            if (float3(it, p->mean)) goto bad;
            p->has_mean = 1;
        } else if (!strcmp(k, "std")) {
            if (float3(it, p->std) || !(p->std[0] > 0 && p->std[1] > 0 && p->std[2] > 0)) goto bad;
            p->has_std = 1;
        } else if (!strcmp(k, "exif_orient")) {
            if (!cJSON_IsBool(it)) goto bad;
            p->has_exif = 1;
            p->exif = cJSON_IsTrue(it);
        } else {
            snprintf(err, errlen, "%s.%s: unknown key", where, k);
            return -1;
        }
        continue;
    bad:
        snprintf(err, errlen, "%s.%s: bad value (see docs/model-format.md, preprocess)", where, k);
        return -1;
    }
    return 0;
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
            if (parse_preprocess(it, &m->pre, where, err, errlen)) return -1;
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
    if (!strcmp(key, "preprocess")) {
        cJSON *o = cJSON_Parse(value);
        int r = 0;
        for (int i = lo; i < hi && !r; i++)
            r = parse_preprocess(o, &c->models[i].pre, key, err, errlen);
        if (!o) snprintf(err, errlen, "preprocess: expected a JSON object"), r = -1;
        cJSON_Delete(o);
        return r;
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

static int valid_name(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-') return 0;
    return 1;
}

int config_validate(const config *c, char *err, size_t errlen)
{
    if (c->nmodels == 0) {
        snprintf(err, errlen,
                 "models: no model configured (config file \"models\", --model "
                 "NAME=PATH or XBNSERVE_MODELS)");
        return -1;
    }
    for (int i = 0; i < c->nmodels; i++) {
        const model_cfg *m = &c->models[i];
        if (!valid_name(m->name)) {
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
    strcpy(m->path, eq + 1);
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

typedef struct {
    const char *key; /* NULL for a --model / --model-set value */
    const char *value;
    int kind; /* 0 setting, 1 --model, 2 --model-set */
} cli_pair;

int config_load(int argc, char **argv, char **envp, config *c, config_opts *o, char *err,
                size_t errlen)
{
    char key[96], where[128], *file = NULL;
    int st = -1, np = 0;
    cli_pair *pairs = calloc((size_t)argc + 1, sizeof *pairs);
    char(*keys)[96] = calloc((size_t)argc + 1, sizeof *keys);
    config_defaults(c);
    memset(o, 0, sizeof *o);
    if (!pairs || !keys) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    /* 1. Read the flags; settings are applied last, after file and env. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
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
            goto out;
        }
        const char *eq = strchr(a, '='), *val;
        size_t kn = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        char flag[96];
        if (kn >= sizeof flag) kn = sizeof flag - 1;
        memcpy(flag, a + 2, kn);
        flag[kn] = 0;
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            snprintf(err, errlen, "flag --%s: missing value", flag);
            goto out;
        }
        flag_to_key(flag, keys[np], sizeof keys[np]);
        const char *k = keys[np];
        if (!strcmp(k, "config")) {
            if (strlen(val) >= sizeof o->config_path) {
                snprintf(err, errlen, "flag --config: path too long");
                goto out;
            }
            strcpy(o->config_path, val);
            continue;
        }
        int kind = !strcmp(k, "model") ? 1 : !strcmp(k, "model_set") ? 2 : 0;
        if (!kind && !find(server_keys, NSERVER, k) &&
            (!find(model_keys, NMODEL, k) || !strcmp(k, "name") || !strcmp(k, "path")) &&
            strcmp(k, "preprocess")) {
            snprintf(err, errlen, "flag --%s: unknown flag (see serve --help)", flag);
            goto out;
        }
        pairs[np++] = (cli_pair){k, val, kind};
    }
    if (o->help) {
        st = 0;
        goto out;
    }
    /* 2. The file. */
    const char *cp = o->config_path[0] ? o->config_path : env_get(envp, "XBNSERVE_CONFIG");
    if (cp && *cp) {
        if (!o->config_path[0]) snprintf(o->config_path, sizeof o->config_path, "%s", cp);
        size_t len;
        if (read_file(cp, &file, &len, err, errlen)) goto out;
        char e2[400];
        if (config_parse_json(file, len, c, e2, sizeof e2)) {
            snprintf(err, errlen, "config file %s: %s", cp, e2);
            goto out;
        }
    }
    /* 3. The environment: every XBNSERVE_* must be a known key. */
    for (char **e = envp; e && *e; e++) {
        if (strncmp(*e, "XBNSERVE_", 9)) continue;
        const char *eq = strchr(*e, '=');
        if (!eq) continue;
        size_t kn = (size_t)(eq - *e - 9);
        if (kn >= sizeof key) kn = sizeof key - 1;
        for (size_t j = 0; j < kn; j++) key[j] = (char)tolower((unsigned char)(*e)[9 + j]);
        key[kn] = 0;
        if (!strcmp(key, "config")) continue;
        snprintf(where, sizeof where, "env %.*s", (int)(eq - *e), *e);
        if (!strcmp(key, "models")) {
            char *list = strdup(eq + 1), *save = NULL;
            if (!list) goto out;
            c->nmodels = 0;
            int r = 0;
            for (char *t = strtok_r(list, ",", &save); t && !r; t = strtok_r(NULL, ",", &save))
                r = add_model(c, t, where, err, errlen);
            free(list);
            if (r) goto out;
            continue;
        }
        if (!find(server_keys, NSERVER, key) && !find(model_keys, NMODEL, key) &&
            strcmp(key, "preprocess")) {
            snprintf(err, errlen, "%s: unknown variable", where);
            goto out;
        }
        char e2[400];
        if (config_set(c, -1, key, eq + 1, e2, sizeof e2)) {
            snprintf(err, errlen, "%s: %s", where, e2);
            goto out;
        }
    }
    /* 4. The flags: --model first (replaces the list), then settings in order. */
    int replaced = 0;
    for (int i = 0; i < np; i++) {
        if (pairs[i].kind != 1) continue;
        if (!replaced) c->nmodels = 0, replaced = 1;
        if (add_model(c, pairs[i].value, "flag --model", err, errlen)) goto out;
    }
    for (int i = 0; i < np; i++) {
        char e2[400];
        if (pairs[i].kind == 1) continue;
        if (pairs[i].kind == 0) {
            if (config_set(c, -1, pairs[i].key, pairs[i].value, e2, sizeof e2)) {
                snprintf(err, errlen, "flag --%s: %s", pairs[i].key, e2);
                goto out;
            }
            continue;
        }
        /* --model-set NAME.KEY=VALUE */
        const char *v = pairs[i].value, *eq = strchr(v, '='), *dot = NULL;
        for (const char *p = v; eq && p < eq; p++)
            if (*p == '.') dot = p; /* names may hold dots: the key follows the last one */
        int m = -1;
        if (dot && eq) {
            for (int j = 0; j < c->nmodels; j++)
                if (strlen(c->models[j].name) == (size_t)(dot - v) &&
                    !strncmp(c->models[j].name, v, (size_t)(dot - v)))
                    m = j;
        }
        if (m < 0 || (size_t)(eq - dot - 1) >= sizeof key) {
            snprintf(err, errlen,
                     "flag --model-set: expected NAME.KEY=VALUE for a configured "
                     "model, got '%.60s'",
                     v);
            goto out;
        }
        memcpy(key, dot + 1, (size_t)(eq - dot - 1));
        key[eq - dot - 1] = 0;
        if (config_set(c, m, key, eq + 1, e2, sizeof e2)) {
            snprintf(err, errlen, "flag --model-set %s: %s", c->models[m].name, e2);
            goto out;
        }
    }
    st = config_validate(c, err, errlen);
out:
    free(file);
    free(pairs);
    free(keys);
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
        if (s->type == K_STR)
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
            "Precedence: flag > XBNSERVE_* environment > config file > default.\n"
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
        if (s->type == K_STR) {
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
                (c->models[i].pre.has_mode || c->models[i].pre.has_resize ||
                 c->models[i].pre.has_crop || c->models[i].pre.has_bgr ||
                 c->models[i].pre.has_mean || c->models[i].pre.has_std || c->models[i].pre.has_exif)
                    ? "true"
                    : "false");
    }
    fprintf(f, "\n  ]\n}\n");
}
