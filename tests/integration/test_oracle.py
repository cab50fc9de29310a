"""Compare `xbnserve predict` against the PyTorch oracle (tools/xbnmodels.py).

Environment (set by `make pytest`):
  XBN_BIN     the xbnserve binary (default build/xbnserve; tests skip if the default is
              missing, and fail if an explicitly given binary is missing)
  XBN_MODELS  directory with the `xbnweights.py testset` models (default build/models;
              generated into a temporary directory when absent)

For every test model, at several input sizes, a few structured image-like inputs go
through `xbnserve predict --logits` and through the oracle network in float64; the whole
logit vectors must agree to 1e-4 of their largest magnitude. The Keras-flavour models are
also checked after a round trip through a Keras save_weights HDF5 file (written here,
independently of the converter's layer-order logic), and a torch model after a round
trip through a DataParallel-style .pth.tar checkpoint. Every kernel table of the engine
(`predict --gemm avx512|avx2|blas`) is compared too, at one size per model; a table this CPU
lacks is skipped.
"""

import functools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import xbnmodels as xm  # noqa: E402
import xbnweights as xw  # noqa: E402

torch.set_num_threads(2)

RTOL = 1e-4          # max |C - torch| <= RTOL * max |torch| over a whole logit vector
MIN_ALIVE = 0.05     # per-input deviation from the mean logits / logit spread
N_INPUTS = 3

# model file -> input sizes (H, W) to test
CASES = {
    "resnet50-torch.safetensors": [(224, 224), (128, 128)],
    "resnet50-keras.safetensors": [(224, 224), (128, 128)],
    "mobilenetv2-torch.safetensors": [(224, 224), (128, 128), (160, 128)],
    # TF 'same' padding of the stride-2 convs depends on the parity of H and W
    "mobilenetv2-keras-035.safetensors": [(224, 224), (128, 128), (113, 113), (113, 128)],
    "mobilenetv2-keras-100.safetensors": [(224, 224), (128, 128), (129, 129)],
}


def _resolve(path):
    if os.path.isabs(path) or os.path.exists(path):
        return os.path.abspath(path)
    return os.path.join(ROOT, path)


@pytest.fixture(scope="session")
def xbn_bin():
    given = os.environ.get("XBN_BIN")
    path = _resolve(given or "build/xbnserve")
    if not os.access(path, os.X_OK):
        if given:
            pytest.fail("XBN_BIN=%s is not an executable" % given)
        pytest.skip("no xbnserve binary at %s (run make)" % path)
    return path


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    d = _resolve(os.environ.get("XBN_MODELS", "build/models"))
    if all(os.path.exists(os.path.join(d, f)) for f in CASES):
        return d
    d = str(tmp_path_factory.mktemp("models"))
    xw.main(["testset", "-o", d])
    return d


@functools.lru_cache(maxsize=None)
def oracle(path):
    model, meta = xw.model_from_file(path, dtype=torch.float64)
    return model, meta


@functools.lru_cache(maxsize=None)
def oracle_logits(path, h, w, seed):
    model, meta = oracle(path)
    x = xm.structured_inputs(N_INPUTS, h, w, seed, meta["arch"], meta["flavour"])
    with torch.no_grad():
        y = model(x.to(torch.float64))
    return x.numpy().astype(np.float32), y.numpy()


def run_predict(xbn_bin, model, inputs, top_k=5, logits=True, gemm=None):
    cmd = [xbn_bin, "predict", "--model", model, "--top-k", str(top_k)]
    if logits:
        cmd.append("--logits")
    if gemm:
        cmd += ["--gemm", gemm]
    cmd += list(inputs)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, "%s failed (%d): %s" % (" ".join(cmd), p.returncode, p.stderr)
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError("predict printed invalid JSON (%s): %r" % (e, p.stdout[:500]))


def assert_close(c_logits, t_logits, what):
    c = np.asarray(c_logits, dtype=np.float64)
    t = np.asarray(t_logits, dtype=np.float64)
    assert c.shape == t.shape, "%s: %d logits, expected %d" % (what, c.size, t.size)
    assert np.all(np.isfinite(c)), "%s: non-finite logits" % what
    err = np.abs(c - t)
    scale = np.abs(t).max()
    i = int(err.argmax())
    assert err[i] <= RTOL * scale, (
        "%s: max |C - torch| = %.3g at class %d (C %.9g, torch %.9g), limit %.3g"
        % (what, err[i], i, c[i], t[i], RTOL * scale))


