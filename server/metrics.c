/* metrics.c - see metrics.h. */
#include "server/metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef XBN_VERSION
#define XBN_VERSION "unknown" /* the Makefile defines it; other builds say they do not know */
#endif

static const double time_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                      0.1,    0.25,  0.5,    1,     2.5,  5,     10};
static const double size_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
#define NTB (sizeof time_buckets / sizeof time_buckets[0])
#define NSB (sizeof size_buckets / sizeof size_buckets[0])

typedef struct {
    unsigned long long b[NTB + 1]; /* per bucket (not cumulative) + overflow */
    unsigned long long count;
    double sum;
} hist;

typedef struct {
    int model;
    const char *endpoint;
    int code;
    unsigned long long n;
} series;

/* Everything kept per (model, endpoint): latency (API endpoints only) and body bytes. */
typedef struct {
    const char *endpoint;
    int model;
    hist lat;
    unsigned long long bytes_in, bytes_out;
} ep_series;

typedef struct {
    char name[CFG_NAME_MAX]; /* "" until metrics_model_add: no series */
    hist pre, wait, compute, batch;
    unsigned long long images;
    double load_s;
    char info[320]; /* xbnserve_model_info's labels after "model=...,", "" until registered */
    char gemm[16];
} model_m;

struct metrics {
    pthread_mutex_t mu;
    int cap;         /* entries in models, fixed by metrics_new */
    model_m *models; /* by index; names under mu */
    series *req;
    int nreq;
    ep_series *ep;
    int nep;
};

metrics *metrics_new(int capacity)
{
    metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    pthread_mutex_init(&m->mu, NULL);
    m->cap = capacity > 0 ? capacity : 0;
    m->models = calloc((size_t)m->cap + 1, sizeof *m->models);
    m->req = calloc(METRICS_MAX_SERIES, sizeof *m->req);
    m->ep = calloc(METRICS_MAX_SERIES, sizeof *m->ep);
    if (!m->models || !m->req || !m->ep) goto fail;
    return m;
fail:
    metrics_free(m);
    return NULL;
}

void metrics_free(metrics *m)
{
    if (!m) return;
    free(m->models);
    free(m->req);
    free(m->ep);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

const char *metrics_version(void)
{
    return XBN_VERSION;
}

int metrics_is_probe(const char *endpoint)
{
    static const char *const probes[] = {"healthz", "readyz",         "v2_live", "v2_ready",
                                         "metrics", "v2_model_ready", "other"};
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++)
        if (!strcmp(endpoint, probes[i])) return 1;
    return 0;
}

static void observe(hist *h, const double *bk, size_t nb, double v)
{
    size_t i = 0;
    while (i < nb && v > bk[i]) i++;
    h->b[i]++;
    h->count++;
    h->sum += v;
}

int metrics_model_add(metrics *m, int idx, const char *name)
{
    if (!m || idx < 0 || idx >= m->cap || !name[0]) return -1;
    pthread_mutex_lock(&m->mu);
    model_m *mm = &m->models[idx];
    int ok = !mm->name[0];
    if (ok) snprintf(mm->name, sizeof mm->name, "%s", name);
    pthread_mutex_unlock(&m->mu);
    return ok ? 0 : -1;
}

/* Is mod a named model's index? Locked. */
static int named(const metrics *m, int mod)
{
    return mod >= 0 && mod < m->cap && m->models[mod].name[0];
}

/* Indices of no named model are requests not addressed to one. Locked. */
static int model_or_none(const metrics *m, int mod)
{
    return named(m, mod) ? mod : -1;
}

/* The (model, endpoint) entry, created on first use; NULL once the table is full. Locked. */
static ep_series *ep_of(metrics *m, int mod, const char *endpoint)
{
    for (int i = 0; i < m->nep; i++)
        if (m->ep[i].model == mod && !strcmp(m->ep[i].endpoint, endpoint)) return &m->ep[i];
    if (m->nep == METRICS_MAX_SERIES) return NULL;
    ep_series *e = &m->ep[m->nep++];
    memset(e, 0, sizeof *e);
    e->endpoint = endpoint;
    e->model = mod;
    return e;
}

/* The (model, endpoint, code) counter, created on first use; NULL once full. Locked. */
static series *req_of(metrics *m, int mod, const char *endpoint, int code)
{
    for (int i = 0; i < m->nreq; i++)
        if (m->req[i].model == mod && m->req[i].code == code &&
            !strcmp(m->req[i].endpoint, endpoint))
            return &m->req[i];
    if (m->nreq == METRICS_MAX_SERIES) return NULL;
    m->req[m->nreq] = (series){mod, endpoint, code, 0};
    return &m->req[m->nreq++];
}

