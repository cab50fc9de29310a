"""tests/integration/test_dashboard.py - the Grafana dashboard (docker/grafana/) asks only for
what the daemon exports. Every metric name in every panel's PromQL (and in the template
variables) must be a series of a live /metrics scrape (histograms by their _bucket / _sum /
_count series); a copy of the dashboard with a misspelt metric fails the same check. Then a
real Prometheus (Debian's `prometheus` binary) scrapes a live daemon and evaluates every
panel query: each must parse and return data. The provisioning files and the compose
service point at what exists. Env: XBN_BIN, XBN_MODELS."""
import copy
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
import yaml

from xbn import JPEG, SMALL, Server

ROOT = pathlib.Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "docker" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "xbnserve.json"
PROMETHEUS = shutil.which("prometheus")

# What Grafana substitutes before a query reaches Prometheus: the "All" values of the
# dashboard's variables and a rate window of four 1 s scrapes (the test's scrape interval).
GRAFANA_VARS = {"$__rate_interval": "4s", "$job": ".+", "$model": ".*"}

PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
                   "or", "unless", "offset", "inf", "nan"}


def promql_metric_names(expr):
    """The metric names a PromQL expression selects: identifiers that are not functions,
    keywords, label names (in {...} or by/on(...)), strings, durations or numbers."""
    e = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", " ", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        before = e[m.start() - 1] if m.start() else " "
        if before.isdigit() or before == ".":  # 1e3, 5m
            continue
        if e[m.end():].lstrip().startswith("(") or m.group(0).lower() in PROMQL_KEYWORDS:
            continue
        names.add(m.group(0))
    return names


def dashboard_queries(dash):
    """(where, expression) for every panel target and every query variable."""
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((f"panel {p['title']!r} target {t.get('refId')}", t["expr"]))
            walk(p.get("panels", []))  # panels inside collapsed rows

    walk(dash["panels"])
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"label_values\((.*),\s*\w+\)", q)  # Grafana's, not PromQL
            out.append((f"variable {v['name']!r}", m.group(1) if m else q))
    return out


def exported(text):
    """(sample names, family -> type) of an exposition."""
    samples = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M))
    return samples, dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def unknown_names(dash, text):
    """{name: [where]} for every metric the dashboard names that the scrape does not have."""
    samples, _ = exported(text)
    bad = {}
    for where, expr in dashboard_queries(dash):
        for name in promql_metric_names(expr) - samples:
            bad.setdefault(name, []).append(where)
    return bad


def load_dashboard():
    return json.loads(DASHBOARD.read_text())


@pytest.fixture(scope="module")
def daemon():
    s = Server("--model", "small=" + SMALL, "--max-batch-size", "4")
    try:  # a failed request here must not leave the daemon running
        traffic(s)
        yield s
    finally:
        assert s.stop() == 0


def traffic(s):
    hdr = {"Content-Type": "image/jpeg"}
    assert s.request("POST", "/v1/models/small:predict", JPEG, hdr)[0] == 200
    assert s.request("POST", "/v1/models/small:predict", b"not an image", hdr)[0] in (400, 415)
    assert s.request("GET", "/no/such/route")[0] == 404
    assert s.request("GET", "/v1/models")[0] == 200


def scrape(s):
    return s.request("GET", "/metrics")[2].decode()


def test_promql_metric_names():
    e = ('histogram_quantile(0.99, sum by (le, model) (rate(a_seconds_bucket{job=~"$job",'
         'model="x(y)",code!~"2.."}[$__rate_interval]))) / on(model) group_left b_total offset 5m'
         ' > 1e3 and time() - max(c:rec) unless sum(d) without (instance)')
    assert promql_metric_names(e) == {"a_seconds_bucket", "b_total", "c:rec", "d"}
    assert promql_metric_names("sum(rate(x_total[5m])) by (endpoint)") == {"x_total"}


def test_dashboard_names_only_exported_metrics(daemon):
    dash = load_dashboard()
    queries = dashboard_queries(dash)
    assert len(queries) >= 20
    assert unknown_names(dash, scrape(daemon)) == {}


def test_misspelt_metric_is_caught(daemon):
    dash = load_dashboard()
    broken = copy.deepcopy(dash)
    target = broken["panels"][7]["targets"][0]
    assert "xbnserve_request_duration_seconds_bucket" in target["expr"]
    target["expr"] = target["expr"].replace("xbnserve_request_duration_seconds_bucket",
                                            "xbnserve_request_latency_seconds_bucket")
    broken["panels"][0]["targets"][0]["expr"] = "sum(xbnserve_request_duration_seconds)"
    bad = unknown_names(broken, scrape(daemon))
    assert set(bad) == {"xbnserve_request_latency_seconds_bucket",
                        "xbnserve_request_duration_seconds"}, bad


