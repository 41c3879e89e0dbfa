// Step 2 of the loop. Before the first build: a random sample of unlabelled shots to label beside Search
// (issue 13). After a build: the four feeds with the model's scores, labelled shots marked, the hint starred.

import { api } from "../api.js";
import { h, replace } from "../dom.js";
import { shotGrid } from "../shots.js";
import { FEED_NAMES, HINT_EVIDENCE, hintShown } from "./stats.js";

// Tabs left to right. Which one to label next is the build's own: each version names its turn in the
// labelling cycle (annotator_core/feeds.py: Borderline every other page, the others in turn between), the
// order the replays found best (benchmarks/README.md, issue 13).
export const FEEDS = ["borderline", "random", "top_positive", "top_negative"];

const HELP = {
  top_positive: "Shots the model is most sure are positive: confirm them or correct its mistakes.",
  top_negative: "Shots the model is most sure are negative: look for positives it missed.",
  borderline: "Shots the model cannot decide on: each label here teaches it the most.",
  random: "A random sample of unlabelled shots: keeps the model honest about the whole corpus.",
};

const SAMPLE_HELP =
  "A random sample of unlabelled shots. Alternate a page here with a search: search finds positives, " +
  "this sample shows what the rest of the catalog looks like, so the first model learns the real negatives.";

// Before the first build: a random sample to label beside search (issue 13's interleave flow).
async function renderSample(panel, ctx, s) {
  const todo = s.ready
    ? "Enough to build: press Build to train a model and open its feeds."
    : `Label ${s.needPos} more positive and ${s.needNeg} more negative shots, from Search and from this sample, then press Build.`;
  const answer = await api.sample(ctx.name);
  const items = itemsOf(answer);
  replace(
    panel,
    h("div", { class: "empty", id: "sample-intro" }, h("p", {}, "No model yet."), h("p", { class: "muted" }, todo)),
    h("p", { class: "muted small feed-help" }, SAMPLE_HELP),
    h("div", { id: "feed-body" }, shotGrid(items, ctx, { source: "random", emptyText: "Every shot is labelled." })),
  );
  return {};
}

function itemsOf(answer) {
  return Array.isArray(answer) ? answer : (answer && (answer.items || answer.shots || answer.feed)) || [];
}

export async function renderFeeds(panel, ctx) {
  const s = ctx.stats();
  if (!s.version && !ctx.lastBuild) return renderSample(panel, ctx, s);
  const feeds = {};
  const built = ctx.lastBuild && ctx.lastBuild.version === s.version ? ctx.lastBuild : null;
  if (built && built.feeds && FEEDS.every((f) => Array.isArray(built.feeds[f]) && (!built.feeds[f].length || built.feeds[f][0].start_s !== undefined))) {
    for (const f of FEEDS) feeds[f] = built.feeds[f];
  } else {
    const answers = await Promise.all(FEEDS.map((f) => api.feed(ctx.name, f)));
    FEEDS.forEach((f, i) => (feeds[f] = itemsOf(answers[i])));
  }
  // The build's turn in the labelling cycle opens (issue 13); the recommender's pick is starred, never opened,
  // and only when the annotator opted in to its hint: it has not beaten the cycle in the replays (HINT_EVIDENCE).
  const rec = hintShown() ? s.recommendation : "";
  const next = FEEDS.includes(s.nextFeed) ? s.nextFeed : "borderline";
  let active = ctx.pendingFeed || next;
  ctx.pendingFeed = null;

  const nav = h("nav", { class: "subtabs", role: "tablist", id: "feed-tabs" });
  const help = h("p", { class: "muted small feed-help" });
  const body = h("div", { id: "feed-body" });
  for (const f of FEEDS) {
    nav.append(
      h(
        "button",
        { type: "button", role: "tab", class: `subtab${f === rec ? " suggested" : ""}`, id: `feed-${f}`, dataset: { feed: f }, title: f === rec ? `Hint, not advice: the source whose latest labels raised model quality most. ${HINT_EVIDENCE}` : HELP[f], onclick: () => show(f) },
        FEED_NAMES[f],
        h("span", { class: "count" }, String(feeds[f].length)),
        f === next && h("span", { class: "next-mark", title: "This build's turn: label a page here, then Build again." }, " ▸ next"),
        f === rec && h("span", { class: "star", "aria-label": "hint" }, " ★ hint"),
      ),
    );
  }
  function show(f) {
    active = f;
    ctx.activeFeed = f;
    for (const b of nav.querySelectorAll("button")) {
      b.classList.toggle("active", b.dataset.feed === f);
      b.setAttribute("aria-selected", String(b.dataset.feed === f));
    }
    help.textContent = HELP[f];
    replace(body, shotGrid(feeds[f], ctx, { source: f, showScore: true, emptyText: "This feed is empty." }));
  }
  const intro = `Model version v${s.version}. Scores are the model's probability that a shot is positive. ` +
    "Label a page of the feed marked next, then Build again: each build marks the next one, Borderline " +
    "every other time and the other feeds in turn between.";
  replace(panel, h("p", { class: "muted small" }, intro), nav, help, body);
  show(active);
  return {};
}
