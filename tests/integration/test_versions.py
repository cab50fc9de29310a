"""tests/integration/test_versions.py - a model directory of numbered versions
(dir/N/model.safetensors) served as TF Serving and Triton serve them: the version policy picks
the served ones, requests without a version reach the highest, versioned paths (V2's
/versions/{v}, TF Serving's /v1/models/{m}/versions/{v}:predict) reach theirs, SIGHUP picks up
a version added or removed. Versions are made from different files and told apart by their
answers."""
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from xbn import BIN, JPEG, MODELS, Server, wait_log

F035 = os.path.join(MODELS, "mobilenetv2-keras-035.safetensors")  # 17 classes
F100 = os.path.join(MODELS, "mobilenetv2-keras-100.safetensors")  # 1000 classes
FTORCH = os.path.join(MODELS, "mobilenetv2-torch.safetensors")    # 1000, other weights
HDR = {"Content-Type": "image/jpeg"}
V2_BODY = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                  "data": [base64.b64encode(JPEG).decode()]}]}).encode()
V2_HDR = {"Content-Type": "application/json"}


def signature(body):
    """The answer's top three classes and scores: different files give different ones."""
    p = json.loads(body)["predictions"][0]
    return json.dumps(p, sort_keys=True)


def make_dir(root, files):
    """root/{v}/model.safetensors for each v: file."""
    os.makedirs(root, exist_ok=True)
    for v, f in files.items():
        os.makedirs(os.path.join(root, str(v)), exist_ok=True)
        shutil.copy(f, os.path.join(root, str(v), "model.safetensors"))
    return root


def write_config(path, model_dir, policy=None):
    m = {"name": "m", "path": model_dir, "workers": 1, "max_batch_size": 4}
    if policy is not None:
        m["version_policy"] = policy
    with open(path, "w") as f:
        json.dump({"models": [m]}, f)
    return path


def predict(srv, path):
    st, _, body = srv.request("POST", path + "?top_k=3", JPEG, HDR)
    assert st == 200, body
    return signature(body)


def served(srv):
    """The versions GET /v2/models/m lists."""
    st, _, meta = srv.json("GET", "/v2/models/m")
    assert st == 200
    return meta["versions"]


def assert_404(srv, method, path, body=None, headers=HDR):
    st, h, data = srv.request(method, path, body, headers if body else None)
    assert st == 404, (path, st, data)
    assert h["Content-Type"].startswith("application/json")
    assert json.loads(data)["error"] == "no such model version"


@pytest.fixture(scope="module")
def refs():
    """Each file's answer to JPEG, from a daemon serving the three as plain files."""
    s = Server("--model", "a=" + F035, "--model", "b=" + F100, "--model", "c=" + FTORCH)
    try:
        out = {f: predict(s, "/v1/models/%s:predict" % n)
               for n, f in (("a", F035), ("b", F100), ("c", FTORCH))}
        assert len(set(out.values())) == 3
        return out
    finally:
        assert s.stop() == 0


def test_all_versions_routes(tmp_path, refs):
    d = make_dir(str(tmp_path / "m"), {1: F035, 2: F100})
    srv = Server("--config", write_config(str(tmp_path / "c.json"), d, {"all": True}))
    try:
        assert served(srv) == ["1", "2"]
        # no version: the highest
        assert predict(srv, "/v1/models/m:predict") == refs[F100]
        assert info_version(srv) == "2"  # nothing loaded: the gauge follows all the same
        assert predict(srv, "/v1/models/m/versions/1:predict") == refs[F035]
        assert predict(srv, "/v1/models/m/versions/2:predict") == refs[F100]
        for path, ver, classes in (("/v2/models/m/infer", "2", 1000),
                                   ("/v2/models/m/versions/1/infer", "1", 17),
                                   ("/v2/models/m/versions/2/infer", "2", 1000)):
            st, _, out = srv.json("POST", path, V2_BODY, V2_HDR)
            assert st == 200, out
            assert out["model_version"] == ver
            assert out["outputs"][0]["shape"] == [1, classes]
        st, _, meta = srv.json("GET", "/v2/models/m/versions/1")
        assert st == 200 and meta["versions"] == ["1"]
        assert meta["outputs"][0]["shape"] == [-1, 17]
        st, _, ready = srv.json("GET", "/v2/models/m/versions/2/ready")
        assert st == 200 and ready == {"name": "m", "ready": True}
        st, _, md = srv.json("GET", "/v1/models/m/metadata")
        assert st == 200 and md["model_spec"]["version"] == "2"
        st, _, v1 = srv.json("GET", "/v1/models/m")
        assert st == 200
        assert [(x["version"], x["state"]) for x in v1["model_version_status"]] == \
            [("2", "AVAILABLE"), ("1", "AVAILABLE")]
        assert v1["path"] == os.path.join(d, "2", "model.safetensors")
        # TF Serving's status and metadata of one version
        st, _, v1 = srv.json("GET", "/v1/models/m/versions/1")
        assert st == 200 and v1["classes"] == 17
        assert [(x["version"], x["state"]) for x in v1["model_version_status"]] == \
            [("1", "AVAILABLE")]
        st, _, md = srv.json("GET", "/v1/models/m/versions/1/metadata")
        assert st == 200 and md["model_spec"]["version"] == "1"
        for bad in ("3", "0", "01", "x", "-1", "99999999999999999999"):
            assert_404(srv, "GET", "/v2/models/m/versions/%s/ready" % bad)
            assert_404(srv, "GET", "/v2/models/m/versions/%s" % bad)
            assert_404(srv, "POST", "/v2/models/m/versions/%s/infer" % bad, V2_BODY, V2_HDR)
            assert_404(srv, "POST", "/v1/models/m/versions/%s:predict" % bad, JPEG)
            assert_404(srv, "GET", "/v1/models/m/versions/%s" % bad)
            assert_404(srv, "GET", "/v1/models/m/versions/%s/metadata" % bad)
        st, _, err = srv.json("GET", "/v2/models/nope/versions/1/ready")
        assert st == 404 and "error" in err
    finally:
        assert srv.stop() == 0


