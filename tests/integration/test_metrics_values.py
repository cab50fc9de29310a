"""tests/integration/test_metrics_values.py - /metrics asserted by value: a known set of
requests moves each xbnserve_requests_total series (model, endpoint, code) and each
histogram's count by exactly the number sent, image and batch counters by exactly the images
and batches computed, and the gauges (queue depth, requests in flight) return to their idle
values. The exposition text is parsed line by line (xbn.parse_metrics); every scrape
waits until only itself is in flight, so every earlier request has been counted."""
import base64
import io
import json
import os
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

from xbn import (JPEG, PNG, SMALL, Server, image_bytes, metric, multipart, parse_metrics,
                       scrape)

PREDICT = "/v1/models/small:predict"
V2_INFER = "/v2/models/small/infer"
JSON = {"Content-Type": "application/json"}
HDR_JPEG = {"Content-Type": "image/jpeg"}
HISTOGRAMS = ("xbnserve_request_duration_seconds", "xbnserve_queue_wait_seconds",
              "xbnserve_compute_seconds", "xbnserve_batch_size")


@pytest.fixture(scope="module")
def msrv():
    s = Server("--model", "small=" + SMALL, "--max-batch-size", "8", "--max-queue-delay-us",
               "1000", "--max-url-bytes", "256", "--max-images-per-request", "8")
    yield s
    assert s.stop() == 0, "".join(s.lines[-30:])


def delta(before, after, name, **labels):
    return metric(after, name, **labels) - metric(before, name, **labels)


def series(samples, name):
    """{labels-dict-as-tuple: value} of one metric name."""
    return {lab: v for (n, lab), v in samples.items() if n == name}


def check_histograms(samples):
    """Every histogram series: buckets cumulative and non-decreasing in le, le="+Inf" equal
    to _count, _sum non-negative."""
    for h in HISTOGRAMS:
        buckets = {}
        for (n, lab), v in samples.items():
            if n == h + "_bucket":
                d = dict(lab)
                le = d.pop("le")
                buckets.setdefault(tuple(sorted(d.items())), []).append((float(le), v))
        assert buckets, h
        for lab, bs in buckets.items():
            bs.sort()
            values = [v for _, v in bs]
            assert values == sorted(values), (h, lab, bs)
            assert bs[-1][0] == float("inf")
            assert bs[-1][1] == samples[(h + "_count", lab)], (h, lab)
            assert samples[(h + "_sum", lab)] >= 0


