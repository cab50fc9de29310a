/* build.c - the op builders of build.h: fetch a layer's tensors, fold and lay out its weights,
 * append its op. See build.h; the architectures that call them are build_resnet50.c and
 * build_mobilenetv2.c.
 */
#include "engine/build.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels/kernel_table.h"
#include "engine/limits.h"

static int build_err(builder *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err, b->errlen, fmt, ap);
    va_end(ap);
    return XBN_EFORMAT;
}

/* n floats of the weights allocation, starting on a cache line (MODEL_WEIGHTS_ALIGN; limits.h). */
static float *take(builder *b, size_t n)
{
    b->used = (b->used + MODEL_WEIGHTS_ALIGN - 1) / MODEL_WEIGHTS_ALIGN * MODEL_WEIGHTS_ALIGN;
    if (b->used + n > b->cap) return NULL;
    float *p = b->weights + b->used;
    b->used += n;
    return p;
}

/* Fetch tensor `name` and check its shape; marks it used. */
static int get(builder *b, const char *name, const st_tensor **out, int ndim, ...)
{
    st_tensor *t = st_find(b->f, name);
    if (!t) return build_err(b, "missing tensor '%s'", name);
    if (t->used) return build_err(b, "tensor '%s' used twice", name);
    va_list ap;
    va_start(ap, ndim);
    int ok = t->ndim == ndim;
    int64_t want[ST_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        want[i] = va_arg(ap, int);
        if (ok && t->shape[i] != want[i]) ok = 0;
    }
    va_end(ap);
    if (!ok) {
        char ws[MODEL_NAME_BYTES] = "", hs[MODEL_NAME_BYTES] = "";
        for (int i = 0; i < ndim; i++)
            snprintf(ws + strlen(ws), sizeof ws - strlen(ws), "%s%lld", i ? "," : "",
                     (long long)want[i]);
        for (int i = 0; i < t->ndim; i++)
            snprintf(hs + strlen(hs), sizeof hs - strlen(hs), "%s%lld", i ? "," : "",
                     (long long)t->shape[i]);
        return build_err(b, "tensor '%s' has shape [%s], expected [%s]", name, hs, ws);
    }
    t->used = 1;
    *out = t;
    return 0;
}

int build_tensor(builder *b, int channels)
{
    if (b->net->n_tensors == b->cap_tensors) {
        int nc = b->cap_tensors ? 2 * b->cap_tensors : 64;
        int *p = realloc(b->chans, (size_t)nc * sizeof *p);
        if (!p) return -1;
        b->chans = p;
        b->cap_tensors = nc;
    }
    b->chans[b->net->n_tensors] = channels;
    return b->net->n_tensors++;
}

