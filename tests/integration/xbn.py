"""xbn.py - what the integration tests share: a daemon on a free loopback port (Server), a
real HTTP client on it (Server.request / .json), request bodies (image_bytes, multipart),
and readers of the log and the answers (wait_log, raw_scores, parse_metrics, metric, scrape,
model_labels).
Fixtures built on them are in conftest.py. Env: XBN_BIN (binary), XBN_MODELS (build/models)."""

import http.client
import io
import json
import os
import re
import signal
import subprocess
import threading
import time

import numpy as np
from PIL import Image

BIN = os.environ.get("XBN_BIN", "build/xbnserve")
MODELS = os.environ.get("XBN_MODELS", "build/models")
SMALL = os.path.join(MODELS, "mobilenetv2-keras-035.safetensors")  # 17 classes, fast
SLOW_START = 60


class Server:
    def __init__(self, *args, env=None):
        e = {k: v for k, v in os.environ.items() if not k.startswith("XBNSERVE_")}
        e.update(env or {})
        self.proc = subprocess.Popen([BIN, "serve", "--port", "0", *args], env=e,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.port = None
        deadline = time.time() + SLOW_START
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            m = re.search(r"listening on [\d.]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
            if line.rstrip().endswith(" ready") or '"msg":"ready"' in line:
                break
        assert self.port, "server did not start:\n" + "".join(self.lines)
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def request(self, method, path, body=None, headers=None, timeout=60):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, dict(r.getheaders()), data
        finally:
            c.close()

    def json(self, method, path, body=None, headers=None):
        st, h, data = self.request(method, path, body, headers)
        return st, h, json.loads(data)

    def stop(self, sig=signal.SIGTERM, timeout=30, signal_it=True):
        if signal_it and self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=5)
        return rc


def wait_log(srv, text, start, timeout=120):
    """Waits for a log line of srv's (from line `start` on) that contains text; returns the
    time it was seen."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(text in line for line in srv.lines[start:]):
            return time.time()
        time.sleep(0.05)
    raise AssertionError("no %r in the log:\n%s" % (text, "".join(srv.lines[start:])))


def image_bytes(seed, fmt="JPEG", size=(96, 80)):
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def multipart(files, fields=None):
    b = "xbnBoundary7MA4YWxk"
    out = []
    for k, v in (fields or {}).items():
        out.append(f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    for i, (data, ctype) in enumerate(files):
        out.append(f'--{b}\r\nContent-Disposition: form-data; name="img{i}"; '
                   f'filename="{i}.bin"\r\nContent-Type: {ctype}\r\n\r\n'.encode() + data + b"\r\n")
    out.append(f"--{b}--\r\n".encode())
    return b"".join(out), {"Content-Type": f"multipart/form-data; boundary={b}"}


def daemon_sockets(pid):
    """Sockets the process `pid` holds open (/proc)."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


def raw_scores(body):
    """The printed score strings, per image: bit-exact comparisons on the text."""
    return [re.findall(r'"score":([^,}]+)', m) for m in
            re.findall(r"\[\{.*?\}\]", body.decode())]


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+-?\d+)?$")
_LABEL = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\\n]|\\.)*)"[ \t]*(?:,|$)')


def parse_metrics(text):
    """Prometheus text exposition format 0.0.4 -> ({(name, labels): value}, {family: type}),
    labels a sorted tuple of (key, value) pairs. Every line must parse, every sample must
    belong to a family declared by # TYPE, and no series may appear twice."""
    samples, types = {}, {}
    for line in text.split("\n"):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] == "TYPE":
                assert len(parts) == 4 and parts[3] in ("counter", "gauge", "histogram",
                                                        "summary", "untyped"), line
                types[parts[2]] = parts[3]
            continue
        m = _SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        labels, body, pos = [], m.group(2) or "", 0
        while pos < len(body):
            lm = _LABEL.match(body, pos)
            assert lm and lm.end() > pos, "bad labels in %r" % line
            value = re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1),
                           lm.group(2))
            labels.append((lm.group(1), value))
            pos = lm.end()
        name = m.group(1)
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or (family in types and types[family] == "histogram"), \
            "sample without a # TYPE: %r" % line
        key = (name, tuple(sorted(labels)))
        assert key not in samples, "series twice: %r" % line
        samples[key] = float(m.group(3))
    return samples, types


def metric(samples, name, **labels):
    """One series' value; 0 when the series does not exist (yet): counters start at 0."""
    return samples.get((name, tuple(sorted((k, str(v)) for k, v in labels.items()))), 0.0)


def scrape(srv, settle=True, attempts=None):
    """GET /metrics, parsed. With settle, scrape until the daemon counts only this scrape
    in flight, so every earlier request has been counted (a request is counted just after
    its answer is sent, which can be a moment after the client has read it). `attempts`, a
    list, gets the number of GET /metrics sent."""
    deadline = time.time() + 10
    n = 0
    while True:
        st, h, data = srv.request("GET", "/metrics")
        n += 1
        assert st == 200, (st, data[:200])
        samples, _ = parse_metrics(data.decode())
        if not settle or metric(samples, "xbnserve_requests_in_flight") == 1:
            break
        assert time.time() < deadline, "requests still in flight after 10 s"
        time.sleep(0.01)
    if attempts is not None:
        attempts.append(n)
    return samples


def model_labels(path):
    """The class labels stored in a model file, read from its safetensors header."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        meta = json.loads(f.read(n))["__metadata__"]
    return json.loads(meta["labels"])


JPEG = image_bytes(1)
PNG = image_bytes(2, "PNG", (64, 64))


def run_check(args, env=None, cfg=None, tmp_path=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("XBNSERVE_")}
    e.update(env or {})
    if cfg is not None:
        p = tmp_path / "c.json"
        p.write_text(json.dumps(cfg))
        args = ["--config", str(p), *args]
    return subprocess.run([BIN, "serve", "--check-config", *args], env=e,
                          capture_output=True, text=True)
