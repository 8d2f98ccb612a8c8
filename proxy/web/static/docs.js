// The catalogue reference: renders the hub's own /v1/openapi.json.
// No inline script, no external request (the page's CSP forbids both).
"use strict";

const POLL_MS = 5000;
let doc = null;
let etag = "";

function resolve(schema) {
  let seen = 0;
  while (schema && typeof schema.$ref === "string" && schema.$ref.startsWith("#/") && seen++ < 32) {
    let target = doc;
    for (const part of schema.$ref.slice(2).split("/")) {
      target = target && target[decoded(part).replace(/~1/g, "/").replace(/~0/g, "~")];
    }
    if (!target) break;
    schema = Object.assign({}, target, ...Object.keys(schema).filter(k => k !== "$ref").map(k => ({[k]: schema[k]})));
  }
  return schema || {};
}

// A pointer token as written when it is no valid percent-encoding (`a%zz`):
// the hub publishes such names as they are.
function decoded(part) {
  try {
    return decodeURIComponent(part);
  } catch (e) {
    return part;
  }
}

function typeOf(s) {
  if (s.type) return Array.isArray(s.type) ? s.type.join(" | ") : s.type;
  if (s.enum) return "enum";
  if (s.const !== undefined) return "const";
  if (s.properties) return "object";
  if (s.items || s.prefixItems) return "array";
  for (const k of ["anyOf", "oneOf", "allOf"]) if (s[k]) return k;
  return "any";
}

const CONSTRAINTS = ["format", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
  "minLength", "maxLength", "minItems", "maxItems", "uniqueItems", "minProperties", "maxProperties", "default"];

function facts(s) {
  const out = el("span", {class: "facts"});
  for (const k of CONSTRAINTS) {
    if (s[k] !== undefined) out.append(el("span", {class: "fact", text: `${k}: ${JSON.stringify(s[k])}`}));
  }
  if (s.enum) out.append(el("span", {class: "fact enum", text: "one of " + s.enum.map(v => JSON.stringify(v)).join(", ")}));
  if (s.const !== undefined) out.append(el("span", {class: "fact", text: "= " + JSON.stringify(s.const)}));
  return out;
}

function children(s) {
  const rows = [];
  const required = new Set(s.required || []);
  for (const [name, sub] of Object.entries(s.properties || {})) rows.push([name, sub, required.has(name)]);
  for (const [pat, sub] of Object.entries(s.patternProperties || {})) rows.push([`/${pat}/`, sub, false]);
  if (s.additionalProperties && typeof s.additionalProperties === "object") rows.push(["*", s.additionalProperties, false]);
  (s.prefixItems || []).forEach((sub, i) => rows.push([`[${i}]`, sub, false]));
  if (s.items && typeof s.items === "object") rows.push(["[]", s.items, false]);
  for (const k of ["allOf", "anyOf", "oneOf"]) {
    (s[k] || []).forEach((sub, i) => rows.push([`${k} ${i + 1}`, sub, false]));
  }
  if (s.not) rows.push(["not", s.not, false]);
  return rows;
}

// One schema node: a <details> when it has children, so the tree opens with
// the keyboard (summary is focusable) and costs nothing until opened.
function node(name, raw, required, depth, trail, open = depth < 1) {
  const s = resolve(raw);
  const head = el("span", {class: "head"},
    name ? el("code", {class: "name", text: name}) : null,
    el("span", {class: "type", text: typeOf(s)}),
    required ? el("span", {class: "req", text: "required"}) : null,
    s.deprecated ? el("span", {class: "fact", text: "deprecated"}) : null,
    facts(s));
  const body = [];
  if (s.title && depth > 0) body.push(el("div", {class: "title", text: s.title}));
  if (s.description) body.push(el("div", {class: "desc", text: s.description}));
  const examples = s.examples || (s.example !== undefined ? [s.example] : []);
  for (const ex of examples) body.push(el("pre", {class: "example", text: "example: " + JSON.stringify(ex, null, 2)}));
  const ref = raw && raw.$ref;
  const kids = (ref && trail.includes(ref)) || depth > 12 ? [] : children(s);
  if (!kids.length) return el("div", {class: "leaf"}, head, ...body);
  const details = el("details", {class: "node", open}, el("summary", {}, head), ...body);
  const list = el("div", {class: "kids"});
  details.append(list);
  details.addEventListener("toggle", () => {
    if (!details.open || list.childElementCount) return;
    for (const [n, sub, req] of kids) list.append(node(n, sub, req, depth + 1, ref ? [...trail, ref] : trail));
  }, {once: false});
  if (details.open) details.dispatchEvent(new Event("toggle"));
  return details;
}

// An operation describes one version (`x-apihub-version`; the others are in
// /v1/openapi.json?version=N): its tree, open.
function versioned(schema, shown) {
  if (!schema) return [el("p", {class: "muted", text: "not described"})];
  return [shown ? node(`v${shown}`, schema, false, 0, [], true) : node("", schema, false, 0, [])];
}

function copyButton(text) {
  const b = el("button", {type: "button", class: "copy", text: "Copy"});
  b.addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(text); b.textContent = "Copied"; }
    catch { b.textContent = "Select and copy"; }
    setTimeout(() => { b.textContent = "Copy"; }, 1500);
  });
  return b;
}

