"""The timeline (timeline.py's data) as one self-contained HTML page: inline CSS, inline JavaScript that draws an SVG,
no network (a Content-Security-Policy forbids any fetch), no external fonts.

The data goes into the page as JSON inside a `<script type="application/json">`, with `<`, `>` and `&` escaped, so
no text in it can end the script or start markup; the script puts agents' text into the page only as text
(`textContent`), never as HTML.
"""

from __future__ import annotations

import html
from typing import Any

import orjson

_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'")

_STYLE = """
:root { color-scheme: light; --ink: #1f2430; --dim: #6b7280; --rule: #e5e7eb; --stripe: #f8f9fb; }
* { box-sizing: border-box; }
body { margin: 0; padding: 16px 20px 40px; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: var(--ink); background: #fff; }
h1 { font-size: 17px; margin: 0 0 2px; font-weight: 600; }
.objective { font-size: 14px; margin: 0 0 6px; overflow-wrap: anywhere; }
.facts, .note { color: var(--dim); margin: 0 0 4px; }
.warn { color: #b42318; margin: 0 0 4px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; margin: 10px 0 8px; padding: 8px 10px;
          border: 1px solid var(--rule); border-radius: 6px; }
.legend .item { display: inline-flex; align-items: center; gap: 5px; white-space: nowrap; }
.legend .item.none { opacity: .4; }
.legend .count { color: var(--dim); }
#chart { display: block; }
.lane-name { font-weight: 600; font-size: 12px; }
.lane-label { fill: var(--dim); font-size: 11px; }
.tick { fill: var(--dim); font-size: 11px; }
#tip { position: fixed; display: none; max-width: 460px; padding: 8px 10px; background: #111827; color: #f9fafb;
       border-radius: 6px; font-size: 12px; line-height: 1.35; pointer-events: none; z-index: 10;
       box-shadow: 0 4px 14px rgba(0,0,0,.25); }
#tip .head { font-weight: 600; margin-bottom: 4px; }
#tip table { border-collapse: collapse; }
#tip td { padding: 1px 6px 1px 0; vertical-align: top; overflow-wrap: anywhere; word-break: break-word; }
#tip td.k { color: #9ca3af; white-space: nowrap; }
"""