def softmax(v):
    v = np.asarray(v, dtype=np.float64)
    e = np.exp(v - v.max())
    return e / e.sum()


def check_document(doc, model_path, npy_path, t_logits, labels, top_k, what):
    assert os.path.abspath(doc["model"]) == os.path.abspath(model_path) or \
        doc["model"] == model_path
    res = doc["results"]
    assert len(res) == len(t_logits), "%s: %d results for %d samples" % (
        what, len(res), len(t_logits))
    for i, (r, t) in enumerate(zip(res, t_logits)):
        w = "%s item %d" % (what, i)
        assert r["item"] == i
        assert os.path.basename(r["input"]) == os.path.basename(npy_path)
        assert_close(r["logits"], t, w)
        # top-k: indices in decreasing probability, labels from the file, softmax scores
        top = r["top"]
        assert len(top) == min(top_k, len(t))
        p = softmax(t)
        order = np.argsort(-p, kind="stable")
        # logits within e of torch's move log-probabilities by at most 2e
        rel = 2.5 * RTOL * np.abs(t).max()
        for rank, e in enumerate(top):
            k = e["index"]
            assert e["label"] == labels[k], w
            assert abs(e["score"] - p[k]) <= 1e-7 + rel * p[k], (
                "%s: score of class %d is %r, softmax %r" % (w, k, e["score"], p[k]))
            # rank may only differ from torch's where probabilities tie within tolerance
            assert p[k] >= p[order[rank]] * (1 - 2 * rel) - 1e-7, (
                "%s: rank %d is class %d (p=%g), torch has class %d (p=%g)"
                % (w, rank, k, p[k], order[rank], p[order[rank]]))
        scores = [e["score"] for e in top]
        assert scores == sorted(scores, reverse=True)


CASE_LIST = [(m, h, w) for m, sizes in CASES.items() for (h, w) in sizes]


@pytest.mark.parametrize("model_name,h,w", CASE_LIST,
                         ids=["%s-%dx%d" % c for c in CASE_LIST])
def test_predict_matches_torch(xbn_bin, models_dir, tmp_path, model_name, h, w):
    check_predict(xbn_bin, models_dir, tmp_path, model_name, h, w)


def check_predict(xbn_bin, models_dir, tmp_path, model_name, h, w, gemm=None):
    path = os.path.join(models_dir, model_name)
    x, t = oracle_logits(path, h, w, 1000 + h * 7 + w)
    npy = str(tmp_path / ("x%dx%d.npy" % (h, w)))
    np.save(npy, x)
    _, meta = oracle(path)
    labels = json.loads(meta["labels"])
    doc = run_predict(xbn_bin, path, [npy], top_k=5, gemm=gemm)
    check_document(doc, path, npy, t, labels, 5,
                   "%s %dx%d --gemm %s" % (model_name, h, w, gemm or "(default)"))


@pytest.mark.parametrize("gemm", ["avx512", "avx2", "blas"])
@pytest.mark.parametrize("model_name", list(CASES))
def test_every_kernel_table_matches_torch(xbn_bin, models_dir, tmp_path, model_name, gemm):
    """Each kernel table forced, at the first input size of each model: the packed GEMM on
    AVX-512 and on AVX2 + FMA (whichever the default run above did not take), and the BLAS
    path of CPUs without AVX2. A table this CPU cannot run is skipped."""
    if gemm not in cpu_tables():
        pytest.skip("this CPU cannot run the %s kernels" % gemm)
    h, w = CASES[model_name][0]
    check_predict(xbn_bin, models_dir, tmp_path, model_name, h, w, gemm)


