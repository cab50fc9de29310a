"""Engine benchmark: xbnserve against ONNX Runtime and PyTorch eager, same weights, same run.

usage: /usr/bin/python3 bench/run.py [--seconds S] [--batches 1,4,8,16] [--threads 1,2]
                                     [--models resnet50-torch,...] [--rounds R] [--avx512]
                                     [--out FILE]

For every model, batch size and thread count it runs `xbnserve bench`, then the ONNX
Runtime peer (bench/ort/ort_bench.js on an ONNX export of the same weights) and PyTorch
eager (bench/torch_bench.py), one after the other so they never share the cores (with
--rounds R, R xbnserve / ONNX Runtime pairs, reporting the pair with the median ratio), and
prints a Markdown table of images/s, p50 latency and the ratio xbnserve / peer. The machine's
sgemm ceiling is measured in the same run. --avx512 unsets OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE for every process (OpenBLAS then picks its AVX-512 kernels); say so when
reporting. Results also go to --out as JSON (default build/bench/engine.json).
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PY = "/usr/bin/python3"
MODELS = ["resnet50-torch", "resnet50-keras", "mobilenetv2-torch", "mobilenetv2-keras-100"]


def run_json(cmd, env):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    if r.returncode:
        raise SystemExit("failed: %s\n%s" % (" ".join(cmd), r.stderr))
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--batches", default="1,4,8,16")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--models-dir", default=os.path.join(ROOT, "build", "models"))
    ap.add_argument("--avx512", action="store_true")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--rounds", type=int, default=1,
                    help="xbnserve / ONNX Runtime pairs per cell; the pair with the median "
                    "ratio is reported (use an odd number)")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "bench", "engine.json"))
    a = ap.parse_args()
    env = dict(os.environ)
    if a.avx512:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    sgemm = os.path.join(ROOT, "build", "bench", "sgemm_ceiling")
    os.makedirs(os.path.dirname(sgemm), exist_ok=True)
    subprocess.run(["cc", "-O2", "-o", sgemm, "bench/sgemm_ceiling.c"] +
                   subprocess.check_output(["pkg-config", "--cflags", "--libs", "openblas"],
                                           text=True).split(), check=True, cwd=ROOT)
    ort_dir = os.path.join(ROOT, "bench", "ort")
    if not os.path.isdir(os.path.join(ort_dir, "node_modules", "onnxruntime-node")):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=ort_dir, check=True,
                       env=dict(env, ONNXRUNTIME_NODE_INSTALL="skip"))
    threads = [int(t) for t in a.threads.split(",")]
    results = {"ceiling": [run_json([sgemm, str(t)], env) for t in threads], "cells": []}
    for c in results["ceiling"]:
        print("sgemm ceiling, %d thread(s): %.1f GFLOP/s (%s)" % (c["threads"], c["sgemm_gflops"],
                                                               c["blas_kernel"]), file=sys.stderr)
    for name in a.models.split(","):
        path = os.path.join(a.models_dir, name + ".safetensors")
        onnx = os.path.join(ROOT, "build", "bench", name + ".onnx")
        if not os.path.exists(onnx) or os.path.getmtime(onnx) < os.path.getmtime(path):
            subprocess.run([PY, "bench/export_onnx.py", path, onnx], check=True, cwd=ROOT)
        for t in threads:
            for b in [int(x) for x in a.batches.split(",")]:
                cell = {"model": name, "batch": b, "threads": t, "rounds": []}
                for _ in range(a.rounds):
                    x = run_json(["build/xbnserve", "bench", "--model", path, "--batch", str(b),
                                  "--threads", str(t), "--seconds", str(a.seconds)], env)
                    o = run_json(["node", "bench/ort/ort_bench.js", onnx, str(b), str(t),
                                  str(a.seconds), "224"], env)
                    cell["rounds"].append({"xbnserve": x, "onnxruntime": o})
                # the pair with the median ratio (the machine drifts between pairs, less within)
                mid = sorted(cell["rounds"], key=lambda r: r["xbnserve"]["img_per_s"] /
                             r["onnxruntime"]["img_per_s"])[len(cell["rounds"]) // 2]
                cell.update(mid)
                if not a.no_torch:
                    cell["pytorch"] = run_json([PY, "bench/torch_bench.py", path, str(b), str(t),
                                                str(a.seconds)], env)
                results["cells"].append(cell)
                x = cell["xbnserve"]
                line = "%-22s b=%-2d t=%d  xbnserve %7.2f img/s p50 %7.2f ms  %5.1f GFLOP/s" % (
                    name, b, t, x["img_per_s"], x["p50_ms"], x["gflops"])
                for peer in ("onnxruntime", "pytorch"):
                    if peer in cell:
                        line += "  | %s %7.2f img/s (x%.2f)" % (
                            peer, cell[peer]["img_per_s"], x["img_per_s"] / cell[peer]["img_per_s"])
                print(line, file=sys.stderr)
    results["avx512"] = a.avx512
    with open(a.out, "w") as f:
        json.dump(results, f, indent=1)
    print_table(results)


def print_table(res):
    ceil = {c["threads"]: c["sgemm_gflops"] for c in res["ceiling"]}
    print("| model | batch | threads | xbnserve img/s | p50 ms | p99 ms | GFLOP/s (% of sgemm) "
          "| ORT img/s | ORT p50 ms | x ORT | PyTorch img/s | x PyTorch |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for c in res["cells"]:
        x, o, p = c["xbnserve"], c["onnxruntime"], c.get("pytorch")
        print("| %s | %d | %d | %.1f | %.1f | %.1f | %.1f (%.0f%%) | %.1f | %.1f | %.2f | %s | %s |" % (
            c["model"], c["batch"], c["threads"], x["img_per_s"], x["p50_ms"], x["p99_ms"],
            x["gflops"], 100 * x["gflops"] / ceil[c["threads"]], o["img_per_s"], o["p50_ms"],
            x["img_per_s"] / o["img_per_s"], "%.1f" % p["img_per_s"] if p else "-",
            "%.2f" % (x["img_per_s"] / p["img_per_s"]) if p else "-"))


if __name__ == "__main__":
    main()
