"""tests/integration/test_repository.py - Triton's model repository extension, load and unload
(POST /v2/repository/models/{m}/load and .../unload), through a real socket: a model added to
the configuration is loaded and answers as the same file served from the start; an unloaded
model lets the requests already admitted finish, then answers 404, is not ready and is listed
UNAVAILABLE; a broken file's load is an error while the old one keeps serving; a SIGHUP keeps
an unloaded model unloaded until its configuration entry changes; clients of the other models
see no failure meanwhile. Then the bodies, the errors, the admin token (the only one that
opens these routes once any token is set; without one they are open), repository_api off,
and loads queued when SIGTERM comes."""
import json
import os
import shutil
import signal
import threading
import time

import pytest

from xbn import JPEG, MODELS, Server, metric, scrape, wait_log

F035 = os.path.join(MODELS, "mobilenetv2-keras-035.safetensors")  # 17 classes
F100 = os.path.join(MODELS, "mobilenetv2-keras-100.safetensors")  # 1000 classes
FTORCH = os.path.join(MODELS, "mobilenetv2-torch.safetensors")    # 1000, other weights
R50 = os.path.join(MODELS, "resnet50-torch.safetensors")          # seconds to load
HDR = {"Content-Type": "image/jpeg"}
JS = {"Content-Type": "application/json"}
USER = "u" * 20
ADMIN = "a" * 24


def write_config(path, models, repository_api=True):
    """models: dicts with at least name and path; one worker and batches of 4 by default."""
    with open(path, "w") as f:
        json.dump({"repository_api": repository_api,
                   "models": [{"workers": 1, "max_batch_size": 4, **m} for m in models]}, f)
    return path


def signature(body):
    """The answer's top three classes and scores: different files give different ones."""
    return json.dumps(json.loads(body)["predictions"][0], sort_keys=True)


def predict(srv, name, headers=None):
    """(status, signature) of a 200, else (status, the error body)."""
    st, _, body = srv.request("POST", "/v1/models/%s:predict?top_k=3" % name, JPEG,
                              dict(HDR, **(headers or {})))
    return st, signature(body) if st == 200 else json.loads(body)


def repo(srv, name, what, body=b"", headers=None):
    """POST /v2/repository/models/{name}/{what}: (status, headers, JSON answer)."""
    st, h, data = srv.request("POST", "/v2/repository/models/%s/%s" % (name, what), body,
                              dict(JS, **(headers or {})))
    return st, h, json.loads(data)



def index(srv, headers=None):
    st, _, idx = srv.json("POST", "/v2/repository/index", b"{}", dict(JS, **(headers or {})))
    assert st == 200, idx
    return idx


@pytest.fixture(scope="module")
def refs():
    """Each file's answer to JPEG, from a daemon that serves all three from the start."""
    s = Server("--model", "a=" + F035, "--model", "b=" + F100, "--model", "c=" + FTORCH)
    try:
        out = {f: predict(s, n) for n, f in (("a", F035), ("b", F100), ("c", FTORCH))}
        assert all(st == 200 for st, _ in out.values())
        out = {f: sig for f, (_, sig) in out.items()}
        assert len(set(out.values())) == 3
        return out
    finally:
        assert s.stop() == 0


