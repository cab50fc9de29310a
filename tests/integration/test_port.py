"""tests/integration/test_port.py - one port, two daemons: a second daemon on a taken port exits
1 at once with one log line naming the address, the port and the process that holds it;
reuse_port on both daemons shares the port, and a replacement under load (start the new
daemon with reuse_port, wait until it is ready, SIGTERM the old one) loses no request.

The replacement runs in a private network namespace (`unshare --net`, root only; skipped
otherwise) so that it can turn on net.ipv4.tcp_migrate_req there without touching the
machine's own network settings: this file is then run as a script, which prints its counts
as one JSON line. Loopback only; every daemon and client loop is bounded in time."""
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest

from xbn import BIN, JPEG, SMALL, Server

PY = "/usr/bin/python3"
START_TIMEOUT = 30
PREDICT = "/v1/models/small:predict"
ANSWERED = re.compile(r"POST /v1/models/small:predict model=small status=200 ")


def env_without_xbnserve(**extra):
    e = {k: v for k, v in os.environ.items() if not k.startswith("XBNSERVE_")}
    e.update(extra)
    return e


def start_fails(*args, env=None, preexec=None):
    """Run a daemon that must not start: (exit status, its stderr lines, seconds taken)."""
    t0 = time.monotonic()
    r = subprocess.run([BIN, "serve", "--model", "small=" + SMALL, *args],
                       env=env_without_xbnserve(**(env or {})), stderr=subprocess.PIPE,
                       stdout=subprocess.DEVNULL, text=True, timeout=START_TIMEOUT,
                       preexec_fn=preexec)
    return r.returncode, r.stderr.splitlines(), time.monotonic() - t0


def listeners(port):
    """LISTEN sockets on `port` in /proc/net/tcp (what `ss -ltn` shows)."""
    n = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            n += state == "0A" and int(local.split(":")[1], 16) == port
    return n


def one_error(lines, want):
    """The failed start logged exactly one line, the error `want` (after the timestamp)."""
    assert len(lines) == 1, lines
    assert re.fullmatch(r"\S+ error " + re.escape(want), lines[0]), lines[0]


@pytest.fixture
def holder():
    s = Server("--model", "small=" + SMALL)
    yield s
    assert s.stop() == 0


def test_second_daemon_on_taken_port_fails(holder):
    rc, lines, took = start_fails("--port", str(holder.port))
    assert rc == 1
    one_error(lines, f"cannot listen on 127.0.0.1:{holder.port}: address in use by pid "
                     f"{holder.proc.pid} (xbnserve); to share a port on purpose, start both "
                     f"daemons with reuse_port")
    assert took < 5  # before any model is loaded
    assert listeners(holder.port) == 1
    assert holder.json("GET", "/readyz")[0] == 200


def test_wildcard_address_conflicts_with_loopback(holder):
    rc, lines, _ = start_fails("--port", str(holder.port), "--listen-address", "0.0.0.0")
    assert rc == 1
    one_error(lines, f"cannot listen on 0.0.0.0:{holder.port}: address in use by pid "
                     f"{holder.proc.pid} (xbnserve) listening on 127.0.0.1:{holder.port}; to "
                     f"share a port on purpose, start both daemons with reuse_port")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the second daemon as nobody")
def test_holder_of_another_user_is_not_guessed(holder):
    def as_nobody():
        os.setgroups([])
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)

    rc, lines, _ = start_fails("--port", str(holder.port), preexec=as_nobody)
    assert rc == 1
    one_error(lines, f"cannot listen on 127.0.0.1:{holder.port}: address in use by a process "
                     f"of uid 0 whose /proc/PID/fd this user cannot read; to share a port on "
                     f"purpose, start both daemons with reuse_port")


def test_reuse_port_on_one_side_only_fails():
    a = Server("--model", "small=" + SMALL, "--reuse-port", "true")
    try:
        rc, lines, _ = start_fails("--port", str(a.port))
        assert rc == 1
        one_error(lines, f"cannot listen on 127.0.0.1:{a.port}: address in use by pid "
                         f"{a.proc.pid} (xbnserve); to share a port on purpose, start both "
                         f"daemons with reuse_port")
    finally:
        assert a.stop() == 0
    b = Server("--model", "small=" + SMALL)
    try:
        rc, lines, took = start_fails("--port", str(b.port), env={"XBNSERVE_REUSE_PORT": "true"})
        assert rc == 1
        assert took < 5
        one_error(lines, f"cannot listen on 127.0.0.1:{b.port}: address in use by pid "
                         f"{b.proc.pid} (xbnserve), which does not share it (sharing needs "
                         f"reuse_port on both daemons, run by the same user)")
    finally:
        assert b.stop() == 0


