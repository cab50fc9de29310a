/* model.c - load a model file: validate the metadata, build the op list of its architecture
 * and flavour (../shared/docs/models.md), fold every BatchNorm into its convolution.
 *
 * Ownership: the model owns one float allocation holding every folded weight (`weights`),
 * the op list, and a copy of the strings it keeps (labels, source). The file is mapped only
 * while loading: after it everything lives in `weights`, so the page cache can drop it.
 * Every tensor in the file must be consumed exactly once; a missing, misshapen or leftover
 * tensor fails the load with its name.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/kernels/kernel_table.h"
#include "engine/limits.h"
#include "engine/net.h"
#include "engine/safetensors.h"

struct model {
    model_info info;
    net net;
    float *weights; /* one allocation: every folded tensor */
    char **labels;
    char *source;
};

/* Builder state: the open file, the bump allocator over `weights`, the op list under
 * construction and each tensor's channel count. */
typedef struct {
    st_file *f;
    model *m;
    size_t used, cap; /* floats */
    int cap_ops;
    int *chans; /* chans[tensor id] */
    int cap_tensors;
    char *err;
    size_t errlen;
    float bn_eps;
} builder;

static int berr(builder *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err, b->errlen, fmt, ap);
    va_end(ap);
    return XBN_EFORMAT;
}

static float *take(builder *b, size_t n)
{
    if (b->used + n > b->cap) return NULL;
    float *p = b->m->weights + b->used;
    b->used += n;
    return p;
}

/* Fetch tensor `name` and check its shape; marks it used. */
static int get(builder *b, const char *name, const st_tensor **out, int ndim, ...)
{
    st_tensor *t = st_find(b->f, name);
    if (!t) return berr(b, "missing tensor '%s'", name);
    if (t->used) return berr(b, "tensor '%s' used twice", name);
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
        return berr(b, "tensor '%s' has shape [%s], expected [%s]", name, hs, ws);
    }
    t->used = 1;
    *out = t;
    return 0;
}

static int new_tensor(builder *b, int channels)
{
    if (b->m->net.n_tensors == b->cap_tensors) {
        int nc = b->cap_tensors ? 2 * b->cap_tensors : 64;
        int *p = realloc(b->chans, (size_t)nc * sizeof *p);
        if (!p) return -1;
        b->chans = p;
        b->cap_tensors = nc;
    }
    b->chans[b->m->net.n_tensors] = channels;
    return b->m->net.n_tensors++;
}

