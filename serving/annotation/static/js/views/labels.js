// The labels page: every label with its counts, model quality and data diversity; a form to create one.

import { api } from "../api.js";
import { fmtMetric, h, replace, toast } from "../dom.js";
import { caveatMark, labelStats } from "./stats.js";

function meter(value, title) {
  const v = value === undefined || value === null ? null : Math.max(0, Math.min(1, Number(value)));
  return h(
    "span",
    { class: "meter", title },
    h("span", { class: "meter-bar" }, h("span", { class: "meter-fill", style: `width:${v === null ? 0 : v * 100}%` })),
    h("span", { class: "meter-num" }, fmtMetric(v)),
  );
}

function labelRow(label, info, go) {
  const s = labelStats(label, info);
  const href = `#/labels/${encodeURIComponent(label.name)}`;
  return h(
    "tr",
    { class: "label-row", dataset: { label: label.name }, onclick: (e) => e.target.tagName !== "A" && go(`/labels/${encodeURIComponent(label.name)}`) },
    h("td", {}, h("a", { href, class: "label-name" }, label.name), h("div", { class: "muted small" }, label.description || "")),
    h("td", { class: "num" }, h("span", { class: "pill pos" }, `+${s.nPos}`), " ", h("span", { class: "pill neg" }, `−${s.nNeg}`)),
    h("td", {}, meter(s.quality, "Model quality: 25th percentile of balanced accuracy over repeated stratified K-fold cross-validation"), caveatMark(label.latest_version)),
    h("td", {}, meter(s.diversity, "Data diversity: how well the labelled shots cover the corpus's clusters")),
    h("td", { class: "num" }, s.version ? `v${s.version}` : h("span", { class: "muted" }, s.ready ? "ready to build" : "not built")),
  );
}

export async function renderLabels(main, { session, go }) {
  const canCreate = session.me.role !== "viewer";
  const listBox = h("section", { class: "labels-list" });
  const error = h("p", { class: "form-error", role: "alert" });
  const name = h("input", { id: "label-name", name: "name", required: true, placeholder: "e.g. car-chase", pattern: "[A-Za-z0-9][A-Za-z0-9_.\\-]*", title: "Letters, digits, '-', '_' and '.'" });
  const description = h("textarea", { id: "label-description", name: "description", rows: "3", placeholder: "What counts as positive? What does not?" });
  const keywords = h("input", { id: "label-keywords", name: "keywords", placeholder: "comma separated, e.g. car, chase, night" });
  const form = h(
    "form",
    { class: "card-panel create-label", id: "create-label" },
    h("h2", {}, "New label"),
    h("label", { for: "label-name" }, "Name"),
    name,
    h("label", { for: "label-description" }, "Description"),
    description,
    h("label", { for: "label-keywords" }, "Keywords"),
    keywords,
    error,
    h("button", { type: "submit", class: "primary", disabled: !canCreate }, "Create label"),
    !canCreate && h("p", { class: "muted small" }, "Viewers cannot create labels."),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const created = await api.createLabel({
        name: name.value.trim(),
        description: description.value.trim(),
        keywords: keywords.value.split(",").map((k) => k.trim()).filter(Boolean),
      });
      toast(`Label “${created.name || name.value}” created`);
      go(`/labels/${encodeURIComponent(created.name || name.value.trim())}/search`);
    } catch (e) {
      error.textContent = e.message;
    }
  });

  replace(main, h("div", { class: "labels-page" }, listBox, form));
  document.getElementById("crumbs").replaceChildren(h("span", {}, "Labels"));

  const answer = await api.labels();
  const labels = Array.isArray(answer) ? answer : answer.labels || [];
  if (!labels.length) {
    replace(listBox, h("h1", {}, "Labels"), h("div", { class: "empty big" }, h("p", {}, "No labels yet."), h("p", { class: "muted" }, "Create one on the right: give it a name and describe what counts as positive.")));
  } else {
    replace(
      listBox,
      h("h1", {}, "Labels"),
      h(
        "table",
        { class: "labels" },
        h("thead", {}, h("tr", {}, h("th", {}, "Label"), h("th", {}, "Annotated"), h("th", {}, "Model quality"), h("th", {}, "Data diversity"), h("th", {}, "Version"))),
        h("tbody", {}, labels.map((l) => labelRow(l, session.info, go))),
      ),
    );
  }
  return { onKey: () => false };
}
