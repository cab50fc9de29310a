"""tests/integration/test_v2_protocol.py - the KServe V2 / Open Inference Protocol as the
standard clients speak it: versioned routes, the binary tensor data extension both ways and
the classification extension, through a real socket. The client below is written from the
published protocol: a binary request is the JSON header (its length in the
Inference-Header-Content-Length request header) followed by each binary input's bytes in
input order; FP32 tensors are little-endian row-major, a BYTES element is a 4-byte
little-endian length and its bytes. Env: XBN_BIN (binary), XBN_MODELS (build/models)."""
import base64
import json
import struct

import numpy as np
import pytest

from xbn import JPEG, PNG, SMALL, Server

CLASSES = 17
INFER = "/v2/models/small/infer"


@pytest.fixture(scope="module")
def srv():
    s = Server("--model", "small=" + SMALL, "--max-batch-size", "8", "--max-body-bytes",
               "16000000", "--max-images-per-request", "16")
    yield s
    assert s.stop() == 0


# ---- the client ----

def bytes_elements(items):
    """BYTES tensor in the binary form: each element a 4-byte LE length and its bytes."""
    return b"".join(struct.pack("<I", len(x)) + x for x in items)


def split_bytes_elements(raw):
    out, at = [], 0
    while at < len(raw):
        (n,) = struct.unpack_from("<I", raw, at)
        out.append(raw[at + 4:at + 4 + n])
        at += 4 + n
    assert at == len(raw)
    return out


def binary_request(header, binary):
    """(body, headers) of a binary-extension request: JSON header, then the bytes."""
    j = json.dumps(header).encode()
    return j + binary, {"Inference-Header-Content-Length": str(len(j))}


def parse_response(status, headers, data):
    """The JSON header and each output's value: a float32 array, or a list of bytes for
    BYTES, taken from "data" or from the binary part in output order."""
    assert status == 200, data
    hl = headers.get("Inference-Header-Content-Length")
    if hl is None:
        assert headers["Content-Type"] == "application/json"
        head, rest = json.loads(data), b""
    else:
        assert headers["Content-Type"] == "application/octet-stream"
        head, rest = json.loads(data[:int(hl)]), data[int(hl):]
    values, at = {}, 0
    for o in head["outputs"]:
        size = o.get("parameters", {}).get("binary_data_size")
        if size is None:
            assert "data" in o
            v = o["data"]
            values[o["name"]] = (np.array(v, np.float32) if o["datatype"] == "FP32"
                                 else [s.encode() for s in v])
        else:
            assert "data" not in o
            raw = rest[at:at + size]
            at += size
            values[o["name"]] = (np.frombuffer(raw, "<f4").copy() if o["datatype"] == "FP32"
                                 else split_bytes_elements(raw))
    assert at == len(rest)
    return head, values


def fp32_header(x, outputs=None, binary=True, **extra):
    inp = {"name": "input", "datatype": "FP32", "shape": list(x.shape)}
    if binary:
        inp["parameters"] = {"binary_data_size": x.nbytes}
    else:
        inp["data"] = [float(v) for v in x.ravel()]
    h = {"inputs": [inp], **extra}
    if outputs is not None:
        h["outputs"] = outputs
    return h


def out(name, binary=None, classification=None):
    p = {}
    if binary is not None:
        p["binary_data"] = binary
    if classification is not None:
        p["classification"] = classification
    return {"name": name, "parameters": p} if p else {"name": name}


X = np.random.default_rng(11).standard_normal((2, 3, 224, 224)).astype("<f4")


# ---- health and metadata ----

def test_health_and_server_metadata(srv):
    assert srv.request("GET", "/v2/health/live")[0] == 200
    assert srv.request("GET", "/v2/health/ready")[0] == 200
    st, h, j = srv.json("GET", "/v2")
    assert st == 200 and h["Content-Type"] == "application/json"
    assert j["name"] == "xbnserve"
    assert j["extensions"] == ["binary_tensor_data", "classification"]