def test_types_declared(msrv):
    st, h, data = msrv.request("GET", "/metrics")
    assert st == 200
    assert h["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    _, types = parse_metrics(data.decode())
    assert types == {
        "xbnserve_requests_total": "counter",
        "xbnserve_request_duration_seconds": "histogram",
        "xbnserve_queue_wait_seconds": "histogram",
        "xbnserve_compute_seconds": "histogram",
        "xbnserve_batch_size": "histogram",
        "xbnserve_images_total": "counter",
        "xbnserve_queue_depth": "gauge",
        "xbnserve_model_ready": "gauge",
        "xbnserve_model_load_seconds": "gauge",
        "xbnserve_requests_in_flight": "gauge",
        "xbnserve_decode_queue_depth": "gauge",
        "xbnserve_request_bytes_total": "counter",
        "xbnserve_response_bytes_total": "counter",
        "xbnserve_preprocess_seconds": "histogram",
        "xbnserve_model_info": "gauge",
        "xbnserve_build_info": "gauge",
        "process_cpu_seconds_total": "counter",
        "process_resident_memory_bytes": "gauge",
        "process_virtual_memory_bytes": "gauge",
        "process_open_fds": "gauge",
        "process_max_fds": "gauge",
        "process_start_time_seconds": "gauge",
    }


def test_requests_total_by_model_endpoint_code(msrv):
    """A known mix of requests; every requests_total series moves by exactly its share, and
    no other series moves."""
    b64 = base64.b64encode(JPEG).decode()
    v2 = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                 "data": [b64]}]})
    sent = [  # (method, path, body, headers, expected status, model, endpoint)
        *[("POST", PREDICT, JPEG, HDR_JPEG, 200, "small", "v1_predict")] * 3,
        ("POST", PREDICT, JPEG[:300], HDR_JPEG, 400, "small", "v1_predict"),
        ("POST", PREDICT, b"hello", {"Content-Type": "text/plain"}, 415, "small", "v1_predict"),
        ("GET", PREDICT, None, None, 405, "small", "v1_predict"),
        ("POST", "/v1/models/nope:predict", JPEG, HDR_JPEG, 404, "", "v1_predict"),
        *[("POST", "/v2/models/small/infer", v2, None, 200, "small", "v2_infer")] * 2,
        ("POST", "/v2/models/small/infer", "{}", None, 400, "small", "v2_infer"),
        *[("GET", "/nowhere", None, None, 404, "", "other")] * 2,
        ("GET", "/healthz?x=" + "a" * 300, None, None, 414, "", "other"),
        *[("GET", "/healthz", None, None, 200, "", "healthz")] * 4,
        ("HEAD", "/healthz", None, None, 200, "", "healthz"),
        ("GET", "/readyz", None, None, 200, "", "readyz"),
        *[("GET", "/v1/models", None, None, 200, "", "v1_models")] * 2,
        ("GET", "/v1/models/small", None, None, 200, "small", "v1_model"),
        ("GET", "/v2", None, None, 200, "", "v2_server"),
        ("GET", "/v2/health/live", None, None, 200, "", "v2_live"),
        ("GET", "/v2/health/ready", None, None, 200, "", "v2_ready"),
        ("GET", "/v2/models/small", None, None, 200, "small", "v2_model"),
        ("GET", "/v2/models/small/ready", None, None, 200, "small", "v2_model_ready"),
    ]
    before = scrape(msrv)
    want, per_endpoint = {}, {}
    for method, path, body, hdr, status, model, ep in sent:
        st, _, data = msrv.request(method, path, body, hdr)
        assert st == status, (method, path, st, data[:200])
        want[(model, ep, status)] = want.get((model, ep, status), 0) + 1
        per_endpoint[(model, ep)] = per_endpoint.get((model, ep), 0) + 1
    attempts = []
    after = scrape(msrv, attempts=attempts)
    # the scrapes: `before` itself and every attempt of `after` but the one rendering
    want[("", "metrics", 200)] = attempts[0]
    per_endpoint[("", "metrics")] = attempts[0]
    moved = {}
    for lab, v in series(after, "xbnserve_requests_total").items():
        d = dict(lab)
        dv = v - metric(before, "xbnserve_requests_total", **d)
        if dv:
            moved[(d["model"], d["endpoint"], int(d["code"]))] = dv
    assert moved == want
    # probes, /metrics and unknown routes are counted but kept out of the latency histogram,
    # so its cardinality stays small (docs/api.md)
    unhistogrammed = {"healthz", "readyz", "v2_live", "v2_ready", "v2_model_ready", "metrics",
                      "other"}
    for (model, ep), n in per_endpoint.items():
        assert delta(before, after, "xbnserve_request_duration_seconds_count", model=model,
                     endpoint=ep) == (0 if ep in unhistogrammed else n), (model, ep)
    check_histograms(after)


def test_images_batches_and_waits_counted(msrv):
    """Images computed move images_total, queue_wait's count and batch_size's sum by exactly
    their number; batches move compute's and batch_size's count alike; the latency sum grows
    by no more than the clients measured."""
    before = scrape(msrv)
    t0 = time.time()
    body, hdr = multipart([(image_bytes(i, size=(40, 32)), "image/jpeg") for i in range(5)])
    assert msrv.request("POST", PREDICT, body, hdr)[0] == 200
    assert msrv.request("POST", PREDICT, PNG, {"Content-Type": "image/png"})[0] == 200
    assert msrv.request("POST", PREDICT, b"GIF89a....", HDR_JPEG)[0] == 415  # no image run
    client_s = time.time() - t0
    after = scrape(msrv)
    assert delta(before, after, "xbnserve_images_total", model="small") == 6
    assert delta(before, after, "xbnserve_queue_wait_seconds_count", model="small") == 6
    assert delta(before, after, "xbnserve_batch_size_sum", model="small") == 6
    batches = delta(before, after, "xbnserve_batch_size_count", model="small")
    assert 2 <= batches <= 6  # the 5 may be split; the PNG came later
    assert delta(before, after, "xbnserve_compute_seconds_count", model="small") == batches
    lat = delta(before, after, "xbnserve_request_duration_seconds_sum", model="small",
                endpoint="v1_predict")
    assert 0 < lat <= client_s
    assert delta(before, after, "xbnserve_request_duration_seconds_count", model="small",
                 endpoint="v1_predict") == 3
    check_histograms(after)


