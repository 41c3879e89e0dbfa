// Step 2 of the loop: after a build, the four feeds with the model's scores; labelled shots are marked
// and the recommender's suggestion is highlighted.

import { api } from "../api.js";
import { h, replace } from "../dom.js";
import { shotGrid } from "../shots.js";
import { FEED_NAMES } from "./stats.js";

export const FEEDS = ["top_positive", "top_negative", "borderline", "random"];

const HELP = {
  top_positive: "Shots the model is most sure are positive: confirm them or correct its mistakes.",
  top_negative: "Shots the model is most sure are negative: look for positives it missed.",
  borderline: "Shots the model cannot decide on: each label here teaches it the most.",
  random: "A random sample of unlabelled shots: keeps the model honest about the whole corpus.",
};

function itemsOf(answer) {
  return Array.isArray(answer) ? answer : (answer && (answer.items || answer.shots || answer.feed)) || [];
}

export async function renderFeeds(panel, ctx) {
  const s = ctx.stats();
  if (!s.version && !ctx.lastBuild) {
    replace(
      panel,
      h("div", { class: "empty big" }, h("p", {}, "No model yet."), h("p", { class: "muted" }, s.ready ? "Press Build to train one and see what it finds." : `Label ${s.needPos} more positive and ${s.needNeg} more negative shots in Search, then press Build.`)),
    );
    return {};
  }
  const feeds = {};
  const built = ctx.lastBuild && ctx.lastBuild.version === s.version ? ctx.lastBuild : null;
  if (built && built.feeds && FEEDS.every((f) => Array.isArray(built.feeds[f]) && (!built.feeds[f].length || built.feeds[f][0].start_s !== undefined))) {
    for (const f of FEEDS) feeds[f] = built.feeds[f];
  } else {
    const answers = await Promise.all(FEEDS.map((f) => api.feed(ctx.name, f)));
    FEEDS.forEach((f, i) => (feeds[f] = itemsOf(answers[i])));
  }
  const rec = s.recommendation;
  let active = ctx.pendingFeed || (FEEDS.includes(rec) ? rec : "top_positive");
  ctx.pendingFeed = null;

  const nav = h("nav", { class: "subtabs", role: "tablist", id: "feed-tabs" });
  const help = h("p", { class: "muted small feed-help" });
  const body = h("div", { id: "feed-body" });
  for (const f of FEEDS) {
    nav.append(
      h(
        "button",
        { type: "button", role: "tab", class: `subtab${f === rec ? " suggested" : ""}`, id: `feed-${f}`, dataset: { feed: f }, title: f === rec ? "Suggested: labelling here has helped the model most" : HELP[f], onclick: () => show(f) },
        FEED_NAMES[f],
        h("span", { class: "count" }, String(feeds[f].length)),
        f === rec && h("span", { class: "star", "aria-label": "suggested" }, " ★ suggested"),
      ),
    );
  }
  function show(f) {
    active = f;
    for (const b of nav.querySelectorAll("button")) {
      b.classList.toggle("active", b.dataset.feed === f);
      b.setAttribute("aria-selected", String(b.dataset.feed === f));
    }
    help.textContent = HELP[f];
    replace(body, shotGrid(feeds[f], ctx, { source: f, showScore: true, emptyText: "This feed is empty." }));
  }
  replace(panel, h("p", { class: "muted small" }, `Model version v${s.version}. Scores are the model's probability that a shot is positive.`), nav, help, body);
  show(active);
  return {};
}
