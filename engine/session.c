/* session.c - plan a model's op list for one input size, place its tensors in an arena and
 * run it on a batch with a small team of threads.
 *
 * Plan: shapes flow from the input through every op (Keras "correct_pad" depends on each
 * feature map's parity, so padding is resolved here). Tensors are then packed into arena
 * slots by lifetime: a slot is reused once the last reader of its tensor has run; each slot
 * is as large as the largest tensor it ever holds, times the regions of tensor_ptr.
 *
 * Threads: the caller plus (threads - 1) team members run every op together. Each op splits
 * its work the same way for every sample (rows of a GEMM, rows of a feature map, Winograd
 * tiles), and every kernel call sees one sample, so the arithmetic a sample gets never
 * depends on the batch: that is the batch-invariance guarantee. The team sleeps on a condvar
 * between runs and meets at a barrier between ops that spins briefly and then sleeps on a
 * futex (an op is microseconds to milliseconds; a condvar handoff per op would cost more
 * than small ops take, and pure spinning collapses when a member is descheduled).
 */
#include <limits.h>
#include <math.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/kernels/blas.h"
#include "engine/kernels/kernel_table.h"
#include "engine/limits.h"
#include "engine/net.h"
#include "engine/pages.h"

typedef struct {
    int h, w, c; /* per-sample shape */
    int slot;    /* arena slot, -1 for the dense output (written to the caller's logits) */
    size_t size; /* h*w*c floats */
} tensor_plan;

typedef struct {
    conv_geom g;   /* geometry for spatial ops */
    int row_stats; /* DWCONV: also sums its rows for the GroupNorm after it (gn_row_stats) */
    int gn_into;   /* GN: the 1x1 convolution after it applies it, as it reads its rows */
} op_plan;

struct session {
    const model *m;
    const net *net;
    const kernel_table *kt; /* the model's kernels; kt->gemm NULL: the BLAS path */
    int h, w, max_batch;
    int regions;   /* copies of every slot: max_batch on the BLAS path, threads on the packed */
    int tail_from; /* ops [tail_from, n_ops) run on the whole batch at once (packed path) */
    tensor_plan *t;
    op_plan *p;
    float **slot_base;
    size_t *slot_stride;         /* floats between samples in a slot: its largest tensor, rounded */
    unsigned char *slot_batched; /* the slot holds tail tensors: a region per sample */
    int n_slots;
    float *arena;
    size_t arena_floats;
    float *input_buf; /* session_input: max_batch NCHW samples */
    float *scratch;   /* im2col (BLAS path) or Winograd, per thread: threads * scratch_per_thread */
    float *zeros; /* zeros for the padding taps of the packed path: a kernel row of the widest */
    int zeros_floats;
    float *gn_stats; /* GroupNorm row statistics, per region: gn_stride floats each */
    size_t gn_stride;
    size_t scratch_per_thread;
    size_t team_scratch; /* floats of the tail's Winograd scratch, shared by the team */
    float *chan;         /* per thread: the kernels' per-channel scratch (member_scratch) */
    size_t chan_stride;

    /* current run */
    const float *input;
    float *logits;
    int n;
    int whole;             /* samples [0, whole) are claimed whole, one at a time (packed) */
    atomic_int next_whole; /* the next of those to claim */
    int *region_of;        /* [max_batch]: the region (thread) a whole sample runs in */
    atomic_int idle;       /* members with no sample left to claim */
    int join_n, join_op;   /* the sample the team finishes from op join_op; -1: none */
    long long joins;       /* samples the team finished (session_joins) */

    long long *op_ns; /* per-op wall time when profiling (session_profile), else NULL */
    long long profiled_samples;

