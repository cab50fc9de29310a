"""tests/integration/test_client_forms.py - the requests clients send without reading the
docs first: curl -T (PUT) on predict, curl -d's application/x-www-form-urlencoded on the
predict and V2 infer routes (read as what the first bytes say), multipart text fields.
Env: XBN_BIN, XBN_MODELS."""
import base64
import json

import pytest

from xbn import JPEG, PNG, SMALL, Server, multipart

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
PREDICT = "/v1/models/small:predict?top_k=2"


@pytest.fixture(scope="module")
def srv():
    s = Server("--model", f"small={SMALL}")
    yield s
    assert s.stop() == 0


def test_put_is_post_on_predict(srv):
    want = srv.request("POST", PREDICT, JPEG, {"Content-Type": "image/jpeg"})
    assert want[0] == 200
    st, _, body = srv.request("PUT", PREDICT, JPEG)  # curl -T sends no Content-Type
    assert (st, body) == (200, want[2])
    st, h, _ = srv.request("PUT", "/v2/models/small/infer", b"{}")
    assert st == 405 and h["Allow"] == "POST"


@pytest.mark.parametrize("data,ctype", [(JPEG, "image/jpeg"), (PNG, "image/png")])
def test_form_type_image_is_sniffed(srv, data, ctype):
    want = srv.request("POST", PREDICT, data, {"Content-Type": ctype})[2]
    st, _, body = srv.request("POST", PREDICT, data, FORM)
    assert (st, body) == (200, want)


def test_form_type_json_is_sniffed(srv):
    doc = json.dumps({"instances": [{"b64": base64.b64encode(JPEG).decode()}]})
    want = srv.request("POST", PREDICT, doc, {"Content-Type": "application/json"})[2]
    st, _, body = srv.request("POST", PREDICT, " \n" + doc, FORM)
    assert (st, body) == (200, want)


@pytest.mark.parametrize("body", [b"a=1&b=2", b"GIF89a....", JPEG[1:]])
def test_form_type_other_bytes_415_says_what_to_send(srv, body):
    st, _, j = srv.json("POST", PREDICT, body, FORM)
    assert st == 415
    assert "--data-binary @FILE" in j["error"] and "image/jpeg" in j["error"]


def test_v2_form_type_json_is_sniffed(srv):
    doc = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                  "data": [base64.b64encode(JPEG).decode()]}]})
    want = srv.request("POST", "/v2/models/small/infer", doc, {"Content-Type": "application/json"})
    assert want[0] == 200
    st, _, body = srv.request("POST", "/v2/models/small/infer", doc, FORM)
    assert (st, body) == (200, want[2])
    st, _, j = srv.json("POST", "/v2/models/small/infer", b"a=1", FORM)
    assert st == 415 and "application/json" in j["error"]


@pytest.mark.parametrize("addr", ["localhost", "10.0.0.256", "::1"])
def test_check_config_refuses_what_serve_refuses(addr):
    import subprocess
    from xbn import BIN
    args = [BIN, "serve", "--listen-address", addr, "--port", "0", "--model", f"small={SMALL}"]
    for extra in (["--check-config"], []):
        p = subprocess.run(args + extra, capture_output=True, text=True, timeout=60)
        assert p.returncode != 0, extra
        assert f"listen_address: '{addr}' is not an IPv4 address" in p.stderr, p.stderr


def test_multipart_text_part_is_a_field(srv):
    want = srv.request("POST", "/v1/models/small:predict?top_k=1", JPEG,
                       {"Content-Type": "image/jpeg"})[2]
    # top_k as curl -F top_k=1 sends it, and with the Content-Type some encoders add
    for hdr in ("", "Content-Type: text/plain\r\n"):
        b = "xbnB"
        body = (f'--{b}\r\nContent-Disposition: form-data; name="top_k"\r\n{hdr}\r\n1\r\n'
                f'--{b}\r\nContent-Disposition: form-data; name="a"; filename="a.jpg"\r\n'
                f'Content-Type: image/jpeg\r\n\r\n').encode() + JPEG + f"\r\n--{b}--\r\n".encode()
        st, _, data = srv.request("POST", "/v1/models/small:predict", body,
                                  {"Content-Type": f"multipart/form-data; boundary={b}"})
        assert (st, data) == (200, want)


def test_multipart_unknown_field_400_names_it(srv):
    body, hdr = multipart([(JPEG, "image/jpeg")], {"topk": "1"})
    st, _, j = srv.json("POST", "/v1/models/small:predict", body, hdr)
    assert st == 400 and "unknown form field 'topk'" in j["error"]


def test_multipart_non_image_part_named_not_printed(srv):
    secret = b"password=hunter2 and more text"
    body, hdr = multipart([(JPEG, "image/jpeg"), (secret, "text/plain")])
    st, _, j = srv.json("POST", "/v1/models/small:predict", body, hdr)
    assert st == 415
    assert j["error"].startswith("image 1: ") and j["error"].endswith(" (part 'img1')")
    assert "hunter2" not in j["error"]