def test_model_metadata_with_and_without_version(srv):
    st, _, plain = srv.json("GET", "/v2/models/small")
    assert st == 200 and plain["versions"] == ["1"] and plain["name"] == "small"
    st, _, v1 = srv.json("GET", "/v2/models/small/versions/1")
    assert st == 200 and v1 == plain
    st, _, body = srv.request("GET", "/v2/models/small/versions/1/ready")
    assert st == 200
    for path in ["/v2/models/small/versions/2", "/v2/models/small/versions/2/ready",
                 "/v2/models/small/versions/10", "/v2/models/nope/versions/1"]:
        st, h, j = srv.json("GET", path)
        assert st == 404 and h["Content-Type"] == "application/json", path
        assert j["error"] == ("no such model" if "nope" in path else "no such model version")
    # refused from the headers alone (the body is not read), so send a small one
    st, _, j = srv.json("POST", "/v2/models/small/versions/2/infer", b"{}")
    assert st == 404 and j["error"] == "no such model version"
    assert srv.request("GET", "/v2/models/small/versions/")[0] == 404
    st, h, _ = srv.request("GET", "/v2/models/small/versions/1/infer")
    assert st == 405 and h["Allow"] == "POST"


# ---- inference ----

def test_fp32_binary_in_and_out_equals_json(srv):
    outs = [out("logits"), out("probabilities")]
    st, h, d = srv.request("POST", INFER, json.dumps(fp32_header(X, outs, binary=False)))
    _, ref = parse_response(st, h, d)
    assert "Inference-Header-Content-Length" not in h
    for ver_path in [INFER, "/v2/models/small/versions/1/infer"]:
        body, hdr = binary_request(fp32_header(X, [out("logits", True), out("probabilities", True)]),
                                   X.tobytes())
        st, h, d = srv.request("POST", ver_path, body, hdr)  # no Content-Type, as clients send
        head, got = parse_response(st, h, d)
        assert int(h["Content-Length"]) == len(d)
        assert int(h["Inference-Header-Content-Length"]) + 2 * 2 * CLASSES * 4 == len(d)
        assert [o["parameters"] for o in head["outputs"]] == [{"binary_data_size": 136}] * 2
        assert head["outputs"][0]["shape"] == [2, CLASSES]
        assert got["logits"].tobytes() == ref["logits"].tobytes()
        assert got["probabilities"].tobytes() == ref["probabilities"].tobytes()


def test_binary_input_json_output_and_octet_stream(srv):
    body, hdr = binary_request(fp32_header(X[:1], [out("logits")]), X[:1].tobytes())
    hdr["Content-Type"] = "application/octet-stream"
    st, h, d = srv.request("POST", INFER, body, hdr)
    head, got = parse_response(st, h, d)
    assert h["Content-Type"] == "application/json" and len(got["logits"]) == CLASSES
    # JSON input, binary output through the request-level parameter
    st, h, d = srv.request("POST", INFER, json.dumps(
        fp32_header(X[:1], binary=False, parameters={"binary_data_output": True})))
    head2, got2 = parse_response(st, h, d)
    assert [o["name"] for o in head2["outputs"]] == ["probabilities"]
    st, h, d = srv.request("POST", INFER, json.dumps(fp32_header(X[:1], binary=False)))
    _, ref = parse_response(st, h, d)
    assert got2["probabilities"].tobytes() == ref["probabilities"].tobytes()
    # a listed output's own binary_data: false wins over binary_data_output
    hdr = fp32_header(X[:1], [out("logits", False)], binary=False,
                      parameters={"binary_data_output": True})
    st, h, d = srv.request("POST", INFER, json.dumps(hdr))
    assert h["Content-Type"] == "application/json"
    assert parse_response(st, h, d)[1]["logits"].tobytes() == got["logits"].tobytes()


