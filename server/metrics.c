/* metrics.c - see metrics.h. */
#include "server/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

typedef struct {
    const char *endpoint;
    int model;
    hist h;
} lat_series;

typedef struct {
    char *name;
    hist wait, compute, batch;
    unsigned long long images;
    double load_s;
} model_m;

struct metrics {
    pthread_mutex_t mu;
    int nmodels;
    model_m *models;
    series *req;
    int nreq;
    lat_series *lat;
    int nlat;
};

metrics *metrics_new(int nmodels, const char *const *names)
{
    metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    pthread_mutex_init(&m->mu, NULL);
    m->nmodels = nmodels;
    m->models = calloc((size_t)nmodels + 1, sizeof *m->models);
    m->req = calloc(METRICS_MAX_SERIES, sizeof *m->req);
    m->lat = calloc(METRICS_MAX_SERIES, sizeof *m->lat);
    if (!m->models || !m->req || !m->lat) goto fail;
    for (int i = 0; i < nmodels; i++)
        if (!(m->models[i].name = strdup(names[i]))) goto fail;
    return m;
fail:
    metrics_free(m);
    return NULL;
}

void metrics_free(metrics *m)
{
    if (!m) return;
    for (int i = 0; m->models && i < m->nmodels; i++) free(m->models[i].name);
    free(m->models);
    free(m->req);
    free(m->lat);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static void observe(hist *h, const double *bk, size_t nb, double v)
{
    size_t i = 0;
    while (i < nb && v > bk[i]) i++;
    h->b[i]++;
    h->count++;
    h->sum += v;
}

void metrics_request(metrics *m, int model, const char *endpoint, int code, double seconds)
{
    if (!m) return;
    if (model >= m->nmodels) model = -1;
    pthread_mutex_lock(&m->mu);
    int i;
    for (i = 0; i < m->nreq; i++)
        if (m->req[i].model == model && m->req[i].code == code &&
            !strcmp(m->req[i].endpoint, endpoint))
            break;
    if (i == m->nreq && m->nreq < METRICS_MAX_SERIES)
        m->req[m->nreq++] = (series){model, endpoint, code, 0};
    if (i < m->nreq) m->req[i].n++;
    for (i = 0; i < m->nlat; i++)
        if (m->lat[i].model == model && !strcmp(m->lat[i].endpoint, endpoint)) break;
    if (i == m->nlat && m->nlat < METRICS_MAX_SERIES) {
        memset(&m->lat[i], 0, sizeof m->lat[i]);
        m->lat[i].endpoint = endpoint;
        m->lat[i].model = model;
        m->nlat++;
    }
    if (i < m->nlat) observe(&m->lat[i].h, time_buckets, NTB, seconds);
    pthread_mutex_unlock(&m->mu);
}

void metrics_batch(metrics *m, int model, int n, double compute_s, const double *waits_s)
{
    if (!m || model < 0 || model >= m->nmodels) return;
    pthread_mutex_lock(&m->mu);
    model_m *mm = &m->models[model];
    observe(&mm->compute, time_buckets, NTB, compute_s);
    observe(&mm->batch, size_buckets, NSB, n);
    for (int i = 0; i < n; i++) observe(&mm->wait, time_buckets, NTB, waits_s[i]);
    mm->images += (unsigned long long)n;
    pthread_mutex_unlock(&m->mu);
}

void metrics_model_loaded(metrics *m, int model, double seconds)
{
    if (!m || model < 0 || model >= m->nmodels) return;
    pthread_mutex_lock(&m->mu);
    m->models[model].load_s = seconds;
    pthread_mutex_unlock(&m->mu);
}

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

void metrics_render(metrics *m, sbuf *b, const long *depth, const int *ready, long in_flight)
{
    char lab[256];
    pthread_mutex_lock(&m->mu);
    head(b, "xbnserve_requests_total", "counter", "HTTP requests by model, endpoint, code.");
    for (int i = 0; i < m->nreq; i++) {
        const series *s = &m->req[i];
        sbuf_printf(b, "xbnserve_requests_total{model=\"%s\",endpoint=\"%s\",code=\"%d\"} %llu\n",
                    s->model >= 0 ? m->models[s->model].name : "", s->endpoint, s->code, s->n);
    }
    head(b, "xbnserve_request_duration_seconds", "histogram",
         "Request latency, arrival to response queued.");
    for (int i = 0; i < m->nlat; i++) {
        const lat_series *s = &m->lat[i];
        snprintf(lab, sizeof lab, "model=\"%s\",endpoint=\"%s\"",
                 s->model >= 0 ? m->models[s->model].name : "", s->endpoint);
        render_hist(b, "xbnserve_request_duration_seconds", lab, &s->h, time_buckets, NTB);
    }
    head(b, "xbnserve_queue_wait_seconds", "histogram", "Per image: queued to batch start.");
    for (int i = 0; i < m->nmodels; i++) {
        snprintf(lab, sizeof lab, "model=\"%s\"", m->models[i].name);
        render_hist(b, "xbnserve_queue_wait_seconds", lab, &m->models[i].wait, time_buckets, NTB);
    }
    head(b, "xbnserve_compute_seconds", "histogram", "Engine time per batch.");
    for (int i = 0; i < m->nmodels; i++) {
        snprintf(lab, sizeof lab, "model=\"%s\"", m->models[i].name);
        render_hist(b, "xbnserve_compute_seconds", lab, &m->models[i].compute, time_buckets, NTB);
    }
    head(b, "xbnserve_batch_size", "histogram", "Images per engine batch.");
    for (int i = 0; i < m->nmodels; i++) {
        snprintf(lab, sizeof lab, "model=\"%s\"", m->models[i].name);
        render_hist(b, "xbnserve_batch_size", lab, &m->models[i].batch, size_buckets, NSB);
    }
    head(b, "xbnserve_images_total", "counter", "Images computed.");
    for (int i = 0; i < m->nmodels; i++)
        sbuf_printf(b, "xbnserve_images_total{model=\"%s\"} %llu\n", m->models[i].name,
                    m->models[i].images);
    head(b, "xbnserve_queue_depth", "gauge", "Images waiting for a worker.");
    for (int i = 0; i < m->nmodels; i++)
        sbuf_printf(b, "xbnserve_queue_depth{model=\"%s\"} %ld\n", m->models[i].name,
                    depth ? depth[i] : 0);
    head(b, "xbnserve_model_ready", "gauge", "1 once loaded and warmed up.");
    for (int i = 0; i < m->nmodels; i++)
        sbuf_printf(b, "xbnserve_model_ready{model=\"%s\"} %d\n", m->models[i].name,
                    ready ? ready[i] : 0);
    head(b, "xbnserve_model_load_seconds", "gauge", "Time to load and warm up the model.");
    for (int i = 0; i < m->nmodels; i++)
        sbuf_printf(b, "xbnserve_model_load_seconds{model=\"%s\"} %.6f\n", m->models[i].name,
                    m->models[i].load_s);
    pthread_mutex_unlock(&m->mu);
    head(b, "xbnserve_requests_in_flight", "gauge", "Requests accepted and not yet answered.");
    sbuf_printf(b, "xbnserve_requests_in_flight %ld\n", in_flight);
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    head(b, "xbnserve_process_resident_memory_bytes", "gauge", "Resident set size.");
    sbuf_printf(b, "xbnserve_process_resident_memory_bytes %ld\n", rss * sysconf(_SC_PAGESIZE));
}
