/* test_metrics.c - the Prometheus exposition, line by line: exact counter values and
 * cumulative histogram buckets after exact observations, probes kept out of the latency
 * histogram, body byte counters, the preprocess histogram, model and build info, the series
 * cap, the table of models (named while others count and render, up to its capacity and not
 * one more; the gauges of a removed model gone, its counters kept), and the process_*
 * metrics parsed from fixed /proc text and read live. */
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "server/metrics.h"
#include "tests/unit/testutil.h"

typedef struct {
    metrics *m;
    sbuf b;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || !(f->m = metrics_new(2)) || metrics_model_add(f->m, 0, "a") ||
        metrics_model_add(f->m, 1, "b"))
        return -1;
    sbuf_init(&f->b, 1 << 22);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    metrics_free(f->m);
    sbuf_free(&f->b);
    free(f);
    return 0;
}

/* Render afresh; the text stays valid until the next call. */
static const char *render(fixture *f)
{
    static const metrics_model_state st[] = {{.listed = 1, .ready = 1, .queue_depth = 3},
                                             {.listed = 1, .ready = 0, .queue_depth = 0}};
    sbuf_free(&f->b);
    sbuf_init(&f->b, 1 << 22);
    metrics_render(f->m, &f->b, st, 2, 5, 2);
    assert_false(f->b.err);
    return f->b.p;
}

/* `line` is one whole line of `text`. */
static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n') return 1;
    return 0;
}

#define assert_line(text, line)                                                                    \
    do {                                                                                           \
        if (!has_line((text), (line))) fail_msg("missing line: %s\n%s", (line), (text));           \
    } while (0)

static int count_substr(const char *text, const char *s)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, s)); p += strlen(s)) n++;
    return n;
}

/* The cumulative count of model "a"'s v1_predict latency bucket `le`. */
static void assert_lat(const char *t, const char *le, int n)
{
    char l[160];
    snprintf(l, sizeof l,
             "xbnserve_request_duration_seconds_bucket{model=\"a\",endpoint=\"v1_predict\","
             "le=\"%s\"} %d",
             le, n);
    assert_line(t, l);
}

static void test_requests_and_latency(void **state)
{
    fixture *f = *state;
    metrics_request(f->m, 0, "v1_predict", 200, 0.003);
    metrics_request(f->m, 0, "v1_predict", 200, 0.004);
    metrics_request(f->m, 0, "v1_predict", 200, 0.2);
    metrics_request(f->m, 0, "v1_predict", 400, 0.0001);
    metrics_request(f->m, 7, "v1_predict", 404, 0.0002); /* no such model index: model "" */
    const char *t = render(f);
    assert_line(t, "xbnserve_requests_total{model=\"a\",endpoint=\"v1_predict\",code=\"200\"} 3");
    assert_line(t, "xbnserve_requests_total{model=\"a\",endpoint=\"v1_predict\",code=\"400\"} 1");
    assert_line(t, "xbnserve_requests_total{model=\"\",endpoint=\"v1_predict\",code=\"404\"} 1");
    assert_lat(t, "0.0005", 1);
    assert_lat(t, "0.0025", 1);
    assert_lat(t, "0.005", 3);
    assert_lat(t, "0.1", 3);
    assert_lat(t, "0.25", 4);
    assert_lat(t, "10", 4);
    assert_lat(t, "+Inf", 4);
    assert_line(t, "xbnserve_request_duration_seconds_sum{model=\"a\",endpoint=\"v1_predict\"} "
                   "0.2071");
    assert_line(t,
                "xbnserve_request_duration_seconds_count{model=\"a\",endpoint=\"v1_predict\"} 4");
    assert_line(t, "xbnserve_request_duration_seconds_count{model=\"\",endpoint=\"v1_predict\"} 1");
    assert_line(t, "# TYPE xbnserve_request_duration_seconds histogram");
    assert_line(t, "xbnserve_requests_in_flight 5");
    assert_line(t, "xbnserve_decode_queue_depth 2");
    assert_line(t, "xbnserve_queue_depth{model=\"a\"} 3");
    assert_line(t, "xbnserve_model_ready{model=\"b\"} 0");
}

