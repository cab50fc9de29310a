#!/usr/bin/python3
"""xbnweights.py - make, convert and inspect xbnserve model files (docs/model-format.md).

Subcommands (run with /usr/bin/python3; needs Debian's python3-torch, numpy, h5py):

  init --arch A --flavour F [--width W] [--classes N] [--input-size S] [--labels FILE]
       --seed S -o FILE
      Deterministic untrained weights whose network is alive (its output depends on its
      input): He-normal convs, randomised BN/GN affines, BN running statistics calibrated
      on structured random images, residual-branch gammas scaled down.
  convert-torch CKPT --arch A [--flavour torch] [--width W] [--classes N] ... -o FILE
      A PyTorch state_dict (.pth / .pth.tar, raw or {"state_dict": ...}, "module."
      prefixes allowed) in the official layout.
  convert-keras H5 --arch A [--width W] [--classes N] [--layer-order functional|creation]
       ... -o FILE
      A TF2/Keras save_weights HDF5 of the seed's models, mapped by layer order.
  export-keras MODEL -o H5 [--name-offset K]
      The inverse of convert-keras for a keras-flavour model file (used by the tests).
  testset -o DIR
      The deterministic models of the test suite.
  info MODEL
      Print a model file's metadata and tensor count.

Common options for init/convert: --labels FILE (default: the ImageNet labels when
classes == 1000, else "class_i"), --input-size S (default 224), --source TEXT.
"""

import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xbnmodels as xm  # noqa: E402

FORMAT = "xbnserve/1"
HERE = os.path.dirname(os.path.abspath(__file__))
IMAGENET_LABELS = os.path.join(HERE, "..", "data", "imagenet-labels.txt")
MAX_HEADER = 64 << 20
WIDTH_CANDIDATES = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)


# --------------------------------------------------------------------------- safetensors


def save_safetensors(path, tensors, metadata):
    """Write {name: array} (stored F32 little-endian, in dict order) and a str->str
    metadata dict. The JSON header is padded with spaces to a multiple of 8 bytes."""
    header = {"__metadata__": {k: str(v) for k, v in metadata.items()}}
    arrays = []
    off = 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(np.asarray(a, dtype="<f4"))
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
        arrays.append(a)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((-len(hb)) % 8)
    tmp = path + ".tmp%d" % os.getpid()
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for a in arrays:
            f.write(a.tobytes())
    os.replace(tmp, path)


