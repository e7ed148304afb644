// flightrec report: draws the timeline, the heat map and the flame graphs from the data embedded
// in the page (JSON, gzip-compressed and base64-encoded; opened with the browser's own
// DecompressionStream). No library, nothing fetched. When everything is drawn, <body> gets
// data-ready="1".
"use strict";
let DATA, STACKS, T, CELL, flames, heatmaps;
const CELLH = 6;
const SVGNS = "http://www.w3.org/2000/svg";

function fmtNs(ns) {
  if (ns >= 1e9) return (ns / 1e9).toFixed(2) + " s";
  if (ns >= 1e6) return (ns / 1e6).toFixed(2) + " ms";
  if (ns >= 1e3) return (ns / 1e3).toFixed(1) + " us";
  return ns + " ns";
}

// ---- flame graphs -------------------------------------------------------------------------
// A tree of frames from stacks ([comm, root, ..., leaf], value), root at the top.
function buildTree(stacks) {
  const root = { name: "all", value: 0, children: new Map() };
  for (const [frames, value] of stacks) {
    root.value += value;
    let node = root;
    for (const name of frames) {
      let child = node.children.get(name);
      if (!child) {
        child = { name, value: 0, children: new Map(), parent: node };
        node.children.set(name, child);
      }
      child.value += value;
      node = child;
    }
  }
  return root;
}

function color(name) {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  if (name.startsWith("[truncated")) return "#bbbbbb";
  return "hsl(" + (10 + (h % 40)) + ", 80%, " + (55 + (h % 15)) + "%)";
}

class FlameGraph {
  constructor(el, unit) {
    this.el = el;
    this.unit = unit;
    this.search = "";
  }
  show(stacks) {
    this.tree = buildTree(stacks);
    this.focus = this.tree;
    this.draw();
  }
  label(v) {
    return this.unit === "ns" ? fmtNs(v) : v + " samples";
  }
  draw() {
    const el = this.el;
    el.textContent = "";
    const total = this.focus.value;
    el.dataset.total = String(total);
    if (!total) {
      el.textContent = "No stacks in this selection.";
      el.style.height = "";
      return;
    }
    let depth = 0;
    let matched = 0;
    const place = (node, x, d) => {
      const w = node.value / total;
      if (w < 0.001) return;
      depth = Math.max(depth, d);
      const div = document.createElement("div");
      div.className = "frame";
      div.style.left = (100 * x) + "%";
      div.style.width = (100 * w) + "%";
      div.style.top = (d * 18) + "px";
      div.style.background = color(node.name);
      div.textContent = node.name;
      div.title = node.name + ": " + this.label(node.value) + " (" + (100 * w).toFixed(1) + "%)";
      if (this.search && node.name.includes(this.search)) {
        div.classList.add("match");
        matched += node.value;
      }
      div.onclick = () => {
        this.focus = node === this.focus && node.parent ? node.parent : node;
        this.draw();
      };
      el.appendChild(div);
      let cx = x;
      const kids = [...node.children.values()].sort((a, b) => b.value - a.value);
      for (const k of kids) {
        place(k, cx, d + 1);
        cx += k.value / total;
      }
    };
    // The focused node's ancestors stay on top, full width.
    const path = [];
    for (let n = this.focus; n; n = n.parent) path.unshift(n);
    path.forEach((n, i) => {
      if (n === this.focus) return;
      const div = document.createElement("div");
      div.className = "frame";
      div.style.left = "0";
      div.style.width = "100%";
      div.style.top = (i * 18) + "px";
      div.style.background = "#eee";
      div.textContent = n.name;
      div.onclick = () => { this.focus = n; this.draw(); };
      el.appendChild(div);
    });
    place(this.focus, 0, path.length - 1);
    el.style.height = ((depth + 1) * 18 + 4) + "px";
    el.dataset.matched = String(matched);
  }
}

