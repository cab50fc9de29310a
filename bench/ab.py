"""A/B of two xbnserve builds on this machine: the engine alone and the daemon over HTTP.

usage: /usr/bin/python3 bench/ab.py --a OLD_BINARY --b NEW_BINARY [--rounds 5] [--seconds 3]
         [--models resnet50-torch,mobilenetv2-torch] [--batches 1,8] [--threads 2]
         [--http-model mobilenetv2-torch] [--avx512]

For a change that must not cost speed (a refactor, a build-flag change), what matters is the
ratio B / A measured in the same minutes, because this shared machine drifts by 10-20% from
one minute to the next. Every cell runs --rounds alternating pairs (A then B, then B then A,
...) and prints the ratio of each pair with their minimum and median.

Each `xbnserve bench` process settles at a speed of its own: at batch 1 on two threads the
same binary against itself gave pairs from 0.86 to 1.19 on the Zen 3 machine (docs/
benchmarks.md), so a few pairs resolve only large differences there. For a change to the
engine, build/ab_inproc (bench/ab_inproc.c) alternates the builds run by run in one process.

Engine: `xbnserve bench` of each build, same model, batch and threads. HTTP: each build
serves the model in turn while wrk POSTs a photo at concurrency 32 for --seconds; the
requests each daemon answered with 200 in that time (wrk's count) make the ratio. Both talk
to 127.0.0.1 only and stop by themselves. --avx512 sets OpenBLAS up for every
process as bench/run.py does (avx512_env).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_bench import WRK_LUA, free_port, get  # noqa: E402
from run import avx512_env  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PHOTO = "/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg"


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def engine_ips(binary, model, batch, threads, seconds, env):
    r = subprocess.run([binary, "bench", "--model", model, "--batch", str(batch), "--threads",
                        str(threads), "--seconds", str(seconds)], capture_output=True, text=True,
                       env=env, timeout=600)
    if r.returncode:
        raise SystemExit("%s bench failed: %s" % (binary, r.stderr))
    return json.loads(r.stdout.strip().splitlines()[-1])["img_per_s"]


def http_rps(binary, model, seconds, lua, env):
    port = free_port()
    proc = subprocess.Popen([binary, "serve", "--port", str(port), "--model", "bench=" + model,
                             "--max-batch-size", "8", "--workers", "1", "--threads-per-worker",
                             "2", "--max-queue-size", "1024", "--log-level", "warn"], env=env,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(2000):
            try:
                if get(port, "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None:
                raise SystemExit("%s did not start" % binary)
            subprocess.run(["sleep", "0.01"])
        r = subprocess.run(["wrk", "-t", "4", "-c", "32", "-d", "%ds" % seconds, "--timeout",
                            "30s", "-s", lua, "http://127.0.0.1:%d/v1/models/bench:predict" % port],
                           capture_output=True, text=True, env=dict(env, XBN_IMAGE=PHOTO),
                           timeout=seconds + 60)
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("XBNRESULT")]
        if not line:
            raise SystemExit("wrk failed: " + r.stdout + r.stderr)
        n, dur_us, errors = (int(x) for x in line[0].split()[1:4])
        if errors:
            raise SystemExit("%s: %d failed requests under load" % (binary, errors))
        return n / (dur_us / 1e6)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def pairs(measure, rounds):
    """Alternating A/B pairs of measure(which) -> list of B/A ratios and raw values."""
    ratios, raw = [], []
    for i in range(rounds):
        order = ("a", "b") if i % 2 == 0 else ("b", "a")
        got = {w: measure(w) for w in order}
        ratios.append(got["b"] / got["a"])
        raw.append(got)
    return ratios, raw


def report(label, ratios, raw, unit):
    print("%-44s B/A min %.3f median %.3f  (A %s, B %s %s)" % (
        label, min(ratios), statistics.median(ratios),
        "/".join("%.1f" % r["a"] for r in raw), "/".join("%.1f" % r["b"] for r in raw), unit))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="the reference build (before)")
    ap.add_argument("--b", required=True, help="the build under test (after)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--models", default="resnet50-torch,mobilenetv2-torch")
    ap.add_argument("--models-dir", default=os.path.join(ROOT, "build", "models"))
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--http-model", default="mobilenetv2-torch", help="'' skips the HTTP part")
    ap.add_argument("--avx512", action="store_true")
    a = ap.parse_args()
    env = avx512_env(os.environ) if a.avx512 else dict(os.environ)
    bins = {"a": a.a, "b": a.b}
    print("CPU: %s, %d rounds of alternating pairs, %d s each" % (cpu_model(), a.rounds,
                                                                  a.seconds))
    for name in a.models.split(","):
        model = os.path.join(a.models_dir, name + ".safetensors")
        for batch in (int(b) for b in a.batches.split(",")):
            ratios, raw = pairs(lambda w: engine_ips(bins[w], model, batch, a.threads, a.seconds,
                                                     env), a.rounds)
            report("engine %s b%d t%d" % (name, batch, a.threads), ratios, raw, "img/s")
    if a.http_model:
        model = os.path.join(a.models_dir, a.http_model + ".safetensors")
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(WRK_LUA)
        ratios, raw = pairs(lambda w: http_rps(bins[w], model, a.seconds * 2, f.name, env),
                            a.rounds)
        report("http %s c=32 (photo %s)" % (a.http_model, os.path.basename(PHOTO)), ratios, raw,
               "req/s")
        os.unlink(f.name)


if __name__ == "__main__":
    main()
