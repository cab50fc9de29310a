/* engine.h - the xbnserve inference engine: load a model file, run batched forward passes.
 *
 * A `model` owns the mapped weights file, the parsed metadata and one allocation holding
 * every folded weight (BatchNorm folded into its convolution at load time). It is
 * read-only after model_load and may be shared by any number of threads.
 *
 * A `session` is one worker's view of a model at one input size: the flat op plan with
 * shapes, and an activation arena sized at creation for `max_batch` samples. Nothing is
 * allocated inside session_run. A session is used by one thread at a time.
 *
 * Every sample's logits depend only on that sample: they are bit-for-bit identical whatever
 * the batch size and the sample's position in the batch (tests/unit/test_batch_invariance.c).
 *
 * Functions that can fail return 0 on success and a negative status otherwise, and write a
 * one-line message naming the problem into `err` (at most `errlen` bytes, NUL-terminated).
 */
#ifndef XBN_ENGINE_H
#define XBN_ENGINE_H

#include <stddef.h>
#include <stdio.h>

enum {
    XBN_OK = 0,
    XBN_EIO = -1,     /* could not open, stat or map the file */
    XBN_EFORMAT = -2, /* the file is not a valid model file: see the message */
    XBN_ENOMEM = -3,  /* an allocation failed */
    XBN_EINVAL = -4,  /* bad argument: size, batch, shape */
};

typedef enum { ARCH_RESNET50, ARCH_MOBILENETV2 } model_arch;
typedef enum { FLAVOUR_TORCH, FLAVOUR_KERAS } model_flavour;

typedef struct {
    model_arch arch;
    model_flavour flavour;
    double width;   /* MobileNetV2 width multiplier (double: channel rounding must match Python) */
    int classes;    /* logits per sample */
    int gn_groups;  /* G in min(G, channels) */
    int input_size; /* S: the daemon feeds [N,3,S,S] */
    int untrained;  /* generated weights, not a real model */
    /* The file's "preprocess" metadata, JSON text, or NULL when it has none; owned by the
     * model. The engine does not read it: image/preprocess.h does (docs/model-format.md). */
    const char *preprocess_json;
    const char *const *labels; /* `classes` names, or NULL; owned by the model */
    const char *source;        /* free text from the file, "" if none */
    const char *gemm; /* the kernels chosen at load (model_load_opts): "avx512" or "avx2" (the
                         engine's own packed GEMM) or "blas" */
} model_info;

typedef struct model model;
typedef struct session session;

/* Which kernels run the model (docs/engine.md): the engine's own GEMM on AVX-512 or on AVX2 +
 * FMA, or BLAS calls (any x86-64 CPU). AUTO takes the best this CPU runs. */
typedef enum {
    ENGINE_GEMM_AUTO,
    ENGINE_GEMM_AVX512,
    ENGINE_GEMM_AVX2,
    ENGINE_GEMM_BLAS
} engine_gemm;

/* Options of model_load; all zero (or a NULL pointer) means the defaults. */
typedef struct {
    engine_gemm gemm;
} model_load_opts;

/* "auto", "avx512", "avx2" or "blas" -> *out; 0, or -1 for any other name. */
int engine_gemm_parse(const char *name, engine_gemm *out);

/* Map `path`, validate header, metadata and every tensor against the architecture, fold BN
 * and build the weights for the kernels `opts` asks for (NULL: defaults). Forcing kernels this
 * CPU cannot run fails with XBN_EINVAL and a message naming what it lacks. On success *out owns
 * everything; free with model_free. */
int model_load(const char *path, const model_load_opts *opts, model **out, char *err,
               size_t errlen);
void model_free(model *m); /* accepts NULL */
const model_info *model_get_info(const model *m);
const char *arch_name(model_arch a);
const char *flavour_name(model_flavour f);

/* Plan the network for [*, 3, h, w] inputs and allocate an arena for up to max_batch samples.
 * The session borrows `m`, which must outlive it. */
int session_new(const model *m, int h, int w, int max_batch, session **out, char *err,
                size_t errlen);
/* The same with a team of `threads` threads (the caller counts as one) that split every op of
 * session_run. Results are bit-identical across batch sizes for a given thread count. */
int session_new_threads(const model *m, int h, int w, int max_batch, int threads, session **out,
                        char *err, size_t errlen);
void session_free(session *s); /* accepts NULL */

/* Forward n samples (1 <= n <= max_batch): input [n,3,h,w] NCHW float32, logits [n,classes]
 * (pre-softmax). Returns XBN_EINVAL for a bad n; never allocates. */
int session_run(session *s, const float *input, int n, float *logits);

/* The session's input buffer, [max_batch,3,h,w] floats in its arena: a caller may assemble
 * a batch there and pass it to session_run, so the batch has no allocation of its own. */
float *session_input(session *s);

/* Bytes of the activation arena (input buffer included); plan totals. */
size_t session_arena_bytes(const session *s);
/* Print one line per op (kind, output shape, params, MFLOPs per sample) and totals. */
void session_print_plan(const session *s, FILE *f);
/* Per-op wall-time accounting for the following runs (on = 1), or off; and its report, one
 * line per op with ms summed over the runs, share and GFLOP/s per sample (bench --profile). */
int session_profile(session *s, int on);
void session_print_profile(const session *s, FILE *f);
/* One op of the plan and its share of the profiled runs, for tools that report per layer
 * (bench/fmapeak.c): session_op_count ops, numbered as session_print_plan numbers them. */
typedef struct {
    const char *name; /* the op's weights prefix */
    const char *kind; /* "conv", "dwconv", "groupnorm", "maxpool", "avgpool" or "dense" */
    int k, stride, cin, cout;
    int h, w, oh, ow;  /* input and output map of one sample */
    int wino;          /* conv: Winograd's output tile side m, 0 when computed directly */
    int residual;      /* conv: adds a residual before storing */
    int gn_fused;      /* conv: applies the GroupNorm before it as it reads its rows */
    int tail;          /* run op by op on the whole batch (docs/engine.md, Threads) */
    double flops;      /* per sample: 2 x the direct computation's multiply-adds */
    double mul_flops;  /* per sample: 2 x the multiply-adds the kernels run (Winograd's GEMMs) */
    double ms;         /* profiled runs (session_profile): wall time on the calling thread */
    long long samples; /* samples in the profiled runs */
} session_op_stats;
int session_op_count(const session *s);
/* Op i (0 <= i < session_op_count) -> *out; 0, or XBN_EINVAL for a bad i. ms is 0 unless
 * profiling is on. */
int session_op_stats_get(const session *s, int i, session_op_stats *out);
/* Samples the team finished together since the session began: a member that runs out of
 * samples helps the last one still in a sample with the rest of it. */
long long session_joins(const session *s);
/* Multiply-accumulates x2 per sample, for GFLOP/s figures. */
double session_flops_per_sample(const session *s);

/* The BLAS kernel family in use (OpenBLAS core name, e.g. "Haswell", "SkylakeX"). */
const char *engine_blas_core(void);

/* Softmax of one logits row, computed in a numerically stable way (max subtracted). */
void softmax(const float *logits, int n, float *probs);

#endif
