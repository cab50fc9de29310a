"""tests/integration/test_worst_case.py - the worst case one request can cost under the default
limits, per input kind (the table in docs/security.md): each test builds that input, sends it
to a fresh child daemon and measures its peak RSS growth (VmHWM after the request minus VmHWM
after normal requests) and its time as a ratio to a normal request's. The bounds asserted are
the table's, with margins for a loaded machine.

The hostile shapes come from tests/fuzz/make_seeds.py (the fuzz driver replays them too)."""
import base64
import functools
import io
import json
import os
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from test_faults import vm_hwm_kb
from xbn import JPEG, SMALL, Server, multipart

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "fuzz"))
import make_seeds  # noqa: E402

HDR_JPEG = {"Content-Type": "image/jpeg"}
PREDICT = "/v1/models/small:predict"
MB = 1024


def encode(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, format=fmt, **kw)
    return b.getvalue()


# 12.98 MP, a 13 MP phone camera's size, just under the default max_image_pixels (13,000,000).
W, H = 4160, 3120


@functools.lru_cache(maxsize=None)
def big_rgb(w=W, h=H, alpha=False):
    """A horizontal grey ramp: compresses to little, decodes to every pixel."""
    x = (np.arange(w, dtype=np.uint32) * 255 // w).astype(np.uint8)
    a = np.empty((h, w, 4 if alpha else 3), np.uint8)
    a[:] = x[None, :, None]
    if alpha:
        a[:, :, 3] = 200
    return Image.fromarray(a, "RGBA" if alpha else "RGB")


def normal(s, n=3):
    """Time of the slowest of n normal requests (a 96x80 JPEG), at least 10 ms."""
    worst = 0.0
    for _ in range(n):
        t0 = time.time()
        st = s.request("POST", PREDICT, JPEG, HDR_JPEG)[0]
        assert st == 200
        worst = max(worst, time.time() - t0)
    return max(worst, 0.010)


def measure(body, headers, path=PREDICT, *args):
    """(status, peak RSS growth in KB, time / normal request's) on a fresh daemon."""
    s = Server("--model", "small=" + SMALL, *args)
    try:
        t_norm = normal(s)
        base = vm_hwm_kb(s.proc.pid)
        t0 = time.time()
        st = s.request("POST", path, body, headers, timeout=120)[0]
        took = time.time() - t0
        grew = vm_hwm_kb(s.proc.pid) - base
        assert s.json("GET", "/healthz")[0] == 200
    finally:
        assert s.stop() == 0
    print(f"status {st}, +{grew // MB} MB, {took:.2f} s = {took / t_norm:.0f}x normal")
    return st, grew, took / t_norm


def test_jpeg_baseline_13mp():
    """Decoded at 1/8 scale, only the rows the resize reads kept: a few MB."""
    st, grew, ratio = measure(encode(big_rgb(), "JPEG", quality=90), HDR_JPEG)
    assert st == 200
    assert grew < 32 * MB


def test_jpeg_progressive_13mp():
    """libjpeg keeps every coefficient of a progressive file while its scans arrive: 128 bytes
    per 8x8 block, 3 bytes per pixel in 4:2:0 (39 MB at 12.98 MP, 46 MB measured)."""
    st, grew, ratio = measure(encode(big_rgb(), "JPEG", quality=90, progressive=True), HDR_JPEG)
    assert st == 200
    assert grew < 64 * MB


def test_jpeg_progressive_444_13mp():
    """The heaviest input the default limits allow: in 4:4:4 every component has a block per
    8x8 pixels, 6 bytes per pixel (77 MB at 12.98 MP, 84 MB measured), the one kind over the
    64 MB aim (docs/security.md)."""
    body = encode(big_rgb(), "JPEG", quality=90, progressive=True, subsampling=0)
    st, grew, ratio = measure(body, HDR_JPEG)
    assert st == 200
    assert grew < 96 * MB


def test_jpeg_scan_bomb_refused_early():
    """4160 x 3120 with 499 scans (the finding, at 6300 x 6300: 32 s of CPU): refused at the
    scan that takes the work past 12 passes over the image's blocks."""
    s = Server("--model", "small=" + SMALL)
    try:  # the scan cap refuses it, not the pixel limit
        st, _, j = s.json("POST", PREDICT, make_seeds.jpeg_scan_bomb(W, H), HDR_JPEG)
        assert st == 413 and "progressive scans would walk over 12 times" in j["error"], j
    finally:
        assert s.stop() == 0
    st, grew, ratio = measure(make_seeds.jpeg_scan_bomb(W, H), HDR_JPEG)
    assert st == 413
    assert grew < 64 * MB  # the coefficients of 4160 x 3120 4:2:0 (39 MB)


def test_png_13mp():
    """A PNG is decoded whole: 3 bytes per pixel, 37 MB for 12.98 MP RGB."""
    st, grew, ratio = measure(encode(big_rgb(), "PNG", compress_level=1),
                              {"Content-Type": "image/png"})
    assert st == 200
    assert grew < 64 * MB


def test_png_alpha_13mp():
    """With alpha a PNG is decoded whole at 4 bytes per pixel (composited onto white after the
    decode): 50 MB for 12.98 MP RGBA."""
    st, grew, ratio = measure(encode(big_rgb(alpha=True), "PNG", compress_level=1),
                              {"Content-Type": "image/png"})
    assert st == 200
    assert grew < 64 * MB


@pytest.mark.parametrize("name", ["text", "long", "wide16"])
def test_png_hostile_costs_little(name):
    """The three PNG findings: 30 zTXt/iTXt chunks of 8 MB each (+240 MB before), a grey
    1 x 40,000,000 (5.8 s, +305 MB) and an RGBA 16-bit 40,000,000 x 1 (+763 MB): now chunks are
    skipped unread and the shapes refused from IHDR."""
    body, want = {"text": (make_seeds.png_text_bomb(), 200),
                  "long": (make_seeds.png_long(1, 40000000), 413),
                  "wide16": (make_seeds.png_long(40000000, 1, 6, 16), 413)}[name]
    st, grew, ratio = measure(body, {"Content-Type": "image/png"})
    assert st == want
    assert grew < 16 * MB
    assert ratio < 30


def test_v1_json_b64_13mp():
    """v1 JSON: the base64 text is decoded to bytes next to the body, then as a JPEG."""
    b64 = base64.b64encode(encode(big_rgb(), "JPEG", quality=90)).decode()
    body = json.dumps({"instances": [{"b64": b64}]})
    st, grew, ratio = measure(body, {"Content-Type": "application/json"})
    assert st == 200
    assert grew < 48 * MB


def test_v2_fp32_json():
    """V2 FP32: the numbers are read straight into floats (602 KB per image)."""
    data = ",".join(["0.5"] * (3 * 224 * 224))
    body = ('{"inputs":[{"name":"input","datatype":"FP32","shape":[1,3,224,224],"data":[%s]}]}'
            % data)
    st, grew, ratio = measure(body, {"Content-Type": "application/json"},
                              "/v2/models/small/infer")
    assert st == 200
    assert grew < 32 * MB


def test_multipart_two_13mp_jpegs():
    """Images of one request are decoded one after the other: the peak is one decode's."""
    j = encode(big_rgb(), "JPEG", quality=90)
    body, headers = multipart([(j, "image/jpeg"), (j, "image/jpeg")])
    st, grew, ratio = measure(body, headers)
    assert st == 200
    assert grew < 48 * MB


def test_healthz_while_both_http_threads_chew_bombs():
    """Two scan bombs keep both HTTP threads busy; /healthz is answered once a thread frees,
    so its delay is bounded by the scan cap (measured in the report, asserted with margin)."""
    bomb = make_seeds.jpeg_scan_bomb(6300, 6300)
    s = Server("--model", "small=" + SMALL, "--http-threads", "2", "--max-image-pixels", "40000000")
    try:
        normal(s)
        t0 = time.time()
        st, _, _ = s.request("POST", PREDICT, bomb, HDR_JPEG, timeout=120)
        alone = time.time() - t0
        assert st == 413
        res = []

        def chew():
            res.append(s.request("POST", PREDICT, bomb, HDR_JPEG, timeout=120)[0])

        ts = [threading.Thread(target=chew) for _ in range(2)]
        for t in ts:
            t.start()
        time.sleep(min(0.3, alone / 4))
        worst = 0.0
        while any(t.is_alive() for t in ts):
            t1 = time.time()
            assert s.request("GET", "/healthz", timeout=60)[0] == 200
            worst = max(worst, time.time() - t1)
            time.sleep(0.02)
        for t in ts:
            t.join()
        assert res == [413, 413]
        print(f"bomb alone {alone:.2f} s; /healthz worst {worst * 1000:.0f} ms")
        assert worst < 4 * alone + 2.0  # was 30 s and more before the scan cap
    finally:
        assert s.stop() == 0


def test_decode_stops_at_the_request_deadline():
    """A decode still running when request_timeout_ms passes stops there (504), instead of
    finishing its work first and being refused afterwards."""
    bomb = make_seeds.jpeg_scan_bomb(6300, 6300)
    s = Server("--model", "small=" + SMALL, "--request-timeout-ms", "100",
               "--max-image-pixels", "40000000")
    try:
        t0 = time.time()
        st, _, j = s.json("POST", PREDICT, bomb, HDR_JPEG)
        took = time.time() - t0
        assert st == 504 and "decode stopped at the request's deadline" in j["error"], j
        assert took < 5.0, took  # the deadline plus a loaded machine's margin
    finally:
        assert s.stop() == 0
