"""tests/integration/test_http.py - the daemon end to end: start build/xbnserve on a free loopback port,
talk to it with a real HTTP client (http.client), check every endpoint, body format and
error status, batching invariance under 32 concurrent clients, 503 on a full queue and a
graceful SIGTERM drain. Env: XBN_BIN (binary), XBN_MODELS (build/models)."""
import base64
import http.client
import json
import re
import signal
import socket
import subprocess
import threading
import time

import numpy as np
import pytest

from xbn import (BIN, JPEG, PNG, SMALL, Server, image_bytes, metric, model_labels, multipart,
                 raw_scores, run_check, scrape)



def test_health_and_readiness(srv):
    assert srv.json("GET", "/healthz")[0] == 200
    st, _, j = srv.json("GET", "/readyz")
    assert st == 200 and j["status"] == "ready"
    assert srv.json("GET", "/v2/health/live")[2] == {"live": True}
    assert srv.json("GET", "/v2/health/ready")[2] == {"ready": True}
    assert srv.json("GET", "/v2/models/small/ready")[0] == 200
    assert srv.request("HEAD", "/healthz")[0] == 200


def test_model_listing(srv):
    status = {"name": "small", "status": "ready", "ready": True,
              "model_version_status": [{"version": "1", "state": "AVAILABLE",
                                        "status": {"error_code": "OK", "error_message": ""}}],
              "arch": "mobilenetv2", "flavour": "keras", "classes": 17, "input_size": 224,
              "untrained": True, "max_batch_size": 8, "workers": 1, "width": 0.35,
              "source": "init seed=404 (xbnweights.py testset)", "path": SMALL}
    st, _, j = srv.json("GET", "/v1/models")
    assert (st, j) == (200, {"models": ["small"], "details": [status]})
    assert srv.json("GET", "/v1/models/small")[2] == status
    st, _, meta = srv.json("GET", "/v2/models/small")
    assert st == 200 and meta["name"] == "small"
    assert meta["inputs"][0]["shape"] == [-1, 3, 224, 224]
    assert meta["outputs"][0]["shape"] == [-1, 17]
    assert srv.json("GET", "/v2")[2]["name"] == "xbnserve"


def test_raw_jpeg_png_octet(srv):
    for data, ct in ((JPEG, "image/jpeg"), (PNG, "image/png"), (JPEG, "application/octet-stream")):
        st, h, j = srv.json("POST", "/v1/models/small:predict", data, {"Content-Type": ct})
        assert st == 200, j
        assert j["model"] == "small" and len(j["predictions"]) == 1
        top = j["predictions"][0]
        assert len(top) == 5
        assert all(set(e) == {"index", "label", "score"} for e in top)
        assert [e["score"] for e in top] == sorted([e["score"] for e in top], reverse=True)
        assert "X-Request-Id" in h
        assert re.fullmatch(r"[0-9a-f]{1,16}", h["X-Request-Id"])  # none sent: the daemon's
        labels = model_labels(SMALL)
        assert all(e["label"] == labels[e["index"]] for e in top)


def test_top_k(srv):
    hdr = {"Content-Type": "image/jpeg"}
    assert len(srv.json("POST", "/v1/models/small:predict?top_k=2", JPEG, hdr)[2]["predictions"][0]) == 2
    allk = srv.json("POST", "/v1/models/small:predict?top_k=0", JPEG, hdr)[2]["predictions"][0]
    assert len(allk) == 17
    assert abs(sum(e["score"] for e in allk) - 1) < 1e-5
    assert srv.request("POST", "/v1/models/small:predict?top_k=-1", JPEG, hdr)[0] == 400
    assert srv.request("POST", "/v1/models/small:predict?top_k=x", JPEG, hdr)[0] == 400


def test_multi_image_multipart_in_order(srv):
    imgs = [image_bytes(10 + i) for i in range(5)] + [PNG]
    body, hdr = multipart([(d, "image/png" if d is PNG else "image/jpeg") for d in imgs],
                          {"top_k": "3"})
    st, _, data = srv.request("POST", "/v1/models/small:predict", body, hdr)
    assert st == 200, data
    j = json.loads(data)
    assert len(j["predictions"]) == 6 and all(len(p) == 3 for p in j["predictions"])
    for i, d in enumerate(imgs):
        _, _, one = srv.request("POST", "/v1/models/small:predict?top_k=3", d,
                                {"Content-Type": "image/jpeg"})
        assert raw_scores(one)[0] == raw_scores(data)[i]


