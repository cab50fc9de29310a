"""Every manifest in docker/k8s/ against the schemas a cluster would hold it to.

1. Schemas: tests/integration/node/k8s-check.js validates each document with the Kubernetes
   API's JSON schemas (npm package kubernetes-models) and the KServe resources with
   tests/integration/node/kserve.schema.json (ajv), unknown fields included (the API
   server's strict field validation). Installed by `make node-deps` (part of `make test`).
2. KServe and Knative: the rules KServe's and Knative's admission webhooks apply beyond the
   schemas, written out below from their sources: the InferenceService's references to its
   runtime, the autoscaler settings each deployment mode takes, and for Serverless mode
   Knative Serving's field masks (which PodSpec / Container fields a Knative Service may set
   with the feature flags at their defaults, config-features) and its port, probe, volume and
   environment rules, applied to the pod KServe would build: the predictor's pod fields and
   the ServingRuntime's, and the runtime's kserve-container merged with the model's fields.

Each check is also shown failing on a broken copy of the manifests.
"""

import copy
import json
import os
import pathlib
import shutil
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S = ROOT / "docker" / "k8s"
NODE_SRC = pathlib.Path(__file__).resolve().parent / "node"
NODE_DIR = pathlib.Path(os.environ.get("XBN_NODE_DIR", ROOT / "build" / "node"))
MANIFESTS = sorted(K8S.glob("*.yaml"))


def node_env():
    node = shutil.which("node")
    if not node or not (NODE_DIR / "node_modules" / "kubernetes-models").is_dir():
        pytest.skip(f"npm validators not installed in {NODE_DIR}: run `make node-deps`")
    return node, dict(os.environ, NODE_PATH=str(NODE_DIR / "node_modules"))


