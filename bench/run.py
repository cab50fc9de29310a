"""Engine benchmark: xbnserve against ONNX Runtime and PyTorch eager, same weights, same run.

usage: /usr/bin/python3 bench/run.py [--seconds 3] [--slices 6] [--batches 1,8] [--threads 2]
                                     [--rounds 5] [--models resnet50-torch,...] [--no-torch]
                                     [--avx512] [--ort-configs FILE] [--out FILE]

For every model, batch size and thread count it runs --rounds pairs of `xbnserve bench` and
the ONNX Runtime peer (bench/ort/ort_bench.js on an ONNX export of the same weights), then
PyTorch eager once (bench/torch_bench.py; context, not a target; --no-torch skips it). In a
pair both engines are loaded and warm, and they take turns: --seconds each, in --slices
slices, the order alternating (x o, o x, x o, ...), never both at once; each slice starts with
one untimed batch. This shared machine drifts by 10-20% between minutes (a 7 ms network's
3-second runs one after the other gave pairs 1.04-2.49x apart in one run), so each pair gives
a ratio of two measurements taken over the same seconds, and a cell reports the MEDIAN and
the MINIMUM of its pairs' xbnserve / ONNX Runtime images/s, and the median and the WORST
(maximum) of xbnserve p50 / ONNX Runtime p50 latency (lower is better). The per-peer figures
of the table are the medians of that peer's rounds; every round's raw figures stay in the JSON.

ONNX Runtime runs, per model, batch and thread count, the configuration bench/ort_configs.py
found fastest on this machine (--ort-configs, default build/bench/ort-configs.json); a cell it
did not search, or a run without that file, gets ORT_DEFAULT: the opset-13 export, graph
optimisation 'all', intra-op spinning on (ONNX Runtime's own defaults).

Above the table it prints the CPU (model name, family and model numbers; avx2, fma, avx512f
from /proc/cpuinfo), the sgemm ceiling (bench/sgemm_ceiling.c, OpenBLAS) and the FMA peak
(build/fmapeak) for each thread count. --avx512 unsets OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
for every process and, on a CPU with AVX-512F, names OpenBLAS's AVX-512 kernels (avx512_env:
the ceiling and PyTorch change, xbnserve does not); say so when reporting. Results also go to
--out as JSON (default build/bench/engine.json).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PY = "/usr/bin/python3"
BENCH = os.path.join(ROOT, "build", "bench")
MODELS = ["resnet50-torch", "resnet50-keras", "mobilenetv2-torch", "mobilenetv2-keras-100"]
# ONNX exports bench/export_onnx.py writes, by the name a configuration gives them
ONNX_OPSETS = {"opset13": 13, "opset17": 17, "opset21-gn": 21}
ORT_DEFAULT = {"onnx": "opset13", "graph_optimization_level": "all", "allow_spinning": "1"}
ISA_FLAGS = ("avx2", "fma", "avx512f")


def run_json(cmd, env):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    if r.returncode:
        raise SystemExit("failed: %s\n%s" % (" ".join(cmd), r.stderr))
    return json.loads(r.stdout.strip().splitlines()[-1])


def cpu_info():
    """The model name and the ISA flags that decide which kernels run, from /proc/cpuinfo."""
    info = {"model name": "unknown", "cpu family": "?", "model": "?", "flags": ""}
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() in info and value.strip() and info[key.strip()] in ("unknown", "?", ""):
                info[key.strip()] = value.strip()
    flags = set(info["flags"].split())
    # a virtual machine's model name may be generic ("Intel(R) Xeon(R) Processor"): the
    # family and model numbers say which generation it is
    model = "%s (family %s, model %s)" % (info["model name"], info["cpu family"], info["model"])
    return {"model": model, **{flag: flag in flags for flag in ISA_FLAGS},
            "avx512_bf16": "avx512_bf16" in flags}


def avx512_env(env):
    """--avx512: OpenBLAS on the CPU's AVX-512 kernels in env, for the benchmark's processes.
    OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are dropped; where the CPU has AVX-512F the core
    type is then named, because OpenBLAS's own detection does not know every AVX-512 CPU (on
    an Emerald Rapids Xeon it picked its SSE3 "Prescott" kernels: sgemm 47.7 GFLOP/s on 2
    threads, against 200.9-223.9 with "Cooperlake")."""
    env = dict(env)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    cpu = cpu_info()
    if cpu["avx512f"]:
        env["OPENBLAS_CORETYPE"] = "Cooperlake" if cpu["avx512_bf16"] else "SkylakeX"
    return env


def install_ort(env):
    ort_dir = os.path.join(ROOT, "bench", "ort")
    if not os.path.isdir(os.path.join(ort_dir, "node_modules", "onnxruntime-node")):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=ort_dir, check=True,
                       env=dict(env, ONNXRUNTIME_NODE_INSTALL="skip"))


def onnx_file(name, variant, models_dir):
    """The model's ONNX export for a configuration's "onnx" variant, exported when missing
    or older than the model file or the exporter."""
    src = os.path.join(models_dir, name + ".safetensors")
    out = os.path.join(BENCH, "%s-%s.onnx" % (name, variant))
    exporter = os.path.join(ROOT, "bench", "export_onnx.py")
    if not os.path.exists(out) or os.path.getmtime(out) < max(os.path.getmtime(src),
                                                              os.path.getmtime(exporter)):
        # torch's exporter warns at length on every export: shown only when it fails
        r = subprocess.run([PY, exporter, src, out, "--opset", str(ONNX_OPSETS[variant])],
                           cwd=ROOT, capture_output=True, text=True)
        if r.returncode:
            raise SystemExit("export of %s (%s) failed:\n%s" % (name, variant, r.stderr))
    return out


def ort_cmd(onnx, batch, threads, seconds, config, slices=0):
    return ["node", "bench/ort/ort_bench.js", onnx, str(batch), str(threads), str(seconds),
            "224", config["graph_optimization_level"], config["allow_spinning"], str(slices)]


def ort_run(onnx, batch, threads, seconds, config, env):
    return run_json(ort_cmd(onnx, batch, threads, seconds, config), env)


def sliced_pair(cmds, slices, env):
    """Start every command of cmds (each with --slices support), wait until all are loaded and
    warm, then give them `slices` turns each, the order reversed every turn; returns each
    one's last JSON line."""
    procs = []
    try:
        for cmd in cmds:
            err = tempfile.TemporaryFile(mode="w+")
            procs.append((subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           stderr=err, text=True, cwd=ROOT, env=env), err, cmd))

        def expect(p, key):
            line = p[0].stdout.readline()
            if not line.startswith('{"%s"' % key):
                p[1].seek(0)
                raise SystemExit("failed: %s\n%s%s" % (" ".join(p[2]), line, p[1].read()))

        for p in procs:
            expect(p, "ready")
        for k in range(slices):
            for p in (procs if k % 2 == 0 else procs[::-1]):
                p[0].stdin.write("go\n")
                p[0].stdin.flush()
                expect(p, "slice")
        outs = []
        for p in procs:
            p[0].stdin.close()
            out = p[0].stdout.read()  # not communicate(): readline() may hold the last line
            p[0].wait(timeout=300)
            if p[0].returncode or not out.strip():
                p[1].seek(0)
                raise SystemExit("failed (%s): %s\n%s" % (p[0].returncode, " ".join(p[2]), p[1].read()))
            outs.append(json.loads(out.strip().splitlines()[-1]))
        return outs
    finally:
        for p in procs:
            if p[0].poll() is None:
                p[0].kill()
                p[0].wait()
            p[1].close()


