/* build_resnet50.c - ResNet50-XBN's op list, torch and keras flavours: the stem, four stages of
 * bottleneck blocks (3, 4, 6, 3), global average pool, dense. Both flavours have GroupNorm after
 * each block's 3x3 convolution and BatchNorm, folded, elsewhere; the torch stem has GroupNorm,
 * the keras one BatchNorm. Keras convolutions carry a bias, and its stride-2 blocks stride their
 * first 1x1 (torch: the 3x3).
 */
#include <stdio.h>

#include "engine/build.h"
#include "engine/limits.h"

int build_resnet50(builder *b)
{
    int keras = b->info->flavour == FLAVOUR_KERAS;
    static const int blocks[4] = {3, 4, 6, 3};
    char w[MODEL_NAME_BYTES], bn[MODEL_NAME_BYTES];
    int x;
    b->bn_eps = keras ? 1.001e-5f : 1e-5f;
    if (keras) {
        BUILD_TRY(x = build_conv(b, 0,
                                 (conv_spec){"conv1.weight", 1, "bn1", 64, 7, 2, 3, PAD_SYM,
                                             ACT_RELU, -1, RES_NONE}));
    } else {
        BUILD_TRY(x = build_conv(b, 0,
                                 (conv_spec){"conv1.weight", 0, NULL, 64, 7, 2, 3, PAD_SYM,
                                             ACT_NONE, -1, RES_NONE}));
        BUILD_TRY(build_gn(b, x, "bn1", ACT_RELU));
    }
    BUILD_TRY(x = build_pool(b, OP_MAXPOOL, x, 64, "maxpool"));
    for (int l = 0; l < 4; l++) {
        int p = 64 << l;
        for (int i = 0; i < blocks[l]; i++) {
            int s = (i == 0 && l > 0) ? 2 : 1, sc = x, t;
            if (i == 0) {
                snprintf(w, sizeof w, "layer%d.0.downsample.0.weight", l + 1);
                snprintf(bn, sizeof bn, "layer%d.0.downsample.1", l + 1);
                BUILD_TRY(sc = build_conv(b, x,
                                          (conv_spec){w, keras, bn, 4 * p, 1, s, 0, PAD_SYM,
                                                      ACT_NONE, -1, RES_NONE}));
            }
            snprintf(w, sizeof w, "layer%d.%d.conv1.weight", l + 1, i);
            snprintf(bn, sizeof bn, "layer%d.%d.bn1", l + 1, i);
            BUILD_TRY(t = build_conv(b, x,
                                     (conv_spec){w, keras, bn, p, 1, keras ? s : 1, 0, PAD_SYM,
                                                 ACT_RELU, -1, RES_NONE}));
            snprintf(w, sizeof w, "layer%d.%d.conv2.weight", l + 1, i);
            BUILD_TRY(t = build_conv(b, t,
                                     (conv_spec){w, keras, NULL, p, 3, keras ? 1 : s, 1, PAD_SYM,
                                                 ACT_NONE, -1, RES_NONE}));
            snprintf(bn, sizeof bn, "layer%d.%d.bn2", l + 1, i);
            BUILD_TRY(build_gn(b, t, bn, ACT_RELU));
            snprintf(w, sizeof w, "layer%d.%d.conv3.weight", l + 1, i);
            snprintf(bn, sizeof bn, "layer%d.%d.bn3", l + 1, i);
            BUILD_TRY(x = build_conv(b, t,
                                     (conv_spec){w, keras, bn, 4 * p, 1, 1, 0, PAD_SYM, ACT_RELU,
                                                 sc, RES_ADD_THEN_ACT}));
        }
    }
    BUILD_TRY(x = build_pool(b, OP_GAP, x, 2048, "avgpool"));
    BUILD_TRY(build_dense(b, x, "fc", b->info->classes));
    return 0;
}
