/* kernel_table.c - the three kernel tables and the choice among them. See kernel_table.h.
 *
 * Built for baseline x86-64, like all of the program but the kernel files: this is the code
 * that decides whether the CPU may run them. GCC's __builtin_cpu_supports reports AVX2 and
 * AVX-512 only when the operating system saves their registers (XGETBV), so a feature it
 * reports is usable.
 */
#include "engine/kernels/kernel_table.h"

#include <stdio.h>
#include <string.h>

static const kernel_table table_avx512 = {
    .name = "avx512",
    .tile_rows = GEMM_AVX512_TILE_ROWS,
    .panel_cols = GEMM_PANEL_COLS,
    .pack = gemm_pack_b,
    .wino_pack = wino_pack_weights,
    .gemm = gemm_packed_avx512,
    .conv = conv_packed_avx512,
    .wino_input = wino_input_avx512,
    .wino_output = wino_output_avx512,
    .dwconv3x3 = dwconv3x3_avx2,
    .gn_row_stats = gn_row_stats_avx2,
    .gn_finish = gn_finish_avx2,
    .gn_apply = gn_apply_avx2,
    .maxpool = maxpool_avx2,
    .gap = gap_avx2,
    .dense = dense_avx2,
    .nchw_to_nhwc = nchw_to_nhwc_avx2,
};

static const kernel_table table_avx2 = {
    .name = "avx2",
    .tile_rows = GEMM_AVX2_TILE_ROWS,
    .panel_cols = GEMM_PANEL_COLS,
    .pack = gemm_pack_b_halves,
    .wino_pack = wino_pack_weights,
    .gemm = gemm_packed_avx2,
    .conv = conv_packed_avx2,
    .wino_input = wino_input_avx2,
    .wino_output = wino_output_avx2,
    .dwconv3x3 = dwconv3x3_avx2,
    .gn_row_stats = gn_row_stats_avx2,
    .gn_finish = gn_finish_avx2,
    .gn_apply = gn_apply_avx2,
    .maxpool = maxpool_avx2,
    .gap = gap_avx2,
    .dense = dense_avx2,
    .nchw_to_nhwc = nchw_to_nhwc_avx2,
};

static const kernel_table table_blas = {
    .name = "blas",
    .dwconv3x3 = dwconv3x3_base,
    .gn_row_stats = gn_row_stats_base,
    .gn_finish = gn_finish_base,
    .gn_apply = gn_apply_base,
    .maxpool = maxpool_base,
    .gap = gap_base,
    .dense = dense_base,
    .nchw_to_nhwc = nchw_to_nhwc_base,
};

static const char *const gemm_names[] = {"auto", "avx512", "avx2", "blas"};

int engine_gemm_parse(const char *name, engine_gemm *out)
{
    for (int i = 0; i < (int)(sizeof gemm_names / sizeof gemm_names[0]); i++)
        if (!strcmp(name, gemm_names[i])) {
            *out = (engine_gemm)i;
            return 0;
        }
    return -1;
}

int kernel_table_pick(engine_gemm want, const kernel_table **out, char *err, size_t errlen)
{
    __builtin_cpu_init();
    int has_avx512f = __builtin_cpu_supports("avx512f"), has_avx2 = __builtin_cpu_supports("avx2");
    int has_fma = __builtin_cpu_supports("fma");
    int avx2 = has_avx2 && has_fma, avx512 = avx2 && has_avx512f;
    switch (want) {
    case ENGINE_GEMM_AUTO:
        *out = avx512 ? &table_avx512 : avx2 ? &table_avx2 : &table_blas;
        return 0;
    case ENGINE_GEMM_AVX512:
        *out = avx512 ? &table_avx512 : NULL;
        break;
    case ENGINE_GEMM_AVX2:
        *out = avx2 ? &table_avx2 : NULL;
        break;
    case ENGINE_GEMM_BLAS:
        *out = &table_blas;
        break;
    default:
        snprintf(err, errlen, "gemm: unknown kernels %d", (int)want);
        return XBN_EINVAL;
    }
    if (*out) return 0;
    char missing[64] = "";
    const char *names[3] = {want == ENGINE_GEMM_AVX512 && !has_avx512f ? "AVX-512F" : NULL,
                            has_avx2 ? NULL : "AVX2", has_fma ? NULL : "FMA"};
    for (int i = 0; i < 3; i++)
        if (names[i])
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s",
                     missing[0] ? " and " : "", names[i]);
    snprintf(err, errlen, "gemm %s: this CPU lacks %s (it runs %s)", gemm_names[want], missing,
             avx512 ? "avx512, avx2 and blas"
             : avx2 ? "avx2 and blas"
                    : "blas only");
    return XBN_EINVAL;
}
