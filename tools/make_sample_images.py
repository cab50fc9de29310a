#!/usr/bin/env python3
"""make_sample_images.py - draw the example images the README and docs/api.md send:
docs/examples/cat.jpg (a cartoon cat, 320x240 JPEG) and docs/examples/dog.png (a cartoon
dog, 256x256 PNG). They are drawn here from code, with no third-party content, so they
carry the project's own license; the script is their source. Deterministic: rerunning it
with the same Pillow gives the same pixels.

    /usr/bin/python3 tools/make_sample_images.py [OUT_DIR]
"""
import os
import sys

from PIL import Image, ImageDraw


def cat(w=320, h=240):
    im = Image.new("RGB", (w, h), (120, 170, 210))
    d = ImageDraw.Draw(im)
    d.rectangle([0, 180, w, h], fill=(90, 140, 70))  # grass
    cx, cy = 160, 120
    fur = (225, 140, 60)
    d.polygon([(100, 90), (115, 25), (145, 75)], fill=fur)  # ears
    d.polygon([(220, 90), (205, 25), (175, 75)], fill=fur)
    d.ellipse([cx - 70, cy - 60, cx + 70, cy + 60], fill=fur)  # head
    for dx in (-30, 30):  # eyes
        d.ellipse([cx + dx - 12, cy - 25, cx + dx + 12, cy - 5], fill=(250, 250, 240))
        d.ellipse([cx + dx - 4, cy - 24, cx + dx + 4, cy - 6], fill=(20, 20, 20))
    d.polygon([(cx - 8, cy + 5), (cx + 8, cy + 5), (cx, cy + 15)], fill=(230, 110, 130))
    for s in (-1, 1):  # whiskers
        for k in (-8, 0, 8):
            d.line([(cx + s * 20, cy + 18), (cx + s * 75, cy + 12 + k)], fill=(40, 30, 20), width=2)
    for x in range(cx - 50, cx + 60, 25):  # stripes
        d.line([(x, cy - 55), (x + 5, cy - 40)], fill=(170, 90, 30), width=4)
    return im


def dog(w=256, h=256):
    im = Image.new("RGB", (w, h), (235, 225, 200))
    d = ImageDraw.Draw(im)
    fur, dark = (160, 110, 70), (90, 60, 40)
    d.ellipse([48, 60, 208, 220], fill=fur)  # head
    d.ellipse([20, 50, 80, 170], fill=dark)  # ears
    d.ellipse([176, 50, 236, 170], fill=dark)
    d.ellipse([90, 150, 166, 210], fill=(210, 180, 150))  # muzzle
    d.ellipse([112, 150, 144, 172], fill=(30, 25, 25))  # nose
    for x in (95, 161):  # eyes
        d.ellipse([x - 10, 110, x + 10, 130], fill=(30, 25, 25))
    d.arc([105, 170, 151, 200], 20, 160, fill=(30, 25, 25), width=3)  # mouth
    return im


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..",
                                                             "docs", "examples")
    os.makedirs(out, exist_ok=True)
    cat().save(os.path.join(out, "cat.jpg"), "JPEG", quality=90)
    dog().save(os.path.join(out, "dog.png"), "PNG", optimize=True)


if __name__ == "__main__":
    main()