// Single-quoted for a POSIX shell: an action name is catalogue data, and a
// quote in it must not end the string (and run what follows) when pasted.
function shellQuoted(text) {
  return "'" + text.replace(/'/g, "'\\''") + "'";
}

function curlFor(path, versions) {
  const url = `${location.origin}${path.replace("{provider}", "PROVIDER")}?version=${versions[versions.length - 1]}`;
  // $TOKEN and $COMMUNITY in double quotes: the shell fills them in from the reader's variables.
  return `curl -sS -X POST ${shellQuoted(url)} \\\n  -H "Authorization: Bearer $TOKEN" \\\n` +
         `  -H "community-id: $COMMUNITY" \\\n  -H 'Content-Type: application/json' \\\n  -d '{"data": {}}'`;
}

function errorsTable(responses) {
  const table = el("table", {class: "errors"}, el("thead", {}, el("tr", {},
    el("th", {text: "status"}), el("th", {text: "code"}), el("th", {text: "meaning"}))));
  const tbody = el("tbody");
  for (const [status, raw] of Object.entries(responses)) {
    if (status === "200") continue;
    const r = resolve(raw);
    const schema = resolve((((r.content || {})["application/problem+json"]) || {}).schema);
    const codes = [schema, ...(schema.allOf || [])].map(m => ((resolve(m).properties || {}).code || {}).enum || []).flat();
    const meaning = (r.description || "").split(":")[0];
    tbody.append(el("tr", {}, el("td", {text: status}),
      el("td", {}, ...codes.map(c => el("code", {class: "code", text: c}))), el("td", {text: meaning})));
  }
  table.append(tbody);
  return table;
}

function action(path, op) {
  const versions = op["x-apihub-versions"] || [];
  const name = op["x-apihub-action"] || path;
  const body = (((op.requestBody || {}).content || {})["application/json"] || {}).schema;
  const answer = ((((op.responses || {})["200"] || {}).content || {})["application/json"] || {}).schema;
  const curl = curlFor(path, versions.length ? versions : [1]);
  const card = el("details", {class: "action", "data-name": `${name} ${op.summary || ""}`.toLowerCase()},
    el("summary", {}, el("code", {class: "aname", text: name}),
      el("span", {class: "summary", text: op.summary && op.summary !== name ? op.summary : ""}),
      el("span", {class: "versions", text: versions.map(v => "v" + v).join(" ")}),
      op["x-idempotent"] ? el("span", {class: "fact", text: "idempotent"}) : null));
  card.append(
    el("p", {class: "desc", text: op.description || ""}),
    el("h4", {text: "Call"}),
    el("div", {class: "url"}, el("code", {text: "POST " + path})),
    el("div", {class: "curl"}, el("pre", {text: curl}), copyButton(curl)),
    el("h4", {text: "Request body"}), ...versioned(body, op["x-apihub-version"]),
    el("h4", {text: "Answer (200)"}), ...versioned(answer, op["x-apihub-version"]),
    el("h4", {text: "Errors"}), errorsTable(op.responses || {}));
  return card;
}

function render() {
  const root = document.getElementById("actions");
  const open = new Set([...root.querySelectorAll("details.action[open]")].map(d => d.dataset.name));
  root.replaceChildren();
  const groups = new Map();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    const op = item.post;
    // One card per action: its fan-out shares the call's body and versions.
    if (!op || !op["x-apihub-action"] || op["x-apihub-fanout"]) continue;
    const tag = (op.tags || ["actions"])[0];
    if (!groups.has(tag)) groups.set(tag, []);
    groups.get(tag).push(action(path, op));
  }
  const info = (doc.info || {}).description || "";
  const gen = /generation (\d+)/.exec(info);
  document.getElementById("generation").textContent = gen ? `generation ${gen[1]}` : "";
  const status = document.getElementById("status");
  document.getElementById("intro").hidden = false;
  if (!groups.size) {
    status.hidden = false;
    status.textContent = "The catalogue has no actions yet. Add action files to the catalogue folder and reload the hub.";
    return;
  }
  status.hidden = true;
  for (const [tag, cards] of [...groups].sort((a, b) => a[0].localeCompare(b[0]))) {
    for (const c of cards) if (open.has(c.dataset.name)) c.open = true;
    root.append(el("section", {class: "group"}, el("h2", {text: tag}), ...cards));
  }
  applyFilter();
}

function applyFilter() {
  const q = document.getElementById("filter").value.trim().toLowerCase();
  for (const card of document.querySelectorAll("details.action")) card.hidden = q !== "" && !card.dataset.name.includes(q);
  for (const g of document.querySelectorAll("section.group")) g.hidden = !g.querySelector("details.action:not([hidden])");
}

async function load() {
  const status = document.getElementById("status");
  try {
    const r = await fetch("/v1/openapi.json", {cache: "no-cache", headers: etag ? {"If-None-Match": etag} : {}});
    if (r.status === 304) return;
    if (!r.ok) throw new Error(`the hub answered ${r.status}`);
    etag = r.headers.get("ETag") || "";
    doc = await r.json();
    render();
  } catch (e) {
    if (!doc) {
      status.hidden = false;
      status.className = "notice error";
      status.textContent = `Could not load the catalogue: ${e.message}. Retrying…`;
    }
  }
}

document.getElementById("filter").addEventListener("input", applyFilter);
load();
// Follows reloads: the document's ETag changes with the catalogue generation.
setInterval(load, POLL_MS);