static void test_probes_kept_out_of_latency(void **state)
{
    fixture *f = *state;
    static const char *const probes[] = {"healthz", "readyz",         "v2_live", "v2_ready",
                                         "metrics", "v2_model_ready", "other"};
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        assert_true(metrics_is_probe(probes[i]));
        metrics_request(f->m, -1, probes[i], 200, 0.001);
        metrics_request(f->m, -1, probes[i], 200, 0.001);
    }
    metrics_request(f->m, 1, "v2_model_ready", 200, 0.001);
    metrics_request(f->m, -1, "other", 404, 0.001);
    for (const char *api = "v1_predict\0v2_infer\0v1_models\0v1_model\0v2_model\0v2_server\0"; *api;
         api += strlen(api) + 1)
        assert_false(metrics_is_probe(api));
    const char *t = render(f);
    assert_line(t, "xbnserve_requests_total{model=\"\",endpoint=\"healthz\",code=\"200\"} 2");
    assert_line(t, "xbnserve_requests_total{model=\"\",endpoint=\"metrics\",code=\"200\"} 2");
    assert_line(t,
                "xbnserve_requests_total{model=\"b\",endpoint=\"v2_model_ready\",code=\"200\"} 1");
    assert_line(t, "xbnserve_requests_total{model=\"\",endpoint=\"other\",code=\"404\"} 1");
    assert_int_equal(count_substr(t, "xbnserve_request_duration_seconds_count"), 0);
    assert_int_equal(count_substr(t, "xbnserve_request_bytes_total{"), 0);
}

static void test_body_bytes(void **state)
{
    fixture *f = *state;
    metrics_request_bytes(f->m, 0, "v1_predict", 1000);
    metrics_request_bytes(f->m, 0, "v1_predict", 234);
    metrics_response_bytes(f->m, 0, "v1_predict", 77);
    metrics_response_bytes(f->m, -1, "metrics", 5000);
    metrics_response_bytes(f->m, -1, "metrics", 1);
    metrics_request_bytes(f->m, 1, "v2_infer", 9);
    const char *t = render(f);
    assert_line(t, "xbnserve_request_bytes_total{model=\"a\",endpoint=\"v1_predict\"} 1234");
    assert_line(t, "xbnserve_response_bytes_total{model=\"a\",endpoint=\"v1_predict\"} 77");
    assert_line(t, "xbnserve_request_bytes_total{model=\"\",endpoint=\"metrics\"} 0");
    assert_line(t, "xbnserve_response_bytes_total{model=\"\",endpoint=\"metrics\"} 5001");
    assert_line(t, "xbnserve_request_bytes_total{model=\"b\",endpoint=\"v2_infer\"} 9");
    assert_line(t, "xbnserve_response_bytes_total{model=\"b\",endpoint=\"v2_infer\"} 0");
    assert_line(t, "# TYPE xbnserve_request_bytes_total counter");
    /* a bytes-only series is not a latency observation; /metrics never gets a histogram */
    assert_line(t,
                "xbnserve_request_duration_seconds_count{model=\"a\",endpoint=\"v1_predict\"} 0");
    assert_int_equal(count_substr(t, "xbnserve_request_duration_seconds_count{model=\"\""), 0);
}