def test_client_gone_counted_499(msrv):
    """A client that leaves mid-body is counted once, as 499."""
    before = scrape(msrv)
    c = socket.create_connection(("127.0.0.1", msrv.port), timeout=5)
    c.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
              b"Content-Length: %d\r\n\r\n" % (PREDICT.encode(), len(JPEG)) + JPEG[:100])
    time.sleep(0.2)
    c.close()
    deadline = time.time() + 5
    while True:
        after = scrape(msrv)
        if delta(before, after, "xbnserve_requests_total", model="small",
                 endpoint="v1_predict", code=499) or time.time() > deadline:
            break
        time.sleep(0.05)
    assert delta(before, after, "xbnserve_requests_total", model="small",
                 endpoint="v1_predict", code=499) == 1
    assert delta(before, after, "xbnserve_images_total", model="small") == 0


def statm_rss(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_gauges_idle(msrv):
    lo = statm_rss(msrv.proc.pid)
    m = scrape(msrv)
    hi = statm_rss(msrv.proc.pid)
    assert metric(m, "xbnserve_queue_depth", model="small") == 0
    assert metric(m, "xbnserve_decode_queue_depth") == 0
    assert metric(m, "xbnserve_requests_in_flight") == 1  # this scrape
    assert metric(m, "xbnserve_model_ready", model="small") == 1
    load = metric(m, "xbnserve_model_load_seconds", model="small")
    assert 0 < load < 60
    rss = metric(m, "process_resident_memory_bytes")
    assert min(lo, hi) - (8 << 20) <= rss <= max(lo, hi) + (8 << 20), (lo, rss, hi)


def test_gauges_under_load_and_back_to_idle():
    """Images waiting for a batch to fill show in queue_depth exactly, their requests in
    requests_in_flight; once the batch runs, both return to idle (0, and 1 for the scrape)."""
    s = Server("--model", "small=" + SMALL, "--max-batch-size", "4", "--workers", "1",
               "--max-queue-delay-us", "10000000")
    try:
        res = []
        ts = [threading.Thread(target=lambda: res.append(
            s.request("POST", PREDICT, JPEG, HDR_JPEG)[0])) for _ in range(3)]
        for t in ts:
            t.start()
        deadline = time.time() + 5
        while True:  # (an earlier scrape may still be finishing: in flight for a moment)
            m = scrape(s, settle=False)
            depth = metric(m, "xbnserve_queue_depth", model="small")
            in_flight = metric(m, "xbnserve_requests_in_flight")
            if depth == 3 and in_flight == 4:  # 3 waiting + this scrape
                break
            assert time.time() < deadline, (depth, in_flight)
            time.sleep(0.02)
        assert metric(m, "xbnserve_images_total", model="small") == 0
        assert s.request("POST", PREDICT, JPEG, HDR_JPEG)[0] == 200  # fills the batch
        for t in ts:
            t.join(timeout=10)
        assert res == [200] * 3
        m = scrape(s)
        assert metric(m, "xbnserve_queue_depth", model="small") == 0
        assert metric(m, "xbnserve_requests_in_flight") == 1
        assert metric(m, "xbnserve_images_total", model="small") == 4
        assert metric(m, "xbnserve_batch_size_count", model="small") == 1
        assert metric(m, "xbnserve_batch_size_bucket", model="small", le="2") == 0
        assert metric(m, "xbnserve_batch_size_bucket", model="small", le="4") == 1
    finally:
        assert s.stop() == 0, "".join(s.lines[-30:])


def slow_to_decode(n=3):
    """A multipart of n 6300 x 6300 progressive JPEGs: each keeps a decode thread busy for
    about half a second (libjpeg walks every coefficient of every scan)."""
    x = (np.arange(6300, dtype=np.uint32) * 255 // 6300).astype(np.uint8)
    a = np.empty((6300, 6300, 3), np.uint8)
    a[:] = x[None, :, None]
    b = io.BytesIO()
    Image.fromarray(a, "RGB").save(b, format="JPEG", quality=90, progressive=True)
    return multipart([(b.getvalue(), "image/jpeg")] * n)


def test_decode_queue_depth_exact_and_bounded():
    """One decode thread busy with a slow request: the requests behind it show in
    xbnserve_decode_queue_depth exactly (and in requests_in_flight); with decode_queue_size of
    them waiting, the next image request is refused with 503 + Retry-After (a v1 one at the
    door; a V2 one with images once its body says so), while a V2 FP32 tensor, which is never
    decoded, is still served; once the slow one is decoded every waiting one is served and
    the gauge is back to 0."""
    s = Server("--model", "small=" + SMALL, "--decode-threads", "1", "--decode-queue-size", "3",
               "--max-image-pixels", "40000000")
    try:
        slow, hdr = slow_to_decode(5)
        res = []

        def send(body, headers):
            res.append(s.request("POST", PREDICT, body, headers, timeout=60)[0])

        ts = [threading.Thread(target=send, args=(slow, hdr))]
        ts[0].start()
        deadline = time.time() + 30
        # its first image decoded: the thread has four more to go, about two seconds
        while metric(scrape(s, settle=False), "xbnserve_preprocess_seconds_count",
                     model="small") < 1:
            assert time.time() < deadline, "the slow request was never decoded"
            time.sleep(0.01)
        for _ in range(3):
            ts.append(threading.Thread(target=send, args=(JPEG, HDR_JPEG)))
            ts[-1].start()
        while True:
            m = scrape(s, settle=False)
            depth = metric(m, "xbnserve_decode_queue_depth")
            in_flight = metric(m, "xbnserve_requests_in_flight")
            if depth == 3 and in_flight == 5:  # slow + 3 waiting + this scrape
                break
            assert depth <= 3 and time.time() < deadline, (depth, in_flight)
            time.sleep(0.01)
        st, h, j = s.json("POST", PREDICT, JPEG, HDR_JPEG)
        assert st == 503 and j["error"] == "decode queue full, retry later", j
        assert h.get("Retry-After") == "1"
        fp32 = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 224, 224],
                            "data": [0.5] * (3 * 224 * 224)}]}
        st, _, j = s.json("POST", V2_INFER, json.dumps(fp32), JSON)
        assert st == 200 and j["outputs"][0]["shape"] == [1, 17], j
        images = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                              "data": [base64.b64encode(JPEG).decode()]}]}
        st, h, j = s.json("POST", V2_INFER, json.dumps(images), JSON)
        assert st == 503 and j["error"] == "decode queue full, retry later", j
        assert h.get("Retry-After") == "1"
        assert metric(scrape(s, settle=False), "xbnserve_decode_queue_depth") == 3
        for t in ts:
            t.join(timeout=60)
        assert res == [200] * 4
        m = scrape(s)
        assert metric(m, "xbnserve_decode_queue_depth") == 0
        assert metric(m, "xbnserve_requests_in_flight") == 1
        assert metric(m, "xbnserve_preprocess_seconds_count", model="small") == 8
        assert metric(m, "xbnserve_requests_total", model="small", endpoint="v1_predict",
                      code=503) == 1
        assert metric(m, "xbnserve_requests_total", model="small", endpoint="v2_infer",
                      code=200) == 1
        assert metric(m, "xbnserve_requests_total", model="small", endpoint="v2_infer",
                      code=503) == 1
    finally:
        assert s.stop() == 0, "".join(s.lines[-30:])


def test_metrics_disabled():
    s = Server("--model", "small=" + SMALL, "--metrics", "false")
    try:
        st, _, j = s.json("GET", "/metrics")
        assert st == 404 and j["error"] == "metrics are disabled (metrics: false)"
    finally:
        assert s.stop() == 0
