"""End-to-end HTTP benchmark, memory and start-up of the daemon (docs/benchmarks.md).

usage: /usr/bin/python3 bench/http_bench.py [--model build/models/mobilenetv2-torch.safetensors]
         [--image FILE.jpg] [--client-resize N] [--seconds 10] [--concurrency 1,8,32]
         [--batch 8] [--rounds 3] [--avx512] [--out FILE]

1. Start-up: time from process start to GET /readyz = 200 (weights loaded, folded, warmed up),
   and peak RSS (VmHWM) against the model file's size.
2. Load: wrk (Debian) POSTs the JPEG to /v1/models/NAME:predict at each concurrency for
   --seconds; reports requests/s, p50/p99/p99.9 latency (wrk's own histogram) and the batch
   sizes the batcher formed (the xbnserve_batch_size histogram of /metrics, as a delta);
   the latency distribution (wrk's percentiles from 0 to 100) goes to the JSON for
   bench/plot.py.
3. HTTP against the engine alone (`xbnserve bench`, same batch size and threads), in
   --rounds alternating pairs because this shared machine drifts by 10-20% within minutes:
   the engine for --seconds, then wrk at the highest concurrency, counting the answers the
   daemon sent (xbnserve_requests_total) over --seconds of steady state, from 1 s after wrk
   starts (queue filled) to 1 s before it stops (nothing half-done is counted or dropped).
   The ratio of each pair and their median are printed.
Everything talks to 127.0.0.1 only and stops by itself. Results also go to --out as JSON
(default build/bench/http-MODEL.json); bench/plot.py draws them.
"""
import argparse
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import avx512_env  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
WRK_LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "image/jpeg"
local f = io.open(os.getenv("XBN_IMAGE"), "rb")
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  io.write(string.format("XBNRESULT %d %d %d %.3f %.3f %.3f %d\n", summary.requests,
    summary.duration, summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000, summary.errors.status))
  io.write("XBNLATENCY")
  for _, p in ipairs({0, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100}) do
    io.write(string.format(" %g %.3f", p, latency:percentile(p) / 1000))
  end
  io.write("\n")
end
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body.decode()


def batch_hist(port, name):
    """{le: cumulative count} of xbnserve_batch_size for model `name`."""
    _, text = get(port, "/metrics")
    out = {}
    for m in re.finditer(r'xbnserve_batch_size_bucket\{model="%s",le="([^"]+)"\} (\d+)' % name,
                         text):
        out[m.group(1)] = int(m.group(2))
    return out


def hist_delta_summary(before, after):
    """Batch-size distribution between two snapshots as {size_bucket: count}."""
    les = sorted((k for k in after if k != "+Inf"), key=float)
    prev_cum, out = 0, {}
    for le in les:
        cum = after[le] - before.get(le, 0)
        if cum - prev_cum:
            out[le] = cum - prev_cum
        prev_cum = cum
    return out


def answered(port, name):
    """Requests of model `name` answered with 200 so far."""
    _, text = get(port, "/metrics")
    return sum(int(n) for n in re.findall(
        r'xbnserve_requests_total\{model="%s",endpoint="[^"]+",code="200"\} (\d+)' % name, text))