def load_safetensors(path):
    """Read a file written by save_safetensors (or any F32 safetensors file) and check
    the rules of docs/model-format.md. Returns (tensors as dict of np.float32 arrays in
    file order, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError("%s: too short" % path)
    (n,) = struct.unpack("<Q", raw[:8])
    if n > MAX_HEADER or 8 + n > len(raw):
        raise ValueError("%s: bad header length %d" % (path, n))
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = memoryview(raw)[8 + n:]
    tensors = {}
    spans = []
    for name, d in header.items():
        if d["dtype"] != "F32":
            raise ValueError("%s: dtype %s" % (name, d["dtype"]))
        b, e = d["data_offsets"]
        if e - b != 4 * int(np.prod(d["shape"], dtype=np.int64)) or not 0 <= b <= e <= len(data):
            raise ValueError("%s: bad data_offsets %s for shape %s" % (name, [b, e], d["shape"]))
        spans.append((b, e))
        tensors[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(d["shape"]).copy()
    pos = 0
    for b, e in sorted(spans):
        if b != pos:
            raise ValueError("tensor data overlaps or leaves a gap at byte %d" % pos)
        pos = e
    if pos != len(data):
        raise ValueError("data section has %d trailing bytes" % (len(data) - pos))
    return tensors, meta


# ------------------------------------------------------------------------------ metadata


def read_labels(path, classes):
    if path is None:
        if classes == 1000 and os.path.exists(IMAGENET_LABELS):
            path = IMAGENET_LABELS
        else:
            return ["class_%d" % i for i in range(classes)]
    with open(path, encoding="utf-8") as f:
        labels = [ln.rstrip("\r\n") for ln in f]
    while labels and labels[-1] == "":
        labels.pop()
    if len(labels) != classes:
        raise ValueError("%s has %d labels, the model has %d classes"
                         % (path, len(labels), classes))
    return labels


def make_metadata(arch, flavour, width, classes, input_size, labels, source,
                  untrained=False, gn_groups=None, preprocess=None):
    """The file's __metadata__; `preprocess` defaults to the arch and flavour's usual one
    (a model trained with another, e.g. tools/train_fashion.py, passes its own)."""
    if preprocess is None:
        preprocess = xm.default_preprocess(arch, flavour, input_size)
    meta = {
        "format": FORMAT,
        "arch": arch,
        "flavour": flavour,
        "width": repr(float(width)),
        "classes": str(int(classes)),
        "gn_groups": str(gn_groups or xm.DEFAULT_GN_GROUPS[(arch, flavour)]),
        "input_size": str(int(input_size)),
        "preprocess": json.dumps(preprocess),
        "labels": json.dumps(labels),
        "source": source,
    }
    if untrained:
        meta["untrained"] = "true"
    return meta


def write_model(path, model, meta):
    save_safetensors(path, {k: v.numpy() for k, v in xm.model_state(model).items()}, meta)


def model_from_file(path, dtype=torch.float32):
    """Build the oracle network described by a model file and load its weights."""
    tensors, meta = load_safetensors(path)
    width = float(meta.get("width", "1.0"))
    model = xm.build_model(meta["arch"], meta["flavour"],
                           width if meta["arch"] == "mobilenetv2" else 1.0,
                           int(meta["classes"]), int(meta.get("gn_groups", 0)) or None)
    xm.load_state(model, {k: torch.from_numpy(v) for k, v in tensors.items()})
    return model.to(dtype).eval(), meta


# ---------------------------------------------------------------------------------- init


def _residual_last_bns(model):
    """The BN closing each residual branch that is added to an identity shortcut (or a
    projected one, for ResNet)."""
    out = []
    for m in model.modules():
        if isinstance(m, xm.Bottleneck):
            out.append(m.bn3)
        elif isinstance(m, xm.InvertedResidual) and m.use_res:
            out.append([c for c in m.conv if isinstance(c, torch.nn.BatchNorm2d)][-1])
    return out


def init_model(arch, flavour, width=1.0, classes=1000, seed=0, calib_size=None,
               calib_images=16, residual_gamma=0.25, gamma=(0.8, 1.2), beta=(0.2, 0.8)):
    """Deterministic, alive random weights (see module doc).

    The BN/GN affine ranges and the residual gamma scale were chosen by measuring how a
    float32 forward pass drifts from a float64 one: random deep networks are chaotic
    (they amplify rounding errors), and mostly-positive betas with small residual
    branches keep that drift near 1e-5 of the logit scale for all four networks, so a
    1e-4 oracle tolerance tests the engine, not the luck of the draw."""
    torch.manual_seed(seed)
    model = xm.build_model(arch, flavour, width, classes)
    nn = torch.nn
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0.0, math.sqrt(2.0 / fan_in))
                if m.bias is not None:
                    m.bias.uniform_(-0.2, 0.2)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(*gamma)
                m.bias.uniform_(*beta)
            elif isinstance(m, nn.GroupNorm):
                m.weight.uniform_(*gamma)
                m.bias.uniform_(*beta)
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0.0, 1.0 / math.sqrt(m.in_features))
                m.bias.uniform_(-0.1, 0.1)
        for bn in _residual_last_bns(model):
            bn.weight.mul_(residual_gamma)
    # Calibrate the BN population statistics: cumulative average over structured images.
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    size = calib_size or (160 if arch == "resnet50" else 192)
    x = xm.structured_inputs(calib_images, size, size, seed + 7919, arch, flavour)
    model.train()
    with torch.no_grad():
        for chunk in x.split(8):
            model(chunk)
    for bn in bns:
        bn.momentum = 0.1
    model.eval()
    # Centre the classifier on the mean pooled feature of the calibration images: random
    # networks put most of their output in an input-independent direction (post-ReLU
    # features have a large common mean); removing it keeps the logits input-driven.
    head = model.fc if arch == "resnet50" else model.classifier
    feats = []
    hook = head.register_forward_hook(lambda mod, inp, out: feats.append(inp[0]))
    with torch.no_grad():
        for chunk in x[:8].split(4):
            model(chunk)
        hook.remove()
        f = torch.cat(feats)
        mean = f.mean(0)
        # and scale it so the input-driven part of the logits has std ~ 2 (a softmax
        # that prefers some classes, as a trained network's would)
        head.weight.mul_(2.0 / float(((f - mean) @ head.weight.t()).std()))
        head.bias.copy_(head.bias - head.weight @ mean)
    return model


def check_alive(model, arch, flavour, seed, size=224, n=4):
    x = xm.structured_inputs(n, size, size, seed + 104729, arch, flavour)
    with torch.no_grad():
        logits = model(x)
    return xm.aliveness(logits), logits


def cmd_init(args):
    t0 = time.time()
    width = args.width if args.width is not None else 1.0
    model = init_model(args.arch, args.flavour, width, args.classes, args.seed)
    alive, logits = check_alive(model, args.arch, args.flavour, args.seed,
                                size=min(args.input_size, 224))
    # a collapsed network gives ~0 for every input; with few classes single inputs can
    # legitimately sit near the mean, hence the average
    if sum(alive) / len(alive) < 0.05 or not torch.isfinite(logits).all():
        raise SystemExit("init: network is not alive (aliveness %s)" % alive)
    labels = read_labels(args.labels, args.classes)
    meta = make_metadata(args.arch, args.flavour, width, args.classes, args.input_size,
                         labels, args.source or "init seed=%d" % args.seed, untrained=True)
    write_model(args.output, model, meta)
    print("%s: %s/%s width %s classes %d, aliveness min %.3f, |logits| max %.3g, %.1fs"
          % (args.output, args.arch, args.flavour, meta["width"], args.classes, min(alive),
             float(logits.abs().max()), time.time() - t0), file=sys.stderr)


# ------------------------------------------------------------------------- convert-torch


def _infer_width(arch, flavour, classes, shapes_ok):
    if arch != "mobilenetv2":
        return 1.0
    for w in WIDTH_CANDIDATES:
        try:
            if shapes_ok(xm.expected_shapes(arch, flavour, w, classes)):
                return w
        except ValueError:
            continue
    raise ValueError("cannot infer the width multiplier; pass --width")


def cmd_convert_torch(args):
    ckpt = torch.load(args.checkpoint, map_location="cpu")
    if isinstance(ckpt, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in ckpt and isinstance(ckpt[key], dict):
                ckpt = ckpt[key]
                break
    if not isinstance(ckpt, dict):
        raise SystemExit("convert-torch: %s holds no state_dict" % args.checkpoint)
    state = {}
    for k, v in ckpt.items():
        if not torch.is_tensor(v):
            continue
        while k.startswith("module."):
            k = k[len("module."):]
        if k.endswith("num_batches_tracked"):
            continue
        state[k] = v.detach().to(torch.float32).contiguous()
    head = "fc.weight" if args.arch == "resnet50" else "classifier.weight"
    if head not in state:
        raise SystemExit("convert-torch: no %s: not a %s checkpoint" % (head, args.arch))
    classes = int(state[head].shape[0])
    if args.classes is not None and args.classes != classes:
        raise SystemExit("convert-torch: checkpoint has %d classes, --classes %d"
                         % (classes, args.classes))
    width = args.width
    if width is None:
        width = _infer_width(args.arch, args.flavour, classes, lambda exp: all(
            k in state and tuple(state[k].shape) == s for k, s in exp.items()))
    model = xm.build_model(args.arch, args.flavour, width, classes)
    try:
        xm.load_state(model, state)
    except ValueError as e:
        raise SystemExit("convert-torch: %s" % e)
    labels = read_labels(args.labels, classes)
    meta = make_metadata(args.arch, args.flavour, width, classes, args.input_size, labels,
                         args.source or "convert-torch %s" % os.path.basename(args.checkpoint))
    write_model(args.output, model, meta)
    print("%s: %s/%s width %r classes %d, %d tensors"
          % (args.output, args.arch, args.flavour, width, classes, len(state)), file=sys.stderr)


# -------------------------------------------------------------------- Keras layer graph
#
# save_weights() lists the layers in `model.layers` order. For a functional model that is
# NOT creation order: Keras (functional.py, _map_graph_network) sorts layers by depth
# (longest path to the output, deepest first) and breaks ties by the order in which a
# depth-first walk from the output, visiting each layer's inputs left to right, first
# meets them. KerasGraph rebuilds the seed's layer graph and applies that same rule, so
# weights can be mapped by position even though auto-generated names are arbitrary.
#
# Consequence for the seed's ResNet50 (Add()([x, short_cut])): in a block with a
# projection shortcut the weighted layers come as conv1, bn1, conv2, gn, conv3,
# shortcut-conv, bn3, shortcut-bn.


class KerasGraph:
    def __init__(self):
        self.layers = []  # dicts: name, cls, inputs (layer ids), weights [(role, key, kind)]
        self.counts = {}

    def add(self, cls, inputs, weights=(), name=None):
        if name is None:
            n = self.counts.get(cls, 0)
            self.counts[cls] = n + 1
            name = cls if n == 0 else "%s_%d" % (cls, n)
        self.layers.append({"name": name, "cls": cls, "inputs": list(inputs),
                            "weights": list(weights)})
        return len(self.layers) - 1

    # Weighted layer helpers: `key` is the torch-layout tensor prefix.
    def conv(self, x, key, bias):
        w = [("kernel", key + ".weight", "conv")]
        if bias:
            w.append(("bias", key + ".bias", "vec"))
        return self.add("conv2d", [x], w)

    def bn(self, x, key):
        return self.add("batch_normalization", [x], [
            ("gamma", key + ".weight", "vec"), ("beta", key + ".bias", "vec"),
            ("moving_mean", key + ".running_mean", "vec"),
            ("moving_variance", key + ".running_var", "vec")])

    def gn(self, x, key):
        return self.add("group_normalization", [x], [
            ("gamma", key + ".weight", "vec"), ("beta", key + ".bias", "vec")])

    def functional_order(self, output):
        """Indices of the layers in Keras model.layers order (see the comment above)."""
        indices = {}
        post = []
        state = {}

        def visit(i):  # iterative-safe depth is small enough (< 300) for recursion
            if state.get(i) == "done":
                return
            indices.setdefault(i, len(indices))
            state[i] = "busy"
            for j in self.layers[i]["inputs"]:
                visit(j)
            state[i] = "done"
            post.append(i)

        old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old, 10000))
        try:
            visit(output)
        finally:
            sys.setrecursionlimit(old)
        depth = {}
        for i in reversed(post):
            d = depth.setdefault(i, 0)
            for j in self.layers[i]["inputs"]:
                depth[j] = max(d + 1, depth.get(j, 0))
        return sorted(post, key=lambda i: (-depth[i], indices[i]))


def keras_graph(arch, width=1.0, classes=1000, name_offset=0):
    """The seed's functional model as a KerasGraph; returns (graph, output layer id).
    name_offset > 0 makes the auto names start at _<offset> (as if other models had been
    built in the same session)."""
    g = KerasGraph()
    if name_offset:
        for cls in ("conv2d", "batch_normalization", "activation", "zero_padding2d",
                    "max_pooling2d", "group_normalization", "add", "dense",
                    "global_average_pooling2d", "depthwise_conv2d", "input"):
            g.counts[cls] = name_offset + len(cls) % 5
    x = g.add("input", [], name="input_%d" % (g.counts.get("input", 0) + 1))
    if arch == "resnet50":
        x = g.add("zero_padding2d", [x])
        x = g.conv(x, "conv1", True)
        x = g.bn(x, "bn1")
        x = g.add("activation", [x])
        x = g.add("zero_padding2d", [x])
        x = g.add("max_pooling2d", [x])
        for li, n in enumerate(xm.RESNET_LAYERS):
            for b in range(n):
                p = "layer%d.%d." % (li + 1, b)
                if b == 0:
                    sc = g.conv(x, p + "downsample.0", True)
                    sc = g.bn(sc, p + "downsample.1")
                else:
                    sc = x
                y = g.conv(x, p + "conv1", True)
                y = g.bn(y, p + "bn1")
                y = g.add("activation", [y])
                y = g.conv(y, p + "conv2", True)
                y = g.gn(y, p + "bn2")
                y = g.add("activation", [y])
                y = g.conv(y, p + "conv3", True)
                y = g.bn(y, p + "bn3")
                y = g.add("add", [y, sc])
                x = g.add("activation", [y])
        x = g.add("global_average_pooling2d", [x])
        x = g.add("dense", [x], [("kernel", "fc.weight", "dense"), ("bias", "fc.bias", "vec")])
        return g, x
    if arch != "mobilenetv2":
        raise ValueError("unknown arch %r" % arch)
    model = xm.build_model("mobilenetv2", "keras", width, classes)
    x = g.add("zero_padding2d", [x])
    x = g.conv(x, "features.0.0", False)
    x = g.bn(x, "features.0.1")
    x = g.add("activation", [x])
    for i, blk in enumerate(model.features):
        if not isinstance(blk, xm.InvertedResidual):
            continue
        p = "features.%d.conv." % i
        inputs = x
        y = g.conv(x, p + "0", False)
        y = g.bn(y, p + "1")
        y = g.add("activation", [y])
        if blk.stride == 2:
            y = g.add("zero_padding2d", [y])
        y = g.add("depthwise_conv2d", [y], [("depthwise_kernel", p + "3.weight", "dw")])
        y = g.gn(y, p + "4")
        y = g.add("activation", [y])
        y = g.conv(y, p + "6", False)
        y = g.bn(y, p + "7")
        y = g.add("activation", [y])
        x = g.add("add", [inputs, y]) if blk.use_res else y
    x = g.conv(x, "features.18.0", False)
    x = g.bn(x, "features.18.1")
    x = g.add("activation", [x])
    x = g.add("global_average_pooling2d", [x])
    x = g.add("reshape", [x], name="reshape_1")
    x = g.add("dropout", [x], name="dropout")
    x = g.add("conv2d", [x], [("kernel", "classifier.weight", "conv_preds"),
                              ("bias", "classifier.bias", "vec")], name="conv_preds")
    x = g.add("activation", [x], name="act_softmax")
    x = g.add("reshape", [x], name="reshape_2")
    return g, x


def keras_layer_order(arch, width=1.0, classes=1000, order="functional", name_offset=0):
    g, out = keras_graph(arch, width, classes, name_offset)
    ids = g.functional_order(out) if order == "functional" else list(range(len(g.layers)))
    return [g.layers[i] for i in ids]


def keras_to_torch(kind, a):
    a = np.asarray(a, dtype=np.float32)
    if kind == "conv":        # (kh, kw, in, out) -> (out, in, kh, kw)
        return a.transpose(3, 2, 0, 1)
    if kind == "dw":          # (kh, kw, in, 1) -> (in, 1, kh, kw)
        return a.transpose(2, 3, 0, 1)
    if kind == "dense":       # (in, out) -> (out, in)
        return a.T
    if kind == "conv_preds":  # (1, 1, in, out) -> (out, in)
        if a.shape[:2] != (1, 1):
            raise ValueError("conv_preds kernel is %s, expected 1x1" % (a.shape,))
        return a[0, 0].T
    return a


def torch_to_keras(kind, a):
    a = np.asarray(a, dtype=np.float32)
    if kind == "conv":
        return a.transpose(2, 3, 1, 0)
    if kind == "dw":
        return a.transpose(2, 3, 0, 1)
    if kind == "dense":
        return a.T
    if kind == "conv_preds":
        return a.T[None, None]
    return a


def _h5_attr_list(group, name):
    """A Keras string-list attribute, possibly split into name0, name1, ... chunks."""
    if name in group.attrs:
        vals = list(group.attrs[name])
    else:
        vals, i = [], 0
        while "%s%d" % (name, i) in group.attrs:
            vals += list(group.attrs["%s%d" % (name, i)])
            i += 1
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in vals]


def read_keras_h5(path):
    """[(layer name, [(weight name, array), ...]), ...] in the file's layer order."""
    import h5py
    out = []
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        for lname in _h5_attr_list(root, "layer_names"):
            g = root[lname]
            ws = [(wn, np.array(g[wn])) for wn in _h5_attr_list(g, "weight_names")]
            out.append((lname, ws))
    return out


