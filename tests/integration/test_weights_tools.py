"""The Python side alone: tools/xbnmodels.py and tools/xbnweights.py (no xbnserve needed).

The expected tensor names below are a re-statement of docs/model-format.md, written
independently of the module code, so a renamed module shows up here before the C loader
refuses the file."""

import json
import os
import struct
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import xbnmodels as xm  # noqa: E402
import xbnweights as xw  # noqa: E402

torch.set_num_threads(2)

BN = ("weight", "bias", "running_mean", "running_var")
GN = ("weight", "bias")


def doc_resnet50(flavour, classes=1000):
    keras = flavour == "keras"
    t = {"conv1.weight": (64, 3, 7, 7)}
    if keras:
        t["conv1.bias"] = (64,)
    for s in (BN if keras else GN):
        t["bn1." + s] = (64,)
    inp = 64
    for L, (n, p) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), 1):
        for b in range(n):
            pre = "layer%d.%d." % (L, b)
            convs = [("conv1", (p, inp, 1, 1)), ("conv2", (p, p, 3, 3)),
                     ("conv3", (4 * p, p, 1, 1))]
            if b == 0:
                convs.append(("downsample.0", (4 * p, inp, 1, 1)))
            for name, shape in convs:
                t[pre + name + ".weight"] = shape
                if keras:
                    t[pre + name + ".bias"] = (shape[0],)
            for s in BN:
                t[pre + "bn1." + s] = (p,)
                t[pre + "bn3." + s] = (4 * p,)
                if b == 0:
                    t[pre + "downsample.1." + s] = (4 * p,)
            for s in GN:
                t[pre + "bn2." + s] = (p,)
            inp = 4 * p
    t["fc.weight"] = (classes, 2048)
    t["fc.bias"] = (classes,)
    return t


def doc_mobilenetv2(flavour, channels, classes):
    """channels: [first, (hidden, out) for blocks 1..17, last]"""
    first, blocks, last = channels
    t = {"features.0.0.weight": (first, 3, 3, 3)}
    for s in BN:
        t["features.0.1." + s] = (first,)
    inp = first
    for i, (h, out) in enumerate(blocks, 1):
        p = "features.%d.conv." % i
        if flavour == "torch" and i == 1:
            t[p + "0.weight"] = (h, 1, 3, 3)
            t.update({p + "1." + s: (h,) for s in GN})
            t[p + "3.weight"] = (out, h, 1, 1)
            t.update({p + "4." + s: (out,) for s in BN})
        else:
            t[p + "0.weight"] = (h, inp, 1, 1)
            t.update({p + "1." + s: (h,) for s in BN})
            t[p + "3.weight"] = (h, 1, 3, 3)
            t.update({p + "4." + s: (h,) for s in GN})
            t[p + "6.weight"] = (out, h, 1, 1)
            t.update({p + "7." + s: (out,) for s in BN})
        inp = out
    t["features.18.0.weight"] = (last, inp, 1, 1)
    t.update({"features.18.1." + s: (last,) for s in BN})
    t["classifier.weight"] = (classes, last)
    t["classifier.bias"] = (classes,)
    return t


# Channel plans computed by hand from the two codes' rounding rules.
REPEATS = (1, 2, 3, 4, 3, 3, 1)


def plan(first, outs, t1_hidden):
    blocks, inp = [], first
    for k, (o, n) in enumerate(zip(outs, REPEATS)):
        for _ in range(n):
            blocks.append((t1_hidden if k == 0 else 6 * inp, o))
            inp = o
    return blocks


TORCH_100 = (32, plan(32, (16, 24, 32, 64, 96, 160, 320), 32), 1280)
# width 0.35, official: ceil8(c * 0.35) for t > 1, c for t = 1, first 32, last 1280
TORCH_035 = (32, plan(32, (16, 16, 16, 24, 40, 56, 112), 32), 1280)
# alpha 0.35, seed: _make_divisible(int(c * 0.35)); first _make_divisible(11.2) = 16
KERAS_035 = (16, plan(16, (8, 8, 16, 24, 32, 56, 112), 16), 1280)
KERAS_100 = (32, plan(32, (16, 24, 32, 64, 96, 160, 320), 32), 1280)
# alpha 1.4: first 48, last _make_divisible(1792) = 1792
KERAS_140 = (48, plan(48, (24, 32, 48, 88, 136, 224, 448), 48), 1792)