static void test_preprocess_and_batches(void **state)
{
    fixture *f = *state;
    metrics_preprocess(f->m, 1, 0.0012);
    metrics_preprocess(f->m, 1, 0.0007);
    metrics_preprocess(f->m, 1, 0.03);
    metrics_preprocess(f->m, 5, 1.0); /* no such model: ignored */
    static const double waits[] = {0.0004, 0.002, 0.003};
    metrics_batch(f->m, 0, 3, 0.02, waits);
    metrics_batch(f->m, 0, 1, 0.04, waits);
    const char *t = render(f);
    assert_line(t, "xbnserve_preprocess_seconds_bucket{model=\"b\",le=\"0.0005\"} 0");
    assert_line(t, "xbnserve_preprocess_seconds_bucket{model=\"b\",le=\"0.001\"} 1");
    assert_line(t, "xbnserve_preprocess_seconds_bucket{model=\"b\",le=\"0.0025\"} 2");
    assert_line(t, "xbnserve_preprocess_seconds_bucket{model=\"b\",le=\"0.025\"} 2");
    assert_line(t, "xbnserve_preprocess_seconds_bucket{model=\"b\",le=\"0.05\"} 3");
    assert_line(t, "xbnserve_preprocess_seconds_sum{model=\"b\"} 0.0319");
    assert_line(t, "xbnserve_preprocess_seconds_count{model=\"b\"} 3");
    assert_line(t, "xbnserve_preprocess_seconds_count{model=\"a\"} 0");
    assert_line(t, "# TYPE xbnserve_preprocess_seconds histogram");
    assert_line(t, "xbnserve_batch_size_bucket{model=\"a\",le=\"1\"} 1");
    assert_line(t, "xbnserve_batch_size_bucket{model=\"a\",le=\"2\"} 1");
    assert_line(t, "xbnserve_batch_size_bucket{model=\"a\",le=\"4\"} 2");
    assert_line(t, "xbnserve_batch_size_sum{model=\"a\"} 4");
    assert_line(t, "xbnserve_images_total{model=\"a\"} 4");
    assert_line(t, "xbnserve_queue_wait_seconds_bucket{model=\"a\",le=\"0.0005\"} 2");
    assert_line(t, "xbnserve_queue_wait_seconds_bucket{model=\"a\",le=\"0.0025\"} 3");
    assert_line(t, "xbnserve_queue_wait_seconds_count{model=\"a\"} 4");
    assert_line(t, "xbnserve_compute_seconds_sum{model=\"a\"} 0.06");
    assert_line(t, "xbnserve_compute_seconds_bucket{model=\"a\",le=\"0.025\"} 1");
}

static model_info info_of(model_arch arch, const char *gemm)
{
    model_info i = {.arch = arch, .flavour = FLAVOUR_KERAS, .classes = 17, .gemm = gemm};
    i.width = arch == ARCH_MOBILENETV2 ? 0.35 : 0;
    i.input_size = 224;
    i.untrained = arch == ARCH_MOBILENETV2;
    return i;
}

static void test_model_and_build_info(void **state)
{
    fixture *f = *state;
    char l[256];
    snprintf(l, sizeof l, "xbnserve_build_info{version=\"%s\",gemm=\"\"} 1", metrics_version());
    const char *t = render(f);
    assert_line(t, l); /* before any model is loaded */
    assert_int_equal(count_substr(t, "xbnserve_model_info{"), 0);
    assert_true(strlen(metrics_version()) > 0);

    model_info a = info_of(ARCH_MOBILENETV2, "avx2"), b = info_of(ARCH_RESNET50, "avx2");
    b.flavour = FLAVOUR_TORCH;
    b.classes = 1000;
    metrics_model_info(f->m, 0, "1", &a);
    metrics_model_info(f->m, 1, "1", &b);
    t = render(f);
    assert_line(t, "xbnserve_model_info{model=\"a\",version=\"1\",arch=\"mobilenetv2\","
                   "flavour=\"keras\",width=\"0.35\",classes=\"17\",input_size=\"224\","
                   "gemm=\"avx2\",untrained=\"true\"} 1");
    assert_line(t, "xbnserve_model_info{model=\"b\",version=\"1\",arch=\"resnet50\","
                   "flavour=\"torch\",width=\"\",classes=\"1000\",input_size=\"224\","
                   "gemm=\"avx2\",untrained=\"false\"} 1");
    snprintf(l, sizeof l, "xbnserve_build_info{version=\"%s\",gemm=\"avx2\"} 1", metrics_version());
    assert_line(t, l);
    b.gemm = "blas"; /* models that run different kernels: both named, in model order */
    metrics_model_info(f->m, 1, "1", &b);
    snprintf(l, sizeof l, "xbnserve_build_info{version=\"%s\",gemm=\"avx2,blas\"} 1",
             metrics_version());
    assert_line(render(f), l);
    assert_int_equal(count_substr(render(f), "xbnserve_build_info{"), 1);
    metrics_model_gone(f->m, 1); /* unloaded: its series and its kernels go */
    t = render(f);
    assert_int_equal(count_substr(t, "xbnserve_model_info{model=\"b\""), 0);
    assert_int_equal(count_substr(t, "xbnserve_model_info{model=\"a\""), 1);
    snprintf(l, sizeof l, "xbnserve_build_info{version=\"%s\",gemm=\"avx2\"} 1", metrics_version());
    assert_line(t, l);
    metrics_model_gone(f->m, 7); /* no such model: nothing */
}

