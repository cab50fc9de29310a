#!/usr/bin/python3
"""slowloris.py - hundreds of slow connections against the daemon while a normal client
measures its latency; then more connections than max_connections.

Usage (repository root, `make all models` first):
  /usr/bin/python3 tests/soak/slowloris.py [--slow 400] [--seconds 120] [--bin build/xbnserve]
      [--max-connections 512] [--timeout-s 10] [--json out.json]

Loopback only, stops by itself. Phases:
  1. baseline: the good client alone (sequential predicts) for a few seconds;
  2. attack: --slow connections (below max_connections) each trickle one header byte every
     few seconds (keeping them under the idle timeout) or one body byte of a POST that claims
     1 MB, for --seconds. The good client keeps predicting: its latency must stay close to
     the baseline and no request may fail;
  3. idle: the attackers stop sending. The daemon must close every one of them within
     connection_timeout_s (+ slack);
  4. flood: max_connections + 100 connections that send nothing: the daemon holds at most
     max_connections (the rest wait unaccepted in the kernel backlog); once the idle ones
     time out, a normal request is served again without any help.
Prints a JSON summary; exit 1 on failure.
"""
import argparse
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soak import ROOT, image_bytes, start_daemon  # noqa: E402
from xbn import daemon_sockets  # noqa: E402


def predict(port, body, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.time()
    try:
        c.request("POST", "/v1/models/small:predict", body, {"Content-Type": "image/jpeg"})
        r = c.getresponse()
        r.read()
        return r.status, time.time() - t0
    except OSError as e:
        return type(e).__name__, time.time() - t0
    finally:
        c.close()


def pct(xs, q):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 1) if xs else None


def good_client(port, body, until, out):
    while time.time() < until:
        out.append(predict(port, body))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/xbnserve"))
    ap.add_argument("--model", default=os.path.join(ROOT, "build/models/mobilenetv2-keras-035.safetensors"))
    ap.add_argument("--slow", type=int, default=400)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--max-connections", type=int, default=512)
    ap.add_argument("--timeout-s", type=int, default=10)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    assert a.slow < a.max_connections - 8
    p, port, lines, _ = start_daemon([a.bin, "serve", "--port", "0", "--model", "small=" + a.model,
                                   "--max-connections", str(a.max_connections),
                                   "--connection-timeout-s", str(a.timeout_s)], 120)
    if not port:
        print("daemon did not start:\n" + "".join(lines))
        return 1
    body = image_bytes(1)
    base_sockets = daemon_sockets(p.pid)
    res = {"slow": a.slow, "seconds": a.seconds, "max_connections": a.max_connections,
           "connection_timeout_s": a.timeout_s}
    fails = []

    # 1. baseline
    base = []
    good_client(port, body, time.time() + 5, base)
    res["baseline_ms_p50"], res["baseline_ms_p99"] = pct([t for _, t in base], .5), pct([t for _, t in base], .99)

    # 2. attack
    slow = []
    for i in range(a.slow):
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        if i % 2:
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        else:
            c.sendall(b"POST /v1/models/small:predict HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: image/jpeg\r\nContent-Length: 1000000\r\n\r\n")
        slow.append(c)
    during = []
    until = time.time() + a.seconds
    g = threading.Thread(target=good_client, args=(port, body, until, during))
    g.start()
    alive_sent = 0
    while time.time() < until:
        for c in slow:
            try:
                c.send(b"a")
                alive_sent += 1
            except OSError:
                pass
        time.sleep(min(a.timeout_s / 3, 3))
    g.join()
    bad = [s for s, _ in during if s != 200]
    res["attack_requests"] = len(during)
    res["attack_failed"] = len(bad)
    res["attack_ms_p50"], res["attack_ms_p99"] = pct([t for _, t in during], .5), pct([t for _, t in during], .99)
    res["attack_ms_max"] = pct([t for _, t in during], 1.0)
    if bad:
        fails.append(f"good requests failed during the attack: {bad[:5]}")
    if res["attack_ms_p99"] and res["attack_ms_p99"] > max(1000, 10 * res["baseline_ms_p99"]):
        fails.append("p99 latency under attack more than 10x the baseline")

    # 3. idle: every slow connection closed by the daemon within the timeout
    t0 = time.time()
    closed = 0
    for c in slow:
        c.settimeout(max(0.1, a.timeout_s + 5 - (time.time() - t0)))
        try:
            while c.recv(65536):  # an error answer may come first; then the close
                pass
            closed += 1
        except ConnectionResetError:
            closed += 1
        except socket.timeout:
            pass
        c.close()
    res["slow_closed_by_daemon"] = closed
    res["close_seconds"] = round(time.time() - t0, 1)
    if closed != a.slow:
        fails.append(f"only {closed}/{a.slow} idle connections closed by the daemon")

    # 4. flood past max_connections
    flood = []
    for _ in range(a.max_connections + 100):
        try:
            flood.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            break
    time.sleep(1)
    # Connections the daemon holds (the rest wait, unaccepted, in the kernel backlog).
    open_n = daemon_sockets(p.pid) - base_sockets
    res["flood_connections"] = len(flood)
    res["flood_daemon_sockets"] = open_n
    if open_n > a.max_connections + 1:
        fails.append(f"{open_n} connections open, over max_connections {a.max_connections}")
    # The flood is idle: it times out, then the daemon serves again without any help.
    t0 = time.time()
    st, _ = predict(port, body, timeout=a.timeout_s * 3 + 30)
    res["after_flood_status"], res["after_flood_wait_s"] = st, round(time.time() - t0, 1)
    if st != 200:
        fails.append(f"after the flood: {st}")
    for c in flood:
        c.close()

    p.send_signal(signal.SIGTERM)
    res["exit_code"] = p.wait(timeout=120)
    if res["exit_code"] != 0:
        fails.append(f"exit code {res['exit_code']}")
    res["failures"] = fails
    print(json.dumps(res, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    print("SLOWLORIS", "FAIL" if fails else "PASS")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
