"""Plots of the benchmark results: one PNG beside each JSON (docs/benchmarks.md).

usage: /usr/bin/python3 bench/plot.py [DIR | FILE.json ...]     (default: build/bench)

- bench/run.py's results (engine.json: "cells") -> engine.png: images/s against batch size,
  one panel per model, xbnserve against ONNX Runtime and PyTorch (each the median of its
  rounds), one line per thread count; and, where the cells carry their pairs' ratios,
  engine-ratio.png: per cell, xbnserve / ONNX Runtime images/s (every pair a dot, a bar from
  the minimum to the median) and p50 latency (a bar from the median to the worst), against
  parity and the targets.
- bench/http_bench.py's results (http-*.json: "runs") -> http-*.png: the latency
  distribution over HTTP under load (wrk's percentiles, one curve per concurrency, on a
  "nines" axis so the tail is readable) and the batch sizes the batcher formed.
Other JSON files are skipped with a note. Needs matplotlib (Debian python3-matplotlib).
"""
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DPI = 100
ENGINE_SIZE = (12, 8)  # inches: 1200 x 800 px
HTTP_SIZE = (12, 5)  # 1200 x 500 px
PEERS = [("xbnserve", "xbnserve", "C0"), ("onnxruntime", "ONNX Runtime", "C1"),
         ("pytorch", "PyTorch eager", "C2")]
THREAD_STYLE = {1: ":", 2: "-"}  # more threads: the solid line
# the targets (docs/benchmarks.md): images/s >= 1.3x ONNX Runtime's, batch-1 p50 <= 0.8x
RATIO_PANELS = [("img_per_s", "min", "images/s: xbnserve / ONNX Runtime (higher is better)",
                 1.3, "target", "C0"),
                ("p50_ms", "max", "p50 latency: xbnserve / ONNX Runtime (lower is better)",
                 0.8, "batch-1 target", "C3")]


def plot_engine(res, out):
    """images/s against batch size, a panel per model."""
    models = list(dict.fromkeys(c["model"] for c in res["cells"]))
    cols = min(2, len(models))
    rows = math.ceil(len(models) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=ENGINE_SIZE, dpi=DPI, squeeze=False)
    for ax, model in zip(axes.flat, models):
        cells = [c for c in res["cells"] if c["model"] == model]
        threads = sorted({c["threads"] for c in cells})
        batches = sorted({c["batch"] for c in cells})
        for key, label, color in PEERS:
            for t in threads:
                pts = sorted((c["batch"], c[key]["img_per_s"]) for c in cells
                             if c["threads"] == t and key in c)
                if not pts:
                    continue
                ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color, marker="o",
                        markersize=4, linestyle=THREAD_STYLE.get(t, "--"),
                        label="%s, %d thread%s" % (label, t, "s" if t > 1 else ""))
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(batches))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: "%d" % v))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_ylim(bottom=0)
        ax.set_title(model)
        ax.set_xlabel("batch size")
        ax.set_ylabel("images/s")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(models):]:
        ax.set_visible(False)
    fig.suptitle("Engine throughput: xbnserve and its peers on the same weights%s" % (
        " (OPENBLAS_CORETYPE unset)" if res.get("avx512") else ""))
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)


def plot_ratios(res, out):
    """xbnserve / ONNX Runtime per cell: every pair's ratio, the median and the worst pair."""
    cells = res["cells"]
    fig, axes = plt.subplots(1, 2, figsize=ENGINE_SIZE, dpi=DPI, sharey=True)
    ys = range(len(cells))
    for ax, (key, worst, title, target, target_name, color) in zip(axes, RATIO_PANELS):
        for y, c in zip(ys, cells):
            r = c["ratio"][key]
            ax.plot([r[worst], r["median"]], [y, y], color=color, linewidth=6, alpha=0.35,
                    solid_capstyle="butt")
            ax.plot(r["pairs"], [y] * len(r["pairs"]), "o", color=color, markersize=3,
                    alpha=0.5)
            ax.plot(r["median"], y, "D", color=color, markersize=7)
            ax.annotate("%.2f (%s %.2f)" % (r["median"], worst, r[worst]),
                        (max(r["pairs"]), y), xytext=(6, 0), textcoords="offset points",
                        va="center", fontsize=8)
        ax.axvline(1.0, color="0.3", linewidth=1)
        ax.axvline(target, color="0.3", linewidth=1, linestyle="--")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("ratio (solid: parity, dashed: %s %.1f)" % (target_name, target))
        ax.grid(True, axis="x", alpha=0.3)
        # parity and the target always in view, and room on the right for the labels
        vals = [v for c in cells for v in c["ratio"][key]["pairs"]] + [1.0, target]
        span = max(vals) - min(vals)
        ax.set_xlim(min(vals) - 0.05 * span, max(vals) + 0.3 * span)
    axes[0].set_yticks(list(ys))
    axes[0].set_yticklabels(["%s b%d t%d" % (c["model"], c["batch"], c["threads"])
                             for c in cells], fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle("xbnserve / ONNX Runtime, %d pairs per cell: diamond the median, dots the "
                 "pairs, bar from the median to the worst pair" % len(cells[0]["rounds"]))
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)