@pytest.mark.parametrize("policy,want,default", [
    (None, ["3"], FTORCH),                      # latest 1 by default
    ({"latest": 2}, ["2", "3"], FTORCH),
    ({"latest": 5}, ["1", "2", "3"], FTORCH),   # fewer on disk than asked: all of them
    ({"specific": [1, 2]}, ["1", "2"], F100),
    ({"specific": [1]}, ["1"], F035),
    ({"all": True}, ["1", "2", "3"], FTORCH),
])
def test_policy(tmp_path, refs, policy, want, default):
    d = make_dir(str(tmp_path / "m"), {1: F035, 2: F100, 3: FTORCH})
    # not a version: no model file, a name that is not a number, a leading zero
    os.makedirs(os.path.join(d, "7"))
    make_dir(os.path.join(d, "extra"), {})
    shutil.copy(F035, os.path.join(d, "model.safetensors"))
    os.makedirs(os.path.join(d, "04"))
    shutil.copy(F035, os.path.join(d, "04", "model.safetensors"))
    srv = Server("--config", write_config(str(tmp_path / "c.json"), d, policy))
    try:
        assert served(srv) == want
        assert predict(srv, "/v1/models/m:predict") == refs[default]
        files = {"1": F035, "2": F100, "3": FTORCH}
        for v in ("1", "2", "3", "4", "7"):
            if v in want:
                assert predict(srv, "/v1/models/m/versions/%s:predict" % v) == refs[files[v]]
            else:
                assert_404(srv, "POST", "/v1/models/m/versions/%s:predict" % v, JPEG)
    finally:
        assert srv.stop() == 0


def test_plain_file_is_version_1(refs):
    srv = Server("--model", "m=" + F035, "--model-set", "m.version_policy=latest:3")
    try:
        assert served(srv) == ["1"]
        assert predict(srv, "/v1/models/m/versions/1:predict") == refs[F035]
        assert_404(srv, "POST", "/v1/models/m/versions/2:predict", JPEG)
    finally:
        assert srv.stop() == 0


def info_version(srv):
    """The version label of model m's xbnserve_model_info gauge."""
    st, _, body = srv.request("GET", "/metrics")
    assert st == 200
    found = re.findall(r'^xbnserve_model_info\{model="m",version="(\d+)"', body.decode(), re.M)
    assert len(found) == 1, body
    return found[0]