def test_dashboard_structure():
    dash = load_dashboard()
    panels = dash["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    titles = " ".join(p["title"] for p in panels)
    for want in ("Request rate", "Errors by code", "Latency percentiles", "Where the time goes",
                 "Batch size distribution", "Queue depth", "Requests in flight", "Resident memory"):
        assert want in titles, want
    names = {v["name"] for v in dash["templating"]["list"]}
    assert names == {"datasource", "job", "model"}
    for p in panels:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24 and g["w"] > 0 and g["h"] > 0, p["title"]
        assert p["targets"], p["title"]
    # no two panels overlap
    cells = set()
    for p in panels:
        g = p["gridPos"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, p["title"]
        cells |= mine


def test_provisioning_and_compose():
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    (src,) = ds["datasources"]
    assert src["type"] == "prometheus" and src["isDefault"] is True
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    prom_port = compose["services"]["prometheus"]["ports"][0].rsplit(":", 1)[1]
    assert src["url"] == f"http://prometheus:{prom_port}"
    scrape_interval = yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text())["global"][
        "scrape_interval"]
    assert src["jsonData"]["timeInterval"] == scrape_interval
    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "xbnserve.yaml").read_text())
    (provider,) = prov["providers"]
    g = compose["services"]["grafana"]
    assert g["profiles"] == ["monitoring"]
    mounts = {v.split(":")[1]: (ROOT / "docker" / v.split(":")[0]) for v in g["volumes"]}
    assert mounts[provider["options"]["path"]] == GRAFANA / "dashboards"
    for target, src_dir in mounts.items():
        assert src_dir.is_dir(), src_dir
    assert mounts["/etc/grafana/provisioning/datasources"] == GRAFANA / "provisioning" / "datasources"
    assert mounts["/etc/grafana/provisioning/dashboards"] == GRAFANA / "provisioning" / "dashboards"
    home = g["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == provider["options"]["path"] + "/" + DASHBOARD.name
    assert any(p.endswith(":3000") and p.startswith("127.0.0.1:") for p in g["ports"])


# ---- a real Prometheus evaluates every query against the live daemon ----

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prom_query(port, expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:  # 400 with the parse error in the body
        return json.load(e)


def substitute(expr):
    for k, v in GRAFANA_VARS.items():
        expr = expr.replace(k, v)
    return expr


@pytest.fixture(scope="module")
def prometheus(daemon, tmp_path_factory):
    if not PROMETHEUS:
        pytest.skip("prometheus missing: scripts/deps.sh test installs Debian's prometheus")
    d = tmp_path_factory.mktemp("prometheus")
    (d / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "xbnserve", "metrics_path": "/metrics",
                            "static_configs": [{"targets": [f"127.0.0.1:{daemon.port}"]}]}]}))
    port = free_port()
    log = open(d / "log", "w")
    p = subprocess.Popen([PROMETHEUS, f"--config.file={d / 'prometheus.yml'}",
                          f"--storage.tsdb.path={d / 'data'}",
                          f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)
    try:
        deadline = time.time() + 60
        scrapes = 0
        while time.time() < deadline and scrapes < 6:
            traffic(daemon)  # so rates move between scrapes
            time.sleep(0.5)
            assert p.poll() is None, (d / "log").read_text()
            try:
                r = prom_query(port, 'count_over_time(up{job="xbnserve"}[1m])')
            except OSError:
                continue  # not listening yet
            res = r.get("data", {}).get("result", [])
            scrapes = int(float(res[0]["value"][1])) if res else 0
        assert scrapes >= 6, (d / "log").read_text()
        up = prom_query(port, 'up{job="xbnserve"}')["data"]["result"]
        assert up and up[0]["value"][1] == "1"
        yield port
    finally:
        p.terminate()
        p.wait(timeout=30)
        log.close()


def test_prometheus_evaluates_every_query(prometheus):
    empty = []
    for where, expr in dashboard_queries(load_dashboard()):
        r = prom_query(prometheus, substitute(expr))
        assert r["status"] == "success", f"{where}: {r.get('error')}\n{expr}"
        if not r["data"]["result"]:
            empty.append(f"{where}: {expr}")
    assert not empty, "queries with no data:\n" + "\n".join(empty)


def test_prometheus_rejects_a_broken_query(prometheus):
    """The evaluation above can fail: a query Prometheus cannot parse is reported."""
    r = prom_query(prometheus, substitute('sum by (model (rate(xbnserve_images_total[$__rate_interval]))'))
    assert r["status"] == "error"
    r = prom_query(prometheus, substitute('sum(rate(xbnserve_images_totl{job=~"$job"}[$__rate_interval]))'))
    assert r["status"] == "success" and r["data"]["result"] == []
