// The corpus map of a label (issue 15): every shot a point on a canvas, coloured by cluster, by annotation or by
// the latest build's score; hover shows the thumbnail; a lasso (drag) or a rectangle (shift-drag) selects the
// shots inside it on the server, against their stored coordinates, and they become a feed to label from. The
// clusters the data-diversity score counts are outlined with their labelled counts.

import { api, request } from "../api.js";
import { fmtMetric, h, replace, toast } from "../dom.js";
import { shotGrid } from "../shots.js";

const enc = encodeURIComponent;
const PAGE = 60;
const HOVER_PX = 6;
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
const MODES = { cluster: "Cluster", annotation: "Annotation", score: "Model score" };

function scoreColour(s) {
  if (s === null || s === undefined) return "#c8c8c8";
  const r = Math.round(40 + 200 * s);
  const b = Math.round(240 - 200 * s);
  return `rgb(${r},70,${b})`;
}

function colourOf(mode, points, i) {
  if (mode === "annotation") {
    const a = points.annotation[i];
    return a === 1 ? "#1a9850" : a === 0 ? "#d73027" : "#c8c8c8";
  }
  if (mode === "score") return scoreColour(points.score[i]);
  const c = points.cluster[i];
  return c < 0 ? "#999" : PALETTE[c % PALETTE.length];
}