def test_forcing_a_missing_table_fails(xbn_bin, models_dir):
    """Kernels the CPU lacks are a load error naming what is missing, not a crash or a quiet
    fallback."""
    missing = [g for g in ("avx512", "avx2") if g not in cpu_tables()]
    if not missing:
        pytest.skip("this CPU runs every kernel table")
    path = os.path.join(models_dir, "mobilenetv2-keras-035.safetensors")
    for gemm in missing:
        p = subprocess.run([xbn_bin, "predict", "--model", path, "--gemm", gemm, path],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 1, p
        assert "gemm %s: this CPU lacks" % gemm in p.stderr, p.stderr


@pytest.mark.parametrize("model_name", list(CASES))
def test_network_is_alive(models_dir, model_name):
    """Untrained test weights must still make the output depend on the input, or the
    comparison above would prove little."""
    path = os.path.join(models_dir, model_name)
    for h, w in CASES[model_name][:2]:
        _, t = oracle_logits(path, h, w, 1000 + h * 7 + w)
        alive = xm.aliveness(t)
        assert min(alive) > MIN_ALIVE, "%s %dx%d: aliveness %s" % (model_name, h, w, alive)
        spread = t.max() - t.min()
        assert np.abs(t - t.mean(0)).max() > 0.05 * spread


def test_batch_does_not_change_results(xbn_bin, models_dir, tmp_path):
    """A sample's logits must not depend on what it is batched with: N samples in one
    .npy, the same samples as separate [3,H,W] files, and in reverse order, give
    identical numbers."""
    path = os.path.join(models_dir, "mobilenetv2-keras-035.safetensors")
    x, t = oracle_logits(path, 128, 128, 1000 + 128 * 8)
    batch = str(tmp_path / "batch.npy")
    np.save(batch, x)
    singles = []
    for i in range(len(x)):
        singles.append(str(tmp_path / ("one%d.npy" % i)))
        np.save(singles[-1], x[i])
    rev = str(tmp_path / "rev.npy")
    np.save(rev, x[::-1].copy())
    doc = run_predict(xbn_bin, path, [batch] + singles + [rev])
    res = doc["results"]
    n = len(x)
    assert len(res) == 3 * n
    for i in range(n):
        a = res[i]["logits"]
        assert res[n + i]["item"] == 0
        assert res[n + i]["logits"] == a, "item %d: single-sample result differs" % i
        assert res[2 * n + (n - 1 - i)]["logits"] == a, "item %d: reversed batch differs" % i
        assert_close(a, t[i], "batch item %d" % i)


def test_predict_errors(xbn_bin, models_dir, tmp_path):
    bad = str(tmp_path / "missing.safetensors")
    npy = str(tmp_path / "x.npy")
    np.save(npy, np.zeros((1, 3, 64, 64), np.float32))
    p = subprocess.run([xbn_bin, "predict", "--model", bad, npy], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode != 0 and p.stderr.strip()
    junk = str(tmp_path / "junk.safetensors")
    with open(junk, "wb") as f:
        f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    p = subprocess.run([xbn_bin, "predict", "--model", junk, npy], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode != 0 and p.stderr.strip()
    # a model file with a missing tensor must be refused, not run
    tensors, meta = xw.load_safetensors(
        os.path.join(models_dir, "mobilenetv2-keras-035.safetensors"))
    tensors.pop("features.5.conv.4.weight")
    cut = str(tmp_path / "cut.safetensors")
    xw.save_safetensors(cut, tensors, meta)
    p = subprocess.run([xbn_bin, "predict", "--model", cut, npy], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode != 0 and p.stderr.strip()


# ---------------------------------------------------------------- converter round trips
#
# An independent writer of Keras save_weights files for the seed's models. The layer order
# is written out by hand from the Keras rule (model.layers sorted by depth, ties broken
# by a depth-first walk from the output): in the seed's ResNet50 block with a projection
# shortcut, Add()([x, short_cut]) puts the main branch's conv3 / bn3 before the
# shortcut's conv / BN.


class KerasNames:
    def __init__(self, offset):
        self.n = {}
        self.offset = offset

    def __call__(self, cls):
        k = self.n.get(cls, self.offset)
        self.n[cls] = k + 1
        return "%s_%d" % (cls, k) if k else cls


def keras_layers_mobilenetv2(sd, model, offset):
    """[(layer name, [(weight role, keras array)])] for the seed's MobilenetV2_xbn."""
    nm = KerasNames(offset)
    L = [("input_%d" % (offset + 1), [])]

    def conv(key):
        return (nm("conv2d"), [("kernel", sd[key].transpose(2, 3, 1, 0))])

    def bn(key):
        return (nm("batch_normalization"), [
            ("gamma", sd[key + ".weight"]), ("beta", sd[key + ".bias"]),
            ("moving_mean", sd[key + ".running_mean"]),
            ("moving_variance", sd[key + ".running_var"])])

    L += [(nm("zero_padding2d"), []), conv("features.0.0.weight"), bn("features.0.1"),
          (nm("activation"), [])]
    for i, blk in enumerate(model.features):
        if not isinstance(blk, xm.InvertedResidual):
            continue
        p = "features.%d.conv." % i
        L += [conv(p + "0.weight"), bn(p + "1"), (nm("activation"), [])]
        if blk.stride == 2:
            L.append((nm("zero_padding2d"), []))
        L += [(nm("depthwise_conv2d"),
               [("depthwise_kernel", sd[p + "3.weight"].transpose(2, 3, 0, 1))]),
              (nm("group_normalization"),
               [("gamma", sd[p + "4.weight"]), ("beta", sd[p + "4.bias"])]),
              (nm("activation"), []), conv(p + "6.weight"), bn(p + "7"),
              (nm("activation"), [])]
        if blk.use_res:
            L.append((nm("add"), []))
    L += [conv("features.18.0.weight"), bn("features.18.1"), (nm("activation"), []),
          (nm("global_average_pooling2d"), []), ("reshape_1", []), ("dropout", []),
          ("conv_preds", [("kernel", sd["classifier.weight"].T[None, None]),
                          ("bias", sd["classifier.bias"])]),
          ("act_softmax", []), ("reshape_2", [])]
    return L


def keras_layers_resnet50(sd, offset):
    nm = KerasNames(offset)

    def conv(key):
        return (nm("conv2d"), [("kernel", sd[key + ".weight"].transpose(2, 3, 1, 0)),
                               ("bias", sd[key + ".bias"])])

    def bn(key):
        return (nm("batch_normalization"), [
            ("gamma", sd[key + ".weight"]), ("beta", sd[key + ".bias"]),
            ("moving_mean", sd[key + ".running_mean"]),
            ("moving_variance", sd[key + ".running_var"])])

    L = [("input_%d" % (offset + 1), []), (nm("zero_padding2d"), []), conv("conv1"),
         bn("bn1"), (nm("activation"), []), (nm("zero_padding2d"), []),
         (nm("max_pooling2d"), [])]
    for li, n in enumerate(xm.RESNET_LAYERS):
        for b in range(n):
            p = "layer%d.%d." % (li + 1, b)
            L += [conv(p + "conv1"), bn(p + "bn1"), (nm("activation"), []),
                  conv(p + "conv2"),
                  (nm("group_normalization"), [("gamma", sd[p + "bn2.weight"]),
                                               ("beta", sd[p + "bn2.bias"])]),
                  (nm("activation"), []), conv(p + "conv3")]
            if b == 0:
                L += [conv(p + "downsample.0"), bn(p + "bn3"), bn(p + "downsample.1")]
            else:
                L += [bn(p + "bn3")]
            L += [(nm("add"), []), (nm("activation"), [])]
    L += [(nm("global_average_pooling2d"), []),
          (nm("dense"), [("kernel", sd["fc.weight"].T), ("bias", sd["fc.bias"])])]
    return L


def write_h5(path, layers):
    import h5py
    with h5py.File(path, "w") as f:
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.5.0"
        f.attrs["layer_names"] = np.array([n.encode() for n, _ in layers])
        for name, ws in layers:
            g = f.create_group(name)
            wn = ["%s/%s:0" % (name, role) for role, _ in ws]
            g.attrs["weight_names"] = np.array([w.encode() for w in wn]) if wn else \
                np.array([], dtype=np.float64)  # what Keras writes for an empty list
            for w, (_, a) in zip(wn, ws):
                g.create_dataset(w, data=np.ascontiguousarray(a, dtype=np.float32))


@pytest.mark.parametrize("model_name", ["mobilenetv2-keras-035.safetensors",
                                        "resnet50-keras.safetensors"])
def test_convert_keras(request, models_dir, tmp_path, model_name):
    src = os.path.join(models_dir, model_name)
    tensors, meta = xw.load_safetensors(src)
    if meta["arch"] == "mobilenetv2":
        model = xm.build_model("mobilenetv2", "keras", float(meta["width"]),
                               int(meta["classes"]))
        layers = keras_layers_mobilenetv2(tensors, model, offset=17)
    else:
        layers = keras_layers_resnet50(tensors, offset=17)
    h5 = str(tmp_path / "w.h5")
    write_h5(h5, layers)
    out = str(tmp_path / "converted.safetensors")
    # no --width / --classes: both are inferred from the file
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "xbnweights.py"),
                        "convert-keras", h5, "--arch", meta["arch"], "-o", out],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    conv, cmeta = xw.load_safetensors(out)
    assert set(conv) == set(tensors)
    for k in tensors:
        assert np.array_equal(conv[k], tensors[k]), k
    for k in ("format", "arch", "flavour", "width", "classes", "gn_groups", "preprocess",
              "labels"):
        assert cmeta[k] == meta[k], k
    assert "untrained" not in cmeta
    xbn_bin = request.getfixturevalue("xbn_bin")
    size = (113, 113) if meta["arch"] == "mobilenetv2" else (128, 128)
    x, t = oracle_logits(src, size[0], size[1], 77)
    npy = str(tmp_path / "x.npy")
    np.save(npy, x)
    doc = run_predict(xbn_bin, out, [npy])
    check_document(doc, out, npy, t, json.loads(meta["labels"]), 5, "converted " + model_name)


def test_convert_keras_rejects_wrong_arch(models_dir, tmp_path):
    tensors, meta = xw.load_safetensors(
        os.path.join(models_dir, "mobilenetv2-keras-035.safetensors"))
    model = xm.build_model("mobilenetv2", "keras", 0.35, 17)
    h5 = str(tmp_path / "w.h5")
    write_h5(h5, keras_layers_mobilenetv2(tensors, model, offset=3))
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "xbnweights.py"),
                        "convert-keras", h5, "--arch", "mobilenetv2", "--width", "1.0",
                        "-o", str(tmp_path / "o.safetensors")],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode != 0 and "convert-keras" in p.stderr


