/* test_config.c - config file, env and flag parsing: precedence, strict keys, ranges. */
#include <stddef.h>
#include <string.h>

#include "engine/engine.h"
#include "server/config.h"
#include "server/cpus.h"
#include "tests/unit/testutil.h"

static const char good[] =
    "{\"port\": 9000, \"log_format\": \"json\", \"metrics\": false,"
    " \"models\": [{\"name\": \"a\", \"path\": \"a.safetensors\", \"max_batch_size\": 4,"
    "  \"preprocess\": {\"crop\": 192, \"channel_order\": \"BGR\", \"mean\": [0.5,0.5,0.5]}},"
    " {\"name\": \"b.v2\", \"path\": \"b.safetensors\"}]}";

static void test_file(void **state)
{
    (void)state;
    config c;
    char err[256];
    config_defaults(&c);
    assert_int_equal(config_parse_json(good, sizeof good - 1, &c, err, sizeof err), 0);
    assert_int_equal(c.port, 9000);
    assert_int_equal(c.log_format, LOGFMT_JSON);
    assert_int_equal(c.metrics, 0);
    assert_int_equal(c.nmodels, 2);
    assert_int_equal(c.models[0].max_batch_size, 4);
    assert_int_equal(c.models[1].max_batch_size, 8); /* default */
    assert_true((c.models[0].pre_set & PRE_CROP) && c.models[0].pre.crop == 192);
    assert_true((c.models[0].pre_set & PRE_ORDER) && c.models[0].pre.bgr == 1);
    assert_false(c.models[0].pre_set & PRE_STD);
    assert_int_equal(config_validate(&c, err, sizeof err), 0);
}

static void expect_file_error(const char *json, const char *key)
{
    config c;
    char err[256] = "";
    config_defaults(&c);
    int r = config_parse_json(json, strlen(json), &c, err, sizeof err);
    if (r == 0) r = config_validate(&c, err, sizeof err);
    assert_int_not_equal(r, 0);
    if (!strstr(err, key)) fail_msg("error '%s' does not name '%s'", err, key);
}

static void test_file_errors(void **state)
{
    (void)state;
    expect_file_error("{\"prot\": 1}", "prot");
    expect_file_error("{\"port\": 70000}", "port");
    expect_file_error("{\"port\": \"80\"}", "port");
    expect_file_error("{\"port\": 1.5}", "port");
    expect_file_error("{\"log_level\": \"loud\"}", "log_level");
    expect_file_error("{\"models\": [{\"name\": \"a\", \"path\": \"p\", \"workerz\": 1}]}",
                      "models[0].workerz");
    expect_file_error("{\"models\": [{\"name\": \"a\", \"path\": \"p\", \"preprocess\": "
                      "{\"crop\": 0}}]}",
                      "models[0].preprocess.crop");
    expect_file_error("{\"models\": [{\"name\": \"a/b\", \"path\": \"p\"}]}", "name");
    expect_file_error("{\"models\": [{\"name\": \"a\", \"path\": \"p\"}, {\"name\": \"a\", "
                      "\"path\": \"q\"}]}",
                      "used twice");
    expect_file_error("{\"models\": []}", "models");
    /* listen_address: checked where serve would bind, so --check-config agrees with it */
    expect_file_error("{\"listen_address\": \"localhost\", \"models\": [{\"name\": \"a\", "
                      "\"path\": \"p\"}]}",
                      "listen_address");
    expect_file_error("{\"listen_address\": \"10.0.0.256\", \"models\": [{\"name\": \"a\", "
                      "\"path\": \"p\"}]}",
                      "listen_address");
    expect_file_error("{\"listen_address\": \"\", \"models\": [{\"name\": \"a\", "
                      "\"path\": \"p\"}]}",
                      "listen_address");
    expect_file_error("[1,2]", "JSON");
    expect_file_error("{\"port\": 1", "JSON");
}

