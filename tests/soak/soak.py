#!/usr/bin/python3
"""soak.py - saturate the daemon with a mix of good and bad requests, then SIGTERM it under load.

Usage (from the repository root; `make all models` first):
  /usr/bin/python3 tests/soak/soak.py [--seconds 600] [--clients 8] [--bad 0.3]
      [--requests N] [--bin build/xbnserve] [--model build/models/mobilenetv2-keras-035...]
      [--wrap "valgrind ..."] [--no-sigterm-under-load] [--json out.json]

Loopback only; stops by itself after --seconds (or --requests in total). What it checks:
  - zero crashes: the daemon is alive at every sample and exits 0 after SIGTERM;
  - every good request (raw JPEG/PNG, multipart with top_k, v1 JSON b64, V2 BYTES, V2 FP32) is
    answered 200 with a body bit-identical to the answer the same request got alone before the
    load (scores are batch-invariant, so any difference is a bug), or 503 + Retry-After;
  - every bad request (truncated/corrupt/unsupported image, bad JSON/base64/shape, too many
    images, unknown route/model, wrong method, oversized Content-Length, long URL) gets its
    documented 4xx status; clients that reset the connection mid-upload or before the
    answer are dropped cleanly (the daemon keeps serving; nothing is left in flight);
  - SIGTERM while the clients are still sending: every request the daemon accepted is answered
    (200 or 503 "shutting down"), connections made after it are refused, exit code 0, and the
    daemon logs "0 requests cut off";
  - RSS (VmRSS) sampled every few seconds: baseline after warm-up, max, last, drift.
Prints a summary and exits 1 on any failure. --wrap runs the daemon under a tool (valgrind).
"""
import argparse
import base64
import collections
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from xbn import image_bytes, multipart  # noqa: E402  (tests/integration/: the helpers the pytest suite uses)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start_daemon(args, startup):
    """Start `args` (an xbnserve serve command with --port 0) and wait up to `startup` seconds
    for its "ready" line. Returns (process, port, log lines, reader); port is None if it did
    not come up. The reader thread keeps collecting the log into the list until it closes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XBNSERVE_")}
    proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
    lines, port = [], None
    t_end = time.time() + startup
    while time.time() < t_end:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"listening on [\d.]+:(\d+)", line)
        if m:
            port = int(m.group(1))
        if line.rstrip().endswith(" ready"):
            break
    if proc.poll() is not None:
        port = None
    reader = threading.Thread(target=lambda: [lines.append(l) for l in proc.stderr], daemon=True)
    reader.start()
    return proc, port, lines, reader


def make_requests(S, max_images):
    """(kind, method, path, body, headers, want) with want = 'good' or the expected status."""
    P = "/v1/models/small:predict"
    V2 = "/v2/models/small/infer"
    jpgs = [image_bytes(i, "JPEG", (64 + 16 * i, 48 + 8 * i)) for i in range(6)]
    pngs = [image_bytes(10 + i, "PNG", (50 + 10 * i, 70)) for i in range(3)]
    big = image_bytes(99, "JPEG", (1200, 900))
    js = {"Content-Type": "application/json"}
    good = []
    for i, d in enumerate(jpgs):
        good.append((f"raw_jpeg{i}", "POST", P + "?top_k=5", d, {"Content-Type": "image/jpeg"}))
    for i, d in enumerate(pngs):
        good.append((f"raw_png{i}", "POST", P, d, {"Content-Type": "image/png"}))
    good.append(("raw_big_jpeg", "POST", P + "?top_k=3", big, {"Content-Type": "image/jpeg"}))
    b, h = multipart([(jpgs[0], "image/jpeg"), (pngs[1], "image/png"), (jpgs[3], "image/jpeg")],
                     {"top_k": "4"})
    good.append(("multipart3", "POST", P, b, h))
    good.append(("v1_b64", "POST", P, json.dumps(
        {"instances": [{"b64": base64.b64encode(jpgs[2]).decode()},
                       {"image": {"b64": base64.b64encode(pngs[0]).decode()}}],
         "top_k": 0}).encode(), js))
    good.append(("v2_bytes", "POST", V2, json.dumps(
        {"id": "soak", "inputs": [{"name": "image", "datatype": "BYTES", "shape": [2],
                                   "data": [base64.b64encode(jpgs[4]).decode(),
                                            base64.b64encode(pngs[2]).decode()]}]}).encode(), js))
    x = np.random.default_rng(7).standard_normal((1, 3, S, S)).astype(np.float32)
    good.append(("v2_fp32", "POST", V2, json.dumps(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, S, S],
                     "data": [float(v) for v in x.ravel()]}],
         "outputs": [{"name": "logits"}]}).encode(), js))
    good.append(("get_model", "GET", "/v1/models/small", None, {}))
    good.append(("healthz", "GET", "/healthz", None, {}))
    bad = [
        ("truncated_jpeg", "POST", P, jpgs[1][:len(jpgs[1]) // 2], {"Content-Type": "image/jpeg"}, 400),
        ("corrupt_png", "POST", P, pngs[0][:40] + b"\0" * 200, {"Content-Type": "image/png"}, 400),
        ("gif", "POST", P, b"GIF89a" + b"\0" * 100, {"Content-Type": "image/jpeg"}, 415),
        ("text", "POST", P, b"hello", {"Content-Type": "text/plain"}, 415),
        ("bad_json", "POST", P, b'{"instances": [', js, 400),
        ("bad_b64", "POST", P, b'{"instances": [{"b64": "@@@@"}]}', js, 400),
        ("v2_shape", "POST", V2, json.dumps({"inputs": [{"name": "input", "datatype": "FP32",
                                                         "shape": [1, 3, 2, 2], "data": [0] * 12}]}).encode(), js, 400),
        ("too_many", "POST", P, multipart([(jpgs[0], "image/jpeg")] * (max_images + 1))[0],
         multipart([])[1], 413),
        ("no_route", "GET", "/etc/passwd", None, {}, 404),
        ("no_model", "POST", "/v1/models/nope:predict", jpgs[0], {"Content-Type": "image/jpeg"}, 404),
        ("method", "GET", P, None, {}, 405),
        ("long_url", "GET", "/v1/models/" + "a" * 3000, None, {}, 414),
        ("empty", "POST", P, b"", {"Content-Type": "image/jpeg"}, 400),
        ("huge_cl", "HUGE", P, None, {}, 413),
        # Clients that vanish: mid-upload, and after the whole request before the answer.
        ("abort_upload", "ABORT_UP", P, jpgs[5], {"Content-Type": "image/jpeg"}, None),
        ("abort_answer", "ABORT_ANS", P, b, h, None),
    ]
    return good, bad


class Client:
    def __init__(self, port, timeout=120):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body, headers, keep):
        if method.startswith("ABORT"):  # send (part of) a request, then reset the connection
            c = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            data = (f"POST {path} HTTP/1.1\r\nHost: x\r\n{head}Content-Length: {len(body)}"
                    f"\r\n\r\n").encode() + (body[:len(body) // 2] if method == "ABORT_UP" else body)
            try:
                c.sendall(data)
            finally:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                c.close()
            return None, {}, b""
        if method == "HUGE":  # claims 20 GB: must be refused before any byte is sent
            c = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
            try:
                c.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                          f"Content-Length: {20 << 30}\r\n\r\n".encode())
                data = b""
                while not data.endswith(b"}\n") and len(data) < 65536:
                    b = c.recv(65536)
                    if not b:
                        break
                    data += b
                m = re.match(rb"HTTP/1\.1 (\d+)", data)
                return (int(m.group(1)) if m else 0), {}, data
            finally:
                c.close()
        reused = self.conn is not None
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            self.conn.request(method, path, body=body, headers=headers)
            r = self.conn.getresponse()
            data = r.read()
            h = dict(r.getheaders())
            if not keep or h.get("Connection", "").lower() == "close":
                self.conn.close()
                self.conn = None
            return r.status, h, data
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
            self.conn.close()
            self.conn = None
            if not reused:
                raise
            # A kept-alive connection the server closed meanwhile: retry once, fresh.
            return self.request(method, path, body, headers, keep)
        except Exception:
            self.conn.close()
            self.conn = None
            raise


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    except (OSError, AttributeError):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/xbnserve"))
    ap.add_argument("--model", default=os.path.join(ROOT, "build/models/mobilenetv2-keras-035.safetensors"))
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--requests", type=int, default=0, help="stop after this many (0: no limit)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--bad", type=float, default=0.3, help="fraction of bad requests")
    ap.add_argument("--wrap", default="", help="prefix command, e.g. valgrind flags")
    ap.add_argument("--startup", type=float, default=120)
    ap.add_argument("--no-sigterm-under-load", action="store_true")
    ap.add_argument("--json", default="")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--crop", type=int, default=0,
                    help="serve at this input side instead of the model's (valgrind: 64)")
    a = ap.parse_args()

    max_images = 8
    args = (a.wrap.split() + [a.bin, "serve", "--port", "0", "--model", "small=" + a.model,
            "--max-batch-size", "8", "--max-queue-delay-us", "2000", "--max-queue-size", "64",
            "--max-images-per-request", str(max_images), "--max-body-bytes", "8000000",
            "--drain-timeout-ms", "60000", "--request-timeout-ms", "120000"]
            + (["--preprocess", json.dumps({"crop": a.crop, "resize": a.crop})] if a.crop else []))
    proc, port, lines, reader = start_daemon(args, a.startup)
    if not port:
        print("daemon did not start:\n" + "".join(lines))
        return 1

    S = a.crop or 224
    good, bad = make_requests(S, max_images)
    # The reference answers: each good request alone, twice (must already agree).
    ref = {}
    c = Client(port)
    for g in good:
        st1, _, b1 = c.request(*g[1:], keep=False)
        st2, _, b2 = c.request(*g[1:], keep=False)
        if st1 != 200 or b1 != b2:
            print(f"reference for {g[0]} failed: {st1} {b1[:200]!r}")
            proc.kill()
            return 1
        ref[g[0]] = b1

    stats = collections.Counter()
    failures = []
    lock = threading.Lock()
    stop = threading.Event()
    sigterm_sent = threading.Event()
    total = [0]

    def worker(i):
        rng = random.Random(a.seed * 1000 + i)
        cl = Client(port)
        while not stop.is_set():
            with lock:
                if a.requests and total[0] >= a.requests:
                    return
                total[0] += 1
            isbad = rng.random() < a.bad
            req = rng.choice(bad if isbad else good)
            keep = rng.random() < 0.5
            try:
                st, h, body = cl.request(*req[1:5], keep=keep)
            except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError,
                    http.client.RemoteDisconnected, http.client.BadStatusLine, OSError) as e:
                with lock:
                    if sigterm_sent.is_set():
                        stats["refused_after_sigterm"] += 1
                    else:
                        stats["conn_error"] += 1
                        failures.append(f"{req[0]}: {type(e).__name__} {e}")
                if sigterm_sent.is_set():
                    return
                continue
            with lock:
                if req[5:] == (None,):
                    stats["aborted"] += 1
                elif isbad:
                    stats["bad"] += 1
                    if st != req[5] and not (st == 503 and sigterm_sent.is_set()):
                        failures.append(f"{req[0]}: status {st}, want {req[5]}: {body[:200]!r}")
                elif st == 200:
                    stats["good_ok"] += 1
                    if body != ref[req[0]]:
                        failures.append(f"{req[0]}: answer differs from the reference")
                elif st == 503 and h.get("Retry-After"):
                    stats["good_503"] += 1
                else:
                    failures.append(f"{req[0]}: status {st}: {body[:200]!r}")
                if st is not None:
                    stats[f"status_{st}"] += 1

    ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(a.clients)]
    t0 = time.time()
    for t in ts:
        t.start()
    samples = []
    crashed = False
    while time.time() - t0 < a.seconds and any(t.is_alive() for t in ts):
        time.sleep(min(5, max(0.1, a.seconds / 100)))
        if proc.poll() is not None:
            crashed = True
            break
        samples.append((round(time.time() - t0, 1), rss_kb(proc.pid), sum(stats.values())))
    elapsed = time.time() - t0
    if a.no_sigterm_under_load or a.requests:
        stop.set()
        for t in ts:
            t.join(timeout=300)
        # Idle now: every request, the abandoned ones included, has ended (the scrape is 1).
        c = Client(port)
        deadline, left = time.time() + 30, None
        while time.time() < deadline and not crashed:
            m = re.search(rb"xbnserve_requests_in_flight (\d+)",
                          c.request("GET", "/metrics", None, {}, keep=False)[2])
            left = int(m.group(1)) - 1
            if left == 0:
                break
            time.sleep(0.2)
        stats["in_flight_when_idle"] = left or 0
        if left:
            failures.append(f"{left} requests still in flight with every client idle")
    # SIGTERM while the clients still send (unless told otherwise).
    sigterm_sent.set()
    t_sig = time.time()
    if not crashed:
        proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = "hung"
    drain_s = time.time() - t_sig
    stop.set()
    for t in ts:
        t.join(timeout=60)
    reader.join(timeout=10)

    done_lines = [l for l in lines if "stopped after" in l]
    cut = re.search(r"\((\d+) requests cut off\)", done_lines[-1]) if done_lines else None
    base = [r for t, r, _ in samples if t >= min(60, elapsed / 4) and r]
    rss0 = base[0] if base else None
    rss_last = samples[-1][1] if samples else None
    rss_max = max((r for _, r, _ in samples if r), default=None)
    answered = stats["good_ok"] + stats["good_503"] + stats["bad"]
    summary = {
        "seconds": round(elapsed, 1), "clients": a.clients, "requests_answered": answered,
        "req_per_s": round(answered / elapsed, 1) if elapsed else 0,
        "good_ok": stats["good_ok"], "good_503": stats["good_503"], "bad": stats["bad"],
        "aborted": stats["aborted"], "in_flight_when_idle": stats["in_flight_when_idle"],
        "statuses": {k: v for k, v in sorted(stats.items()) if k.startswith("status_")},
        "conn_errors_before_sigterm": stats["conn_error"],
        "refused_after_sigterm": stats["refused_after_sigterm"],
        "failures": len(failures), "crashed": crashed, "exit_code": rc,
        "drain_seconds": round(drain_s, 2), "cut_off": int(cut.group(1)) if cut else None,
        "rss_kb_baseline": rss0, "rss_kb_last": rss_last, "rss_kb_max": rss_max,
        "rss_drift_kb": (rss_last - rss0) if rss0 and rss_last else None,
        "rss_samples": samples[:: max(1, len(samples) // 40)],
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "rss_samples"}, indent=1))
    for f in failures[:20]:
        print("FAIL", f)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=1)
    ok = (not failures and not crashed and rc == 0 and summary["cut_off"] == 0
          and stats["good_ok"] > 0)
    if not ok:
        print("".join(lines[-40:]))
    print("SOAK", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
