"""tests/integration/test_metrics_port.py - the metrics listener (metrics_port,
metrics_listen_address): GET /metrics and /healthz on their own port and nothing else
there, /metrics on the main port a 404 counted like any unknown route, the counters seen
on the metrics port moving by exactly the requests sent to the main port, and both
listeners stopping with the daemon. Env: XBN_BIN, XBN_MODELS."""
import http.client
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from xbn import JPEG, SMALL, Server, metric, scrape

PREDICT = "/v1/models/small:predict"
HDR_JPEG = {"Content-Type": "image/jpeg"}


class MetricsPort:
    """The daemon seen through its metrics listener: what test_http.scrape needs."""

    def __init__(self, srv):
        ports = [int(m.group(1)) for l in srv.lines
                 for m in [re.search(r"metrics on 127\.0\.0\.1:(\d+) ", l)] if m]
        assert len(ports) == 1, "".join(srv.lines)
        self.port = ports[0]

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()


@pytest.fixture(scope="module")
def msrv():
    s = Server("--model", "small=" + SMALL, "--metrics-port", "0")
    yield s
    assert s.stop() == 0, "".join(s.lines[-30:])


def test_two_ports(msrv):
    mp = MetricsPort(msrv)
    assert mp.port != msrv.port
    st, h, body = mp.request("GET", "/metrics")
    assert st == 200 and h["Content-Type"].startswith("text/plain"), (st, body[:200])
    assert b"xbnserve_requests_total" in body
    assert mp.request("GET", "/healthz")[0] == 200
    assert msrv.request("GET", "/healthz")[0] == 200


def test_metrics_not_on_main_port(msrv):
    st, _, body = msrv.request("GET", "/metrics")
    assert st == 404 and b"no such route" in body


@pytest.mark.parametrize("method,path", [("GET", "/readyz"), ("GET", "/v1/models"),
                                         ("POST", PREDICT), ("GET", "/"),
                                         ("GET", "/v2/health/ready")])
def test_metrics_port_serves_nothing_else(msrv, method, path):
    mp = MetricsPort(msrv)
    body = JPEG if method == "POST" else None
    st, _, data = mp.request(method, path, body, HDR_JPEG if body else None)
    assert st == 404 and b"no such route" in data, (st, data[:200])


def test_counters_consistent_between_scrapes(msrv):
    mp = MetricsPort(msrv)
    attempts = []
    before = scrape(mp, attempts=attempts)
    for _ in range(3):
        assert msrv.request("POST", PREDICT, JPEG, HDR_JPEG)[0] == 200
    for _ in range(2):
        assert msrv.request("GET", "/metrics")[0] == 404
    assert mp.request("GET", "/readyz")[0] == 404
    after = scrape(mp, attempts=attempts)

    def d(**labels):
        return (metric(after, "xbnserve_requests_total", **labels)
                - metric(before, "xbnserve_requests_total", **labels))

    assert d(model="small", endpoint="v1_predict", code=200) == 3
    assert d(model="", endpoint="other", code=404) == 3  # 2 main /metrics + 1 /readyz
    assert d(model="", endpoint="metrics", code=404) == 0
    # the scrapes themselves: all of `before`'s GET /metrics, all of `after`'s but the last
    assert d(model="", endpoint="metrics", code=200) == attempts[0] + attempts[1] - 1
    assert metric(after, "xbnserve_requests_in_flight") == 1


def test_taken_metrics_port_refuses_to_start():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        port = holder.getsockname()[1]
        e = {k: v for k, v in os.environ.items() if not k.startswith("XBNSERVE_")}
        p = subprocess.run([os.environ.get("XBN_BIN", "build/xbnserve"), "serve", "--port", "0",
                            "--model", "m=" + SMALL, "--metrics-port", str(port)], env=e,
                           capture_output=True, text=True, timeout=60)
    finally:
        holder.close()
    assert p.returncode == 1 and f"127.0.0.1:{port}" in p.stderr, p.stderr
    assert " (http, usable CPUs" not in p.stderr  # the main port never started either


def test_both_listeners_stop_with_the_daemon():
    s = Server("--model", "small=" + SMALL, "--metrics-port", "0", "--metrics-listen-address",
               "127.0.0.1")
    mp = MetricsPort(s)
    assert mp.request("GET", "/metrics")[0] == 200
    assert s.stop() == 0, "".join(s.lines[-30:])
    for port in (s.port, mp.port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_metrics_port_answers_through_the_drain():
    """SIGTERM with a request still in flight (its body half sent): the main port stops
    accepting, the metrics port still answers and shows the request in flight; once the
    body is in and answered, the daemon exits and both ports are closed."""
    s = Server("--model", "small=" + SMALL, "--metrics-port", "0", "--drain-timeout-ms",
               "30000")
    mp = MetricsPort(s)
    c = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    try:
        head = (f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                f"Content-Length: {len(JPEG)}\r\n\r\n").encode()
        c.sendall(head + JPEG[:100])
        deadline = time.time() + 10
        while metric(scrape(mp, settle=False), "xbnserve_requests_in_flight") < 2:
            assert time.time() < deadline, "the half-sent request never counted in flight"
            time.sleep(0.01)
        s.proc.send_signal(signal.SIGTERM)
        while not any("draining:" in l for l in list(s.lines)):
            assert time.time() < deadline, "".join(s.lines[-10:])
            time.sleep(0.01)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", s.port), timeout=5).close()
        assert metric(scrape(mp, settle=False), "xbnserve_requests_in_flight") == 2  # a 200
        c.sendall(JPEG[100:])
        assert c.recv(12) == b"HTTP/1.1 200"
    finally:
        c.close()
    assert s.stop(signal_it=False) == 0, "".join(s.lines[-30:])
    for port in (s.port, mp.port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
