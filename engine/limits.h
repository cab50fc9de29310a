/* limits.h - every limit of the engine, named once with the reason for its value, and
 * ENGINE_ASSERT, the always-on check of the kernels' invariants.
 *
 * A model file and a session's sizes come from outside: the loader and session_new_threads
 * refuse what exceeds these limits with a message. Inside, the kernels rely on what was
 * checked (a tap count, a tile's rows, channels within their scratch); ENGINE_ASSERT states
 * those assumptions where a kernel starts and, if one is ever broken, aborts naming file,
 * line and expression instead of writing out of bounds. The checks are cheap (once per call,
 * never in an inner loop) and stay on in release builds.
 *
 * Thresholds chosen by measurement (TAIL_MAX_PIXELS, GN_STEP_ROWS, CONV_SPLIT_COLS_BELOW,
 * BARRIER_SPINS in session.c) are not limits: they stay next to the code they tune, with
 * their measurements.
 */
#ifndef XBN_LIMITS_H
#define XBN_LIMITS_H

#include <stdio.h>
#include <stdlib.h>

/* ---- the model file (safetensors.c, model.c) ---- */

/* A real header is kilobytes of names, shapes and offsets: refuse absurd lengths. */
#define ST_MAX_HEADER_BYTES (64u << 20)
/* The networks' tensors have at most 4 dimensions; 8 leaves room for foreign files. */
#define ST_MAX_DIMS 8
/* One dimension: counts and byte offsets of 2^30-sized dimensions stay far from overflow. */
#define ST_MAX_DIM (1u << 30)
/* Classes: ImageNet-21k has 21841; each class costs a label string and a logit per sample. */
#define MODEL_MAX_CLASSES 100000
/* Channels of any tensor: 4x ResNet50's widest (2048). Sessions size their per-channel
 * scratch by the model's widest tensor, so this bounds that scratch too. */
#define MODEL_MAX_CHANNELS 8192
/* Zeros for the biases of convolutions without bias or BatchNorm, on top of the file's
 * floats in the weights allocation: ResNet50 has about 30k output channels. */
#define MODEL_MAX_BIAS_FLOATS (1 << 20)
/* GroupNorm groups: no network uses more than 64; 4096 is any plausible experiment. */
#define MODEL_MAX_GN_GROUPS 4096
/* The daemon's input side S: below 32 the five stride-2 stages leave nothing; 4096 is a
 * 200 MB input per sample. */
#define MODEL_MIN_INPUT 32
#define MODEL_MAX_INPUT 4096
/* MobileNetV2's width multiplier: the published range is 0.35-1.4; beyond 4 the channels near
 * MODEL_MAX_CHANNELS. */
#define MODEL_MIN_WIDTH 0.1
#define MODEL_MAX_WIDTH 4.0
/* A tensor name or shape the builder composes ("layer4.2.downsample.1.running_var" is 33). */
#define MODEL_NAME_BYTES 96

/* ---- sessions (session.c) ---- */

/* Input side of a session: beyond 8192 one feature map of the stem is gigabytes. */
#define SESSION_MAX_SIDE 8192
/* Samples in one batch: the arena holds every sample's input and, on the BLAS path, every
 * sample's activations. */
#define SESSION_MAX_BATCH 4096
/* Team size: the session keeps its members' thread ids in a fixed array. */
#define SESSION_MAX_THREADS 64

/* ---- kernels (engine/kernels/) ---- */

/* Kernel side of a dense convolution: the 7x7 stems are the largest of both families; the
 * packed GEMM keeps a tile's row pointers for every tap in a fixed array. */
#define KERNEL_MAX_SIDE 7
#define KERNEL_MAX_TAPS (KERNEL_MAX_SIDE * KERNEL_MAX_SIDE)
/* Channels up to which a tap row at the edge of the input is copied, zero-padded, so that
 * every tile can read one run per kernel row: the 3-channel stems (gemm_packed.c). */
#define KERNEL_MERGE_MAX_C 8

/* ---- what the kernels assume of the machine's caches ---- */

/* The smallest L2 of the AVX-512 server cores: Winograd weights that fit are re-read per
 * chunk of tiles, larger ones streamed once (winograd.c). */
#define WINO_L2_BYTES (1 << 20)
/* Packed weights up to this size are read per row tile from L2 (tiles outside, panels
 * inside); larger ones panel by panel (gemm_packed.c). */
#define GEMM_TILES_OUTER_BYTES (256 << 10)
/* Taken panel by panel, a panel larger than this is taken in parts of whole kernel rows no
 * larger (gemm_packed.c), so that every row tile re-reads the part from L2, not the whole panel
 * from L3: ResNet50's 3x3/2 layer4.0.conv2 has 590 KB panels, Zen 3 a 512 KB L2. */
#define GEMM_PART_BYTES (192 << 10)

/* A cache line in floats (64 bytes): every tensor of a model's weights allocation starts on
 * one (gemm_packed.h). Where malloc had put them, 16 bytes past a line, every other 32-byte
 * load of the AVX2 GEMM straddled two lines: 3-5% slower on most of ResNet50's shapes (Zen 3,
 * same process, interleaved). */
#define MODEL_WEIGHTS_ALIGN 16

/* ---- messages ---- */

/* Every error buffer of the engine: a message names a tensor (at most ~100 bytes) and its
 * shapes, or a path and the reason. */
#define ENGINE_ERR_BYTES 512

/* ---- invariants ---- */

/* Abort with file:line and the failed expression when a kernel's assumption is broken. */
#define ENGINE_ASSERT(cond) ((cond) ? (void)0 : engine_assert_fail(__FILE__, __LINE__, #cond))

_Noreturn static inline void engine_assert_fail(const char *file, int line, const char *expr)
{
    fprintf(stderr, "%s:%d: engine invariant failed: %s\n", file, line, expr);
    abort();
}

#endif