def test_sighup_adds_and_drains_versions(tmp_path, refs):
    d = make_dir(str(tmp_path / "m"), {1: F035, 2: F100})
    srv = Server("--config", write_config(str(tmp_path / "c.json"), d, {"latest": 2}))
    try:
        assert served(srv) == ["1", "2"]
        assert info_version(srv) == "2"
        make_dir(d, {3: FTORCH})
        n = len(srv.lines)
        srv.proc.send_signal(signal.SIGHUP)
        wait_log(srv, "reload done", n)
        assert served(srv) == ["2", "3"]  # latest 2: version 1 is retired
        assert predict(srv, "/v1/models/m:predict") == refs[FTORCH]
        assert predict(srv, "/v1/models/m/versions/3:predict") == refs[FTORCH]
        assert predict(srv, "/v1/models/m/versions/2:predict") == refs[F100]
        assert_404(srv, "POST", "/v1/models/m/versions/1:predict", JPEG)
        assert info_version(srv) == "3"
        wait_log(srv, "model m: retired instance freed", n)
        # version 2 unchanged: kept, not loaded again
        assert sum("model m loaded in" in l for l in srv.lines[n:]) == 1
        # the highest removed: the one below it takes the requests without a version
        shutil.rmtree(os.path.join(d, "3"))
        n = len(srv.lines)
        srv.proc.send_signal(signal.SIGHUP)
        wait_log(srv, "reload done", n)
        assert served(srv) == ["1", "2"]
        assert predict(srv, "/v1/models/m:predict") == refs[F100]
        assert predict(srv, "/v1/models/m/versions/1:predict") == refs[F035]
        assert_404(srv, "POST", "/v1/models/m/versions/3:predict", JPEG)
        # a directory with no version left: what served keeps serving, the error is shown
        for v in ("1", "2"):
            shutil.rmtree(os.path.join(d, v))
        n = len(srv.lines)
        srv.proc.send_signal(signal.SIGHUP)
        wait_log(srv, "reload done", n)
        assert served(srv) == ["1", "2"]
        st, _, v1 = srv.json("GET", "/v1/models/m")
        assert "no version folder" in v1["last_error"]
    finally:
        assert srv.stop() == 0


