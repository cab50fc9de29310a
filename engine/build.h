/* build.h - building a model's op list from its weights file: shared by model.c, which sets
 * up the builder, and the builder of each architecture (build_resnet50.c, build_mobilenetv2.c).
 *
 * model_load opens the file, reads the metadata and points a builder at the model's weights
 * allocation and op list; the architecture's builder then adds the ops in order with the
 * build_* functions. Each fetches its tensors by name (a missing, misshapen or reused one
 * fails naming it), marks them used, and writes the folded weights, in the layouts of the
 * model's kernel table, into the weights allocation. They return the op's output tensor id,
 * or -1 with the message in b->err.
 */
#ifndef XBN_BUILD_H
#define XBN_BUILD_H

#include <stddef.h>

#include "engine/engine.h"
#include "engine/net.h"
#include "engine/safetensors.h"

typedef struct builder {
    st_file *f;             /* the open file */
    struct model *m;        /* the model being loaded (model.c's) */
    const model_info *info; /* its metadata: flavour, width, classes, gn_groups */
    net *net;               /* its op list under construction; net->kt: the kernels */
    float *weights;         /* the model's one allocation for folded weights, used as a bump */
    size_t used, cap;       /* allocator: floats handed out, floats in all */
    int cap_ops;
    int *chans; /* chans[tensor id]: its channels */
    int cap_tensors;
    float bn_eps; /* of the BatchNorms folded into the convolutions (set per architecture) */
    char *err;
    size_t errlen;
} builder;

/* A dense convolution (groups = 1) as the file stores it. */
typedef struct {
    const char *w;  /* weight name, "<prefix>.weight" */
    int has_bias;   /* "<prefix>.bias" next to the weight */
    const char *bn; /* BatchNorm prefix to fold, or NULL */
    int cout, k, stride, pad;
    pad_mode padm;
    act_kind act;
    int res; /* tensor id added as the residual, or -1 */
    res_mode resm;
} conv_spec;

/* A new tensor of `channels` channels; model_load adds the input (id 0) with 3. */
int build_tensor(builder *b, int channels);
/* The convolution, its bias and BatchNorm folded (in double), into the kernels' layout. */
int build_conv(builder *b, int in, conv_spec s);
/* Depthwise 3x3, no bias: wname [c][1][3][3]. */
int build_dwconv(builder *b, int in, const char *wname, int stride, pad_mode padm);
/* GroupNorm in place on tensor x, groups = min(G, C), then act; returns x. */
int build_gn(builder *b, int x, const char *prefix, act_kind act);
/* An op without weights: OP_MAXPOOL (3x3 / 2, pad 1) or OP_GAP, to cout channels. */
int build_pool(builder *b, op_kind kind, int in, int cout, const char *name);
/* Dense classifier: "<prefix>.weight" [classes][cin], "<prefix>.bias". */
int build_dense(builder *b, int in, const char *prefix, int classes);

/* The architectures, each in both flavours: 0, or -1 with b->err. */
int build_resnet50(builder *b);
int build_mobilenetv2(builder *b);

/* Return -1 from the enclosing builder when a build_* call fails. */
#define BUILD_TRY(x)                                                                               \
    do {                                                                                           \
        if ((x) < 0) return -1;                                                                    \
    } while (0)

#endif