def test_reuse_port_on_both_shares_and_listens_once_ready():
    a = Server("--model", "small=" + SMALL, "--reuse-port", "true")
    b = None
    try:
        b = Server("--model", "small=" + SMALL, "--port", str(a.port),
                   env={"XBNSERVE_REUSE_PORT": "1"})
        assert b.port == a.port
        assert listeners(a.port) == 2
        text = "".join(b.lines)
        loaded = text.index(" model small loaded in ")
        assert loaded < text.index(f" listening on 127.0.0.1:{a.port} ")
        # the kernel resets what waits in a closing listener's queue unless it may migrate it
        path = "/proc/sys/net/ipv4/tcp_migrate_req"
        migrates = os.path.exists(path) and open(path).read().strip() == "1"
        warning = (" warn  reuse_port: net.ipv4.tcp_migrate_req is not 1, so connections still "
                   "queued on a daemon of this port when it stops are reset (docs/deploy.md)\n")
        assert sum(line.endswith(warning) for line in b.lines) == (0 if migrates else 1)
    finally:
        assert a.stop() == 0
        if b:
            assert b.stop() == 0


def test_address_that_is_not_local_fails():
    with open("/proc/sys/net/ipv4/ip_nonlocal_bind") as f:
        if f.read().strip() != "0":
            pytest.skip("ip_nonlocal_bind is on: any address binds")
    rc, lines, _ = start_fails("--port", "8080", "--listen-address", "192.0.2.1")
    assert rc == 1
    one_error(lines, "cannot listen on 192.0.2.1:8080: Cannot assign requested address")
    # not an address at all: a configuration error (exit 2), as --check-config says too
    rc, lines, _ = start_fails("--listen-address", "300.1.2.3")
    assert rc == 2
    assert lines == ["xbnserve serve: listen_address: '300.1.2.3' is not an IPv4 address"]


# ---- replacement under load ----

def handover():
    """Daemon A serves; two clients post JPEGs in a loop, each on a new connection; daemon B
    starts on A's port with reuse_port; once B is ready A gets SIGTERM; the load goes on until
    B alone has answered some more. Returns the counts."""
    a = Server("--model", "small=" + SMALL, "--reuse-port", "true")
    stop = threading.Event()
    ok, failed, lock = [0], [], threading.Lock()

    def client():
        deadline = time.monotonic() + 90
        while not stop.is_set() and time.monotonic() < deadline and ok[0] < 5000:
            c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
            try:
                c.request("POST", PREDICT, body=JPEG, headers={"Content-Type": "image/jpeg"})
                r = c.getresponse()
                r.read()
                with lock:
                    if r.status == 200:
                        ok[0] += 1
                    else:
                        failed.append(f"status {r.status}")
            except OSError as e:
                with lock:
                    failed.append(repr(e))
            finally:
                c.close()

    def wait_more(n):
        want = ok[0] + n
        deadline = time.monotonic() + 60
        while ok[0] < want and time.monotonic() < deadline and not failed:
            time.sleep(0.01)

    threads = [threading.Thread(target=client) for _ in range(2)]
    for t in threads:
        t.start()
    b = None
    try:
        wait_more(30)
        b = Server("--model", "small=" + SMALL, "--port", str(a.port),
                   env={"XBNSERVE_REUSE_PORT": "true"})
        wait_more(60)
        a_rc = a.stop()
        wait_more(30)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        a.stop()
        b_rc = b.stop() if b else None
    def count(s):
        return sum(bool(ANSWERED.search(line)) for line in s.lines)

    return {"ok": ok[0], "failed": failed[:10], "a_rc": a_rc, "b_rc": b_rc,
            "a_answered": count(a), "b_answered": count(b),
            "a_stopped": [x for x in a.lines if " stopped after " in x]}


def private_netns_usable():
    return (os.geteuid() == 0 and shutil.which("unshare") and shutil.which("ip") and
            os.path.exists("/proc/sys/net/ipv4/tcp_migrate_req") and
            subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0)


@pytest.mark.skipif(not private_netns_usable(),
                    reason="needs root, unshare and ip, and a kernel with tcp_migrate_req (5.14)")
def test_replacement_under_load_fails_no_request():
    r = subprocess.run(["unshare", "--net", PY, os.path.abspath(__file__), "handover"],
                       capture_output=True, text=True, timeout=240,
                       env=env_without_xbnserve(XBN_BIN=os.path.abspath(BIN),
                                                XBN_MODELS=os.path.abspath(os.path.dirname(SMALL))))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.splitlines()[-1])
    assert res["failed"] == []
    assert res["a_rc"] == 0 and res["b_rc"] == 0
    assert res["a_answered"] >= 30 and res["b_answered"] >= 30
    assert res["a_answered"] + res["b_answered"] == res["ok"]
    assert len(res["a_stopped"]) == 1 and res["a_stopped"][0].rstrip().endswith(
        "(0 requests cut off)"), res["a_stopped"]


if __name__ == "__main__" and sys.argv[1:] == ["handover"]:
    # in the private network namespace made by the test above: bring up its loopback and let
    # a closing listener's queued connections move to the other listener of the port
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with open("/proc/sys/net/ipv4/tcp_migrate_req", "w") as f:
        f.write("1")
    print(json.dumps(handover()))