def test_load_unload_under_load(tmp_path, refs):
    cfg = str(tmp_path / "c.json")
    broken = str(tmp_path / "broken.safetensors")
    with open(broken, "wb") as f:
        f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    steady = {"name": "steady", "path": F035}
    # a batch of victim's waits 3 s to fill: requests sent before the unload are in flight
    victim = {"name": "victim", "path": F100, "max_queue_delay_us": 3000000}
    added = {"name": "added", "path": FTORCH}
    write_config(cfg, [steady, victim])
    srv = Server("--config", cfg)
    log = []  # (model, status, signature or error) of the clients of the models kept serving
    stop = threading.Event()

    def client(name):
        while not stop.is_set():
            try:
                st, sig = predict(srv, name)
            except Exception as e:  # a failed request is what this test hunts for
                st, sig = -1, repr(e)
            log.append((name, st, sig))

    clients = [threading.Thread(target=client, args=("steady",))]
    try:
        clients[0].start()
        # a model added to the configuration: loaded, it answers as the same file served at start
        write_config(cfg, [steady, victim, added])
        assert predict(srv, "added") == (404, {"error": "no such model"})
        assert repo(srv, "added", "load")[::2] == (200, {})
        assert predict(srv, "added") == (200, refs[FTORCH])
        clients.append(threading.Thread(target=client, args=("added",)))
        clients[1].start()

        # the unload: three requests already queued on victim finish on it, later ones are 404
        inflight = []

        def one():
            st, sig = predict(srv, "victim")
            inflight.append((st, sig, time.time()))

        ones = [threading.Thread(target=one) for _ in range(3)]
        for t in ones:
            t.start()
        deadline = time.time() + 30
        while metric(scrape(srv, settle=False), "xbnserve_queue_depth", model="victim") != 3:
            assert time.time() < deadline, "the three requests never queued"
            time.sleep(0.02)
        assert repo(srv, "victim", "unload")[::2] == (200, {})
        unloaded_at = time.time()
        assert predict(srv, "victim") == (404, {"error": "model is unloaded"})
        for t in ones:
            t.join(timeout=60)
        assert [(st, sig) for st, sig, _ in inflight] == [(200, refs[F100])] * 3
        assert all(t > unloaded_at for _, _, t in inflight)  # answered after the unload
        wait_log(srv, "model victim: retired instance freed", 0)
        st, _, ready = srv.json("GET", "/v2/models/victim/ready")
        assert (st, ready) == (503, {"name": "victim", "ready": False})
        st, _, err = srv.json("GET", "/v2/models/victim")
        assert (st, err) == (404, {"error": "model is unloaded"})
        st, _, v1 = srv.json("GET", "/v1/models/victim")
        assert (st, v1) == (200, {"name": "victim", "status": "unloaded", "ready": False,
                                  "model_version_status": []})
        assert index(srv) == [{"name": "steady", "version": "1", "state": "READY"},
                              {"name": "victim", "state": "UNAVAILABLE", "reason": "unloaded"},
                              {"name": "added", "version": "1", "state": "READY"}]
        samples = scrape(srv, settle=False)
        assert metric(samples, "xbnserve_model_ready", model="victim") == 0
        assert not [k for k in samples if k[0] == "xbnserve_model_info" and
                    ("model", "victim") in k[1]]
        assert repo(srv, "victim", "unload")[::2] == (200, {})  # unloaded already: the same

        # a broken file: the load is an error and the instance loaded before keeps serving
        write_config(cfg, [steady, victim, dict(added, path=broken)])
        st, _, err = repo(srv, "added", "load")
        assert st == 400 and err["error"].startswith("model added (%s): " % broken), err
        assert predict(srv, "added") == (200, refs[FTORCH])
        st, _, v1 = srv.json("GET", "/v1/models/added")
        assert v1["status"] == "ready" and v1["path"] == FTORCH and broken in v1["last_error"]
        assert {"name": "added", "version": "1", "state": "READY"} in index(srv)

        # SIGHUP with victim's entry unchanged: it stays unloaded
        n = len(srv.lines)
        srv.proc.send_signal(signal.SIGHUP)
        wait_log(srv, "reload done", n)
        assert any("0 added, 0 replaced, 1 unchanged, 0 removed, 1 failed, 1 kept unloaded" in l
                   for l in srv.lines[n:]), "".join(srv.lines[n:])
        assert predict(srv, "victim") == (404, {"error": "model is unloaded"})
        # its entry changed: the reload loads it again
        write_config(cfg, [steady, dict(victim, max_queue_delay_us=2000), added])
        n = len(srv.lines)
        srv.proc.send_signal(signal.SIGHUP)
        wait_log(srv, "reload done", n)
        assert any("1 added, 0 replaced, 2 unchanged, 0 removed, 0 failed, 0 kept unloaded" in l
                   for l in srv.lines[n:]), "".join(srv.lines[n:])
        assert any("model victim: its configuration changed since it was unloaded" in l
                   for l in srv.lines[n:])
        assert predict(srv, "victim") == (200, refs[F100])
        time.sleep(0.5)
    finally:
        stop.set()
        for t in clients:
            t.join(timeout=120)
        code = srv.stop()
    assert code == 0
    # the clients of the models that were not unloaded saw no failure, and only their files
    for name, f in (("steady", F035), ("added", FTORCH)):
        got = [(st, sig) for n, st, sig in log if n == name]
        assert len(got) > 3 and set(got) == {(200, refs[f])}, (name, len(got), set(got))


def test_requests_counted(tmp_path):
    """xbnserve_requests_total counts each load and unload by endpoint, model and status. No
    token is configured: the admin routes are open, as every route is."""
    cfg = write_config(str(tmp_path / "c.json"), [{"name": "m", "path": F035}])
    srv = Server("--config", cfg)
    try:
        def count(ep, code, model="m"):
            return metric(scrape(srv), "xbnserve_requests_total", model=model,
                          endpoint="admin_repository_" + ep, code=code)
        before = [count("unload", 200), count("load", 200), count("load", 404, "")]
        assert before == [0, 0, 0]
        assert repo(srv, "m", "unload")[0] == 200
        assert repo(srv, "m", "unload")[0] == 200
        assert repo(srv, "m", "load")[0] == 200
        assert repo(srv, "nope", "load")[0] == 404
        assert [count("unload", 200), count("load", 200), count("load", 404, "")] == [2, 1, 1]
        samples = scrape(srv)
        assert metric(samples, "xbnserve_model_ready", model="m") == 1
        assert [k for k in samples if k[0] == "xbnserve_model_info" and ("model", "m") in k[1]]
    finally:
        assert srv.stop() == 0