def _role(weight_name):
    base = weight_name.split("/")[-1]
    return base.split(":")[0]


def keras_state_from_h5(path, arch, width=1.0, classes=1000, order="functional"):
    """Map a save_weights file onto torch-layout tensors by layer order."""
    layers = [(n, ws) for n, ws in read_keras_h5(path) if ws]
    expected = [l for l in keras_layer_order(arch, width, classes, order) if l["weights"]]
    if len(layers) != len(expected):
        raise ValueError("%s has %d layers with weights, %s/keras (width %r) has %d"
                         % (path, len(layers), arch, width, len(expected)))
    state = {}
    for (lname, ws), exp in zip(layers, expected):
        got = {_role(wn): a for wn, a in ws}
        want = {role for role, _, _ in exp["weights"]}
        if set(got) != want:
            raise ValueError("layer %s has weights %s, expected a %s with %s"
                             % (lname, sorted(got), exp["cls"], sorted(want)))
        for role, key, kind in exp["weights"]:
            state[key] = torch.from_numpy(np.ascontiguousarray(keras_to_torch(kind, got[role])))
    return state


def write_keras_h5(path, state, arch, width=1.0, classes=1000, name_offset=0,
                   order="functional"):
    """Write torch-layout keras-flavour tensors as a Keras save_weights HDF5 file."""
    import h5py
    layers = keras_layer_order(arch, width, classes, order, name_offset)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([l["name"].encode("utf-8") for l in layers])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.5.0"
        for l in layers:
            g = f.create_group(l["name"])
            names = []
            for role, key, kind in l["weights"]:
                wn = "%s/%s:0" % (l["name"], role)
                g.create_dataset(wn, data=torch_to_keras(kind, state[key].numpy()))
                names.append(wn.encode("utf-8"))
            g.attrs["weight_names"] = np.array(names) if names else np.zeros((0,), "S1")


