/* test_metrics.c - the Prometheus exposition, line by line: exact counter values and
 * cumulative histogram buckets after exact observations, probes kept out of the latency
 * histogram, body byte counters, the preprocess histogram, model and build info, the series
 * cap, and the process_* metrics parsed from fixed /proc text and read live. */
#include <fcntl.h>
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
    static const char *const names[] = {"a", "b"};
    fixture *f = calloc(1, sizeof *f);
    if (!f || !(f->m = metrics_new(2, names))) return -1;
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
    static const long depth[] = {3, 0};
    static const int ready[] = {1, 0};
    sbuf_free(&f->b);
    sbuf_init(&f->b, 1 << 22);
    metrics_render(f->m, &f->b, depth, ready, 5, 2);
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
        cmocka_unit_test(test_proc_parse),
        cmocka_unit_test(test_proc_read_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