def test_convert_torch(request, models_dir, tmp_path):
    src = os.path.join(models_dir, "mobilenetv2-torch.safetensors")
    tensors, meta = xw.load_safetensors(src)
    sd = {}
    for k, v in tensors.items():
        sd["module." + k] = torch.from_numpy(v)
        if k.endswith("running_var"):
            sd["module." + k[:-len("running_var")] + "num_batches_tracked"] = \
                torch.tensor(12345)
    ckpt = str(tmp_path / "model_best.pth.tar")
    torch.save({"epoch": 90, "arch": "mobilenetv2_XBNBlock", "state_dict": sd,
                "best_prec1": 0.0}, ckpt)
    out = str(tmp_path / "converted.safetensors")
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "xbnweights.py"),
                        "convert-torch", ckpt, "--arch", "mobilenetv2", "-o", out],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    conv, cmeta = xw.load_safetensors(out)
    assert set(conv) == set(tensors)
    for k in tensors:
        assert np.array_equal(conv[k], tensors[k]), k
    assert cmeta["flavour"] == "torch" and cmeta["width"] == "1.0"
    xbn_bin = request.getfixturevalue("xbn_bin")
    x, t = oracle_logits(src, 128, 128, 78)
    npy = str(tmp_path / "x.npy")
    np.save(npy, x)
    doc = run_predict(xbn_bin, out, [npy])
    check_document(doc, out, npy, t, json.loads(meta["labels"]), 5, "converted torch")


