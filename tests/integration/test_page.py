"""tests/integration/test_page.py - the try-it page and CORS through a real socket: the page
and its script and style with their headers, `ui: false`, and cors_allow_origins (a listed
origin echoed, an unlisted one not, the preflight, nothing at all when unset). The browser
half is test_page_browser.py. Env: XBN_BIN, XBN_MODELS."""
import json
import os

import pytest

from xbn import SMALL, Server

PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
A, B = "http://a.example", "http://b.example:8000"
WEB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "web")


@pytest.fixture(scope="module")
def srv():
    s = Server("--model", "small=" + SMALL, "--cors-allow-origins", f"{A},{B}")
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def plain():
    s = Server("--model", "small=" + SMALL)
    yield s
    assert s.stop() == 0


@pytest.mark.parametrize("path,ctype,needle", [
    ("/", "text/html; charset=utf-8", b'<script src="/ui/app.js" defer></script>'),
    ("/ui/app.js", "text/javascript; charset=utf-8", b"/v1/models/"),
    ("/ui/app.css", "text/css; charset=utf-8", b".preds"),
])
def test_page_and_its_headers(plain, path, ctype, needle):
    st, h, body = plain.request("GET", path)
    assert st == 200
    assert h["Content-Type"] == ctype
    assert h["Content-Security-Policy"] == PAGE_CSP
    assert h["X-Content-Type-Options"] == "nosniff"
    assert needle in body
    with open(os.path.join(WEB, "index.html" if path == "/" else path[4:]), "rb") as f:
        assert body == f.read()  # the file itself, byte for byte
    assert plain.request("HEAD", path)[0] == 200


def test_page_is_self_contained(plain):
    """No inline script or style (the CSP forbids them) and nothing fetched from elsewhere."""
    html = plain.request("GET", "/")[2].decode()
    assert "<style" not in html and "style=" not in html and "<script>" not in html
    for path in ("/", "/ui/app.js", "/ui/app.css"):
        text = plain.request("GET", path)[2].decode()
        assert "http://" not in text.replace("http://127.0.0.1:8080", "")
        assert "https://" not in text and "//cdn" not in text


def test_api_answers_are_nosniff_without_page_csp(plain):
    st, h, _ = plain.request("GET", "/v1/models")
    assert st == 200 and h["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in h


def test_ui_false_is_404(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"ui": False, "models": [{"name": "small", "path": SMALL}]}))
    s = Server("--config", str(cfg))
    try:
        for path in ("/", "/ui/app.js", "/ui/app.css"):
            st, h, body = s.request("GET", path)
            assert st == 404, path
            assert json.loads(body) == {"error": "the page is disabled (ui: false)"}
            assert "Content-Security-Policy" not in h
        assert s.request("GET", "/v1/models")[0] == 200
    finally:
        assert s.stop() == 0


def test_no_cors_headers_when_unset(plain):
    st, h, _ = plain.request("GET", "/v1/models", headers={"Origin": A})
    assert st == 200
    assert not [k for k in h if k.lower().startswith("access-control-") or k.lower() == "vary"]
    st, h, _ = plain.request("OPTIONS", "/v1/models/small:predict", headers={"Origin": A})
    assert st == 405 and h["Allow"] == "POST, PUT"


@pytest.mark.parametrize("origin", [A, B])
def test_listed_origin_is_echoed(srv, origin):
    st, h, _ = srv.request("GET", "/v1/models", headers={"Origin": origin})
    assert st == 200
    assert h["Access-Control-Allow-Origin"] == origin
    assert h["Vary"] == "Origin"
    assert h["Access-Control-Expose-Headers"] == "X-Request-Id, Retry-After"
    from xbn import JPEG
    st, h, body = srv.request("POST", "/v1/models/small:predict", JPEG,
                              {"Content-Type": "image/jpeg", "Origin": origin})
    assert st == 200 and h["Access-Control-Allow-Origin"] == origin
    # an error answer carries it too, so a page can read why
    st, h, _ = srv.request("POST", "/v1/models/small:predict", b"nope",
                           {"Content-Type": "image/jpeg", "Origin": origin})
    assert st == 415 and h["Access-Control-Allow-Origin"] == origin


@pytest.mark.parametrize("origin", ["http://c.example", "http://a.example:80", "https://a.example",
                                    "http://a.example.evil", "http://a.exampl", "null"])
def test_unlisted_origin_is_not_echoed(srv, origin):
    st, h, _ = srv.request("GET", "/v1/models", headers={"Origin": origin})
    assert st == 200
    assert "Access-Control-Allow-Origin" not in h
    assert h["Vary"] == "Origin"  # the answer still depends on Origin, for caches


def test_preflight(srv):
    hdrs = {"Origin": A, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"}
    st, h, body = srv.request("OPTIONS", "/v1/models/small:predict", headers=hdrs)
    assert st == 204 and body == b""
    assert h["Access-Control-Allow-Origin"] == A
    assert h["Access-Control-Allow-Methods"] == "POST, PUT, OPTIONS"
    assert h["Access-Control-Allow-Headers"] == "Content-Type, X-Request-Id"
    assert h["Access-Control-Max-Age"] == "600"
    assert h["Vary"] == "Origin"
    st, h, _ = srv.request("OPTIONS", "/v2/models/small/infer", headers=hdrs)
    assert st == 204 and h["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    st, h, _ = srv.request("OPTIONS", "/v1/models", headers=hdrs)
    assert st == 204 and h["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
    # an unlisted origin gets no permission
    st, h, _ = srv.request("OPTIONS", "/v1/models/small:predict",
                           headers={**hdrs, "Origin": "http://c.example"})
    assert st == 204
    assert not [k for k in h if k.lower().startswith("access-control-")]


def test_cors_only_on_the_api_routes(srv):
    for path in ("/", "/healthz", "/metrics"):
        st, h, _ = srv.request("GET", path, headers={"Origin": A})
        assert st == 200, path
        assert "Access-Control-Allow-Origin" not in h and "Vary" not in h, path
    assert srv.request("OPTIONS", "/healthz", headers={"Origin": A})[0] == 405


def test_cors_setting_errors(tmp_path):
    from xbn import run_check
    for bad in (["--cors-allow-origins", "http://a.example, http://b.example"],
                ["--cors-allow-origins", "http://a.example,,http://b.example"],
                ["--cors-allow-origins", ",http://a.example"]):
        r = run_check(["--model", "small=" + SMALL, *bad])
        assert r.returncode != 0 and "cors_allow_origins" in r.stderr, bad
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"cors_allow_origins": [A, B],
                               "models": [{"name": "small", "path": SMALL}]}))
    r = run_check(["--config", str(cfg)])
    assert r.returncode == 0, r.stderr
    assert f'"cors_allow_origins": "{A},{B}"' in r.stdout
    cfg.write_text(json.dumps({"cors_allow_origins": [A, 3],
                               "models": [{"name": "small", "path": SMALL}]}))
    r = run_check(["--config", str(cfg)])
    assert r.returncode != 0 and "cors_allow_origins" in r.stderr
