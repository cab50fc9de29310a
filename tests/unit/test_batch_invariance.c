/* test_batch_invariance.c - the engine's guarantee: a sample's logits are bit-for-bit the
 * same alone or in any batch, at any position, with 1 and with 2 threads.
 *
 * For each network: 16 random samples get their batch-1 logits; then for every batch size
 * 1..16, two batches (two different placements of the samples) must reproduce each sample's
 * batch-1 logits exactly (memcmp). Small odd input (67x67) keeps it quick and exercises the
 * odd-size padding paths. Models come from `make models` ($XBN_MODELS). Every kernel table is
 * covered: the four networks with the CPU's best kernels (auto), then two of them with each
 * table forced (avx512, avx2, blas; a table this CPU lacks reports SKIPPED).
 */
#include <string.h>

#include "engine/engine.h"
#include "engine/kernels/kernel_table.h"
#include "engine/limits.h"
#include "engine/net.h"
#include "tests/unit/testutil.h"

enum { POOL = 16, SIZE = 67 };

static void check_model(const char *file, int threads, engine_gemm gemm)
{
    char path[512], err[ENGINE_ERR_BYTES];
    model *m = NULL;
    session *s = NULL;
    model_load_opts opts = {gemm};
    test_model_path(path, sizeof path, file);
    if (model_load(path, &opts, &m, err, sizeof err)) fail_msg("%s", err);
    if (session_new_threads(m, SIZE, SIZE, POOL, threads, &s, err, sizeof err)) fail_msg("%s", err);
    int classes = model_get_info(m)->classes;
    size_t in_sz = (size_t)3 * SIZE * SIZE;
    float *pool = malloc(POOL * in_sz * sizeof *pool),
          *batch = malloc(POOL * in_sz * sizeof *batch);
    float *alone = malloc((size_t)POOL * classes * sizeof *alone);
    float *got = malloc((size_t)POOL * classes * sizeof *got);
    test_rng r = {1234};
    rng_fill(&r, pool, POOL * in_sz, 2.0f);
    for (int i = 0; i < POOL; i++)
        assert_int_equal(session_run(s, pool + i * in_sz, 1, alone + (size_t)i * classes), 0);
    /* The samples really differ, so equality below is not a coincidence of constant output. */
    assert_true(memcmp(alone, alone + classes, classes * sizeof *alone) != 0);
    int mismatches = 0;
    for (int n = 1; n <= POOL; n++)
        for (int rep = 0; rep < 2; rep++) {
            int pick[POOL];
            for (int p = 0; p < n; p++) pick[p] = (p * (rep ? 7 : 1) + n + rep * 3) % POOL;
            for (int p = 0; p < n; p++)
                memcpy(batch + p * in_sz, pool + pick[p] * in_sz, in_sz * sizeof *batch);
            assert_int_equal(session_run(s, batch, n, got), 0);
            for (int p = 0; p < n; p++)
                if (memcmp(got + (size_t)p * classes, alone + (size_t)pick[p] * classes,
                           classes * sizeof *got)) {
                    if (!mismatches++)
                        fprintf(stderr, "%s threads %d: batch %d position %d differs\n", file,
                                threads, n, p);
                }
        }
    assert_int_equal(mismatches, 0);
    /* odd batches leave a member without a whole sample while another is in one: the team
     * finishes it (the packed path), and those samples were among the ones compared */
    if (threads > 1 && model_get_net(m)->kt->gemm) assert_true(session_joins(s) > 0);
    /* the session's own input buffer (what the daemon's workers fill) serves as well */
    memcpy(session_input(s), pool, POOL * in_sz * sizeof *pool);
    assert_int_equal(session_run(s, session_input(s), POOL, got), 0);
    assert_memory_equal(got, alone, (size_t)POOL * classes * sizeof *got);
    assert_int_equal(session_run(s, batch, 0, got), XBN_EINVAL);
    assert_int_equal(session_run(s, batch, POOL + 1, got), XBN_EINVAL);
    free(pool), free(batch), free(alone), free(got);
    session_free(s);
    model_free(m);
}

static void test_resnet50_torch(void **state)
{
    (void)state;
    check_model("resnet50-torch.safetensors", 1, ENGINE_GEMM_AUTO);
    check_model("resnet50-torch.safetensors", 2, ENGINE_GEMM_AUTO);
}

static void test_resnet50_keras(void **state)
{
    (void)state;
    check_model("resnet50-keras.safetensors", 1, ENGINE_GEMM_AUTO);
    check_model("resnet50-keras.safetensors", 2, ENGINE_GEMM_AUTO);
}

