"""The model-file loader refuses every malformed file with a message naming the problem.

Each case starts from a real, valid model (mobilenetv2-keras-035 from `make models`), breaks
one thing, and runs `xbnserve inspect` on it: the process must exit 1 (not crash on a signal)
and print the expected words on stderr. The valid file itself must load.
"""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
import xbnweights as xw  # noqa: E402

BIN = os.environ.get("XBN_BIN", "build/xbnserve")
MODELS = os.environ.get("XBN_MODELS", "build/models")
BASE = os.path.join(MODELS, "mobilenetv2-keras-035.safetensors")


def inspect(path):
    r = subprocess.run([BIN, "inspect", path], capture_output=True, text=True, timeout=60)
    assert r.returncode >= 0, "killed by signal %d: %s" % (-r.returncode, r.stderr)
    return r.returncode, r.stderr


def raw_parts(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_raw(path, header, data, hlen=None):
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h) if hlen is None else hlen) + h + data)


@pytest.fixture(scope="module")
def base():
    tensors, meta = xw.load_safetensors(BASE)
    return tensors, meta


def test_valid_file_loads():
    rc, err = inspect(BASE)
    assert rc == 0, err


def test_missing_tensor(tmp_path, base):
    tensors, meta = base
    t = dict(tensors)
    del t["features.5.conv.4.weight"]
    p = str(tmp_path / "m.safetensors")
    xw.save_safetensors(p, t, meta)
    rc, err = inspect(p)
    assert rc == 1 and "missing tensor 'features.5.conv.4.weight'" in err


def test_extra_tensor(tmp_path, base):
    tensors, meta = base
    t = dict(tensors)
    t["features.99.conv.0.weight"] = np.zeros((4, 4, 1, 1), np.float32)
    p = str(tmp_path / "m.safetensors")
    xw.save_safetensors(p, t, meta)
    rc, err = inspect(p)
    assert rc == 1 and "unexpected tensor 'features.99.conv.0.weight'" in err


def test_misshapen_tensor(tmp_path, base):
    tensors, meta = base
    t = dict(tensors)
    w = t["classifier.weight"]
    t["classifier.weight"] = w[:, :-1].copy()
    p = str(tmp_path / "m.safetensors")
    xw.save_safetensors(p, t, meta)
    rc, err = inspect(p)
    assert rc == 1 and "'classifier.weight' has shape" in err


def test_wrong_dtype(tmp_path):
    header, data = raw_parts(BASE)
    name = next(k for k in header if k != "__metadata__")
    header[name]["dtype"] = "F16"
    p = str(tmp_path / "m.safetensors")
    write_raw(p, header, data)
    rc, err = inspect(p)
    assert rc == 1 and "dtype F16" in err


def test_truncated(tmp_path):
    raw = open(BASE, "rb").read()
    for cut in (4, 100, len(raw) // 2, len(raw) - 1):
        p = str(tmp_path / ("t%d.safetensors" % cut))
        open(p, "wb").write(raw[:cut])
        rc, err = inspect(p)
        assert rc == 1 and err.strip(), cut


def test_absurd_header_length(tmp_path):
    header, data = raw_parts(BASE)
    p = str(tmp_path / "m.safetensors")
    write_raw(p, header, data, hlen=1 << 62)
    rc, err = inspect(p)
    assert rc == 1 and "header length" in err


def test_overlapping_offsets(tmp_path):
    header, data = raw_parts(BASE)
    names = sorted((k for k in header if k != "__metadata__"),
                   key=lambda k: header[k]["data_offsets"][0])
    b = names[1]
    # b claims a range starting inside a's
    size = header[b]["data_offsets"][1] - header[b]["data_offsets"][0]
    header[b]["data_offsets"] = [4, 4 + size]
    p = str(tmp_path / "m.safetensors")
    write_raw(p, header, data)
    rc, err = inspect(p)
    assert rc == 1 and ("overlaps" in err or "gap" in err)


def test_offsets_past_end(tmp_path):
    header, data = raw_parts(BASE)
    name = next(k for k in header if k != "__metadata__")
    b0, b1 = header[name]["data_offsets"]
    header[name]["data_offsets"] = [len(data) - 4, len(data) - 4 + (b1 - b0)]
    p = str(tmp_path / "m.safetensors")
    write_raw(p, header, data)
    rc, err = inspect(p)
    assert rc == 1 and "outside" in err


def test_bad_metadata(tmp_path, base):
    tensors, meta = base
    cases = [
        ({"arch": "vgg16"}, "metadata 'arch'"),
        ({"flavour": "jax"}, "metadata 'flavour'"),
        ({"classes": "-3"}, "metadata 'classes'"),
        ({"format": "other/9"}, "metadata 'format'"),
        ({"preprocess": "{not json"}, "preprocess"),
        ({"labels": json.dumps(["a", "b"])}, "labels"),
        ({"width": "0.5"}, "has shape"),  # a different width changes every channel count
    ]
    for change, words in cases:
        m = dict(meta)
        m.update(change)
        p = str(tmp_path / "m.safetensors")
        xw.save_safetensors(p, tensors, m)
        rc, err = inspect(p)
        assert rc == 1 and words in err, (change, err)


def test_not_a_model(tmp_path):
    for content in (b"", b"\x00" * 7, b"GIF89a" + b"\x00" * 100, b"\xff" * 64):
        p = str(tmp_path / "x.bin")
        open(p, "wb").write(content)
        rc, err = inspect(p)
        assert rc == 1 and err.strip()
    rc, err = inspect(str(tmp_path / "does-not-exist"))
    assert rc == 1 and "No such file" in err
