// Export a label's annotations (CSV, Parquet) and import existing labels from CSV,
// with a report of the rows that matched no shot.

import { api } from "../api.js";
import { h, replace } from "../dom.js";

export async function renderData(panel, ctx) {
  const file = h("input", { type: "file", id: "import-file", accept: ".csv,text/csv" });
  const submit = h("button", { type: "submit", class: "primary", disabled: !ctx.canEdit }, "Import");
  const report = h("div", { id: "import-report", "aria-live": "polite" });
  const form = h(
    "form",
    { class: "card-panel", id: "import-form" },
    h("h2", {}, "Import labels from CSV"),
    h("p", { class: "muted small" }, "One row per shot with a header. Either ", h("code", {}, "shot_id,value"), " or ", h("code", {}, "video_id,start_s,end_s,value"), " (the shot overlapping that span). Values: 1/0, true/false, positive/negative. A ", h("code", {}, "picked_from"), " (or ", h("code", {}, "source"), ") column, as the export writes, keeps where each shot was picked, so model quality's caveat still knows which labels came from a random sample; without one VA cannot tell, and counts them as if they might have."),
    file,
    submit,
    report,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!file.files.length) return replace(report, h("p", { class: "form-error" }, "Choose a CSV file first."));
    submit.disabled = true;
    replace(report, h("p", { class: "muted" }, "Importing…"));
    try {
      const result = await api.importCsv(ctx.name, await file.files[0].text());
      const unmatched = result.unmatched || [];
      const nUnmatched = result.n_unmatched ?? unmatched.length;
      replace(
        report,
        h("p", { class: nUnmatched ? "notice" : "ok" }, `Imported ${result.imported} annotation(s)${result.unchanged ? `, ${result.unchanged} already so` : ""}; ${nUnmatched} row(s) not imported${nUnmatched > unmatched.length ? ` (first ${unmatched.length} listed)` : ""}.`),
        pickedText(result.sources),
        unmatched.length > 0 &&
          h(
            "table",
            { class: "unmatched" },
            h("thead", {}, h("tr", {}, h("th", {}, "Line"), h("th", {}, "Row"), h("th", {}, "Why"))),
            h("tbody", {}, unmatched.map((u) => h("tr", {}, h("td", {}, String(u.line)), h("td", {}, h("code", {}, Object.values(u.row || {}).join(","))), h("td", {}, u.reason)))),
          ),
      );
      ctx.loadMine().catch(() => {});
      ctx.refreshSoon();
    } catch (e) {
      replace(report, h("p", { class: "form-error" }, e.message));
    } finally {
      submit.disabled = !ctx.canEdit;
    }
  });

  replace(
    panel,
    h(
      "div",
      { class: "data-page" },
      h(
        "section",
        { class: "card-panel" },
        h("h2", {}, "Export"),
        h("p", { class: "muted small" }, "Every annotation of this label with its annotator, time and the latest model's score."),
        h("p", {}, h("a", { class: "button", id: "export-csv", href: api.exportUrl(ctx.name, "csv"), download: `${ctx.name}.csv` }, "⬇ CSV"), " ", h("a", { class: "button", id: "export-parquet", href: api.exportUrl(ctx.name, "parquet"), download: `${ctx.name}.parquet` }, "⬇ Parquet")),
      ),
      form,
    ),
  );
  return {};
}

// "Where they were picked: search 24, random 1, not said 2", from the import's sources ("import:search": 24, …).
function pickedText(sources) {
  const entries = Object.entries(sources || {}).sort((a, b) => b[1] - a[1]);
  if (!entries.length) return null;
  const parts = entries.map(([source, n]) => `${source.startsWith("import:") ? source.slice(7).replaceAll("_", " ") : "not said"} ${n}`);
  return h("p", { class: "muted small", id: "import-picked" }, `Where they were picked: ${parts.join(", ")}.`);
}