void metrics_request(metrics *m, int mod, const char *endpoint, int code, double seconds)
{
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    mod = model_or_none(m, mod);
    series *s = req_of(m, mod, endpoint, code);
    if (s) s->n++;
    ep_series *e = metrics_is_probe(endpoint) ? NULL : ep_of(m, mod, endpoint);
    if (e) observe(&e->lat, time_buckets, NTB, seconds);
    pthread_mutex_unlock(&m->mu);
}

static void add_bytes(metrics *m, int mod, const char *endpoint, size_t bytes, int out)
{
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    mod = model_or_none(m, mod);
    ep_series *e = ep_of(m, mod, endpoint);
    if (e) *(out ? &e->bytes_out : &e->bytes_in) += bytes;
    pthread_mutex_unlock(&m->mu);
}

void metrics_request_bytes(metrics *m, int mod, const char *endpoint, size_t bytes)
{
    add_bytes(m, mod, endpoint, bytes, 0);
}

void metrics_response_bytes(metrics *m, int mod, const char *endpoint, size_t bytes)
{
    add_bytes(m, mod, endpoint, bytes, 1);
}

void metrics_preprocess(metrics *m, int mod, double seconds)
{
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    if (named(m, mod)) observe(&m->models[mod].pre, time_buckets, NTB, seconds);
    pthread_mutex_unlock(&m->mu);
}

void metrics_batch(metrics *m, int mod, int n, double compute_s, const double *waits_s)
{
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    if (named(m, mod)) {
        model_m *mm = &m->models[mod];
        observe(&mm->compute, time_buckets, NTB, compute_s);
        observe(&mm->batch, size_buckets, NSB, n);
        for (int i = 0; i < n; i++) observe(&mm->wait, time_buckets, NTB, waits_s[i]);
        mm->images += (unsigned long long)n;
    }
    pthread_mutex_unlock(&m->mu);
}

void metrics_model_loaded(metrics *m, int mod, double seconds)
{
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    if (named(m, mod)) m->models[mod].load_s = seconds;
    pthread_mutex_unlock(&m->mu);
}

void metrics_model_info(metrics *m, int mod, const char *version, const model_info *info)
{
    if (!m) return;
    char width[32] = "";
    if (info->arch == ARCH_MOBILENETV2) snprintf(width, sizeof width, "%g", info->width);
    pthread_mutex_lock(&m->mu);
    if (!named(m, mod)) {
        pthread_mutex_unlock(&m->mu);
        return;
    }
    model_m *mm = &m->models[mod];
    snprintf(mm->info, sizeof mm->info,
             "version=\"%.32s\",arch=\"%s\",flavour=\"%s\",width=\"%s\",classes=\"%d\","
             "input_size=\"%d\",gemm=\"%.15s\",untrained=\"%s\"",
             version, arch_name(info->arch), flavour_name(info->flavour), width, info->classes,
             info->input_size, info->gemm, info->untrained ? "true" : "false");
    snprintf(mm->gemm, sizeof mm->gemm, "%s", info->gemm);
    pthread_mutex_unlock(&m->mu);
}

void metrics_model_gone(metrics *m, int mod)
{
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    if (named(m, mod)) m->models[mod].info[0] = m->models[mod].gemm[0] = 0;
    pthread_mutex_unlock(&m->mu);
}

/* ---- rendering ---- */

static void render_hist(sbuf *b, const char *name, const char *labels, const hist *h,
                        const double *bk, size_t nb)
{
    unsigned long long cum = 0;
    const char *sep = labels[0] ? "," : "";
    for (size_t i = 0; i < nb; i++) {
        cum += h->b[i];
        sbuf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bk[i], cum);
    }
    sbuf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, h->count);
    sbuf_printf(b, "%s_sum{%s} %.9g\n%s_count{%s} %llu\n", name, labels, h->sum, name, labels,
                h->count);
}