static op *new_op(builder *b, op_kind kind, const char *name)
{
    net *n = &b->m->net;
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

typedef struct {
    const char *w;  /* conv weight name */
    int has_bias;   /* "<prefix>.bias" next to the weight */
    const char *bn; /* BatchNorm prefix to fold, or NULL */
    int cout, k, stride, pad;
    pad_mode padm;
    act_kind act;
    int res;
    res_mode resm;
} conv_spec;

/* Dense convolution (groups = 1) with optional bias and folded BN. Returns the output tensor
 * id, or -1 with b->err set. */
static int add_conv(builder *b, int in, conv_spec s)
{
    char name[MODEL_NAME_BYTES];
    const st_tensor *tw, *tb = NULL, *g = NULL, *be = NULL, *mu = NULL, *var = NULL;
    int cin = b->chans[in], cout = s.cout, k = s.k;
    if (get(b, s.w, &tw, 4, cout, cin, k, k)) return -1;
    if (s.has_bias) {
        snprintf(name, sizeof name, "%.*s.bias", (int)(strlen(s.w) - strlen(".weight")), s.w);
        if (get(b, name, &tb, 1, cout)) return -1;
    }
    if (s.bn) {
        const st_tensor **dst[4] = {&g, &be, &mu, &var};
        const char *sfx[4] = {"weight", "bias", "running_mean", "running_var"};
        for (int i = 0; i < 4; i++) {
            snprintf(name, sizeof name, "%s.%s", s.bn, sfx[i]);
            if (get(b, name, dst[i], 1, cout)) return -1;
        }
    }
    int out = new_tensor(b, cout);
    op *o = new_op(b, OP_CONV, s.w);
    size_t kk = (size_t)k * k * cin;
    const kernel_table *kt = b->m->net.kt;
    int packed = kt->gemm != NULL;
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
        if (packed) free(w);
        berr(b, "out of memory");
        return -1;
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
    /* OIHW -> [(ky*k+kx)*cin+ci][o], scaled by the BN factor of o. */
    const unsigned char *src = tw->data;
    for (int oc = 0; oc < cout; oc++) {
        double scale = 1.0, shift = 0.0, bv = 0.0;
        float f;
        if (tb) memcpy(&f, tb->data + 4 * oc, 4), bv = f;
        if (s.bn) {
            float gm, bt, mn, vr;
            memcpy(&gm, g->data + 4 * oc, 4);
            memcpy(&bt, be->data + 4 * oc, 4);
            memcpy(&mn, mu->data + 4 * oc, 4);
            memcpy(&vr, var->data + 4 * oc, 4);
            if (!(vr >= 0)) {
                if (packed) free(w);
                berr(b, "%s.running_var[%d] is negative or NaN", s.bn, oc);
                return -1;
            }
            scale = gm / sqrt((double)vr + b->bn_eps);
            /* Fused multiply-adds, spelled out: every build and CPU folds to the same bits. */
            shift = fma(-mn, scale, bt);
        }
        bias[oc] = (float)fma(bv, scale, shift);
        for (int ci = 0; ci < cin; ci++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    memcpy(&f, src + 4 * ((((size_t)oc * cin + ci) * k + ky) * k + kx), 4);
                    w[((size_t)(ky * k + kx) * cin + ci) * cout + oc] = (float)(f * scale);
                }
    }
    int rc = 0;
    if (wino)
        rc = kt->wino_pack(wino, w, cin, cout, wp);
    else if (packed)
        kt->pack(w, (int)kk, cout, wp);
    if (packed) free(w);
    if (rc) {
        berr(b, "out of memory");
        return -1;
    }
    return out;
}

/* Depthwise 3x3, no bias. */
static int add_dwconv(builder *b, int in, const char *wname, int stride, pad_mode padm)
{
    const st_tensor *tw;
    int c = b->chans[in];
    if (get(b, wname, &tw, 4, c, 1, 3, 3)) return -1;
    int out = new_tensor(b, c);
    op *o = new_op(b, OP_DWCONV, wname);
    float *w = take(b, (size_t)9 * c);
    if (out < 0 || !o || !w) {
        berr(b, "out of memory");
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
static int add_gn(builder *b, int x, const char *prefix, act_kind act)
{
    char name[MODEL_NAME_BYTES];
    const st_tensor *tg, *tb;
    int c = b->chans[x], groups = b->m->info.gn_groups < c ? b->m->info.gn_groups : c;
    if (c % groups) {
        berr(b, "%s: %d channels do not split into %d groups", prefix, c, groups);
        return -1;
    }
    snprintf(name, sizeof name, "%s.weight", prefix);
    if (get(b, name, &tg, 1, c)) return -1;
    snprintf(name, sizeof name, "%s.bias", prefix);
    if (get(b, name, &tb, 1, c)) return -1;
    op *o = new_op(b, OP_GN, prefix);
    float *w = take(b, 2 * (size_t)c);
    if (!o || !w) {
        berr(b, "out of memory");
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

static int add_simple(builder *b, op_kind kind, int in, int cout, const char *name)
{
    int out = new_tensor(b, cout);
    op *o = new_op(b, kind, name);
    if (out < 0 || !o) {
        berr(b, "out of memory");
        return -1;
    }
    o->in = in, o->out = out, o->cin = b->chans[in], o->cout = cout;
    if (kind == OP_MAXPOOL) o->k = 3, o->stride = 2, o->pad = 1;
    return out;
}

static int add_dense(builder *b, int in, const char *prefix, int classes)
{
    char name[MODEL_NAME_BYTES];
    const st_tensor *tw, *tb;
    int cin = b->chans[in];
    snprintf(name, sizeof name, "%s.weight", prefix);
    if (get(b, name, &tw, 2, classes, cin)) return -1;
    snprintf(name, sizeof name, "%s.bias", prefix);
    if (get(b, name, &tb, 1, classes)) return -1;
    int out = add_simple(b, OP_DENSE, in, classes, prefix);
    float *w = take(b, (size_t)classes * cin + classes);
    if (out < 0 || !w) {
        berr(b, "out of memory");
        return -1;
    }
    op *o = &b->m->net.ops[b->m->net.n_ops - 1];
    st_read_f32(tw, w);
    st_read_f32(tb, w + (size_t)classes * cin);
    o->w = w, o->b = w + (size_t)classes * cin;
    return out;
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((x) < 0) return -1;                                                                    \
    } while (0)

static int build_resnet50(builder *b)
{
    int keras = b->m->info.flavour == FLAVOUR_KERAS;
    static const int blocks[4] = {3, 4, 6, 3};
    char w[MODEL_NAME_BYTES], bn[MODEL_NAME_BYTES];
    int x;
    b->bn_eps = keras ? 1.001e-5f : 1e-5f;
    if (keras) {
        TRY(x = add_conv(b, 0,
                         (conv_spec){"conv1.weight", 1, "bn1", 64, 7, 2, 3, PAD_SYM, ACT_RELU, -1,
                                     RES_NONE}));
    } else {
        TRY(x = add_conv(b, 0,
                         (conv_spec){"conv1.weight", 0, NULL, 64, 7, 2, 3, PAD_SYM, ACT_NONE, -1,
                                     RES_NONE}));
        TRY(add_gn(b, x, "bn1", ACT_RELU));
    }
    TRY(x = add_simple(b, OP_MAXPOOL, x, 64, "maxpool"));
    for (int l = 0; l < 4; l++) {
        int p = 64 << l;
        for (int i = 0; i < blocks[l]; i++) {
            int s = (i == 0 && l > 0) ? 2 : 1, sc = x, t;
            if (i == 0) {
                snprintf(w, sizeof w, "layer%d.0.downsample.0.weight", l + 1);
                snprintf(bn, sizeof bn, "layer%d.0.downsample.1", l + 1);
                TRY(sc = add_conv(b, x,
                                  (conv_spec){w, keras, bn, 4 * p, 1, s, 0, PAD_SYM, ACT_NONE, -1,
                                              RES_NONE}));
            }
            snprintf(w, sizeof w, "layer%d.%d.conv1.weight", l + 1, i);
            snprintf(bn, sizeof bn, "layer%d.%d.bn1", l + 1, i);
            TRY(t = add_conv(b, x,
                             (conv_spec){w, keras, bn, p, 1, keras ? s : 1, 0, PAD_SYM, ACT_RELU,
                                         -1, RES_NONE}));
            snprintf(w, sizeof w, "layer%d.%d.conv2.weight", l + 1, i);
            TRY(t = add_conv(b, t,
                             (conv_spec){w, keras, NULL, p, 3, keras ? 1 : s, 1, PAD_SYM, ACT_NONE,
                                         -1, RES_NONE}));
            snprintf(bn, sizeof bn, "layer%d.%d.bn2", l + 1, i);
            TRY(add_gn(b, t, bn, ACT_RELU));
            snprintf(w, sizeof w, "layer%d.%d.conv3.weight", l + 1, i);
            snprintf(bn, sizeof bn, "layer%d.%d.bn3", l + 1, i);
            TRY(x = add_conv(b, t,
                             (conv_spec){w, keras, bn, 4 * p, 1, 1, 0, PAD_SYM, ACT_RELU, sc,
                                         RES_ADD_THEN_ACT}));
        }
    }
    TRY(x = add_simple(b, OP_GAP, x, 2048, "avgpool"));
    TRY(add_dense(b, x, "fc", b->m->info.classes));
    return 0;
}

/* The seed's _make_divisible(v, 8): nearest multiple of 8, never below 90% of v. */
static int make_divisible(double v)
{
    int nv = (int)(v + 4) / 8 * 8;
    if (nv < 8) nv = 8;
    if (nv < 0.9 * v) nv += 8;
    return nv;
}

static int ceil8(double v)
{
    return (int)(ceil(v / 8.0) * 8.0);
}

static int build_mobilenetv2(builder *b)
{
    static const int cfg[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                  {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    int keras = b->m->info.flavour == FLAVOUR_KERAS;
    double a = b->m->info.width;
    pad_mode s2pad = keras ? PAD_SAME_TF : PAD_SYM;
    act_kind proj_act = keras ? ACT_RELU6 : ACT_NONE;
    res_mode resm = keras ? RES_ACT_THEN_ADD : RES_ADD_THEN_ACT;
    char w[MODEL_NAME_BYTES], bn[MODEL_NAME_BYTES];
    int x, idx = 1;
    b->bn_eps = keras ? 1e-3f : 1e-5f;
    int first = keras ? make_divisible(32 * a) : 32;
    TRY(x = add_conv(b, 0,
                     (conv_spec){"features.0.0.weight", 0, "features.0.1", first, 3, 2, 1, s2pad,
                                 ACT_RELU6, -1, RES_NONE}));
    for (int r = 0; r < 7; r++) {
        int t = cfg[r][0], c = cfg[r][1];
        int oc = keras ? make_divisible((int)(c * a)) : (t > 1 ? ceil8(c * a) : c);
        for (int i = 0; i < cfg[r][2]; i++, idx++) {
            int s = i == 0 ? cfg[r][3] : 1, in = x, h = x, inc = b->chans[x];
            int res = (s == 1 && inc == oc) ? in : -1, wi = 3, pi = 4;
            if (keras || t != 1) {
                snprintf(w, sizeof w, "features.%d.conv.0.weight", idx);
                snprintf(bn, sizeof bn, "features.%d.conv.1", idx);
                TRY(h = add_conv(
                        b, x,
                        (conv_spec){w, 0, bn, inc * t, 1, 1, 0, PAD_SYM, ACT_RELU6, -1, RES_NONE}));
            } else {
                wi = 0, pi = 1; /* torch t = 1: depthwise first, no expansion */
            }
            snprintf(w, sizeof w, "features.%d.conv.%d.weight", idx, wi);
            TRY(h = add_dwconv(b, h, w, s, s == 2 ? s2pad : PAD_SYM));
            snprintf(bn, sizeof bn, "features.%d.conv.%d", idx, pi);
            TRY(add_gn(b, h, bn, ACT_RELU6));
            snprintf(w, sizeof w, "features.%d.conv.%d.weight", idx, pi + 2);
            snprintf(bn, sizeof bn, "features.%d.conv.%d", idx, pi + 3);
            TRY(x = add_conv(b, h,
                             (conv_spec){w, 0, bn, oc, 1, 1, 0, PAD_SYM, proj_act, res, resm}));
        }
    }
    int last = a > 1.0 ? (keras ? make_divisible(1280 * a) : ceil8(1280 * a)) : 1280;
    TRY(x = add_conv(b, x,
                     (conv_spec){"features.18.0.weight", 0, "features.18.1", last, 1, 1, 0, PAD_SYM,
                                 ACT_RELU6, -1, RES_NONE}));
    TRY(x = add_simple(b, OP_GAP, x, last, "avgpool"));
    TRY(add_dense(b, x, "classifier", b->m->info.classes));
    return 0;
}

/* ---- metadata ---- */

static int meta_int(builder *b, const char *key, int def, int lo, int hi, int *out)
{
    const char *s = st_meta(b->f, key);
    if (!s) {
        if (def < 0) return berr(b, "metadata '%s' is missing", key);
        *out = def;
        return 0;
    }
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi)
        return berr(b, "metadata '%s' = '%s': expected an integer in [%d, %d]", key, s, lo, hi);
    *out = (int)v;
    return 0;
}

static int parse_floats(const cJSON *arr, float *out, int n)
{
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != n) return -1;
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(arr, i);
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return -1;
        out[i] = (float)v->valuedouble;
    }
    return 0;
}

static int parse_preprocess(builder *b, const char *s, preprocess_spec *p)
{
    int rc = 0;
    cJSON *j = cJSON_Parse(s);
    const cJSON *v;
    if (!cJSON_IsObject(j)) {
        rc = berr(b, "metadata 'preprocess' is not a JSON object");
        goto done;
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "resize_mode");
    if (cJSON_IsString(v) && !strcmp(v->valuestring, "direct"))
        p->mode = RESIZE_DIRECT;
    else if (cJSON_IsString(v) && !strcmp(v->valuestring, "shorter_crop"))
        p->mode = RESIZE_SHORTER_CROP;
    else if (v) {
        rc = berr(b, "preprocess.resize_mode must be \"shorter_crop\" or \"direct\"");
        goto done;
    }
    static const char *ints[2] = {"resize", "crop"};
    int *dst[2] = {&p->resize, &p->crop};
    for (int i = 0; i < 2; i++) {
        v = cJSON_GetObjectItemCaseSensitive(j, ints[i]);
        if (!v) continue;
        if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 4096 ||
            v->valuedouble != (int)v->valuedouble) {
            rc = berr(b, "preprocess.%s must be an integer in [1, 4096]", ints[i]);
            goto done;
        }
        *dst[i] = (int)v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "channel_order");
    if (v) {
        if (!cJSON_IsString(v) ||
            (strcmp(v->valuestring, "RGB") && strcmp(v->valuestring, "BGR"))) {
            rc = berr(b, "preprocess.channel_order must be \"RGB\" or \"BGR\"");
            goto done;
        }
        p->bgr = !strcmp(v->valuestring, "BGR");
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "mean");
    if (v && parse_floats(v, p->mean, 3)) {
        rc = berr(b, "preprocess.mean must be 3 numbers");
        goto done;
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "std");
    if (v && (parse_floats(v, p->std, 3) || !(p->std[0] > 0 && p->std[1] > 0 && p->std[2] > 0))) {
        rc = berr(b, "preprocess.std must be 3 positive numbers");
        goto done;
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "exif_orient");
    if (v) {
        if (!cJSON_IsBool(v)) {
            rc = berr(b, "preprocess.exif_orient must be true or false");
            goto done;
        }
        p->exif_orient = cJSON_IsTrue(v);
    }
    if (p->mode == RESIZE_SHORTER_CROP && p->resize < p->crop) {
        rc = berr(b, "preprocess: resize %d is smaller than crop %d", p->resize, p->crop);
        goto done;
    }
done:
    cJSON_Delete(j);
    return rc;
}

static int parse_labels(builder *b, const char *s)
{
    model *m = b->m;
    int rc = 0;
    cJSON *j = cJSON_Parse(s);
    if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != m->info.classes) {
        rc = berr(b, "metadata 'labels' must be a JSON array of %d strings", m->info.classes);
        goto done;
    }
    m->labels = calloc((size_t)m->info.classes, sizeof *m->labels);
    if (!m->labels) {
        rc = berr(b, "out of memory");
        goto done;
    }
    for (int i = 0; i < m->info.classes; i++) {
        const cJSON *v = cJSON_GetArrayItem(j, i);
        if (!cJSON_IsString(v)) {
            rc = berr(b, "metadata 'labels'[%d] is not a string", i);
            goto done;
        }
        if (!(m->labels[i] = strdup(v->valuestring))) {
            rc = berr(b, "out of memory");
            goto done;
        }
    }
done:
    cJSON_Delete(j);
    return rc;
}

static int parse_meta(builder *b)
{
    model_info *in = &b->m->info;
    const char *s;
    if (!b->f->meta) return berr(b, "no __metadata__: not an xbnserve model file");
    if (!(s = st_meta(b->f, "format")) || strcmp(s, "xbnserve/1"))
        return berr(b, "metadata 'format' is '%s', expected 'xbnserve/1'", s ? s : "(missing)");
    if (!(s = st_meta(b->f, "arch"))) return berr(b, "metadata 'arch' is missing");
    if (!strcmp(s, "resnet50"))
        in->arch = ARCH_RESNET50;
    else if (!strcmp(s, "mobilenetv2"))
        in->arch = ARCH_MOBILENETV2;
    else
        return berr(b, "metadata 'arch' = '%s': expected resnet50 or mobilenetv2", s);
    if (!(s = st_meta(b->f, "flavour"))) return berr(b, "metadata 'flavour' is missing");
    if (!strcmp(s, "torch"))
        in->flavour = FLAVOUR_TORCH;
    else if (!strcmp(s, "keras"))
        in->flavour = FLAVOUR_KERAS;
    else
        return berr(b, "metadata 'flavour' = '%s': expected torch or keras", s);
    in->width = 1.0f;
    if ((s = st_meta(b->f, "width"))) {
        char *end;
        double w = strtod(s, &end);
        if (end == s || *end || !(w >= MODEL_MIN_WIDTH && w <= MODEL_MAX_WIDTH))
            return berr(b, "metadata 'width' = '%s': expected a number in [%g, %g]", s,
                        MODEL_MIN_WIDTH, MODEL_MAX_WIDTH);
        in->width = w;
    }
    int def_groups = in->arch == ARCH_MOBILENETV2 ? 16 : in->flavour == FLAVOUR_KERAS ? 32 : 64;
    if (meta_int(b, "classes", -1, 1, MODEL_MAX_CLASSES, &in->classes) ||
        meta_int(b, "gn_groups", def_groups, 1, MODEL_MAX_GN_GROUPS, &in->gn_groups) ||
        meta_int(b, "input_size", 224, MODEL_MIN_INPUT, MODEL_MAX_INPUT, &in->input_size))
        return XBN_EFORMAT;
    s = st_meta(b->f, "untrained");
    in->untrained = s && !strcmp(s, "true");
    /* Defaults: torchvision ImageNet; the file's own values override. */
    in->pre = (preprocess_spec){RESIZE_SHORTER_CROP,      256, 224, 0, {0.485f, 0.456f, 0.406f},
                                {0.229f, 0.224f, 0.225f}, 1};
    in->pre.crop = in->input_size;
    if (in->pre.resize < in->pre.crop) in->pre.resize = in->pre.crop;
    if ((s = st_meta(b->f, "preprocess")) && parse_preprocess(b, s, &in->pre)) return XBN_EFORMAT;
    if ((s = st_meta(b->f, "labels")) && parse_labels(b, s)) return XBN_EFORMAT;
    in->labels = (const char *const *)b->m->labels;
    s = st_meta(b->f, "source");
    if (!(b->m->source = strdup(s ? s : ""))) return berr(b, "out of memory");
    in->source = b->m->source;
    return 0;
}

/* Floats of the weights allocation: never more than the file's floats plus one bias per
 * convolution (BN's four vectors become one bias; a conv without bias or BN gets zeros), plus,
 * for packed weights, the padding of each convolution's columns to whole panels and the
 * larger transformed weights of Winograd convolutions (at most F(4x4): 36 taps for 9). */
static size_t weights_floats(const st_file *f, int packed)
{
    size_t cap = f->total_floats + (size_t)MODEL_MAX_BIAS_FLOATS;
    for (int i = 0; i < f->n_tensors && packed; i++) {
        const int64_t *sh = f->tensors[i].shape;
        if (f->tensors[i].ndim != 4) continue;
        cap += (size_t)(sh[1] * sh[2] * sh[3] * (GEMM_PANEL_COLS - 1));
        if (sh[2] == 3 && sh[3] == 3) cap += (size_t)(sh[1] * 27 * (sh[0] + GEMM_PANEL_COLS - 1));
    }
    return cap;
}

int model_load(const char *path, const model_load_opts *opts, model **out, char *err, size_t errlen)
{
    int rc;
    st_file f;
    char msg[ENGINE_ERR_BYTES];
    const kernel_table *kt;
    builder b = {.f = &f, .err = msg, .errlen = sizeof msg};
    *out = NULL;
    if ((rc = kernel_table_pick(opts ? opts->gemm : ENGINE_GEMM_AUTO, &kt, err, errlen))) return rc;
    if ((rc = st_open(path, &f, err, errlen))) return rc;
    model *m = calloc(1, sizeof *m);
    b.m = m;
    if (!m) {
        rc = berr(&b, "out of memory");
        goto fail;
    }
    m->net.kt = kt;
    m->info.gemm = kt->name;
    if ((rc = parse_meta(&b))) goto fail;
    b.cap = weights_floats(&f, kt->gemm != NULL);
    if (!(m->weights = malloc(b.cap * sizeof(float) + 1))) {
        rc = berr(&b, "out of memory");
        goto fail;
    }
    new_tensor(&b, 3);
    rc = m->info.arch == ARCH_RESNET50 ? build_resnet50(&b) : build_mobilenetv2(&b);
    if (rc) {
        rc = XBN_EFORMAT;
        goto fail;
    }
    for (int i = 0; i < f.n_tensors; i++)
        if (!f.tensors[i].used) {
            rc = berr(&b, "unexpected tensor '%s' for %s/%s", f.tensors[i].name,
                      arch_name(m->info.arch), flavour_name(m->info.flavour));
            goto fail;
        }
    for (int i = 0; i < m->net.n_tensors; i++) {
        if (b.chans[i] > MODEL_MAX_CHANNELS) {
            rc = berr(&b, "%d channels exceed the limit of %d", b.chans[i], MODEL_MAX_CHANNELS);
            goto fail;
        }
        if (b.chans[i] > m->net.max_channels) m->net.max_channels = b.chans[i];
    }
    free(b.chans);
    st_close(&f);
    *out = m;
    return 0;
fail:
    snprintf(err, errlen, "%s: %s", path, msg);
    free(b.chans);
    st_close(&f);
    model_free(m);
    return rc ? rc : XBN_EFORMAT;
}

void model_free(model *m)
{
    if (!m) return;
    if (m->labels)
        for (int i = 0; i < m->info.classes; i++) free(m->labels[i]);
    free(m->labels);
    free(m->source);
    free(m->net.ops);
    free(m->weights);
    free(m);
}

const model_info *model_get_info(const model *m)
{
    return &m->info;
}

const net *model_get_net(const model *m)
{
    return &m->net;
}

const char *arch_name(model_arch a)
{
    return a == ARCH_RESNET50 ? "resnet50" : "mobilenetv2";
}

const char *flavour_name(model_flavour f)
{
    return f == FLAVOUR_TORCH ? "torch" : "keras";
}
