#!/usr/bin/python3
"""make_seeds.py - write the seed corpus of every fuzz driver (tests/fuzz/fuzz_*.c).

Usage: /usr/bin/python3 tests/fuzz/make_seeds.py OUTDIR [MODELS_DIR]

Writes OUTDIR/<driver>/<name> for the drivers image, multipart, v1, v2, config, model and
npy, in each driver's input form (see the comment at the top of each driver). The inputs
are the shapes the tests use, kept small so a mutation explores structure rather than pixel
data: tiny JPEGs and PNGs of every kind the decoders handle, the request bodies of
tests/integration/xbn.py, config/xbnserve.json, the headers of the models in MODELS_DIR (default
build/models; `make models`), and .npy files of several shapes. Deterministic: the same
files on every run. Nothing here is committed; small crash inputs that became regression
tests live in tests/fuzz/regress/<driver>/.
"""
import base64
import io
import json
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def img(w, h, seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x * y) % 256], -1)
    a = np.clip(a + rng.integers(-20, 20, a.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(a, "RGB").convert(mode)


def enc(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, format=fmt, **kw)
    return b.getvalue()


def exif(o):
    ex = Image.Exif()
    ex[0x0112] = o
    return ex.tobytes()


def png_chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))


def png_raw(arr, color_type, depth, interlace=0, extra=b""):
    h, w = arr.shape[:2]
    dt = ">u2" if depth == 16 else "u1"
    raw = b"".join(b"\0" + arr[y].astype(dt).tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra
            + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))


def images():
    """(name, bytes): small encoded images of every kind the decoders handle."""
    out = []
    s = img(17, 13)
    for sub in (0, 1, 2):
        out.append((f"base_{sub}.jpg", enc(s, "JPEG", quality=80, subsampling=sub)))
    out.append(("prog.jpg", enc(img(40, 24, 1), "JPEG", progressive=True, quality=70)))
    out.append(("gray.jpg", enc(s.convert("L"), "JPEG")))
    out.append(("cmyk.jpg", enc(s.convert("CMYK"), "JPEG")))
    out.append(("opt.jpg", enc(s, "JPEG", optimize=True, quality=30)))
    out.append(("exif6.jpg", enc(s, "JPEG", exif=exif(6))))
    out.append(("exif3.jpg", enc(s, "JPEG", exif=exif(3))))
    out.append(("big.jpg", enc(img(300, 200, 2), "JPEG", quality=20)))  # DCT scaling
    out.append(("tall.jpg", enc(img(8, 200, 3), "JPEG", quality=50)))
    out.append(("rgb.png", enc(s, "PNG")))
    out.append(("rgba.png", enc(s.convert("RGBA"), "PNG")))
    out.append(("la.png", enc(s.convert("LA"), "PNG")))
    out.append(("l.png", enc(s.convert("L"), "PNG")))
    out.append(("p.png", enc(s.convert("P"), "PNG")))
    out.append(("p_trns.png", enc(s.convert("P"), "PNG", transparency=0)))
    out.append(("one.png", enc(s.convert("1"), "PNG")))
    out.append(("exif6.png", enc(s, "PNG", exif=exif(6))))
    a = np.asarray(s)
    out.append(("rgb16.png", png_raw(a.astype(np.uint16) * 257, 2, 16)))
    out.append(("adam7.png", png_raw(a, 2, 8, interlace=1)))
    out.append(("gray2.png", png_raw((a[..., 0] >> 6).astype(np.uint8) * 0, 0, 8)))
    out.append(("wide.png", enc(img(300, 4, 4), "PNG")))
    fx = os.path.join(ROOT, "build/image_fixtures")  # tools/make_image_fixtures.py, if made
    if os.path.isdir(fx):
        for f in sorted(os.listdir(fx)):
            p = os.path.join(fx, f)
            if f.endswith((".jpg", ".png")) and os.path.getsize(p) <= 32768:
                out.append(("fx_" + f, open(p, "rb").read()))
    return out


