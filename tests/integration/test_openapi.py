"""docs/openapi.yaml: valid for two OpenAPI validators, true to what the daemon does, and the
document the daemon serves.

1. tests/integration/node/openapi-check.js `lint`: @apidevtools/swagger-parser (the format's
   JSON schema, every $ref resolved) and @redocly/openapi-core's `recommended` rules. Broken
   copies of the document fail it.
2. The daemon (build/xbnserve on loopback ports) answers a request on every route (versioned
   ones, PUT on predict, the V2 binary and classification extensions, the repository index,
   load and unload included), with every status it can be made to give here (200, 400, 401,
   404, 405, 413, 414, 415, 431, 503 from a full queue, a draining daemon and an unloaded
   model's readiness, 504; not 500, which takes an engine failure or no memory); openapi-check.js `exchanges` then checks each exchange
   against the document: operation, status, required headers (X-Request-Id, Allow,
   Retry-After) and their values, no undocumented X-Request-Id / Allow / Retry-After,
   Content-Type, response body against its schema, and the successful requests' bodies
   against the request schemas. Mutated exchanges and a broken copy of the document fail it.
3. GET /openapi.yaml is this file byte for byte (HEAD too, 405 with Allow otherwise), and every
   route of server/routes.c's tables, probed on the daemon, is a path of the document with
   the methods the daemon's Allow names, and the other way round (no node needed).

The validators are installed by `make node-deps` (part of `make test`); without them the
tests of 1 and 2 are skipped. Env: XBN_BIN, XBN_MODELS (as xbn.py), XBN_NODE_DIR (build/node).
"""

import base64
import copy
import http.client
import json
import os
import pathlib
import shutil
import re
import signal
import struct
import subprocess
import threading
import time

import pytest
import yaml

from xbn import JPEG, PNG, SMALL, Server, image_bytes, multipart

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "openapi.yaml"
NODE_SRC = pathlib.Path(__file__).resolve().parent / "node"
NODE_DIR = pathlib.Path(os.environ.get("XBN_NODE_DIR", ROOT / "build" / "node"))


