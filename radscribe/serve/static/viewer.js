"use strict";
// radscribe's page: upload or pick a job, follow its progress, then view it: the slices of the study with
// window presets, each finding's box, mask outline and heatmap toggled on and off, the report beside the image
// (a sentence selects the findings it states), every download. Everything is fetched from this server with the tab's bearer token.
const $ = (id) => document.getElementById(id);
const COLORS = ["#ff5a5a", "#ffc83c", "#50dc78", "#50b4ff", "#dc78ff", "#ff9650"];
let chosen = [];
let pollTimer = null;
let token = sessionStorage.getItem("radscribe-token") || "";
const V = { meta: null, vol: null, slice: 0, preset: null, shown: new Set(), findings: [], selected: null,
  layers: null, layerOn: new Set() };  // layerOn: "mask-<i>" / "heatmap-<i>"

function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined && text !== null) e.textContent = text; if (cls) e.className = cls; return e; }
function fmtBytes(n) { return n > 1048576 ? (n / 1048576).toFixed(1) + " MiB" : n > 1024 ? (n / 1024).toFixed(0) + " KiB" : n + " B"; }
function words(s) { return s ? String(s).replace(/_/g, " ") : "–"; }
function api(url, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  if (token) headers.Authorization = "Bearer " + token;
  return fetch(url, Object.assign({}, opts, { headers }));
}
async function blobUrl(url) { const r = await api(url); if (!r.ok) throw new Error(`HTTP ${r.status}`); return URL.createObjectURL(await r.blob()); }

// ---- token -------------------------------------------------------------------------------------------
$("token").value = token;
$("token-save").addEventListener("click", () => {
  token = $("token").value.trim(); sessionStorage.setItem("radscribe-token", token); loadJobs();
});

// ---- upload ------------------------------------------------------------------------------------------
function setFiles(list) {
  chosen = Array.from(list).filter((f) => !f.name.startsWith("."));
  const total = chosen.reduce((a, f) => a + f.size, 0);
  $("picked").textContent = chosen.length ? `${chosen.length} file(s), ${fmtBytes(total)}: ` +
    chosen.slice(0, 4).map((f) => f.name).join(", ") + (chosen.length > 4 ? ", …" : "") : "";
  $("submit").disabled = chosen.length === 0;
}
$("files").addEventListener("change", (e) => setFiles(e.target.files));
$("folder").addEventListener("change", (e) => setFiles(e.target.files));
const drop = $("drop");
["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
drop.addEventListener("drop", (e) => setFiles(e.dataTransfer.files));

$("upload-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!chosen.length) return;
  const fd = new FormData();
  chosen.forEach((f) => fd.append("files", f, f.name));
  fd.append("writer", $("writer").value);
  fd.append("models", $("models").value.trim() || "auto");
  $("submit").disabled = true;
  showJob(null, "uploading", "");
  try {
    const r = await api("/v1/studies", { method: "POST", body: fd });
    const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
    if (!r.ok) { showJob(null, "refused", "", body.error || `HTTP ${r.status}`); return; }
    location.hash = "job=" + body.job_id;
    poll(body.job_id);
    loadJobs();
  } catch (err) {
    showJob(null, "refused", "", "upload failed: " + err);
  } finally {
    $("submit").disabled = chosen.length === 0;
  }
});

async function loadJobs() {
  const r = await api("/v1/studies?limit=30").catch(() => null);
  if (!r || !r.ok) return;
  const sel = $("jobs");
  sel.replaceChildren(el("option", "–"));
  (await r.json()).jobs.forEach((j) => { const o = el("option", `${j.created} · ${j.status} · ${j.job_id.slice(0, 8)}`); o.value = j.job_id; sel.appendChild(o); });
}
$("jobs").addEventListener("change", (e) => { if (e.target.value) { location.hash = "job=" + e.target.value; poll(e.target.value); } });
$("jobs-refresh").addEventListener("click", loadJobs);

// ---- job progress ------------------------------------------------------------------------------------
function showJob(id, status, extra, error) {
  $("job-card").classList.remove("hidden");
  $("job-id").textContent = id || "–";
  const s = $("job-status");
  s.textContent = status;
  s.className = "status " + (status === "refused" ? "failed" : status);
  $("job-extra").textContent = extra || "";
  $("progress").classList.toggle("hidden", !["uploading", "queued", "running"].includes(status));
  const er = $("job-error");
  er.textContent = error || "";
  er.classList.toggle("hidden", !error);
  if (status !== "done") $("result-card").classList.add("hidden");
}

