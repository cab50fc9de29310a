"""tests/integration/test_metrics_reload.py - a model that joins the model set after the start
(SIGHUP, or POST /v2/repository/models/{m}/load) has its per-model series from the moment it
serves: exactly N requests to it move its request counter, latency and preprocess histogram
counts, image counter and body byte counters by exactly N (N images, N times the body's
bytes) and the first model's not at all. Removed by a reload, its ready, queue depth, load
time and model_info series go while its counters stay; unloaded over HTTP, it stays listed
with ready 0; added again, its counters go on from where they were. Every exposition passes
`promtool check metrics`. And the model names a daemon takes over its life: exactly
CFG_MAX_MODELS (16) each get their series, one more is refused with a log line.
Env: XBN_BIN, XBN_MODELS."""
import json
import os
import shutil
import signal
import subprocess

import pytest

from xbn import JPEG, MODELS, Server, metric, parse_metrics, wait_log

F035 = os.path.join(MODELS, "mobilenetv2-keras-035.safetensors")  # 17 classes, fast
HDR = {"Content-Type": "image/jpeg"}
JS = {"Content-Type": "application/json"}
N = 5
CAPACITY = 16  # server/limits.h CFG_MAX_MODELS: the model names a daemon serves in its life
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    not PROMTOOL, reason="promtool missing: scripts/deps.sh test installs Debian's prometheus")
# (name, labels beside model) of each counter N requests of one JPEG each move by N
PER_REQUEST = [("xbnserve_requests_total", {"endpoint": "v1_predict", "code": "200"}),
               ("xbnserve_request_duration_seconds_count", {"endpoint": "v1_predict"}),
               ("xbnserve_preprocess_seconds_count", {}),
               ("xbnserve_queue_wait_seconds_count", {}),
               ("xbnserve_images_total", {}),
               ("xbnserve_batch_size_sum", {})]
PRESENT = ("xbnserve_model_ready", "xbnserve_queue_depth", "xbnserve_model_load_seconds",
           "xbnserve_model_info")


def write_config(path, names, repository_api=False):
    with open(path, "w") as f:
        json.dump({"repository_api": repository_api,
                   "models": [{"name": n, "path": F035, "workers": 1, "max_batch_size": 1}
                              for n in names]}, f)


def scrape_text(srv):
    """/metrics once every earlier request is counted (xbn.scrape, keeping the text)."""
    for _ in range(1000):
        st, _, data = srv.request("GET", "/metrics")
        assert st == 200
        text = data.decode()
        if metric(parse_metrics(text)[0], "xbnserve_requests_in_flight") == 1:
            return text
    raise AssertionError("requests still in flight")


def counters(samples, model):
    """The values of PER_REQUEST and of the body byte counters for model."""
    out = {n: metric(samples, n, model=model, **lab) for n, lab in PER_REQUEST}
    for n in ("xbnserve_request_bytes_total", "xbnserve_response_bytes_total"):
        out[n] = metric(samples, n, model=model, endpoint="v1_predict")
    return out


def has_series(samples, name, model):
    return any(n == name and ("model", model) in lab for n, lab in samples)


def predict_n(srv, model, n=N):
    """n single-image predictions, each answered 200; the response body bytes."""
    out = 0
    for _ in range(n):
        st, _, body = srv.request("POST", "/v1/models/%s:predict" % model, JPEG, HDR)
        assert st == 200, body
        out += len(body)
    return out


def reload(srv, expect):
    """SIGHUP, then the reload's summary line must contain expect."""
    mark = len(srv.lines)
    srv.proc.send_signal(signal.SIGHUP)
    wait_log(srv, "reload done", mark)
    assert any(expect in l for l in srv.lines[mark:]), "".join(srv.lines[mark:])


def check_added(before, after, resp_bytes, model="second", other="first", n=N):
    """model's counters moved by exactly n requests of one JPEG, other's not at all."""
    b, a = counters(before, model), counters(after, model)
    want = {k: b[k] + n for k, _ in PER_REQUEST}
    want["xbnserve_request_bytes_total"] = b["xbnserve_request_bytes_total"] + n * len(JPEG)
    want["xbnserve_response_bytes_total"] = b["xbnserve_response_bytes_total"] + resp_bytes
    assert a == want
    assert counters(after, other) == counters(before, other)
    batches = metric(after, "xbnserve_batch_size_count", model=model) - \
        metric(before, "xbnserve_batch_size_count", model=model)
    assert batches == n  # max_batch_size 1
    assert metric(after, "xbnserve_compute_seconds_count", model=model) - \
        metric(before, "xbnserve_compute_seconds_count", model=model) == batches


