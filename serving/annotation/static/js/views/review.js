// Step 3 of the loop: every labelled shot of the label, filterable by value and annotator;
// the disagreements; change or undo any annotation (each change is an event, nothing is lost).

import { api } from "../api.js";
import { fmtMetric, h, replace, toast } from "../dom.js";
import { shotGrid } from "../shots.js";

// Annotation rows (one per shot and annotator) -> one item per shot with its votes.
function groupByShot(rows) {
  const shots = new Map();
  for (const row of rows) {
    if (row.value === null || row.value === undefined) continue;
    let shot = shots.get(row.shot_id);
    if (!shot) {
      const { annotator, value, version, source, updated_at, ...info } = row;
      shot = { ...info, votes: [] };
      shots.set(row.shot_id, shot);
    }
    shot.votes.push({ annotator: row.annotator, value: row.value, version: row.version, source: row.source });
  }
  return [...shots.values()];
}

export async function renderReview(panel, ctx) {
  const value = h("select", { id: "review-value", title: "Show shots by value" }, h("option", { value: "" }, "All values"), h("option", { value: "true" }, "Positive"), h("option", { value: "false" }, "Negative"));
  const annotator = h("select", { id: "review-annotator", title: "Show one annotator's labels" }, h("option", { value: "" }, "All annotators"));
  const view = h("div", { class: "segmented", role: "radiogroup" });
  const body = h("div", { id: "review-body" });
  const summary = h("p", { class: "muted small", id: "review-summary" });
  let mode = "all";

  for (const [key, title] of [["all", "All labelled"], ["disagreements", "Disagreements"]]) {
    view.append(h("button", { type: "button", class: key === mode ? "active" : "", dataset: { mode: key }, id: `review-${key}`, onclick: () => setMode(key) }, title));
  }
  replace(panel, h("div", { class: "review-controls" }, view, value, annotator), summary, body);

  // Your own annotation is withdrawn; an admin undoes someone else's latest change through its event.
  async function undoVote(shot, vote) {
    try {
      if (vote.annotator === ctx.me.name) {
        const known = ctx.mine.get(shot.shot_id);
        const row = await api.unannotate(ctx.name, shot.shot_id, { expectedVersion: known ? known.version : vote.version });
        ctx.mine.set(shot.shot_id, { value: null, version: row.version });
        ctx.undo.push({ shot, value: vote.value, source: vote.source || "review" });
      } else {
        const { events } = await api.events(ctx.name, { limit: 10000 });
        const last = events.filter((e) => e.shot_id === shot.shot_id && e.annotator === vote.annotator).pop();
        if (!last) throw new Error(`no change by ${vote.annotator} on this shot to undo`);
        await api.undoEvent(ctx.name, last.id);
      }
      toast(`Undid ${vote.annotator}'s label of this shot (kept in the history)`);
      ctx.refreshSoon();
      await load();
    } catch (e) {
      toast(e.message, "error");
    }
  }

  function decorate(card, shot) {
    if (shot.model_score !== undefined && shot.model_score !== null) {
      card.querySelector(".badges").append(h("span", { class: "badge score", title: "The latest model's score" }, fmtMetric(shot.model_score)));
    }
    if (!shot.votes) return;
    const list = h("ul", { class: "votes" });
    for (const vote of shot.votes) {
      const mayUndo = ctx.canEdit && (vote.annotator === ctx.me.name || ctx.me.role === "admin");
      list.append(
        h(
          "li",
          { class: vote.value ? "pos" : "neg" },
          h("span", { class: "who" }, vote.annotator),
          h("span", { class: "val" }, vote.value ? "positive" : "negative"),
          mayUndo && h("button", { type: "button", class: "link undo-vote", title: "Undo this annotation (kept in the history)", onclick: (e) => (e.stopPropagation(), undoVote(shot, vote)) }, "undo"),
        ),
      );
    }
    card.append(list);
  }

  let latest = 0; // only the newest load may fill the page

  async function loadAll() {
    const mine = ++latest;
    const answer = await api.annotations(ctx.name, { value: value.value, annotator: annotator.value, limit: 100000 });
    if (mine !== latest) return;
    const rows = answer.annotations || [];
    const shots = groupByShot(rows);
    for (const a of new Set(rows.map((r) => r.annotator))) if (![...annotator.options].some((o) => o.value === a)) annotator.append(h("option", { value: a }, a));
    summary.textContent = `${shots.length} labelled shot${shots.length === 1 ? "" : "s"}${answer.model_version ? ` · scores from model v${answer.model_version}` : ""}`;
    replace(body, shotGrid(shots, ctx, { source: "review", decorate, emptyText: "No labelled shots match." }));
  }

  async function loadDisagreements() {
    const mine = ++latest;
    const [answer, all, agree] = await Promise.all([api.disagreements(ctx.name), api.annotations(ctx.name, { limit: 100000 }), api.agreement(ctx.name)]);
    if (mine !== latest) return;
    const byShot = new Map(groupByShot(all.annotations || []).map((s) => [s.shot_id, s]));
    const people = (answer.annotators || []).map((d) => byShot.get(d.shot_id)).filter(Boolean);
    const model = (answer.model || []).map((d) => ({ ...(byShot.get(d.shot_id) || { shot_id: d.shot_id }), score: d.score, labeled: d.consensus, model_score: undefined }));
    const pct = (x) => (x === null || x === undefined ? "—" : `${Math.round(x * 100)}%`);
    const agreement = agree.shots_with_several_annotators
      ? ` · annotators agree on ${pct(agree.agreement)} of the ${agree.shots_with_several_annotators} shots labelled by several (Cohen's kappa ${fmtMetric(agree.cohen_kappa)})`
      : " · no shot has been labelled by more than one annotator yet";
    summary.textContent = `${people.length} shot(s) where annotators disagree · ${model.length} where the latest model confidently contradicts the label${agreement}`;
    replace(
      body,
      h("section", { id: "disagree-annotators" }, h("h3", {}, "Annotators disagree"), shotGrid(people, ctx, { source: "review", decorate, emptyText: "No disagreements between annotators." })),
      h(
        "section",
        { id: "disagree-model" },
        h("h3", {}, "The model contradicts the label"),
        shotGrid(model, ctx, { source: "review", showScore: true, decorate, emptyText: answer.model_version ? "The latest model agrees with every label." : "Build a model to see where it disagrees with the labels." }),
      ),
    );
  }

  function load() {
    summary.textContent = "Loading…";
    return mode === "all" ? loadAll() : loadDisagreements();
  }

  function setMode(key) {
    mode = key;
    for (const b of view.querySelectorAll("button")) b.classList.toggle("active", b.dataset.mode === key);
    value.classList.toggle("hidden", key !== "all");
    annotator.classList.toggle("hidden", key !== "all");
    load().catch((e) => replace(body, h("p", { class: "form-error" }, e.message)));
  }
  value.addEventListener("change", () => setMode("all"));
  annotator.addEventListener("change", () => setMode("all"));
  await load();
  return {};
}