def test_bodies_errors_and_versions(tmp_path, refs):
    d = str(tmp_path / "m")
    os.makedirs(os.path.join(d, "1"))
    shutil.copy(F035, os.path.join(d, "1", "model.safetensors"))
    cfg = write_config(str(tmp_path / "c.json"), [{"name": "m", "path": d}])
    srv = Server("--config", cfg)
    try:
        st, _, meta = srv.json("GET", "/v2")
        assert meta["extensions"] == ["binary_tensor_data", "classification", "model_repository",
                                      "model_repository(unload_dependents)"]
        # nothing changed on disk: each load keeps what serves, nothing is loaded again
        n = len(srv.lines)
        for body in (b"", b"{}", b'{"parameters":{}}', b' {"parameters": {}} '):
            assert repo(srv, "m", "load", body)[::2] == (200, {}), body
        assert not any("model m loaded in" in l for l in srv.lines[n:])
        # a version dropped into the directory: the load serves it (latest 1)
        os.makedirs(os.path.join(d, "2"))
        shutil.copy(F100, os.path.join(d, "2", "model.safetensors"))
        assert repo(srv, "m", "load")[::2] == (200, {})
        assert srv.json("GET", "/v2/models/m")[2]["versions"] == ["2"]
        assert predict(srv, "m") == (200, refs[F100])

        bad = {
            "load": [
                (b'{"parameters":{"config":"{}"}}', "parameter 'config' is not supported: a "
                 "model's settings come from the configuration"),
                (b'{"parameters":{"priority":1}}', "unknown parameter 'priority'"),
                (b'{"parameters":{"unload_dependents":true}}',
                 "unknown parameter 'unload_dependents'"),
                (b'{"parameters":[]}', "parameters: expected an object"),
                (b'{"x":1}', "body: unknown field 'x'"),
                (b"[]", 'body: expected {} or {"parameters": {...}}'),
                (b"{", 'body: expected {} or {"parameters": {...}}'),
            ],
            "unload": [
                (b'{"parameters":{"unload_dependents":"yes"}}',
                 "parameter 'unload_dependents': expected true or false"),
                (b'{"parameters":{"config":"{}"}}', "unknown parameter 'config'"),
                (b'{"parameters":{}, "ready":true}', "body: unknown field 'ready'"),
            ],
        }
        for what, cases in bad.items():
            for body, msg in cases:
                assert repo(srv, "m", what, body)[::2] == (400, {"error": msg}), (what, body)
            big = b'{"parameters":{}}' + b" " * 5000
            assert repo(srv, "m", what, big)[::2] == (413, {"error": "body larger than 4096 bytes"})
            st, h, _ = srv.request("GET", "/v2/repository/models/m/" + what)
            assert (st, h["Allow"]) == (405, "POST")
            for name in ("bad%20name", "a%3Ab", "x" * 64, ""):
                assert repo(srv, name, what)[::2] == (404, {"error": "no such model"}), name
        assert repo(srv, "nope", "load")[::2] == (
            404, {"error": "model nope is not in the configuration"})
        assert repo(srv, "nope", "unload")[::2] == (404, {"error": "no such model"})
        assert predict(srv, "m") == (200, refs[F100])  # none of it changed anything

        # unload_dependents either way: no model has dependents
        for flag in (b"true", b"false"):
            body = b'{"parameters":{"unload_dependents":%s}}' % flag
            assert repo(srv, "m", "unload", body)[::2] == (200, {})
        assert predict(srv, "m") == (404, {"error": "model is unloaded"})
        st, _, err = srv.json("GET", "/v2/models/m/versions/2/ready")
        assert (st, err) == (404, {"error": "no such model version"})
        assert repo(srv, "m", "load")[::2] == (200, {})
        assert predict(srv, "m") == (200, refs[F100])
    finally:
        assert srv.stop() == 0