def describe(config):
    return "%s, %s, spin %s" % (config["onnx"], config["graph_optimization_level"],
                                config["allow_spinning"])


def load_ort_configs(path):
    """{(model, batch, threads): best configuration} from bench/ort_configs.py's JSON."""
    if not path or not os.path.exists(path):
        return {}
    with open(path) as f:
        search = json.load(f)
    return {(c["model"], c["batch"], c["threads"]): c["best"] for c in search["cells"]}


def fma_peaks(env):
    """build/fmapeak's peak alone: [{isa, threads, gflops_max, gflops_median}], 1 and 2 threads."""
    out = os.path.join(BENCH, "fmapeak-peak.json")
    subprocess.run([os.path.join(ROOT, "build", "fmapeak"), "--seconds", "2", "--json", out],
                   check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)["peak"]


def sgemm_ceilings(threads, env):
    sgemm = os.path.join(BENCH, "sgemm_ceiling")
    subprocess.run(["cc", "-O2", "-o", sgemm, "bench/sgemm_ceiling.c"] +
                   subprocess.check_output(["pkg-config", "--cflags", "--libs", "openblas"],
                                           text=True).split(), check=True, cwd=ROOT)
    return [run_json([sgemm, str(t)], env) for t in threads]


def ratios(rounds):
    """The per-pair ratios of a cell and their median and min (images/s, higher is better)
    or median and max (p50 latency, lower is better)."""
    ips = [r["xbnserve"]["img_per_s"] / r["onnxruntime"]["img_per_s"] for r in rounds]
    p50 = [r["xbnserve"]["p50_ms"] / r["onnxruntime"]["p50_ms"] for r in rounds]
    return {"img_per_s": {"pairs": ips, "median": statistics.median(ips), "min": min(ips)},
            "p50_ms": {"pairs": p50, "median": statistics.median(p50), "max": max(p50)}}