_SCRIPT = r"""
"use strict";
const D = JSON.parse(document.getElementById("timeline-data").textContent);
const NS = "http://www.w3.org/2000/svg";
const STYLE = {  // kind -> how its mark is drawn: shape, colour, row in the lane (y from the lane's top)
  tool: ["bar", "#64748b"], tool_failed: ["bar", "#dc2626"], heartbeat: ["dot", "#94a3b8", 27],
  insight: ["diamond", "#d97706", 17], message: ["triangle", "#16a34a", 17],
  claimed: ["square-open", "#2563eb", 7], completed: ["square", "#15803d", 7], failed: ["square", "#b91c1c", 7],
  orphaned: ["cross", "#ea580c", 7], lost: ["big-cross", "#dc2626"], asked: ["circle-open", "#9333ea", 17],
  answered: ["circle", "#9333ea", 17], doubtful: ["circle", "#dc2626", 17], joined: ["edge", "#16a34a"],
  idle: ["ring", "#a3a3a3", 27],
  left: ["edge", "#737373"], other: ["small", "#a8a29e", 27],
};
const KINDS = D.kinds.map(k => k.id);
const GUTTER = 250, LANE_H = 40, TOP = 48, RIGHT = 24;
const plotW = Math.max(640, Math.min(2400, window.innerWidth - GUTTER - RIGHT - 44));
const cols = Math.max(1, D.columns);
const colW = plotW / cols;
const pad = n => String(n).padStart(2, "0");

function el(name, attrs, parent) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}
function html(name, text, cls, parent) {
  const node = document.createElement(name);
  if (text !== null && text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  if (parent) parent.appendChild(node);
  return node;
}
function fit(text, room) {  // cut an SVG text with an ellipsis until it fits `room` pixels
  const full = text.textContent;
  if (text.getComputedTextLength() <= room) return;
  let low = 0, high = full.length;
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    text.textContent = full.slice(0, mid) + "\u2026";
    if (text.getComputedTextLength() <= room) low = mid; else high = mid - 1;
  }
  text.textContent = full.slice(0, low) + "\u2026";
}
function when(seconds) {  // seconds since the epoch -> "2026-11-24 10:00:03" (UTC)
  const iso = new Date(seconds * 1000).toISOString();
  return iso.slice(0, 10) + " " + iso.slice(11, 19);
}
function span(seconds) {
  if (seconds < 120) return Math.round(seconds) + " s";
  if (seconds < 7200) return Math.round(seconds / 60) + " min";
  if (seconds < 172800) return (seconds / 3600).toFixed(1) + " h";
  return (seconds / 86400).toFixed(1) + " days";
}
function shape(kind, x, y, size, parent, attrs) {
  const [form, colour] = STYLE[kind] || STYLE.other;
  const s = size;
  const a = Object.assign({}, attrs || {});
  switch (form) {
    case "diamond":
      return el("path", Object.assign(a, {d: `M${x} ${y - s}L${x + s} ${y}L${x} ${y + s}L${x - s} ${y}Z`,
                                         fill: colour}), parent);
    case "triangle":
      return el("path", Object.assign(a, {d: `M${x - s} ${y + s * .8}L${x + s} ${y + s * .8}L${x} ${y - s}Z`,
                                         fill: colour}), parent);
    case "square-open": return el("rect", Object.assign(a, {x: x - s + .75, y: y - s + .75, width: 2 * s - 1.5,
                                   height: 2 * s - 1.5, fill: "#fff", stroke: colour, "stroke-width": 1.5}), parent);
    case "cross": case "big-cross":
      return el("path", Object.assign(a, {d: `M${x - s} ${y - s}L${x + s} ${y + s}M${x + s} ${y - s}L${x - s} ${y + s}`,
                                         stroke: colour, "stroke-width": form === "big-cross" ? 3 : 2,
                                         "stroke-linecap": "round", fill: "none"}), parent);
    case "circle": return el("circle", Object.assign(a, {cx: x, cy: y, r: s, fill: colour}), parent);
    case "circle-open": case "ring":
      return el("circle", Object.assign(a, {cx: x, cy: y, r: s - .75, fill: "#fff", stroke: colour,
                                           "stroke-width": 1.5}), parent);
    case "dot": return el("circle", Object.assign(a, {cx: x, cy: y, r: s * .6, fill: colour}), parent);
    case "small": return el("rect", Object.assign(a, {x: x - s * .55, y: y - s * .55, width: s * 1.1,
                                                       height: s * 1.1, fill: colour}), parent);
    default:  // "square"
      return el("rect", Object.assign(a, {x: x - s, y: y - s, width: 2 * s, height: 2 * s, fill: colour}), parent);
  }
}

// -- header and legend ---------------------------------------------------------------------------------------------
const head = document.getElementById("head");
html("h1", "Session " + D.session, null, head);
if (D.objective) html("p", D.objective, "objective", head);
const agents = D.lanes.filter(l => l.role === "agent").length;
const binText = D.bin_seconds < 120 ? `${+D.bin_seconds.toFixed(2)} s` : span(D.bin_seconds);
if (D.t0 === null) {
  html("p", `no events with a time \u00b7 ${D.records.toLocaleString("en")} records`, "facts", head);
} else {
  const start = when(D.t0), end = when(D.t0 + D.span_seconds);
  const shownEnd = end.slice(0, 10) === start.slice(0, 10) ? end.slice(11) : end;
  const cuts = D.segments.length - 1;
  const silent = cuts ? `, ${cuts} long silence${cuts === 1 ? "" : "s"} cut short` : "";
  html("p", `${start} to ${shownEnd} UTC (${span(D.span_seconds)}${silent}) \u00b7 `
       + `${D.records.toLocaleString("en")} records \u00b7 ${agents} agent${agents === 1 ? "" : "s"}`, "facts", head);
  html("p", `Each mark stands for the events of one kind on one lane within ${binText}; a taller bar or a larger `
       + "mark holds more of them. Hover a mark to see its event.", "note", head);
}
const records = n => `${n.toLocaleString("en")} record${n === 1 ? "" : "s"}`;
if (D.damaged) html("p", `${records(D.damaged)} damaged and skipped (popkit-power verify names them).`, "warn", head);
if (D.undrawn) html("p", `${records(D.undrawn)} without a time or an agent, not drawn.`, "note", head);

const legend = document.getElementById("legend");
for (const kind of D.kinds) {
  const item = html("span", null, "item" + (kind.count ? "" : " none"), legend);
  item.dataset.kind = kind.id;
  const icon = el("svg", {width: 16, height: 16, viewBox: "0 0 16 16"}, null);
  item.appendChild(icon);
  const form = STYLE[kind.id][0];
  if (form === "bar") el("rect", {x: 5, y: 3, width: 6, height: 11, fill: STYLE[kind.id][1]}, icon);
  else if (form === "edge") el("rect", {x: 7, y: 1, width: 2, height: 14, fill: STYLE[kind.id][1]}, icon);
  else shape(kind.id, 8, 8, 5, icon);
  html("span", kind.label, null, item);
  html("span", kind.count.toLocaleString("en"), "count", item);
}

// -- the chart -----------------------------------------------------------------------------------------------------
const width = GUTTER + plotW + RIGHT, height = TOP + D.lanes.length * LANE_H + 8;
const svg = el("svg", {id: "chart", width, height, viewBox: `0 0 ${width} ${height}`}, document.getElementById("plot"));
const xOf = col => GUTTER + (col + .5) * colW;
function yOf(lane, kind) {  // the middle of a mark of `kind` (an index) on `lane`
  const [form, , row] = STYLE[KINDS[kind]] || STYLE.other;
  return TOP + lane * LANE_H + (form === "bar" ? 34 : form === "edge" || form === "big-cross" ? LANE_H / 2 : row);
}
const lanesG = el("g", {id: "lanes"}, svg);
D.lanes.forEach((lane, n) => {
  const y = TOP + n * LANE_H;
  const g = el("g", {class: "lane", "data-lane": n, "data-role": lane.role}, lanesG);
  if (n % 2 === 0) el("rect", {x: 0, y, width, height: LANE_H, fill: "#f8f9fb"}, g);
  const name = el("text", {x: 10, y: y + 16, class: "lane-name"}, g);
  name.textContent = lane.name;
  const label = el("text", {x: 10, y: y + 31, class: "lane-label"}, g);
  const facts = [lane.label, lane.state, lane.events.toLocaleString("en") + " events"];
  label.textContent = facts.filter(Boolean).join(" \u00b7 ");
  fit(name, GUTTER - 20);
  fit(label, GUTTER - 20);
  const titled = el("title", {}, g);
  titled.textContent = lane.key ? `${lane.name} (${lane.key})` : lane.name;
  if (lane.first !== null) {
    const colour = lane.state === "lost" ? "#fca5a5" : lane.state === "left" ? "#d4d4d4" : "#cbd5e1";
    el("line", {x1: xOf(lane.first) - colW / 2, x2: xOf(lane.last) + colW / 2, y1: y + 34.5, y2: y + 34.5,
                stroke: colour, "stroke-width": 1}, g);
  }
});

// the time axis: about one label per 110 px, on a round step, in each stretch between two cut silences
const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800,
               604800];
const axis = el("g", {id: "axis"}, svg);
const xOfOffset = offset => GUTTER + offset / D.bin_seconds * colW;  // a virtual offset (seconds) -> x
if (D.t0 !== null) {
  const total = cols * D.bin_seconds;
  const step = STEPS.find(s => s * plotW / total >= 110) || STEPS[STEPS.length - 1];
  let day = null, lastX = -Infinity;
  D.segments.forEach(([start, real], n) => {
    const next = D.segments[n + 1];
    const end = next ? next[0] - D.gap_shown : total;
    if (n > 0) {  // a silence cut out: a dashed line and how long it was
      const x = xOfOffset(start - D.gap_shown / 2);
      const silence = real - (D.segments[n - 1][1] + (start - D.gap_shown - D.segments[n - 1][0]));
      el("line", {x1: x, x2: x, y1: TOP - 22, y2: height - 8, stroke: "#9ca3af", "stroke-dasharray": "3 3"}, axis);
      const gap = el("text", {x: x + 3, y: TOP - 24, class: "tick break"}, axis);
      gap.textContent = "\u2026 " + span(silence) + " silent";
    }
    for (let t = Math.ceil(real / step) * step; t <= real + (end - start); t += step) {
      const x = xOfOffset(start + t - real);
      if (x - lastX < 60) continue;  // too close to the previous label (after a cut)
      lastX = x;
      el("line", {x1: x, x2: x, y1: TOP - 6, y2: height - 8, stroke: "#e5e7eb"}, axis);
      const stamp = when(t);
      const text = el("text", {x: x + 3, y: TOP - 10, class: "tick"}, axis);
      const clock = stamp.slice(11, step < 60 ? 19 : 16);  // a new day shows its date too
      text.textContent = stamp.slice(0, 10) !== day ? `${stamp.slice(5, 10)} ${clock}` : clock;
      day = stamp.slice(0, 10);
    }
  });
}

const marksG = el("g", {id: "marks"}, svg);
const byLane = D.lanes.map(() => new Map());
const behind = form => form === "edge" || form === "bar";  // drawn first: the small shapes stay on top
const order = D.marks.map((mark, index) => index);
order.sort((a, b) => behind((STYLE[KINDS[D.marks[b][1]]] || STYLE.other)[0])
                     - behind((STYLE[KINDS[D.marks[a][1]]] || STYLE.other)[0]) || a - b);
order.forEach(index => {
  const [lane, kind, col, count] = D.marks[index];
  const id = KINDS[kind];
  const [form, colour, row] = STYLE[id] || STYLE.other;
  const x = xOf(col), y0 = TOP + lane * LANE_H;
  const attrs = {class: "mark", "data-m": index, "data-kind": id};
  const grow = Math.min(1.8, 1 + Math.log10(count) / 2);
  if (form === "bar") {
    const h = Math.min(12, 2 + 1.6 * Math.log2(count + 1));
    el("rect", Object.assign(attrs, {x: x - Math.max(.6, colW * .42), y: y0 + 39 - h, width: Math.max(1.2, colW * .84),
                                     height: h, fill: colour}), marksG);
  } else if (form === "edge") {
    el("rect", Object.assign(attrs, {x: x - 1, y: y0 + 3, width: 2, height: LANE_H - 6, fill: colour}), marksG);
  } else if (form === "big-cross") {
    shape(id, x, y0 + LANE_H / 2, 8, marksG, attrs);
  } else {
    shape(id, x, y0 + row, 3.6 * grow, marksG, attrs);
  }
  const cells = byLane[lane];
  if (!cells.has(col)) cells.set(col, []);
  cells.get(col).push(index);
});

// -- the tooltip ---------------------------------------------------------------------------------------------------
const tip = document.getElementById("tip");
const ring = el("circle", {r: 7, fill: "none", stroke: "#111827", "stroke-width": 1.5, visibility: "hidden",
                           "pointer-events": "none"}, svg);
const nameOf = key => {
  const name = typeof key === "string" ? D.names[key] : undefined;
  return name && name !== key ? `${name} \u2014 ${key}` : String(key);
};
function show(index, clientX, clientY) {
  const [lane, kind, col, count, first, last, sampleIndex] = D.marks[index];
  const sample = D.samples[sampleIndex];
  tip.replaceChildren();
  const label = D.kinds[kind].label;
  const range = when(D.t0 + first) === when(D.t0 + last) ? `${when(D.t0 + first)} UTC`
    : `${when(D.t0 + first)} to ${when(D.t0 + last).slice(11)} UTC`;
  const times = count > 1 ? count.toLocaleString("en") + " \u00d7 " : "";
  html("div", `${times}${label} \u00b7 ${D.lanes[lane].name} \u00b7 ${range}`, "head", tip);
  if (count > 1) html("div", "the first of them:", null, tip);
  const table = html("table", null, null, tip);
  const row = (k, v) => { const tr = html("tr", null, null, table); html("td", k, "k", tr); html("td", v, null, tr); };
  // the page's data leaves out a sender that is the lane's agent, and a channel that is the type's own
  const full = Object.assign({ch: D.channels[sample.type], from: D.lanes[lane].key}, sample);
  for (const field of ["seq", "ts", "type", "ch"]) if (full[field] !== undefined) row(field, String(full[field]));
  if (full.from) row("from", nameOf(full.from));
  if ("to" in sample) row("to", nameOf(sample.to));
  for (const [k, v] of Object.entries(sample.data || {})) {
    row(k, k === "agent" ? nameOf(v) : (typeof v === "string" ? v : JSON.stringify(v)));
  }
  tip.style.display = "block";
  const box = tip.getBoundingClientRect();
  tip.style.left = Math.max(4, Math.min(window.innerWidth - box.width - 8, clientX + 14)) + "px";
  const below = clientY + 16 + box.height <= window.innerHeight;
  tip.style.top = (below ? clientY + 16 : Math.max(4, clientY - box.height - 12)) + "px";
  ring.setAttribute("cx", xOf(col));
  ring.setAttribute("cy", yOf(lane, kind));
  ring.setAttribute("visibility", "visible");
}
function hide() { tip.style.display = "none"; ring.setAttribute("visibility", "hidden"); }
function nearest(evt) {  // the mark nearest the pointer within a few pixels, for marks too thin to aim at
  const point = svg.getBoundingClientRect();
  const x = evt.clientX - point.left, y = evt.clientY - point.top;
  const lane = Math.floor((y - TOP) / LANE_H);
  if (lane < 0 || lane >= D.lanes.length || x < GUTTER) return null;
  const col = Math.floor((x - GUTTER) / colW), reach = Math.max(1, Math.ceil(6 / colW));
  let best = null, bestDistance = Infinity;
  for (let c = col - reach; c <= col + reach; c++) {
    for (const index of byLane[lane].get(c) || []) {
      const distance = Math.hypot(xOf(c) - x, yOf(lane, D.marks[index][1]) - y);
      if (distance < bestDistance) { best = index; bestDistance = distance; }
    }
  }
  return bestDistance <= 14 ? best : null;
}
svg.addEventListener("mousemove", evt => {
  const target = evt.target.closest ? evt.target.closest("[data-m]") : null;
  const index = target ? Number(target.dataset.m) : nearest(evt);
  if (index === null) hide(); else show(index, evt.clientX, evt.clientY);
});
svg.addEventListener("mouseleave", hide);
document.body.dataset.ready = "yes";
"""


def render(model: dict[str, Any]) -> str:
    """The timeline page for `model` (timeline.build_timeline)."""
    data = orjson.dumps(model).decode()
    # Inside JSON these three occur only within strings, where \u escapes mean the same: no `</script>` or `<!--`
    # in agents' text can end the data block.
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    title = html.escape(f"popkit-power timeline: {model['session']}")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<link rel=\"icon\" href=\"data:,\">\n"
        f"<title>{title}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        "<header id=\"head\"></header>\n<div id=\"legend\" class=\"legend\"></div>\n<div id=\"plot\"></div>\n"
        "<div id=\"tip\" role=\"tooltip\"></div>\n"
        f"<script id=\"timeline-data\" type=\"application/json\">{data}</script>\n"
        f"<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )
