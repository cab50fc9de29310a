#!/usr/bin/env bash
# default-models.sh - create the untrained default models config/xbnserve.json serves, if
# missing: one ResNet50 (torch flavour) and one MobileNetV2 (torch flavour), 1000 ImageNet
# labels, deterministic generated weights marked "untrained" in the file (and therefore in
# GET /v1/models and in the daemon's log). Replace them with converted real checkpoints
# (docs/model-format.md) for meaningful scores. The third model config/xbnserve.json serves,
# models/fashion.safetensors, is not generated: it is trained (tools/train_fashion.py,
# docs/fashion.md) and committed with the repository; this only checks that it is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
mkdir -p models
make_one() { # NAME ARCH SEED
    local out="models/$1.safetensors"
    [ -s "$out" ] && return 0
    echo "default-models.sh: generating untrained $out (a few seconds)"
    "$PY" tools/xbnweights.py init --arch "$2" --flavour torch --classes 1000 \
        --labels data/imagenet-labels.txt --seed "$3" -o "$out.tmp"
    mv "$out.tmp" "$out"
}
make_one resnet50-default resnet50 1
make_one mobilenetv2-default mobilenetv2 2
[ -s models/fashion.safetensors ] || {
    echo "default-models.sh: models/fashion.safetensors is missing: git checkout it, or" \
        "train it again (docs/fashion.md)" >&2
    exit 1
}