static void test_precedence(void **state)
{
    (void)state;
    config c;
    config_opts o;
    char err[512];
    char *env[] = {"XBNSERVE_PORT=9001", "XBNSERVE_MODELS=a=x.st,b=y.st",
                   "XBNSERVE_MAX_BATCH_SIZE=16", "OTHER=1", NULL};
    char *argv[] = {"serve", "--port", "9002", "--workers=3", "--model-set", "b.max_batch_size=2",
                    NULL};
    assert_int_equal(config_load(6, argv, env, &c, &o, err, sizeof err), 0);
    assert_int_equal(c.port, 9002);
    assert_int_equal(c.nmodels, 2);
    assert_string_equal(c.models[1].path, "y.st");
    assert_int_equal(c.models[0].max_batch_size, 16);
    assert_int_equal(c.models[1].max_batch_size, 2);
    assert_int_equal(c.models[0].workers, 3);

    char *argv2[] = {"serve", "--model", "z=z.st", "--check-config", NULL};
    assert_int_equal(config_load(4, argv2, env, &c, &o, err, sizeof err), 0);
    assert_int_equal(o.check_only, 1);
    assert_int_equal(c.nmodels, 1);
    assert_string_equal(c.models[0].name, "z");
    assert_int_equal(c.port, 9001);
}

/* The model list is settled before any setting: a per-model variable reaches the models of
 * XBNSERVE_MODELS whatever the variables' order, and the models of --model flags too; a flag
 * still wins over the variable. */
static void test_env_every_model(void **state)
{
    (void)state;
    config c;
    config_opts o;
    char err[512];
    char *env[] = {"XBNSERVE_MAX_BATCH_SIZE=16", "XBNSERVE_PREPROCESS={\"crop\": 192}",
                   "XBNSERVE_MODELS=a=x.st", NULL};
    char *argv[] = {"serve", NULL};
    assert_int_equal(config_load(1, argv, env, &c, &o, err, sizeof err), 0);
    assert_int_equal(c.nmodels, 1);
    assert_int_equal(c.models[0].max_batch_size, 16);
    assert_true((c.models[0].pre_set & PRE_CROP) && c.models[0].pre.crop == 192);

    char *argv2[] = {"serve", "--model", "y=y.st", "--model", "z=z.st", NULL};
    assert_int_equal(config_load(5, argv2, env, &c, &o, err, sizeof err), 0);
    assert_int_equal(c.nmodels, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(c.models[i].max_batch_size, 16);
        assert_true((c.models[i].pre_set & PRE_CROP) && c.models[i].pre.crop == 192);
        assert_int_equal(c.models[i].pre_set, PRE_CROP);
    }

    char *argv3[] = {"serve",           "--model",          "z=z.st", "--preprocess",
                     "{\"crop\": 160}", "--max-batch-size", "4",      NULL};
    assert_int_equal(config_load(7, argv3, env, &c, &o, err, sizeof err), 0);
    assert_int_equal(c.models[0].max_batch_size, 4);
    assert_int_equal(c.models[0].pre.crop, 160);

    char *bad[] = {"XBNSERVE_PREPROCESS={\"crop\": 0}", NULL};
    assert_int_not_equal(config_load(3, argv3, bad, &c, &o, err, sizeof err), 0);
    assert_non_null(strstr(err, "XBNSERVE_PREPROCESS"));
}