def k8s_check(paths):
    """k8s-check.js on `paths`: its report, one entry per document."""
    node, env = node_env()
    r = subprocess.run([node, str(NODE_SRC / "k8s-check.js"), *map(str, paths)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode in (0, 1), r.stderr
    report = json.loads(r.stdout)
    assert (r.returncode == 1) == any(d["errors"] for d in report), r.stdout
    return report


def load(name):
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d is not None]


def errors_of(tmp_path, docs, name="broken.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return [e for d in k8s_check([p]) for e in d["errors"]]


# ---- 1. schemas ----

def test_every_manifest_passes_the_schemas():
    assert MANIFESTS
    report = k8s_check(MANIFESTS)
    seen = {(pathlib.Path(d["file"]).name, d["kind"]) for d in report}
    assert len(report) == sum(len(load(p.name)) for p in MANIFESTS)
    assert ("kserve-servingruntime.yaml", "ServingRuntime") in seen
    assert ("deployment.yaml", "Deployment") in seen
    bad = [d for d in report if d["errors"]]
    assert not bad, json.dumps(bad, indent=1)


def isvc_serverless():
    return load("kserve-inferenceservice.yaml")[0]


def isvc_raw():
    return load("kserve-inferenceservice-raw.yaml")[0]


def runtime():
    return load("kserve-servingruntime.yaml")[0]


def deployment():
    return load("deployment.yaml")[0]


def _pod(d):
    return d["spec"]["template"]["spec"]


# (name, document factory, mutation, a path the report must name)
BROKEN = [
    ("deployment-unknown-field", deployment,
     lambda d: _pod(d)["containers"][0].update(readinesProbe={"httpGet": {"path": "/readyz", "port": 8080}}),
     "/containers/0/readinesProbe"),
    ("deployment-port-type", deployment,
     lambda d: _pod(d)["containers"][0]["ports"][0].update(containerPort="8080"),
     "/ports/0/containerPort"),
    ("deployment-bad-quantity", deployment,
     lambda d: _pod(d)["containers"][0]["resources"]["limits"].update(cpu="two"),
     "/limits/cpu"),
    ("deployment-bad-enum", deployment,
     lambda d: _pod(d)["containers"][0].update(imagePullPolicy="Sometimes"), "/imagePullPolicy"),
    ("deployment-missing-containers", deployment, lambda d: _pod(d).pop("containers"),
     "/spec/template/spec"),
    ("isvc-no-predictor", isvc_serverless, lambda d: d["spec"].pop("predictor"), "/spec"),
    ("isvc-two-implementations", isvc_serverless,
     lambda d: d["spec"]["predictor"].update(containers=[{"name": "x", "image": "y"}]),
     "/spec/predictor"),
    ("isvc-model-without-format", isvc_serverless,
     lambda d: d["spec"]["predictor"]["model"].pop("modelFormat"), "/spec/predictor/model"),
    ("isvc-unknown-predictor-field", isvc_serverless,
     lambda d: d["spec"]["predictor"].update(replicas=3), "/spec/predictor/replicas"),
    ("isvc-unknown-model-field", isvc_serverless,
     lambda d: d["spec"]["predictor"]["model"].update(storgeUri="s3://x"),
     "/spec/predictor/model/storgeUri"),
    ("isvc-bad-storage-uri", isvc_serverless,
     lambda d: d["spec"]["predictor"]["model"].update(storageUri="ftp://host/m"),
     "/spec/predictor/model/storageUri"),
    ("isvc-bad-scale-metric", isvc_serverless,
     lambda d: d["spec"]["predictor"].update(scaleMetric="gpu"), "/spec/predictor/scaleMetric"),
    ("isvc-bad-mode", isvc_serverless,
     lambda d: d["metadata"]["annotations"].update({"serving.kserve.io/deploymentMode": "Raw"}),
     "/metadata/annotations"),
    ("isvc-bad-name", isvc_serverless, lambda d: d["metadata"].update(name="9lives"),
     "/metadata/name"),
    ("isvc-bad-prestop", isvc_raw,
     lambda d: d["spec"]["predictor"]["model"]["lifecycle"]["preStop"].update(sleeep={"seconds": 5}),
     "/lifecycle/preStop/sleeep"),
    ("runtime-no-containers", runtime, lambda d: d["spec"].pop("containers"), "/spec"),
    ("runtime-container-without-name", runtime,
     lambda d: d["spec"]["containers"][0].pop("name"), "/spec/containers/0"),
    ("runtime-bad-protocol", runtime,
     lambda d: d["spec"]["protocolVersions"].append("v3"), "/spec/protocolVersions/2"),
    ("runtime-unknown-spec-field", runtime, lambda d: d["spec"].update(nodeSelektor={}), "/spec"),
    ("runtime-format-without-name", runtime,
     lambda d: d["spec"]["supportedModelFormats"][0].pop("name"), "/spec/supportedModelFormats/0"),
]


@pytest.fixture(scope="module")
def broken_reports(tmp_path_factory):
    """Every BROKEN copy in its own file, all checked by one k8s-check.js run."""
    d = tmp_path_factory.mktemp("broken")
    paths = []
    for name, make, mutate, _ in BROKEN:
        doc = make()
        mutate(doc)
        paths.append(d / f"{name}.yaml")
        paths[-1].write_text(yaml.safe_dump(doc, sort_keys=False))
    return {pathlib.Path(r["file"]).stem: r["errors"] for r in k8s_check(paths)}


@pytest.mark.parametrize("case", BROKEN, ids=[c[0] for c in BROKEN])
def test_a_broken_manifest_fails_the_schemas(broken_reports, case):
    name, _, _, where = case
    errs = broken_reports[name]
    assert errs, "the broken copy passed"
    assert any(where in e["path"] for e in errs), errs


def test_an_unknown_kind_fails(tmp_path):
    errs = errors_of(tmp_path, [{"apiVersion": "v1", "kind": "Pood", "metadata": {"name": "x"}}])
    assert any("no schema" in e["message"] for e in errs), errs


# ---- 2. KServe and Knative rules ----

SCHEMA = json.loads((NODE_SRC / "kserve.schema.json").read_text())["definitions"]
# Predictor fields that are KServe's own; the rest are PodSpec fields of the pod it builds.
PREDICTOR_KSERVE_KEYS = set(SCHEMA["predictor"]["properties"])
MODEL_KSERVE_KEYS = set(SCHEMA["model"]["properties"])
RUNTIME_POD_KEYS = {"volumes", "nodeSelector", "affinity", "tolerations", "imagePullSecrets",
                    "hostIPC", "schedulerName", "resourceClaims"}

# Knative Serving's config-features defaults (config/core/configmaps/features.yaml): the
# flags that unlock further fields, "disabled" unless listed here as "enabled".
KNATIVE_DEFAULT_FEATURES = {"kubernetes.podspec-volumes-emptydir": "enabled"}

# Knative Serving's field masks (pkg/apis/serving/fieldmask.go): always allowed, and the
# fields a feature flag unlocks.
POD_ALLOWED = {"serviceAccountName", "containers", "volumes", "imagePullSecrets",
               "enableServiceLinks", "automountServiceAccountToken"}
POD_FEATURES = {
    "affinity": "kubernetes.podspec-affinity",
    "topologySpreadConstraints": "kubernetes.podspec-topologyspreadconstraints",
    "hostAliases": "kubernetes.podspec-hostaliases",
    "nodeSelector": "kubernetes.podspec-nodeselector",
    "runtimeClassName": "kubernetes.podspec-runtimeclassname",
    "tolerations": "kubernetes.podspec-tolerations",
    "securityContext": "kubernetes.podspec-securitycontext",
    "shareProcessNamespace": "kubernetes.podspec-shareprocessnamespace",
    "priorityClassName": "kubernetes.podspec-priorityclassname",
    "schedulerName": "kubernetes.podspec-schedulername",
    "initContainers": "kubernetes.podspec-init-containers",
    "dnsPolicy": "kubernetes.podspec-dnspolicy",
    "dnsConfig": "kubernetes.podspec-dnsconfig",
    "hostIPC": "kubernetes.podspec-hostipc",
    "hostPID": "kubernetes.podspec-hostpid",
    "hostNetwork": "kubernetes.podspec-hostnetwork",
}
POD_SECURITY_CONTEXT_ALLOWED = {"runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup",
                                "supplementalGroups", "seccompProfile"}
CONTAINER_ALLOWED = {"name", "args", "command", "env", "workingDir", "envFrom", "image",
                     "imagePullPolicy", "livenessProbe", "ports", "readinessProbe", "resources",
                     "securityContext", "startupProbe", "terminationMessagePath",
                     "terminationMessagePolicy", "volumeMounts"}
SECURITY_CONTEXT_ALLOWED = {"capabilities", "readOnlyRootFilesystem", "runAsUser", "runAsGroup",
                            "runAsNonRoot", "allowPrivilegeEscalation", "seccompProfile",
                            "privileged"}
PROBE_ALLOWED = {"httpGet", "tcpSocket", "exec", "grpc", "initialDelaySeconds", "timeoutSeconds",
                 "periodSeconds", "successThreshold", "failureThreshold",
                 "terminationGracePeriodSeconds"}
PROBE_HANDLERS = {"httpGet", "tcpSocket", "exec", "grpc"}
HTTP_GET_ALLOWED = {"host", "path", "scheme", "httpHeaders", "port"}
PORT_ALLOWED = {"containerPort", "name", "protocol"}
VOLUME_MOUNT_ALLOWED = {"name", "readOnly", "mountPath", "subPath"}
VOLUME_SOURCES = {"secret": None, "configMap": None, "projected": None,
                  "emptyDir": "kubernetes.podspec-volumes-emptydir",
                  "persistentVolumeClaim": "kubernetes.podspec-persistent-volume-claim",
                  "hostPath": "kubernetes.podspec-volumes-hostpath",
                  "csi": "kubernetes.podspec-volumes-csi",
                  "ephemeral": "kubernetes.podspec-volumes-ephemeral",
                  "image": "kubernetes.podspec-volumes-image"}
ENV_ALLOWED = {"name", "value", "valueFrom"}
RESOURCES_ALLOWED = {"limits", "requests"}
# pkg/apis/serving/k8s_validation.go
RESERVED_PORTS = {8012, 8013, 8022, 9090, 9091, 8008}
PORT_NAMES = {"", "h2c", "http1"}
RESERVED_ENV = {"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"}
RESERVED_PATHS = {"/", "/dev", "/dev/log"}
RESERVED_CONTAINER_NAMES = {"queue-proxy"}


def deployment_mode(isvc):
    """The annotation, else KServe's shipped default (deploy.defaultDeploymentMode:
    Serverless); KServe 0.16+ also names the modes Knative and Standard."""
    mode = (isvc["metadata"].get("annotations") or {}).get("serving.kserve.io/deploymentMode",
                                                            "Serverless")
    return {"Knative": "Serverless", "Standard": "RawDeployment"}.get(mode, mode)


def kserve_pod(isvc, rt):
    """The pod KServe builds: pod fields of the predictor and the runtime, one container (the
    runtime's kserve-container with the model's container fields laid over it)."""
    pred = isvc["spec"]["predictor"]
    pod = {k: v for k, v in rt["spec"].items() if k in RUNTIME_POD_KEYS}
    pod.update({k: copy.deepcopy(v) for k, v in pred.items() if k not in PREDICTOR_KSERVE_KEYS})
    (base,) = [c for c in rt["spec"]["containers"] if c["name"] == "kserve-container"]
    c = copy.deepcopy(base)
    c.update({k: copy.deepcopy(v) for k, v in pred.get("model", {}).items()
              if k not in MODEL_KSERVE_KEYS})
    pod["containers"] = [c] + copy.deepcopy(pred.get("containers", []))
    return pod


def knative_problems(pod, features=None):
    """What Knative Serving's webhook refuses in `pod` (a Knative Service's template spec)."""
    feats = dict(KNATIVE_DEFAULT_FEATURES, **(features or {}))
    on = lambda flag: flag is None or feats.get(flag, "disabled") != "disabled"  # noqa: E731
    out = []

    def only(obj, allowed, where):
        for k in obj:
            if k not in allowed:
                out.append(f"{where}.{k}: not allowed by Knative")

    for k, v in pod.items():
        if k in POD_ALLOWED:
            if k == "automountServiceAccountToken" and v is not False:
                out.append(f"spec.{k}: Knative only allows false")
        elif k in POD_FEATURES:
            if not on(POD_FEATURES[k]):
                out.append(f"spec.{k}: needs Knative feature flag {POD_FEATURES[k]}")
        else:
            out.append(f"spec.{k}: not allowed by Knative")
    if "securityContext" in pod and on(POD_FEATURES["securityContext"]):
        only(pod["securityContext"], POD_SECURITY_CONTEXT_ALLOWED, "spec.securityContext")
    for i, v in enumerate(pod.get("volumes", [])):
        for k in v:
            if k == "name":
                continue
            if k not in VOLUME_SOURCES:
                out.append(f"spec.volumes[{i}].{k}: not allowed by Knative")
            elif not on(VOLUME_SOURCES[k]):
                out.append(f"spec.volumes[{i}].{k}: needs Knative feature flag {VOLUME_SOURCES[k]}")
    ports = [(i, p) for i, c in enumerate(pod.get("containers", [])) for p in c.get("ports", [])]
    if len(ports) > 1:
        out.append("spec.containers[*].ports: more than one container port is set")
    for i, c in enumerate(pod.get("containers", [])):
        w = f"spec.containers[{i}]"
        only(c, CONTAINER_ALLOWED, w)
        if c.get("name") in RESERVED_CONTAINER_NAMES:
            out.append(f"{w}.name: {c['name']} is reserved")
        sc = c.get("securityContext", {})
        only(sc, SECURITY_CONTEXT_ALLOWED, f"{w}.securityContext")
        if sc.get("privileged") is True:
            out.append(f"{w}.securityContext.privileged: Knative only allows false")
        caps = sc.get("capabilities", {})
        only(caps, {"drop", "add"} if on("kubernetes.containerspec-addcapabilities") else {"drop"},
             f"{w}.securityContext.capabilities")
        port_name = ""
        for j, p in enumerate(c.get("ports", [])):
            only(p, PORT_ALLOWED, f"{w}.ports[{j}]")
            port_name = p.get("name", "")
            if port_name not in PORT_NAMES:
                out.append(f"{w}.ports[{j}].name: {port_name!r} not allowed (h2c, http1 or none)")
            if p.get("containerPort") in RESERVED_PORTS:
                out.append(f"{w}.ports[{j}].containerPort: {p['containerPort']} is reserved")
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            pr = c.get(probe)
            if pr is None:
                continue
            only(pr, PROBE_ALLOWED, f"{w}.{probe}")
            handlers = PROBE_HANDLERS & set(pr)
            if len(handlers) != 1:
                out.append(f"{w}.{probe}: needs exactly one of {sorted(PROBE_HANDLERS)}")
            if "httpGet" in pr:
                only(pr["httpGet"], HTTP_GET_ALLOWED, f"{w}.{probe}.httpGet")
                port = pr["httpGet"].get("port")
                if isinstance(port, str) and port != (port_name or "http"):
                    out.append(f"{w}.{probe}.httpGet.port: must match the container port")
        for j, vm in enumerate(c.get("volumeMounts", [])):
            allowed = VOLUME_MOUNT_ALLOWED | (
                {"mountPropagation"} if on("kubernetes.podspec-volumes-mount-propagation") else set())
            only(vm, allowed, f"{w}.volumeMounts[{j}]")
            if os.path.normpath(vm.get("mountPath", "")) in RESERVED_PATHS:
                out.append(f"{w}.volumeMounts[{j}].mountPath: reserved path")
        for j, e in enumerate(c.get("env", [])):
            only(e, ENV_ALLOWED, f"{w}.env[{j}]")
            if e.get("name") in RESERVED_ENV:
                out.append(f"{w}.env[{j}].name: {e['name']} is reserved by Knative")
        only(c.get("resources", {}), RESOURCES_ALLOWED, f"{w}.resources")
    return out


def kserve_problems(isvc, rt):
    """KServe's admission rules (inference_service_validation.go, component.go) beyond the
    schema, for the InferenceService `isvc` on the ServingRuntime `rt`."""
    out = []
    pred = isvc["spec"]["predictor"]
    m = pred.get("model", {})
    mode = deployment_mode(isvc)
    if m.get("runtime") != rt["metadata"]["name"]:
        out.append(f"model.runtime {m.get('runtime')!r} is not {rt['metadata']['name']!r}")
    fmts = {(f["name"], f.get("version")) for f in rt["spec"].get("supportedModelFormats", [])}
    fmt = m.get("modelFormat", {})
    if (fmt.get("name"), fmt.get("version")) not in fmts and (fmt.get("name"), None) not in fmts:
        out.append(f"model.modelFormat {fmt} is not supported by the runtime")
    if m.get("protocolVersion", "v1") not in rt["spec"].get("protocolVersions", ["v1"]):
        out.append(f"model.protocolVersion {m.get('protocolVersion')} is not the runtime's")
    lo, hi = pred.get("minReplicas", 1), pred.get("maxReplicas", 0)
    if hi and lo > hi:
        out.append("minReplicas > maxReplicas")
    metric, target = pred.get("scaleMetric"), pred.get("scaleTarget")
    if mode == "Serverless":
        if "deploymentStrategy" in pred:
            out.append("deploymentStrategy: only supported in RawDeployment mode")
        if metric not in (None, "concurrency", "rps"):
            out.append(f"scaleMetric {metric}: Knative's autoscaler takes concurrency or rps")
        if metric == "rps" and target is not None and target < 1:
            out.append("scaleTarget: rps needs >= 1")
    elif mode == "RawDeployment":
        if metric not in (None, "cpu", "memory"):
            out.append(f"scaleMetric {metric}: the HPA takes cpu or memory")
        if metric in (None, "cpu") and target is not None and not 1 <= target <= 100:
            out.append("scaleTarget: CPU utilisation is 1-100")
    else:
        out.append(f"unknown deployment mode {mode}")
    return out


def test_kserve_rules_hold_for_both_variants():
    rt = runtime()
    for isvc in (isvc_serverless(), isvc_raw()):
        assert kserve_problems(isvc, rt) == [], isvc["metadata"]["name"]


def test_serverless_variant_is_what_knative_accepts():
    isvc = isvc_serverless()
    assert deployment_mode(isvc) == "Serverless"
    assert knative_problems(kserve_pod(isvc, runtime())) == []


def test_the_shared_runtime_alone_is_what_knative_accepts():
    # Any InferenceService on it in Serverless mode starts from this pod.
    bare = {"metadata": {"name": "x"}, "spec": {"predictor": {"model": {}}}}
    assert knative_problems(kserve_pod(bare, runtime())) == []


def test_raw_variant_sets_what_knative_would_refuse():
    """The RawDeployment variant needs its fields: the same check names each of them, so
    it would refuse this file in Serverless mode (and the check is not blind)."""
    isvc = isvc_raw()
    assert deployment_mode(isvc) == "RawDeployment"
    problems = knative_problems(kserve_pod(isvc, runtime()))
    for field in ("spec.terminationGracePeriodSeconds", "spec.securityContext",
                  "containers[0].lifecycle"):
        assert any(field in p for p in problems), (field, problems)
    isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] = "Serverless"
    assert any("deploymentStrategy" in p for p in kserve_problems(isvc, runtime()))


def _pred(d):
    return d["spec"]["predictor"]


def _model(d):
    return d["spec"]["predictor"]["model"]


# Fields Knative refuses, injected into the Serverless InferenceService: (id, mutation, text
# the problem must contain).
FORBIDDEN = [
    ("grace-period", lambda d: _pred(d).update(terminationGracePeriodSeconds=40),
     "spec.terminationGracePeriodSeconds"),
    ("prestop", lambda d: _model(d).update(lifecycle={"preStop": {"exec": {"command": ["sleep", "5"]}}}),
     "containers[0].lifecycle"),
    ("pod-security-context", lambda d: _pred(d).update(securityContext={"fsGroup": 10001}),
     "kubernetes.podspec-securitycontext"),
    ("init-containers", lambda d: _pred(d).update(initContainers=[{"name": "i", "image": "x"}]),
     "kubernetes.podspec-init-containers"),
    ("node-selector", lambda d: _pred(d).update(nodeSelector={"disk": "ssd"}),
     "kubernetes.podspec-nodeselector"),
    ("host-network", lambda d: _pred(d).update(hostNetwork=True), "kubernetes.podspec-hostnetwork"),
    ("active-deadline", lambda d: _pred(d).update(activeDeadlineSeconds=60),
     "spec.activeDeadlineSeconds"),
    ("automount-token-true", lambda d: _pred(d).update(automountServiceAccountToken=True),
     "only allows false"),
    ("pvc-volume", lambda d: _pred(d).update(volumes=[{"name": "m", "persistentVolumeClaim": {"claimName": "c"}}]),
     "kubernetes.podspec-persistent-volume-claim"),
    ("named-port", lambda d: _model(d).update(ports=[{"name": "http", "containerPort": 8080}]),
     "ports[0].name"),
    ("two-ports", lambda d: _model(d).update(ports=[{"containerPort": 8080}, {"containerPort": 9000}]),
     "more than one container port"),
    ("reserved-port", lambda d: _model(d).update(ports=[{"containerPort": 8012}]), "is reserved"),
    ("host-port", lambda d: _model(d).update(ports=[{"containerPort": 8080, "hostPort": 80}]),
     "ports[0].hostPort"),
    ("reserved-env", lambda d: _model(d).update(env=[{"name": "PORT", "value": "1"}]),
     "PORT is reserved"),
    ("mount-propagation", lambda d: _model(d).update(volumeMounts=[{"name": "v", "mountPath": "/v", "mountPropagation": "HostToContainer"}]),
     "volumeMounts[0].mountPropagation"),
    ("add-capabilities", lambda d: _model(d).update(securityContext={"capabilities": {"add": ["NET_ADMIN"]}}),
     "capabilities.add"),
    ("privileged", lambda d: _model(d).update(securityContext={"privileged": True}),
     "privileged"),
    ("probe-named-port", lambda d: _model(d).update(readinessProbe={"httpGet": {"path": "/readyz", "port": "admin"}}),
     "must match the container port"),
    ("stdin", lambda d: _model(d).update(stdin=True), "containers[0].stdin"),
]


@pytest.mark.parametrize("case", FORBIDDEN, ids=[c[0] for c in FORBIDDEN])
def test_a_field_knative_refuses_fails_the_serverless_check(case):
    _, mutate, text = case
    isvc = isvc_serverless()
    mutate(isvc)
    problems = knative_problems(kserve_pod(isvc, runtime()))
    assert any(text in p for p in problems), problems


def test_a_forbidden_field_in_the_runtime_fails_too():
    rt = runtime()
    rt["spec"]["containers"][0]["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", "5"]}}}
    rt["spec"]["tolerations"] = [{"key": "k", "operator": "Exists"}]
    problems = knative_problems(kserve_pod(isvc_serverless(), rt))
    assert any("containers[0].lifecycle" in p for p in problems), problems
    assert any("kubernetes.podspec-tolerations" in p for p in problems), problems