def openapi_check(*args):
    node = shutil.which("node")
    if not node or not (NODE_DIR / "node_modules" / "@redocly" / "openapi-core").is_dir():
        pytest.skip(f"npm validators not installed in {NODE_DIR}: run `make node-deps`")
    env = dict(os.environ, NODE_PATH=str(NODE_DIR / "node_modules"))
    r = subprocess.run([node, str(NODE_SRC / "openapi-check.js"), *map(str, args)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode in (0, 1), r.stderr
    out = json.loads(r.stdout)
    assert (r.returncode == 1) == bool(out["problems"]), r.stdout
    return out


def doc():
    return yaml.safe_load(DOC.read_text())


# ---- 1. the document itself ----

def test_document_passes_both_validators():
    assert openapi_check("lint", DOC)["problems"] == []


def _drop_name_param(d):
    d["paths"]["/v1/models/{name}"]["parameters"] = [
        p for p in d["paths"]["/v1/models/{name}"]["parameters"] if "name" not in p["$ref"]]


def _dup_operation_id(d):
    d["paths"]["/readyz"]["get"]["operationId"] = "healthz"


BROKEN_DOCS = [
    # (id, mutation, [(validator that must object, text in its message or its rule)])
    ("missing-ref", lambda d: d["components"]["schemas"].pop("Readiness"),
     [("swagger-parser", "Readiness"), ("redocly", "no-unresolved-refs")]),
    ("bad-type", lambda d: d["components"]["schemas"]["Entry"]["properties"]["index"].update(type="int"),
     [("swagger-parser", "schema"), ("redocly", "struct")]),
    ("response-without-description",
     lambda d: d["paths"]["/healthz"]["get"]["responses"]["200"].pop("description"),
     [("swagger-parser", "schema"), ("redocly", "struct")]),
    ("unknown-field", lambda d: d["paths"]["/v2"]["get"].update(summery="typo"),
     [("swagger-parser", "schema"), ("redocly", "struct")]),
    ("undeclared-path-parameter", _drop_name_param, [("redocly", "path-parameters-defined")]),
    ("duplicate-operation-id", _dup_operation_id, [("redocly", "operation-operationId-unique")]),
    ("no-4xx", lambda d: [d["paths"]["/healthz"]["get"]["responses"].pop(c)
                          for c in ("401", "405", "414", "431")],
     [("redocly", "operation-4xx-response")]),
]


@pytest.fixture(scope="module")
def broken_doc_problems(tmp_path_factory):
    """Every BROKEN_DOCS copy in its own file, all linted by one openapi-check.js run."""
    d = tmp_path_factory.mktemp("openapi")
    paths = []
    for name, mutate, _ in BROKEN_DOCS:
        x = doc()
        mutate(x)
        paths.append(d / f"{name}.yaml")
        paths[-1].write_text(yaml.safe_dump(x, sort_keys=False))
    out = openapi_check("lint", *paths)
    return {name: [p for p in out["problems"] if pathlib.Path(p["file"]).stem == name]
            for name, *_ in BROKEN_DOCS}


@pytest.mark.parametrize("case", BROKEN_DOCS, ids=[c[0] for c in BROKEN_DOCS])
def test_a_broken_document_fails(broken_doc_problems, case):
    name, _, expected = case
    problems = broken_doc_problems[name]
    for validator, text in expected:
        assert any(p["validator"] == validator and (text in p["message"] or text == p["rule"])
                   for p in problems), (validator, text, problems)


# ---- 2. the document against the daemon ----

class Recorder:
    """Sends requests to a Server and keeps each exchange in openapi-check.js's form."""

    def __init__(self, srv):
        self.srv = srv
        self.exchanges = []

    def keep(self, method, path, status, headers, body, req_headers=None, req_body=None):
        x = {"method": method, "path": path, "status": status, "headers": headers,
             "body": body.decode("utf-8", "replace"), "request_headers": req_headers or {}}
        if req_body is not None and not isinstance(req_body, bytes):
            x["request_body"] = req_body
        elif req_body is not None and (req_headers or {}).get("Content-Type", "").endswith("json"):
            x["request_body"] = req_body.decode()
        self.exchanges.append(x)
        return status, headers, body

    def __call__(self, method, path, body=None, headers=None):
        st, h, data = self.srv.request(method, path, body, headers)
        return self.keep(method, path, st, h, data, headers, body)

    def on(self, conn, method, path, body=None, headers=None):
        """One request on an open (kept-alive) connection."""
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return self.keep(method, path, r.status, dict(r.getheaders()), r.read(), headers, body)


def v2_bytes(images, **extra):
    return json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(images)],
                                   "data": [base64.b64encode(i).decode() for i in images]}],
                       **extra})


JSON = {"Content-Type": "application/json"}


GET_PATHS = ("/", "/ui/app.js", "/ui/app.css", "/openapi.yaml", "/healthz", "/readyz", "/metrics",
             "/v1/models", "/v1/models/small", "/v1/models/small/versions/1",
             "/v1/models/small/metadata", "/v1/models/small/versions/1/metadata", "/v2",
             "/v2/health/live", "/v2/health/ready", "/v2/models/small",
             "/v2/models/small/versions/1", "/v2/models/small/ready",
             "/v2/models/small/versions/1/ready")


def exercise_v2_extensions(rec):
    """The binary tensor data extension both ways and the classification extension, on the
    plain and the versioned infer route."""
    s = 224
    x = struct.pack("<%df" % (3 * s * s), *([0.5] * (3 * s * s)))
    head = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, s, s],
                                   "parameters": {"binary_data_size": len(x)}}],
                       "outputs": [{"name": "logits", "parameters": {"binary_data": True}},
                                   {"name": "probabilities"}]}).encode()
    for infer, ctype in (("/v2/models/small/infer", {}),
                         ("/v2/models/small/versions/1/infer",
                          {"Content-Type": "application/octet-stream"})):
        st, h, _ = rec("POST", infer, head + x,
                       {"Inference-Header-Content-Length": str(len(head)), **ctype})
        assert (st, h["Content-Type"]) == (200, "application/octet-stream"), infer
    jpeg = struct.pack("<I", len(JPEG)) + JPEG
    head = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                   "parameters": {"binary_data_size": len(jpeg)}}],
                       "outputs": [{"name": "probabilities",
                                    "parameters": {"classification": 3}}]}).encode()
    st, h, _ = rec("POST", "/v2/models/small/infer", head + jpeg,
                   {"Inference-Header-Content-Length": str(len(head))})
    assert (st, h["Content-Type"]) == (200, "application/json")
    rec("POST", "/v2/models/small/versions/1/infer",
        v2_bytes([PNG], outputs=[{"name": "logits", "parameters": {"classification": 2,
                                                                   "binary_data": True}}],
                 parameters={"binary_data_output": True}), JSON)
    rec("POST", "/v2/models/small/infer", v2_bytes([JPEG], parameters={"priority": 1}), JSON)  # 400
    rec("POST", "/v2/models/small/infer", head + jpeg[:-1],
        {"Inference-Header-Content-Length": str(len(head))})                                  # 400


