"""The binary is built for baseline x86-64 and picks its kernels from the CPU at load: run it
on an emulated CPU without AVX (qemu-x86_64 -cpu Nehalem, user mode) and check that it takes
the BLAS kernel table there, agrees with the PyTorch oracle, refuses AVX2 kernels with a
message, and preprocesses images to the same bytes as on this machine (the resize's scalar
loops against its AVX2 passes).

Environment: XBN_BIN, XBN_MODELS as for the other tests. Needs qemu-user (scripts/deps.sh);
the tests skip without it, and for a sanitizer build (make asan), whose shadow memory qemu-user
tries to back with real memory until the kernel kills it.
"""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

import test_oracle as to
from test_oracle import models_dir, xbn_bin  # noqa: F401 (fixtures)

QEMU = shutil.which("qemu-x86_64")
CPU = "Nehalem"  # SSE4.2, no AVX: older than anything the kernels need
SMALL = "mobilenetv2-keras-035.safetensors"

pytestmark = pytest.mark.skipif(QEMU is None, reason="no qemu-x86_64 (scripts/deps.sh)")


@pytest.fixture(autouse=True)
def not_sanitized(xbn_bin):
    with open(xbn_bin, "rb") as f:
        if b"__asan_init" in f.read():
            pytest.skip("a sanitizer build: qemu-user cannot run it")


def emulated_env():
    """OPENBLAS_CORETYPE, where the machine sets it, names the host's CPU (Haswell on an AVX2
    host): forced onto the emulated one, OpenBLAS itself would take AVX2 kernels and die of an
    illegal instruction. The emulated process is told its own CPU instead."""
    return dict(os.environ, OPENBLAS_CORETYPE=CPU)


def emulated(args, timeout=600):
    return subprocess.run([QEMU, "-cpu", CPU] + args, capture_output=True, text=True,
                          timeout=timeout, env=emulated_env())


def test_bench_takes_the_blas_table(xbn_bin, models_dir):
    path = os.path.join(models_dir, SMALL)
    p = emulated([xbn_bin, "bench", "--model", path, "--batch", "1", "--seconds", "0.05",
                  "--size", "64"])
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert (doc["gemm"], doc["blas_kernel"]) == ("blas", CPU)


def test_forcing_avx2_fails(xbn_bin, models_dir):
    path = os.path.join(models_dir, SMALL)
    p = emulated([xbn_bin, "bench", "--model", path, "--gemm", "avx2", "--seconds", "0.05"])
    assert p.returncode == 1
    assert "gemm avx2: this CPU lacks AVX2 and FMA (it runs blas only)" in p.stderr, p.stderr


@pytest.mark.parametrize("model_name,h,w", [(SMALL, 113, 128),
                                            ("resnet50-torch.safetensors", 64, 64)])
def test_predict_matches_torch(xbn_bin, models_dir, tmp_path, model_name, h, w):
    """The whole network on the baseline CPU: within the oracle's tolerance of PyTorch, and
    close to this machine's BLAS table (OpenBLAS picks other kernels on the emulated CPU, so
    the last bits may differ)."""
    path = os.path.join(models_dir, model_name)
    x, t = to.oracle_logits(path, h, w, 1000 + h * 7 + w)
    npy = str(tmp_path / "x.npy")
    np.save(npy, x)
    p = emulated([xbn_bin, "predict", "--model", path, "--logits", npy])
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    _, meta = to.oracle(path)
    to.check_document(doc, path, npy, t, json.loads(meta["labels"]), 5,
                      "%s %dx%d on %s" % (model_name, h, w, CPU))
    host = to.run_predict(xbn_bin, path, [npy], gemm="blas")
    for a, b in zip(doc["results"], host["results"]):
        la, lb = np.array(a["logits"]), np.array(b["logits"])
        assert np.abs(la - lb).max() <= 1e-5 * np.abs(lb).max(), (la, lb)


def test_preprocess_same_bytes(xbn_bin, models_dir, tmp_path):
    """Decode + resize + normalise on the baseline CPU (the resize's scalar loops) gives the
    bytes this machine gives (its AVX2 passes when it has AVX2)."""
    path = os.path.join(models_dir, "mobilenetv2-torch.safetensors")
    rng = np.random.default_rng(11)
    for i, (w, h) in enumerate([(512, 600), (300, 256), (97, 211)]):
        ramp = np.linspace(0, 200, w)[None, :, None] + np.linspace(0, 50, h)[:, None, None]
        px = (ramp + rng.integers(0, 56, (h, w, 3))).astype(np.uint8)
        img = str(tmp_path / ("i%d.jpg" % i))
        Image.fromarray(px).save(img, quality=90)
        out = {}
        for where, pre, env in (("host", [], None),
                                ("emulated", [QEMU, "-cpu", CPU], emulated_env())):
            npy = str(tmp_path / ("%s%d.npy" % (where, i)))
            p = subprocess.run(pre + [xbn_bin, "preprocess", "--model", path, img, "-o", npy],
                               capture_output=True, text=True, timeout=120, env=env)
            assert p.returncode == 0, p.stderr
            out[where] = open(npy, "rb").read()
        assert out["host"] == out["emulated"], img