export async function renderMap(panel, ctx) {
  const answer = await request("GET", `/api/labels/${enc(ctx.name)}/map`);
  const points = answer.points;
  const n = points.shot_id.length;
  let mode = "cluster";
  let path = null; // the lasso or rectangle being drawn, in map coordinates
  let shape = null; // the last selection sent: { polygon } or { rect }

  const canvas = h("canvas", { id: "map-canvas", class: "map-canvas", width: "900", height: "600", "aria-label": "Map of the corpus: drag to lasso shots, shift-drag for a rectangle", style: "max-width:100%;border:1px solid #ddd;cursor:crosshair;background:#fafafa" });
  const tip = h("div", { class: "map-tip hidden", id: "map-tip", style: "position:absolute;background:#fff;border:1px solid #bbb;padding:4px;pointer-events:none;max-width:200px;z-index:5" });
  const modeSelect = h("select", { id: "map-colour", title: "What the colour of a point shows" }, ...Object.entries(MODES).map(([k, v]) => h("option", { value: k }, v)));
  const outlines = h("input", { type: "checkbox", id: "map-outlines", checked: true });
  const summary = h(
    "p",
    { class: "muted small", id: "map-summary" },
    `${n.toLocaleString()} of ${answer.total.toLocaleString()} shots${answer.sampled ? " (a sample; every labelled shot is drawn)" : ""}; layout ${answer.layout_version}` +
      (answer.build_version ? `; scores from build ${answer.build_version}` : "; no build yet, so no scores") +
      ". Drag a lasso around shots (shift-drag: a rectangle) to label them.",
  );
  const feedHead = h("p", { class: "muted small", id: "map-selection-summary" });
  const feed = h("div", { id: "map-feed" });
  const more = h("button", { type: "button", class: "hidden", id: "map-more" }, "More");
  replace(
    panel,
    h("div", { class: "map-bar" }, h("label", {}, "Colour by ", modeSelect), h("label", { title: "Outline the k-means clusters the data-diversity score counts" }, outlines, " Diversity clusters")),
    summary,
    h("div", { class: "map-wrap", style: "position:relative" }, canvas, tip),
    feedHead,
    feed,
    more,
  );

  // Data -> canvas pixels, with a margin; the map's bounds are those of every point sent.
  const xs = points.x;
  const ys = points.y;
  let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
  for (let i = 0; i < n; i++) {
    if (xs[i] < minX) minX = xs[i];
    if (xs[i] > maxX) maxX = xs[i];
    if (ys[i] < minY) minY = ys[i];
    if (ys[i] > maxY) maxY = ys[i];
  }
  if (!n) minX = minY = 0, maxX = maxY = 1;
  const pad = 20;
  const W = canvas.width, H = canvas.height;
  const sx = (W - 2 * pad) / Math.max(maxX - minX, 1e-9);
  const sy = (H - 2 * pad) / Math.max(maxY - minY, 1e-9);
  const toPx = (x, y) => [pad + (x - minX) * sx, H - pad - (y - minY) * sy];
  const toData = (px, py) => [minX + (px - pad) / sx, minY + (H - pad - py) / sy];
  const px = new Float32Array(n), py = new Float32Array(n);
  for (let i = 0; i < n; i++) [px[i], py[i]] = toPx(xs[i], ys[i]);

  // A coarse grid of the points for hover lookups in O(1) per move.
  const CELL = 8;
  const grid = new Map();
  for (let i = 0; i < n; i++) {
    const key = `${Math.floor(px[i] / CELL)},${Math.floor(py[i] / CELL)}`;
    if (!grid.has(key)) grid.set(key, []);
    grid.get(key).push(i);
  }

  const g = canvas.getContext("2d");
  function draw() {
    g.clearRect(0, 0, W, H);
    const r = n > 50000 ? 1 : n > 5000 ? 1.5 : 3;
    // Unlabelled shots first, so the labelled ones are drawn on top.
    for (const pass of [0, 1]) {
      for (let i = 0; i < n; i++) {
        if ((points.annotation[i] === null) === Boolean(pass)) continue;
        g.fillStyle = colourOf(mode, points, i);
        g.fillRect(px[i] - r, py[i] - r, 2 * r, 2 * r);
      }
    }
    if (outlines.checked) {
      g.lineWidth = 1.5;
      g.font = "12px sans-serif";
      for (const c of answer.clusters) {
        if (c.hull.length < 2) continue;
        g.strokeStyle = PALETTE[c.cluster % PALETTE.length];
        g.beginPath();
        c.hull.forEach(([x, y], j) => (j ? g.lineTo(...toPx(x, y)) : g.moveTo(...toPx(x, y))));
        g.closePath();
        g.stroke();
        const [cx, cy] = toPx(c.centre[0], c.centre[1]);
        const text = `+${c.counted_positive} −${c.counted_negative} / ${answer.diversity.cap}`;
        g.fillStyle = "rgba(255,255,255,0.8)";
        g.fillRect(cx - 2, cy - 12, g.measureText(text).width + 4, 15);
        g.fillStyle = "#222";
        g.fillText(text, cx, cy);
      }
    }
    if (path && path.length > 1) {
      g.strokeStyle = "#111";
      g.setLineDash([4, 3]);
      g.beginPath();
      path.forEach(([x, y], j) => (j ? g.lineTo(...toPx(x, y)) : g.moveTo(...toPx(x, y))));
      g.closePath();
      g.stroke();
      g.setLineDash([]);
    }
  }

  function eventPx(event) {
    const box = canvas.getBoundingClientRect();
    return [((event.clientX - box.left) * W) / box.width, ((event.clientY - box.top) * H) / box.height];
  }

  function nearest(ex, ey) {
    let best = -1, bestD = HOVER_PX * HOVER_PX;
    const cx = Math.floor(ex / CELL), cy = Math.floor(ey / CELL);
    for (let dx = -1; dx <= 1; dx++) {
      for (let dy = -1; dy <= 1; dy++) {
        for (const i of grid.get(`${cx + dx},${cy + dy}`) || []) {
          const d = (px[i] - ex) ** 2 + (py[i] - ey) ** 2;
          if (d < bestD) (bestD = d), (best = i);
        }
      }
    }
    return best;
  }

  let drawing = false, rectMode = false, start = null;
  canvas.addEventListener("mousedown", (event) => {
    drawing = true;
    rectMode = event.shiftKey;
    start = toData(...eventPx(event));
    path = [start];
    tip.classList.add("hidden");
  });
  canvas.addEventListener("mousemove", (event) => {
    const [ex, ey] = eventPx(event);
    if (drawing) {
      const here = toData(ex, ey);
      path = rectMode ? [start, [here[0], start[1]], here, [start[0], here[1]]] : [...path, here];
      draw();
      return;
    }
    const i = nearest(ex, ey);
    if (i < 0) return tip.classList.add("hidden");
    const s = points.score[i];
    replace(
      tip,
      h("img", { src: api.thumbUrl(points.shot_id[i]), alt: "" }),
      h("div", { class: "small" }, points.shot_id[i]),
      h("div", { class: "small muted" }, `cluster ${points.cluster[i]}` + (s === null ? "" : ` · score ${fmtMetric(s)}`)),
    );
    tip.dataset.shot = points.shot_id[i];
    tip.style.left = `${(ex * canvas.clientWidth) / W + 12}px`;
    tip.style.top = `${(ey * canvas.clientHeight) / H + 12}px`;
    tip.classList.remove("hidden");
  });
  canvas.addEventListener("mouseleave", () => tip.classList.add("hidden"));
  window.addEventListener("mouseup", onUp);
  async function onUp() {
    if (!drawing) return;
    drawing = false;
    if (!path || path.length < 3) {
      path = null;
      draw();
      return;
    }
    if (rectMode) {
      const [a, , c] = path;
      shape = { rect: [a[0], a[1], c[0], c[1]] };
    } else {
      shape = { polygon: path.filter((_, j) => j % Math.ceil(path.length / 500) === 0) };
    }
    draw();
    await loadSelection(0);
  }

  async function loadSelection(offset) {
    let page;
    try {
      page = await request("POST", `/api/labels/${enc(ctx.name)}/map/select`, { json: { ...shape, offset, limit: PAGE } });
    } catch (e) {
      toast(`Selection failed: ${e.message}`, "error");
      return;
    }
    if (offset === 0) feed.replaceChildren();
    feedHead.textContent = `${page.total.toLocaleString()} shots inside the selection` + (page.total ? "; label them below." : "; draw around some points.");
    feedHead.dataset.total = String(page.total);
    const items = page.items.map((it) => ({ ...it, labeled: undefined }));
    feed.append(shotGrid(items, ctx, { source: "map", showScore: answer.build_version !== null, emptyText: "No shots inside." }));
    more.classList.toggle("hidden", page.next_offset === null);
    more.onclick = () => loadSelection(page.next_offset);
  }

  modeSelect.addEventListener("change", () => {
    mode = modeSelect.value;
    draw();
  });
  outlines.addEventListener("change", draw);
  draw();

  return {
    dispose() {
      window.removeEventListener("mouseup", onUp);
    },
  };
}
