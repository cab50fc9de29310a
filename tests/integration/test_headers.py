"""tests/integration/test_headers.py - every echoed or computed response header compared with
what it must be: X-Request-Id (the client's when it is sane: 1 to 63 bytes of [A-Za-z0-9._-],
else a fresh one the daemon makes), Retry-After on every 503, Allow on every 405 (each
route), Content-Type, and Connection: close while draining (docs/api.md)."""
import http.client
import re
import signal
import threading
import time

import pytest

from xbn import JPEG, SMALL, Server, metric, multipart, scrape

PREDICT = "/v1/models/small:predict"
HDR_JPEG = {"Content-Type": "image/jpeg"}
GENERATED = re.compile(r"^[0-9a-f]{1,16}$")  # the daemon's own ids: a hex counter


@pytest.fixture(scope="module")
def hsrv():
    s = Server("--model", "small=" + SMALL, "--max-body-bytes", "100000",
               "--max-url-bytes", "128", "--max-images-per-request", "2")
    yield s
    assert s.stop() == 0, "".join(s.lines[-30:])


def all_statuses(s):
    """(method, path, body, headers, expected status): one request per status the daemon
    answers itself, each on a route that gets there."""
    three, mp = multipart([(JPEG, "image/jpeg")] * 3)
    return [
        ("GET", "/healthz", None, {}, 200),
        ("POST", PREDICT, JPEG, HDR_JPEG, 200),
        ("POST", PREDICT, JPEG[:200], HDR_JPEG, 400),
        ("GET", "/nowhere", None, {}, 404),
        ("GET", "/v2/models/nope", None, {}, 404),
        ("POST", "/healthz", b"x", {}, 405),
        ("POST", PREDICT, b"x" * 100001, HDR_JPEG, 413),
        ("POST", PREDICT, three, mp, 413),
        ("GET", "/healthz?x=" + "a" * 200, None, {}, 414),
        ("POST", PREDICT, b"hello", {"Content-Type": "text/plain"}, 415),
    ]


def send(s, method, path, body, headers):
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
    try:
        if body is not None and len(body) > 100000:  # refused on the headers: send only them
            c.putrequest(method, path)
            for k, v in headers.items():
                c.putheader(k, v)
            c.putheader("Content-Length", str(len(body)))
            c.endheaders()
        else:
            c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        return r.status, r.headers, data
    finally:
        c.close()


@pytest.mark.parametrize("rid", ["trace-42", "A.b_c-9", "0", "x" * 63,
                                 "0123456789abcdefABCDEF._-"])
def test_request_id_echoed_on_every_status(hsrv, rid):
    for method, path, body, hdr, want in all_statuses(hsrv):
        st, h, data = send(hsrv, method, path, body, dict(hdr, **{"X-Request-Id": rid}))
        assert st == want, (method, path, st, data[:200])
        assert h.get_all("X-Request-Id") == [rid], (method, path, h.get_all("X-Request-Id"))
    time.sleep(0.1)
    logged = [l for l in hsrv.lines if f" id={rid} " in l]
    assert len(logged) >= len(all_statuses(hsrv)), logged


@pytest.mark.parametrize("rid", [None, "", "x" * 64, "has space", "a/b", "a:b", "quote\"d",
                                 "tab\there", "caf\u00e9", "semi;colon", "a,b"])
def test_request_id_generated_when_missing_or_not_sane(hsrv, rid):
    seen = set()
    for method, path, body, hdr, want in all_statuses(hsrv):
        headers = dict(hdr)
        if rid is not None:
            headers["X-Request-Id"] = rid.encode("utf-8").decode("latin-1")
        st, h, data = send(hsrv, method, path, body, headers)
        assert st == want, (method, path, st, data[:200])
        got = h.get_all("X-Request-Id")
        assert got and len(got) == 1, got
        assert GENERATED.match(got[0]), got
        assert got[0] not in seen  # a fresh one per request
        seen.add(got[0])
    time.sleep(0.1)
    for g in seen:  # the log line carries the same id
        assert any(f" id={g} " in l for l in hsrv.lines), g