def cpu_tables():
    """The kernel tables this CPU runs, best first, from the kernel's own CPU flags."""
    with open("/proc/cpuinfo") as f:
        flags = next(line for line in f if line.startswith("flags")).split()
    avx2 = "avx2" in flags and "fma" in flags
    return (["avx512"] if avx2 and "avx512f" in flags else []) + (["avx2"] if avx2 else []) + \
        ["blas"]


def cpu_gemm():
    """The kernels the engine should pick here by default."""
    return cpu_tables()[0]


def test_bench_command(xbn_bin, models_dir):
    """`xbnserve bench` prints one JSON line describing the run (no speed is asserted: speed
    lives in bench/), names the kernels it ran, and refuses bad arguments."""
    path = os.path.join(models_dir, "mobilenetv2-keras-035.safetensors")
    for gemm in (None, "blas"):
        p = subprocess.run([xbn_bin, "bench", "--model", path, "--batch", "3", "--threads", "2",
                            "--seconds", "0.2", "--size", "96"] + (["--gemm", gemm] if gemm else []),
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        lines = p.stdout.strip().splitlines()
        assert len(lines) == 1, p.stdout
        doc = json.loads(lines[0])
        assert (doc["arch"], doc["flavour"], doc["size"]) == ("mobilenetv2", "keras", 96)
        assert (doc["batch"], doc["threads"]) == (3, 2)
        assert doc["iterations"] >= 3 and doc["img_per_s"] > 0
        assert 0 < doc["p50_ms"] <= doc["p99_ms"]
        assert doc["gemm"] == (gemm or cpu_gemm())
        assert isinstance(doc["blas_kernel"], str)
    for bad in (["--batch", "0"], ["--threads", "-1"], ["--seconds", "x"], ["--gemm", "sse"]):
        p = subprocess.run([xbn_bin, "bench", "--model", path] + bad,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and "usage" in p.stderr, (bad, p.returncode, p.stderr)
    p = subprocess.run([xbn_bin, "bench", "--model", path + ".missing"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "No such file" in p.stderr