async function poll(id) {
  clearTimeout(pollTimer);
  let r;
  try { r = await api(`/v1/studies/${encodeURIComponent(id)}`); }
  catch (err) { showJob(id, "unknown", "", "server unreachable: " + err); pollTimer = setTimeout(() => poll(id), 3000); return; }
  const job = await r.json();
  if (!r.ok) { showJob(id, "unknown", "", job.error); return; }
  const extra = job.status === "queued" ? `(${job.jobs_ahead} job(s) ahead)` :
    job.elapsed_s !== null ? `in ${job.elapsed_s.toFixed(1)} s` : "";
  showJob(id, job.status, extra, job.status === "failed" ? job.error : "");
  if (job.status === "queued" || job.status === "running") { pollTimer = setTimeout(() => poll(id), 500); return; }
  if (job.status === "done") render(job);
}

// ---- the viewer --------------------------------------------------------------------------------------
function draw() {
  const m = V.meta, cv = $("view");
  if (!m) return;
  const [nz, ny, nx] = m.shape, ctx = cv.getContext("2d");
  cv.width = nx; cv.height = ny;
  cv.style.aspectRatio = `${nx} / ${ny * m.aspect}`;
  const p = m.presets[V.preset], lo = p.center - p.width / 2, img = ctx.createImageData(nx, ny);
  const off = V.slice * ny * nx;
  for (let i = 0; i < ny * nx; i++) {
    const v = Math.max(0, Math.min(255, ((V.vol[off + i] - lo) / p.width) * 255));
    img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v; img.data[4 * i + 3] = 255;
  }
  drawLayers(img.data, nx, ny, off);
  ctx.putImageData(img, 0, 0);
  const [sz, sy, sx] = m.stride, z = V.slice * sz;
  V.findings.forEach((f, i) => {
    if (!V.shown.has(i) || !f.box_voxel) return;
    const [z0, y0, x0, z1, y1, x1] = f.box_voxel;
    if (nz > 1 && (z < z0 || z >= z1)) return;
    ctx.strokeStyle = COLORS[i % COLORS.length]; ctx.lineWidth = V.selected === i ? 2.5 : 1.5;
    ctx.strokeRect(x0 / sx, y0 / sy, (x1 - x0) / sx, (y1 - y0) / sy);
    ctx.fillStyle = ctx.strokeStyle; ctx.font = "10px sans-serif"; ctx.fillText(String(i + 1), x0 / sx, Math.max(9, y0 / sy - 2));
  });
  $("slice-label").textContent = `${V.slice + 1} / ${nz}`;
}

function hexRgb(h) { return [1, 3, 5].map((k) => parseInt(h.slice(k, k + 2), 16)); }

// Heatmaps blended in a warm ramp (alpha grows with the value), then mask outlines in the finding's colour.
function drawLayers(px, nx, ny, off) {
  if (!V.layers) return;
  const n = nx * ny;
  V.meta.layers.filter((l) => l.type === "heatmap" && V.layerOn.has(`heatmap-${l.finding}`)).forEach((l) => {
    const h = V.layers.subarray(l.offset + off, l.offset + off + n);
    for (let i = 0; i < n; i++) {
      const a = h[i] / 255 * 0.55;
      if (a < 0.04) continue;
      const r = 255, g = Math.round(255 * Math.min(1, h[i] / 170)), b = 0;
      px[4 * i] += (r - px[4 * i]) * a; px[4 * i + 1] += (g - px[4 * i + 1]) * a; px[4 * i + 2] += (b - px[4 * i + 2]) * a;
    }
  });
  V.meta.layers.filter((l) => l.type === "mask" && V.layerOn.has(`mask-${l.finding}`)).forEach((l) => {
    const m = V.layers.subarray(l.offset + off, l.offset + off + n), [r, g, b] = hexRgb(COLORS[l.finding % COLORS.length]);
    for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) {
      const i = y * nx + x;
      if (m[i] < 128) continue;
      const edge = x === 0 || y === 0 || x === nx - 1 || y === ny - 1 || m[i - 1] < 128 || m[i + 1] < 128 || m[i - nx] < 128 || m[i + nx] < 128;
      if (edge) { px[4 * i] = r; px[4 * i + 1] = g; px[4 * i + 2] = b; }
    }
  });
}