def test_a_feature_flag_unlocks_its_field():
    isvc = isvc_serverless()
    _pred(isvc)["securityContext"] = {"runAsNonRoot": True, "fsGroup": 10001}
    pod = kserve_pod(isvc, runtime())
    assert knative_problems(pod)
    assert knative_problems(pod, {"kubernetes.podspec-securitycontext": "enabled"}) == []
    # the flag opens the pod security context, not every field in it
    _pred(isvc)["securityContext"]["sysctls"] = [{"name": "net.core.somaxconn", "value": "1024"}]
    pod = kserve_pod(isvc, runtime())
    problems = knative_problems(pod, {"kubernetes.podspec-securitycontext": "enabled"})
    assert any("securityContext.sysctls" in p for p in problems), problems


# Broken KServe references and autoscaler settings: (id, variant, mutation, text).
KSERVE_BROKEN = [
    ("wrong-runtime", isvc_serverless, lambda d: _model(d).update(runtime="triton"), "model.runtime"),
    ("unsupported-format", isvc_serverless,
     lambda d: _model(d).update(modelFormat={"name": "onnx"}), "modelFormat"),
    ("protocol-not-served", isvc_serverless,
     lambda d: _model(d).update(protocolVersion="grpc-v2"), "protocolVersion"),
    ("min-over-max", isvc_serverless, lambda d: _pred(d).update(minReplicas=9), "minReplicas"),
    ("hpa-metric-in-serverless", isvc_serverless, lambda d: _pred(d).update(scaleMetric="cpu"),
     "scaleMetric"),
    ("strategy-in-serverless", isvc_serverless,
     lambda d: _pred(d).update(deploymentStrategy={"type": "Recreate"}), "deploymentStrategy"),
    ("kpa-metric-in-raw", isvc_raw, lambda d: _pred(d).update(scaleMetric="concurrency"),
     "scaleMetric"),
    ("cpu-target-over-100", isvc_raw, lambda d: _pred(d).update(scaleTarget=170), "scaleTarget"),
]


@pytest.mark.parametrize("case", KSERVE_BROKEN, ids=[c[0] for c in KSERVE_BROKEN])
def test_a_broken_kserve_setting_fails(case):
    _, make, mutate, text = case
    isvc = make()
    mutate(isvc)
    problems = kserve_problems(isvc, runtime())
    assert any(text in p for p in problems), problems
