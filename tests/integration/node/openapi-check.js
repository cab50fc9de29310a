#!/usr/bin/env node
// openapi-check.js: the OpenAPI document against two validators, and recorded HTTP exchanges
// against the document.
//
//   openapi-check.js lint DOC...
//     @apidevtools/swagger-parser (the OpenAPI Initiative's JSON schema of the format, every
//     $ref resolved) and @redocly/openapi-core's lint with its `recommended` rules (path
//     parameters declared, unique operation ids, a 4XX response per operation, ...). Every
//     problem, warnings included, is reported, with the file it is in.
//   openapi-check.js exchanges DOC EXCHANGES.json
//     EXCHANGES.json: [{method, path, status, headers: {name: value}, body, request_headers,
//     request_body}]. Each exchange must match an operation of DOC (path template, method;
//     HEAD = GET), its status must be documented, every header the response documents as
//     required must be present and valid, every API header the server sent (X-Request-Id,
//     Allow, Retry-After) must be documented, the Content-Type must be documented and the
//     JSON body must validate against the response schema (ajv). A 2xx exchange's JSON
//     request body must validate against the documented request body too.
//
// Prints one JSON object on stdout ({problems: [...]}, plus {covered: [...]} for
// `exchanges`); exits 1 when there is a problem, 2 on a usage error.
"use strict";

const fs = require("fs");
const SwaggerParser = require("@apidevtools/swagger-parser");
const { lint, createConfig } = require("@redocly/openapi-core");
const Ajv = require("ajv");
const addFormats = require("ajv-formats");

// Rules of `recommended` that do not apply to this API, with the reason.
const REDOCLY_RULES = {
  "info-license": "off", // the project publishes no license text
};

async function lintDocument(file, config) {
  const problems = [];
  try {
    await SwaggerParser.validate(file);
  } catch (e) {
    for (const line of String(e.message).split("\n").filter(Boolean)) {
      problems.push({ file, validator: "swagger-parser", severity: "error", rule: "schema", message: line.trim() });
    }
  }
  try {
    for (const p of await lint({ ref: file, config })) {
      problems.push({
        file,
        validator: "redocly",
        severity: p.severity,
        rule: p.ruleId,
        message: p.message,
        where: p.location && p.location[0] ? p.location[0].pointer : "",
      });
    }
  } catch (e) {
    problems.push({ file, validator: "redocly", severity: "error", rule: "parse", message: String(e.message).split("\n")[0] });
  }
  return problems;
}

async function lintDocuments(files) {
  const config = await createConfig({ extends: ["recommended"], rules: REDOCLY_RULES });
  const problems = [];
  for (const file of files) problems.push(...(await lintDocument(file, config)));
  return { problems };
}

function templateRegex(template) {
  const literal = template.replace(/\{[^}]+\}/g, "");
  const re = template
    .split(/(\{[^}]+\})/)
    .map((part) => (part.startsWith("{") ? "([^/]+)" : part.replace(/[.*+?^$()|[\]\\]/g, "\\$&")))
    .join("");
  return { template, re: new RegExp("^" + re + "$"), literal: literal.length };
}

function mediaType(value) {
  return String(value || "").split(";")[0].trim().toLowerCase();
}

function headerValue(headers, name) {
  for (const k of Object.keys(headers || {})) if (k.toLowerCase() === name.toLowerCase()) return headers[k];
  return undefined;
}