static op *build_op(builder *b, op_kind kind, const char *name)
{
    net *n = b->net;
    st_release(b->f); /* the ops before this one are copied: drop the file pages they read */
    if (n->n_ops == b->cap_ops) {
        int nc = b->cap_ops ? 2 * b->cap_ops : 64;
        op *p = realloc(n->ops, (size_t)nc * sizeof *p);
        if (!p) return NULL;
        n->ops = p;
        b->cap_ops = nc;
    }
    op *o = &n->ops[n->n_ops++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->res = -1;
    snprintf(o->name, sizeof o->name, "%s", name);
    return o;
}

/* A convolution's tensors in the file: its weight, and its bias and BatchNorm when it has them
 * (NULL otherwise). */
typedef struct {
    const st_tensor *w, *b, *gamma, *beta, *mean, *var;
} conv_tensors;

static int conv_fetch(builder *b, const conv_spec *s, int cin, conv_tensors *t)
{
    char name[MODEL_NAME_BYTES];
    *t = (conv_tensors){0};
    if (get(b, s->w, &t->w, 4, s->cout, cin, s->k, s->k)) return -1;
    if (s->has_bias) {
        snprintf(name, sizeof name, "%.*s.bias", (int)(strlen(s->w) - strlen(".weight")), s->w);
        if (get(b, name, &t->b, 1, s->cout)) return -1;
    }
    if (s->bn) {
        const st_tensor **dst[4] = {&t->gamma, &t->beta, &t->mean, &t->var};
        const char *sfx[4] = {"weight", "bias", "running_mean", "running_var"};
        for (int i = 0; i < 4; i++) {
            snprintf(name, sizeof name, "%s.%s", s->bn, sfx[i]);
            if (get(b, name, dst[i], 1, s->cout)) return -1;
        }
    }
    return 0;
}

static float f32_at(const st_tensor *t, size_t i)
{
    float f;
    memcpy(&f, t->data + 4 * i, 4);
    return f;
}

/* OIHW -> w [(ky*k+kx)*cin+ci][cout] scaled by each output channel's BatchNorm factor, and
 * the folded bias: w' = w * s, b' = b * s + (beta - mean * s), s = gamma / sqrt(var + eps), in
 * double, rounded once. The multiply-adds are fma(): the same bits on every build and CPU. */
static int conv_fold(builder *b, const conv_spec *s, const conv_tensors *t, int cin, float *w,
                     float *bias)
{
    int cout = s->cout, k = s->k;
    for (int oc = 0; oc < cout; oc++) {
        double scale = 1.0, shift = 0.0, bv = t->b ? f32_at(t->b, (size_t)oc) : 0.0;
        if (s->bn) {
            float vr = f32_at(t->var, (size_t)oc);
            if (!(vr >= 0)) {
                build_err(b, "%s.running_var[%d] is negative or NaN", s->bn, oc);
                return -1;
            }
            scale = f32_at(t->gamma, (size_t)oc) / sqrt((double)vr + b->bn_eps);
            shift = fma(-f32_at(t->mean, (size_t)oc), scale, f32_at(t->beta, (size_t)oc));
        }
        bias[oc] = (float)fma(bv, scale, shift);
        for (int ci = 0; ci < cin; ci++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    float f = f32_at(t->w, (((size_t)oc * cin + ci) * k + ky) * k + kx);
                    w[((size_t)(ky * k + kx) * cin + ci) * cout + oc] = (float)(f * scale);
                }
    }
    return 0;
}

int build_conv(builder *b, int in, conv_spec s)
{
    const kernel_table *kt = b->net->kt;
    conv_tensors t;
    int cin = b->chans[in], cout = s.cout, k = s.k, packed = kt->gemm != NULL, rc = -1;
    if (conv_fetch(b, &s, cin, &t)) return -1;
    int out = build_tensor(b, cout);
    op *o = build_op(b, OP_CONV, s.w);
    size_t kk = (size_t)k * k * cin;
    int wino = packed && k == 3 && s.stride == 1 && s.pad == 1 && s.padm == PAD_SYM && s.res < 0
                   ? wino_choose(cin, cout)
                   : 0;
    /* Packed weights are built from the plain layout in a temporary buffer. */
    float *w = packed ? malloc(kk * cout * sizeof *w) : take(b, kk * cout);
    float *wp = !packed ? w
                : wino  ? take(b, wino_weight_floats(wino, cin, cout))
                        : take(b, gemm_packed_floats((int)kk, cout));
    float *bias = take(b, (size_t)cout); /* zeros without bias or BN */
    if (out < 0 || !o || !w || !wp || !bias) {
        build_err(b, "out of memory");
        goto fail;
    }
    *o = (op){.kind = OP_CONV,
              .in = in,
              .out = out,
              .res = s.res,
              .cin = cin,
              .cout = cout,
              .k = k,
              .stride = s.stride,
              .pad = s.pad,
              .padm = s.padm,
              .act = s.act,
              .resm = s.res >= 0 ? s.resm : RES_NONE,
              .wino = wino,
              .w = wp,
              .b = bias};
    snprintf(o->name, sizeof o->name, "%.*s", (int)(strlen(s.w) - strlen(".weight")), s.w);
    if (conv_fold(b, &s, &t, cin, w, bias)) goto fail;
    if (wino && kt->wino_pack(wino, w, cin, cout, kt->pack, wp)) {
        build_err(b, "out of memory");
        goto fail;
    }
    if (packed && !wino) kt->pack(w, (int)kk, cout, wp);
    rc = out;
fail:
    if (packed) free(w);
    return rc;
}

/* Depthwise 3x3, no bias. */
int build_dwconv(builder *b, int in, const char *wname, int stride, pad_mode padm)
{
    const st_tensor *tw;
    int c = b->chans[in];
    if (get(b, wname, &tw, 4, c, 1, 3, 3)) return -1;
    int out = build_tensor(b, c);
    op *o = build_op(b, OP_DWCONV, wname);
    float *w = take(b, (size_t)9 * c);
    if (out < 0 || !o || !w) {
        build_err(b, "out of memory");
        return -1;
    }
    *o = (op){.kind = OP_DWCONV,
              .in = in,
              .out = out,
              .res = -1,
              .cin = c,
              .cout = c,
              .k = 3,
              .stride = stride,
              .pad = 1,
              .padm = padm,
              .w = w};
    snprintf(o->name, sizeof o->name, "%.*s", (int)(strlen(wname) - strlen(".weight")), wname);
    for (int i = 0; i < c; i++)
        for (int t = 0; t < 9; t++) memcpy(&w[(size_t)t * c + i], tw->data + 4 * (i * 9 + t), 4);
    return out;
}

/* GroupNorm in place on tensor x, groups = min(G, C), then act. */
int build_gn(builder *b, int x, const char *prefix, act_kind act)
{
    char name[MODEL_NAME_BYTES];
    const st_tensor *tg, *tb;
    int c = b->chans[x], groups = b->info->gn_groups < c ? b->info->gn_groups : c;
    if (c % groups) {
        build_err(b, "%s: %d channels do not split into %d groups", prefix, c, groups);
        return -1;
    }
    snprintf(name, sizeof name, "%s.weight", prefix);
    if (get(b, name, &tg, 1, c)) return -1;
    snprintf(name, sizeof name, "%s.bias", prefix);
    if (get(b, name, &tb, 1, c)) return -1;
    op *o = build_op(b, OP_GN, prefix);
    float *w = take(b, 2 * (size_t)c);
    if (!o || !w) {
        build_err(b, "out of memory");
        return -1;
    }
    st_read_f32(tg, w);
    st_read_f32(tb, w + c);
    *o = (op){.kind = OP_GN,
              .in = x,
              .out = x,
              .res = -1,
              .cin = c,
              .cout = c,
              .groups = groups,
              .eps = 1e-5f,
              .act = act,
              .w = w,
              .b = w + c};
    snprintf(o->name, sizeof o->name, "%s", prefix);
    return x;
}

int build_pool(builder *b, op_kind kind, int in, int cout, const char *name)
{
    int out = build_tensor(b, cout);
    op *o = build_op(b, kind, name);
    if (out < 0 || !o) {
        build_err(b, "out of memory");
        return -1;
    }
    o->in = in, o->out = out, o->cin = b->chans[in], o->cout = cout;
    if (kind == OP_MAXPOOL) o->k = 3, o->stride = 2, o->pad = 1;
    return out;
}

int build_dense(builder *b, int in, const char *prefix, int classes)
{
    char name[MODEL_NAME_BYTES];
    const st_tensor *tw, *tb;
    int cin = b->chans[in];
    snprintf(name, sizeof name, "%s.weight", prefix);
    if (get(b, name, &tw, 2, classes, cin)) return -1;
    snprintf(name, sizeof name, "%s.bias", prefix);
    if (get(b, name, &tb, 1, classes)) return -1;
    int out = build_pool(b, OP_DENSE, in, classes, prefix);
    float *w = take(b, (size_t)classes * cin + classes);
    if (out < 0 || !w) {
        build_err(b, "out of memory");
        return -1;
    }
    op *o = &b->net->ops[b->net->n_ops - 1];
    st_read_f32(tw, w);
    st_read_f32(tb, w + (size_t)classes * cin);
    o->w = w, o->b = w + (size_t)classes * cin;
    return out;
}