def test_json_b64(srv):
    body = json.dumps({"instances": [{"b64": base64.b64encode(JPEG).decode()},
                                     {"image": {"b64": base64.b64encode(PNG).decode()}}],
                       "top_k": 4})
    st, _, data = srv.request("POST", "/v1/models/small:predict", body,
                              {"Content-Type": "application/json"})
    assert st == 200, data
    j = json.loads(data)
    assert len(j["predictions"]) == 2 and len(j["predictions"][0]) == 4
    _, _, one = srv.request("POST", "/v1/models/small:predict?top_k=4", JPEG,
                            {"Content-Type": "image/jpeg"})
    assert raw_scores(one)[0] == raw_scores(data)[0]


def test_v2_infer_bytes_and_fp32(srv):
    body = {"id": "abc", "inputs": [{"name": "image", "datatype": "BYTES", "shape": [2],
                                     "data": [base64.b64encode(JPEG).decode(),
                                              base64.b64encode(PNG).decode()]}]}
    st, _, j = srv.json("POST", "/v2/models/small/infer", json.dumps(body),
                        {"Content-Type": "application/json"})
    assert st == 200, j
    assert j["model_name"] == "small" and j["id"] == "abc"
    out = j["outputs"][0]
    assert out["name"] == "probabilities" and out["shape"] == [2, 17] and len(out["data"]) == 34
    assert abs(sum(out["data"][:17]) - 1) < 1e-5
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 224, 224)).astype(np.float32)
    req = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 3, 224, 224],
                       "data": [float(v) for v in x.ravel()]}],
           "outputs": [{"name": "logits"}, {"name": "probabilities"}]}
    st, _, j = srv.json("POST", "/v2/models/small/infer", json.dumps(req))
    assert st == 200, j
    names = {o["name"]: o for o in j["outputs"]}
    assert names["logits"]["shape"] == [2, 17]
    # batch invariance through the V2 path: row 1 alone equals row 1 of the pair
    req1 = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 224, 224],
                        "data": x[1].tolist()}], "outputs": [{"name": "logits"}]}
    st, _, j1 = srv.json("POST", "/v2/models/small/infer", json.dumps(req1))
    assert st == 200
    assert j1["outputs"][0]["data"] == names["logits"]["data"][17:]


def test_error_statuses(srv):
    jpg = {"Content-Type": "image/jpeg"}
    st, h, j = srv.json("GET", "/nowhere")
    assert st == 404 and "error" in j
    assert srv.json("POST", "/v1/models/nope:predict", JPEG, jpg)[0] == 404
    assert srv.json("GET", "/v2/models/nope")[0] == 404
    st, h, j = srv.json("GET", "/v1/models/small:predict")
    assert st == 405 and "POST" in h.get("Allow", "")
    assert h["Allow"] == "POST, PUT"
    assert srv.json("POST", "/healthz", b"x")[0] == 405
    assert srv.json("POST", "/v1/models/small:predict", b"hello", {"Content-Type": "text/plain"})[0] == 415
    assert srv.json("POST", "/v1/models/small:predict", b"GIF89a....", jpg)[0] == 415
    assert srv.json("POST", "/v1/models/small:predict", JPEG[:200], jpg)[0] == 400
    assert srv.json("POST", "/v1/models/small:predict", b"{", {"Content-Type": "application/json"})[0] == 400
    assert srv.json("POST", "/v1/models/small:predict", json.dumps({"instances": [{"b64": "@@@"}]}),
                    {"Content-Type": "application/json"})[0] == 400
    assert srv.json("POST", "/v2/models/small/infer", json.dumps({"inputs": []}))[0] == 400
    bad_shape = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 2, 2], "data": [0] * 12}]}
    assert srv.json("POST", "/v2/models/small/infer", json.dumps(bad_shape))[0] == 400
    # 413: by Content-Length, before any body byte is read
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    c.putrequest("POST", "/v1/models/small:predict")
    c.putheader("Content-Type", "image/jpeg")
    c.putheader("Content-Length", str(5 << 30))
    c.endheaders()
    t0 = time.time()
    r = c.getresponse()
    assert r.status == 413 and "error" in json.loads(r.read())
    assert time.time() - t0 < 2
    c.close()
    many, hdr = multipart([(JPEG, "image/jpeg")] * 17)
    assert srv.json("POST", "/v1/models/small:predict", many, hdr)[0] == 413
    assert srv.request("GET", "/v1/models/" + "a" * 3000)[0] == 414
    # the server is still healthy after all that
    assert srv.json("GET", "/healthz")[0] == 200