def nines(p):
    """Percentile -> position on an axis where 90, 99, 99.9 are evenly spaced."""
    return -math.log10(max(1 - p / 100, 1e-5))


def latency_points(run):
    """[(percentile, ms)] of a run: wrk's distribution, or the three percentiles older
    results carry."""
    if run.get("latency_ms"):
        return [(p, v) for p, v in run["latency_ms"]]
    return [(50, run["p50_ms"]), (99, run["p99_ms"]), (99.9, run["p999_ms"])]


def clients(run):
    return "%d client%s" % (run["concurrency"], "s" if run["concurrency"] > 1 else "")


def plot_http(res, out):
    """Latency percentiles per concurrency, and the batch sizes formed."""
    fig, (lat, bat) = plt.subplots(1, 2, figsize=HTTP_SIZE, dpi=DPI,
                                   gridspec_kw={"width_ratios": [3, 2]})
    ticks = [50, 90, 99, 99.9, 99.99]
    for run in res["runs"]:
        pts = [(p, v) for p, v in latency_points(run) if p < 100]
        lat.plot([nines(p) for p, _ in pts], [v for _, v in pts], marker="o", markersize=3,
                 label="%s: %.0f req/s" % (clients(run), run["req_per_s"]))
    lat.xaxis.set_major_locator(FixedLocator([nines(p) for p in ticks]))
    lat.xaxis.set_major_formatter(FuncFormatter(lambda v, _: "p%g" % round(100 * (1 - 10 ** -v), 2)))
    lat.set_yscale("log")
    lat.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    lat.yaxis.set_major_formatter(FuncFormatter(lambda v, _: "%g" % v))
    lat.yaxis.set_minor_locator(NullLocator())
    lat.set_xlabel("percentile (the left end is the fastest request)")
    lat.set_ylabel("latency, ms (log)")
    lat.set_title("Latency under load (wrk, POST %s)" % res.get("image", "a JPEG"))
    lat.grid(True, which="both", alpha=0.3)
    lat.legend(fontsize=8)

    sizes = sorted({float(k) for r in res["runs"] for k in r["batch_sizes"]})
    width = 0.8 / max(1, len(res["runs"]))
    for i, run in enumerate(res["runs"]):
        total = sum(run["batch_sizes"].values()) or 1
        xs = [j + (i - (len(res["runs"]) - 1) / 2) * width for j in range(len(sizes))]
        ys = [100 * run["batch_sizes"].get("%g" % s, 0) / total for s in sizes]
        bat.bar(xs, ys, width=width, label=clients(run))
    bat.set_xticks(range(len(sizes)))
    bat.set_xticklabels(["<=%g" % s for s in sizes])
    bat.set_xlabel("engine batch size (histogram bucket)")
    bat.set_ylabel("% of batches")
    bat.set_title("Batches the batcher formed")
    bat.grid(True, axis="y", alpha=0.3)
    bat.legend(fontsize=8)
    fig.suptitle("%s over HTTP: batch %s, %s threads%s" % (
        res.get("model", ""), res.get("batch", "?"), res.get("threads", "?"),
        ", client resize %d" % res["client_resize"] if res.get("client_resize") else ""))
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)


def plot_file(path):
    """Write the PNGs for one results file beside it."""
    with open(path) as f:
        res = json.load(f)
    base = os.path.splitext(path)[0]
    if isinstance(res, dict) and "cells" in res:
        plots = [(plot_engine, base + ".png")]
        # results from before the pairs' ratios were kept have no ratio plot
        if res["cells"] and all("ratio" in c for c in res["cells"]):
            plots.append((plot_ratios, base + "-ratio.png"))
    elif isinstance(res, dict) and "runs" in res:
        plots = [(plot_http, base + ".png")]
    else:
        print("plot.py: %s is not a bench/run.py or bench/http_bench.py result, skipped" % path,
              file=sys.stderr)
        return
    for plot, out in plots:
        plot(res, out)
        print("plot.py: wrote %s" % out)


def main(argv):
    args = argv or [os.path.join(ROOT, "build", "bench")]
    files = []
    for a in args:
        if os.path.isdir(a):
            files += sorted(os.path.join(a, n) for n in os.listdir(a) if n.endswith(".json"))
        else:
            files.append(a)
    if not files:
        raise SystemExit("plot.py: no JSON results in %s" % " ".join(args))
    for f in files:
        plot_file(f)


if __name__ == "__main__":
    main(sys.argv[1:])
