#!/usr/bin/env python3
"""fmapeak_best.py - the best of several build/fmapeak runs, as one markdown report.

One fmapeak run times every op in its own process for a few rounds; on a shared machine a
process can land in a slow minute whole. Each run's JSON (fmapeak --json) goes in; out comes
the per-network and per-layer tables of fmapeak --md, with each figure the best over all runs
(a network's or layer's least time, a configuration's highest FMA peak) and each fraction of
the peak taken against that highest peak:

    for i in 1 2 3; do build/fmapeak --layers --rounds 9 --json build/bench/fmapeak$i.json; done
    bench/fmapeak_best.py build/bench/fmapeak[123].json > build/bench/fmapeak.md
"""
import json
import sys


def label(layer):
    base = ("wino4" if layer["wino"] == 4 else "wino2" if layer["wino"] == 2
            else "gemm" if layer["k"] == 1 and layer["stride"] == 1 else "conv")
    return base + ("+gn" if layer["gn_fused"] else "") + ("+res" if layer["residual"] else "") + \
        (" (tail)" if layer["tail"] else "")


def main(paths):
    runs = [json.load(open(p)) for p in paths]
    names = [m["model"] for m in runs[0]["models"]]
    configs = [(c["batch"], c["threads"]) for c in runs[0]["models"][0]["configs"]]
    head = "".join(" b%d t%d: ms per sample, FMA peak GFLOP/s |" % c for c in configs)
    print("| model | kernels |" + head)
    print("|---|---|" + "---|" * len(configs))
    best = {}
    for name in names:
        models = [next(m for m in r["models"] if m["model"] == name) for r in runs]
        cells = []
        for ci in range(len(configs)):
            ms = min(m["configs"][ci]["ms_per_sample"] for m in models)
            peak = max(m["configs"][ci]["peak_gflops"] for m in models)
            cells.append((ms, peak))
        best[name] = (models, cells)
        print("| %s | %s |" % (name, models[0]["gemm"]) +
              "".join(" %.2f, %.1f |" % c for c in cells))
    print()
    print("| model | layer (count) | input, kernel -> cout | kernel |" +
          "".join(" b%d t%d: GFLOP/s | %% peak | %% of net |" % c for c in configs))
    print("|---|---|---|---|" + "---|---|---|" * len(configs))
    for name in names:
        models, cells = best[name]
        for li, layer in enumerate(models[0]["layers"]):
            row = "| %s | %s (%d) | %dx%dx%d, %dx%d/%d -> %d | %s |" % (
                name, layer["first_op"], layer["ops"], layer["h"], layer["w"], layer["cin"],
                layer["k"], layer["k"], layer["stride"], layer["cout"], label(layer))
            for ci, (net_ms, peak) in enumerate(cells):
                got = [m["layers"][li]["cells"][ci] for m in models]
                ms = min(c["ms_per_sample"] for c in got)
                gflops = layer["flops_per_sample"] / ms / 1e6
                mul = layer["mul_flops_per_sample"] / ms / 1e6
                row += (" %.0f (mul %.0f) |" % (gflops, mul) if layer["wino"] else " %.0f |" % gflops)
                row += " %.0f%% | %.1f%% |" % (100 * mul / peak, 100 * ms / net_ms)
            print(row)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: fmapeak_best.py RUN.json [RUN.json ...]")
    main(sys.argv[1:])