function setSlice(k) { V.slice = Math.max(0, Math.min(V.meta.shape[0] - 1, k)); $("slice").value = V.slice; draw(); }
$("slice").addEventListener("input", (e) => setSlice(+e.target.value));
$("view").addEventListener("wheel", (e) => { if (V.meta && V.meta.shape[0] > 1) { e.preventDefault(); setSlice(V.slice + Math.sign(e.deltaY)); } });

function selectFinding(i) {
  V.selected = i;
  document.querySelectorAll("#findings-table tbody tr").forEach((tr) => tr.classList.toggle("sel", +tr.dataset.index === i));
  document.querySelectorAll(".sentence").forEach((s) => s.classList.toggle("sel", s.dataset.findings.split(",").includes(String(i))));
  const f = V.findings[i];
  if (f && f.box_voxel && V.meta) {
    const zc = f.center_voxel ? f.center_voxel[0] : (f.box_voxel[0] + f.box_voxel[3] - 1) / 2;
    V.shown.add(i); const cb = $(`toggle-${i}`); if (cb) cb.checked = true;
    setSlice(Math.round(zc / V.meta.stride[0]));
  } else draw();
}

async function loadViewer(job) {
  V.meta = null; V.vol = null; V.layers = null;
  const stage = $("stage");
  if (!job.links["viewer.json"]) { stage.classList.add("hidden"); return; }
  stage.classList.remove("hidden");
  V.meta = await (await api(job.links["viewer.json"])).json();
  V.vol = new Int16Array(await (await api(job.links["viewer.bin"])).arrayBuffer());
  V.layers = (V.meta.layers || []).length && job.links["viewer-layers.bin"] ?
    new Uint8Array(await (await api(job.links["viewer-layers.bin"])).arrayBuffer()) : null;
  addLayerToggles();
  V.preset = V.meta.default_preset;
  const pr = $("presets");
  pr.replaceChildren(el("span", "window"));
  Object.keys(V.meta.presets).forEach((name) => {
    const b = el("button", name); b.type = "button"; b.dataset.preset = name; b.className = "preset" + (name === V.preset ? " on" : "");
    b.addEventListener("click", () => { V.preset = name; pr.querySelectorAll("button").forEach((x) => x.classList.toggle("on", x === b)); draw(); });
    pr.appendChild(b);
  });
  $("slice").max = V.meta.shape[0] - 1;
  const first = V.findings.findIndex((f) => f.box_voxel);
  setSlice(first >= 0 ? Math.round(((V.findings[first].center_voxel || V.findings[first].box_voxel)[0]) / V.meta.stride[0]) : Math.floor(V.meta.shape[0] / 2));
}

// One checkbox per layer (mask outline, heatmap) of each finding, beside its box toggle; outlines start on,
// heatmaps off (they hide the anatomy).
function addLayerToggles() {
  const tg = $("toggles");
  tg.querySelectorAll(".layer-toggle").forEach((e) => e.remove());
  V.layerOn = new Set((V.meta.layers || []).filter((l) => l.type === "mask").map((l) => `mask-${l.finding}`));
  if (!V.layers) return;
  (V.meta.layers || []).forEach((l) => {
    const key = `${l.type}-${l.finding}`, lab = el("label", null, "layer-toggle"), cb = el("input");
    cb.type = "checkbox"; cb.id = `toggle-${key}`; cb.checked = V.layerOn.has(key);
    cb.addEventListener("change", () => { if (cb.checked) V.layerOn.add(key); else V.layerOn.delete(key); draw(); });
    lab.append(cb, `${l.finding + 1} ${l.type === "mask" ? "outline" : "heatmap"}`);
    tg.appendChild(lab);
  });
}

function renderReport(a) {
  const sentences = V.meta ? V.meta.sentences : [];
  ["findings", "impression"].forEach((section) => {
    const p = $(`rep-${section}`);
    p.replaceChildren();
    const mine = sentences.filter((s) => s.section === section);
    if (!mine.length) { p.textContent = a.report ? a.report[section] : ""; return; }
    mine.forEach((s) => {
      const span = el("span", s.text + " ", "sentence" + (s.findings.length ? " linked" : ""));
      span.dataset.findings = s.findings.join(",");
      if (s.findings.length) { span.title = "finding " + s.findings.map((i) => i + 1).join(", "); span.addEventListener("click", () => selectFinding(s.findings[0])); }
      p.appendChild(span);
    });
  });
}