static void test_load_errors(void **state)
{
    (void)state;
    config c;
    config_opts o;
    char err[512];
    char *env_bad[] = {"XBNSERVE_PORTT=1", "XBNSERVE_MODELS=a=x", NULL};
    char *argv[] = {"serve", NULL};
    assert_int_not_equal(config_load(1, argv, env_bad, &c, &o, err, sizeof err), 0);
    assert_non_null(strstr(err, "XBNSERVE_PORTT"));
    char *env[] = {"XBNSERVE_MODELS=a=x", NULL};
    char *a1[] = {"serve", "--max-body-bytes", "-5", NULL};
    assert_int_not_equal(config_load(3, a1, env, &c, &o, err, sizeof err), 0);
    assert_non_null(strstr(err, "max_body_bytes"));
    char *a2[] = {"serve", "--bogus", "1", NULL};
    assert_int_not_equal(config_load(3, a2, env, &c, &o, err, sizeof err), 0);
    assert_non_null(strstr(err, "bogus"));
    char *a3[] = {"serve", "--port", NULL};
    assert_int_not_equal(config_load(2, a3, env, &c, &o, err, sizeof err), 0);
    char *a4[] = {"serve", "--config", "/nonexistent/x.json", NULL};
    assert_int_not_equal(config_load(3, a4, env, &c, &o, err, sizeof err), 0);
    assert_non_null(strstr(err, "/nonexistent/x.json"));
    char *a5[] = {"serve", NULL};
    char *none[] = {NULL};
    assert_int_not_equal(config_load(1, a5, none, &c, &o, err, sizeof err), 0);
    assert_non_null(strstr(err, "models"));
}

/* Every integer setting at its documented range (docs/security.md): the bound passes, one
 * past it fails; and its documented default. Literal values, so a changed limit is seen. */
static void test_ranges_and_defaults(void **state)
{
    (void)state;
    static const struct {
        const char *key;
        long long lo, hi, def;
        int model; /* a per-model key */
        size_t off;
    } keys[] = {
        {"port", 0, 65535, 8080, 0, offsetof(config, port)},
        {"http_threads", 0, 256, 0, 0, offsetof(config, http_threads)},
        {"decode_threads", 0, 256, 0, 0, offsetof(config, decode_threads)},
        {"decode_queue_size", 1, 1000000, 256, 0, offsetof(config, decode_queue_size)},
        {"max_connections", 1, 100000, 512, 0, offsetof(config, max_connections)},
        {"connection_timeout_s", 1, 3600, 30, 0, offsetof(config, connection_timeout_s)},
        {"max_body_bytes", 1024, 4294967296LL, 33554432, 0, offsetof(config, max_body_bytes)},
        {"max_image_pixels", 1, 4294967296LL, 13000000, 0, offsetof(config, max_image_pixels)},
        {"max_images_per_request", 1, 4096, 64, 0, offsetof(config, max_images_per_request)},
        {"max_header_bytes", 1024, 1048576, 16384, 0, offsetof(config, max_header_bytes)},
        {"max_url_bytes", 64, 65536, 2048, 0, offsetof(config, max_url_bytes)},
        {"drain_timeout_ms", 0, 3600000, 30000, 0, offsetof(config, drain_timeout_ms)},
        {"max_batch_size", 1, 256, 8, 1, offsetof(model_cfg, max_batch_size)},
        {"max_queue_delay_us", 0, 10000000, 2000, 1, offsetof(model_cfg, max_queue_delay_us)},
        {"max_queue_size", 1, 1000000, 256, 1, offsetof(model_cfg, max_queue_size)},
        {"request_timeout_ms", 1, 3600000, 30000, 1, offsetof(model_cfg, request_timeout_ms)},
        {"workers", 1, 256, 1, 1, offsetof(model_cfg, workers)},
        {"threads_per_worker", 0, 256, 0, 1, offsetof(model_cfg, threads_per_worker)},
    };
    static config c;
    char err[256], v[32];
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        config_defaults(&c);
        c.nmodels = 1;
        model_cfg_defaults(&c.models[0]);
        const char *base = keys[i].model ? (const char *)&c.models[0] : (const char *)&c;
        long long got;
        memcpy(&got, base + keys[i].off, sizeof got);
        if (got != keys[i].def) fail_msg("%s: default %lld", keys[i].key, got);
        const long long at[4] = {keys[i].lo, keys[i].hi, keys[i].lo - 1, keys[i].hi + 1};
        for (int j = 0; j < 4; j++) {
            snprintf(v, sizeof v, "%lld", at[j]);
            int r = config_set(&c, -1, keys[i].key, v, err, sizeof err);
            if (r != (j < 2 ? 0 : -1)) fail_msg("%s = %s: returned %d", keys[i].key, v, r);
            memcpy(&got, base + keys[i].off, sizeof got);
            if (j < 2 && got != at[j]) fail_msg("%s = %s: set to %lld", keys[i].key, v, got);
            if (j >= 2 && !strstr(err, keys[i].key)) fail_msg("%s: message '%s'", keys[i].key, err);
        }
    }
    /* text values: the whole string, decimal */
    config_defaults(&c);
    assert_int_equal(config_set(&c, -1, "port", "9000", err, sizeof err), 0);
    const char *bad[] = {"", " 9000", "9000 ", "0x2328", "9000x", "9e3", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (config_set(&c, -1, "port", bad[i], err, sizeof err) != -1)
            fail_msg("port '%s' accepted", bad[i]);
    assert_int_equal(c.port, 9000);
}