    /* thread team */
    int threads;
    pthread_t tid[SESSION_MAX_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned generation; /* bumped per run, under mu */
    int quit;
    atomic_int arrived;
    atomic_uint phase;   /* futex word: bumped when the last member reaches a barrier */
    atomic_int sleepers; /* members waiting on the futex */
};

static int serr(char *err, size_t errlen, int code, const char *msg, const char *name)
{
    snprintf(err, errlen, "%s%s%s", name ? name : "", name ? ": " : "", msg);
    return code;
}

/* 1 on the packed path (the table has the engine's own GEMM), 0 on the BLAS path. */
static int packed(const session *s)
{
    return s->kt->gemm != NULL;
}

/* Panels of the packed GEMM across n output channels. */
static int panels(const session *s, int n)
{
    return (n + s->kt->panel_cols - 1) / s->kt->panel_cols;
}

/* A team member's scratch: its im2col rows (BLAS path) or Winograd tiles, and the per-channel
 * arrays of GroupNorm and pooling (kernels.h), for c = max_channels: mean_c and scale c floats
 * each, fwork 2c floats, dwork 2c doubles; chan_stride is 8c floats, rounded. */
typedef struct {
    float *col;
    float *mean_c, *scale, *fwork;
    double *dwork;
} member_scratch;

static member_scratch scratch_of(const session *s, int me)
{
    size_t c = (size_t)s->net->max_channels;
    float *at = s->chan + s->chan_stride * me;
    member_scratch ms = {s->scratch + s->scratch_per_thread * me, at, at + c, at + 2 * c,
                         (double *)(at + 4 * c)};
    return ms;
}

/* The region of a slot that sample n uses. The arena has one region per sample of a batch on
 * the BLAS path (every op runs on the whole batch), and in the slots of the packed path's tail
 * (see run_all); elsewhere on the packed path a sample runs through the network before the
 * next, so a region per thread is enough: thread t's whole samples use region t, samples
 * shared by the team region 0. */
static int region(const session *s, int slot, int n)
{
    if (!packed(s) || s->slot_batched[slot]) return n;
    return n < s->whole ? s->region_of[n] : 0;
}

/* Sample n's copy of tensor id. In a tail slot the samples of a tensor lie back to back at
 * its own size (rounded to a cache line), so one GEMM can take all their rows: safe because
 * the only tail tensors written before the tail are live until it, each in a slot of its own,
 * and in the tail the whole batch is at the same op. */
static float *tensor_ptr(const session *s, int id, int n)
{
    int slot = s->t[id].slot;
    size_t stride =
        s->slot_batched[slot] ? (s->t[id].size + 15) & ~(size_t)15 : s->slot_stride[slot];
    return s->slot_base[slot] + (size_t)region(s, slot, n) * stride;
}

/* 1 when samples [n0, n1) of tensor id lie back to back with no gap. */
static int samples_contiguous(const session *s, int id, int n0, int n1)
{
    return n1 - n0 == 1 || (s->slot_batched[s->t[id].slot] && s->t[id].size % 16 == 0);
}

/* Sample n's GroupNorm row statistics (gn_row_stats) for the map tensor id. The tail's come
 * after the regions' (the head of the next sample may run while a tail map's sums wait). */
static float *gn_stats_ptr(const session *s, int id, int n)
{
    int slot = s->t[id].slot, at = region(s, slot, n);
    if (s->slot_batched[slot]) at += s->regions; /* only the packed path has a tail */
    return s->gn_stats + (size_t)at * s->gn_stride;
}

/* ---- planning ---- */

static int plan_shapes(session *s, char *err, size_t errlen)
{
    const net *nt = s->net;
    s->t[0] = (tensor_plan){s->h, s->w, 3, 0, (size_t)s->h * s->w * 3};
    for (int i = 0; i < nt->n_ops; i++) {
        const op *o = &nt->ops[i];
        const tensor_plan *in = &s->t[o->in];
        tensor_plan *out = &s->t[o->out];
        conv_geom *g = &s->p[i].g;
        *g = (conv_geom){.h = in->h, .w = in->w, .c = in->c};
        switch (o->kind) {
        case OP_CONV:
        case OP_DWCONV:
        case OP_MAXPOOL: {
            int pb = o->pad, pr = o->pad;
            g->pt = g->pl = o->pad;
            if (o->padm == PAD_SAME_TF) g->pt = in->h % 2, g->pl = in->w % 2, pb = pr = 1;
            g->oh = (in->h + g->pt + pb - o->k) / o->stride + 1;
            g->ow = (in->w + g->pl + pr - o->k) / o->stride + 1;
            if (in->h + g->pt + pb < o->k || in->w + g->pl + pr < o->k)
                return serr(err, errlen, XBN_EINVAL, "input too small for this network", o->name);
            *out = (tensor_plan){g->oh, g->ow, o->cout, 0, 0};
            break;
        }
        case OP_GN:
            break; /* in place */
        case OP_GAP:
        case OP_DENSE:
            *out = (tensor_plan){1, 1, o->cout, 0, 0};
            break;
        }
        out->size = (size_t)out->h * out->w * out->c;
        if (o->kind == OP_GN && (size_t)in->h * 2 * in->c > s->gn_stride)
            s->gn_stride = (size_t)in->h * 2 * in->c;
        if (o->kind == OP_CONV && (o->k > 1 || o->stride > 1) && o->k * o->cin > s->zeros_floats)
            s->zeros_floats = o->k * o->cin;
        size_t need = 0; /* scratch for a whole sample per thread */
        if (o->kind == OP_CONV && (o->k > 1 || o->stride > 1) && !packed(s))
            need = (size_t)g->oh * g->ow * o->k * o->k * o->cin;
        if (o->kind == OP_CONV && o->wino)
            need = wino_scratch_floats(o->wino, wino_tiles(o->wino, g->oh, g->ow), o->cin, o->cout);
        need = (need + 15) & ~(size_t)15;
        if (need > s->scratch_per_thread) s->scratch_per_thread = need;
    }
    return 0;
}

/* The packed path splits a convolution by rows (equal shares) when there are enough, else by
 * panels of columns. */
static int conv_splits_rows(int rows, int panels, int nt)
{
    return rows >= 64 * nt || panels < nt;
}

/* Where GroupNorm joins its neighbours: the depthwise convolution before it sums each row as
 * it writes it (still in cache), and the 1x1 convolution after it normalises its rows just
 * before multiplying them, so the map is not read twice more and written once more. The
 * arithmetic is the same as the ops' alone (the same calls on the same values). */
static void plan_fusion(session *s)
{
    const net *nt = s->net;
    for (int i = 0; i + 1 < nt->n_ops; i++) {
        const op *o = &nt->ops[i], *next = &nt->ops[i + 1];
        if (o->kind == OP_DWCONV && next->kind == OP_GN && next->in == o->out)
            s->p[i].row_stats = 1;
        if (o->kind != OP_GN || next->kind != OP_CONV || next->in != o->in || next->k != 1 ||
            next->stride != 1 || next->wino || !packed(s))
            continue;
        int read_later = 0; /* the map must be dead once the convolution has read it */
        for (int j = i + 2; j < nt->n_ops; j++)
            read_later |= nt->ops[j].in == o->in || nt->ops[j].res == o->in;
        /* the convolution applies it only when split by rows (gn_applied_by_next), and in the
         * head a sample may pass from one member to the team between the two (run_whole) */
        int rows = s->p[i].g.h * s->p[i].g.w, np = panels(s, next->cout);
        int same_split = i >= s->tail_from ||
                         conv_splits_rows(rows, np, 1) == conv_splits_rows(rows, np, s->threads);
        s->p[i].gn_into = !read_later && same_split;
    }
}

/* The tail: the ops on the smallest feature maps, whose weights are many times their
 * activations (at 224x224, ResNet50's 7x7 layer4: 0.4 MB maps against 4-17 MB of weights per
 * op). Run a sample at a time, every thread streams them for every sample, and a Winograd
 * GEMM has 16 rows; the tail runs op by op on the whole batch instead, each GEMM taking the
 * rows of all its samples, so a batch reads the weights once. It starts after the last op
 * whose input has more than TAIL_MAX_PIXELS pixels (7x7: the 14x14 stage as well measured no
 * faster and doubled the extra memory): a choice by layer shape, and the kernels give every
 * row the same bits however many rows a call has. */
#define TAIL_MAX_PIXELS 49

static void plan_tail(session *s)
{
    const net *nt = s->net;
    s->tail_from = nt->n_ops;
    if (!packed(s)) return;
    while (s->tail_from > 0) {
        const conv_geom *g = &s->p[s->tail_from - 1].g;
        if (g->h * g->w > TAIL_MAX_PIXELS) break;
        s->tail_from--;
    }
    /* the team's Winograd scratch holds the whole batch's tiles (run_conv_wino) */
    for (int i = s->tail_from; i < nt->n_ops; i++) {
        const op *o = &nt->ops[i];
        const conv_geom *g = &s->p[i].g;
        if (o->kind != OP_CONV || !o->wino) continue;
        int tiles = wino_tiles(o->wino, g->oh, g->ow);
        size_t need = wino_scratch_floats(o->wino, tiles * s->max_batch, o->cin, o->cout);
        if (need > s->team_scratch) s->team_scratch = (need + 15) & ~(size_t)15;
    }
}

/* Floats rounded up to a whole 64-byte line, so regions never share one. */
static size_t lines(size_t floats)
{
    return (floats + 15) & ~(size_t)15;
}

/* For each tensor the last op that reads it (or writes it: a tensor is live while written),
 * and whether the tail (ops from tail_from on) touches it. */
static void plan_lifetimes(const session *s, int *last, unsigned char *in_tail)
{
    const net *nt = s->net;
    for (int i = 0; i < nt->n_tensors; i++) last[i] = -1;
    for (int i = 0; i < nt->n_ops; i++) {
        const op *o = &nt->ops[i];
        last[o->in] = i;
        if (o->res >= 0) last[o->res] = i;
        if (o->out != o->in && last[o->out] < i) last[o->out] = i;
        if (i >= s->tail_from) {
            in_tail[o->in] = in_tail[o->out] = 1;
            if (o->res >= 0) in_tail[o->res] = 1;
        }
    }
}

/* Give every tensor a slot: the first whose tensor is dead by the op that writes this one,
 * among the slots of its kind (tail or not), else a new slot. The dense output gets none (it
 * is the caller's logits). slot_size: floats of each slot's largest tensor. Returns the
 * number of slots; holder is scratch, one per tensor. */
static int plan_assign(session *s, const int *last, const unsigned char *in_tail, int *holder,
                       size_t *slot_size)
{
    const net *nt = s->net;
    int n_slots = 1;
    holder[0] = 0, slot_size[0] = s->t[0].size, s->t[0].slot = 0; /* the input */
    for (int i = 0; i < nt->n_ops; i++) {
        const op *o = &nt->ops[i];
        if (o->out == o->in) continue;
        if (o->kind == OP_DENSE) {
            s->t[o->out].slot = -1;
            continue;
        }
        int pick = -1;
        for (int k = 0; k < n_slots && pick < 0; k++)
            if ((holder[k] < 0 || last[holder[k]] < i) && s->slot_batched[k] == in_tail[o->out])
                pick = k;
        if (pick < 0) {
            pick = n_slots++;
            slot_size[pick] = 0;
            s->slot_batched[pick] = in_tail[o->out];
        }
        holder[pick] = o->out;
        s->t[o->out].slot = pick;
        if (s->t[o->out].size > slot_size[pick]) slot_size[pick] = s->t[o->out].size;
    }
    return n_slots;
}

/* The arena: every slot's regions (a region per sample in the tail's slots, else per
 * s->regions), the threads' scratch (or the tail's shared Winograd scratch, if larger), the
 * padding zeros, GroupNorm statistics, the members' per-channel scratch, and the batch's
 * input. One allocation; returns 0 or XBN_ENOMEM. */
static int plan_arena(session *s, const size_t *slot_size)
{
    const net *nt = s->net;
    size_t total = 0, scratch = s->scratch_per_thread * s->threads;
    int gn_regions = s->regions + (s->tail_from < nt->n_ops ? s->max_batch : 0);
    s->slot_base = calloc((size_t)s->n_slots, sizeof *s->slot_base);
    s->slot_stride = calloc((size_t)s->n_slots, sizeof *s->slot_stride);
    if (!s->slot_base || !s->slot_stride) return XBN_ENOMEM;
    for (int k = 0; k < s->n_slots; k++) {
        s->slot_stride[k] = lines(slot_size[k]);
        total += s->slot_stride[k] * (s->slot_batched[k] ? s->max_batch : s->regions);
    }
    if (s->team_scratch > scratch) scratch = s->team_scratch;
    s->gn_stride = lines(s->gn_stride);
    s->chan_stride = lines((size_t)8 * nt->max_channels); /* member_scratch */
    total += scratch + lines((size_t)s->zeros_floats) + s->gn_stride * gn_regions;
    total += s->chan_stride * s->threads + lines((size_t)s->max_batch * 3 * s->h * s->w);
    s->arena_floats = total;
    if (!(s->arena = pages_alloc(total * sizeof(float)))) return XBN_ENOMEM;
    /* Each sample owns a fixed region of every slot, so samples may be at different ops at the
     * same time (the packed path runs samples on different threads). */
    float *at = s->arena;
    for (int k = 0; k < s->n_slots; k++) {
        s->slot_base[k] = at;
        at += s->slot_stride[k] * (s->slot_batched[k] ? s->max_batch : s->regions);
    }
    s->scratch = at;
    s->zeros = at + scratch;
    s->gn_stats = s->zeros + lines((size_t)s->zeros_floats);
    s->chan = s->gn_stats + s->gn_stride * gn_regions;
    s->input_buf = s->chan + s->chan_stride * s->threads;
    memset(s->zeros, 0, (size_t)s->zeros_floats * sizeof *s->zeros);
    return 0;
}

/* Assign slots by lifetime: a tensor's slot frees after the last op that reads it. Tensors the
 * tail touches go to slots of their own, which have a region per sample. */
static int plan_slots(session *s, char *err, size_t errlen)
{
    size_t n = (size_t)s->net->n_tensors;
    int *last = malloc(n * sizeof *last), *holder = malloc(n * sizeof *holder);
    unsigned char *in_tail = calloc(n, 1);
    size_t *slot_size = calloc(n, sizeof *slot_size);
    int rc = XBN_ENOMEM;
    s->slot_batched = calloc(n, 1);
    if (!last || !holder || !in_tail || !slot_size || !s->slot_batched) goto done;
    plan_lifetimes(s, last, in_tail);
    s->n_slots = plan_assign(s, last, in_tail, holder, slot_size);
    rc = plan_arena(s, slot_size);
done:
    if (rc) serr(err, errlen, rc, "out of memory planning the arena", NULL);
    free(last);
    free(holder);
    free(in_tail);
    free(slot_size);
    return rc;
}

/* ---- execution: thread `t` of `nt` does its share of op i for every sample ---- */

/* Spin briefly (ops are short and the team is usually all on CPU), then sleep on a futex so
 * a descheduled member does not make the others burn their time slices. */
#define BARRIER_SPINS 4000

static void barrier(session *s, int nt, unsigned *local_phase)
{
    unsigned ph = ++*local_phase;
    if (atomic_fetch_add(&s->arrived, 1) == nt - 1) {
        atomic_store(&s->arrived, 0);
        atomic_store(&s->phase, ph);
        if (atomic_load(&s->sleepers))
            syscall(SYS_futex, &s->phase, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
        return;
    }
    for (int i = 0; i < BARRIER_SPINS; i++) {
        if (atomic_load(&s->phase) == ph) return;
        __builtin_ia32_pause();
    }
    atomic_fetch_add(&s->sleepers, 1);
    unsigned cur;
    while ((cur = atomic_load(&s->phase)) != ph)
        syscall(SYS_futex, &s->phase, FUTEX_WAIT_PRIVATE, cur, NULL, NULL, 0);
    atomic_fetch_sub(&s->sleepers, 1);
}

static void split(int total, int t, int nt, int *lo, int *hi)
{
    *lo = (int)((long)total * t / nt);
    *hi = (int)((long)total * (t + 1) / nt);
}

/* BLAS path. Below this many output pixels a convolution splits its output channels among
 * the team instead of its rows: each thread then packs only its share of the weights, and
 * GEMMs keep enough rows to be efficient. A choice by layer shape, never by batch size. */
#define CONV_SPLIT_COLS_BELOW 1024

static void run_conv_blas(session *s, const op *o, const conv_geom *g, int t, int nt, int n0,
                          int n1, float *col)
{
    int rows = g->oh * g->ow, lo = 0, hi = rows, c_lo = 0, c_hi = o->cout;
    if (rows < CONV_SPLIT_COLS_BELOW && nt > 1) {
        /* column blocks of 16 (a cache line of floats) so threads never share a line */
        split((o->cout + 15) / 16, t, nt, &c_lo, &c_hi);
        c_lo *= 16, c_hi = c_hi * 16 < o->cout ? c_hi * 16 : o->cout;
    } else {
        split(rows, t, nt, &lo, &hi);
    }
    if (lo >= hi || c_lo >= c_hi) return;
    int direct = o->k == 1 && o->stride == 1;
    size_t kk = (size_t)o->k * o->k * o->cin;
    for (int n = n0; n < n1; n++) {
        const float *in = tensor_ptr(s, o->in, n);
        float *out = tensor_ptr(s, o->out, n) + (size_t)lo * o->cout;
        const float *a = in + (size_t)lo * o->cin;
        if (!direct) {
            /* im2col of rows [lo, hi) only: a sub-geometry starting at output row lo */
            im2col_rows(in, g, o->k, o->stride, lo, hi, col);
            a = col;
        }
        gemm_cols(a, o->w, out, hi - lo, o->cout, c_lo, c_hi, (int)kk);
        bias_act(out, o->b, o->res >= 0 ? tensor_ptr(s, o->res, n) + (size_t)lo * o->cout : NULL,
                 hi - lo, o->cout, c_lo, c_hi, o->act, o->resm);
    }
}

/* Packed-GEMM path: every element's arithmetic is independent of the rows and columns in the
 * call, so the team may split a convolution any way: by rows when there are many, by panels of
 * columns otherwise. */
/* The part of rows [lo, hi) of a batch, laid out sample after sample with `per` rows each,
 * that falls in sample j, in the sample's own numbering: [*a, *b). Returns 0 when empty. */
static int rows_of_sample(int lo, int hi, int j, int per, int *a, int *b)
{
    *a = lo > j * per ? lo - j * per : 0;
    *b = hi < (j + 1) * per ? hi - j * per : per;
    return *a < *b;
}

/* Winograd: a thread alone, or a team when the weights fit in L2, runs its tiles of a sample
 * through all three steps; otherwise (and in the tail, for the whole batch) the team splits
 * the tiles for the transforms and the positions for the GEMMs, sharing the first member's
 * scratch, so each member reads only its share of the large transformed weights (ResNet50
 * layer4, batch 1, 2 threads: 1.1x -> 1.8x scaling), and each GEMM takes every sample's tiles. */
static void run_conv_wino(session *s, const op *o, const conv_geom *g, int t, int nt, int n0,
                          int n1, float *scratch, const gemm_epilogue *e, unsigned *phase)
{
    int tiles = wino_tiles(o->wino, g->oh, g->ow), positions = (o->wino + 2) * (o->wino + 2);
    int rows = (n1 - n0) * tiles, lo, hi, k_lo, k_hi, a, b;
    const kernel_table *kt = s->kt;
    split(rows, t, nt, &lo, &hi);
    if (n1 - n0 == 1 && (nt == 1 || wino_weights_in_l2(o->wino, o->cin, o->cout))) {
        ENGINE_ASSERT(wino_scratch_floats(o->wino, hi - lo, o->cin, o->cout) <=
                      s->scratch_per_thread);
        wino_conv(kt, o->wino, tensor_ptr(s, o->in, n0), g->h, g->w, o->cin, o->w, o->cout, e, lo,
                  hi, scratch, tensor_ptr(s, o->out, n0));
        return;
    }
    split(positions, t, nt, &k_lo, &k_hi);
    ENGINE_ASSERT(wino_scratch_floats(o->wino, rows, o->cin, o->cout) <=
                  s->scratch_per_thread * s->threads + s->team_scratch);
    float *v = s->scratch, *prod = v + (size_t)positions * rows * o->cin;
    for (int j = 0; j < n1 - n0; j++) /* sample n0 + j's tiles are rows j * tiles.. */
        if (rows_of_sample(lo, hi, j, tiles, &a, &b))
            kt->wino_input(o->wino, tensor_ptr(s, o->in, n0 + j), g->h, g->w, o->cin, a, b,
                           -j * tiles, rows, v);
    barrier(s, nt, phase);
    wino_gemm(kt, v, rows, o->cin, o->w, o->cout, k_lo, k_hi, prod);
    barrier(s, nt, phase);
    for (int j = 0; j < n1 - n0; j++)
        if (rows_of_sample(lo, hi, j, tiles, &a, &b))
            kt->wino_output(o->wino, prod, -j * tiles, rows, g->h, g->w, o->cout, e, a, b,
                            tensor_ptr(s, o->out, n0 + j));
}

/* Samples the 1x1 convolution op i multiplies in one GEMM when it runs on [n0, n1): all of
 * them in the tail, where their rows lie back to back; else one. */
static int conv_batch(const session *s, int i, int n0, int n1)
{
    const op *o = &s->net->ops[i];
    if (n1 - n0 < 2 || o->k != 1 || o->stride != 1 || o->wino ||
        !samples_contiguous(s, o->in, n0, n1) || !samples_contiguous(s, o->out, n0, n1) ||
        (o->res >= 0 && !samples_contiguous(s, o->res, n0, n1)))
        return 1;
    return n1 - n0;
}

/* 1 when op i, a GroupNorm, is applied by the convolution after it, run on samples [n0, n1)
 * by a team of nt. */
static int gn_applied_by_next(const session *s, int i, int nt, int n0, int n1)
{
    const conv_geom *g = &s->p[i].g;
    return s->p[i].gn_into && conv_splits_rows(conv_batch(s, i + 1, n0, n1) * g->h * g->w,
                                               panels(s, s->net->ops[i + 1].cout), nt);
}

/* About the size of a step when a 1x1 convolution applies the GroupNorm before it (each step
 * a whole number of tiles): small enough that the normalised rows are still in L2 when
 * multiplied, large enough that the weights, which each step reads again (panels outside, up
 * to NEXT_PANEL_MAX_ROWS rows), are read few times: GN_STEP_BYTES of normalised rows, at least
 * GN_STEP_ROWS rows. Against 48 rows whatever the channels, on a Zen 5 EPYC (one process
 * alternating builds, 2 threads): ResNet50-torch batch 1 1.027x (layer1's 64 channels now in
 * steps of 512 rows, layer3's 256 in 128), keras 1.009x, batch 8 1.015x, AVX2 kernels 1.017x;
 * MobileNetV2 (its projections from 96-960 channels) 1.00x. */
#define GN_STEP_BYTES (128 << 10)
#define GN_STEP_ROWS 48

static void run_conv_packed(session *s, int i, const op *o, const conv_geom *g, int t, int nt,
                            int n0, int n1, const member_scratch *ms, unsigned *phase)
{
    const kernel_table *kt = s->kt;
    int nb = conv_batch(s, i, n0, n1), per = g->oh * g->ow, th = kt->tile_rows;
    int rows = nb * per, np = panels(s, o->cout), lo, hi;
    const op *gn = i > 0 && gn_applied_by_next(s, i - 1, nt, n0, n1) ? &s->net->ops[i - 1] : NULL;
    gemm_epilogue e = {o->b, NULL, o->act == ACT_NONE ? -INFINITY : 0.0f,
                       o->act == ACT_RELU6 ? 6.0f : INFINITY, o->resm == RES_ACT_THEN_ADD};
    if (o->wino) {
        run_conv_wino(s, o, g, t, nt, n0, n1, ms->col, &e, phase);
        return;
    }
    int p_lo = 0, p_hi = np;
    lo = 0, hi = rows;
    if (conv_splits_rows(rows, np, nt)) {
        /* equal rows, not whole tiles: layer3's 196 rows as 17 + 16 tiles of 6 left one member
         * 4% more work; in 98 + 98, tile_height ends each share in two short tiles */
        split(rows, t, nt, &lo, &hi);
    } else {
        split(np, t, nt, &p_lo, &p_hi);
    }
    if (lo >= hi || p_lo >= p_hi) return;
    for (int n = n0; n < n1; n += nb) {
        float *in = tensor_ptr(s, o->in, n); /* written when it applies the GroupNorm */
        float *out = tensor_ptr(s, o->out, n) + (size_t)lo * o->cout;
        if (o->res >= 0) e.res = tensor_ptr(s, o->res, n) + (size_t)lo * o->cout;
        if (gn && nb > 1) {
            /* the tail: normalise this member's rows of every sample, then one GEMM (maps are
             * small here; re-reading the weights per step would cost more) */
            for (int j = 0, a, b; j < nb; j++) {
                if (!rows_of_sample(lo, hi, j, per, &a, &b)) continue;
                kt->gn_finish(gn_stats_ptr(s, o->in, n + j), g->h, g->w, o->cin,
                              o->cin / gn->groups, gn->eps, gn->w, ms->mean_c, ms->scale,
                              ms->dwork);
                kt->gn_apply(in + ((size_t)j * per + a) * o->cin, b - a, o->cin, ms->mean_c,
                             ms->scale, gn->b, gn->act);
            }
            kt->gemm(in + (size_t)lo * o->cin, hi - lo, o->cin, o->w, o->cout, p_lo, p_hi, out, &e);
        } else if (gn) {
            kt->gn_finish(gn_stats_ptr(s, o->in, n), g->h, g->w, o->cin, o->cin / gn->groups,
                          gn->eps, gn->w, ms->mean_c, ms->scale, ms->dwork);
            /* steps of about step_rows in whole tiles, none left a sliver */
            int step_rows = GN_STEP_BYTES / (o->cin * (int)sizeof(float));
            if (step_rows < GN_STEP_ROWS) step_rows = GN_STEP_ROWS;
            int steps = (hi - lo + step_rows / 2) / step_rows;
            if (steps < 1) steps = 1;
            int step = ((hi - lo + steps - 1) / steps + th - 1) / th * th;
            for (int r = lo; r < hi; r += step) {
                int m = hi - r < step ? hi - r : step;
                gemm_epilogue er = e;
                if (e.res) er.res = e.res + (size_t)(r - lo) * o->cout;
                kt->gn_apply(in + (size_t)r * o->cin, m, o->cin, ms->mean_c, ms->scale, gn->b,
                             gn->act);
                kt->gemm(in + (size_t)r * o->cin, m, o->cin, o->w, o->cout, p_lo, p_hi,
                         out + (size_t)(r - lo) * o->cout, &er);
            }
        } else if (o->k == 1 && o->stride == 1) {
            kt->gemm(in + (size_t)lo * o->cin, hi - lo, o->cin, o->w, o->cout, p_lo, p_hi, out, &e);
        } else { /* KxK or strided: straight from the input, no im2col */
            ENGINE_ASSERT(o->k * o->cin <= s->zeros_floats);
            kt->conv(in, g, o->k, o->stride, lo, hi, s->zeros, o->w, o->cout, p_lo, p_hi, out, &e);
        }
    }
}

static void run_conv(session *s, int i, const op *o, const conv_geom *g, int t, int nt, int n0,
                     int n1, const member_scratch *ms, unsigned *phase)
{
    if (packed(s))
        run_conv_packed(s, i, o, g, t, nt, n0, n1, ms, phase);
    else
        run_conv_blas(s, o, g, t, nt, n0, n1, ms->col);
}

/* A depthwise convolution or max pool, split by output rows. */
static void run_rows(session *s, int i, const op *o, const conv_geom *g, int t, int nt, int n0,
                     int n1, const member_scratch *ms)
{
    const kernel_table *kt = s->kt;
    int lo, hi;
    split(g->oh, t, nt, &lo, &hi);
    for (int n = n0; n < n1 && lo < hi; n++) {
        const float *in = tensor_ptr(s, o->in, n);
        float *out = tensor_ptr(s, o->out, n);
        /* a row at a time when the GroupNorm's sums are taken here, while it is in cache */
        for (int r = lo, step = s->p[i].row_stats ? 1 : hi - lo; r < hi; r += step) {
            conv_geom sub = *g;
            sub.oh = r + step < hi ? step : hi - r;
            sub.pt = g->pt - r * o->stride; /* rows [r, r + oh) as their own output */
            float *rows_out = out + (size_t)r * g->ow * o->cout;
            if (o->kind == OP_MAXPOOL) {
                kt->maxpool(in, &sub, o->k, o->stride, rows_out);
                continue;
            }
            kt->dwconv3x3(in, &sub, o->stride, o->w, rows_out);
            if (s->p[i].row_stats)
                kt->gn_row_stats(out, g->ow, o->cout, r, r + sub.oh, gn_stats_ptr(s, o->out, n),
                                 ms->fwork);
        }
    }
}

/* GroupNorm: each member sums its own rows (the convolutions around it split by rows too, so
 * they are in its cache), then normalises them from every row's sums, unless the depthwise
 * convolution before took the sums or the 1x1 convolution after applies it. */
static void run_gn(session *s, int i, const op *o, const conv_geom *g, int t, int nt, int n0,
                   int n1, const member_scratch *ms, unsigned *phase)
{
    const kernel_table *kt = s->kt;
    int cpg = o->cin / o->groups, applied = gn_applied_by_next(s, i, nt, n0, n1);
    int summed_before = i > 0 && s->p[i - 1].row_stats, lo, hi;
    split(g->h, t, nt, &lo, &hi);
    for (int n = n0; n < n1; n++) {
        float *x = tensor_ptr(s, o->in, n), *stats = gn_stats_ptr(s, o->in, n);
        if (!summed_before) kt->gn_row_stats(x, g->w, o->cin, lo, hi, stats, ms->fwork);
        if (applied) continue;
        if (nt > 1 && !summed_before) barrier(s, nt, phase); /* every row summed */
        kt->gn_finish(stats, g->h, g->w, o->cin, cpg, o->eps, o->w, ms->mean_c, ms->scale,
                      ms->dwork);
        if (lo < hi)
            kt->gn_apply(x + (size_t)lo * g->w * o->cin, (hi - lo) * g->w, o->cin, ms->mean_c,
                         ms->scale, o->b, o->act);
    }
}

/* Op i for samples [n0, n1), thread t's share of nt; ms is the running member's scratch. An op
 * may meet the team at barriers of its own (`phase`). */
static void run_op(session *s, int i, int t, int nt, int n0, int n1, const member_scratch *ms,
                   unsigned *phase)
{
    const op *o = &s->net->ops[i];
    const conv_geom *g = &s->p[i].g;
    int lo, hi;
    ENGINE_ASSERT(o->cin <= s->net->max_channels && o->cout <= s->net->max_channels);
    switch (o->kind) {
    case OP_CONV:
        run_conv(s, i, o, g, t, nt, n0, n1, ms, phase);
        break;
    case OP_DWCONV:
    case OP_MAXPOOL:
        run_rows(s, i, o, g, t, nt, n0, n1, ms);
        break;
    case OP_GN:
        run_gn(s, i, o, g, t, nt, n0, n1, ms, phase);
        break;
    case OP_GAP:
        split(n1 - n0, t, nt, &lo, &hi);
        for (int n = n0 + lo; n < n0 + hi; n++)
            s->kt->gap(tensor_ptr(s, o->in, n), g->h * g->w, o->cin, tensor_ptr(s, o->out, n),
                       ms->dwork);
        break;
    case OP_DENSE:
        split(o->cout, t, nt, &lo, &hi);
        for (int n = n0; n < n1 && lo < hi; n++)
            s->kt->dense(tensor_ptr(s, o->in, n), o->w + (size_t)lo * o->cin, o->b + lo, o->cin,
                         hi - lo, s->logits + (size_t)n * o->cout + lo);
        break;
    }
}

/* Ops [i0, i1) for samples [n0, n1), thread t's share of nt (the team meets between ops), run
 * by team member `me`. */
static void run_range(session *s, int me, int t, int nt, int n0, int n1, int i0, int i1,
                      unsigned *local_phase)
{
    member_scratch ms = scratch_of(s, me);
    int lo, hi;
    split(s->h, t, nt, &lo, &hi);
    for (int n = n0; n < n1 && i0 == 0; n++)
        s->kt->nchw_to_nhwc(s->input + (size_t)n * 3 * s->h * s->w, 3, s->h, s->w, lo, hi,
                            tensor_ptr(s, 0, n));
    if (nt > 1) barrier(s, nt, local_phase);
    for (int i = i0; i < i1; i++) {
        struct timespec t0, t1;
        if (s->op_ns && me == 0) clock_gettime(CLOCK_MONOTONIC, &t0);
        run_op(s, i, t, nt, n0, n1, &ms, local_phase);
        if (nt > 1) barrier(s, nt, local_phase);
        if (s->op_ns && me == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            s->op_ns[i] += (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
        }
    }
}

/* Whole sample n, claimed by member t: its ops alone, until every other member has run out
 * of samples. Then the team finishes it from the next op, so nobody waits for the last
 * sample (plan_fusion keeps that safe between a GroupNorm and the convolution after it). */
static void run_whole(session *s, int t, int n, int head, unsigned *local_phase)
{
    int i = 0;
    s->region_of[n] = t;
    for (; i < head; i++) {
        if (i > 0 && atomic_load(&s->idle) == s->threads - 1) break;
        run_range(s, t, 0, 1, n, n + 1, i, i + 1, local_phase);
    }
    if (i == head) return;
    s->join_n = n, s->join_op = i;
    s->joins++;
    barrier(s, s->threads, local_phase);
    run_range(s, t, t, s->threads, n, n + 1, i, head, local_phase);
}

/* Member t has no whole sample left to claim: it waits, and helps the last member still in
 * one finish it (run_whole), until that member runs out too and releases everyone. */
static void help_last(session *s, int t, int head, unsigned *local_phase)
{
    int nt = s->threads;
    if (atomic_fetch_add(&s->idle, 1) == nt - 1) s->join_op = -1;
    for (;;) {
        barrier(s, nt, local_phase); /* join_op is written before it, read after */
        if (s->join_op < 0) return;
        run_range(s, t, t, nt, s->join_n, s->join_n + 1, s->join_op, head, local_phase);
    }
}

/* One run, as thread t. With packed GEMMs every kernel gives an element the same bits however
 * the work is split, so samples go through the network up to the tail one at a time (their
 * activations stay in cache), each thread taking whole samples while there are any (the team
 * shares the ops of a batch smaller than itself); then the team runs the tail on the whole
 * batch. BLAS results depend on the split, so there the team always shares every op, split
 * the same way for every sample. */
static void run_all(session *s, int t, unsigned *local_phase)
{
    int nt = s->threads, head = s->tail_from, n_ops = s->net->n_ops;
    if (!packed(s)) {
        run_range(s, t, t, nt, 0, s->n, 0, n_ops, local_phase);
        return;
    }
    /* whole samples are claimed one at a time, so a member slowed down (by the HTTP threads
     * decoding on the same cores) takes fewer and the others do not wait for it */
    for (int n; (n = atomic_fetch_add(&s->next_whole, 1)) < s->whole;)
        run_whole(s, t, n, head, local_phase);
    if (s->whole > 0) help_last(s, t, head, local_phase);
    for (int n = s->whole; n < s->n; n++) run_range(s, t, t, nt, n, n + 1, 0, head, local_phase);
    /* run_range starts with a barrier: every sample has reached the tail */
    if (head < n_ops) run_range(s, t, t, nt, 0, s->n, head, n_ops, local_phase);
    if (nt > 1) barrier(s, nt, local_phase); /* the caller returns only when all are done */
}

typedef struct {
    session *s;
    int t;
} member_arg;

static void *member_main(void *arg)
{
    session *s = ((member_arg *)arg)->s;
    int t = ((member_arg *)arg)->t;
    free(arg);
    unsigned seen = 0, local_phase = 0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (s->generation == seen && !s->quit) pthread_cond_wait(&s->cv, &s->mu);
        int quit = s->quit;
        seen = s->generation;
        pthread_mutex_unlock(&s->mu);
        if (quit) break;
        run_all(s, t, &local_phase);
    }
    return NULL;
}

int session_run(session *s, const float *input, int n, float *logits)
{
    if (n < 1 || n > s->max_batch) return XBN_EINVAL;
    s->input = input, s->logits = logits, s->n = n;
    s->whole = packed(s) && s->threads > 1 && n >= s->threads ? n : 0;
    atomic_store(&s->next_whole, 0);
    atomic_store(&s->idle, 0);
    unsigned local_phase = atomic_load(&s->phase);
    if (s->threads > 1) {
        pthread_mutex_lock(&s->mu);
        s->generation++;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    run_all(s, 0, &local_phase);
    if (s->op_ns) s->profiled_samples += n;
    return 0;
}

/* ---- lifecycle ---- */

static void stop_team(session *s)
{
    pthread_mutex_lock(&s->mu);
    s->quit = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (int t = 1; t < s->threads; t++) pthread_join(s->tid[t], NULL);
    s->threads = 1;
}

int session_new(const model *m, int h, int w, int max_batch, session **out, char *err,
                size_t errlen)
{
    return session_new_threads(m, h, w, max_batch, 1, out, err, errlen);
}

int session_new_threads(const model *m, int h, int w, int max_batch, int threads, session **out,
                        char *err, size_t errlen)
{
    *out = NULL;
    if (h < 1 || w < 1 || h > SESSION_MAX_SIDE || w > SESSION_MAX_SIDE || max_batch < 1 ||
        max_batch > SESSION_MAX_BATCH || threads < 1 || threads > SESSION_MAX_THREADS)
        return serr(err, errlen, XBN_EINVAL, "bad session size, batch or thread count", NULL);
    session *s = calloc(1, sizeof *s);
    if (!s) return serr(err, errlen, XBN_ENOMEM, "out of memory", NULL);
    s->m = m, s->net = model_get_net(m), s->kt = s->net->kt;
    s->h = h, s->w = w, s->max_batch = max_batch, s->threads = threads;
    s->regions = packed(s) ? threads : max_batch;
    kernels_init();
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    int rc = XBN_ENOMEM;
    s->t = calloc((size_t)s->net->n_tensors, sizeof *s->t);
    s->p = calloc((size_t)s->net->n_ops, sizeof *s->p);
    s->region_of = calloc((size_t)max_batch, sizeof *s->region_of);
    if (!s->t || !s->p || !s->region_of) {
        serr(err, errlen, rc, "out of memory", NULL);
        goto fail;
    }
    if ((rc = plan_shapes(s, err, errlen))) goto fail;
    plan_tail(s);
    if ((rc = plan_slots(s, err, errlen))) goto fail;
    plan_fusion(s);
    int started = 1;
    for (int t = 1; t < threads; t++, started++) {
        member_arg *a = malloc(sizeof *a);
        if (a) *a = (member_arg){s, t};
        if (!a || pthread_create(&s->tid[t], NULL, member_main, a)) {
            free(a);
            s->threads = started;
            rc = serr(err, errlen, XBN_ENOMEM, "cannot start engine threads", NULL);
            goto fail;
        }
    }
    *out = s;
    return 0;
fail:
    session_free(s);
    return rc;
}

void session_free(session *s)
{
    if (!s) return;
    stop_team(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->op_ns);
    free(s->arena);
    free(s->slot_base);
    free(s->slot_stride);
    free(s->slot_batched);
    free(s->t);
    free(s->p);
    free(s->region_of);
    free(s);
}

float *session_input(session *s)
{
    return s->input_buf;
}

size_t session_arena_bytes(const session *s)
{
    return s->arena_floats * sizeof(float);
}

static double op_macs(const session *s, int i, size_t *params)
{
    const op *o = &s->net->ops[i];
    const tensor_plan *out = &s->t[o->out];
    const conv_geom *g = &s->p[i].g;
    *params = 0;
    switch (o->kind) {
    case OP_CONV:
        *params = (size_t)o->k * o->k * o->cin * o->cout + (o->b ? o->cout : 0);
        return (double)out->h * out->w * o->cout * o->k * o->k * o->cin;
    case OP_DWCONV:
        *params = (size_t)9 * o->cin;
        return (double)out->h * out->w * o->cin * 9;
    case OP_GN:
        *params = 2 * (size_t)o->cin;
        return (double)g->h * g->w * o->cin * 2;
    case OP_MAXPOOL:
        return (double)out->h * out->w * o->cin * 9 / 2;
    case OP_GAP:
        return (double)g->h * g->w * o->cin / 2;
    case OP_DENSE:
        *params = (size_t)o->cin * o->cout + o->cout;
        return (double)o->cin * o->cout;
    }
    return 0;
}

long long session_joins(const session *s)
{
    return s->joins;
}

double session_flops_per_sample(const session *s)
{
    double f = 0;
    size_t p;
    for (int i = 0; i < s->net->n_ops; i++) f += 2 * op_macs(s, i, &p);
    return f;
}

/* op_kind's names, as inspect, the profile and session_op_stats print them */
static const char *const op_kinds[] = {"conv",    "dwconv",  "groupnorm",
                                       "maxpool", "avgpool", "dense"};

void session_print_plan(const session *s, FILE *f)
{
    const char *const *kinds = op_kinds;
    static const char *acts[] = {"", "+relu", "+relu6"};
    double total = 0;
    size_t total_params = 0, p;
    fprintf(f, "%-4s %-20s %-30s %-16s %10s %9s\n", "#", "op", "name", "output (HxWxC)", "params",
            "MFLOPs");
    for (int i = 0; i < s->net->n_ops; i++) {
        const op *o = &s->net->ops[i];
        const tensor_plan *t = &s->t[o->out];
        double fl = 2 * op_macs(s, i, &p) / 1e6;
        char kind[32], shape[32];
        snprintf(kind, sizeof kind, "%s%s%s", kinds[o->kind], o->res >= 0 ? "+add" : "",
                 acts[o->act]);
        if (o->kind == OP_CONV || o->kind == OP_DWCONV)
            snprintf(kind, sizeof kind, "%s%dx%d/%d%s%s%s", o->kind == OP_CONV ? "conv" : "dw",
                     o->k, o->k, o->stride,
                     o->wino == 4   ? "+wino4"
                     : o->wino == 2 ? "+wino2"
                                    : "",
                     o->res >= 0 ? "+add" : "", acts[o->act]);
        snprintf(shape, sizeof shape, "%dx%dx%d", t->h, t->w, t->c);
        fprintf(f, "%-4d %-20s %-30s %-16s %10zu %9.2f\n", i, kind, o->name, shape, p, fl);
        total += fl;
        total_params += p;
    }
    fprintf(f,
            "total: %d ops, %zu params (%.1f MB folded), %.1f MFLOPs per sample, arena %.1f MB "
            "for batch %d\n",
            s->net->n_ops, total_params, total_params * 4 / 1e6, total,
            s->n_slots ? session_arena_bytes(s) / 1e6 : 0.0, s->max_batch);
}

int session_profile(session *s, int on)
{
    free(s->op_ns);
    s->op_ns = on ? calloc((size_t)s->net->n_ops, sizeof *s->op_ns) : NULL;
    s->profiled_samples = 0;
    return on && !s->op_ns ? XBN_ENOMEM : 0;
}

int session_op_count(const session *s)
{
    return s->net->n_ops;
}

int session_op_stats_get(const session *s, int i, session_op_stats *out)
{
    if (i < 0 || i >= s->net->n_ops) return XBN_EINVAL;
    const op *o = &s->net->ops[i];
    const conv_geom *g = &s->p[i].g;
    const tensor_plan *t = &s->t[o->out];
    size_t p;
    double flops = 2 * op_macs(s, i, &p), mul = flops;
    if (o->kind == OP_CONV && o->wino) /* (m+2)^2 GEMMs of [tiles x cin] . [cin x cout] */
        mul = 2.0 * (o->wino + 2) * (o->wino + 2) * wino_tiles(o->wino, t->h, t->w) * o->cin *
              o->cout;
    *out = (session_op_stats){
        .name = o->name,
        .kind = op_kinds[o->kind],
        .k = o->k,
        .stride = o->stride,
        .cin = o->cin,
        .cout = o->cout,
        .h = g->h,
        .w = g->w,
        .oh = t->h,
        .ow = t->w,
        .wino = o->kind == OP_CONV ? o->wino : 0,
        .residual = o->res >= 0,
        .gn_fused = o->kind == OP_CONV && i > 0 && s->p[i - 1].gn_into,
        .tail = i >= s->tail_from,
        .flops = flops,
        .mul_flops = mul,
        .ms = s->op_ns ? s->op_ns[i] / 1e6 : 0,
        .samples = s->profiled_samples,
    };
    return 0;
}

void session_print_profile(const session *s, FILE *f)
{
    const char *const *kinds = op_kinds;
    if (!s->op_ns) return;
    long long total = 0, by_kind[6] = {0};
    for (int i = 0; i < s->net->n_ops; i++) total += s->op_ns[i];
    fprintf(f, "%-4s %-10s %-30s %10s %6s %9s\n", "#", "op", "name", "ms", "%", "GFLOP/s");
    for (int i = 0; i < s->net->n_ops; i++) {
        const op *o = &s->net->ops[i];
        size_t p;
        double fl = 2 * op_macs(s, i, &p);
        by_kind[o->kind] += s->op_ns[i];
        fprintf(f, "%-4d %-10s %-30s %10.3f %6.2f %9.2f\n", i, kinds[o->kind], o->name,
                s->op_ns[i] / 1e6, 100.0 * s->op_ns[i] / (total ? total : 1),
                s->op_ns[i] ? fl * s->profiled_samples / s->op_ns[i] : 0.0);
    }
    for (int k = 0; k < 6; k++)
        if (by_kind[k])
            fprintf(f, "total %-10s %10.3f ms %6.2f%%\n", kinds[k], by_kind[k] / 1e6,
                    100.0 * by_kind[k] / (total ? total : 1));
}