def test_generated_ids_are_unique_under_concurrency(hsrv):
    ids, lock = [], threading.Lock()

    def client():
        for _ in range(10):
            _, h, _ = send(hsrv, "GET", "/healthz", None, {})
            with lock:
                ids.append(h["X-Request-Id"])

    ts = [threading.Thread(target=client) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(ids) == 80 and len(set(ids)) == 80
    assert all(GENERATED.match(i) for i in ids)


GET_ROUTES = ["/healthz", "/readyz", "/metrics", "/v1/models", "/v1/models/small", "/v2",
              "/v2/health/live", "/v2/health/ready", "/v2/models/small",
              "/v2/models/small/ready"]
POST_ROUTES = [PREDICT, "/v2/models/small/infer"]


@pytest.mark.parametrize("path", GET_ROUTES)
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_allow_on_405_get_routes(hsrv, path, method):
    st, h, data = send(hsrv, method, path, b"x" if method != "OPTIONS" else None, {})
    assert st == 405, data
    assert h.get_all("Allow") == ["GET, HEAD"]
    assert h["Content-Type"] == "application/json"


@pytest.mark.parametrize("path", POST_ROUTES)
@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"])
def test_allow_on_405_post_routes(hsrv, path, method):
    if path == PREDICT and method == "PUT":
        pytest.skip("v1 predict takes PUT (test_put_predict)")
    st, h, data = send(hsrv, method, path, None, {})
    assert st == 405, data
    # v1 predict also takes PUT, as POST (`curl -T image.jpg URL`)
    assert h.get_all("Allow") == (["POST, PUT"] if path == PREDICT else ["POST"])


def test_no_allow_or_retry_after_elsewhere(hsrv):
    for method, path, body, hdr, want in all_statuses(hsrv):
        st, h, _ = send(hsrv, method, path, body, hdr)
        assert st == want
        assert h.get("Retry-After") is None, (method, path)
        assert (h.get("Allow") is not None) == (st == 405), (method, path)


def test_content_types(hsrv):
    for method, path, body, hdr, want in all_statuses(hsrv):
        if method == "HEAD":
            continue
        st, h, _ = send(hsrv, method, path, body, hdr)
        assert h["Content-Type"] == "application/json", (method, path)
    st, h, _ = send(hsrv, "GET", "/metrics", None, {})
    assert h["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"


def test_retry_after_on_every_503():
    """503 for a full queue, for /readyz and the V2 readiness routes while draining, and for a
    predict that arrives during the drain on a connection opened before it: each with
    Retry-After: 1, the draining ones with Connection: close."""
    s = Server("--model", "small=" + SMALL, "--max-batch-size", "2", "--max-queue-size", "2",
               "--workers", "1", "--max-queue-delay-us", "4000000", "--drain-timeout-ms", "20000")
    try:
        res = []
        t = threading.Thread(target=lambda: res.append(
            s.request("POST", PREDICT, JPEG, HDR_JPEG, timeout=30)[0]))
        t.start()
        deadline = time.time() + 5
        while metric(scrape(s, settle=False), "xbnserve_queue_depth", model="small") != 1:
            assert time.time() < deadline
            time.sleep(0.02)
        two, hdr = multipart([(JPEG, "image/jpeg")] * 2)
        st, h, _ = send(s, "POST", PREDICT, two, hdr)  # 1 + 2 > max_queue_size
        assert st == 503 and h.get_all("Retry-After") == ["1"]
        assert h.get("Connection") != "close"
        # kept-alive connections opened before SIGTERM
        conns = [http.client.HTTPConnection("127.0.0.1", s.port, timeout=10) for _ in range(4)]
        for c in conns:
            c.request("GET", "/healthz")
            assert c.getresponse().read()
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        for c, path in zip(conns, ["/readyz", "/v2/health/ready", "/v2/models/small/ready"]):
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            assert r.status == 503, path
            assert r.headers.get_all("Retry-After") == ["1"], path
            assert r.headers["Connection"] == "close", path
        c = conns[3]  # liveness still 200 while draining, but the connection is closed
        c.request("GET", "/healthz")
        r = c.getresponse()
        r.read()
        assert r.status == 200 and r.headers.get("Retry-After") is None
        assert r.headers["Connection"] == "close"
        for c in conns:
            c.close()
        # the waiting request is still served in the drain (its batch runs when the 4 s
        # max_queue_delay_us is up), then the daemon exits 0
        assert s.stop(signal_it=False, timeout=40) == 0
        t.join(timeout=10)
        assert res == [200]
    finally:
        if s.proc.poll() is None:
            s.stop()