static void test_mobilenetv2_torch(void **state)
{
    (void)state;
    check_model("mobilenetv2-torch.safetensors", 1, ENGINE_GEMM_AUTO);
    check_model("mobilenetv2-torch.safetensors", 2, ENGINE_GEMM_AUTO);
}

static void test_mobilenetv2_keras(void **state)
{
    (void)state;
    check_model("mobilenetv2-keras-035.safetensors", 1, ENGINE_GEMM_AUTO);
    check_model("mobilenetv2-keras-035.safetensors", 2, ENGINE_GEMM_AUTO);
    check_model("mobilenetv2-keras-100.safetensors", 2, ENGINE_GEMM_AUTO);
}

/* The table `gemm` names, or skip() when this CPU lacks it. */
static const kernel_table *table_or_skip(engine_gemm gemm)
{
    const kernel_table *kt = NULL;
    char err[ENGINE_ERR_BYTES];
    if (kernel_table_pick(gemm, &kt, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        skip();
    }
    return kt;
}

/* With packed GEMMs every kernel gives an element the same bits however the team splits the
 * work, so the thread count does not change a single bit either. */
static void test_threads_packed(void **state)
{
    (void)state;
    char path[512], err[ENGINE_ERR_BYTES];
    model *m = NULL;
    if (model_load(test_model_path(path, sizeof path, "mobilenetv2-keras-035.safetensors"), NULL,
                   &m, err, sizeof err))
        fail_msg("%s", err);
    if (!model_get_net(m)->kt->gemm) {
        fprintf(stderr, "test_threads_packed: no AVX-512 or AVX2 + FMA here, BLAS path only\n");
        model_free(m);
        skip();
    }
    enum { N = 5 };
    int classes = model_get_info(m)->classes;
    float *x = malloc(sizeof(float) * N * 3 * SIZE * SIZE);
    float *l1 = malloc(sizeof(float) * N * classes), *l2 = malloc(sizeof(float) * N * classes);
    test_rng r = {77};
    rng_fill(&r, x, (size_t)N * 3 * SIZE * SIZE, 2.0f);
    session *s1 = NULL, *s2 = NULL;
    if (session_new_threads(m, SIZE, SIZE, N, 1, &s1, err, sizeof err) ||
        session_new_threads(m, SIZE, SIZE, N, 2, &s2, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(session_run(s1, x, N, l1), 0);
    assert_int_equal(session_run(s2, x, N, l2), 0);
    assert_memory_equal(l1, l2, sizeof(float) * N * classes);
    session_free(s1), session_free(s2);
    free(x), free(l1), free(l2);
    model_free(m);
}

/* Profiling (session_op_stats, what bench/fmapeak.c reports per layer) observes and changes
 * nothing: the logits of a profiled run are the bits of an unprofiled one, every op is
 * described, the FLOPs add up to the network's, and Winograd's multiplications are fewer. */
static void test_op_stats(void **state)
{
    (void)state;
    char path[512], err[ENGINE_ERR_BYTES];
    model *m = NULL;
    session *s = NULL;
    if (model_load(test_model_path(path, sizeof path, "resnet50-torch.safetensors"), NULL, &m, err,
                   sizeof err) ||
        session_new_threads(m, SIZE, SIZE, 2, 2, &s, err, sizeof err))
        fail_msg("%s", err);
    int classes = model_get_info(m)->classes;
    float *x = malloc(sizeof(float) * 2 * 3 * SIZE * SIZE);
    float *plain = malloc(sizeof(float) * 2 * classes),
          *profiled = malloc(sizeof(float) * 2 * classes);
    test_rng r = {99};
    rng_fill(&r, x, (size_t)2 * 3 * SIZE * SIZE, 2.0f);
    assert_int_equal(session_run(s, x, 2, plain), 0);
    assert_int_equal(session_profile(s, 1), 0);
    assert_int_equal(session_run(s, x, 2, profiled), 0);
    assert_memory_equal(plain, profiled, sizeof(float) * 2 * classes);
    double flops = 0;
    int wino = 0, tail = 0;
    session_op_stats st;
    for (int i = 0; i < session_op_count(s); i++) {
        assert_int_equal(session_op_stats_get(s, i, &st), 0);
        assert_non_null(st.name);
        assert_int_equal(st.samples, 2);
        assert_true(st.ms >= 0 && st.flops >= 0);
        flops += st.flops;
        wino += st.wino > 0, tail += st.tail;
        if (st.wino)
            assert_true(st.mul_flops < st.flops);
        else
            assert_true(st.mul_flops == st.flops);
    }
    assert_true(fabs(flops - session_flops_per_sample(s)) <= 1e-9 * flops);
    assert_true(wino > 0 && tail > 0); /* the test size puts layer3-4 in the tail */
    assert_int_equal(session_op_stats_get(s, session_op_count(s), &st), XBN_EINVAL);
    assert_int_equal(session_op_stats_get(s, -1, &st), XBN_EINVAL);
    session_free(s);
    model_free(m);
    free(x), free(plain), free(profiled);
}

/* One table forced (the test's state): the load takes it and names it in model_info.gemm, and
 * two networks keep batch invariance on it. */
static void test_forced_table(void **state)
{
    engine_gemm gemm = *(const engine_gemm *)*state;
    const kernel_table *kt = table_or_skip(gemm);
    char path[512], err[ENGINE_ERR_BYTES];
    model *m = NULL;
    model_load_opts opts = {gemm};
    if (model_load(test_model_path(path, sizeof path, "mobilenetv2-keras-035.safetensors"), &opts,
                   &m, err, sizeof err))
        fail_msg("%s", err);
    assert_string_equal(model_get_info(m)->gemm, kt->name); /* the choice took */
    assert_ptr_equal(model_get_net(m)->kt, kt);
    model_free(m);
    check_model("mobilenetv2-keras-035.safetensors", 2, gemm);
    check_model("resnet50-torch.safetensors", gemm == ENGINE_GEMM_BLAS ? 1 : 2, gemm);
}

/* 1 when /proc/cpuinfo's flags (the kernel's view, not the engine's) list `flag`. */
static int cpu_flag(const char *flag)
{
    char line[8192], want[64];
    int found = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    assert_non_null(f);
    snprintf(want, sizeof want, " %s ", flag);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "flags", 5)) {
            line[strcspn(line, "\n")] = ' ';
            found = strstr(line, want) != NULL;
            break;
        }
    fclose(f);
    return found;
}

/* Forcing kernels the CPU cannot run fails the load, naming what it lacks; runs only where
 * some table is out of reach (here or on a CPU without AVX2). */
static void test_forced_table_missing(void **state)
{
    (void)state;
    char path[512], err[ENGINE_ERR_BYTES];
    model *m = NULL;
    int avx2 = cpu_flag("avx2") && cpu_flag("fma"), tried = 0;
    test_model_path(path, sizeof path, "mobilenetv2-keras-035.safetensors");
    if (!avx2 || !cpu_flag("avx512f")) {
        model_load_opts opts = {ENGINE_GEMM_AVX512};
        assert_int_equal(model_load(path, &opts, &m, err, sizeof err), XBN_EINVAL);
        assert_null(m);
        assert_non_null(strstr(err, "gemm avx512: this CPU lacks "));
        assert_non_null(strstr(err, avx2 ? "AVX-512F" : "AVX2"));
        tried++;
    }
    if (!avx2) {
        model_load_opts opts = {ENGINE_GEMM_AVX2};
        assert_int_equal(model_load(path, &opts, &m, err, sizeof err), XBN_EINVAL);
        assert_non_null(strstr(err, "gemm avx2: this CPU lacks "));
        tried++;
    }
    if (!tried) skip(); /* every table runs here */
}

static void test_gemm_parse(void **state)
{
    (void)state;
    static const char *const names[] = {"auto", "avx512", "avx2", "blas"};
    static const engine_gemm want[] = {ENGINE_GEMM_AUTO, ENGINE_GEMM_AVX512, ENGINE_GEMM_AVX2,
                                       ENGINE_GEMM_BLAS};
    engine_gemm g;
    for (int i = 0; i < 4; i++) {
        g = (engine_gemm)-1;
        assert_int_equal(engine_gemm_parse(names[i], &g), 0);
        assert_int_equal(g, want[i]);
    }
    assert_int_equal(engine_gemm_parse("AVX2", &g), -1);
    assert_int_equal(engine_gemm_parse("", &g), -1);
    assert_int_equal(engine_gemm_parse("avx", &g), -1);
}

static const engine_gemm gemm_avx512 = ENGINE_GEMM_AVX512, gemm_avx2 = ENGINE_GEMM_AVX2,
                         gemm_blas = ENGINE_GEMM_BLAS;
#define FORCED(t)                                                                                  \
    {                                                                                              \
        "test_forced_table/" #t, test_forced_table, NULL, NULL, (void *)&gemm_##t                  \
    }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resnet50_torch),
        cmocka_unit_test(test_resnet50_keras),
        cmocka_unit_test(test_mobilenetv2_torch),
        cmocka_unit_test(test_mobilenetv2_keras),
        cmocka_unit_test(test_threads_packed),
        cmocka_unit_test(test_op_stats),
        FORCED(avx512),
        FORCED(avx2),
        FORCED(blas),
        cmocka_unit_test(test_forced_table_missing),
        cmocka_unit_test(test_gemm_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