def vm_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append",
                    help="model file (repeat to serve several; the load goes to the first)")
    ap.add_argument("--image", default=None)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--avx512", action="store_true")
    ap.add_argument("--client-resize", type=int, default=0, metavar="N",
                    help="post the photo resized (PIL) to shorter side N, as an app does before "
                    "uploading; 0 posts it as it is")
    ap.add_argument("--out", help="results JSON (default build/bench/http-MODEL[-clientN].json)")
    a = ap.parse_args()
    a.model = a.model or [os.path.join(ROOT, "build/models/mobilenetv2-torch.safetensors")]
    stem = os.path.basename(a.model[0]).split(".")[0]
    a.out = a.out or os.path.join(ROOT, "build", "bench", "http-%s%s.json" % (
        stem, "-client%d" % a.client_resize if a.client_resize else ""))
    env = avx512_env(os.environ) if a.avx512 else dict(os.environ)
    tmp = tempfile.mkdtemp()
    image = a.image
    if not image:  # a real photo shipped by a Debian package, else a generated one
        for cand in ("/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg",):
            if os.path.exists(cand):
                image = cand
                break
    if not image:
        from PIL import Image
        image = os.path.join(tmp, "img.jpg")
        Image.effect_mandelbrot((640, 480), (-2, -1.2, 1, 1.2), 100).convert("RGB").save(image)
    source = os.path.basename(image)
    if a.client_resize:
        from PIL import Image
        im = Image.open(image).convert("RGB")
        k = a.client_resize / min(im.size)
        image = os.path.join(tmp, "client.jpg")
        im.resize((round(im.size[0] * k), round(im.size[1] * k)), Image.BILINEAR).save(
            image, quality=90)
    from PIL import Image
    print("posting %s (%dx%d, %d bytes)" % (image, *Image.open(image).size, os.path.getsize(image)))
    lua = os.path.join(tmp, "post.lua")
    with open(lua, "w") as f:
        f.write(WRK_LUA)
    name = "bench"
    port = free_port()
    cmd = [os.path.join(ROOT, "build/xbnserve"), "serve", "--port", str(port), "--model",
           "%s=%s" % (name, a.model[0]), "--max-batch-size", str(a.batch), "--workers",
           str(a.workers), "--threads-per-worker", str(a.threads), "--log-level", "info",
           "--max-queue-size", "1024"]
    for i, extra in enumerate(a.model[1:]):
        cmd += ["--model", "extra%d=%s" % (i, extra)]
    log_path = os.path.join(tmp, "daemon.log")
    log = open(log_path, "w")
    t0 = time.time()
    proc = subprocess.Popen(cmd, env=env, stderr=log, text=True)
    try:
        while True:
            try:
                if get(port, "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() - t0 > 120:
                raise SystemExit("daemon did not become ready: " + open(log_path).read())
            time.sleep(0.005)
        ready_s = time.time() - t0
        size_mb = sum(os.path.getsize(m) for m in a.model) / 1e6
        arena_mb = sum(float(x) for x in re.findall(r"engine arena ([0-9.]+) MB",
                                                     open(log_path).read()))
        print("start to ready: %.3f s; peak RSS after warm-up %.1f MB; model files %.1f MB; "
              "arenas %.1f MB" % (ready_s, vm_hwm_kb(proc.pid) / 1e3, size_mb, arena_mb))
        results = {"ready_s": ready_s, "model_mb": size_mb, "arena_mb": arena_mb, "runs": []}
        for conc in [int(c) for c in a.concurrency.split(",")]:
            before = batch_hist(port, name)
            r = subprocess.run(["wrk", "-t", str(min(conc, 4)), "-c", str(conc), "-d",
                                "%ds" % a.seconds, "--timeout", "30s", "-s", lua,
                                "http://127.0.0.1:%d/v1/models/%s:predict" % (port, name)],
                               capture_output=True, text=True, env=dict(env, XBN_IMAGE=image),
                               timeout=a.seconds + 60)
            line = [l for l in r.stdout.splitlines() if l.startswith("XBNRESULT")]
            if not line:
                raise SystemExit("wrk failed: " + r.stdout + r.stderr)
            n, dur_us, errors, p50, p99, p999, status_err = line[0].split()[1:]
            pct = [l for l in r.stdout.splitlines() if l.startswith("XBNLATENCY")][0].split()[1:]
            rps = int(n) / (int(dur_us) / 1e6)
            batches = hist_delta_summary(before, batch_hist(port, name))
            run = {"concurrency": conc, "requests": int(n), "req_per_s": rps, "errors": int(errors),
                   "p50_ms": float(p50), "p99_ms": float(p99), "p999_ms": float(p999),
                   "batch_sizes": batches,
                   "latency_ms": [[float(p), float(v)] for p, v in zip(pct[::2], pct[1::2])]}
            results["runs"].append(run)
            print("c=%-3d %8.1f req/s  p50 %7.2f ms  p99 %7.2f ms  p99.9 %7.2f ms  errors %s  "
                  "batches (size<=: count) %s" % (conc, rps, float(p50), float(p99), float(p999),
                                                  errors, json.dumps(batches)))
        results["peak_rss_mb"] = vm_hwm_kb(proc.pid) / 1e3
        print("peak RSS after load: %.1f MB = model files + arenas + %.1f MB" % (
            results["peak_rss_mb"], results["peak_rss_mb"] - size_mb - arena_mb))
        top = max(int(c) for c in a.concurrency.split(","))
        results["rounds"] = []
        for _ in range(a.rounds):
            eng = subprocess.run([os.path.join(ROOT, "build/xbnserve"), "bench", "--model",
                                  a.model[0], "--batch", str(a.batch), "--threads",
                                  str(a.threads), "--seconds", str(a.seconds)],
                                 capture_output=True, text=True, env=env)
            e = json.loads(eng.stdout)
            w = subprocess.Popen(["wrk", "-t", "4", "-c", str(top), "-d", "%ds" % (a.seconds + 2),
                                  "--timeout", "30s", "-s", lua,
                                  "http://127.0.0.1:%d/v1/models/%s:predict" % (port, name)],
                                 stdout=subprocess.DEVNULL, env=dict(env, XBN_IMAGE=image))
            time.sleep(1)
            n0, t0 = answered(port, name), time.time()
            time.sleep(a.seconds)
            n1, t1 = answered(port, name), time.time()
            w.wait(timeout=a.seconds + 60)
            rps = (n1 - n0) / (t1 - t0)
            results["rounds"].append({"engine_img_per_s": e["img_per_s"], "http_req_per_s": rps})
            print("engine alone at batch %d, %d threads: %6.1f img/s; HTTP c=%d steady: %6.1f "
                  "req/s = %.0f%%" % (a.batch, a.threads, e["img_per_s"], top, rps,
                                      100 * rps / e["img_per_s"]))
        ratios = [r["http_req_per_s"] / r["engine_img_per_s"] for r in results["rounds"]]
        results["http_over_engine"] = statistics.median(ratios)
        print("HTTP / engine, median of %d rounds: %.0f%%" % (len(ratios),
                                                            100 * results["http_over_engine"]))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    results.update(model=stem, image=source, batch=a.batch,
                   threads=a.threads, client_resize=a.client_resize, avx512=a.avx512)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(results, f, indent=1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
