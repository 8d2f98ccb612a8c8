// The operator console: polls GET /admin/v1/status with the admin token kept
// in sessionStorage (this tab only). No inline script, no external request.
"use strict";

const POLL_MS = 3000;
const KEEP = 60;            // samples in the chart (3 minutes at 3 s)
const KEY = "apihub.adminToken";
const samples = [];         // {t, calls, errors, buckets}
const series = {rate: [], err: [], p99: []};
let timer = null;
let transient = false;      // the message is poll's own (loading, unreachable): the next good poll clears it

const $ = id => document.getElementById(id);

function table(headers, rows, empty) {
  if (!rows.length) return el("p", {class: "notice muted", text: empty});
  return el("table", {}, el("thead", {}, el("tr", {}, ...headers.map(h => el("th", {text: h})))),
    el("tbody", {}, ...rows.map(r => el("tr", {}, ...r.map(c => c instanceof Node ? el("td", {}, c) : el("td", {text: c ?? "–"}))))));
}

const badge = (text, kind) => el("span", {class: `badge ${kind || text}`, text});
const ms = v => v === null || v === undefined ? "–" : `${v} ms`;

class Unauthorized extends Error {}

async function api(method, path) {
  const r = await fetch(path, {method, cache: "no-store", headers: {Authorization: "Bearer " + sessionStorage.getItem(KEY)}});
  if (r.status === 401) throw new Unauthorized("the admin token was refused");
  let body = null;
  try { body = await r.json(); } catch { /* not JSON: reported below */ }
  if (!r.ok) throw new Error(body && body.detail ? `${body.detail} (${body.code})` : `the hub answered ${r.status}`);
  return body;
}

function showLogin(error) {
  clearInterval(timer);
  timer = null;
  sessionStorage.removeItem(KEY);
  $("console").hidden = true;
  $("message").hidden = true;
  $("reload").hidden = $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = error || "";
  $("token").value = "";
  $("token").focus();
}

function message(text, kind, fromPoll) {
  transient = Boolean(fromPoll);
  $("message").hidden = !text;
  $("message").className = "notice " + (kind || "");
  $("message").textContent = text || "";
}

// p99 of the calls between two samples, from the difference of their cumulative histograms.
function p99Between(a, b) {
  const diff = b.buckets.map(([le, n], i) => [le, n - ((a.buckets[i] || [le, 0])[1])]);
  const total = diff.length ? diff[diff.length - 1][1] : 0;
  if (total <= 0) return null;
  const rank = Math.ceil(total * 0.99);
  for (const [le, n] of diff) if (n >= rank) return le;  // an upper bound; null means past the last bucket
  return null;
}

function sample(s) {
  const now = {t: s.time, calls: s.traffic.calls, errors: s.traffic.errors, buckets: s.traffic.latencyBuckets};
  const prev = samples[samples.length - 1];
  samples.push(now);
  if (samples.length > KEEP + 1) samples.shift();
  if (!prev || now.t <= prev.t || now.calls < prev.calls) return;  // first sample, or another instance answered
  const dt = now.t - prev.t, dc = now.calls - prev.calls, de = now.errors - prev.errors;
  push("rate", dc / dt);
  push("err", dc ? 100 * de / dc : 0);
  push("p99", dc ? p99Between(prev, now) : null);
  $("rate-now").textContent = `· ${(dc / dt).toFixed(1)}`;
  $("err-now").textContent = `· ${dc ? (100 * de / dc).toFixed(1) : "0.0"} %`;
  const p = series.p99[series.p99.length - 1];
  $("p99-now").textContent = p === null ? "· –" : `· ≤ ${p} ms`;
  $("window").textContent = `(every ${POLL_MS / 1000} s, last ${Math.round(dt * series.rate.length)} s)`;
  draw("chart-rate", series.rate, "#2357c6");
  draw("chart-err", series.err, "#b42318");
  draw("chart-p99", series.p99, "#9a6700");
}

function push(name, value) {
  series[name].push(value);
  if (series[name].length > KEEP) series[name].shift();
}

function draw(id, values, color) {
  const canvas = $(id), ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const max = Math.max(1e-9, ...values.filter(v => v !== null));
  ctx.strokeStyle = "#d9dee7";
  ctx.beginPath(); ctx.moveTo(0, h - 1); ctx.lineTo(w, h - 1); ctx.stroke();
  ctx.fillStyle = "#5b6475"; ctx.font = "11px system-ui, sans-serif";
  ctx.fillText(max >= 100 ? max.toFixed(0) : max.toPrecision(2), 2, 11);
  // Newest sample at the right edge; a gap (null) breaks the line.
  ctx.strokeStyle = ctx.fillStyle = color; ctx.lineWidth = 2; ctx.beginPath();
  let started = false;
  values.forEach((v, i) => {
    if (v === null) { started = false; return; }
    const x = w - 2 - (values.length - 1 - i) * (w - 4) / (KEEP - 1), y = h - 2 - (h - 16) * v / max;
    if (started) ctx.lineTo(x, y); else { ctx.moveTo(x, y); started = true; }
    ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
  });
  ctx.stroke();
}

