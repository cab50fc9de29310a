"""tests/integration/test_reload.py - SIGHUP reloads the model set while clients keep sending:
a model is added, one is replaced by a different file, one is removed, and then a broken file
is fed. No request fails (a removed model's 404 after its removal aside), and every answer
comes from the model file expected at that moment, told apart by its scores."""
import json
import os
import shutil
import signal
import threading
import time

import pytest

from xbn import JPEG, MODELS, Server, wait_log

F035 = os.path.join(MODELS, "mobilenetv2-keras-035.safetensors")  # 17 classes
F100 = os.path.join(MODELS, "mobilenetv2-keras-100.safetensors")  # 1000 classes
FTORCH = os.path.join(MODELS, "mobilenetv2-torch.safetensors")    # 1000, other weights
HDR = {"Content-Type": "image/jpeg"}


def write_config(path, models):
    with open(path, "w") as f:
        json.dump({"models": [{"name": n, "path": p, "workers": 1, "max_batch_size": 4}
                              for n, p in models]}, f)


def signature(body):
    """The answer's top three classes and scores: different files give different ones."""
    p = json.loads(body)["predictions"][0]
    return json.dumps(p, sort_keys=True)



@pytest.fixture(scope="module")
def refs():
    """Each file's answer to JPEG, from a daemon that serves all three from the start."""
    s = Server("--model", "a=" + F035, "--model", "b=" + F100, "--model", "c=" + FTORCH)
    try:
        out = {}
        for name, f in (("a", F035), ("b", F100), ("c", FTORCH)):
            st, _, body = s.request("POST", "/v1/models/%s:predict?top_k=3" % name, JPEG, HDR)
            assert st == 200
            out[f] = signature(body)
        assert len(set(out.values())) == 3
        return out
    finally:
        assert s.stop() == 0


def test_reload_under_load(tmp_path, refs):
    small = str(tmp_path / "small.safetensors")
    victim = str(tmp_path / "victim.safetensors")
    shutil.copy(F035, small)
    shutil.copy(F035, victim)
    broken = str(tmp_path / "broken.safetensors")
    with open(broken, "wb") as f:
        f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    cfg = str(tmp_path / "xbnserve.json")
    write_config(cfg, [("small", small), ("victim", victim)])
    srv = Server("--config", cfg)
    log = []  # (sent, received, model, status, signature or error)
    stop = threading.Event()

    def client():
        while not stop.is_set():
            for name in ("small", "victim", "added"):
                t0 = time.time()
                try:
                    st, _, body = srv.request("POST", "/v1/models/%s:predict?top_k=3" % name,
                                              JPEG, HDR, timeout=60)
                    sig = signature(body) if st == 200 else body.decode()
                except Exception as e:  # a failed request is what this test hunts for
                    st, sig = -1, repr(e)
                log.append((t0, time.time(), name, st, sig))

    threads = [threading.Thread(target=client) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.5)
        # add a model, replace one with another file, remove one
        write_config(cfg, [("small", F100), ("added", FTORCH)])
        mark = len(srv.lines)
        t1 = time.time()
        srv.proc.send_signal(signal.SIGHUP)
        t1done = wait_log(srv, "reload done", mark)
        assert any("1 added, 1 replaced, 0 unchanged, 1 removed, 0 failed" in l
                   for l in srv.lines[mark:])
        time.sleep(1.5)
        # a broken file: the loaded instance keeps serving, the error is reported
        write_config(cfg, [("small", broken), ("added", FTORCH)])
        mark = len(srv.lines)
        t2 = time.time()
        srv.proc.send_signal(signal.SIGHUP)
        t2done = wait_log(srv, "reload done", mark)
        assert any("0 added, 0 replaced, 1 unchanged, 0 removed, 1 failed" in l
                   for l in srv.lines[mark:])
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)

    st, _, j = srv.json("GET", "/v1/models")
    assert st == 200
    models = {m["name"]: m for m in j["details"]}
    assert sorted(j["models"]) == ["added", "small"]
    assert j["models"] == [m["name"] for m in j["details"]]
    assert models["small"]["status"] == "ready" and models["small"]["path"] == F100
    assert "broken.safetensors" in models["small"]["last_error"]
    assert models["added"]["status"] == "ready" and "last_error" not in models["added"]
    assert srv.json("GET", "/readyz")[0] == 200

    expect = {  # (model, phase) -> the answers allowed; phases: before, during, after reload 1
        ("small", 0): {refs[F035]}, ("small", 1): {refs[F035], refs[F100]},
        ("small", 2): {refs[F100]},
        ("victim", 0): {refs[F035]}, ("victim", 1): {refs[F035], 404}, ("victim", 2): {404},
        ("added", 0): {404}, ("added", 1): {404, refs[FTORCH]}, ("added", 2): {refs[FTORCH]},
    }
    counts = {}
    for sent, got, name, st, sig in log:
        phase = 0 if got < t1 else 2 if sent > t1done else 1
        answer = sig if st == 200 else st
        assert answer in expect[(name, phase)], (name, phase, st, sig)
        counts[(name, phase)] = counts.get((name, phase), 0) + 1
    # the load really ran through every phase, the broken-file reload included
    for name in ("small", "victim", "added"):
        assert counts.get((name, 0), 0) > 0 and counts.get((name, 2), 0) > 0, counts
    assert sum(1 for sent, _, n, st, _ in log if n == "small" and sent > t2done) > 0
    assert srv.stop() == 0
    # the replaced and the removed instance were freed; the one a broken file failed to
    # replace was not (it kept serving)
    assert sum("retired instance freed" in l for l in srv.lines) == 2