def check_serving(samples, model):
    assert metric(samples, "xbnserve_model_ready", model=model) == 1
    assert metric(samples, "xbnserve_queue_depth", model=model) == 0
    assert metric(samples, "xbnserve_model_load_seconds", model=model) > 0
    info = [lab for n, lab in samples if n == "xbnserve_model_info" and ("model", model) in lab]
    assert len(info) == 1 and ("version", "1") in info[0] and ("classes", "17") in info[0], info


@pytest.fixture(scope="module")
def sighup_run(tmp_path_factory):
    """One model at start; a second added by SIGHUP, sent N requests, removed by SIGHUP, added
    back and sent N more. The exposition text at each step, and the response bytes."""
    cfg = str(tmp_path_factory.mktemp("sighup") / "c.json")
    write_config(cfg, ["first"])
    srv = Server("--config", cfg)
    out = {}
    try:
        assert predict_n(srv, "first", 2)
        out["start"] = scrape_text(srv)
        write_config(cfg, ["first", "second"])
        reload(srv, "1 added, 0 replaced, 1 unchanged, 0 removed, 0 failed")
        out["added"] = scrape_text(srv)
        out["resp1"] = predict_n(srv, "second")
        out["served"] = scrape_text(srv)
        write_config(cfg, ["first"])
        reload(srv, "0 added, 0 replaced, 1 unchanged, 1 removed, 0 failed")
        out["removed"] = scrape_text(srv)
        write_config(cfg, ["first", "second"])
        reload(srv, "1 added, 0 replaced, 1 unchanged, 0 removed, 0 failed")
        out["back"] = scrape_text(srv)
        out["resp2"] = predict_n(srv, "second")
        out["served2"] = scrape_text(srv)
    finally:
        assert srv.stop() == 0, "".join(srv.lines[-30:])
    out["log"] = "".join(srv.lines)
    return out


def test_sighup_added_model_counted_removed_and_back(sighup_run):
    r = {k: parse_metrics(v)[0] for k, v in sighup_run.items()
         if k not in ("resp1", "resp2", "log")}
    # before the reload the name is unknown: no series of it at all
    assert not any(("model", "second") in lab for _, lab in r["start"])
    # added: served, its series there from the start, all at 0
    check_serving(r["added"], "second")
    assert set(counters(r["added"], "second").values()) == {0}
    assert has_series(r["added"], "xbnserve_preprocess_seconds_count", "second")
    # N requests: exactly N on it, nothing on the first model
    check_added(r["added"], r["served"], sighup_run["resp1"])
    check_serving(r["served"], "first")
    # removed: the present-state series go, the counters stay
    for name in PRESENT:
        assert not has_series(r["removed"], name, "second"), name
    assert counters(r["removed"], "second") == counters(r["served"], "second")
    assert has_series(r["removed"], "xbnserve_preprocess_seconds_count", "second")
    check_serving(r["removed"], "first")
    # added back: the same series, going on from where they were
    check_serving(r["back"], "second")
    assert counters(r["back"], "second") == counters(r["served"], "second")
    check_added(r["back"], r["served2"], sighup_run["resp2"])
    assert metric(r["served2"], "xbnserve_requests_total", model="second",
                  endpoint="v1_predict", code=200) == 2 * N
    assert metric(r["served2"], "xbnserve_preprocess_seconds_count", model="second") == 2 * N
    assert "no room" not in sighup_run["log"]


@needs_promtool
def test_sighup_expositions_pass_promtool(sighup_run):
    for step in ("start", "added", "served", "removed", "back", "served2"):
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=sighup_run[step],
                           capture_output=True, text=True, timeout=60)
        out = r.stdout + r.stderr
        assert r.returncode == 0 and out.strip() == "", (step, out)


def repo(srv, name, what):
    st, _, body = srv.request("POST", "/v2/repository/models/%s/%s" % (name, what), b"", JS)
    return st, json.loads(body)