def medians(runs, keys):
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3, help="each engine's time per pair")
    ap.add_argument("--slices", type=int, default=6, help="turns per engine in a pair")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--models-dir", default=os.path.join(ROOT, "build", "models"))
    ap.add_argument("--avx512", action="store_true")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--rounds", type=int, default=5,
                    help="xbnserve / ONNX Runtime pairs per cell (at least 5 for a claim)")
    ap.add_argument("--ort-configs", default=os.path.join(BENCH, "ort-configs.json"),
                    help="bench/ort_configs.py's results; '' runs ORT_DEFAULT everywhere")
    ap.add_argument("--out", default=os.path.join(BENCH, "engine.json"))
    a = ap.parse_args()
    env = avx512_env(os.environ) if a.avx512 else dict(os.environ)
    os.makedirs(BENCH, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    install_ort(env)
    threads = [int(t) for t in a.threads.split(",")]
    best = load_ort_configs(a.ort_configs)
    results = {"cpu": cpu_info(), "ceiling": sgemm_ceilings(threads, env),
               "fma_peak": fma_peaks(env),
               "avx512": a.avx512, "seconds": a.seconds, "slices": a.slices,
               "rounds": a.rounds,
               "ort_configs": a.ort_configs if best else None, "cells": []}
    print_header(results, sys.stderr)
    for name in a.models.split(","):
        path = os.path.join(a.models_dir, name + ".safetensors")
        for t in threads:
            for b in [int(x) for x in a.batches.split(",")]:
                config = best.get((name, b, t), ORT_DEFAULT)
                onnx = onnx_file(name, config["onnx"], a.models_dir)
                cell = {"model": name, "batch": b, "threads": t, "ort_config": config,
                        "rounds": []}
                xcmd = ["build/xbnserve", "bench", "--model", path, "--batch", str(b),
                        "--threads", str(t), "--seconds", str(a.seconds), "--slices",
                        str(a.slices)]
                ocmd = ort_cmd(onnx, b, t, a.seconds, config, a.slices)
                for _ in range(a.rounds):
                    x, o = sliced_pair([xcmd, ocmd], a.slices, env)
                    cell["rounds"].append({"xbnserve": x, "onnxruntime": o})
                cell["ratio"] = ratios(cell["rounds"])
                cell["xbnserve"] = dict(medians([r["xbnserve"] for r in cell["rounds"]],
                                                ("img_per_s", "p50_ms", "p99_ms", "gflops")),
                                        gemm=cell["rounds"][0]["xbnserve"]["gemm"])
                cell["onnxruntime"] = medians([r["onnxruntime"] for r in cell["rounds"]],
                                              ("img_per_s", "p50_ms", "p99_ms"))
                if not a.no_torch:
                    cell["pytorch"] = run_json([PY, "bench/torch_bench.py", path, str(b), str(t),
                                                str(a.seconds)], env)
                results["cells"].append(cell)
                r = cell["ratio"]
                print("%-22s b=%-2d t=%d  x ORT img/s median %.2f min %.2f (%s)  "
                      "p50 / ORT median %.2f max %.2f  [ORT %s]" % (
                          name, b, t, r["img_per_s"]["median"], r["img_per_s"]["min"],
                          " ".join("%.2f" % v for v in r["img_per_s"]["pairs"]),
                          r["p50_ms"]["median"], r["p50_ms"]["max"], describe(config)),
                      file=sys.stderr)
    with open(a.out, "w") as f:
        json.dump(results, f, indent=1)
    print_header(results, sys.stdout)
    print_table(results)


def print_header(res, out):
    cpu = res["cpu"]
    print("CPU: %s; %s" % (cpu["model"], ", ".join(
        "%s %s" % (flag, "yes" if cpu[flag] else "no") for flag in ISA_FLAGS)), file=out)
    for c in res["ceiling"]:
        print("sgemm ceiling, %d thread(s): %.1f GFLOP/s (OpenBLAS %s kernels%s)" % (
            c["threads"], c["sgemm_gflops"], c["blas_kernel"],
            ", --avx512" if res["avx512"] else ""), file=out)
    for p in res["fma_peak"]:
        print("FMA peak %s, %d thread(s): %.1f GFLOP/s (median %.1f)" % (
            p["isa"], p["threads"], p["gflops_max"], p["gflops_median"]), file=out)
    print("%d pairs per cell, %g s each engine in %d alternating slices; ONNX Runtime "
          "configurations: %s" % (res["rounds"], res["seconds"], res["slices"],
                                  res["ort_configs"] or "the default (%s)" % describe(
                                      ORT_DEFAULT)), file=out)
    print(file=out)


def print_table(res):
    ceil = {c["threads"]: c["sgemm_gflops"] for c in res["ceiling"]}
    peak = {(p["isa"], p["threads"]): p["gflops_max"] for p in res["fma_peak"]}
    print("| model | batch | threads | xbnserve img/s | ORT img/s | x ORT median | x ORT min "
          "| xbnserve p50 ms | ORT p50 ms | p50 / ORT median | p50 / ORT max "
          "| GFLOP/s (% sgemm, % FMA peak) | ORT configuration | PyTorch img/s | x PyTorch |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for c in res["cells"]:
        x, o, p, r = c["xbnserve"], c["onnxruntime"], c.get("pytorch"), c["ratio"]
        fma = peak.get((x["gemm"], c["threads"]))
        print("| %s | %d | %d | %.1f | %.1f | %.2f | %.2f | %.1f | %.1f | %.2f | %.2f "
              "| %.1f (%.0f%%, %s) | %s | %s | %s |" % (
                  c["model"], c["batch"], c["threads"], x["img_per_s"], o["img_per_s"],
                  r["img_per_s"]["median"], r["img_per_s"]["min"], x["p50_ms"], o["p50_ms"],
                  r["p50_ms"]["median"], r["p50_ms"]["max"], x["gflops"],
                  100 * x["gflops"] / ceil[c["threads"]], "%.0f%%" % (100 * x["gflops"] / fma)
                  if fma else "-", describe(c["ort_config"]),
                  "%.1f" % p["img_per_s"] if p else "-",
                  "%.2f" % (x["img_per_s"] / p["img_per_s"]) if p else "-"))


if __name__ == "__main__":
    main()