def test_405_allow_is_the_routes_even_for_a_long_path(srv):
    # the request log keeps 255 bytes of the path; Allow comes from the matched route
    st, h, j = srv.json("GET", "/v1/models/" + "a" * 300 + ":predict")
    assert st == 405 and h.get("Allow") == "POST, PUT" and "use POST" in j["error"]
    st, h, _ = srv.json("POST", "/v2/models/small/ready", b"x")
    assert st == 405 and h.get("Allow") == "GET, HEAD"


def test_metrics(srv):
    st, h, data = srv.request("GET", "/metrics")
    text = data.decode()
    assert st == 200 and h["Content-Type"].startswith("text/plain")
    for name in ("xbnserve_requests_total", "xbnserve_request_duration_seconds_bucket",
                 "xbnserve_queue_wait_seconds_bucket", "xbnserve_compute_seconds_bucket",
                 "xbnserve_batch_size_bucket", "xbnserve_queue_depth", "xbnserve_requests_in_flight",
                 "xbnserve_model_load_seconds", "process_resident_memory_bytes"):
        assert name in text, name
    assert re.search(r'xbnserve_requests_total\{model="small",endpoint="v1_predict",code="200"\} \d+', text)
    # by value: one more predict moves the counter by exactly one
    before = scrape(srv)
    assert srv.request("POST", "/v1/models/small:predict", JPEG, {"Content-Type": "image/jpeg"})[0] == 200
    after = scrape(srv)
    for name in ("xbnserve_requests_total", "xbnserve_request_duration_seconds_count"):
        lab = {"model": "small", "endpoint": "v1_predict"}
        if name == "xbnserve_requests_total":
            lab["code"] = 200
        assert metric(after, name, **lab) - metric(before, name, **lab) == 1, name
    assert metric(before, "xbnserve_requests_total", model="small", endpoint="v1_predict",
                  code=200) >= 1


def test_request_log_lines(srv):
    srv.request("POST", "/v1/models/small:predict", JPEG, {"Content-Type": "image/jpeg",
                                                           "X-Request-Id": "trace-42"})
    time.sleep(0.2)
    line = [l for l in srv.lines if "id=trace-42" in l]
    assert line and "status=200" in line[0] and "images=1" in line[0] and "batch=" in line[0]
    assert len(line) == 1
    assert re.search(r" request id=trace-42 trace_id=[0-9a-f]{32} POST /v1/models/small:predict "
                     r"model=small "
                     r"status=200 images=1 batch=1 latency_ms=\d+\.\d+$", line[0]), line[0]