static void head(sbuf *b, const char *name, const char *type, const char *help)
{
    sbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *model_label(const metrics *m, int mod)
{
    return mod >= 0 ? m->models[mod].name : "";
}

/* One histogram per named model; `field` is the offset of the hist in model_m. */
static void render_model_hists(sbuf *b, const metrics *m, const char *name, size_t field,
                               const double *bk, size_t nb)
{
    char lab[128];
    for (int i = 0; i < m->cap; i++) {
        if (!m->models[i].name[0]) continue;
        snprintf(lab, sizeof lab, "model=\"%s\"", m->models[i].name);
        render_hist(b, name, lab, (const hist *)((const char *)&m->models[i] + field), bk, nb);
    }
}

static void render_requests(sbuf *b, const metrics *m)
{
    char lab[192];
    head(b, "xbnserve_requests_total", "counter", "HTTP requests by model, endpoint, code.");
    for (int i = 0; i < m->nreq; i++) {
        const series *s = &m->req[i];
        sbuf_printf(b, "xbnserve_requests_total{model=\"%s\",endpoint=\"%s\",code=\"%d\"} %llu\n",
                    model_label(m, s->model), s->endpoint, s->code, s->n);
    }
    head(b, "xbnserve_request_duration_seconds", "histogram",
         "Request latency, arrival to response queued (API endpoints; no probes).");
    for (int i = 0; i < m->nep; i++) {
        const ep_series *e = &m->ep[i];
        if (metrics_is_probe(e->endpoint)) continue;
        snprintf(lab, sizeof lab, "model=\"%s\",endpoint=\"%s\"", model_label(m, e->model),
                 e->endpoint);
        render_hist(b, "xbnserve_request_duration_seconds", lab, &e->lat, time_buckets, NTB);
    }
    head(b, "xbnserve_request_bytes_total", "counter", "Request body bytes received.");
    for (int i = 0; i < m->nep; i++)
        sbuf_printf(b, "xbnserve_request_bytes_total{model=\"%s\",endpoint=\"%s\"} %llu\n",
                    model_label(m, m->ep[i].model), m->ep[i].endpoint, m->ep[i].bytes_in);
    head(b, "xbnserve_response_bytes_total", "counter", "Response body bytes sent.");
    for (int i = 0; i < m->nep; i++)
        sbuf_printf(b, "xbnserve_response_bytes_total{model=\"%s\",endpoint=\"%s\"} %llu\n",
                    model_label(m, m->ep[i].model), m->ep[i].endpoint, m->ep[i].bytes_out);
}

/* Is model i named and, as the caller says, in the model set? */
static int listed(const metrics *m, const metrics_model_state *st, int nst, int i)
{
    return m->models[i].name[0] && i < nst && st[i].listed;
}

static void render_models(sbuf *b, const metrics *m, const metrics_model_state *st, int nst)
{
    head(b, "xbnserve_preprocess_seconds", "histogram",
         "Per image: decode and preprocessing to the input pixels.");
    render_model_hists(b, m, "xbnserve_preprocess_seconds", offsetof(model_m, pre), time_buckets,
                       NTB);
    head(b, "xbnserve_queue_wait_seconds", "histogram", "Per image: queued to batch start.");
    render_model_hists(b, m, "xbnserve_queue_wait_seconds", offsetof(model_m, wait), time_buckets,
                       NTB);
    head(b, "xbnserve_compute_seconds", "histogram", "Engine time per batch.");
    render_model_hists(b, m, "xbnserve_compute_seconds", offsetof(model_m, compute), time_buckets,
                       NTB);
    head(b, "xbnserve_batch_size", "histogram", "Images per engine batch.");
    render_model_hists(b, m, "xbnserve_batch_size", offsetof(model_m, batch), size_buckets, NSB);
    head(b, "xbnserve_images_total", "counter", "Images computed.");
    for (int i = 0; i < m->cap; i++)
        if (m->models[i].name[0])
            sbuf_printf(b, "xbnserve_images_total{model=\"%s\"} %llu\n", m->models[i].name,
                        m->models[i].images);
    /* the gauges of a model's present state: for the models in the model set only */
    head(b, "xbnserve_queue_depth", "gauge", "Images waiting for a worker.");
    for (int i = 0; i < m->cap; i++)
        if (listed(m, st, nst, i))
            sbuf_printf(b, "xbnserve_queue_depth{model=\"%s\"} %ld\n", m->models[i].name,
                        st[i].queue_depth);
    head(b, "xbnserve_model_ready", "gauge", "1 once loaded and warmed up.");
    for (int i = 0; i < m->cap; i++)
        if (listed(m, st, nst, i))
            sbuf_printf(b, "xbnserve_model_ready{model=\"%s\"} %d\n", m->models[i].name,
                        st[i].ready);
    head(b, "xbnserve_model_load_seconds", "gauge", "Time to load and warm up the model.");
    for (int i = 0; i < m->cap; i++)
        if (listed(m, st, nst, i))
            sbuf_printf(b, "xbnserve_model_load_seconds{model=\"%s\"} %.6f\n", m->models[i].name,
                        m->models[i].load_s);
    head(b, "xbnserve_model_info", "gauge", "1 per loaded model; its description in the labels.");
    for (int i = 0; i < m->cap; i++)
        if (m->models[i].info[0])
            sbuf_printf(b, "xbnserve_model_info{model=\"%s\",%s} 1\n", m->models[i].name,
                        m->models[i].info);
}

/* The distinct GEMM kernels of the loaded models, in model order, comma separated. */
static void gemm_set(const metrics *m, char *out, size_t outlen)
{
    out[0] = 0;
    for (int i = 0; i < m->cap; i++) {
        const char *g = m->models[i].gemm;
        int seen = !g[0];
        for (int j = 0; j < i && !seen; j++) seen = !strcmp(m->models[j].gemm, g);
        if (seen) continue;
        size_t len = strlen(out);
        snprintf(out + len, outlen - len, "%s%s", len ? "," : "", g);
    }
}

static void render_build_info(sbuf *b, const metrics *m)
{
    char gemm[64];
    gemm_set(m, gemm, sizeof gemm);
    head(b, "xbnserve_build_info", "gauge",
         "1; the version and the GEMM kernels the loaded models run in the labels.");
    sbuf_printf(b, "xbnserve_build_info{version=\"%s\",gemm=\"%s\"} 1\n", metrics_version(), gemm);
}

void metrics_render(metrics *m, sbuf *b, const metrics_model_state *state, int nstate,
                    long in_flight, long decode_depth)
{
    pthread_mutex_lock(&m->mu);
    render_requests(b, m);
    render_models(b, m, state, nstate);
    render_build_info(b, m);
    pthread_mutex_unlock(&m->mu);
    head(b, "xbnserve_requests_in_flight", "gauge", "Requests accepted and not yet answered.");
    sbuf_printf(b, "xbnserve_requests_in_flight %ld\n", in_flight);
    head(b, "xbnserve_decode_queue_depth", "gauge", "Requests waiting for a decode thread.");
    sbuf_printf(b, "xbnserve_decode_queue_depth %ld\n", decode_depth);
    metrics_proc p;
    if (!metrics_proc_read(&p)) metrics_proc_render(b, &p);
}

/* ---- process_* from /proc ---- */

/* The whole of a small /proc file, NUL-terminated. 0 on success. */
static int read_text(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = 0;
    return n ? 0 : -1;
}

/* The "btime" line of /proc/stat. It comes after the per-CPU and interrupt lines, which
 * run to many kilobytes on a large machine, so the file is read line by line. */
static int read_btime_line(char *buf, size_t size)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0;
    int found = 0;
    while (!found && getline(&line, &cap, f) > 0)
        if (!strncmp(line, "btime ", 6)) found = snprintf(buf, size, "%s", line) > 0;
    free(line);
    fclose(f);
    return found ? 0 : -1;
}