static void test_series_cap(void **state)
{
    fixture *f = *state;
    for (int code = 0; code < METRICS_MAX_SERIES + 10; code++)
        metrics_request(f->m, 0, "v1_predict", 1000 + code, 0.001);
    metrics_request(f->m, 0, "v1_predict", 1000, 0.001); /* an existing series still counts */
    const char *t = render(f);
    assert_int_equal(count_substr(t, "xbnserve_requests_total{"), METRICS_MAX_SERIES);
    assert_line(t, "xbnserve_requests_total{model=\"a\",endpoint=\"v1_predict\",code=\"1000\"} 2");
    assert_int_equal(count_substr(t, "code=\"2024\""), 0);
    assert_line(t, "xbnserve_request_duration_seconds_count{model=\"a\",endpoint=\"v1_predict\"} "
                   "1035");
}

/* The table of models: every index up to the capacity takes a name once, and not one more;
 * a model's series appear when it is named (a model added after the start) and stay; the
 * gauges of its present state are rendered while the caller says it is listed. */
static void test_model_table(void **state)
{
    (void)state;
    metrics *m = metrics_new(3);
    assert_non_null(m);
    sbuf b;
    assert_int_equal(metrics_model_add(m, 0, "x"), 0);
    metrics_preprocess(m, 1, 0.001);                 /* not named yet: dropped */
    metrics_request(m, 1, "v1_predict", 404, 0.001); /* and counted as no model */
    metrics_request_bytes(m, 1, "v1_predict", 10);
    assert_int_equal(metrics_model_add(m, 1, "y"), 0);  /* a model added by a reload */
    assert_int_equal(metrics_model_add(m, 2, "z"), 0);  /* exactly the capacity */
    assert_int_equal(metrics_model_add(m, 3, "w"), -1); /* one more */
    assert_int_equal(metrics_model_add(m, -1, "w"), -1);
    assert_int_equal(metrics_model_add(m, 1, "y2"), -1); /* an index is named once */
    assert_int_equal(metrics_model_add(m, 1, "y"), -1);
    metrics_preprocess(m, 1, 0.001);
    metrics_preprocess(m, 1, 0.002);
    metrics_preprocess(m, 3, 0.002); /* beyond the table: dropped */
    metrics_request(m, 1, "v1_predict", 200, 0.001);
    metrics_request(m, 3, "v1_predict", 200, 0.001);
    metrics_request_bytes(m, 1, "v1_predict", 7);
    static const double waits[] = {0.001, 0.001};
    metrics_batch(m, 1, 2, 0.01, waits);
    metrics_batch(m, 3, 2, 0.01, waits);
    model_info yi = {.arch = ARCH_RESNET50, .flavour = FLAVOUR_TORCH, .classes = 5, .gemm = "blas"};
    metrics_model_info(m, 1, "1", &yi);
    metrics_model_loaded(m, 1, 0.5);
    /* x ready with 2 queued, y unloaded (listed, serving nothing), z beyond the state passed */
    metrics_model_state st[] = {{1, 1, 2}, {1, 0, 0}};
    sbuf_init(&b, 1 << 20);
    metrics_render(m, &b, st, 2, 1, 0);
    const char *t = b.p;
    assert_line(t, "xbnserve_preprocess_seconds_count{model=\"y\"} 2");
    assert_line(t, "xbnserve_requests_total{model=\"y\",endpoint=\"v1_predict\",code=\"200\"} 1");
    assert_line(t, "xbnserve_requests_total{model=\"\",endpoint=\"v1_predict\",code=\"404\"} 1");
    assert_line(t, "xbnserve_requests_total{model=\"\",endpoint=\"v1_predict\",code=\"200\"} 1");
    assert_line(t, "xbnserve_request_bytes_total{model=\"y\",endpoint=\"v1_predict\"} 7");
    assert_line(t, "xbnserve_request_bytes_total{model=\"\",endpoint=\"v1_predict\"} 10");
    assert_line(t, "xbnserve_images_total{model=\"y\"} 2");
    assert_line(t, "xbnserve_batch_size_count{model=\"y\"} 1");
    assert_line(t, "xbnserve_preprocess_seconds_count{model=\"z\"} 0");
    assert_line(t, "xbnserve_images_total{model=\"z\"} 0");
    assert_line(t, "xbnserve_queue_depth{model=\"x\"} 2");
    assert_line(t, "xbnserve_model_ready{model=\"x\"} 1");
    assert_line(t, "xbnserve_model_ready{model=\"y\"} 0");
    assert_line(t, "xbnserve_model_load_seconds{model=\"y\"} 0.500000");
    assert_int_equal(count_substr(t, "xbnserve_model_info{model=\"y\",version=\"1\""), 1);
    assert_int_equal(count_substr(t, "xbnserve_model_ready{model=\"z\""), 0);
    assert_int_equal(count_substr(t, "xbnserve_queue_depth{model=\"z\""), 0);
    assert_int_equal(count_substr(t, "model=\"w\""), 0);
    assert_int_equal(count_substr(t, "model=\"y2\""), 0);
    sbuf_free(&b);

    /* y removed by a reload: its present-state gauges go, its counters stay */
    metrics_model_gone(m, 1);
    st[1].listed = 0;
    sbuf_init(&b, 1 << 20);
    metrics_render(m, &b, st, 2, 1, 0);
    t = b.p;
    assert_int_equal(count_substr(t, "xbnserve_model_ready{model=\"y\""), 0);
    assert_int_equal(count_substr(t, "xbnserve_queue_depth{model=\"y\""), 0);
    assert_int_equal(count_substr(t, "xbnserve_model_load_seconds{model=\"y\""), 0);
    assert_int_equal(count_substr(t, "xbnserve_model_info{model=\"y\""), 0);
    assert_line(t, "xbnserve_preprocess_seconds_count{model=\"y\"} 2");
    assert_line(t, "xbnserve_requests_total{model=\"y\",endpoint=\"v1_predict\",code=\"200\"} 1");
    assert_line(t, "xbnserve_images_total{model=\"y\"} 2");
    assert_line(t, "xbnserve_model_ready{model=\"x\"} 1");
    sbuf_free(&b);

    /* and added back: the same index, so its counters go on from where they were */
    metrics_request(m, 1, "v1_predict", 200, 0.001);
    metrics_preprocess(m, 1, 0.001);
    st[1] = (metrics_model_state){1, 1, 0};
    sbuf_init(&b, 1 << 20);
    metrics_render(m, &b, st, 2, 1, 0);
    t = b.p;
    assert_line(t, "xbnserve_requests_total{model=\"y\",endpoint=\"v1_predict\",code=\"200\"} 2");
    assert_line(t, "xbnserve_preprocess_seconds_count{model=\"y\"} 3");
    assert_line(t, "xbnserve_model_ready{model=\"y\"} 1");
    sbuf_free(&b);
    metrics_free(m);
}

