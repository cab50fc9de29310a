/* test_batch_invariance.c - the engine's guarantee: a sample's logits are bit-for-bit the
 * same alone or in any batch, at any position, with 1 and with 2 threads.
 *
 * For each network: 16 random samples get their batch-1 logits; then for every batch size
 * 1..16, two batches (two different placements of the samples) must reproduce each sample's
 * batch-1 logits exactly (memcmp). Small odd input (67x67) keeps it quick and exercises the
 * odd-size padding paths. Models come from `make models` ($XBN_MODELS). Every GEMM path is
 * covered: the packed one with the CPU's best kernels, its AVX2 kernels on an AVX-512 CPU
 * (XBN_GEMM=avx2), and BLAS (XBN_GEMM=blas).
 */
#include <string.h>

#include "engine/engine.h"
#include "engine/net.h"
#include "tests/unit/testutil.h"

enum { POOL = 16, SIZE = 67 };

static void check_model(const char *file, int threads)
{
    char path[512], err[512];
    model *m = NULL;
    session *s = NULL;
    test_model_path(path, sizeof path, file);
    if (model_load(path, &m, err, sizeof err)) fail_msg("%s", err);
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
    if (threads > 1 && model_get_net(m)->packed_gemm) assert_true(session_joins(s) > 0);
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
    check_model("resnet50-torch.safetensors", 1);
    check_model("resnet50-torch.safetensors", 2);
}

static void test_resnet50_keras(void **state)
{
    (void)state;
    check_model("resnet50-keras.safetensors", 1);
    check_model("resnet50-keras.safetensors", 2);
}

static void test_mobilenetv2_torch(void **state)
{
    (void)state;
    check_model("mobilenetv2-torch.safetensors", 1);
    check_model("mobilenetv2-torch.safetensors", 2);
}

static void test_mobilenetv2_keras(void **state)
{
    (void)state;
    check_model("mobilenetv2-keras-035.safetensors", 1);
    check_model("mobilenetv2-keras-035.safetensors", 2);
    check_model("mobilenetv2-keras-100.safetensors", 2);
}

/* With packed GEMMs every kernel gives an element the same bits however the team splits the
 * work, so the thread count does not change a single bit either. */
static void test_threads_packed(void **state)
{
    (void)state;
    char path[512], err[512];
    model *m = NULL;
    if (model_load(test_model_path(path, sizeof path, "mobilenetv2-keras-035.safetensors"), &m, err,
                   sizeof err))
        fail_msg("%s", err);
    if (!model_get_net(m)->packed_gemm) {
        fprintf(stderr, "test_threads_packed: no AVX-512 or AVX2 + FMA here, BLAS path only\n");
        model_free(m);
        return;
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

/* The AVX2 kernels (6-row tiles) on an AVX-512 CPU, where the models above ran AVX-512. */
static void test_avx2_path(void **state)
{
    (void)state;
    if (gemm_isa_best() != GEMM_AVX512) {
        fprintf(stderr, "test_avx2_path: no AVX-512 here, the tests above ran the AVX2 kernels\n");
        return;
    }
    setenv("XBN_GEMM", "avx2", 1);
    char path[512], err[512];
    model *m = NULL;
    if (model_load(test_model_path(path, sizeof path, "mobilenetv2-keras-035.safetensors"), &m, err,
                   sizeof err))
        fail_msg("%s", err);
    assert_int_equal(model_get_net(m)->packed_gemm, GEMM_AVX2); /* the switch took */
    model_free(m);
    check_model("mobilenetv2-keras-035.safetensors", 2);
    check_model("resnet50-torch.safetensors", 2);
    unsetenv("XBN_GEMM");
}

/* The BLAS path, which the engine takes on CPUs without AVX2 and FMA (forced here). */
static void test_blas_path(void **state)
{
    (void)state;
    setenv("XBN_GEMM", "blas", 1);
    check_model("mobilenetv2-keras-035.safetensors", 2);
    check_model("resnet50-torch.safetensors", 1);
    unsetenv("XBN_GEMM");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resnet50_torch),    cmocka_unit_test(test_resnet50_keras),
        cmocka_unit_test(test_mobilenetv2_torch), cmocka_unit_test(test_mobilenetv2_keras),
        cmocka_unit_test(test_threads_packed),    cmocka_unit_test(test_avx2_path),
        cmocka_unit_test(test_blas_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
