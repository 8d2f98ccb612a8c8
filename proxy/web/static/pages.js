// Shared by /docs and /admin/. Builds DOM nodes from text only: nothing a
// catalogue or the hub says is ever parsed as HTML.
"use strict";

// el("td", {class: "x", text: "y"}, child, …): `text` sets textContent; null/false attributes are left out.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}