def test_admin_token(tmp_path):
    cfg = write_config(str(tmp_path / "c.json"), [{"name": "m", "path": F035}])
    srv = Server("--config", cfg, env={"XBNSERVE_AUTH_TOKEN": USER,
                                       "XBNSERVE_ADMIN_TOKEN": ADMIN})
    user = {"Authorization": "Bearer " + USER}
    admin = {"Authorization": "Bearer " + ADMIN}
    try:
        for what in ("load", "unload"):
            # the user token is not the admin's: 401, as the index answers it
            for h in ({}, user, {"Authorization": "Bearer " + ADMIN + "x"},
                      {"Authorization": "Bearer " + ADMIN[:-1]}, {"Authorization": ADMIN}):
                st, hdr, err = repo(srv, "m", what, headers=h)
                assert (st, err) == (401, {"error": "missing or invalid bearer token"}), (what, h)
                assert hdr["WWW-Authenticate"] == 'Bearer realm="xbnserve"'
            st, _, err = repo(srv, "nope", what)  # nothing told about names without the token
            assert st == 401
        assert predict(srv, "m", user)[0] == 200  # none of them did anything
        assert repo(srv, "m", "unload", headers=admin)[::2] == (200, {})
        assert predict(srv, "m", user) == (404, {"error": "model is unloaded"})
        assert repo(srv, "m", "load", headers=admin)[::2] == (200, {})
        assert predict(srv, "m", user)[0] == 200
    finally:
        assert srv.stop() == 0
    assert not any(USER in l or ADMIN in l for l in srv.lines), "a token reached the log"


NO_ADMIN = ("an admin token must be configured for the repository API (admin_token_file or "
            "XBNSERVE_ADMIN_TOKEN)")


def test_user_token_alone_closes_the_admin_routes(tmp_path):
    """A user token and no admin token: the admin routes refuse everyone, the user token
    included, with an error that says what is missing; the models still take the user token
    (docs/security.md)."""
    cfg = write_config(str(tmp_path / "c.json"), [{"name": "m", "path": F035}])
    srv = Server("--config", cfg, env={"XBNSERVE_AUTH_TOKEN": USER})
    user = {"Authorization": "Bearer " + USER}
    try:
        for what in ("load", "unload"):
            for h in ({}, user, {"Authorization": "Bearer " + ADMIN}):
                st, hdr, err = repo(srv, "m", what, headers=h)
                assert (st, err) == (401, {"error": NO_ADMIN}), (what, h)
                assert hdr["WWW-Authenticate"] == 'Bearer realm="xbnserve"'
            assert repo(srv, "nope", what, headers=user)[::2] == (401, {"error": NO_ADMIN})
        st, _, err = srv.json("POST", "/v2/repository/index", b"{}", dict(JS, **user))
        assert (st, err) == (401, {"error": NO_ADMIN})
        assert predict(srv, "m", user)[0] == 200  # none of them did anything
        assert predict(srv, "m")[0] == 401
    finally:
        assert srv.stop() == 0
    assert any("repository_api: a user token and no admin token" in l for l in srv.lines)


def test_off_without_repository_api(tmp_path):
    cfg = write_config(str(tmp_path / "c.json"), [{"name": "m", "path": F035}],
                       repository_api=False)
    srv = Server("--config", cfg)
    try:
        for what in ("load", "unload"):
            for body in (b"", b"{}"):
                assert repo(srv, "m", what, body)[::2] == (404, {"error": "no such route"})
        assert srv.json("GET", "/v2")[2]["extensions"] == ["binary_tensor_data", "classification"]
        assert predict(srv, "m")[0] == 200
    finally:
        assert srv.stop() == 0


def test_sigterm_refuses_queued_loads(tmp_path):
    """SIGTERM while a load runs: that load finishes and is answered, the operations queued
    behind it get 503, and the daemon exits 0."""
    cfg = str(tmp_path / "c.json")
    write_config(cfg, [{"name": "m", "path": F035}])
    srv = Server("--config", cfg, "--drain-timeout-ms", "5000")
    write_config(cfg, [{"name": "m", "path": F035}, {"name": "big", "path": R50}])
    answers = {}

    def call(name, what):
        st, h, body = repo(srv, name, what)
        answers[(name, what)] = (st, h.get("Retry-After"), body)

    ts = [threading.Thread(target=call, args=("big", "load"))]
    ts[0].start()
    wait_log(srv, "repository: loading model big", 0)
    ts += [threading.Thread(target=call, args=a) for a in (("m", "unload"), ("m", "load"))]
    for t in ts[1:]:
        t.start()
    deadline = time.time() + 30  # in flight: the three operations and this scrape
    while metric(scrape(srv, settle=False), "xbnserve_requests_in_flight") != 4:
        assert time.time() < deadline
        time.sleep(0.01)
    assert not any("model big loaded in" in l for l in srv.lines), "big loaded too fast"
    srv.proc.send_signal(signal.SIGTERM)
    for t in ts:
        t.join(timeout=60)
    assert srv.stop(signal_it=False) == 0
    assert answers == {("big", "load"): (200, None, {}),
                       ("m", "unload"): (503, "1", {"error": "server is shutting down"}),
                       ("m", "load"): (503, "1", {"error": "server is shutting down"})}
