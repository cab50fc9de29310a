/* kernel_table.h - the kernels a model runs, chosen once at load: entry points and the tile
 * geometry their callers need, one table per instruction set, as XNNPACK's gemm-config does.
 *
 * model_load picks a table (kernel_table_pick) from the CPU's features and the load option
 * and keeps it in the model's net; session.c and winograd.c call through it and never test
 * the CPU or an instruction set themselves. The tables:
 *   avx512  the packed GEMM's 8x32 AVX-512 tiles, Winograd transforms 16 lanes wide; the
 *           AVX2 build of kernels.c. Needs AVX-512F, AVX2 and FMA.
 *   avx2    6x16 AVX2 + FMA tiles, transforms 8 lanes wide, the AVX2 build of kernels.c.
 *           Needs AVX2 and FMA. The same bits as avx512 (the same FMA sequence everywhere);
 *           its packed panels are two halves of 16 columns (gemm_pack_b_halves).
 *   blas    no packed GEMM: convolutions are BLAS calls on im2col rows (blas.h); the baseline
 *           build of kernels.c. Any x86-64 CPU; its last bits differ from the packed tables'.
 * A table is immutable and static: a model holds a pointer to one.
 */
#ifndef XBN_KERNEL_TABLE_H
#define XBN_KERNEL_TABLE_H

#include <stddef.h>

#include "engine/engine.h"
#include "engine/kernels/gemm_packed.h"
#include "engine/kernels/kernels.h"
#include "engine/kernels/winograd.h"

typedef struct kernel_table {
    const char *name; /* model_info.gemm: "avx512", "avx2" or "blas" */

    /* The packed GEMM and Winograd; all NULL in the BLAS table. */
    int tile_rows;  /* rows of one micro-kernel tile: Winograd, GroupNorm steps take whole tiles */
    int panel_cols; /* columns of one packed panel: a team splits a GEMM's columns in panels */
    gemm_pack_fn *pack;          /* at load: a weight matrix into panels */
    wino_pack_fn *wino_pack;     /* at load: Winograd's transformed weights, packed */
    gemm_packed_fn *gemm;        /* a . packed b, with the epilogue */
    conv_packed_fn *conv;        /* KxK or strided convolution straight from the input */
    wino_input_fn *wino_input;   /* Winograd's input transform */
    wino_output_fn *wino_output; /* Winograd's output transform, with the epilogue */

    /* The per-sample NHWC kernels of kernels.h, built for this table's instruction set. */
    dwconv3x3_fn *dwconv3x3;
    gn_row_stats_fn *gn_row_stats;
    gn_finish_fn *gn_finish;
    gn_apply_fn *gn_apply;
    maxpool_fn *maxpool;
    gap_fn *gap;
    dense_fn *dense;
    nchw_to_nhwc_fn *nchw_to_nhwc;
} kernel_table;

/* The table for `want` on this CPU: ENGINE_GEMM_AUTO takes the best the CPU runs (avx512,
 * avx2, blas in that order). A forced table the CPU lacks fails with a message naming the
 * missing features. Returns 0 with *out set, or XBN_EINVAL with the message in err. */
int kernel_table_pick(engine_gemm want, const kernel_table **out, char *err, size_t errlen);

#endif