int metrics_proc_parse(const char *self_stat, const char *sys_stat, long clk_tck, long page_size,
                       metrics_proc *p)
{
    /* The command name (field 2) is in parentheses and may itself hold spaces and ')':
     * the fields after it start after the last ')'. */
    const char *rest = strrchr(self_stat, ')');
    unsigned long utime, stime, vsize;
    unsigned long long start;
    long rss;
    if (!rest || clk_tck <= 0 ||
        sscanf(rest + 1,
               " %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %lu %lu %*s %*s %*s %*s %*s %*s "
               "%llu %lu %ld",
               &utime, &stime, &start, &vsize, &rss) != 5)
        return -1;
    const char *bt = !strncmp(sys_stat, "btime ", 6) ? sys_stat : strstr(sys_stat, "\nbtime ");
    long long btime;
    if (!bt || sscanf(bt, " btime %lld", &btime) != 1) return -1;
    p->cpu_seconds = (double)(utime + stime) / (double)clk_tck;
    p->start_time_seconds = (double)btime + (double)start / (double)clk_tck;
    p->virtual_bytes = (long long)vsize;
    p->resident_bytes = (long long)rss * page_size;
    return 0;
}

/* Open descriptors, the directory stream's own included. */
static long count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    long n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

int metrics_proc_read(metrics_proc *p)
{
    char self[1024], btime[64];
    if (read_text("/proc/self/stat", self, sizeof self) || read_btime_line(btime, sizeof btime) ||
        metrics_proc_parse(self, btime, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE), p))
        return -1;
    struct rlimit rl;
    int limited = !getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY;
    p->max_fds = limited ? (long)rl.rlim_cur : -1;
    p->open_fds = count_fds();
    return p->open_fds < 0 ? -1 : 0;
}

void metrics_proc_render(sbuf *b, const metrics_proc *p)
{
    head(b, "process_cpu_seconds_total", "counter", "Total user and system CPU time in seconds.");
    sbuf_printf(b, "process_cpu_seconds_total %.3f\n", p->cpu_seconds);
    head(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    sbuf_printf(b, "process_resident_memory_bytes %lld\n", p->resident_bytes);
    head(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    sbuf_printf(b, "process_virtual_memory_bytes %lld\n", p->virtual_bytes);
    head(b, "process_open_fds", "gauge", "Number of open file descriptors.");
    sbuf_printf(b, "process_open_fds %ld\n", p->open_fds);
    if (p->max_fds >= 0) { /* unlimited: no series rather than a made-up number */
        head(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        sbuf_printf(b, "process_max_fds %ld\n", p->max_fds);
    }
    head(b, "process_start_time_seconds", "gauge",
         "Start time of the process since the Unix epoch in seconds.");
    sbuf_printf(b, "process_start_time_seconds %.2f\n", p->start_time_seconds);
}
