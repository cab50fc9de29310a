"""tests/integration/test_trace.py - W3C trace context: a valid `traceparent` keeps its trace id
and flags on the answer with the server's own span id, an invalid or absent one starts a new
trace, and the access log shows the trace id beside the request id in both log formats."""
import json
import re
import time

import pytest

from xbn import SMALL, Server

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = "00-%s-%s-01" % (TRACE, PARENT)
TP = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@pytest.fixture(scope="module")
def srv():
    s = Server("--model", "small=" + SMALL)
    yield s
    assert s.stop() == 0


def answer_tp(srv, headers):
    st, h, _ = srv.request("GET", "/healthz", headers=headers)
    assert st == 200
    m = TP.match(h["traceparent"])
    assert m, h["traceparent"]
    return m.groups()


def test_valid_traceparent_keeps_trace_and_flags(srv):
    trace, span, flags = answer_tp(srv, {"traceparent": VALID})
    assert trace == TRACE and flags == "01"
    assert span != PARENT and span != "0" * 16
    # each request is a span of its own
    assert answer_tp(srv, {"traceparent": VALID})[1] != span
    trace, _, flags = answer_tp(srv, {"traceparent": "00-%s-%s-00" % (TRACE, PARENT)})
    assert trace == TRACE and flags == "00"


@pytest.mark.parametrize("bad", [
    "01-%s-%s-01" % (TRACE, PARENT),              # only version 00 is understood
    "ff-%s-%s-01" % (TRACE, PARENT),              # ff is forbidden
    "00-%s-%s-01" % ("0" * 32, PARENT),           # all-zero trace id
    "00-%s-%s-01" % (TRACE, "0" * 16),            # all-zero parent id
    "00-%s-%s-01" % (TRACE.upper(), PARENT),      # upper-case hex
    "00-%s-%s-1" % (TRACE, PARENT),               # short flags
    "00-%s-%s-01-" % (TRACE, PARENT),             # trailing bytes on version 00
    "00-%s-%s-0g" % (TRACE, PARENT),              # not hex
    "00_%s-%s-01" % (TRACE, PARENT),              # wrong separator
    "garbage",
])
def test_invalid_traceparent_starts_a_new_trace(srv, bad):
    trace, span, flags = answer_tp(srv, {"traceparent": bad})
    assert trace != TRACE and trace != "0" * 32 and flags == "00" and span != "0" * 16


def test_absent_traceparent_gets_a_new_trace_each_time(srv):
    a, b = answer_tp(srv, {}), answer_tp(srv, {})
    assert a[0] != b[0] and a[2] == b[2] == "00"


def test_trace_id_in_text_access_log(srv):
    srv.request("GET", "/healthz", headers={"traceparent": VALID, "X-Request-Id": "tr-text-1"})
    time.sleep(0.2)
    line = [l for l in srv.lines if "id=tr-text-1 " in l]
    assert line and ("id=tr-text-1 trace_id=%s " % TRACE) in line[0]


def test_trace_id_in_json_access_log():
    s = Server("--model", "small=" + SMALL, "--log-format", "json")
    try:
        st, h, _ = s.request("GET", "/healthz", headers={"X-Request-Id": "tr-json-1"})
        gen = TP.match(h["traceparent"]).group(1)
        s.request("GET", "/healthz", headers={"traceparent": VALID, "X-Request-Id": "tr-json-2"})
        time.sleep(0.2)
        recs = [json.loads(l) for l in s.lines if l.startswith("{") and '"msg":"request"' in l]
        by_id = {r["id"]: r for r in recs}
        assert by_id["tr-json-1"]["trace_id"] == gen
        assert by_id["tr-json-2"]["trace_id"] == TRACE
    finally:
        assert s.stop() == 0
