"""tests/integration/test_plot.py - bench/plot.py on small result files written here, in the
formats bench/run.py and bench/http_bench.py write: PNGs come out beside each JSON,
each decodes, has the size plot.py promises and is not blank; other JSON is skipped."""
import json
import os
import struct
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PLOT = os.path.join(HERE, "..", "..", "bench", "plot.py")

pytest.importorskip("matplotlib", reason="python3-matplotlib missing (scripts/deps.sh test)")
from PIL import Image  # noqa: E402


def engine_results(with_pairs=True):
    """bench/run.py's shape; without pairs, that of results from before it kept their ratios."""
    cells = []
    for model in ("resnet50-torch", "mobilenetv2-torch", "mobilenetv2-keras-100"):
        for t in (1, 2):
            for b in (1, 4, 8, 16):
                x = 20.0 * t * (1 + b / 8)
                cell = {"model": model, "batch": b, "threads": t,
                        "xbnserve": {"img_per_s": x, "p50_ms": 1e3 * b / x, "p99_ms": 1.1e3 * b / x,
                                     "gflops": 50.0},
                        "onnxruntime": {"img_per_s": x / 1.2, "p50_ms": 1.2e3 * b / x}}
                if model != "mobilenetv2-keras-100":  # a cell without the PyTorch peer
                    cell["pytorch"] = {"img_per_s": x / 2, "p50_ms": 2e3 * b / x}
                if with_pairs:
                    ips = [1.2 + 0.03 * k * (-1) ** k for k in range(5)]
                    cell["rounds"] = [{"xbnserve": cell["xbnserve"], "onnxruntime": {
                                          "img_per_s": x / r, "p50_ms": r * 1e3 * b / x}}
                                      for r in ips]
                    p50 = [1 / r for r in ips]
                    cell["ratio"] = {
                        "img_per_s": {"pairs": ips, "median": sorted(ips)[2], "min": min(ips)},
                        "p50_ms": {"pairs": p50, "median": sorted(p50)[2], "max": max(p50)}}
                cells.append(cell)
    return {"ceiling": [{"threads": 1, "sgemm_gflops": 60.0, "blas_kernel": "Haswell"}],
            "cells": cells, "avx512": False}


def http_results(with_distribution=True):
    runs = []
    for conc, rps, base in ((1, 25.0, 30.0), (8, 80.0, 90.0), (32, 85.0, 350.0)):
        run = {"concurrency": conc, "requests": int(rps * 10), "req_per_s": rps, "errors": 0,
               "p50_ms": base, "p99_ms": base * 2, "p999_ms": base * 3,
               "batch_sizes": {"1": 10, "4": conc, "8": 3 * conc}}
        if with_distribution:
            run["latency_ms"] = [[p, base * (1 + p / 50)] for p in
                                 (0, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100)]
        runs.append(run)
    return {"ready_s": 0.3, "runs": runs, "model": "mobilenetv2-torch", "image": "photo.jpg",
            "batch": 8, "threads": 2, "client_resize": 0}


def png_size(path):
    """(width, height) from the PNG signature and IHDR chunk."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", path
    return struct.unpack(">II", head[16:24])


def check_png(path, size):
    assert png_size(path) == size
    with Image.open(path) as im:
        im.load()  # decodes every chunk: a truncated file fails here
        assert im.size == size
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours and len(colours) > 50, "an almost blank image"


def run_plot(*args):
    return subprocess.run(["/usr/bin/python3", PLOT, *args], capture_output=True, text=True,
                          timeout=120)


def test_plots_beside_the_json(tmp_path):
    (tmp_path / "engine.json").write_text(json.dumps(engine_results()))
    (tmp_path / "engine-old.json").write_text(json.dumps(engine_results(with_pairs=False)))
    (tmp_path / "http-mobilenetv2-torch.json").write_text(json.dumps(http_results()))
    (tmp_path / "http-old.json").write_text(json.dumps(http_results(with_distribution=False)))
    (tmp_path / "other.json").write_text(json.dumps({"something": "else"}))
    r = run_plot(str(tmp_path))
    assert r.returncode == 0, r.stderr
    check_png(tmp_path / "engine.png", (1200, 800))
    check_png(tmp_path / "engine-ratio.png", (1200, 800))
    check_png(tmp_path / "engine-old.png", (1200, 800))  # no pairs: no ratio plot
    check_png(tmp_path / "http-mobilenetv2-torch.png", (1200, 500))
    check_png(tmp_path / "http-old.png", (1200, 500))  # p50 / p99 / p99.9 only
    assert not (tmp_path / "other.png").exists()
    assert "other.json is not a bench/run.py or bench/http_bench.py result" in r.stderr
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "engine-old.png", "engine-ratio.png", "engine.png", "http-mobilenetv2-torch.png",
        "http-old.png"]


def test_single_file_and_errors(tmp_path):
    f = tmp_path / "engine.json"
    f.write_text(json.dumps(engine_results()))
    r = run_plot(str(f))
    assert r.returncode == 0, r.stderr
    check_png(tmp_path / "engine.png", (1200, 800))
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_plot(str(empty))
    assert r.returncode != 0 and "no JSON results" in r.stderr
    (tmp_path / "broken.json").write_text('{"cells": [')
    assert run_plot(str(tmp_path / "broken.json")).returncode != 0
