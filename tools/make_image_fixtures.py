#!/usr/bin/python3
"""make_image_fixtures.py - generate the image test corpus into a build directory.

Usage: /usr/bin/python3 tools/make_image_fixtures.py [OUTDIR]   (default build/image_fixtures)

Writes edge-case JPEG and PNG files (never committed: they are regenerated on demand) and
manifest.json, a list of cases read by tests/integration/test_images.py:
  {"name", "file", "args": [extra `xbnserve preprocess` flags],
   "ref": {"exif": bool, "cmyk_plain": bool, "file"?: equivalent file for the oracle}, or
   "error": "substring of the expected message"}    expect a refusal.
Real photos from Debian packages (matplotlib sample data, lomiri wallpapers) are listed by
path when installed. Content is derived from grace_hopper.jpg when present (a real photo:
edges, skin, noise) and from a seeded synthetic pattern otherwise, so the corpus is
deterministic on every machine.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
from PIL import Image

PHOTO_DIRS = ["/usr/share/matplotlib/mpl-data/sample_data", "/usr/share/backgrounds"]
HOPPER = "/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg"


def base_image(w, h, seed=0):
    """A w x h RGB image with photo-like content."""
    if os.path.exists(HOPPER):
        return Image.open(HOPPER).convert("RGB").resize((w, h), Image.BILINEAR)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([x * 255 / max(w - 1, 1), y * 255 / max(h - 1, 1), (x + y) % 256], -1)
    a = a + rng.normal(0, 12, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")


def png_raw(path, arr, color_type, bit_depth):
    """Minimal PNG writer for what PIL cannot write (16-bit RGB/RGBA/LA)."""
    h, w = arr.shape[:2]
    dt = ">u2" if bit_depth == 16 else "u1"
    raw = b"".join(b"\0" + arr[y].astype(dt).tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
                + chunk(b"IEND", b""))


def exif_bytes(orientation):
    ex = Image.Exif()
    ex[0x0112] = orientation
    return ex.tobytes()


def strip_app14(data):
    """Remove Adobe APP14 segments from a JPEG (CMYK then reads as plain, non-inverted)."""
    out, i = bytearray(data[:2]), 2
    while i < len(data):
        if data[i] != 0xFF:
            break
        m = data[i + 1]
        if m == 0xDA:  # start of scan: copy the rest
            out += data[i:]
            return bytes(out)
        n = struct.unpack(">H", data[i + 2:i + 4])[0]
        if m != 0xEE:
            out += data[i:i + 2 + n]
        i += 2 + n
    out += data[i:]
    return bytes(out)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "build/image_fixtures"
    os.makedirs(out, exist_ok=True)
    cases = []

    def add(name, ref=None, args=(), error=None, file=None, ref_file=None):
        c = {"name": name, "file": file or os.path.join(out, name), "args": list(args)}
        if error is not None:
            c["error"] = error
        else:
            c["ref"] = {"exif": True, "cmyk_plain": False, **(ref or {})}
            if ref_file:  # the oracle reads an equivalent file (PIL cannot read this one)
                c["ref"]["file"] = ref_file
        cases.append(c)

    def save(name, im, **kw):
        im.save(os.path.join(out, name), **kw)
        return name

    # Real photos and drawings shipped by Debian packages.
    for d in PHOTO_DIRS:
        if os.path.isdir(d):
            for f in sorted(os.listdir(d)):
                if f.lower().endswith((".jpg", ".jpeg", ".png")):
                    add("photo:" + f, file=os.path.join(d, f))

    img = base_image(640, 480)
    # JPEG variants
    add(save("baseline_420.jpg", img, quality=90, subsampling=2))
    add(save("baseline_422.jpg", img, quality=90, subsampling=1))
    add(save("baseline_444.jpg", img, quality=95, subsampling=0))
    add(save("progressive.jpg", img, quality=85, progressive=True))
    add(save("gray.jpg", img.convert("L"), quality=90))
    add(save("cmyk_adobe.jpg", img.convert("CMYK"), quality=95))
    # Plain CMYK (no Adobe marker: the stored values are the ink). Pillow writes CMYK
    # Adobe-inverted (stores 255 - v), so the ink wanted is saved as 255 - ink, then the
    # marker is stripped. The ink has all four channels varied, K at most 120, so the image
    # has real colour (img.convert("CMYK") has K = 0, which read plain is solid black).
    rgb = np.asarray(img).astype(np.int32)
    k = (np.arange(640)[None, :] * 120 // 639 + np.zeros((480, 1), np.int32))
    ink = np.dstack([255 - rgb[..., 0], 255 - rgb[..., 1], 255 - rgb[..., 2], k])
    cmyk = Image.fromarray((255 - ink).astype(np.uint8), "CMYK")
    cmyk.save(os.path.join(out, "cmyk_inverted_ink.jpg"), quality=95)
    with open(os.path.join(out, "cmyk_inverted_ink.jpg"), "rb") as f:
        plain = strip_app14(f.read())
    os.remove(os.path.join(out, "cmyk_inverted_ink.jpg"))
    with open(os.path.join(out, "cmyk_plain.jpg"), "wb") as f:
        f.write(plain)
    add("cmyk_plain.jpg", ref={"cmyk_plain": True})
    if shutil.which("jpegtran"):
        src = os.path.join(out, "baseline_420.jpg")
        for name, flags in [("restart.jpg", ["-restart", "1"]),
                            ("restart_progressive.jpg", ["-restart", "2", "-progressive"]),
                            ("arithmetic.jpg", ["-arithmetic"])]:
            subprocess.run(["jpegtran", *flags, "-outfile", os.path.join(out, name), src],
                           check=True)
            # jpegtran transcodes losslessly: same coefficients, so the same pixels as src;
            # Pillow cannot read arithmetic-coded files, libjpeg-turbo (and xbnserve) can.
            add(name, ref_file=src if "arithmetic" in name else None)
    if shutil.which("cjpeg"):
        ppm = os.path.join(out, "src.ppm")
        img.save(ppm)
        for name, flags in [("sample_411.jpg", ["-sample", "4x1"]),
                            ("sample_440.jpg", ["-sample", "1x2"]),
                            ("restart_rows.jpg", ["-restart", "3", "-quality", "80"])]:
            subprocess.run(["cjpeg", *flags, "-outfile", os.path.join(out, name), ppm], check=True)
            add(name)
        os.remove(ppm)
    # EXIF orientation 1..8, JPEG (APP1) and PNG (eXIf); non-square so mistakes show
    small = base_image(300, 200)
    for o in range(1, 9):
        add(save(f"exif_{o}.jpg", small, quality=92, exif=exif_bytes(o)))
        add(save(f"exif_{o}.png", small, exif=exif_bytes(o)))
    add("exif_6_off.jpg", ref={"exif": False}, args=["--no-exif"],
        file=os.path.join(out, "exif_6.jpg"))
    # sizes and aspect ratios
    add(save("1x1.jpg", base_image(1, 1), quality=90))
    add(save("1x1.png", base_image(1, 1)))
    add(save("1x5000.png", base_image(1, 5000)))
    add(save("5000x1.png", base_image(5000, 1)))
    add(save("4000x30.jpg", base_image(4000, 30), quality=90))
    add(save("30x2000.jpg", base_image(30, 2000), quality=90))
    add(save("small_100x80.png", base_image(100, 80)))
    add("small_pad.png", args=["--resize", "160", "--crop", "224"],
        file=os.path.join(out, "small_100x80.png"))
    add("pad_one_side.jpg", args=["--resize", "200", "--crop", "224"],
        file=os.path.join(out, "4000x30.jpg"))
    add("direct.jpg", args=["--mode", "direct", "--crop", "224"],
        file=os.path.join(out, "baseline_420.jpg"))
    add("odd_offsets.png", args=["--resize", "255", "--crop", "224"],
        file=os.path.join(out, "small_100x80.png"))
    # one axis or both already at the resized size (the passes that only copy)
    add(save("short_side_256.jpg", base_image(256, 300), quality=90))
    add(save("long_side_only.png", base_image(300, 256)))
    add(save("model_size.jpg", base_image(224, 224), quality=90),
        args=["--mode", "direct", "--crop", "224"])
    add(save("exif_6_256.jpg", base_image(300, 256), quality=92, exif=exif_bytes(6)))
    # PNG variants
    arr = np.asarray(img)
    add(save("rgb8.png", img))
    add(save("gray8.png", img.convert("L")))
    add(save("gray1.png", img.convert("1")))
    add(save("palette.png", img.convert("P", palette=Image.ADAPTIVE, colors=200)))
    add(save("palette4.png", img.convert("P", palette=Image.ADAPTIVE, colors=16), bits=4))
    pal = img.convert("P", palette=Image.ADAPTIVE, colors=64)
    add(save("palette_trns.png", pal, transparency=3))
    alpha = (np.add.outer(np.arange(480), np.arange(640)) * 255 // 1118).astype(np.uint8)
    rgba = np.dstack([arr, alpha])
    add(save("rgba.png", Image.fromarray(rgba, "RGBA")))
    add(save("la.png", Image.fromarray(np.dstack([arr[..., 0], alpha]), "LA")))
    a16 = arr.astype(np.uint16) * 257 + 100
    png_raw(os.path.join(out, "rgb16.png"), a16, 2, 16)
    add("rgb16.png")
    png_raw(os.path.join(out, "rgba16.png"), np.dstack([a16, alpha.astype(np.uint16) * 257]), 6,
            16)
    add("rgba16.png")
    png_raw(os.path.join(out, "gray16.png"), a16[..., 1], 0, 16)
    add("gray16.png")
    # refusals
    with open(os.path.join(out, "baseline_420.jpg"), "rb") as f:
        jpg = f.read()
    with open(os.path.join(out, "rgb8.png"), "rb") as f:
        png = f.read()
    for name, data in [("truncated.jpg", jpg[:len(jpg) // 2]), ("truncated.png", png[:len(png) // 2]),
                       ("header_only.jpg", jpg[:300]), ("empty.bin", b""),
                       ("garbage.bin", bytes(range(256)) * 4)]:
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    add("truncated.jpg", error="Premature end of JPEG file")
    add("truncated.png", error="PNG")
    add("header_only.jpg", error="JPEG")
    add("empty.bin", error="empty")
    add("garbage.bin", error="unrecognised data")
    add(save("gif.gif", small), error="unsupported image format GIF")
    add(save("bmp.bmp", small), error="unsupported image format BMP")
    add("too_many_pixels.jpg", args=["--max-pixels", "300000"], error="over the limit",
        file=os.path.join(out, "baseline_420.jpg"))
    add("too_many_bytes.png", args=["--max-bytes", "1000"], error="over the limit",
        file=os.path.join(out, "rgb8.png"))
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(cases, f, indent=1)
    print(f"{len(cases)} cases in {out}/manifest.json")


if __name__ == "__main__":
    main()
