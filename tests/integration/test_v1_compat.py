"""tests/integration/test_v1_compat.py - the V1 routes as KServe V1 and TF Serving clients read
and write them, through a real socket: GET /v1/models as KServe V1's list of names (each
model's status under "details", in the same order), and TF Serving's columnar predict form
({"inputs": ...}, answered with {"outputs": ...}) beside the row form ({"instances": ...},
answered with {"predictions": ...}), on the plain and the versioned predict route. A columnar
answer is the row answer's bytes with the one key renamed: the same scores, bit for bit.
Env: XBN_BIN, XBN_MODELS."""
import base64
import json

import pytest

from xbn import JPEG, PNG, SMALL, Server, image_bytes, raw_scores

JSON = {"Content-Type": "application/json"}
PREDICT = "/v1/models/small:predict"
VERSIONED = "/v1/models/small/versions/1:predict"
B64 = [base64.b64encode(x).decode() for x in (JPEG, PNG, image_bytes(9))]


def status(name):
    """GET /v1/models/{name}'s answer for a ready copy of SMALL."""
    return {"name": name, "status": "ready", "ready": True,
            "model_version_status": [{"version": "1", "state": "AVAILABLE",
                                      "status": {"error_code": "OK", "error_message": ""}}],
            "arch": "mobilenetv2", "flavour": "keras", "classes": 17, "input_size": 224,
            "untrained": True, "max_batch_size": 8, "workers": 1, "width": 0.35,
            "source": "init seed=404 (xbnweights.py testset)", "path": SMALL}


def compact(doc):
    """The daemon's JSON spelling: no spaces, one newline."""
    return (json.dumps(doc, separators=(",", ":")) + "\n").encode()


@pytest.fixture(scope="module")
def srv():
    # Listed in configuration order, which is not alphabetical here.
    s = Server("--model", "zeta=" + SMALL, "--model", "small=" + SMALL,
               "--max-images-per-request", "4")
    yield s
    assert s.stop() == 0


# ---- GET /v1/models ----

def test_list_is_kserve_v1_names_then_details(srv):
    st, h, body = srv.request("GET", "/v1/models")
    assert (st, h["Content-Type"]) == (200, "application/json")
    assert body == compact({"models": ["zeta", "small"],
                            "details": [status("zeta"), status("small")]})
    st, h, body = srv.request("HEAD", "/v1/models")
    assert (st, body) == (200, b"")
    assert srv.json("GET", "/v1/models/small")[2] == status("small")


# ---- the columnar form ----

def predict(srv, doc, path=PREDICT, method="POST", headers=JSON):
    st, _, body = srv.request(method, path, json.dumps(doc).encode(), headers)
    assert st == 200, body
    return body


def as_columnar(row_body):
    """The row answer with its key renamed: what the columnar request must get, byte for
    byte."""
    assert row_body.count(b'"predictions":') == 1
    return row_body.replace(b'"predictions":', b'"outputs":')


@pytest.mark.parametrize("inputs,images", [
    ([{"b64": B64[0]}, {"b64": B64[1]}, {"b64": B64[2]}], [0, 1, 2]),   # a batch tensor
    ({"b64": B64[1]}, [1]),                                              # one image
    ({"image_bytes": [{"b64": B64[2]}, {"b64": B64[0]}]}, [2, 0]),       # a named input
    ({"image": {"b64": B64[0]}}, [0]),                                   # named, one image
], ids=["list", "one", "named-list", "named-one"])
def test_columnar_equals_row_bit_for_bit(srv, inputs, images):
    rows = predict(srv, {"instances": [{"b64": B64[i]} for i in images], "top_k": 0})
    cols = predict(srv, {"inputs": inputs, "top_k": 0})
    assert cols == as_columnar(rows)
    assert len(raw_scores(cols)) == len(images)
    assert all(len(s) == 17 for s in raw_scores(cols))
    # and each image's scores are the raw image's own
    for k, i in enumerate(images):
        raw = srv.request("POST", PREDICT + "?top_k=0", (JPEG, PNG, image_bytes(9))[i],
                          {"Content-Type": "application/octet-stream"})[2]
        assert raw_scores(cols)[k] == raw_scores(raw)[0]