def cmd_convert_keras(args):
    classes = args.classes
    if classes is None:  # the last weighted layer is the classifier: kernel (..., classes)
        last = [ws for _, ws in read_keras_h5(args.h5) if ws][-1]
        classes = int([a for wn, a in last if _role(wn) == "kernel"][0].shape[-1])
    width = args.width
    if width is None:
        if args.arch == "mobilenetv2":
            width = None
            for w in WIDTH_CANDIDATES:
                try:
                    keras_state_from_h5(args.h5, args.arch, w, classes, args.layer_order)
                    state_ok = True
                except ValueError:
                    state_ok = False
                if state_ok:
                    try:
                        xm.load_state(xm.build_model(args.arch, "keras", w, classes),
                                      keras_state_from_h5(args.h5, args.arch, w, classes,
                                                          args.layer_order))
                        width = w
                        break
                    except ValueError:
                        pass
            if width is None:
                raise SystemExit("convert-keras: cannot infer alpha; pass --width")
        else:
            width = 1.0
    try:
        state = keras_state_from_h5(args.h5, args.arch, width, classes, args.layer_order)
        model = xm.load_state(xm.build_model(args.arch, "keras", width, classes), state)
    except ValueError as e:
        raise SystemExit("convert-keras: %s" % e)
    labels = read_labels(args.labels, classes)
    meta = make_metadata(args.arch, "keras", width, classes, args.input_size, labels,
                         args.source or "convert-keras %s" % os.path.basename(args.h5))
    write_model(args.output, model, meta)
    print("%s: %s/keras width %r classes %d" % (args.output, args.arch, width, classes),
          file=sys.stderr)


