"""Deployment files (docker/): every YAML parses and carries what docs/deploy.md promises.

Structural checks of the fields that matter: probes on the right paths, a startup probe long
enough to load ResNet50, a grace period longer than preStop + drain, non-root and read-only
root filesystem, resources, the HPA target, the KServe runtime and both InferenceService
variants (Serverless, RawDeployment) and the Dockerfile's promises. Schema validation of every
manifest (Kubernetes and KServe schemas, Knative's field restrictions) is in
test_k8s_schemas.py. The image itself is built and run by `make container-test`
(tests/container/run.sh).
"""

import json
import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
K8S = DOCKER / "k8s"
YAML_FILES = sorted(list(DOCKER.glob("*.yaml")) + list(DOCKER.glob("*.yml")) + list(K8S.glob("*.yaml")))

# The daemon's default drain (config.c drain_timeout_ms) when a manifest does not set one.
DEFAULT_DRAIN_MS = 30000


def docs(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def all_k8s():
    out = []
    for p in sorted(K8S.glob("*.yaml")):
        out += [(p.name, d) for d in docs(p)]
    return out


def kind(k):
    found = [d for _, d in all_k8s() if d.get("kind") == k]
    assert found, f"no {k} in docker/k8s/"
    return found


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def drain_s(container):
    return int(env_of(container).get("XBNSERVE_DRAIN_TIMEOUT_MS") or DEFAULT_DRAIN_MS) / 1000


def probe_budget_s(probe):
    return probe.get("initialDelaySeconds", 0) + probe.get("periodSeconds", 10) * probe.get(
        "failureThreshold", 3
    )


def prestop_s(container):
    cmd = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    if len(cmd) == 2 and cmd[0] == "sleep":
        return float(cmd[1])
    return 0.0


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_parses(path):
    d = docs(path)
    assert d, f"{path} is empty"
    for doc in d:
        assert isinstance(doc, dict)


def test_every_manifest_has_api_version_kind_and_name():
    assert all_k8s()
    for name, d in all_k8s():
        assert d.get("apiVersion") and d.get("kind"), name
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", d["metadata"]["name"]), name


def check_container_security(c, pod_sc):
    sc = c.get("securityContext", {})
    assert sc.get("readOnlyRootFilesystem") is True, c["name"]
    assert sc.get("allowPrivilegeEscalation") is False, c["name"]
    assert "ALL" in sc.get("capabilities", {}).get("drop", []), c["name"]
    non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
    assert non_root is True, c["name"]
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    assert uid is None or uid != 0


def check_probes(c, startup=True):
    port_names = {p.get("name") for p in c.get("ports", [])} | {
        p["containerPort"] for p in c.get("ports", [])
    }
    probes = [
        ("livenessProbe", {"/healthz", "/v2/health/live"}),
        ("readinessProbe", {"/readyz", "/v2/health/ready"}),
    ]
    if startup:
        probes.append(("startupProbe", {"/readyz", "/v2/health/ready"}))
    for probe, paths in probes:
        p = c.get(probe)
        assert p, f"{c['name']}: no {probe}"
        assert p["httpGet"]["path"] in paths, f"{probe} on {p['httpGet']['path']}"
        assert p["httpGet"]["port"] in port_names, f"{probe} port {p['httpGet']['port']}"
    if startup:
        # ResNet50 load + warm-up on 2 CPUs is seconds; leave two minutes for slow volumes.
        assert probe_budget_s(c["startupProbe"]) >= 120
    assert c["livenessProbe"].get("failureThreshold", 3) >= 2


def check_resources(c):
    r = c.get("resources", {})
    for k in ("cpu", "memory"):
        assert k in r.get("requests", {}), f"requests.{k}"
        assert k in r.get("limits", {}), f"limits.{k}"


def test_deployment():
    (dep,) = kind("Deployment")
    assert dep["apiVersion"] == "apps/v1"
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    sel = spec["selector"]["matchLabels"]
    assert sel.items() <= spec["template"]["metadata"]["labels"].items()
    pod_sc = pod.get("securityContext", {})
    assert pod_sc.get("runAsNonRoot") is True
    (c,) = pod["containers"]
    assert any(p["containerPort"] == 8080 for p in c["ports"])
    check_container_security(c, pod_sc)
    check_probes(c)
    check_resources(c)
    # The kubelet SIGKILLs after the grace period: it must cover preStop + drain.
    grace = pod["terminationGracePeriodSeconds"]
    assert grace > prestop_s(c) + drain_s(c), (grace, prestop_s(c), drain_s(c))
    # Rolling updates never drop below the wanted capacity.
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # Read-only root: anything written must go to a mounted volume.
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    assert mounts["/models"].get("readOnly") is True
    models = env_of(c).get("XBNSERVE_MODELS", "")
    assert all(pair.split("=", 1)[1].startswith("/models/") for pair in models.split(","))


def test_service_selects_the_deployment():
    (svc,) = kind("Service")
    (dep,) = kind("Deployment")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    (port,) = svc["spec"]["ports"]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    names = {p.get("name"): p["containerPort"] for p in c["ports"]}
    assert port["targetPort"] in names or port["targetPort"] in names.values()


def test_hpa_scales_the_deployment_on_cpu():
    (hpa,) = kind("HorizontalPodAutoscaler")
    (dep,) = kind("Deployment")
    assert hpa["apiVersion"] == "autoscaling/v2"
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", dep["metadata"]["name"])
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    cpu = [m for m in hpa["spec"]["metrics"] if m["type"] == "Resource"]
    assert cpu and cpu[0]["resource"]["name"] == "cpu"
    assert 0 < cpu[0]["resource"]["target"]["averageUtilization"] <= 100
    # Utilization is relative to requests: the Deployment must set them.
    assert "cpu" in dep["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]


def deployment_mode(isvc):
    """KServe's mode for an InferenceService: the annotation, else KServe's shipped default
    (Serverless); 0.16+ names them Knative and Standard."""
    mode = isvc["metadata"].get("annotations", {}).get("serving.kserve.io/deploymentMode", "Serverless")
    return {"Knative": "Serverless", "Standard": "RawDeployment"}.get(mode, mode)


def merged_container(rt, isvc):
    """The container KServe runs: the runtime's kserve-container with the predictor's model
    fields laid over it (KServe merges them the same way)."""
    (c,) = rt["spec"]["containers"]
    m = isvc["spec"]["predictor"]["model"]
    out = dict(c)
    out.update({k: v for k, v in m.items() if k not in KSERVE_MODEL_KEYS})
    return out


KSERVE_MODEL_KEYS = {"modelFormat", "runtime", "runtimeVersion", "protocolVersion", "storageUri", "storage"}


def test_kserve_runtime():
    (rt,) = kind("ServingRuntime")
    assert rt["apiVersion"] == "serving.kserve.io/v1alpha1"
    assert "v2" in rt["spec"]["protocolVersions"]
    (c,) = rt["spec"]["containers"]
    assert c["name"] == "kserve-container"
    assert any(p["containerPort"] == 8080 for p in c["ports"])
    # KServe's storage initializer puts the model under /mnt/models; name = the isvc's.
    models = env_of(c)["XBNSERVE_MODELS"]
    assert models.startswith("{{.Name}}=/mnt/models/")
    check_container_security(c, {})
    # No startup probe in the shared runtime (older Knative refuses it): liveness must not
    # depend on loading, which /healthz and /v2/health/live do not.
    check_probes(c, startup=False)
    assert c["livenessProbe"]["httpGet"]["path"] in ("/healthz", "/v2/health/live")
    check_resources(c)
    # Shared by both modes: nothing Knative refuses (test_k8s_schemas.py checks every field).
    assert "lifecycle" not in c and "startupProbe" not in c


def test_kserve_inference_services_one_per_mode():
    (rt,) = kind("ServingRuntime")
    isvcs = kind("InferenceService")
    modes = sorted(deployment_mode(i) for i in isvcs)
    assert modes == ["RawDeployment", "Serverless"], modes
    assert len({i["metadata"]["name"] for i in isvcs}) == len(isvcs), "names collide"
    formats = {f["name"] for f in rt["spec"]["supportedModelFormats"]}
    for isvc in isvcs:
        assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
        pred = isvc["spec"]["predictor"]
        m = pred["model"]
        assert m["runtime"] == rt["metadata"]["name"]
        assert m["modelFormat"]["name"] in formats
        assert m["protocolVersion"] == "v2" and m["protocolVersion"] in rt["spec"]["protocolVersions"]
        assert m["storageUri"]
        assert 1 <= pred["minReplicas"] <= pred["maxReplicas"]
        c = merged_container(rt, isvc)
        check_container_security(c, pred.get("securityContext", {}))
        check_resources(c)


def test_kserve_raw_deployment_drains_like_the_deployment():
    (rt,) = kind("ServingRuntime")
    (isvc,) = [i for i in kind("InferenceService") if deployment_mode(i) == "RawDeployment"]
    pred = isvc["spec"]["predictor"]
    c = merged_container(rt, isvc)
    check_probes(c, startup=True)
    # The kubelet SIGKILLs after the grace period: it must cover preStop + drain.
    assert prestop_s(c) >= 5
    assert pred["terminationGracePeriodSeconds"] > prestop_s(c) + drain_s(c)
    assert pred["securityContext"]["runAsNonRoot"] is True
    # Rolling updates never drop below the wanted capacity; HPA on CPU as hpa.yaml.
    assert pred["deploymentStrategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pred["scaleMetric"] == "cpu" and 0 < pred["scaleTarget"] <= 100


def test_kserve_serverless_leaves_shutdown_to_knative():
    (rt,) = kind("ServingRuntime")
    (isvc,) = [i for i in kind("InferenceService") if deployment_mode(i) == "Serverless"]
    pred = isvc["spec"]["predictor"]
    c = merged_container(rt, isvc)
    # Knative sets the grace period (the revision timeout, 300 s by default) and its own
    # preStop (the queue-proxy's drain); the daemon's drain fits in the default.
    assert "terminationGracePeriodSeconds" not in pred and "lifecycle" not in c
    assert drain_s(c) < 300 - 30
    assert pred["scaleMetric"] in ("concurrency", "rps")


def test_compose():
    d = docs(DOCKER / "compose.yaml")[0]
    s = d["services"]["xbnserve"]
    assert s["build"]["dockerfile"] == "docker/Dockerfile"
    assert (DOCKER / s["build"]["context"] / s["build"]["dockerfile"]).is_file()
    assert any(v.endswith(":/models:ro") for v in s["volumes"])
    assert s["read_only"] is True
    assert s["stop_signal"] == "SIGTERM"
    grace = int(s["stop_grace_period"].rstrip("s"))
    assert grace > DEFAULT_DRAIN_MS / 1000
    assert any(p.endswith(":8080") for p in s["ports"])
    prom = d["services"]["prometheus"]
    for v in prom["volumes"]:
        src = v.split(":")[0]
        assert (DOCKER / src).is_file(), src
    scrape = docs(DOCKER / "prometheus.yml")[0]["scrape_configs"]
    assert any(j["metrics_path"] == "/metrics" for j in scrape)


def test_container_config_is_valid_for_the_daemon():
    cfg = json.loads((DOCKER / "xbnserve.json").read_text())
    assert cfg["listen_address"] == "0.0.0.0"
    assert cfg["port"] == 8080
    assert all(m["path"].startswith("/models/") for m in cfg["models"])


def test_dockerfile():
    text = (DOCKER / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(froms) >= 2, "multi-stage"
    assert "ARG DEBIAN_IMAGE=debian:bookworm-slim" in text
    runtime = text[text.rindex("\nFROM ") :]
    assert "-dev" not in runtime, "no -dev packages in the runtime stage"
    for lib in ("libmicrohttpd12", "libcjson1", "libjpeg62-turbo", "libpng16-16", "libopenblas0-pthread"):
        assert lib in runtime
    assert "rm -rf /var/lib/apt/lists/*" in runtime
    user = re.search(r"^USER\s+(\S+)", runtime, re.M).group(1)
    assert user.split(":")[0] not in ("0", "root")
    assert re.search(r"^EXPOSE\s+8080\b", runtime, re.M)
    assert re.search(r"^STOPSIGNAL\s+SIGTERM\b", runtime, re.M)
    assert re.search(r"^HEALTHCHECK\b.*/readyz", runtime, re.M | re.S)
    assert "torch" not in text, "weights are made outside the image"


def test_build_context_is_small():
    ignore = [x for x in (ROOT / ".dockerignore").read_text().split("\n") if x and x[0] != "#"]
    assert ignore[0] == "*", "exclude everything, then let through what the build needs"
    allowed = [x[1:] for x in ignore if x.startswith("!")]
    for path in ("build", "build/", "models", "models/", "data", ".git", "tests"):
        assert path not in allowed
    # Everything the Dockerfile COPYs from the context is let through.
    text = (DOCKER / "Dockerfile").read_text()
    for src in re.findall(r"^COPY\s+(?!--from)(\S+)", text, re.M):
        assert any(src.rstrip("/") == a.rstrip("/") for a in allowed), src