function card(k, v) { return el("div", {class: "card"}, el("div", {class: "k", text: k}), el("div", {class: "v"}, v)); }

function render(s) {
  $("instance").textContent = `answered by ${s.instance}`;
  const c = s.catalogue, reg = s.registry;
  $("hub").replaceChildren(
    card("instance", s.instance),
    card("status", badge(s.status, s.status === "ok" ? "ok" : "degraded")),
    card("catalogue", `generation ${c.generation} · ${c.actions} actions`),
    card("loaded at", c.loadedAt || "–"),
    card("last reload error", c.lastReloadError ? el("span", {class: "error", id: "reload-error", text: c.lastReloadError}) : "none"),
    card("registry", `${reg.backend}${reg.status ? " · " + reg.status : ""}`));
  $("providers").replaceChildren(table(
    ["provider", "breaker", "failures in a row", "in flight / limit", "error codes"],
    s.providers.map(p => [
      el("span", {}, el("strong", {text: p.displayName}), " ", el("code", {class: "muted", text: p.id})),
      badge(p.breaker),
      String(p.consecutiveFailures),
      p.bulkheads.map(b => `${b.inFlight} / ${b.limit}${b.action ? " (" + b.action + ")" : ""}`).join(", "),
      Object.entries(p.errorCodes).map(([code, n]) => `${code} × ${n}`).join(", ") || "none"]),
    "No providers yet: no app in the registry provides an action."));
  $("providers").querySelectorAll("tbody tr").forEach((tr, i) => { tr.dataset.provider = s.providers[i].id; });
  $("conformance").replaceChildren(table(
    ["provider", "action", "v", "calls", "ok", "invalid", "timeouts", "errors", "p50", "p99", "last violation"],
    s.conformance.map(e => [e.provider, e.action, String(e.version), String(e.calls), String(e.successes),
      String(e.invalidResponses), String(e.timeouts), String(e.errors), ms(e.p50Ms), ms(e.p99Ms),
      e.lastViolations.length ? `${e.lastViolations.at(-1).pointer || "/"}: ${e.lastViolations.at(-1).message}` : "–"]),
    "No provider has been called since this instance started."));
  $("actions").replaceChildren(table(
    ["action", "versions (enforce request / response)", "violations (request / response)"],
    s.actions.map(a => [el("code", {text: a.name}),
      a.versions.map(v => `v${v.version} (${v.enforceRequest} / ${v.enforceResponse})`).join(", "),
      `${a.violations.request} / ${a.violations.response}`]),
    "The catalogue has no actions."));
  $("communities").replaceChildren(table(["community", "apps"],
    s.communities.map(x => [x.community, x.apps.join(", ")]), "No app is installed in any community."));
}

async function poll() {
  try {
    const s = await api("GET", "/admin/v1/status");
    render(s);
    sample(s);
    if (transient) message("");
    $("console").hidden = false;
  } catch (e) {
    if (e instanceof Unauthorized) return showLogin("That token was refused: check it and try again.");
    message(`Could not reach the admin API: ${e.message}. Retrying every ${POLL_MS / 1000} s…`, "error", true);
  }
}

function start() {
  $("login").hidden = true;
  $("reload").hidden = $("logout").hidden = false;
  message("Loading…", "", true);
  poll();
  timer = setInterval(poll, POLL_MS);
}

$("login").addEventListener("submit", ev => {
  ev.preventDefault();
  sessionStorage.setItem(KEY, $("token").value.trim());
  start();
});
$("logout").addEventListener("click", () => showLogin(""));
$("reload").addEventListener("click", async () => {
  const button = $("reload");
  button.disabled = true;
  message("Reloading the catalogue…");
  try {
    const r = await api("POST", "/admin/v1/reload");
    message(r.reloaded ? `Reloaded: catalogue generation ${r.catalogue.generation}, ${r.catalogue.actions} actions (${r.instance}).`
                       : `Reload refused, the previous catalogue keeps serving: ${r.catalogue.lastReloadError}`,
            r.reloaded ? "" : "error");
    const s = await api("GET", "/admin/v1/status");
    render(s);
  } catch (e) {
    if (e instanceof Unauthorized) return showLogin("That token was refused: check it and try again.");
    message(`Reload failed: ${e.message}`, "error");
  } finally {
    button.disabled = false;
  }
});

if (sessionStorage.getItem(KEY)) start(); else showLogin("");