// A header's text as its schema's type.
function coerce(schema, text) {
  const t = schema && schema.type;
  if ((t === "integer" || t === "number") && /^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  if (t === "boolean" && (text === "true" || text === "false")) return text === "true";
  return text;
}

const API_HEADERS = ["X-Request-Id", "Allow", "Retry-After"];

async function checkExchanges(file, exchangesFile) {
  const api = await SwaggerParser.dereference(file);
  const ajv = new Ajv({ allErrors: true, strict: false });
  addFormats(ajv);
  // OpenAPI 3.0's formats beyond JSON Schema's.
  ajv.addFormat("int32", { type: "number", validate: (n) => Number.isInteger(n) && Math.abs(n) < 2 ** 31 });
  ajv.addFormat("int64", { type: "number", validate: (n) => Number.isInteger(n) });
  ajv.addFormat("float", { type: "number", validate: () => true });
  ajv.addFormat("double", { type: "number", validate: () => true });
  ajv.addFormat("byte", /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/);
  ajv.addFormat("binary", true);
  const compiled = new Map();
  const validatorFor = (schema) => {
    if (!compiled.has(schema)) compiled.set(schema, ajv.compile(schema));
    return compiled.get(schema);
  };
  const schemaErrors = (schema, value) => {
    const v = validatorFor(schema);
    return v(value) ? [] : v.errors.map((e) => `${e.instancePath || "/"} ${e.message}`);
  };

  const templates = Object.keys(api.paths).map(templateRegex);
  const exchanges = JSON.parse(fs.readFileSync(exchangesFile, "utf8"));
  const problems = [];
  const covered = [];
  exchanges.forEach((x, i) => {
    const say = (message) => problems.push({ exchange: i, request: `${x.method} ${x.path}`, status: x.status, message });
    const path = x.path.split("?")[0];
    const matches = templates
      .map((t) => ({ t, m: t.re.exec(path) }))
      .filter((c) => c.m)
      .sort((a, b) => b.t.literal - a.t.literal);
    if (!matches.length) return say("no documented path matches");
    const { t } = matches[0];
    const item = api.paths[t.template];
    const method = x.method.toUpperCase() === "HEAD" ? "get" : x.method.toLowerCase();
    const op = item[method];
    // A 405 answers a method the path does not have: it is documented on the path's operations.
    const ops = op ? [op] : Object.keys(item).filter((k) => ["get", "post", "put", "delete", "patch"].includes(k)).map((k) => item[k]);
    if (!op && x.status !== 405) return say(`${method.toUpperCase()} is not documented for ${t.template}`);
    const responseOf = (o) => o.responses[String(x.status)] || o.responses[String(x.status)[0] + "XX"] || o.responses.default;
    const documented = ops.map(responseOf).filter(Boolean);
    if (!documented.length) return say(`status ${x.status} is not documented for ${x.method} ${t.template}`);
    const resp = documented[0];
    covered.push({ method: op ? method : "other", path: t.template, status: x.status });

    const params = [...(item.parameters || []), ...((op && op.parameters) || [])];
    t.re.exec(path).slice(1).forEach((value, k) => {
      const name = t.template.match(/\{([^}]+)\}/g)[k].slice(1, -1);
      const p = params.find((q) => q.in === "path" && q.name === name);
      if (!p) return say(`path parameter ${name} is not declared`);
      for (const e of schemaErrors(p.schema, decodeURIComponent(value))) say(`path parameter ${name}: ${e}`);
    });

    const headers = resp.headers || {};
    for (const [name, h] of Object.entries(headers)) {
      const value = headerValue(x.headers, name);
      if (value === undefined) {
        if (h.required) say(`header ${name} is documented as required but missing`);
        continue;
      }
      for (const e of schemaErrors(h.schema, coerce(h.schema, value))) say(`header ${name}: ${value}: ${e}`);
    }
    for (const name of API_HEADERS) {
      const documentedHere = Object.keys(headers).some((k) => k.toLowerCase() === name.toLowerCase());
      if (headerValue(x.headers, name) !== undefined && !documentedHere) {
        say(`header ${name} was sent but is not documented for status ${x.status}`);
      }
    }

    if (x.method.toUpperCase() !== "HEAD" && x.body !== undefined && x.body !== "") {
      const ct = mediaType(headerValue(x.headers, "Content-Type"));
      const content = resp.content || {};
      const media = content[ct];
      if (!media) {
        say(`Content-Type ${ct} is not documented (documented: ${Object.keys(content).join(", ") || "none"})`);
      } else if (media.schema) {
        let value = x.body;
        if (ct === "application/json" || ct.endsWith("+json")) {
          try {
            value = JSON.parse(x.body);
          } catch (e) {
            say(`body is not JSON: ${e.message}`);
            value = undefined;
          }
        }
        if (value !== undefined) for (const e of schemaErrors(media.schema, value)) say(`body ${e}`);
      }
    }

    if (op && x.status >= 200 && x.status < 300 && x.request_body !== undefined) {
      const ct = mediaType(headerValue(x.request_headers, "Content-Type"));
      const rb = op.requestBody;
      if (!rb) say("a body was sent but the operation documents none");
      else if (ct) {
        const media = rb.content[ct];
        if (!media) say(`request Content-Type ${ct} is not documented`);
        else if (media.schema && ct === "application/json") {
          for (const e of schemaErrors(media.schema, JSON.parse(x.request_body))) say(`request body ${e}`);
        }
      }
    }
  });
  return { problems, covered };
}

async function main(argv) {
  const [cmd, doc, extra] = argv;
  let out;
  if (cmd === "lint" && doc) out = await lintDocuments(argv.slice(1));
  else if (cmd === "exchanges" && doc && extra) out = await checkExchanges(doc, extra);
  else {
    process.stderr.write("usage: openapi-check.js lint DOC... | exchanges DOC EXCHANGES.json\n");
    return 2;
  }
  process.stdout.write(JSON.stringify(out, null, 1) + "\n");
  return out.problems.length ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (rc) => (process.exitCode = rc),
  (e) => {
    process.stderr.write(String((e && e.stack) || e) + "\n");
    process.exitCode = 2;
  }
);
