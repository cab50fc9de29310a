"""Which ONNX Runtime configuration is fastest on this machine: the peer's best for bench/run.py.

usage: /usr/bin/python3 bench/ort_configs.py [--seconds 2] [--rounds 3] [--batches 1,8]
                                             [--threads 2] [--models resnet50-torch,...]
                                             [--out build/bench/ort-configs.json]

Per model, batch and thread count it runs bench/ort/ort_bench.js in every combination of
- the ONNX export: opset 13, opset 17 (the newest Debian's torch 1.13 exports), and opset 21
  with each GroupNorm rewritten into one GroupNormalization (bench/export_onnx.py; needs
  python3-onnx, skipped with a note without it),
- graphOptimizationLevel 'extended' or 'all' ('all' adds the NCHWc layout transform on x86),
- the session config entry session.intra_op.allow_spinning '1' (ONNX Runtime's default) or '0',
--rounds times, every round through all the configurations in a rotated order so that none
always runs first or last, and keeps the one with the best median: the lowest p50 latency at
batch 1 (the batch-1 target is latency), the most images/s at larger batches. The JSON keeps
every run; bench/run.py then runs each cell with its "best". Nothing else runs meanwhile, so
run it on a quiet machine, like the measurement it prepares.
"""
import argparse
import importlib.util
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import (BENCH, MODELS, ONNX_OPSETS, ROOT, cpu_info, describe, install_ort,  # noqa: E402
                 onnx_file, ort_run)

LEVELS = ("extended", "all")
SPINNING = ("1", "0")


def configurations():
    variants = list(ONNX_OPSETS)
    skipped = {}
    if importlib.util.find_spec("onnx") is None:
        variants.remove("opset21-gn")
        skipped["opset21-gn"] = "python3-onnx is not installed (scripts/deps.sh bench)"
    return [{"onnx": v, "graph_optimization_level": lvl, "allow_spinning": spin}
            for v in variants for lvl in LEVELS for spin in SPINNING], skipped


def search_cell(name, batch, threads, configs, a, env):
    onnx = {c["onnx"]: onnx_file(name, c["onnx"], a.models_dir) for c in configs}
    runs = []
    for rnd in range(a.rounds):
        shift = rnd * len(configs) // a.rounds
        for config in configs[shift:] + configs[:shift]:
            o = ort_run(onnx[config["onnx"]], batch, threads, a.seconds, config, env)
            runs.append({"round": rnd, "config": config, "img_per_s": o["img_per_s"],
                         "p50_ms": o["p50_ms"], "cpu_cores": o["cpu_cores"]})
    summary = []
    for config in configs:
        mine = [r for r in runs if r["config"] == config]
        summary.append({"config": config,
                        "img_per_s_median": statistics.median(r["img_per_s"] for r in mine),
                        "p50_ms_median": statistics.median(r["p50_ms"] for r in mine)})
    rank_by = "p50_ms" if batch == 1 else "img_per_s"
    if rank_by == "p50_ms":
        summary.sort(key=lambda s: s["p50_ms_median"])
    else:
        summary.sort(key=lambda s: -s["img_per_s_median"])
    return {"model": name, "batch": batch, "threads": threads, "rank_by": rank_by,
            "best": summary[0]["config"], "summary": summary, "runs": runs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--models-dir", default=os.path.join(ROOT, "build", "models"))
    ap.add_argument("--out", default=os.path.join(BENCH, "ort-configs.json"))
    a = ap.parse_args()
    env = dict(os.environ)
    os.makedirs(BENCH, exist_ok=True)
    install_ort(env)
    configs, skipped = configurations()
    for variant, why in skipped.items():
        print("ort_configs.py: %s skipped: %s" % (variant, why), file=sys.stderr)
    results = {"cpu": cpu_info(), "seconds": a.seconds, "rounds": a.rounds,
               "configurations": configs, "skipped": skipped, "cells": []}
    print("| model | batch | threads | configuration | img/s (median) | p50 ms (median) |")
    print("|---|---|---|---|---|---|")
    for name in a.models.split(","):
        for t in (int(x) for x in a.threads.split(",")):
            for b in (int(x) for x in a.batches.split(",")):
                cell = search_cell(name, b, t, configs, a, env)
                results["cells"].append(cell)
                for i, s in enumerate(cell["summary"]):
                    print("| %s | %d | %d | %s%s | %.1f | %.2f |" % (
                        name, b, t, describe(s["config"]), " (best)" if i == 0 else "",
                        s["img_per_s_median"], s["p50_ms_median"]))
                sys.stdout.flush()
                # written after every cell: an interrupted search keeps what it measured
                with open(a.out, "w") as f:
                    json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