def exercise_versions(rec):
    """The versioned V1 routes, PUT on both predict routes, the repository index, and a
    version the model does not serve."""
    for path in ("/v1/models/small:predict", "/v1/models/small/versions/1:predict"):
        rec("POST", path + "?top_k=1", JPEG, {"Content-Type": "image/jpeg"})
        rec("PUT", path, PNG)                                                     # curl -T
    rec("POST", "/v1/models/small/versions/1:predict",
        json.dumps({"inputs": [{"b64": base64.b64encode(JPEG).decode()}]}), JSON)
    rec("POST", "/v2/repository/index", json.dumps({}), JSON)
    rec("POST", "/v2/repository/index", json.dumps({"ready": True}), JSON)
    rec("POST", "/v2/repository/index", json.dumps({"readyy": True}), JSON)      # 400
    for path in ("/v1/models/small/versions/2", "/v2/models/small/versions/2/ready",
                 "/v1/models/small/versions/7/metadata"):
        rec("GET", path)                                                          # 404
    rec("POST", "/v2/models/small/versions/2/infer", v2_bytes([JPEG]), JSON)      # 404
    rec("DELETE", "/v1/models/small/versions/1:predict")                          # 405
    rec("POST", "/openapi.yaml", b"x", {"Content-Type": "text/plain"})             # 405


def exercise_main(rec):
    """Every route of a normally running daemon, with the statuses it gives right away."""
    st = {}
    for path in GET_PATHS:
        st[path] = rec("GET", path)[0]
    exercise_v2_extensions(rec)
    exercise_versions(rec)
    rec("HEAD", "/healthz")
    rec("GET", "/healthz", headers={"X-Request-Id": "client-id_1.2"})
    rec("GET", "/healthz", headers={"X-Request-Id": "not a sane id"})
    for path in ("/v1/models/nope", "/v2/models/nope", "/v2/models/nope/ready"):
        rec("GET", path)
    pred = "/v1/models/small:predict"
    rec("POST", pred, JPEG, {"Content-Type": "image/jpeg"})
    rec("POST", pred + "?top_k=2", PNG, {"Content-Type": "image/png"})
    rec("POST", pred, JPEG, {"Content-Type": "application/octet-stream"})
    body, hdr = multipart([(JPEG, "image/jpeg"), (PNG, "image/png")], {"top_k": "3"})
    rec("POST", pred, body, hdr)
    rec("POST", pred, json.dumps({"instances": [{"b64": base64.b64encode(JPEG).decode()},
                                                {"image": {"b64": base64.b64encode(PNG).decode()}}],
                                  "top_k": 0}), JSON)
    rec("POST", pred, json.dumps({"inputs": {"image_bytes": [{"b64": base64.b64encode(PNG).decode()}]},
                                  "top_k": 2}), JSON)                             # columnar
    rec("POST", pred, b"not an image", {"Content-Type": "image/jpeg"})           # 415
    rec("POST", pred, b"hello", {"Content-Type": "text/plain"})                  # 415
    rec("POST", pred, json.dumps({"instances": []}), JSON)                       # 400
    rec("POST", pred + "?top_k=-1", JPEG, {"Content-Type": "image/jpeg"})         # 400
    rec("POST", pred, json.dumps({"instances": [{"b64": "AAAA"}] * 65}), JSON)   # 413
    rec("POST", "/v1/models/nope:predict", JPEG, {"Content-Type": "image/jpeg"})  # 404
    infer = "/v2/models/small/infer"
    rec("POST", infer, v2_bytes([JPEG, image_bytes(5)], id="req-7"), JSON)
    s = 224
    fp32 = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, s, s],
                                   "data": [0.25] * (3 * s * s)}],
                       "outputs": [{"name": "probabilities"}, {"name": "logits"}]})
    rec("POST", infer, fp32, JSON)
    rec("POST", infer, json.dumps({"inputs": [{"name": "input", "datatype": "FP32",
                                               "shape": [1, 3, 8, 8], "data": [0.0] * 192}]}), JSON)
    rec("POST", infer, json.dumps({"inputs": [{"name": "x", "datatype": "INT8", "shape": [1],
                                               "data": [1]}]}), JSON)             # 400
    rec("POST", infer, v2_bytes([JPEG]), {"Content-Type": "text/plain"})          # 415
    rec("POST", infer, v2_bytes([b"AAAA"] * 65), JSON)                            # 413
    rec("POST", "/v2/models/nope/infer", v2_bytes([JPEG]), JSON)                  # 404
    rec("POST", "/healthz", b"x", {"Content-Type": "text/plain"})                 # 405
    rec("GET", pred)                                                              # 405
    rec("PUT", infer, v2_bytes([JPEG]), JSON)                                     # 405
    rec("DELETE", "/v1/models/small")                                             # 405
    rec("GET", "/v1/models/" + "a" * 3000)                                        # 414
    rec("GET", "/healthz?pad=" + "b" * 3000)                                      # 414
    rec("GET", "/v1/models/small", headers={"X-Pad": "c" * 17000})                 # 431
    return st


