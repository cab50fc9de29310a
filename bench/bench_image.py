#!/usr/bin/python3
"""bench_image.py - decode + preprocess time per image, xbnserve (C) vs PIL + torchvision.

Usage: /usr/bin/python3 bench/bench_image.py [--bin build/xbnserve] [--runs N]

Builds two test files in build/bench_images/ from a real photo shipped by Debian
(lomiri-wallpapers-20.04, else matplotlib's grace_hopper.jpg upscaled): a 12 MP
4000x3000 JPEG and a 500x375 JPEG (quality 90, 4:2:0, what cameras and web pages send).
Both sides get the encoded bytes in memory and produce the normalised [3,224,224] float
tensor (Resize(256) + CenterCrop(224), ImageNet mean/std, EXIF applied), one thread each,
in the same run. C is timed inside the process (`preprocess --time N`); Python with
time.perf_counter around the whole PIL + torchvision pipeline.
"""
import argparse
import io
import os
import subprocess
import time

from PIL import Image, ImageOps
import torch
import torchvision.transforms as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ["/usr/share/backgrounds/Painting-Colors_by__herobrine7gamer.jpg",
           "/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg"]


def make_files(outdir):
    os.makedirs(outdir, exist_ok=True)
    src = next(p for p in SOURCES if os.path.exists(p))
    im = Image.open(src).convert("RGB")
    files = {}
    for name, size in [("12mp_4000x3000.jpg", (4000, 3000)), ("500x375.jpg", (500, 375))]:
        path = os.path.join(outdir, name)
        if not os.path.exists(path):
            im.resize(size, Image.LANCZOS).save(path, quality=90, subsampling=2)
        files[name] = path
    return files


TF = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])


def pil_once(data):
    im = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    return TF(im)


def time_pil(path, runs):
    with open(path, "rb") as f:
        data = f.read()
    pil_once(data)
    t = time.perf_counter()
    for _ in range(runs):
        pil_once(data)
    return (time.perf_counter() - t) / runs * 1e3


def time_c(binp, path, runs, extra=()):
    out = subprocess.run([binp, "preprocess", path, "-o", "/dev/null", "--time", str(runs),
                          *extra], check=True, capture_output=True, text=True).stdout
    return float(out.split()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/xbnserve"))
    ap.add_argument("--runs", type=int, default=0, help="default: 10 for 12 MP, 200 small")
    a = ap.parse_args()
    torch.set_num_threads(1)
    files = make_files(os.path.join(ROOT, "build/bench_images"))
    print(f"{'image':22} {'C ms':>8} {'C full ms':>10} {'PIL+tv ms':>10} {'PIL/C':>7}")
    for name, path in files.items():
        runs = a.runs or (10 if "12mp" in name else 200)
        c = time_c(a.bin, path, runs)
        cfull = time_c(a.bin, path, runs, ["--no-dct"])
        p = time_pil(path, runs)
        print(f"{name:22} {c:8.2f} {cfull:10.2f} {p:10.2f} {p / c:7.1f}x")
    print("C ms: default (DCT scaling when the image is big enough); C full ms: --no-dct")


if __name__ == "__main__":
    main()