def test_concurrent_clients_bit_identical(srv):
    imgs = [image_bytes(100 + i, "JPEG" if i % 2 else "PNG") for i in range(32)]
    hdr = {"Content-Type": "application/octet-stream"}
    alone = [srv.request("POST", "/v1/models/small:predict?top_k=0", d, hdr)[2] for d in imgs]
    together = [None] * 32
    barrier = threading.Barrier(32)

    def client(i):
        barrier.wait()
        together[i] = srv.request("POST", "/v1/models/small:predict?top_k=0", imgs[i], hdr)

    ts = [threading.Thread(target=client, args=(i,)) for i in range(32)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for i in range(32):
        assert together[i][0] == 200
        assert together[i][2] == alone[i]
    # they really were batched
    text = srv.request("GET", "/metrics")[2].decode()
    m = re.search(r'xbnserve_batch_size_bucket\{model="small",le="1"\} (\d+)', text)
    c = re.search(r'xbnserve_batch_size_count\{model="small"\} (\d+)', text)
    assert int(c.group(1)) > int(m.group(1)), "no batch larger than 1"


def test_full_queue_503_fast():
    s = Server("--model", "small=" + SMALL, "--max-batch-size", "1", "--max-queue-size", "2",
               "--workers", "1", "--max-queue-delay-us", "0")
    try:
        body, hdr = multipart([(JPEG, "image/jpeg")] * 2)
        res = []

        def client():
            t0 = time.time()
            st, h, _ = s.request("POST", "/v1/models/small:predict", body, hdr)
            res.append((st, h.get("Retry-After"), time.time() - t0))

        ts = [threading.Thread(target=client) for _ in range(16)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        full = [r for r in res if r[0] == 503]
        assert full, res
        assert all(r[1] for r in full)
        assert all(r[1] == "1" for r in full)
        assert min(r[2] for r in full) < 0.5
        assert all(r[0] in (200, 503) for r in res)
    finally:
        assert s.stop() == 0


def test_deadline_504():
    s = Server("--model", "small=" + SMALL, "--max-batch-size", "8",
               "--max-queue-delay-us", "400000", "--request-timeout-ms", "50")
    try:
        st, _, j = s.json("POST", "/v1/models/small:predict", JPEG, {"Content-Type": "image/jpeg"})
        assert st == 504 and "error" in j
    finally:
        assert s.stop() == 0


def test_sigterm_drains_in_flight():
    s = Server("--model", "small=" + SMALL, "--max-batch-size", "4", "--workers", "1",
               "--max-queue-delay-us", "1000")
    body, hdr = multipart([(image_bytes(i), "image/jpeg") for i in range(4)])
    res = []

    def client():
        res.append(s.request("POST", "/v1/models/small:predict", body, hdr)[0])

    ts = [threading.Thread(target=client) for _ in range(12)]
    for t in ts:
        t.start()
    deadline = time.time() + 10
    while time.time() < deadline:  # all 12 accepted (the scrape itself is the 13th)
        text = s.request("GET", "/metrics")[2].decode()
        if int(re.search(r"xbnserve_requests_in_flight (\d+)", text).group(1)) >= 13:
            break
    t0 = time.time()
    s.proc.send_signal(signal.SIGTERM)
    for t in ts:
        t.join()
    rc = s.stop(signal_it=False)
    assert rc == 0
    assert res == [200] * 12, res
    assert time.time() - t0 < 30
    assert any("stopped after" in l for l in s.lines)


def test_readiness_503_while_draining():
    s = Server("--model", "small=" + SMALL, "--max-queue-delay-us", "2000000",
               "--max-batch-size", "8", "--drain-timeout-ms", "10000")
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
    c.request("GET", "/readyz")
    r = c.getresponse()
    assert r.status == 200 and json.loads(r.read()) == {"status": "ready"}
    done = []
    t = threading.Thread(target=lambda: done.append(
        s.request("POST", "/v1/models/small:predict", JPEG, {"Content-Type": "image/jpeg"})[0]))
    t.start()
    time.sleep(0.3)
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    # a new connection is refused at once (not left in the listen backlog until exit), so a
    # load balancer or client retries elsewhere knowing nothing was sent
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", s.port), timeout=5).close()
    c.request("GET", "/readyz")  # kept-alive connection accepted before the signal
    r = c.getresponse()
    assert r.status == 503
    r.read()
    t.join()
    assert done == [200]
    assert s.stop(signal_it=False) == 0


def test_drain_answers_connection_opened_before_sigterm():
    """A client that connected before SIGTERM but sends its request a moment later (nothing
    in flight when the drain starts) is answered 200, not 503; one that never sends holds the
    exit up only about a second."""
    s = Server("--model", "small=" + SMALL, "--drain-timeout-ms", "20000")
    late = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    silent = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    time.sleep(0.3)  # both accepted by the daemon, neither has sent a byte
    t0 = time.time()
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    late.sendall(b"POST /v1/models/small:predict HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(JPEG) + JPEG)
    r = http.client.HTTPResponse(late)
    r.begin()
    body = r.read()
    assert r.status == 200, body
    assert json.loads(body)
    assert s.stop(signal_it=False) == 0
    assert time.time() - t0 < 5
    late.close()
    silent.close()


def test_config_check_and_errors(tmp_path):
    good = {"port": 9000, "models": [{"name": "a", "path": SMALL, "max_batch_size": 4}]}
    r = run_check([], cfg=good, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["port"] == 9000
    # precedence: CLI > env > file
    r = run_check([], env={"XBNSERVE_PORT": "9001"}, cfg=good, tmp_path=tmp_path)
    assert json.loads(r.stdout)["port"] == 9001
    r = run_check(["--port", "9002"], env={"XBNSERVE_PORT": "9001"}, cfg=good, tmp_path=tmp_path)
    assert json.loads(r.stdout)["port"] == 9002
    r = run_check(["--max-batch-size", "16"], cfg=good, tmp_path=tmp_path)
    assert json.loads(r.stdout)["models"][0]["max_batch_size"] == 16
    bad = dict(good, max_body_bites=5)
    r = run_check([], cfg=bad, tmp_path=tmp_path)
    assert r.returncode != 0 and "max_body_bites" in r.stderr
    bad = {"models": [{"name": "a", "path": SMALL, "max_batch_size": 0}]}
    r = run_check([], cfg=bad, tmp_path=tmp_path)
    assert r.returncode != 0 and "max_batch_size" in r.stderr
    r = run_check([], env={"XBNSERVE_PORT": "http"}, cfg=good, tmp_path=tmp_path)
    assert r.returncode != 0 and "XBNSERVE_PORT" in r.stderr
    r = run_check(["--no-such-flag", "1"], cfg=good, tmp_path=tmp_path)
    assert r.returncode != 0 and "no-such-flag" in r.stderr
    r = run_check([], env={"XBNSERVE_MODELS": "x=/nonexistent.safetensors"})
    assert r.returncode != 0 and "nonexistent" in r.stderr


def cpu_tables():
    """The engine's kernel tables this CPU runs, from the kernel's own CPU flags."""
    with open("/proc/cpuinfo") as f:
        flags = next(line for line in f if line.startswith("flags")).split()
    avx2 = "avx2" in flags and "fma" in flags
    return {"avx512": avx2 and "avx512f" in flags, "avx2": avx2, "blas": True}


def test_gemm_setting(tmp_path):
    """`gemm` (file key, --gemm, XBNSERVE_GEMM) picks the engine's kernels; the model's load
    line names them, the daemon answers with them, and kernels the CPU lacks stop the start."""
    good = {"gemm": "avx2", "models": [{"name": "a", "path": SMALL}]}
    r = run_check([], cfg=good, tmp_path=tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)["gemm"] == "avx2", r.stderr
    r = run_check([], env={"XBNSERVE_GEMM": "blas"}, cfg=good, tmp_path=tmp_path)
    assert json.loads(r.stdout)["gemm"] == "blas"
    r = run_check(["--gemm", "auto"], env={"XBNSERVE_GEMM": "blas"}, cfg=good, tmp_path=tmp_path)
    assert json.loads(r.stdout)["gemm"] == "auto"
    r = run_check(["--gemm", "sse2"], cfg=good, tmp_path=tmp_path)
    assert r.returncode != 0 and "gemm" in r.stderr and "auto|avx512|avx2|blas" in r.stderr
    s = Server("--model", "small=" + SMALL, "--gemm", "blas")
    try:
        assert any("model small loaded" in ln and "gemm=blas" in ln for ln in s.lines), s.lines
        st, _, doc = s.json("POST", "/v1/models/small:predict", image_bytes(3),
                            {"Content-Type": "image/jpeg"})
        assert st == 200 and len(doc["predictions"]) == 1, doc
    finally:
        assert s.stop() == 0
    missing = [g for g, ok in cpu_tables().items() if not ok]
    if missing:
        r = subprocess.run([BIN, "serve", "--port", "0", "--gemm", missing[0], "--model",
                            "small=" + SMALL], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "gemm %s: this CPU lacks" % missing[0] in r.stderr, r.stderr


def test_bad_model_fails_at_start(tmp_path):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(open(SMALL, "rb").read()[:100000])
    r = subprocess.run([BIN, "serve", "--port", "0", "--model", "bad=" + str(p)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "bad" in r.stderr