def cmd_export_keras(args):
    tensors, meta = load_safetensors(args.model)
    if meta.get("flavour") != "keras":
        raise SystemExit("export-keras: %s is not a keras-flavour model" % args.model)
    width = float(meta.get("width", "1.0"))
    write_keras_h5(args.output, {k: torch.from_numpy(v) for k, v in tensors.items()},
                   meta["arch"], width, int(meta["classes"]), args.name_offset,
                   args.layer_order)


# ------------------------------------------------------------------------------- testset

TESTSET = (
    # file, arch, flavour, width, classes, seed
    ("resnet50-torch.safetensors", "resnet50", "torch", 1.0, 1000, 101),
    ("resnet50-keras.safetensors", "resnet50", "keras", 1.0, 1000, 202),
    ("mobilenetv2-torch.safetensors", "mobilenetv2", "torch", 1.0, 1000, 303),
    ("mobilenetv2-keras-035.safetensors", "mobilenetv2", "keras", 0.35, 17, 404),
    ("mobilenetv2-keras-100.safetensors", "mobilenetv2", "keras", 1.0, 1000, 505),
)


def cmd_testset(args):
    os.makedirs(args.output, exist_ok=True)
    t0 = time.time()
    for fname, arch, flavour, width, classes, seed in TESTSET:
        t1 = time.time()
        model = init_model(arch, flavour, width, classes, seed)
        alive, logits = check_alive(model, arch, flavour, seed, size=160, n=4)
        if min(alive) < 0.05:
            raise SystemExit("testset: %s is not alive (%s)" % (fname, alive))
        meta = make_metadata(arch, flavour, width, classes, 224, read_labels(None, classes),
                             "init seed=%d (xbnweights.py testset)" % seed, untrained=True)
        write_model(os.path.join(args.output, fname), model, meta)
        print("%-36s aliveness min %.3f  %.1fs" % (fname, min(alive), time.time() - t1),
              file=sys.stderr)
    print("testset: %d models in %.1fs" % (len(TESTSET), time.time() - t0), file=sys.stderr)