/* Threads count on every index and render while the models are named one by one: once all
 * are named, every later count lands on its model. Run under ThreadSanitizer, no report. */
#define RACE_MODELS 8
#define RACE_ROUNDS 2000

typedef struct {
    metrics *m;
} race_arg;

static void *race_count(void *p)
{
    race_arg *a = p;
    static const double waits[] = {0.001};
    for (int r = 0; r < RACE_ROUNDS; r++)
        for (int i = 0; i < RACE_MODELS; i++) {
            metrics_request(a->m, i, "v1_predict", 200, 0.001);
            metrics_preprocess(a->m, i, 0.001);
            metrics_batch(a->m, i, 1, 0.001, waits);
        }
    return NULL;
}

static void *race_render(void *p)
{
    race_arg *a = p;
    metrics_model_state st[RACE_MODELS];
    for (int i = 0; i < RACE_MODELS; i++) st[i] = (metrics_model_state){1, 1, 0};
    for (int r = 0; r < 50; r++) {
        sbuf b;
        sbuf_init(&b, 1 << 22);
        metrics_render(a->m, &b, st, RACE_MODELS, 1, 0);
        assert_false(b.err);
        sbuf_free(&b);
    }
    return NULL;
}

static void test_models_named_while_counting(void **state)
{
    (void)state;
    race_arg a = {metrics_new(RACE_MODELS)};
    assert_non_null(a.m);
    pthread_t t[3];
    assert_int_equal(pthread_create(&t[0], NULL, race_count, &a), 0);
    assert_int_equal(pthread_create(&t[1], NULL, race_count, &a), 0);
    assert_int_equal(pthread_create(&t[2], NULL, race_render, &a), 0);
    char name[16];
    for (int i = 0; i < RACE_MODELS; i++) {
        snprintf(name, sizeof name, "m%d", i);
        assert_int_equal(metrics_model_add(a.m, i, name), 0);
    }
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    sbuf b;
    sbuf_init(&b, 1 << 22);
    metrics_model_state st[RACE_MODELS] = {{0, 0, 0}};
    metrics_render(a.m, &b, st, RACE_MODELS, 1, 0);
    /* every count lands on its model or, before the name, on none: never lost twice, never
     * on another model; so each model's count plus no model's is the total */
    unsigned long long total = 0, n;
    const char *p;
    for (int i = 0; i < RACE_MODELS; i++) {
        char key[96];
        snprintf(key, sizeof key,
                 "xbnserve_requests_total{model=\"m%d\",endpoint=\"v1_predict\",code=\"200\"} ", i);
        p = strstr(b.p, key);
        n = p ? strtoull(p + strlen(key), NULL, 10) : 0;
        assert_true(n <= 2 * RACE_ROUNDS);
        total += n;
    }
    static const char none[] =
        "xbnserve_requests_total{model=\"\",endpoint=\"v1_predict\",code=\"200\"} ";
    p = strstr(b.p, none);
    total += p ? strtoull(p + strlen(none), NULL, 10) : 0;
    assert_true(total == 2ULL * RACE_ROUNDS * RACE_MODELS);
    /* all named: each count is its model's, exactly */
    metrics_request(a.m, 3, "v1_predict", 200, 0.001);
    sbuf c;
    sbuf_init(&c, 1 << 22);
    metrics_render(a.m, &c, st, RACE_MODELS, 1, 0);
    static const char m3[] =
        "xbnserve_requests_total{model=\"m3\",endpoint=\"v1_predict\",code=\"200\"} ";
    const char *p3 = strstr(b.p, m3), *q3 = strstr(c.p, m3);
    assert_non_null(q3);
    assert_true(strtoull(q3 + strlen(m3), NULL, 10) ==
                (p3 ? strtoull(p3 + strlen(m3), NULL, 10) : 0) + 1);
    sbuf_free(&b);
    sbuf_free(&c);
    metrics_free(a.m);
}