// ---- process selection and search -----------------------------------------------------------
const processSelect = document.getElementById("process");
// A flame graph's stacks ({stack: [index], value: [n]}) as [frames, value] pairs.
function pairs(w) {
  return w.stack.map((s, i) => [STACKS[s], w.value[i]]);
}
function byProcess(stacks) {
  const p = processSelect.value;
  return p ? stacks.filter(([f]) => f[0] === p) : stacks;
}
function showFlames() {
  flames.oncpu.show(byProcess(pairs(DATA.oncpu)));
  flames.offcpu.show(byProcess(pairs(DATA.offcpu)));
}
function setupFlames() {
  flames = {
    oncpu: new FlameGraph(document.getElementById("oncpu-flame"), DATA.oncpu.unit),
    offcpu: new FlameGraph(document.getElementById("offcpu-flame"), DATA.offcpu.unit),
    range: new FlameGraph(document.getElementById("range-flame"), "samples"),
    offrange: new FlameGraph(document.getElementById("off-range-flame"), "ns"),
  };
  const comms = new Set();
  for (const k of ["oncpu", "offcpu"]) for (const s of DATA[k].stack) comms.add(STACKS[s][0]);
  for (const c of [...comms].sort()) {
    const o = document.createElement("option");
    o.value = c;
    o.textContent = c;
    processSelect.appendChild(o);
  }
}
processSelect.onchange = showFlames;
document.getElementById("search").oninput = (e) => {
  let text = [];
  for (const [k, f] of Object.entries(flames)) {
    f.search = e.target.value;
    f.draw();
    if (e.target.value && (k === "oncpu" || k === "offcpu")) {
      text.push(k + " " + (100 * Number(f.el.dataset.matched) / f.focus.value).toFixed(1) + "%");
    }
  }
  document.getElementById("search-result").textContent = text.length ? "matched: " + text.join(", ") : "";
};

// ---- heat maps ------------------------------------------------------------------------------
// Cells are columns: col (second), row (20 ms slice), stack index, value; two clicks select the
// cells from the first to the last in time order, and the flame graph below shows their stacks.
class HeatMap {
  constructor(id, cells, flame, rangeEl, unit) {
    Object.assign(this, { cells, flame, rangeEl, unit, selection: [] });
    const canvas = (this.canvas = document.getElementById(id));
    canvas.width = T.cols * CELL;
    canvas.height = T.rows * CELLH;
    canvas.dataset.cols = T.cols;
    canvas.dataset.rows = T.rows;
    this.sums = new Map();
    this.max = 0;
    for (let i = 0; i < cells.col.length; i++) {
      const k = cells.col[i] * T.rows + cells.row[i];
      const v = (this.sums.get(k) || 0) + cells.value[i];
      this.sums.set(k, v);
      this.max = Math.max(this.max, v);
    }
    canvas.onclick = (e) => {
      const box = canvas.getBoundingClientRect();
      const c = Math.max(0, Math.min(T.cols - 1, Math.floor((e.clientX - box.left) / CELL)));
      const r = Math.max(0, Math.min(T.rows - 1, Math.floor((e.clientY - box.top) / CELLH)));
      const k = c * T.rows + r;
      const s = this.selection;
      this.selection = s.length === 1 ? [Math.min(s[0], k), Math.max(s[0], k)] : [k];
      this.draw();
      if (this.selection.length === 2) this.show(this.selection[0], this.selection[1]);
    };
    this.draw();
    this.show(0, T.cols * T.rows - 1, true);
    if (!cells.col.length) this.rangeEl.textContent = "Nothing recorded for this map in the window.";
  }
  draw() {
    const g = this.canvas.getContext("2d");
    g.fillStyle = "#ffffff";
    g.fillRect(0, 0, this.canvas.width, this.canvas.height);
    for (const [k, v] of this.sums) {
      const c = Math.floor(k / T.rows), r = k % T.rows;
      const a = v / this.max;
      g.fillStyle = a > 0.5 ? "rgb(229," + Math.round(9 + 142 * (1 - a)) + ",20)"
        : "rgb(255," + Math.round(255 - 350 * a) + "," + Math.round(255 - 410 * a) + ")";
      g.fillRect(c * CELL, r * CELLH, CELL - 1, CELLH - 1);
    }
    if (this.selection.length) {
      const [a, b] = this.selection.length === 2 ? this.selection : [this.selection[0], this.selection[0]];
      g.strokeStyle = "#1565c0";
      g.lineWidth = 2;
      for (let k = a; k <= b; k++) {
        const c = Math.floor(k / T.rows), r = k % T.rows;
        g.strokeRect(c * CELL, r * CELLH, CELL - 1, CELLH - 1);
      }
    }
  }
  // The flame graph of the cells a..b (in time order), both included.
  show(a, b, initial) {
    const sums = new Map();
    const { col, row, stack, value } = this.cells;
    for (let i = 0; i < col.length; i++) {
      const k = col[i] * T.rows + row[i];
      if (k >= a && k <= b) sums.set(stack[i], (sums.get(stack[i]) || 0) + value[i]);
    }
    const stacks = [...sums].map(([s, n]) => [STACKS[s], n]);
    this.flame.show(stacks);
    if (initial) return;
    const t = (k) => Math.floor(k / T.rows) + (k % T.rows) / T.rows;
    const total = stacks.reduce((x, [, n]) => x + n, 0);
    this.rangeEl.textContent = "Range " + t(a).toFixed(2) + " s to " + (t(b) + 1 / T.rows).toFixed(2) +
      " s after " + new Date(T.t0 * 1000).toISOString() + ": " +
      (this.unit === "ns" ? fmtNs(total) + " off CPU" : total + " samples") + ".";
  }
}
function setupHeatmaps() {
  heatmaps = {
    oncpu: new HeatMap("heatmap", T.cells, flames.range, document.getElementById("range"), "samples"),
    offcpu: new HeatMap("off-heatmap", T.off_cells, flames.offrange,
      document.getElementById("off-range"), "ns"),
  };
}

