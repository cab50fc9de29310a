"""PyTorch eager on a model file: the second peer of bench/run.py.

usage: /usr/bin/python3 bench/torch_bench.py MODEL.safetensors BATCH THREADS SECONDS
Prints one JSON line: img_per_s, p50_ms, p99_ms.
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import xbnweights as xw  # noqa: E402


def main():
    path, batch, threads, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    torch.set_num_threads(threads)
    model, meta = xw.model_from_file(path)
    s = int(meta.get("input_size", "224"))
    x = torch.rand(batch, 3, s, s) * 2 - 1
    lat = []
    with torch.inference_mode():
        for _ in range(2):
            model(x)
        t0 = last = time.perf_counter()
        while last - t0 < seconds or len(lat) < 3:
            model(x)
            now = time.perf_counter()
            lat.append((now - last) * 1e3)
            last = now
    lat.sort()
    print(json.dumps({"peer": "pytorch", "version": torch.__version__, "batch": batch,
                      "threads": threads, "iterations": len(lat),
                      "img_per_s": round(batch * len(lat) / (last - t0), 2),
                      "p50_ms": round(lat[len(lat) // 2], 3),
                      "p99_ms": round(lat[int(len(lat) * 0.99)], 3)}))


if __name__ == "__main__":
    main()
