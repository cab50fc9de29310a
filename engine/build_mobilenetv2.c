/* build_mobilenetv2.c - MobileNetV2-XBN's op list, torch and keras flavours, any width: the stem,
 * 17 inverted-residual blocks (expansion 1x1, depthwise 3x3 + GroupNorm, projection 1x1), the last
 * 1x1, global average pool, dense. Channel counts follow each flavour's rounding of width x the
 * base counts.
 */
#include <math.h>
#include <stdio.h>

#include "engine/build.h"
#include "engine/limits.h"

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

int build_mobilenetv2(builder *b)
{
    static const int cfg[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                  {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    int keras = b->info->flavour == FLAVOUR_KERAS;
    double a = b->info->width;
    pad_mode s2pad = keras ? PAD_SAME_TF : PAD_SYM;
    act_kind proj_act = keras ? ACT_RELU6 : ACT_NONE;
    res_mode resm = keras ? RES_ACT_THEN_ADD : RES_ADD_THEN_ACT;
    char w[MODEL_NAME_BYTES], bn[MODEL_NAME_BYTES];
    int x, idx = 1;
    b->bn_eps = keras ? 1e-3f : 1e-5f;
    int first = keras ? make_divisible(32 * a) : 32;
    BUILD_TRY(x = build_conv(b, 0,
                             (conv_spec){"features.0.0.weight", 0, "features.0.1", first, 3, 2, 1,
                                         s2pad, ACT_RELU6, -1, RES_NONE}));
    for (int r = 0; r < 7; r++) {
        int t = cfg[r][0], c = cfg[r][1];
        int oc = keras ? make_divisible((int)(c * a)) : (t > 1 ? ceil8(c * a) : c);
        for (int i = 0; i < cfg[r][2]; i++, idx++) {
            int s = i == 0 ? cfg[r][3] : 1, in = x, h = x, inc = b->chans[x];
            int res = (s == 1 && inc == oc) ? in : -1, wi = 3, pi = 4;
            if (keras || t != 1) {
                snprintf(w, sizeof w, "features.%d.conv.0.weight", idx);
                snprintf(bn, sizeof bn, "features.%d.conv.1", idx);
                BUILD_TRY(h = build_conv(b, x,
                                         (conv_spec){w, 0, bn, inc * t, 1, 1, 0, PAD_SYM, ACT_RELU6,
                                                     -1, RES_NONE}));
            } else {
                wi = 0, pi = 1; /* torch t = 1: depthwise first, no expansion */
            }
            snprintf(w, sizeof w, "features.%d.conv.%d.weight", idx, wi);
            BUILD_TRY(h = build_dwconv(b, h, w, s, s == 2 ? s2pad : PAD_SYM));
            snprintf(bn, sizeof bn, "features.%d.conv.%d", idx, pi);
            BUILD_TRY(build_gn(b, h, bn, ACT_RELU6));
            snprintf(w, sizeof w, "features.%d.conv.%d.weight", idx, pi + 2);
            snprintf(bn, sizeof bn, "features.%d.conv.%d", idx, pi + 3);
            BUILD_TRY(x = build_conv(
                          b, h, (conv_spec){w, 0, bn, oc, 1, 1, 0, PAD_SYM, proj_act, res, resm}));
        }
    }
    int last = a > 1.0 ? (keras ? make_divisible(1280 * a) : ceil8(1280 * a)) : 1280;
    BUILD_TRY(x = build_conv(b, x,
                             (conv_spec){"features.18.0.weight", 0, "features.18.1", last, 1, 1, 0,
                                         PAD_SYM, ACT_RELU6, -1, RES_NONE}));
    BUILD_TRY(x = build_pool(b, OP_GAP, x, last, "avgpool"));
    BUILD_TRY(build_dense(b, x, "classifier", b->info->classes));
    return 0;
}
