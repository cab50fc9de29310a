"""tests/integration/test_v1_compat.py - the V1 routes as KServe V1 and TF Serving clients read
and write them, through a real socket: GET /v1/models as KServe V1's list of names (each
model's status under "details", in the same order). Env: XBN_BIN, XBN_MODELS."""
import json

import pytest

from xbn import SMALL, Server


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