@pytest.mark.parametrize("arch,flavour,width,classes,expected", [
    ("resnet50", "torch", 1.0, 1000, doc_resnet50("torch")),
    ("resnet50", "keras", 1.0, 1000, doc_resnet50("keras")),
    ("resnet50", "torch", 1.0, 10, doc_resnet50("torch", 10)),
    ("mobilenetv2", "torch", 1.0, 1000, doc_mobilenetv2("torch", TORCH_100, 1000)),
    ("mobilenetv2", "torch", 0.35, 1000, doc_mobilenetv2("torch", TORCH_035, 1000)),
    ("mobilenetv2", "keras", 0.35, 17, doc_mobilenetv2("keras", KERAS_035, 17)),
    ("mobilenetv2", "keras", 1.0, 1000, doc_mobilenetv2("keras", KERAS_100, 1000)),
    ("mobilenetv2", "keras", 1.4, 5, doc_mobilenetv2("keras", KERAS_140, 5)),
], ids=["r50-torch", "r50-keras", "r50-torch-10", "mb2-torch", "mb2-torch-035",
        "mb2-keras-035", "mb2-keras-100", "mb2-keras-140"])
def test_tensor_names_match_docs(arch, flavour, width, classes, expected):
    got = xm.expected_shapes(arch, flavour, width, classes)
    assert sorted(set(got) - set(expected)) == []
    assert sorted(set(expected) - set(got)) == []
    for k, s in expected.items():
        assert got[k] == s, k


def test_safetensors_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {"b": rng.standard_normal((3, 1, 2, 2)).astype(np.float32),
               "a": rng.standard_normal((5,)).astype(np.float32),
               "s": np.float32(rng.standard_normal((1,)))}
    meta = {"format": "xbnserve/1", "labels": json.dumps(["é", "a\"b"])}
    path = str(tmp_path / "t.safetensors")
    xw.save_safetensors(path, tensors, meta)
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0
    header = json.loads(raw[8:8 + n])
    assert header["__metadata__"] == meta
    assert list(header)[1:] == ["b", "a", "s"]  # file order = dict order
    assert header["b"] == {"dtype": "F32", "shape": [3, 1, 2, 2], "data_offsets": [0, 48]}
    assert len(raw) == 8 + n + 4 * (12 + 5 + 1)
    back, m2 = xw.load_safetensors(path)
    assert m2 == meta
    for k in tensors:
        assert np.array_equal(back[k], np.asarray(tensors[k]).reshape(back[k].shape))
    with open(path, "ab") as f:
        f.write(b"\0\0\0\0")
    with pytest.raises(ValueError):
        xw.load_safetensors(path)


def test_init_is_deterministic_and_alive(tmp_path):
    a, b = str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors")
    for p in (a, b):
        xw.main(["init", "--arch", "mobilenetv2", "--flavour", "keras", "--width", "0.35",
                 "--classes", "17", "--seed", "9", "-o", p])
    assert open(a, "rb").read() == open(b, "rb").read()
    _, meta = xw.load_safetensors(a)
    assert meta["untrained"] == "true" and meta["format"] == "xbnserve/1"
    assert meta["width"] == "0.35" and meta["classes"] == "17" and meta["gn_groups"] == "16"
    assert json.loads(meta["labels"]) == ["class_%d" % i for i in range(17)]
    pp = json.loads(meta["preprocess"])
    assert pp["resize_mode"] == "direct" and pp["mean"] == [0.5] * 3
    model, _ = xw.model_from_file(a)
    x = xm.structured_inputs(4, 96, 96, 3, "mobilenetv2", "keras")
    with torch.no_grad():
        y = model(x)
    assert min(xm.aliveness(y)) > 0.05


def test_metadata_defaults():
    labels = xw.read_labels(None, 1000)
    assert len(labels) == 1000
    m = xw.make_metadata("resnet50", "keras", 1.0, 1000, 224, labels, "x")
    assert m["gn_groups"] == "32" and m["width"] == "1.0" and "untrained" not in m
    pp = json.loads(m["preprocess"])
    assert pp["channel_order"] == "BGR" and pp["std"] == [1 / 255] * 3
    m = xw.make_metadata("resnet50", "torch", 1.0, 1000, 224, labels, "x")
    pp = json.loads(m["preprocess"])
    assert m["gn_groups"] == "64"
    assert (pp["resize_mode"], pp["resize"], pp["crop"]) == ("shorter_crop", 256, 224)
    assert all(isinstance(v, str) for v in m.values())