async function render(job) {
  const a = job.analysis, s = a.study;
  $("result-card").classList.remove("hidden");
  const spacing = s.spacing_mm ? `, spacing ${s.spacing_mm.map((v) => +v.toFixed(2)).join(" × ")} mm` : "";
  $("study").textContent = `${s.modality} ${s.body_region} · ${s.source_format} · ${s.shape.join(" × ")} voxels${spacing} · ` +
    `recognised from ${s.recognized_from} · detectors: ${a.detectors_run.join(", ") || "none applicable"}`;
  V.findings = a.findings; V.selected = null;
  V.shown = new Set(a.findings.map((f, i) => (f.present && f.box_voxel ? i : -1)).filter((i) => i >= 0));
  const tb = $("findings-table").querySelector("tbody"), tg = $("toggles");
  tb.replaceChildren(); tg.replaceChildren(el("span", "show"));
  a.findings.forEach((f, i) => {
    if (!f.present) return;
    const tr = el("tr"); tr.dataset.index = i;
    const size = f.long_axis === null ? "–" : (f.short_axis !== null ? `${f.long_axis.toFixed(1)} × ${f.short_axis.toFixed(1)}` : f.long_axis.toFixed(1)) +
      (f.size_unit !== "mm" ? ` ${f.size_unit}` : "");
    [String(i + 1), words(f.kind), words(f.side), words(f.location), size, f.confidence.toFixed(2), f.detector].forEach((v, k) =>
      tr.appendChild(el("td", v, k === 4 || k === 5 ? "num" : "")));
    tr.addEventListener("click", () => selectFinding(i));
    tb.appendChild(tr);
    if (f.box_voxel) {
      const lab = el("label"), cb = el("input"), sw = el("span", "", "swatch");
      cb.type = "checkbox"; cb.id = `toggle-${i}`; cb.checked = true; sw.style.background = COLORS[i % COLORS.length];
      cb.addEventListener("change", () => { if (cb.checked) V.shown.add(i); else V.shown.delete(i); draw(); });
      lab.append(cb, sw, `${i + 1} ${words(f.kind)}`); tg.appendChild(lab);
    }
  });
  if (!a.findings.some((f) => f.present)) { const tr = el("tr"); const td = el("td", "No finding reported."); td.colSpan = 7; tr.appendChild(td); tb.appendChild(tr); }
  const neg = a.findings.filter((f) => !f.present).length;
  $("negatives").textContent = neg ? `${neg} pertinent negative(s) are listed in findings.json.` : "";
  try { await loadViewer(job); } catch (err) { $("stage").classList.add("hidden"); }
  renderReport(a);
  const ov = $("overlays");
  ov.replaceChildren();
  for (const url of job.links.overlays || []) {
    const fig = el("figure"), img = el("img");
    img.alt = url.split("/").pop();
    blobUrl(url).then((u) => { img.src = u; }).catch(() => {});
    fig.append(img, el("figcaption", url.split("/").pop() + " (rendered: box, contours, heatmap)"));
    ov.appendChild(fig);
  }
  const links = $("links");
  links.replaceChildren();
  ["report.md", "findings.json", "report.fhir.json", "report.sr.dcm", "report.seg.dcm", "candidates.json", "pacs.json"].forEach((n) => {
    if (!job.links[n]) return;
    const l = el("a", n); l.href = job.links[n]; l.download = n;
    l.addEventListener("click", async (e) => {  // with the token: fetch, then save the blob
      e.preventDefault();
      const a2 = el("a"); a2.href = await blobUrl(job.links[n]); a2.download = n; document.body.appendChild(a2); a2.click(); a2.remove();
    });
    links.appendChild(l);
  });
  const notes = $("notes");
  notes.replaceChildren();
  (s.notes || []).forEach((n) => notes.appendChild(el("li", n)));
  document.body.dataset.rendered = job.job_id;  // for tests and scripts: the result is on screen
}

fetch("/health").then((r) => r.json()).then((h) => {
  $("version").textContent = `version ${h.version} · detectors ready: ${h.detectors.filter((d) => d.available).map((d) => d.name).join(", ") || "none"} · queue ${h.queue_length}`;
  $("limits").textContent = `limits: ${h.limits.max_upload_mib} MiB, ${h.limits.max_files} files`;
  $("token-card").classList.toggle("hidden", h.auth !== "token");
  if (h.auth !== "token" || token) loadJobs();
}).catch(() => {});
const m = location.hash.match(/job=([0-9a-f]{32})/);
if (m) poll(m[1]);