def exercise_draining(rec, srv):
    """504 past the deadline, readiness 503s while draining, /metrics 404 when disabled. The
    daemon: one queued image waits 3 s for a batch that never fills (its deadline passes
    meanwhile) while SIGTERM starts the drain."""
    rec("GET", "/metrics")                                                        # 404
    conns = [http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30) for _ in range(3)]
    for c in conns:  # each connection has served a request before SIGTERM: it is kept
        rec.on(c, "GET", "/healthz")
    waiting = []
    t = threading.Thread(target=lambda: waiting.append(
        rec("POST", "/v1/models/small:predict", JPEG, {"Content-Type": "image/jpeg"})[0]))
    t.start()
    time.sleep(0.5)  # the image is decoded and queued
    srv.proc.send_signal(signal.SIGTERM)
    srv.signalled = True
    time.sleep(0.3)
    rec.on(conns[0], "GET", "/readyz")                                            # 503
    rec.on(conns[1], "GET", "/v2/health/ready")                                   # 503
    rec.on(conns[2], "GET", "/v2/models/small/ready")                             # 503
    t.join(timeout=30)
    for c in conns:
        c.close()
    return waiting


def exercise_full_queue(rec):
    """503 + Retry-After from a full queue: one image of queue, one worker taking one image at
    a time, 16 clients at once (as test_http.py's test_full_queue_503_fast)."""
    for _ in range(3):
        res = []
        ts = [threading.Thread(target=lambda: res.append(
            rec("POST", "/v1/models/small:predict", JPEG, {"Content-Type": "image/jpeg"})[0]))
            for _ in range(16)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if 503 in res:
            return res
    return res


def exercise_auth(rec):
    """401 with WWW-Authenticate without the token, 200 with it; the probes stay open; the
    repository routes refuse the user token when no admin token is set."""
    rec("GET", "/v1/models")                                                      # 401
    rec("POST", "/v1/models/small:predict", JPEG, {"Content-Type": "image/jpeg"})  # 401
    rec("GET", "/openapi.yaml", headers={"Authorization": "Bearer " + TOKEN})
    rec("GET", "/healthz")
    st, _, body = rec("POST", "/v2/repository/models/small/load", None,
                      {"Authorization": "Bearer " + TOKEN})                        # 401
    assert st == 401 and b"admin token must be configured" in body, (st, body)


TOKEN = "openapi-test-token-0123456789"


def exercise_repository(rec):
    """Triton's repository routes (repository_api on): index, load, unload, and what an
    unloaded model answers."""
    rec("GET", "/v2")
    idx, load, unload = ("/v2/repository/index", "/v2/repository/models/small/load",
                         "/v2/repository/models/small/unload")
    rec("POST", idx, "{}", JSON)
    rec("POST", idx, '{"ready": 1}', JSON)                                        # 400
    rec("GET", idx)                                                               # 405
    rec("POST", load)                                                             # empty body
    rec("POST", load, '{"parameters": {}}', JSON)
    rec("POST", load, '{"parameters": {"config": "{}"}}', JSON)                   # 400
    rec("POST", load, "{" + " " * 5000 + "}", JSON)                               # 413
    rec("POST", "/v2/repository/models/nope/load")                                # 404
    rec("GET", unload)                                                            # 405
    rec("POST", unload, '{"parameters": {"unload_dependents": true}}', JSON)
    rec("POST", unload, '{"parameters": {"unload_dependents": 1}}', JSON)         # 400
    rec("POST", "/v2/repository/models/nope/unload")                              # 404
    for path in ("/v1/models", "/v1/models/small", "/v2/models/small/ready",      # 503
                 "/v2/models/small"):                                             # 404
        rec("GET", path)
    rec("POST", "/v1/models/small:predict", JPEG, {"Content-Type": "image/jpeg"})  # 404
    rec("POST", idx, "{}", JSON)
    rec("POST", load)
    rec("POST", "/v2/repository/models/" + "a" * 3000 + "/load")                # 414


@pytest.fixture(scope="module")
def exchanges():
    main = Server("--model", "small=" + SMALL, "--repository-api", "true")
    try:
        rec = Recorder(main)
        ready = exercise_main(rec)
    finally:
        assert main.stop() == 0
    assert set(ready.values()) == {200}, ready
    drain = Server("--model", "small=" + SMALL, "--metrics", "false",
                   "--max-queue-delay-us", "3000000", "--request-timeout-ms", "100",
                   "--drain-timeout-ms", "10000")
    drain.signalled = False
    try:
        rec2 = Recorder(drain)
        waiting = exercise_draining(rec2, drain)
    finally:
        assert drain.stop(signal_it=not drain.signalled) == 0
    assert waiting == [504], waiting
    full = Server("--model", "small=" + SMALL, "--max-batch-size", "1", "--max-queue-size", "1",
                  "--workers", "1", "--max-queue-delay-us", "0")
    try:
        rec3 = Recorder(full)
        res = exercise_full_queue(rec3)
    finally:
        assert full.stop() == 0
    assert 503 in res and set(res) <= {200, 503}, res
    guarded = Server("--model", "small=" + SMALL, "--repository-api", "true",
                     env={"XBNSERVE_AUTH_TOKEN": TOKEN})
    try:
        rec4 = Recorder(guarded)
        exercise_auth(rec4)
    finally:
        assert guarded.stop() == 0
    repo = Server("--model", "small=" + SMALL, "--repository-api", "true")
    try:
        rec5 = Recorder(repo)
        exercise_repository(rec5)
    finally:
        assert repo.stop() == 0
    statuses = [(x["method"], x["path"].split("/")[-1][:10], x["status"]) for x in rec5.exchanges]
    assert [st for *_, st in statuses] == [200, 200, 400, 405, 200, 200, 400, 413, 404, 405, 200,
                                           400, 404, 200, 200, 503, 404, 404, 200, 200, 414], \
        statuses
    return rec.exchanges + rec2.exchanges + rec3.exchanges + rec4.exchanges + rec5.exchanges


def check_exchanges(tmp_path, xs, document=DOC, name="exchanges.json"):
    p = tmp_path / name
    p.write_text(json.dumps(xs))
    return openapi_check("exchanges", document, p)


def test_every_status_the_test_provokes_was_given(exchanges):
    got = {x["status"] for x in exchanges}
    assert got == {200, 400, 401, 404, 405, 413, 414, 415, 431, 503, 504}, sorted(got)
    by = {(x["method"], x["path"], x["status"]) for x in exchanges}
    for path in ("/readyz", "/v2/health/ready", "/v2/models/small/ready"):
        assert ("GET", path, 503) in by, path
    assert ("POST", "/v1/models/small:predict", 503) in by
    assert ("GET", "/metrics", 404) in by


def test_request_id_is_echoed_when_sane(exchanges):
    ids = [x["headers"].get("X-Request-Id") for x in exchanges
           if x["request_headers"].get("X-Request-Id")]
    assert ids[0] == "client-id_1.2"
    assert ids[1] != "not a sane id" and ids[1]
    assert all(x["headers"].get("X-Request-Id") for x in exchanges)


def test_the_daemon_does_what_the_document_says(tmp_path, exchanges):
    out = check_exchanges(tmp_path, exchanges)
    assert out["problems"] == [], json.dumps(out["problems"], indent=1)
    # Every documented operation answered successfully at least once.
    ops = {(m, p) for p, item in doc()["paths"].items() for m in item
           if m in ("get", "post", "put")}
    ok = {(c["method"], c["path"]) for c in out["covered"] if 200 <= c["status"] < 300}
    assert ops - ok == set(), ops - ok


def _find(xs, method, path, status):
    return next(i for i, x in enumerate(xs) if (x["method"], x["path"], x["status"]) == (method, path, status))


def test_drifted_exchanges_fail_the_check(tmp_path, exchanges):
    """Each mutation is what a server change the document missed would look like."""
    xs = copy.deepcopy(exchanges)
    cases = {}

    def mutate(key, method, path, status, fn):
        i = _find(xs, method, path, status)
        x = copy.deepcopy(xs[i])
        fn(x)
        cases[key] = len(xs)
        xs.append(x)

    mutate("no-request-id", "GET", "/v2", 200, lambda x: x["headers"].pop("X-Request-Id"))
    mutate("bad-request-id", "GET", "/v2", 200, lambda x: x["headers"].update({"X-Request-Id": "a b"}))
    mutate("no-retry-after", "GET", "/readyz", 503, lambda x: x["headers"].pop("Retry-After"))
    mutate("no-allow", "GET", "/v1/models/small:predict", 405, lambda x: x["headers"].pop("Allow"))
    mutate("undocumented-retry-after", "GET", "/healthz", 200,
           lambda x: x["headers"].update({"Retry-After": "1"}))
    mutate("undocumented-status", "GET", "/healthz", 200, lambda x: x.update(status=418))
    mutate("body-missing-field", "GET", "/v2", 200, lambda x: x.update(body='{"name":"xbnserve"}'))
    mutate("body-wrong-type", "GET", "/v2/models/small/ready", 200,
           lambda x: x.update(body='{"name":"small","ready":"yes"}'))
    mutate("undocumented-content-type", "GET", "/healthz", 200,
           lambda x: x["headers"].update({"Content-Type": "text/html"}))
    mutate("undocumented-method", "GET", "/healthz", 200, lambda x: x.update(method="DELETE"))
    mutate("request-body-off-schema", "POST", "/v2/models/small/infer", 200,
           lambda x: x.update(request_body='{"inputs": []}',
                              request_headers={"Content-Type": "application/json"}))
    out = check_exchanges(tmp_path, xs)
    by_exchange = {}
    for p in out["problems"]:
        by_exchange.setdefault(p["exchange"], []).append(p["message"])
    assert set(by_exchange) == set(cases.values()), (by_exchange, cases)
    expect = {"no-request-id": "X-Request-Id", "bad-request-id": "X-Request-Id",
              "no-retry-after": "Retry-After", "no-allow": "Allow",
              "undocumented-retry-after": "not documented", "undocumented-status": "418",
              "body-missing-field": "version", "body-wrong-type": "boolean",
              "undocumented-content-type": "text/html", "undocumented-method": "DELETE",
              "request-body-off-schema": "request body"}
    for key, i in cases.items():
        assert any(expect[key] in m for m in by_exchange[i]), (key, by_exchange[i])


def test_a_document_missing_what_the_daemon_does_fails(tmp_path, exchanges):
    d = doc()
    del d["paths"]["/healthz"]["get"]["responses"]["414"]
    d["components"]["schemas"]["Readiness"]["properties"]["status"]["enum"] = ["ready", "starting"]
    del d["components"]["responses"]["Busy"]["headers"]["Retry-After"]
    broken = tmp_path / "openapi.yaml"
    broken.write_text(yaml.safe_dump(d, sort_keys=False))
    msgs = [(p["request"], p["status"], p["message"])
            for p in check_exchanges(tmp_path, exchanges, broken)["problems"]]
    assert any(r.startswith("GET /healthz?pad=") and s == 414 for r, s, _ in msgs), msgs
    assert any(r == "GET /readyz" and s == 503 and "allowed values" in m for r, s, m in msgs), msgs
    assert any(s == 503 and "Retry-After" in m and "not documented" in m for _, s, m in msgs), msgs


# ---- 3. the daemon serves this document, and documents every route it has ----

ROUTES_C = ROOT / "server" / "routes.c"
ROW = re.compile(r'^\s*\{"(/[^"]*)", (NULL|"[^"]*"), (NULL|"[^"]*"), "(\w+)", "(\w+)"', re.M)


def route_templates():
    """Each row of server/routes.c's two tables as an OpenAPI path template: the exact path,
    or prefix {name} suffix, with /versions/{version} after the name in the `versioned`
    table."""
    text = ROUTES_C.read_text()
    plain = text[text.index("static const route table[]"):text.index("static const route versioned[]")]
    versioned = text[text.index("static const route versioned[]"):]
    versioned = versioned[:versioned.index("};")]
    out = []
    for part, mid in ((plain, ""), (versioned, "/versions/{version}")):
        for prefix, suffix, _, _, _ in ROW.findall(part):
            out.append(prefix if suffix == "NULL" else prefix + "{name}" + mid + suffix.strip('"'))
    return out


@pytest.fixture(scope="module")
def doc_srv():
    # ui false: the document is not part of the page and stays. The repository API is on so
    # that its routes (index, load, unload) exist.
    s = Server("--model", "small=" + SMALL, "--ui", "false", "--repository-api", "true")
    yield s
    assert s.stop() == 0


def test_the_daemon_serves_this_very_document(doc_srv):
    want = DOC.read_bytes()
    st, h, body = doc_srv.request("GET", "/openapi.yaml")
    assert (st, h["Content-Type"], h["Content-Length"]) == (200, "application/yaml", str(len(want)))
    assert body == want
    st, h, body = doc_srv.request("HEAD", "/openapi.yaml")
    assert (st, h["Content-Type"], h["Content-Length"], body) == (
        200, "application/yaml", str(len(want)), b"")
    for method in ("POST", "PUT", "DELETE"):
        st, h, body = doc_srv.request(method, "/openapi.yaml", b"x" if method != "DELETE" else None)
        assert (st, h["Allow"], json.loads(body)) == (
            405, "GET, HEAD", {"error": f"method {method} not allowed, use GET"}), method
    assert doc_srv.request("GET", "/")[0] == 404  # the page is off, the document is not


def test_route_table_is_read_right():
    t = route_templates()
    assert len(t) == len(set(t))
    for path in ("/", "/openapi.yaml", "/v1/models", "/v1/models/{name}:predict",
                 "/v1/models/{name}/versions/{version}:predict", "/v2/models/{name}/infer",
                 "/v2/models/{name}/versions/{version}/ready", "/v2/repository/index",
                 "/v2/repository/models/{name}/load", "/v2/repository/models/{name}/unload"):
        assert path in t, path


def test_every_route_the_daemon_answers_is_documented(doc_srv):
    """Each route of server/routes.c, probed with DELETE (no route takes it): a 405 whose
    Allow names the methods the route takes, which must be the document's operations on
    that path (HEAD goes with GET); and the document has no path the daemon lacks."""
    paths = doc()["paths"]
    templates = route_templates()
    assert sorted(templates) == sorted(paths)
    for t in templates:
        concrete = t.replace("{name}", "small").replace("{version}", "1")
        st, h, body = doc_srv.request("DELETE", concrete)
        assert st == 405, (t, st, body)
        taken = {m for m in h["Allow"].split(", ") if m != "HEAD"}
        documented = {m.upper() for m in paths[t] if m in ("get", "post", "put", "delete", "patch")}
        assert taken == documented, (t, taken, documented)
    # and a path that is no route is told apart
    st, _, body = doc_srv.request("DELETE", "/v3/models")
    assert (st, json.loads(body)) == (404, {"error": "no such route"})
