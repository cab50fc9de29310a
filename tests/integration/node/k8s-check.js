#!/usr/bin/env node
// k8s-check.js FILE...: validate every document of the given Kubernetes manifests.
//
// - Kubernetes kinds: the JSON schemas of the Kubernetes API compiled into the
//   kubernetes-models package (types, required fields, enums, formats such as quantities).
// - KServe kinds: kserve.schema.json (ajv) for the KServe-level fields; their Kubernetes
//   parts go through the Kubernetes schemas: the InferenceService predictor's pod fields as a
//   PodSpec, its model as a Container, the ServingRuntime's containers and pod fields as a
//   PodSpec.
// - Unknown fields are errors everywhere, as the API server's strict field validation makes
//   them (kubectl's default): kubernetes-models' validators ignore them, so each document is
//   wrapped in a Proxy that records which keys the validator looks up. A validator looks up
//   every property its schema declares, and enumerates the keys of map-like objects (labels,
//   resource lists); a key it never looked up in an object it did inspect is not in the
//   schema.
//
// Prints one JSON report on stdout: [{file, index, kind, name, errors: [{path, message}]}];
// exits 1 when any document has an error, 2 on a usage or parse failure.
"use strict";

const fs = require("fs");
const path = require("path");
const yaml = require("js-yaml");
const Ajv = require("ajv");

const KM = path.dirname(require.resolve("kubernetes-models"));

function k8sValidator(definition) {
  const file = path.join(KM, "_schemas", definition + ".js");
  if (!fs.existsSync(file)) return null;
  return require(file).validate;
}

// apps/v1 Deployment -> IoK8sApiAppsV1Deployment; v1 Service -> IoK8sApiCoreV1Service.
function definitionOf(apiVersion, kind) {
  const parts = String(apiVersion).split("/");
  const group = parts.length === 2 ? parts[0].split(".")[0] : "core";
  const version = parts[parts.length - 1];
  const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);
  return "IoK8sApi" + cap(group) + cap(version) + kind;
}

// Run a compiled validator on `value` and collect schema errors and unknown fields, with
// paths prefixed by `where`.
function strictValidate(validate, value, where) {
  const records = [];
  const wrap = (v, p) => {
    if (v === null || typeof v !== "object") return v;
    const rec = { obj: v, path: p, read: new Set(), listed: false };
    records.push(rec);
    const cache = new Map();
    return new Proxy(v, {
      get(t, k, r) {
        const x = Reflect.get(t, k, r);
        if (typeof k !== "string") return x;
        rec.read.add(k);
        if (!cache.has(k)) cache.set(k, wrap(x, p + "/" + k));
        return cache.get(k);
      },
      has(t, k) {
        rec.read.add(k);
        return Reflect.has(t, k);
      },
      ownKeys(t) {
        rec.listed = true;
        return Reflect.ownKeys(t);
      },
    });
  };
  const errors = [];
  if (!validate(wrap(value, where))) {
    for (const e of validate.errors) {
      const extra = e.params && Object.keys(e.params).length ? " " + JSON.stringify(e.params) : "";
      errors.push({ path: where + e.instancePath, message: e.message || e.keyword + extra });
    }
  }
  for (const r of records) {
    if (Array.isArray(r.obj) || r.listed || r.read.size === 0) continue;
    for (const k of Object.keys(r.obj)) {
      if (!r.read.has(k)) errors.push({ path: r.path + "/" + k, message: "unknown field" });
    }
  }
  return errors;
}

// strictRequired off: the predictor's oneOf names "containers", a PodSpec field left open here.
const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true });
ajv.addSchema(JSON.parse(fs.readFileSync(path.join(__dirname, "kserve.schema.json"), "utf8")));
const kserve = {
  InferenceService: ajv.getSchema("xbnserve:kserve#/definitions/InferenceService"),
  ServingRuntime: ajv.getSchema("xbnserve:kserve#/definitions/ServingRuntime"),
};
const schemaRoot = ajv.getSchema("xbnserve:kserve").schema.definitions;
const PREDICTOR_KSERVE_KEYS = new Set(Object.keys(schemaRoot.predictor.properties));
const MODEL_KSERVE_KEYS = new Set(Object.keys(schemaRoot.model.properties));
const RUNTIME_POD_KEYS = ["containers", "volumes", "nodeSelector", "affinity", "tolerations",
  "imagePullSecrets", "hostIPC", "schedulerName", "resourceClaims"];