def multipart(parts, b="xbnBoundary7MA4YWxk", fields=None):
    out = []
    for k, v in (fields or {}).items():
        out.append(f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    for i, (data, ctype) in enumerate(parts):
        out.append(f'--{b}\r\nContent-Disposition: form-data; name="img{i}"; '
                   f'filename="{i}.bin"\r\nContent-Type: {ctype}\r\n\r\n'.encode() + data + b"\r\n")
    out.append(f"--{b}--\r\n".encode())
    return f"multipart/form-data; boundary={b}\n".encode() + b"".join(out)


def npy(a, version=(1, 0)):
    b = io.BytesIO()
    np.lib.format.write_array(b, a, version=version)
    return b.getvalue()


# ---- hostile images: the costly shapes docs/security.md bounds (tests/integration/
# test_worst_case.py builds them at full size; the fuzz driver replays them scaled to its
# pixel limit, the small ones from tests/fuzz/regress/image/) ----

def png_long(w, h, color_type=0, depth=8):
    """A w x h PNG of zeros, IDAT written row by row: 1 x 40,000,000 grey is 78 KB."""
    ch = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row = b"\0" + bytes(w * ch * depth // 8)
    z = zlib.compressobj(9)
    chunks = [z.compress(row * min(h, 65536)) for _ in range(h // 65536)]
    chunks += [z.compress(row * (h % 65536)), z.flush()]
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", b"".join(chunks)) + png_chunk(b"IEND", b""))


def png_text_bomb(n=30, inflated=8 << 20, w=64, h=64):
    """A small PNG with n zTXt/iTXt chunks that each inflate to `inflated` bytes."""
    z = zlib.compress(bytes(inflated), 9)
    extra = b""
    for i in range(n):
        if i % 2:
            extra += png_chunk(b"iTXt", b"k%d\0\1\0\0\0" % i + z)
        else:
            extra += png_chunk(b"zTXt", b"k%d\0\0" % i + z)
    return png_raw(np.zeros((h, w, 3), np.uint8), 2, 8, extra=extra)


def jpeg_scan_bomb(w, h, scans=499):
    """A flat progressive w x h JPEG whose last AC scan is repeated until it has `scans` scans:
    each repeat is a few bytes (end-of-band runs) but makes the decoder walk every block of
    the component again."""
    d = enc(Image.new("RGB", (w, h), (120, 130, 140)), "JPEG", progressive=True, quality=75)
    segs, i = [], 2  # (start, end) of each SOS header + its entropy-coded data
    while i < len(d) - 2:
        m, n = d[i + 1], struct.unpack(">H", d[i + 2:i + 4])[0]
        if m == 0xDA:
            j = i + 2 + n
            while not (d[j] == 0xFF and d[j + 1] not in (0, *range(0xD0, 0xD8))):
                j += 1
            segs.append((i, j))
            i = j
        else:
            i += 2 + n
    a, b = segs[-1]
    body = d[:b]
    return body + d[a:b] * (scans - len(segs)) + b"\xff\xd9"


def hostile():
    """(name, selector + bytes) for the fuzz driver: each finding at the driver's size."""
    return [
        ("hostile-png-ztxt-30x8MB", png_text_bomb()),
        ("hostile-png-1x40M-grey", png_long(1, 40000000)),
        ("hostile-png-40Mx1-rgba16", png_long(40000000, 1, 6, 16)),
        ("hostile-jpeg-499-scans-6300", jpeg_scan_bomb(6300, 6300)),
    ]


def write(d, name, data):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    out = sys.argv[1]
    models = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "build/models")
    ims = images()
    tiny = [d for n, d in ims if len(d) < 1200][:3]
    b64 = [base64.b64encode(d).decode() for d in tiny]

    for i, (n, d) in enumerate(ims):  # selector byte: spec, EXIF, DCT scaling vary by seed
        write(f"{out}/image", n, bytes([i % 16 | 4]) + d)
        if i % 3 == 0:
            write(f"{out}/image", "s" + n, bytes([(i * 5) % 16]) + d)

    for n, d in hostile():  # the full-size findings: refused by the driver's pixel limit
        write(f"{out}/image", n, b"\0" + d)

    mp = f"{out}/multipart"
    write(mp, "one", multipart([(tiny[0], "image/jpeg")]))
    write(mp, "two_topk", multipart([(tiny[0], "image/jpeg"), (tiny[1], "image/png")],
                                    fields={"top_k": "3"}))
    write(mp, "quoted", b'multipart/form-data; charset=x; boundary="a b"\n--a b\r\n'
          b"Content-Type: image/png\r\n\r\nPNG\r\n--a b--\r\n")
    write(mp, "unit", b"multipart/form-data; boundary=XyZ\npreamble\r\n--XyZ\r\n"
          b'Content-Disposition: form-data; name="top_k"\r\n\r\n3\r\n--XyZ\r\n'
          b'Content-Disposition: form-data; name="a"; filename="a.jpg"\r\n'
          b"Content-Type: image/jpeg\r\n\r\nAAA\r\nBB\r\n--XyZ\r\nContent-Type: image/png\r\n"
          b"\r\nPNGDATA\r\n--XyZ--\r\nepilogue")
    write(mp, "noheaders", b"--XyZ\r\n\r\nabc\r\n--XyZ--")

    v1 = f"{out}/v1"
    write(v1, "two", json.dumps({"instances": [{"b64": b64[0]}, {"image": {"b64": b64[1]}}],
                                 "top_k": 4}).encode())
    write(v1, "unit", b'{"instances":[{"b64":"aGVsbG8="},{"img":{"b64":"AQID"}}],"top_k":2}')
    write(v1, "ws", b'{"instances":[{"b64":"aGVs\\nbG8"},{"b64":"_-8="}]}')
    write(v1, "bad_topk", b'{"instances":[{"b64":"AA=="}],"top_k":1.5}')
    # TF Serving's columnar form: a list, one image, a named input
    write(v1, "columnar", b'{"inputs":[{"b64":"aGVsbG8="},{"b64":"AQID"}]}')
    write(v1, "columnar_one", b'{"inputs":{"b64":"aGVsbG8="},"top_k":1}')
    write(v1, "columnar_named", b'{"inputs":{"image_bytes":[{"b64":"AQID"}]}}')
    # valid JSON but for one stray bracket at the end: refused by the scan, before cJSON
    write(v1, "stray_bracket", b'{"instances":[' + b"0," * 2000 + b'0]}]')

    v2 = f"{out}/v2"
    x = np.arange(2 * 3 * 4 * 4, dtype=np.float32) / 7 - 3
    flat = {"id": "abc", "inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 3, 4, 4],
                                     "data": [float(v) for v in x]}],
            "outputs": [{"name": "probabilities"}, {"name": "logits"}]}
    write(v2, "fp32_flat", b"\x02" + json.dumps(flat).encode())
    nested = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 4, 4],
                          "data": x[:48].reshape(1, 3, 4, 4).tolist()}]}
    write(v2, "fp32_nested", b"\x00" + json.dumps(nested).encode())
    over = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 1, 1],
                        "data": [1e39, -1e39, 3.5e38]}]}
    write(v2, "fp32_overflow", b"\x00" + json.dumps(over).encode())
    by = {"id": "q\"\\\u0001", "inputs": [{"name": "image", "datatype": "BYTES", "shape": [2],
                                            "data": [b64[0], {"b64": b64[1]}]}]}
    write(v2, "bytes", b"\x05" + json.dumps(by).encode())
    by2 = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1, 1], "data": [b64[2]]}]}
    write(v2, "bytes_2d", b"\x01" + json.dumps(by2).encode())

    # Binary tensor extension: selector byte with the top bit set, then the JSON part's
    # length (2 bytes, little-endian), then the body: JSON header + binary part.
    def binary(sel, head, raw):
        j = json.dumps(head).encode()
        return bytes([sel | 0x80]) + struct.pack("<H", len(j)) + j + raw
    x1 = x[:48].astype("<f4").tobytes()
    write(v2, "bin_fp32", binary(0x00, {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 4, 4],
                    "parameters": {"binary_data_size": len(x1)}}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": True}},
                    {"name": "probabilities", "parameters": {"classification": 2}}]}, x1))
    els = b"".join(struct.pack("<I", len(b)) + b for b in (b"hello", b"", b"\x01\x02\x03"))
    write(v2, "bin_bytes", binary(0x04, {
        "id": "b", "parameters": {"binary_data_output": True},
        "inputs": [{"name": "image", "datatype": "BYTES", "shape": [3],
                    "parameters": {"binary_data_size": len(els)}}],
        "outputs": [{"name": "probabilities",
                     "parameters": {"classification": 3, "binary_data": True}}]}, els))
    write(v2, "bin_short", binary(0x02, {
        "inputs": [{"name": "image", "datatype": "BYTES", "shape": [2],
                    "parameters": {"binary_data_size": 9}}]}, struct.pack("<I", 99) + b"abcde"))
    write(v2, "params_unknown", b"\x00" + json.dumps({
        "parameters": {"priority": 1},
        "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["AA=="],
                    "parameters": {"x": 1}}]}).encode())

    cf = f"{out}/config"
    base = open(os.path.join(ROOT, "config/xbnserve.json"), "rb").read()
    write(cf, "default", base)
    write(cf, "flags_env", base + b"\0\0--port\0" + b"0\0--max-batch-size=4\0--model\0a=b.st\0"
          b"--reuse-port\0yes\0"
          b"--model-set\0a.workers=2\0--help\0\0XBNSERVE_MAX_BODY_BYTES=1000\0XBNSERVE_MODELS=x=y,z=w")
    pre = {"models": [{"name": "m", "path": "p", "labels": "l.txt", "preprocess": {
        "resize_mode": "shorter_crop", "resize": 256, "crop": 224, "channel_order": "BGR",
        "mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2], "exif_orient": False}}],
        "log_format": "json", "metrics": False, "// note": 1}
    write(cf, "preprocess", json.dumps(pre).encode() + b"\0\0--log-level\0debug")
    write(cf, "env_only", b"{}\0\0\0\0XBNSERVE_MODELS=a=b\0XBNSERVE_WORKERS=3\0XBNSERVE_PORT=x")

    md = f"{out}/model"
    if os.path.isdir(models):
        for f in sorted(os.listdir(models)):
            p = os.path.join(models, f)
            if not f.endswith(".safetensors"):
                continue
            with open(p, "rb") as fh:
                n = struct.unpack("<Q", fh.read(8))[0]
                hdr = fh.read(n)
            dlen = os.path.getsize(p) - 8 - n
            if dlen <= 32 << 20:  # the driver's cap: ResNet50 headers are seeded raw below
                write(md, "hdr_" + f, b"\x01" + struct.pack("<I", dlen) + hdr)
            write(md, "raw4k_" + f, b"\x00" + open(p, "rb").read(4096))
    tiny_st = {"__metadata__": {"format": "xbnserve/1", "arch": "mobilenetv2"},
               "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
               "b": {"dtype": "F32", "shape": [1], "data_offsets": [16, 20]}}
    h = json.dumps(tiny_st).encode()
    write(md, "raw_tiny", b"\x00" + struct.pack("<Q", len(h)) + h + bytes(20))
    write(md, "hdr_tiny_nan", b"\x03" + struct.pack("<I", 20) + h)

    nd = f"{out}/npy"
    rng = np.random.default_rng(0)
    for shp in [(), (0,), (3,), (2, 3), (1, 3, 4, 4), (1, 1, 1, 1, 1, 1, 1, 2)]:
        a = rng.standard_normal(shp).astype("<f4")
        write(nd, "v1_" + "x".join(map(str, shp)), npy(a))
    write(nd, "v2_2x2", npy(np.ones((2, 2), "<f4"), (2, 0)))
    write(nd, "f8", npy(np.ones(3)))
    write(nd, "fortran", npy(np.asfortranarray(np.ones((2, 3), "<f4"))))


if __name__ == "__main__":
    main()