static void test_cpus(void **state)
{
    (void)state;
    assert_int_equal(cpus_from_cpu_max("max 100000\n"), 0);
    assert_int_equal(cpus_from_cpu_max("150000 100000\n"), 2);
    assert_int_equal(cpus_from_cpu_max("100000 100000"), 1);
    assert_int_equal(cpus_from_cpu_max("garbage"), -1);
    assert_int_equal(cpus_from_cpu_max("100001 100000\n"), 2);
    assert_int_equal(cpus_from_cpu_max("0 100000\n"), -1);
    assert_int_equal(cpus_from_cpu_max("150000 0\n"), -1);
    assert_int_equal(cpus_from_cpu_max("150000 100000x\n"), -1);
    assert_int_equal(cpus_from_cpu_max("max\n"), -1);
    assert_int_equal(cpus_from_cpu_max("9223372036854775807 1\n"), 2147483647);
    assert_true(cpus_usable() >= 1);
}

/* The gemm setting's values are engine_gemm's, in order: serve.c passes the index on. */
static void test_gemm_names(void **state)
{
    (void)state;
    static const char *const names[] = {"auto", "avx512", "avx2", "blas"};
    config c;
    char err[256];
    config_defaults(&c);
    assert_int_equal(c.gemm, ENGINE_GEMM_AUTO);
    for (int i = 0; i < 4; i++) {
        engine_gemm g;
        assert_int_equal(config_set(&c, -1, "gemm", names[i], err, sizeof err), 0);
        assert_int_equal(engine_gemm_parse(names[i], &g), 0);
        assert_int_equal(c.gemm, g);
    }
    assert_int_equal(config_set(&c, -1, "gemm", "sse2", err, sizeof err), -1);
    assert_non_null(strstr(err, "auto|avx512|avx2|blas"));
}

/* The names a load or unload path may carry: those a model of the configuration may have. */
static void test_name_ok(void **state)
{
    (void)state;
    char longest[CFG_NAME_MAX];
    memset(longest, 'x', sizeof longest);
    assert_int_equal(config_name_ok("resnet-50_v1.2", 14), 1);
    assert_int_equal(config_name_ok("ab/c", 2), 1); /* only the n bytes count */
    assert_int_equal(config_name_ok(longest, CFG_NAME_MAX - 1), 1);
    assert_int_equal(config_name_ok(longest, CFG_NAME_MAX), 0);
    assert_int_equal(config_name_ok("", 0), 0);
    assert_int_equal(config_name_ok("a b", 3), 0);
    assert_int_equal(config_name_ok("a/b", 3), 0);
    assert_int_equal(config_name_ok("a%2", 3), 0);
    assert_int_equal(config_name_ok("\xc3\xa9", 2), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file),        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_precedence),  cmocka_unit_test(test_env_every_model),
        cmocka_unit_test(test_load_errors), cmocka_unit_test(test_ranges_and_defaults),
        cmocka_unit_test(test_cpus),        cmocka_unit_test(test_gemm_names),
        cmocka_unit_test(test_name_ok),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