def test_bytes_images_binary_equals_json(srv):
    imgs = [JPEG, PNG, JPEG]
    js = {"id": "j", "inputs": [{"name": "image", "datatype": "BYTES", "shape": [3],
                                 "data": [base64.b64encode(x).decode() for x in imgs]}],
          "outputs": [out("probabilities"), out("logits")]}
    _, ref = parse_response(*srv.request("POST", INFER, json.dumps(js)))
    raw = bytes_elements(imgs)
    hdr = {"id": "b", "inputs": [{"name": "image", "datatype": "BYTES", "shape": [3],
                                  "parameters": {"binary_data_size": len(raw)}}],
           "outputs": [out("probabilities", True), out("logits", True)]}
    head, got = parse_response(*srv.request("POST", INFER, *binary_request(hdr, raw)))
    assert head["id"] == "b" and head["model_version"] == "1"
    assert got["probabilities"].tobytes() == ref["probabilities"].tobytes()
    assert got["logits"].tobytes() == ref["logits"].tobytes()
    assert got["probabilities"].shape == (3 * CLASSES,)


def expected_classes(row, k):
    order = sorted(range(CLASSES), key=lambda i: (-row[i], i))[:k]
    return [b"%f:%d:class_%d" % (row[i], i, i) for i in order]


def test_classification_json_and_binary(srv):
    outs = [out("logits"), out("probabilities")]
    _, ref = parse_response(*srv.request("POST", INFER,
                                         json.dumps(fp32_header(X, outs, binary=False))))
    for binary in [False, True]:
        outs = [out("probabilities", binary, 3), out("logits", binary, CLASSES)]
        head, got = parse_response(*srv.request("POST", INFER,
                                                *binary_request(fp32_header(X, outs), X.tobytes())))
        o = head["outputs"]
        assert [(x["name"], x["datatype"], x["shape"]) for x in o] == [
            ("probabilities", "BYTES", [2, 3]), ("logits", "BYTES", [2, CLASSES])]
        for name, k in [("probabilities", 3), ("logits", CLASSES)]:
            rows = ref[name].reshape(2, CLASSES)
            want = expected_classes(rows[0], k) + expected_classes(rows[1], k)
            assert got[name] == want, (binary, name)
        if binary:
            sizes = [x["parameters"]["binary_data_size"] for x in o]
            assert sizes == [sum(4 + len(s) for s in got["probabilities"]),
                             sum(4 + len(s) for s in got["logits"])]


def test_id_not_utf8_gives_valid_json(srv):
    body = (b'{"id":"a\xff\xc0\xafb","inputs":[{"name":"input","datatype":"FP32",'
            b'"shape":[1,3,224,224],"parameters":{"binary_data_size":602112}}],'
            b'"outputs":[{"name":"logits"}]}')
    hdr = {"Inference-Header-Content-Length": str(len(body))}
    st, h, d = srv.request("POST", INFER, body + X[:1].tobytes(), hdr)
    assert st == 200
    assert json.loads(d.decode("utf-8"))["id"] == "a\ufffd\ufffd\ufffdb"


# ---- every 400 ----

def bad(srv, body, headers, status, needle):
    st, h, d = srv.request("POST", INFER, body, headers)
    assert st == status, d
    assert h["Content-Type"] == "application/json"
    j = json.loads(d)
    assert needle in j["error"], j["error"]


def test_binary_size_errors(srv):
    one = X[:1].tobytes()
    h = fp32_header(X[:1])
    body, hdr = binary_request(h, one)
    bad(srv, body[:-1], hdr, 400, "has 602111 bytes, but the inputs' binary_data_size add up "
                                  "to 602112")
    bad(srv, body + b"\0", hdr, 400, "has 602113 bytes")
    bad(srv, body, {"Inference-Header-Content-Length": str(len(body) + 1)}, 400,
        "Inference-Header-Content-Length must be a byte count")
    bad(srv, body, {"Inference-Header-Content-Length": "12x"}, 400,
        "Inference-Header-Content-Length must be a byte count")
    bad(srv, body, {"Inference-Header-Content-Length": "-1"}, 400,
        "Inference-Header-Content-Length must be a byte count")
    # binary_data_size sent without the header: the body is all JSON, so no binary part
    bad(srv, json.dumps(h).encode(), {}, 400, "has 0 bytes")
    # right total, wrong for the shape
    h2 = fp32_header(X[:1])
    h2["inputs"][0]["parameters"]["binary_data_size"] = 8
    bad(srv, *binary_request(h2, b"\0" * 8), 400,
        "FP32 input of shape [1,3,224,224] needs binary_data_size 602112, not 8")
    h3 = fp32_header(X[:1])
    h3["inputs"][0]["data"] = [1.0]
    bad(srv, *binary_request(h3, one), 400, "both \"data\" and \"binary_data_size\"")
    h4 = fp32_header(X[:1])
    h4["inputs"][0]["parameters"]["binary_data_size"] = -4
    bad(srv, *binary_request(h4, b""), 400, "must be a non-negative integer")


