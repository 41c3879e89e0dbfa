// Every classifier version of the label with its metrics and counts, a plot of quality and
// diversity over versions, and publishing a version for the scoring service.

import { api } from "../api.js";
import { fmtDate, fmtMetric, h, replace, svg, toast } from "../dom.js";
import { caveatMark } from "./stats.js";

function plot(versions) {
  const W = 560;
  const H = 220;
  const pad = { l: 40, r: 16, t: 14, b: 30 };
  const xs = versions.map((v) => v.version);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs);
  const x = (v) => pad.l + (x1 === x0 ? (W - pad.l - pad.r) / 2 : ((v - x0) / (x1 - x0)) * (W - pad.l - pad.r));
  const y = (v) => pad.t + (1 - Math.max(0, Math.min(1, v))) * (H - pad.t - pad.b);
  const grid = [0, 0.25, 0.5, 0.75, 1].map((g) => [
    svg("line", { x1: pad.l, x2: W - pad.r, y1: y(g), y2: y(g), class: "gridline" }),
    svg("text", { x: pad.l - 6, y: y(g) + 4, class: "axis", "text-anchor": "end", text: g.toFixed(2) }),
  ]);
  const ticks = versions.map((v) => svg("text", { x: x(v.version), y: H - 10, class: "axis", "text-anchor": "middle", text: `v${v.version}` }));
  const series = [
    ["model_quality", "quality", "Model quality"],
    ["data_diversity", "diversity", "Data diversity"],
  ].map(([key, cls, title]) => {
    const pts = versions.filter((v) => v[key] !== null && v[key] !== undefined);
    return svg(
      "g",
      { class: `series ${cls}` },
      svg("polyline", { points: pts.map((v) => `${x(v.version)},${y(v[key])}`).join(" ") }),
      pts.map((v) => svg("circle", { cx: x(v.version), cy: y(v[key]), r: 4 }, svg("title", { text: `${title} v${v.version}: ${fmtMetric(v[key])}` }))),
    );
  });
  return h(
    "figure",
    { class: "plot" },
    svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": "Model quality and data diversity over versions", id: "history-plot" }, grid, ticks, series),
    h("figcaption", {}, h("span", { class: "key quality" }, "Model quality"), h("span", { class: "key diversity" }, "Data diversity")),
  );
}

export async function renderHistory(panel, ctx) {
  const answer = await api.versions(ctx.name);
  const versions = (Array.isArray(answer) ? answer : answer.versions || []).slice().sort((a, b) => a.version - b.version);
  if (!versions.length) {
    replace(panel, h("div", { class: "empty big" }, h("p", {}, "No versions yet."), h("p", { class: "muted" }, "Each build saves a version with its metrics; they show up here.")));
    return {};
  }
  const canPublish = ctx.me.role === "admin";
  async function publish(v, button) {
    button.disabled = true;
    try {
      const result = await api.publish(ctx.name, v.version);
      toast(`Published v${v.version}${result && result.tag ? ` as ${result.tag}` : ""}`);
      await renderHistory(panel, ctx);
    } catch (e) {
      toast(`Publish failed: ${e.message}`, "error");
      button.disabled = false;
    }
  }
  const rows = versions
    .slice()
    .reverse()
    .map((v) => {
      const button = h("button", { type: "button", class: "small", disabled: !canPublish, title: canPublish ? "Export to ONNX and register it for the scoring service" : "Only admins can publish" }, v.published_at ? "Publish again" : "Publish");
      button.addEventListener("click", () => publish(v, button));
      return h(
        "tr",
        { dataset: { version: v.version } },
        h("td", {}, `v${v.version}`),
        h("td", {}, fmtDate(v.created_at), h("div", { class: "muted small" }, v.created_by || "")),
        h("td", { class: "num" }, h("span", { class: "pill pos" }, `+${v.n_pos}`), " ", h("span", { class: "pill neg" }, `−${v.n_neg}`)),
        h("td", { class: "num" }, caveatMark(v), fmtMetric(v.model_quality)),
        h("td", { class: "num" }, fmtMetric(v.data_diversity)),
        h("td", {}, v.published_at ? h("span", { class: "published", title: fmtDate(v.published_at) }, "✓ published") : h("span", { class: "muted" }, "—")),
        h("td", {}, button),
      );
    });
  replace(
    panel,
    plot(versions),
    h(
      "table",
      { class: "versions", id: "versions-table" },
      h("thead", {}, h("tr", {}, ["Version", "Built", "Labels", "Quality", "Diversity", "Published", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows),
    ),
  );
  return {};
}