/* A /proc/self/stat line whose command name holds spaces and parentheses. */
static const char stat_text[] =
    "4242 (xbn (serve) x) S 1 4242 4242 0 -1 4194560 18446744073709551615 0 12 0 "
    "250 75 0 0 20 0 9 0 12345 987654321 4321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0\n";
static const char sys_text[] = "cpu  1 2 3 4\nintr 99 1 2 3\nctxt 5\nbtime 1700000000\n";

static void test_proc_parse(void **state)
{
    (void)state;
    metrics_proc p = {0};
    assert_int_equal(metrics_proc_parse(stat_text, sys_text, 100, 4096, &p), 0);
    assert_true(p.cpu_seconds == 3.25);
    assert_true(fabs(p.start_time_seconds - 1700000123.45) < 1e-6);
    assert_true(p.virtual_bytes == 987654321LL);
    assert_true(p.resident_bytes == 4321LL * 4096);
    assert_int_equal(metrics_proc_parse(stat_text, "btime 1700000000\n", 100, 4096, &p), 0);
    p.open_fds = 12;
    p.max_fds = 1024;
    sbuf b;
    sbuf_init(&b, 1 << 16);
    metrics_proc_render(&b, &p);
    assert_line(b.p, "process_cpu_seconds_total 3.250");
    assert_line(b.p, "# TYPE process_cpu_seconds_total counter");
    assert_line(b.p, "process_start_time_seconds 1700000123.45");
    assert_line(b.p, "process_virtual_memory_bytes 987654321");
    assert_line(b.p, "process_resident_memory_bytes 17698816");
    assert_line(b.p, "process_open_fds 12");
    assert_line(b.p, "process_max_fds 1024");
    sbuf_free(&b);
    p.max_fds = -1; /* RLIM_INFINITY: no series */
    sbuf_init(&b, 1 << 16);
    metrics_proc_render(&b, &p);
    assert_null(strstr(b.p, "process_max_fds"));
    sbuf_free(&b);

    char cut[sizeof stat_text];
    memcpy(cut, stat_text, 80);
    cut[80] = 0;
    assert_int_equal(metrics_proc_parse(cut, sys_text, 100, 4096, &p), -1);
    assert_int_equal(metrics_proc_parse("4242 xbn S 1", sys_text, 100, 4096, &p), -1);
    assert_int_equal(metrics_proc_parse(stat_text, "cpu 1 2 3\nctxt 5\n", 100, 4096, &p), -1);
    assert_int_equal(metrics_proc_parse(stat_text, sys_text, 0, 4096, &p), -1);
}

static void test_proc_read_live(void **state)
{
    (void)state;
    metrics_proc p, q;
    assert_int_equal(metrics_proc_read(&p), 0);
    int fd = open("/dev/null", O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(metrics_proc_read(&q), 0);
    assert_int_equal(q.open_fds, p.open_fds + 1);
    close(fd);
    assert_int_equal(metrics_proc_read(&q), 0);
    assert_int_equal(q.open_fds, p.open_fds);
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    assert_int_equal(p.max_fds, rl.rlim_cur == RLIM_INFINITY ? -1 : (long)rl.rlim_cur);
    assert_true(p.resident_bytes > 0 && p.virtual_bytes >= p.resident_bytes);
    double now = (double)time(NULL);
    assert_true(p.start_time_seconds <= now + 5 && p.start_time_seconds > now - 3600);
    assert_true(p.cpu_seconds >= 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_requests_and_latency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probes_kept_out_of_latency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_preprocess_and_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_model_and_build_info, setup, teardown),
        cmocka_unit_test_setup_teardown(test_series_cap, setup, teardown),
        cmocka_unit_test(test_model_table),
        cmocka_unit_test(test_models_named_while_counting),
        cmocka_unit_test(test_proc_parse),
        cmocka_unit_test(test_proc_read_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