def test_binary_bytes_errors(srv):
    def req(raw, n, size=None):
        h = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [n],
                         "parameters": {"binary_data_size": len(raw) if size is None else size}}]}
        return binary_request(h, raw)
    good = bytes_elements([JPEG, PNG])
    bad(srv, *req(good, 3), 400, "ends inside element 2")
    bad(srv, *req(good[:-1], 2), 400, "ends inside element 1")
    bad(srv, *req(good[:2], 1), 400, "ends inside element 0")
    bad(srv, *req(good + b"xy", 2), 400, "has 2 bytes after its 2 elements")
    bad(srv, *req(struct.pack("<I", 0xffffffff) + b"abc", 1), 400, "ends inside element 0")
    bad(srv, *req(bytes_elements([b"not an image"]), 1), 415, "image 0: unrecognised data")


def test_unknown_parameters_and_outputs(srv):
    def js(h):
        return json.dumps(h).encode(), {"Content-Type": "application/json"}
    base = fp32_header(X[:1], binary=False)
    bad(srv, *js({**base, "parameters": {"priority": 1}}), 400,
        "unknown request parameter 'priority'")
    bad(srv, *js({**base, "parameters": {"binary_data_output": 1}}), 400,
        "\"binary_data_output\" must be true or false")
    bad(srv, *js({**base, "parameters": []}), 400, "request \"parameters\" must be an object")
    h = fp32_header(X[:1], binary=False)
    h["inputs"][0]["parameters"] = {"shared_memory_region": "r"}
    bad(srv, *js(h), 400, "unknown input parameter 'shared_memory_region'")
    for p, needle in [({"class_count": 2}, "unknown output parameter 'class_count'"),
                      ({"classification": 0}, "from 1 to 17"),
                      ({"classification": 18}, "from 1 to 17"),
                      ({"classification": 2.5}, "from 1 to 17"),
                      ({"binary_data": "yes"}, "\"binary_data\" must be true or false")]:
        bad(srv, *js({**base, "outputs": [{"name": "logits", "parameters": p}]}), 400, needle)
    bad(srv, *js({**base, "outputs": [out("logits"), out("logits")]}), 400, "asked for twice")
    bad(srv, *js({**base, "outputs": [out("scores")]}), 400, "unknown output")


def test_content_types(srv):
    body = json.dumps(fp32_header(X[:1], binary=False))
    bad(srv, body, {"Content-Type": "application/octet-stream"}, 415,
        "application/octet-stream with Inference-Header-Content-Length")
    bad(srv, body, {"Content-Type": "text/plain"}, 415, "not text/plain")
    assert srv.request("POST", INFER, body, {"Content-Type": "application/json"})[0] == 200
    assert srv.request("POST", INFER, body)[0] == 200


# ---- V1 shapes the KServe V1 and TF Serving clients read ----

def test_v1_model_status_for_both_families(srv):
    st, _, j = srv.json("GET", "/v1/models/small")
    assert st == 200
    assert j["name"] == "small" and j["ready"] is True  # KServe V1
    assert j["model_version_status"] == [{"version": "1", "state": "AVAILABLE",  # TF Serving
                                          "status": {"error_code": "OK", "error_message": ""}}]
    st, _, j = srv.json("GET", "/v1/models/small/metadata")
    assert st == 200
    assert j["model_spec"] == {"name": "small", "signature_name": "", "version": "1"}
    sig = j["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    assert sig["outputs"]["probabilities"]["tensor_shape"]["dim"] == [
        {"size": "-1", "name": ""}, {"size": str(CLASSES), "name": ""}]
    assert sig["inputs"]["image_bytes"]["dtype"] == "DT_STRING"
    st, _, j = srv.json("GET", "/v1/models/nope/metadata")
    assert st == 404 and j["error"] == "no such model"