def test_repository_loaded_model_counted(tmp_path):
    """A model that was not configured at start, loaded through the repository route: its
    series from the load on; unloaded it stays listed (ready 0, no model_info) with its
    counters; loaded again they go on; removed by a reload, ready goes too."""
    cfg = str(tmp_path / "c.json")
    write_config(cfg, ["first"], repository_api=True)
    srv = Server("--config", cfg)
    try:
        start = parse_metrics(scrape_text(srv))[0]
        assert not any(("model", "second") in lab for _, lab in start)
        write_config(cfg, ["first", "second"], repository_api=True)
        assert repo(srv, "second", "load") == (200, {})
        loaded = parse_metrics(scrape_text(srv))[0]
        check_serving(loaded, "second")
        resp = predict_n(srv, "second")
        text = scrape_text(srv)
        served = parse_metrics(text)[0]
        check_added(loaded, served, resp)
        if PROMTOOL:
            r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                               text=True, timeout=60)
            assert r.returncode == 0 and (r.stdout + r.stderr).strip() == "", r.stdout + r.stderr

        assert repo(srv, "second", "unload") == (200, {})
        unloaded = parse_metrics(scrape_text(srv))[0]
        assert metric(unloaded, "xbnserve_model_ready", model="second") == 0
        assert has_series(unloaded, "xbnserve_model_ready", "second")
        assert not has_series(unloaded, "xbnserve_model_info", "second")
        assert counters(unloaded, "second") == counters(served, "second")

        assert repo(srv, "second", "load") == (200, {})
        back = parse_metrics(scrape_text(srv))[0]
        check_serving(back, "second")
        resp = predict_n(srv, "second")
        again = parse_metrics(scrape_text(srv))[0]
        check_added(back, again, resp)
        assert metric(again, "xbnserve_requests_total", model="second", endpoint="v1_predict",
                      code=200) == 2 * N
        # the first load was admitted before the model had a slot: it counts under no model
        for model, n in (("second", 1), ("", 1)):
            assert metric(again, "xbnserve_requests_total", model=model,
                          endpoint="admin_repository_load", code=200) == n

        write_config(cfg, ["first"], repository_api=True)
        reload(srv, "0 added, 0 replaced, 1 unchanged, 1 removed, 0 failed")
        removed = parse_metrics(scrape_text(srv))[0]
        for name in PRESENT:
            assert not has_series(removed, name, "second"), name
        assert counters(removed, "second") == counters(again, "second")
    finally:
        assert srv.stop() == 0, "".join(srv.lines[-30:])


def test_model_names_up_to_capacity(tmp_path):
    """Exactly CAPACITY names over the daemon's life each get their series; a name more is
    refused by the reload (logged; the daemon's slots and the metrics' table have the same
    bound, so no model is ever served without its series) and the others keep serving."""
    cfg = str(tmp_path / "c.json")
    names = ["m%d" % i for i in range(CAPACITY)]
    write_config(cfg, names[:1])
    srv = Server("--config", cfg)
    try:
        write_config(cfg, names)
        reload(srv, "%d added, 0 replaced, 1 unchanged, 0 removed, 0 failed" % (CAPACITY - 1))
        assert predict_n(srv, names[-1], 1)
        full = parse_metrics(scrape_text(srv))[0]
        for n in names:
            check_serving(full, n)
        assert metric(full, "xbnserve_preprocess_seconds_count", model=names[-1]) == 1
        assert metric(full, "xbnserve_images_total", model=names[-1]) == 1

        # one name more, in place of the last: no slot for it
        write_config(cfg, names[:-1] + ["extra"])
        reload(srv, "0 added, 0 replaced, %d unchanged, 1 removed, 1 failed" % (CAPACITY - 1))
        assert any("model extra: no room (at most %d model names)" % CAPACITY in l
                   for l in srv.lines)
        assert srv.request("POST", "/v1/models/extra:predict", JPEG, HDR)[0] == 404
        assert predict_n(srv, names[0], 1)
        after = parse_metrics(scrape_text(srv))[0]
        assert not any(("model", "extra") in lab for _, lab in after)
        assert not has_series(after, "xbnserve_model_ready", names[-1])
        assert metric(after, "xbnserve_images_total", model=names[-1]) == 1
        assert metric(after, "xbnserve_preprocess_seconds_count", model=names[0]) == 1
        assert not any("no room for its metrics" in l for l in srv.lines)
    finally:
        assert srv.stop() == 0, "".join(srv.lines[-30:])