def cmd_info(args):
    tensors, meta = load_safetensors(args.model)
    for k in sorted(meta):
        v = meta[k]
        print("%-12s %s" % (k, v if len(v) < 120 else v[:117] + "..."))
    print("%-12s %d (%d floats)" % ("tensors", len(tensors),
                                    sum(a.size for a in tensors.values())))


# ---------------------------------------------------------------------------------- main


def main(argv=None):
    torch.set_num_threads(min(2, torch.get_num_threads()))
    ap = argparse.ArgumentParser(prog="xbnweights.py", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p, flavour=True):
        p.add_argument("--arch", required=True, choices=xm.ARCHS)
        if flavour:
            p.add_argument("--flavour", choices=xm.FLAVOURS, default="torch")
        p.add_argument("--width", type=float, default=None)
        p.add_argument("--classes", type=int, default=None)
        p.add_argument("--input-size", type=int, default=224)
        p.add_argument("--labels", default=None)
        p.add_argument("--source", default=None)
        p.add_argument("-o", "--output", required=True)

    p = sub.add_parser("init", help="deterministic untrained weights")
    common(p)
    p.add_argument("--seed", type=int, required=True)
    p.set_defaults(fn=cmd_init)
    p = sub.add_parser("convert-torch", help="PyTorch state_dict -> model file")
    p.add_argument("checkpoint")
    common(p)
    p.set_defaults(fn=cmd_convert_torch)
    p = sub.add_parser("convert-keras", help="Keras save_weights HDF5 -> model file")
    p.add_argument("h5")
    common(p, flavour=False)
    p.add_argument("--layer-order", choices=("functional", "creation"), default="functional")
    p.set_defaults(fn=cmd_convert_keras)
    p = sub.add_parser("export-keras", help="keras-flavour model file -> save_weights HDF5")
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--name-offset", type=int, default=0)
    p.add_argument("--layer-order", choices=("functional", "creation"), default="functional")
    p.set_defaults(fn=cmd_export_keras)
    p = sub.add_parser("testset", help="the test suite's deterministic models")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(fn=cmd_testset)
    p = sub.add_parser("info", help="print a model file's metadata")
    p.add_argument("model")
    p.set_defaults(fn=cmd_info)
    args = ap.parse_args(argv)
    if args.cmd == "init" and args.classes is None:
        args.classes = 1000
    try:
        args.fn(args)
    except (ValueError, OSError) as e:
        raise SystemExit("%s: %s" % (args.cmd, e))


if __name__ == "__main__":
    main()
