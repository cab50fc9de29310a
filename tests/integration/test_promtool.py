"""tests/integration/test_promtool.py - GET /metrics of a daemon that has served a few requests
is a valid exposition by Prometheus' own checker (`promtool check metrics`, Debian package
`prometheus`), and deliberately broken copies of it are not; docs/api.md lists exactly the
metric families the daemon exports; probes stay out of the latency histogram; the process_*
series agree with /proc. Env: XBN_BIN, XBN_MODELS."""
import os
import re
import shutil
import subprocess
import time

import pytest

from xbn import BIN, JPEG, SMALL, Server

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    not PROMTOOL, reason="promtool missing: scripts/deps.sh test installs Debian's prometheus")
HERE = os.path.dirname(os.path.abspath(__file__))
API_MD = os.path.join(HERE, "..", "..", "docs", "api.md")


def promtool_check(text):
    """(exit code, output) of `promtool check metrics` on `text`."""
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def families(text):
    """{name: type} from the # TYPE lines."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def sample(text, series):
    """The value of one exact series (name{labels} as rendered), or None."""
    m = re.search("^" + re.escape(series) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


@pytest.fixture(scope="module")
def daemon():
    t0 = time.time()
    s = Server("--model", "small=" + SMALL)
    s.t0 = t0
    try:  # a failed request here must not leave the daemon running
        hdr = {"Content-Type": "image/jpeg"}
        assert s.request("POST", "/v1/models/small:predict", JPEG, hdr)[0] == 200
        assert s.request("POST", "/v1/models/nosuch:predict", JPEG, hdr)[0] == 404
        assert s.request("GET", "/no/such/route")[0] == 404
        assert s.request("GET", "/healthz")[0] == 200
        assert s.request("GET", "/v2/models/small/ready")[0] == 200
        assert s.request("GET", "/v1/models")[0] == 200
        yield s
    finally:
        assert s.stop() == 0


def scrape(s, timeout=5):
    """/metrics once every earlier request is counted: a request is counted when its
    connection completes, a moment after the client has its answer, and leaves the in-flight
    gauge only after that; so a scrape that sees itself alone in flight sees them all."""
    deadline = time.time() + timeout
    while True:
        st, h, data = s.request("GET", "/metrics")
        assert st == 200 and h["Content-Type"].startswith("text/plain; version=0.0.4")
        text = data.decode()
        if sample(text, "xbnserve_requests_in_flight") == 1 or time.time() > deadline:
            return text
        time.sleep(0.01)


@needs_promtool
def test_live_exposition_passes_promtool(daemon):
    text = scrape(daemon)
    rc, out = promtool_check(text)
    assert rc == 0 and out.strip() == "", out  # no parse error and no lint complaint
    assert 'xbnserve_requests_total{model="small",endpoint="v1_predict",code="200"} 1' in text


@needs_promtool
@pytest.mark.parametrize("breakage", ["cut_label", "counter_suffix", "no_help", "bad_value",
                                      "bad_le", "family_twice"])
def test_broken_copy_fails_promtool(daemon, breakage):
    text = scrape(daemon)
    if breakage == "cut_label":  # a label value that never closes: a parse error
        broken = text.replace('{model="small",endpoint="v1_predict",code="200"}',
                              '{model="small,endpoint="v1_predict",code="200"}', 1)
    elif breakage == "counter_suffix":  # a counter without _total: a lint error
        broken = text.replace("xbnserve_images_total", "xbnserve_images")
    elif breakage == "no_help":
        broken = re.sub(r"^# HELP xbnserve_queue_depth .*\n", "", text, flags=re.M)
    elif breakage == "bad_value":
        broken = re.sub(r"^(xbnserve_requests_in_flight) \d+$", r"\1 one", text, flags=re.M)
    elif breakage == "bad_le":  # a bucket bound that is not a number
        broken = text.replace('le="+Inf"', 'le="inf-ish"', 1)
    else:  # one family rendered twice, as a function called twice would
        block = re.search(r"^# HELP xbnserve_build_info .*\n# TYPE .*\n.*\n", text, re.M).group(0)
        broken = text + block
    assert broken != text
    rc, out = promtool_check(broken)
    assert rc != 0, f"promtool accepted a broken exposition ({breakage}):\n{out}"


def test_docs_list_every_metric(daemon):
    """docs/api.md's metrics table names exactly the families /metrics exports."""
    exported = set(families(scrape(daemon)))
    with open(API_MD) as f:
        documented = set(re.findall(r"^\| `((?:xbnserve|process)_[a-z_]+)` \|", f.read(), re.M))
    assert documented == exported, (f"undocumented: {sorted(exported - documented)}; "
                                    f"documented but not exported: {sorted(documented - exported)}")