// ---- timeline -------------------------------------------------------------------------------
function drawTimeline() {
  const cpus = Object.keys(T.busy);
  const W = Math.max(600, T.cols * CELL), ROW = 16, H = (cpus.length + 3) * ROW + 10;
  const svg = document.createElementNS(SVGNS, "svg");
  svg.setAttribute("width", W);
  svg.setAttribute("height", H);
  const x = (col) => col * W / T.cols;
  const add = (tag, attrs, title) => {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (title) {
      const t = document.createElementNS(SVGNS, "title");
      t.textContent = title;
      e.appendChild(t);
    }
    svg.appendChild(e);
    return e;
  };
  cpus.forEach((cpu, i) => {
    T.busy[cpu].forEach((b, col) => {
      const a = Math.min(1, b);
      add("rect", { x: x(col), y: i * ROW, width: Math.max(1, x(1) - 1), height: ROW - 2,
        fill: "rgba(198,40,40," + a.toFixed(3) + ")" }, "CPU " + cpu + ", second " + col + ": " + (100 * a).toFixed(0) + "% busy");
    });
    add("text", { x: 2, y: i * ROW + 12, "font-size": 10 }).textContent = "CPU " + cpu;
  });
  const maxEv = Math.max(1, ...T.events);
  const y0 = (cpus.length + 3) * ROW;
  const pts = T.events.map((n, col) => x(col + 0.5) + "," + (y0 - (2.5 * ROW) * n / maxEv)).join(" ");
  add("polyline", { points: pts, fill: "none", stroke: "#1565c0" }, "events per second (max " + maxEv + ")");
  add("text", { x: 2, y: y0 - 2, "font-size": 10 }).textContent = "events/s (max " + maxEv + ")";
  for (const m of DATA.markers) {
    const t = Date.parse(m.time.replace(" ", "T") + (m.time.endsWith("Z") ? "" : "Z")) / 1000 - T.t0;
    if (!(t >= 0 && t <= T.cols)) continue;
    const stroke = m.kind === "io" ? "#6a1b9a" : "#b00020";
    add("line", { x1: x(t), x2: x(t), y1: 0, y2: H, stroke, "stroke-width": 2 }, m.label);
  }
  document.getElementById("timeline").appendChild(svg);
}

async function load() {
  const text = document.getElementById("data").textContent.trim();
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const json = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  DATA = JSON.parse(await new Response(json).text());
  STACKS = DATA.stacks.map((s) => s.map((f) => DATA.frames[f]));
  T = DATA.timeline;
  CELL = Math.max(4, Math.min(14, Math.floor(1100 / Math.max(1, T.cols))));
  setupFlames();
  setupHeatmaps();
  drawTimeline();
  showFlames();
  document.body.dataset.ready = "1";
}
load().catch((e) => {
  console.error("flightrec report: " + e);
  document.body.dataset.ready = "error";
});
