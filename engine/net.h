/* net.h - the network as the engine runs it: a flat list of ops over numbered tensors.
 *
 * model.c builds this list once at load time from the weights file (BN already folded, weights
 * in the layouts the kernels want); session.c gives it shapes for one input size, places the
 * tensors in an arena and executes it. Tensors are NHWC per sample; tensor 0 is the input.
 * Shapes are not stored here because they depend on the input size (and Keras-style padding
 * on the parity of each feature map), so an op records how to pad, not the padding.
 */
#ifndef XBN_NET_H
#define XBN_NET_H

#include "engine/engine.h"

typedef enum { OP_CONV, OP_DWCONV, OP_GN, OP_MAXPOOL, OP_GAP, OP_DENSE } op_kind;
typedef enum { ACT_NONE, ACT_RELU, ACT_RELU6 } act_kind;
/* Residual add relative to the activation: ResNet adds then applies ReLU; the Keras
 * MobileNetV2 seed applies ReLU6 after the projection and then adds. */
typedef enum { RES_NONE, RES_ADD_THEN_ACT, RES_ACT_THEN_ADD } res_mode;
/* PAD_SAME_TF: TensorFlow/Keras `correct_pad` for stride 2: (H mod 2) before, 1 after. */
typedef enum { PAD_SYM, PAD_SAME_TF } pad_mode;

typedef struct {
    op_kind kind;
    char name[48];      /* weights prefix, for inspect and errors */
    int in, out, res;   /* tensor ids; res = -1 without residual. GN runs in place: out == in */
    int cin, cout;      /* channels in and out */
    int k, stride, pad; /* kernel side, stride, symmetric padding (PAD_SYM) */
    pad_mode padm;
    act_kind act;
    res_mode resm;
    int groups;     /* GN groups */
    float eps;      /* GN epsilon */
    int wino;       /* CONV: Winograd tile size m (winograd.h), 0 when computed directly */
    const float *w; /* CONV: [k*k*cin][cout] (row = (ky*k+kx)*cin+ci), or that matrix packed
                       (kt->pack) when the table has a packed GEMM, or transformed and packed
                       (kt->wino_pack) when wino; DWCONV: [k*k][c];
                       DENSE: [cout][cin]; GN: gamma[c] */
    const float *b; /* CONV/DENSE: bias[cout] or NULL; GN: beta[c] */
} op;

typedef struct {
    op *ops;
    int n_ops;
    int n_tensors;
    int max_channels;              /* of any tensor: the kernels' per-channel scratch */
    const struct kernel_table *kt; /* the kernels, chosen at load (kernel_table.h) */
} net;

/* The model's op list (model.c). */
const net *model_get_net(const model *m);

#endif
