// sentiflow console: reads /console/stream (Server-Sent Events) and draws the tree and charts.
// No libraries: charts are drawn by hand on <canvas> so the page works offline from the package.
"use strict";

const MAX_POINTS = 300;
let history = [];
let lastFrame = null;

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g,
  (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const fmt = (x, digits = 1) => (x === null || x === undefined || Number.isNaN(x)) ? "–"
  : Number(x).toLocaleString(undefined, {maximumFractionDigits: digits});

function duration(s) {
  if (s === null || s === undefined) return "–";
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${Math.floor(s % 60)}s` : `${Math.floor(s)}s`;
}

function ago(at, now) {
  const s = Math.max(0, now - at);
  return s < 60 ? `${Math.floor(s)}s ago` : s < 3600 ? `${Math.floor(s / 60)}m ago` : `${Math.floor(s / 3600)}h ago`;
}

function stateClass(state) {
  return state === "running" ? "pill-ok" : state === "restarting" || state === "starting" ? "pill-warn"
    : state === "stopped" ? "pill-bad" : "pill-wait";
}

function setConn(text, cls) { const el = $("conn"); el.textContent = text; el.className = `pill ${cls}`; }

function renderStats(frame) {
  const n = frame.node || {}, t = frame.totals || {}, lat = t.latency_ms || {};
  $("node-name").textContent = n.name || "";
  $("node-model").textContent = n.model ? `${n.model} ${n.model_version} on ${(n.devices || []).join(", ")} · pid ${n.pid}` : "";
  const state = n.draining ? "draining" : n.ready ? "ready" : "not ready";
  $("s-state").innerHTML = `<span class="pill ${n.draining ? "pill-warn" : n.ready ? "pill-ok" : "pill-bad"}">${state}</span>`;
  $("s-tput").textContent = fmt(t.throughput);
  const ms = (x) => fmt(x, x >= 100 ? 0 : 1);
  $("s-lat").textContent = `${ms(lat.p50)} / ${ms(lat.p95)} / ${ms(lat.p99)}`;
  $("s-written").textContent = fmt(t.written, 0);
  $("s-restarts").textContent = fmt(t.restarts, 0);
  $("s-dead").textContent = fmt(t.dead_letters, 0);
  $("s-lag").textContent = fmt(t.loop_lag_max_ms, 2);
  $("s-uptime").textContent = duration(n.uptime_s);
}

function renderTree(frame) {
  const rows = [];
  for (const a of frame.actors || []) {
    const indent = "&nbsp;".repeat(a.depth * 4);
    const err = a.last_error ? `<span class="err" title="${esc(a.last_error.type + ": " + a.last_error.message)}">${esc(a.last_error.type)}: ${esc(a.last_error.message)} (${ago(a.last_error.at, frame.at)})</span>` : "";
    if (a.kind === "supervisor") {
      rows.push(`<tr class="supervisor" data-path="${esc(a.path)}"><td>${indent}${esc(a.name)}</td><td>${esc(a.class)} (${a.max_restarts} / ${a.period_s}s)</td>` +
        `<td><span class="pill ${stateClass(a.state)}">${esc(a.state)}</span></td><td></td><td></td><td></td><td></td>` +
        `<td class="num">${a.restarts}</td><td>${err}</td></tr>`);
      continue;
    }
    // any queued message shows (a sliver at least): 5 waiting in a mailbox of 4096 is news
    const fill = a.mailbox_capacity && a.mailbox_depth
      ? Math.max(4, Math.min(100, 100 * a.mailbox_depth / a.mailbox_capacity)) : 0;
    const color = fill > 80 ? "var(--bad)" : fill > 40 ? "var(--warn)" : "var(--ok)";
    const lat = a.latency_ms || {};
    const batch = a.batch ? `${fmt(a.batch.mean)} / ${fmt(a.batch.p95, 0)}` : "";
    rows.push(`<tr data-path="${esc(a.path)}"><td>${indent}${esc(a.name)}</td><td>${esc(a.class)}</td>` +
      `<td><span class="pill ${stateClass(a.state)}">${esc(a.state)}</span></td>` +
      `<td class="num"><span class="bar"><span style="width:${fill}%;background:${color}"></span></span><span class="depth">${a.mailbox_depth} / ${a.mailbox_capacity}</span></td>` +
      `<td class="num">${fmt(a.rate)}</td><td class="num">${fmt(lat.p50, 2)} / ${fmt(lat.p95, 2)} / ${fmt(lat.p99, 2)}</td>` +
      `<td class="num">${batch}</td><td class="num">${a.restarts}</td><td>${err}</td></tr>`);
  }
  document.querySelector("#tree tbody").innerHTML = rows.join("");
}

function prepare(canvas) {
  const ratio = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w * ratio) { canvas.width = w * ratio; canvas.height = h * ratio; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px system-ui, sans-serif";
  return {ctx, w, h};
}

function niceMax(x) {
  if (!(x > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(x))), m = x / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

function drawLine(ctx, pts, x0, y0, w, h, max, color) {
  ctx.strokeStyle = color; ctx.lineWidth = 1.5; ctx.beginPath();
  let started = false;
  pts.forEach((v, i) => {
    if (v === null || v === undefined) { started = false; return; }
    const x = x0 + (pts.length < 2 ? w : i * w / (pts.length - 1)), y = y0 + h - Math.min(1, v / max) * h;
    if (started) ctx.lineTo(x, y); else { ctx.moveTo(x, y); started = true; }
  });
  ctx.stroke();
}

function drawThroughput() {
  const {ctx, w, h} = prepare($("chart-tput"));
  const L = 44, R = 44, T = 8, B = 18, pw = w - L - R, ph = h - T - B;
  const tput = history.map((p) => p.throughput), p95 = history.map((p) => p.p95_ms);
  const tmax = niceMax(Math.max(0, ...tput.filter((v) => v !== null)));
  const lmax = niceMax(Math.max(0, ...p95.filter((v) => v !== null)));
  ctx.strokeStyle = "#26303b"; ctx.fillStyle = "#8793a1"; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = T + ph - i * ph / 4;
    ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(L + pw, y); ctx.stroke();
    ctx.textAlign = "right"; ctx.fillText(fmt(tmax * i / 4, 0), L - 4, y + 4);
    ctx.textAlign = "left"; ctx.fillText(fmt(lmax * i / 4, 1), L + pw + 4, y + 4);
  }
  if (history.length > 1) {
    const span = history[history.length - 1].at - history[0].at;
    ctx.textAlign = "center"; ctx.fillText(`last ${duration(span)}`, L + pw / 2, h - 4);
  }
  drawLine(ctx, tput, L, T, pw, ph, tmax, "#58a6ff");
  drawLine(ctx, p95, L, T, pw, ph, lmax, "#f0883e");
}

function drawConfidence() {
  const {ctx, w, h} = prepare($("chart-conf"));
  const L = 34, R = 90, T = 8, B = 18, pw = w - L - R, ph = h - T - B;
  const cols = history.filter((p) => p.confidence);
  ctx.fillStyle = "#8793a1"; ctx.textAlign = "right";
  [0, 0.25, 0.5, 0.75, 1].forEach((v) => ctx.fillText(v.toFixed(2), L - 4, T + ph - v * ph + 4));
  if (!cols.length) { ctx.textAlign = "center"; ctx.fillText("no results written yet", L + pw / 2, T + ph / 2); return; }
  const bins = cols[0].confidence.length, cw = pw / Math.max(cols.length, 1), bh = ph / bins;
  cols.forEach((p, i) => {
    const total = p.confidence.reduce((a, b) => a + b, 0);
    p.confidence.forEach((n, b) => {
      if (!total || !n) return;
      const share = n / total;
      ctx.fillStyle = `rgba(88,166,255,${Math.min(1, 0.12 + share * 2.5)})`;
      ctx.fillRect(L + i * cw, T + ph - (b + 1) * bh, Math.ceil(cw), Math.ceil(bh));
    });
  });
  // current distribution (since start) as horizontal bars on the right
  const total = lastFrame && lastFrame.confidence ? lastFrame.confidence.total : null;
  if (total) {
    const sum = total.reduce((a, b) => a + b, 0) || 1, max = Math.max(...total) / sum || 1;
    ctx.fillStyle = "#3fb950";
    total.forEach((n, b) => ctx.fillRect(L + pw + 8, T + ph - (b + 1) * bh + 1, (R - 16) * (n / sum) / max, Math.max(1, bh - 2)));
    ctx.fillStyle = "#8793a1"; ctx.textAlign = "center"; ctx.fillText("since start", L + pw + R / 2, h - 4);
  }
}

function render(frame) {
  lastFrame = frame;
  renderStats(frame);
  renderTree(frame);
  drawThroughput();
  drawConfidence();
}

function point(frame) {
  const c = frame.confidence;
  return {at: frame.at, throughput: frame.totals.throughput, p95_ms: frame.totals.latency_ms.p95,
          confidence: c ? c.window : null};
}

function connect() {
  const source = new EventSource("/console/stream");
  source.addEventListener("hello", (e) => { history = JSON.parse(e.data).history || []; setConn("live", "pill-ok"); });
  source.addEventListener("frame", (e) => {
    const frame = JSON.parse(e.data);
    if (!history.length || history[history.length - 1].at !== frame.at) history.push(point(frame));
    if (history.length > MAX_POINTS) history = history.slice(-MAX_POINTS);
    render(frame);
    setConn("live", "pill-ok");
  });
  source.addEventListener("bye", () => { setConn("node draining", "pill-warn"); });
  source.onerror = () => setConn("reconnecting", "pill-wait");
}

window.addEventListener("resize", () => { if (lastFrame) render(lastFrame); });
connect();
