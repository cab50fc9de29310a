// The try-it page's script (server/page.h): the public API only, no libraries, no network
// beyond this server. It lists the models, sends the chosen image as raw bytes to
// POST /v1/models/{name}:predict?top_k=5 and draws the answer. #result's data-state says
// where it is (idle, running, done, error): the browser test waits on it.
"use strict";

const TOP_K = 5;
const $ = (id) => document.getElementById(id);
let models = [];
let lastFile = null;

function selected() {
  return models.find((m) => m.name === $("model").value);
}

function shellQuote(s) {
  return "'" + String(s).replace(/'/g, "'\\''") + "'";
}

function showCurl(file) {
  const m = selected();
  const name = m ? m.name : "MODEL";
  const type = (file && file.type) || "image/jpeg";
  const path = file ? file.name : "image.jpg";
  const url = location.origin + "/v1/models/" + encodeURIComponent(name) + ":predict?top_k=" + TOP_K;
  $("curl").textContent = "curl -s -H " + shellQuote("Content-Type: " + type) +
    " --data-binary @" + shellQuote(path) + " \\\n     " + shellQuote(url);
}

function showModel() {
  const m = selected();
  $("model-badge").hidden = !(m && m.untrained);
  $("model-info").textContent = !m ? "" : m.status !== "ready" ? m.name + " is loading…" :
    m.arch + ", " + m.classes + " classes, input " + m.input_size + "×" + m.input_size;
  showCurl(lastFile);
}

async function loadModels() {
  const sel = $("model");
  try {
    const r = await fetch("/v1/models", { cache: "no-store" });
    if (!r.ok) throw new Error("GET /v1/models: HTTP " + r.status);
    // {"models": [names], "details": [each model's status]}: KServe V1's list, and ours.
    models = (await r.json()).details || [];
  } catch (e) {
    sel.replaceChildren(new Option("cannot list models"));
    $("model-info").textContent = String(e.message || e);
    return;
  }
  sel.replaceChildren(...models.map((m) => {
    const o = new Option(m.name + (m.untrained ? " (untrained)" : ""), m.name);
    o.disabled = m.status !== "ready";
    return o;
  }));
  const first = models.find((m) => m.status === "ready");
  if (first) sel.value = first.name;
  sel.disabled = models.length === 0;
  showModel();
}

function setState(state, text) {
  $("result").dataset.state = state;
  $("status").textContent = text;
  $("status").classList.toggle("error", state === "error");
}

function drawPredictions(preds) {
  const list = $("preds");
  list.replaceChildren(...preds.map((p) => {
    const li = document.createElement("li");
    const line = document.createElement("div");
    line.className = "line";
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = p.label;
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = (p.score * 100).toFixed(2) + "%";
    score.title = String(p.score);
    line.append(label, score);
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    // CSSOM, not a style attribute: allowed under style-src 'self'.
    fill.style.width = Math.max(0, Math.min(100, p.score * 100)) + "%";
    track.append(fill);
    li.append(line, track);
    li.dataset.index = p.index;
    return li;
  }));
}

async function classify(file) {
  const m = selected();
  if (!file) return;
  lastFile = file;
  showCurl(file);
  $("result").hidden = false;
  const img = $("preview");
  if (img.src) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(file);
  $("preds").replaceChildren();
  $("latency").textContent = "";
  $("result-badge").hidden = true;
  if (!m) return setState("error", "no model to ask");
  setState("running", "classifying with " + m.name + "…");
  const url = "/v1/models/" + encodeURIComponent(m.name) + ":predict?top_k=" + TOP_K;
  const t0 = performance.now();
  try {
    const r = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": file.type || "application/octet-stream" },
      body: file,
    });
    const ms = performance.now() - t0;
    const j = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error("HTTP " + r.status + ": " + (j.error || r.statusText));
    drawPredictions(j.predictions[0]);
    $("result-badge").hidden = !j.untrained;
    $("latency").textContent = ms.toFixed(0) + " ms";
    setState("done", j.model);
  } catch (e) {
    setState("error", String(e.message || e));
  }
}

function setup() {
  $("model").addEventListener("change", () => {
    showModel();
    if (lastFile) classify(lastFile);
  });
  $("file").addEventListener("change", (e) => classify(e.target.files[0]));
  const drop = $("drop");
  for (const ev of ["dragenter", "dragover"])
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const ev of ["dragleave", "drop"])
    drop.addEventListener(ev, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer.files.length) classify(e.dataTransfer.files[0]);
  });
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); }
  });
  loadModels();
}

document.addEventListener("DOMContentLoaded", setup);
