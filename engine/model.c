/* model.c - load a model file: validate the metadata, pick the kernel table, and have the
 * architecture's builder (build.h) make the op list, every BatchNorm folded into its
 * convolution.
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

#include "engine/build.h"
#include "engine/engine.h"
#include "engine/kernels/kernel_table.h"
#include "engine/limits.h"
#include "engine/net.h"
#include "engine/pages.h"
#include "engine/safetensors.h"

struct model {
    model_info info;
    net net;
    float *weights; /* one allocation: every folded tensor */
    char **labels;
    char *source;
    char *preprocess; /* info.preprocess_json */
};

static int berr(builder *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err, b->errlen, fmt, ap);
    va_end(ap);
    return XBN_EFORMAT;
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
    /* Carried, not read: the image layer parses it (image/preprocess.h). */
    if ((s = st_meta(b->f, "preprocess")) && !(in->preprocess_json = b->m->preprocess = strdup(s)))
        return berr(b, "out of memory");
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
    /* every tensor starts on a line: at most two allocations per tensor of the file (a
     * convolution's weights and bias), each with up to a line of padding */
    return cap + (size_t)2 * MODEL_WEIGHTS_ALIGN * (f->n_tensors + 1);
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
    b.info = &m->info, b.net = &m->net;
    m->net.kt = kt;
    m->info.gemm = kt->name;
    if ((rc = parse_meta(&b))) goto fail;
    b.cap = weights_floats(&f, kt->gemm != NULL);
    size_t bytes = (b.cap * sizeof(float) + 63) / 64 * 64 + 64; /* a whole number of lines */
    if (!(b.weights = m->weights = pages_alloc(bytes)) || build_tensor(&b, 3) < 0) {
        rc = berr(&b, "out of memory");
        goto fail;
    }
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
    free(m->preprocess);
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