def test_columnar_answer_exact_keys_and_top_k(srv):
    cols = json.loads(predict(srv, {"inputs": [{"b64": B64[0]}], "top_k": 2}))
    assert list(cols) == ["model", "untrained", "outputs"]
    assert cols["model"] == "small" and cols["untrained"] is True
    assert [len(x) for x in cols["outputs"]] == [2]
    # top_k from the query string when the body has none
    q = predict(srv, {"inputs": [{"b64": B64[0]}]}, PREDICT + "?top_k=2")
    assert q == compact(cols)


def test_columnar_on_the_versioned_route_and_with_put(srv):
    doc = {"inputs": {"image_bytes": [{"b64": B64[0]}, {"b64": B64[1]}]}}
    want = as_columnar(predict(srv, {"instances": [{"b64": B64[0]}, {"b64": B64[1]}]}))
    assert predict(srv, doc, VERSIONED) == want
    assert predict(srv, doc, method="PUT") == want
    # curl -d's form type, read as JSON from its first byte
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert predict(srv, doc, VERSIONED, headers=form) == want
    # the other model answers under its own name, in the same form
    other = predict(srv, doc, "/v1/models/zeta:predict")
    assert other == want.replace(b'"model":"small"', b'"model":"zeta"')


def test_row_form_still_answers_predictions(srv):
    j = json.loads(predict(srv, {"instances": [{"b64": B64[0]}]}))
    assert list(j) == ["model", "untrained", "predictions"]


ERRORS = [  # (body, status, error)
    ({"instances": [{"b64": B64[0]}], "inputs": [{"b64": B64[0]}]}, 400,
     'a body has "instances" (row form) or "inputs" (columnar form), not both'),
    ({"inputs": []}, 400, '"inputs" is empty'),
    ({"inputs": {"image_bytes": []}}, 400, '"inputs.image_bytes" is empty'),
    ({"inputs": {}}, 400, '"inputs" names 0 inputs; the model takes one (the image)'),
    ({"inputs": {"image": [{"b64": B64[0]}], "mask": [{"b64": B64[0]}]}}, 400,
     '"inputs" names 2 inputs; the model takes one (the image)'),
    ({"inputs": B64[0]}, 400, '"inputs" must be a list of {"b64": ...} images or one of them'),
    ({"inputs": {"image": B64[0]}}, 400,
     '"inputs.image" must be a list of {"b64": ...} images or one of them'),
    ({"inputs": [B64[0]]}, 400, 'inputs[0] needs a "b64" string'),
    ({"inputs": [{"image": {"b64": B64[0]}}]}, 400, 'inputs[0] needs a "b64" string'),
    ({"inputs": {"image": [{"b64": B64[0]}, {"b64": "@@"}]}}, 400,
     "inputs.image[1].b64 is not valid base64"),
    ({"inputs": [{"b64": base64.b64encode(b"not an image").decode()}]}, 415,
     "image 0: unrecognised data (first bytes 6e 6f 74 20): only JPEG and PNG are accepted"),
    ({"inputs": [{"b64": B64[0]}] * 5}, 413, "more than 4 images in one request"),
    ({"top_k": 1}, 400, 'JSON body needs an "instances" array or "inputs"'),
]


@pytest.mark.parametrize("doc,code,error", ERRORS, ids=[e[2][:40] for e in ERRORS])
def test_columnar_errors(srv, doc, code, error):
    for path in (PREDICT, VERSIONED):
        st, _, body = srv.request("POST", path, json.dumps(doc).encode(), JSON)
        assert (st, body) == (code, compact({"error": error})), path