@pytest.mark.parametrize("policy,msg", [
    ({"latest": 0}, "version_policy"),
    ({"specific": []}, "version_policy"),
    ({"specific": [1.5]}, "version_policy"),
    ({"all": False}, "version_policy"),
    ({"latest": 1, "all": True}, "version_policy"),
    ("newest", "version_policy"),
])
def test_bad_policy_refused(tmp_path, policy, msg):
    d = make_dir(str(tmp_path / "m"), {1: F035})
    cfg = write_config(str(tmp_path / "c.json"), d, policy)
    p = subprocess.run([BIN, "serve", "--config", cfg, "--check-config"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2 and msg in p.stderr, p.stderr


def test_missing_specific_version_fails_start(tmp_path):
    d = make_dir(str(tmp_path / "m"), {1: F035})
    cfg = write_config(str(tmp_path / "c.json"), d, {"specific": [1, 2]})
    p = subprocess.run([BIN, "serve", "--config", cfg, "--port", "0"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode != 0
    assert "version 2 (version_policy specific) not found" in p.stderr


def test_sighup_under_load_finishes_on_the_admitted_version(tmp_path, refs):
    """Clients keep sending while a reload publishes version 3 and retires version 2 (latest
    1): no request fails; each answer comes from 2 or 3, and 3 alone after the reload; a
    request for version 2 is answered by 2 until the reload, then 404."""
    import threading
    d = make_dir(str(tmp_path / "m"), {2: F100})
    srv = Server("--config", write_config(str(tmp_path / "c.json"), d))
    log = []  # (sent, received, path, status, signature or body)
    stop = threading.Event()

    def client(path):
        while not stop.is_set():
            t0 = time.time()
            st, _, body = srv.request("POST", path + "?top_k=3", JPEG, HDR, timeout=60)
            log.append((t0, time.time(), path, st, signature(body) if st == 200 else body))

    try:
        ts = [threading.Thread(target=client, args=(p,)) for p in
              ("/v1/models/m:predict", "/v1/models/m/versions/2:predict")]
        for t in ts:
            t.start()
        time.sleep(1.0)
        make_dir(d, {3: FTORCH})
        n = len(srv.lines)
        sent = time.time()
        srv.proc.send_signal(signal.SIGHUP)
        wait_log(srv, "reload done", n)
        done = time.time()
        time.sleep(1.0)
        stop.set()
        for t in ts:
            t.join(timeout=60)
        wait_log(srv, "model m: retired instance freed", n)
    finally:
        stop.set()
        assert srv.stop() == 0
    assert len(log) > 4
    for t0, t1, path, st, what in log:
        if path.endswith("versions/2:predict"):
            if t1 < sent:
                assert st == 200 and what == refs[F100], (path, st, what)
            elif t0 > done:
                assert st == 404, (path, st, what)
            else:
                assert (st == 200 and what == refs[F100]) or st == 404, (path, st, what)
        else:
            assert st == 200, (path, st, what)
            if t1 < sent:
                assert what == refs[F100]
            elif t0 > done:
                assert what == refs[FTORCH]
            else:
                assert what in (refs[F100], refs[FTORCH])
    assert any(p.endswith("m:predict") and t0 > done for t0, _, p, _, _ in log)
    assert any(p.endswith("versions/2:predict") and t1 < sent for _, t1, p, _, _ in log)


USER = "u" * 20
ADMIN = "a" * 24


def test_repository_index_off_by_default(tmp_path):
    d = make_dir(str(tmp_path / "m"), {1: F035})
    srv = Server("--config", write_config(str(tmp_path / "c.json"), d))
    try:
        st, _, err = srv.json("POST", "/v2/repository/index", b"{}",
                              {"Content-Type": "application/json"})
        assert st == 404 and err == {"error": "no such route"}
    finally:
        assert srv.stop() == 0


def test_repository_index(tmp_path):
    d = make_dir(str(tmp_path / "m"), {1: F035, 2: F100, 3: FTORCH})
    cfg = str(tmp_path / "c.json")
    with open(cfg, "w") as f:
        json.dump({"repository_api": True, "models": [
            {"name": "m", "path": d, "workers": 1, "version_policy": {"specific": [1, 3]}},
            {"name": "s", "path": F035, "workers": 1}]}, f)
    srv = Server("--config", cfg, env={"XBNSERVE_AUTH_TOKEN": USER,
                                       "XBNSERVE_ADMIN_TOKEN": ADMIN})
    js = {"Content-Type": "application/json"}
    try:
        for tok in (None, USER, ADMIN + "x"):
            h = dict(js, Authorization="Bearer " + tok) if tok else js
            st, hdr, err = srv.json("POST", "/v2/repository/index", b"{}", h)
            assert st == 401 and "WWW-Authenticate" in hdr, (tok, st, err)
        h = dict(js, Authorization="Bearer " + ADMIN)
        want = [{"name": "m", "version": "1", "state": "READY"},
                {"name": "m", "version": "3", "state": "READY"},
                {"name": "s", "version": "1", "state": "READY"}]
        for body in (b"{}", b'{"ready":true}', b'{"ready":false}'):
            st, _, idx = srv.json("POST", "/v2/repository/index", body, h)
            assert st == 200 and idx == want, (body, idx)
        for body in (b"", b"[]", b'{"ready":1}', b'{"other":true}', b"{", b'{"ready":true,"x":1}'):
            st, _, err = srv.json("POST", "/v2/repository/index", body, h)
            assert st == 400 and "error" in err, body
        st, _, _ = srv.json("GET", "/v2/repository/index", None, h)
        assert st == 405
        # the user token still reaches the models
        st, _, _ = srv.request("POST", "/v1/models/m/versions/1:predict", JPEG,
                               dict(HDR, Authorization="Bearer " + USER))
        assert st == 200
        # a version removed on disk and a reload: the index follows; a model that cannot
        # serve any version is listed as unavailable, with the reason
        shutil.rmtree(os.path.join(d, "3"))
        n = len(srv.lines)
        srv.proc.send_signal(signal.SIGHUP)
        wait_log(srv, "reload done", n)
        st, _, idx = srv.json("POST", "/v2/repository/index", b"{}", h)
        assert st == 200 and idx == want, idx  # specific 3 missing: nothing changed
        with open(cfg, "w") as f:
            json.dump({"repository_api": True, "models": [
                {"name": "m", "path": d, "workers": 1, "version_policy": {"specific": [1]}},
                {"name": "s", "path": F035, "workers": 1},
                {"name": "gone", "path": str(tmp_path / "nothing"), "workers": 1}]}, f)
        n = len(srv.lines)
        srv.proc.send_signal(signal.SIGHUP)
        wait_log(srv, "reload done", n)
        st, _, idx = srv.json("POST", "/v2/repository/index", b"{}", h)
        assert st == 200
        assert idx[:2] == [{"name": "m", "version": "1", "state": "READY"},
                           {"name": "s", "version": "1", "state": "READY"}]
        assert len(idx) == 3 and idx[2]["name"] == "gone"
        assert idx[2]["state"] == "UNAVAILABLE" and "cannot read" in idx[2]["reason"]
        st, _, idx = srv.json("POST", "/v2/repository/index", b'{"ready":true}', h)
        assert st == 200 and [x["name"] for x in idx] == ["m", "s"]
    finally:
        assert srv.stop() == 0


def test_check_config_sees_versions(tmp_path):
    d = make_dir(str(tmp_path / "m"), {1: F035})
    cfg = write_config(str(tmp_path / "c.json"), d, {"specific": [1]})
    p = subprocess.run([BIN, "serve", "--config", cfg, "--check-config"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["models"][0]["version_policy"] == "specific:1"
    write_config(cfg, d, {"specific": [1, 4]})
    p = subprocess.run([BIN, "serve", "--config", cfg, "--check-config"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1
    assert "models[0] (m): %s: version 4 (version_policy specific) not found" % d in p.stderr
    shutil.rmtree(os.path.join(d, "1"))
    write_config(cfg, d)
    p = subprocess.run([BIN, "serve", "--config", cfg, "--check-config"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1 and "no version folder with model.safetensors" in p.stderr