const podSpec = k8sValidator("IoK8sApiCoreV1PodSpec");
const container = k8sValidator("IoK8sApiCoreV1Container");

function ajvErrors(validate, doc) {
  if (validate(doc)) return [];
  return validate.errors.map((e) => ({
    path: e.instancePath,
    message: e.message + (e.params && Object.keys(e.params).length ? " " + JSON.stringify(e.params) : ""),
  }));
}

function pick(obj, keep) {
  const out = {};
  for (const k of Object.keys(obj || {})) if (keep(k)) out[k] = obj[k];
  return out;
}

function checkInferenceService(doc) {
  const errors = ajvErrors(kserve.InferenceService, doc);
  const pred = doc.spec && doc.spec.predictor;
  if (pred && typeof pred === "object") {
    // Everything that is not a KServe field is a PodSpec field.
    const pod = pick(pred, (k) => !PREDICTOR_KSERVE_KEYS.has(k));
    if (!pod.containers) pod.containers = [];
    errors.push(...strictValidate(podSpec, pod, "/spec/predictor"));
    if (pred.model && typeof pred.model === "object") {
      const c = pick(pred.model, (k) => !MODEL_KSERVE_KEYS.has(k));
      if (c.name === undefined) c.name = "kserve-container";
      errors.push(...strictValidate(container, c, "/spec/predictor/model"));
    }
  }
  return errors;
}

function checkServingRuntime(doc) {
  const errors = ajvErrors(kserve.ServingRuntime, doc);
  const spec = doc.spec;
  if (spec && typeof spec === "object") {
    const pod = pick(spec, (k) => RUNTIME_POD_KEYS.includes(k));
    if (!pod.containers) pod.containers = [];
    errors.push(...strictValidate(podSpec, pod, "/spec"));
  }
  return errors;
}

function checkDocument(doc) {
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) {
    return [{ path: "", message: "not a mapping" }];
  }
  if (doc.apiVersion === "serving.kserve.io/v1beta1" && doc.kind === "InferenceService") {
    return checkInferenceService(doc);
  }
  if (doc.apiVersion === "serving.kserve.io/v1alpha1" && doc.kind === "ServingRuntime") {
    return checkServingRuntime(doc);
  }
  const validate = doc.apiVersion && doc.kind ? k8sValidator(definitionOf(doc.apiVersion, doc.kind)) : null;
  if (!validate) {
    return [{ path: "", message: `no schema for apiVersion ${doc.apiVersion} kind ${doc.kind}` }];
  }
  const errors = strictValidate(validate, doc, "");
  // The schemas allow generateName instead; every manifest here is applied by name.
  if (typeof doc.metadata !== "object" || !doc.metadata || !doc.metadata.name) {
    errors.push({ path: "/metadata/name", message: "required" });
  }
  return errors;
}

function main(files) {
  if (!files.length) {
    process.stderr.write("usage: k8s-check.js FILE...\n");
    return 2;
  }
  const report = [];
  for (const file of files) {
    let docs;
    try {
      docs = yaml.loadAll(fs.readFileSync(file, "utf8")).filter((d) => d !== null && d !== undefined);
    } catch (e) {
      report.push({ file, index: -1, kind: null, name: null, errors: [{ path: "", message: String(e.message) }] });
      continue;
    }
    docs.forEach((doc, index) => {
      const errors = checkDocument(doc);
      const meta = (doc && doc.metadata) || {};
      report.push({ file, index, kind: doc && doc.kind, name: meta.name || null, errors });
    });
  }
  process.stdout.write(JSON.stringify(report, null, 1) + "\n");
  return report.some((r) => r.errors.length) ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