def test_probes_and_unknown_routes_not_in_latency(daemon):
    text = scrape(daemon)
    lat = set(re.findall(r'^xbnserve_request_duration_seconds_count\{model="[^"]*",'
                         r'endpoint="([^"]+)"\}', text, re.M))
    assert "v1_predict" in lat and "v1_models" in lat
    assert not lat & {"healthz", "readyz", "v2_live", "v2_ready", "v2_model_ready", "metrics",
                      "other"}, lat
    # still counted as requests
    assert sample(text, 'xbnserve_requests_total{model="",endpoint="other",code="404"}') >= 1
    assert sample(text, 'xbnserve_requests_total{model="small",endpoint="v2_model_ready",'
                        'code="200"}') >= 1
    assert sample(text, 'xbnserve_requests_total{model="",endpoint="v1_predict",code="404"}') >= 1


def test_counters_step_by_exact_increments(daemon):
    before = scrape(daemon)
    for _ in range(3):
        daemon.request("GET", "/no/such/route")
    daemon.request("POST", "/v1/models/small:predict", JPEG, {"Content-Type": "image/jpeg"})
    after = scrape(daemon)
    other = 'xbnserve_requests_total{model="",endpoint="other",code="404"}'
    assert sample(after, other) == sample(before, other) + 3
    ok = 'xbnserve_requests_total{model="small",endpoint="v1_predict",code="200"}'
    assert sample(after, ok) == sample(before, ok) + 1
    n = 'xbnserve_request_duration_seconds_count{model="small",endpoint="v1_predict"}'
    assert sample(after, n) == sample(before, n) + 1
    img = 'xbnserve_images_total{model="small"}'
    assert sample(after, img) == sample(before, img) + 1


def test_model_and_build_info(daemon):
    text = scrape(daemon)
    assert re.search(r'^xbnserve_model_info\{model="small",version="1",arch="mobilenetv2",'
                     r'flavour="keras",width="0.35",classes="17",input_size="224",'
                     r'gemm="(avx512|avx2|blas)",untrained="true"\} 1$', text, re.M), text
    m = re.search(r'^xbnserve_build_info\{version="([^"]+)",gemm="([^"]+)"\} 1$', text, re.M)
    assert m
    stamp = os.path.join(os.path.dirname(BIN), "version.stamp")  # what the Makefile built in
    if os.path.exists(stamp):
        with open(stamp) as f:
            assert m.group(1) == f.read().strip()
    gemm = re.search(r'xbnserve_model_info\{[^}]*gemm="([^"]+)"', text).group(1)
    assert m.group(2) == gemm


def test_process_metrics_agree_with_proc(daemon):
    pid = daemon.proc.pid
    fds_before = len(os.listdir(f"/proc/{pid}/fd"))
    text = scrape(daemon)
    with open(f"/proc/{pid}/status") as f:
        rss = int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024
    assert abs(sample(text, "process_resident_memory_bytes") - rss) < 0.2 * rss
    assert sample(text, "process_virtual_memory_bytes") >= sample(text, "process_resident_memory_bytes")
    start = sample(text, "process_start_time_seconds")
    assert daemon.t0 - 2 <= start <= daemon.t0 + 5, (start, daemon.t0)
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    # the daemon counts its own /proc/self/fd handle and this scrape's socket, which may
    # have closed by now; connections of earlier requests may close around the scrape
    lo, hi = min(fds, fds_before), max(fds, fds_before)
    assert lo <= sample(text, "process_open_fds") <= hi + 2, (fds_before, fds)
    with open(f"/proc/{pid}/limits") as f:
        soft = re.search(r"Max open files\s+(\S+)", f.read()).group(1)
    assert sample(text, "process_max_fds") == float(soft)
    cpu = sample(text, "process_cpu_seconds_total")
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    assert abs(cpu - (int(fields[11]) + int(fields[12])) / ticks) < 0.5


def test_body_bytes_and_preprocess_step_exactly(daemon):
    """The body byte counters move by exactly the bytes on the wire, the preprocess histogram
    by one per decoded image."""
    from xbn import PNG, multipart
    req = 'xbnserve_request_bytes_total{model="small",endpoint="v1_predict"}'
    resp = 'xbnserve_response_bytes_total{model="small",endpoint="v1_predict"}'
    pre = 'xbnserve_preprocess_seconds_count{model="small"}'
    before = scrape(daemon)
    body, hdr = multipart([(JPEG, "image/jpeg"), (PNG, "image/png"), (JPEG, "image/jpeg")])
    st, _, answer = daemon.request("POST", "/v1/models/small:predict", body, hdr)
    assert st == 200
    cut = JPEG[:len(JPEG) // 2]  # decoded, and refused
    st, _, bad = daemon.request("POST", "/v1/models/small:predict", cut,
                                {"Content-Type": "image/jpeg"})
    assert 400 <= st < 500
    after = scrape(daemon)
    assert sample(after, req) - sample(before, req) == len(body) + len(cut)
    assert sample(after, resp) - sample(before, resp) == len(answer) + len(bad)
    assert sample(after, pre) - sample(before, pre) == 3  # the undecodable image is not counted
