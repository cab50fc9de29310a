"""tests/integration/test_tls.py - HTTPS (tls_cert_file, tls_key_file) and the metrics
listener (metrics_port) end to end. A CA and a server certificate for 127.0.0.1 are made
with Debian's openssl at test time; the clients verify the certificate against that CA:
Python's ssl and curl --cacert. Env: XBN_BIN, XBN_MODELS."""
import http.client
import os
import re
import shutil
import socket
import ssl
import subprocess

import pytest

from xbn import JPEG, SMALL, Server

PREDICT = "/v1/models/m:predict"
HDR_JPEG = {"Content-Type": "image/jpeg"}

def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d, name):
    """A self-signed CA: (cert path, key path)."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj",
            f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign", cwd=d)
    return os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key")


def make_leaf(d, name, ca):
    """A server certificate for IP 127.0.0.1 signed by `ca`: (cert path, key path)."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            f"{name}.key", "-out", f"{name}.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
                "basicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", ca[0], "-CAkey", ca[1],
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
            cwd=d)
    return os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl (Debian package openssl) not installed")
    d = str(tmp_path_factory.mktemp("pki"))
    ca = make_ca(d, "ca")
    other_ca = make_ca(d, "otherca")
    return {"ca": ca, "leaf": make_leaf(d, "server", ca),
            "other_leaf": make_leaf(d, "other", other_ca), "dir": d}


def https(port, method, path, cafile, body=None, headers=None):
    ctx = ssl.create_default_context(cafile=cafile)
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
    try:
        c.request(method, path, body=body, headers=headers or {})
        version = c.sock.version()  # before the answer: a closing one takes the socket
        r = c.getresponse()
        return r.status, r.read(), version
    finally:
        c.close()


@pytest.fixture(scope="module")
def tsrv(pki):
    cert, key = pki["leaf"]
    s = Server("--model", "m=" + SMALL, "--tls-cert-file", cert, "--tls-key-file", key)
    yield s
    assert s.stop() == 0, "".join(s.lines[-30:])


def test_predict_over_https_equals_http(tsrv, pki):
    st, body, version = https(tsrv.port, "POST", PREDICT, pki["ca"][0], JPEG, HDR_JPEG)
    assert st == 200, body[:200]
    assert version in ("TLSv1.2", "TLSv1.3")
    plain = Server("--model", "m=" + SMALL)
    try:
        st2, _, body2 = plain.request("POST", PREDICT, JPEG, HDR_JPEG)
    finally:
        assert plain.stop() == 0
    assert st2 == 200 and body == body2


def test_log_names_https_and_not_the_key(tsrv, pki):
    text = "".join(tsrv.lines)
    assert f" listening on 127.0.0.1:{tsrv.port} (https," in text
    with open(pki["leaf"][1]) as f:
        key_lines = [l for l in f.read().splitlines() if l and not l.startswith("-----")]
    assert key_lines and not any(l in text for l in key_lines)


def test_curl_with_cacert(tsrv, pki):
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    out = subprocess.run(["curl", "-sS", "--cacert", pki["ca"][0], "-o", "/dev/null", "-w",
                          "%{http_code}", f"https://127.0.0.1:{tsrv.port}/healthz"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "200", out.stderr
    # curl with the system's CAs only: the test CA is unknown to it
    bad = subprocess.run(["curl", "-sS", "-o", "/dev/null", f"https://127.0.0.1:{tsrv.port}/healthz"],
                         capture_output=True, text=True, timeout=60)
    # 60: peer certificate not verified (77: no CA store at all, still no connection)
    assert bad.returncode in (60, 77), (bad.returncode, bad.stderr)


def test_untrusted_client_fails_handshake(tsrv, pki):
    with pytest.raises(ssl.SSLCertVerificationError):
        https(tsrv.port, "GET", "/healthz", pki["other_leaf"][0])


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_tls_below_1_2_refused(tsrv, pki):
    ctx = ssl.create_default_context(cafile=pki["ca"][0])
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with socket.create_connection(("127.0.0.1", tsrv.port), timeout=30) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
                pass


def test_plain_http_to_tls_port_gets_no_200(tsrv, pki):
    with socket.create_connection(("127.0.0.1", tsrv.port), timeout=30) as c:
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got = b""
        try:
            while True:
                chunk = c.recv(4096)
                if not chunk:
                    break
                got += chunk
        except ConnectionError:
            pass
    assert not got.startswith(b"HTTP/"), got[:100]  # at most a TLS alert
    assert https(tsrv.port, "GET", "/healthz", pki["ca"][0])[0] == 200  # still serving


def refused(*args):
    """Run serve with `args`; it must exit 1 before listening. The log."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("XBNSERVE_")}
    p = subprocess.run([os.environ.get("XBN_BIN", "build/xbnserve"), "serve", "--port", "0",
                        "--model", "m=" + SMALL, *args], env=e, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 1, p.stderr
    assert "listening on" not in p.stderr
    return p.stderr


def test_wrong_key_refuses_to_start(pki):
    err = refused("--tls-cert-file", pki["leaf"][0], "--tls-key-file", pki["other_leaf"][1])
    assert "the key does not belong to the certificate" in err


def test_unreadable_or_invalid_files_refuse_to_start(pki):
    missing = os.path.join(pki["dir"], "missing.pem")
    assert "cannot open" in refused("--tls-cert-file", missing, "--tls-key-file", pki["leaf"][1])
    junk = os.path.join(pki["dir"], "junk.pem")
    with open(junk, "w") as f:
        f.write("not a certificate\n")
    err = refused("--tls-cert-file", junk, "--tls-key-file", pki["leaf"][1])
    assert "tls_cert_file " + junk in err


def test_cert_without_key_is_a_config_error(pki):
    e = {k: v for k, v in os.environ.items() if not k.startswith("XBNSERVE_")}
    p = subprocess.run([os.environ.get("XBN_BIN", "build/xbnserve"), "serve", "--port", "0",
                        "--model", "m=" + SMALL, "--tls-cert-file", pki["leaf"][0]], env=e,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "set both" in p.stderr, p.stderr


def test_metrics_port_stays_plain_http(pki):
    cert, key = pki["leaf"]
    s = Server("--model", "m=" + SMALL, "--tls-cert-file", cert, "--tls-key-file", key,
               "--metrics-port", "0")
    try:
        mport = int(re.search(r"metrics on 127\.0\.0\.1:(\d+) \(http,", "".join(s.lines))[1])
        c = http.client.HTTPConnection("127.0.0.1", mport, timeout=60)
        c.request("GET", "/metrics")
        r = c.getresponse()
        assert r.status == 200 and b"xbnserve_requests_total" in r.read()
        c.close()
        assert https(s.port, "GET", "/metrics", pki["ca"][0])[0] == 404
        assert https(s.port, "POST", PREDICT, pki["ca"][0], JPEG, HDR_JPEG)[0] == 200
    finally:
        assert s.stop() == 0, "".join(s.lines[-30:])