def seed_correct_pad(h, w, kernel_size=3):
    """The seed's correct_pad, verbatim in logic (channels_last, img_dim = 1)."""
    adjust = (1 - h % 2, 1 - w % 2)
    correct = (kernel_size // 2, kernel_size // 2)
    return ((correct[0] - adjust[0], correct[0]), (correct[1] - adjust[1], correct[1]))


@pytest.mark.parametrize("h,w", [(224, 224), (113, 113), (113, 128), (7, 8), (1, 2)])
def test_tf_padding(h, w):
    x = torch.zeros(1, 1, h, w)
    y = xm.tf_same_pad_stride2(x)
    (t, b), (l, r) = seed_correct_pad(h, w)
    assert y.shape[-2:] == (h + t + b, w + l + r)
    x = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w) + 1
    y = xm.tf_same_pad_stride2(x)
    assert torch.equal(y[0, 0, t:t + h, l:l + w], x[0, 0])
    # a 3x3 stride-2 valid conv after it gives TF 'same' sizes: ceil(n / 2)
    out = torch.nn.functional.conv2d(y, torch.ones(1, 1, 3, 3), stride=2)
    assert out.shape[-2:] == (-(-h // 2), -(-w // 2))


def test_make_divisible():
    assert [xm.make_divisible_keras(v, 8) for v in (11.2, 5, 8, 11, 56, 1792)] == \
        [16, 8, 8, 16, 56, 1792]
    assert [xm.make_divisible_torch(v) for v in (5.6, 8.4, 11.2, 22.4, 1280 * 1.4)] == \
        [8, 16, 16, 24, 1792]


def test_keras_functional_layer_order():
    """model.layers order of the seed's ResNet50: in a projection block Keras sorts the
    main branch conv3 before the shortcut conv (same depth, found first by the
    depth-first walk from Add()([x, short_cut]))."""
    order = [l for l in xw.keras_layer_order("resnet50") if l["weights"]]
    keys = [l["weights"][0][1] for l in order]
    i = keys.index("layer1.0.conv1.weight")
    assert keys[i:i + 8] == ["layer1.0.conv1.weight", "layer1.0.bn1.weight",
                             "layer1.0.conv2.weight", "layer1.0.bn2.weight",
                             "layer1.0.conv3.weight", "layer1.0.downsample.0.weight",
                             "layer1.0.bn3.weight", "layer1.0.downsample.1.weight"]
    assert keys[:2] == ["conv1.weight", "bn1.weight"] and keys[-1] == "fc.weight"
    names = [l["name"] for l in xw.keras_layer_order("mobilenetv2", 0.35, 17)]
    assert names[0] == "input_1" and names[-5:] == ["reshape_1", "dropout", "conv_preds",
                                                    "act_softmax", "reshape_2"]
    # a sequential chain with identity residuals: functional order == creation order
    mb = xw.keras_layer_order("mobilenetv2", 0.35, 17)
    mc = xw.keras_layer_order("mobilenetv2", 0.35, 17, order="creation")
    assert [l["name"] for l in mb] == [l["name"] for l in mc]


def test_keras_h5_round_trip(tmp_path):
    model = xw.init_model("mobilenetv2", "keras", 0.35, 17, seed=5, calib_images=4)
    state = xm.model_state(model)
    h5 = str(tmp_path / "w.h5")
    xw.write_keras_h5(h5, state, "mobilenetv2", 0.35, 17, name_offset=17)
    import h5py
    with h5py.File(h5, "r") as f:
        names = [n.decode() for n in f.attrs["layer_names"]]
        assert "conv2d" not in names and "conv2d_18" in names  # auto names, offset
        assert f["conv_preds"]["conv_preds"]["kernel:0"].shape == (1, 1, 1280, 17)
        assert f["conv2d_18"]["conv2d_18"]["kernel:0"].shape == (3, 3, 3, 16)
        assert len(f["activation_17"].attrs["weight_names"]) == 0
    back = xw.keras_state_from_h5(h5, "mobilenetv2", 0.35, 17)
    assert set(back) == set(state)
    for k in state:
        assert torch.equal(back[k], state[k]), k
    with pytest.raises(ValueError):
        xw.keras_state_from_h5(h5, "resnet50", 1.0, 17)
