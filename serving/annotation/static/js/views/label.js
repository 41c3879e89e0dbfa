// A label's page: the header with counts, model quality, data diversity and the build button,
// and the tabs of the workflow (Search, Feeds, Review, History, Export / Import).

import { api } from "../api.js";
import { fmtMetric, h, replace, toast } from "../dom.js";
import { gridKey, paintCard, playShot, repaintShot } from "../shots.js";
import { labelGroup, undoGroup } from "../groups.js";
import { renderData } from "./data.js";
import { renderFeeds } from "./feeds.js";
import { renderHistory } from "./history.js";
import { renderMap } from "./map.js";
import { renderReview } from "./review.js";
import { renderSearch } from "./search.js";
import { FEED_NAMES, HINT_EVIDENCE, hintShown, labelStats, missingText, qualityCaveat, sampleText, setHintShown } from "./stats.js";

const TABS = [
  ["search", "Search", renderSearch],
  ["feeds", "Feeds", renderFeeds],
  ["review", "Review", renderReview],
  ["history", "History", renderHistory],
  ["map", "Map", renderMap],
  ["data", "Export / Import", renderData],
];

const BUILD_POLL_MS = 400;
// Why the caveat above the scores (benchmarks/sample_efficiency.py, 12 runs × 10 labels × 3 prevalences, and
// benchmarks/quality_caveat.py, search-found labels with some random ones, 6 runs; annotator_core.metrics.sample_caveat).
const QUALITY_CAVEAT_EVIDENCE =
  "In our replays, builds on labels found by search alone showed a median model quality of 0.69 while 39% of their models found almost nothing on held-out shots (AP below 0.1). With under 10% of the labels from a random sample, 10–18% of the models were that useless while the score read about 0.7; with 10–20%, 6%; with more, 1%. Following the labelling cycle labels a random page in six.";

export async function renderLabel(main, { session, name, tab, go }) {
  const me = session.me;
  const ctx = {
    name,
    session,
    info: session.info || {},
    me,
    canEdit: me.role !== "viewer",
    mine: new Map(),
    undo: [],
    label: null,
    lastBuild: null,
    building: false,
    pendingLike: null,
    shotInfo: new Map(),
  };

  const stats = h("div", { class: "stats", id: "label-stats" });
  const buildButton = h("button", { type: "button", class: "primary build", id: "build-button", title: "Train a classifier on the labels so far (b)" }, "Build");
  const buildHint = h("span", { class: "build-hint", id: "build-hint" });
  const progress = h("div", { class: "progress hidden", id: "build-progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100" }, h("span", { class: "progress-fill" }), h("span", { class: "progress-text" }));
  const suggestion = h("div", { class: "suggestion", id: "suggestion" });
  const caveat = h("p", { class: "quality-caveat", id: "quality-caveat", role: "note" });
  const conflictBox = h("div", { class: "conflict hidden", id: "conflict", role: "alert" });
  const tabsNav = h("nav", { class: "tabs", role: "tablist" });
  const panel = h("section", { class: "tab-panel", id: "tab-panel" });
  const about = h("section", { class: "label-about hidden", id: "label-about", "aria-label": "What the label means" });
  let aboutKey = null;
  let current = null;
  let currentTab = null;

  const header = h(
    "div",
    { class: "label-header" },
    h("div", { class: "label-title" }, h("h1", { id: "label-title" }, name), h("p", { class: "muted", id: "label-description" })),
    stats,
    h("div", { class: "build-box" }, buildButton, buildHint, progress),
    caveat,
    suggestion,
  );
  const keys = h("p", { class: "keys muted small" }, "Keys: ←/→ or j/k move · p or 1 positive · n or 2 negative · u undo · b build · Enter play");
  replace(main, h("div", { class: "label-page" }, h("div", { class: "sticky" }, header, conflictBox, tabsNav), about, panel, keys));
  document.getElementById("crumbs").replaceChildren(h("a", { href: "#/labels" }, "Labels"), h("span", { class: "sep" }, "/"), h("span", {}, name));

  // --- header -----------------------------------------------------------------
  function paintHeader() {
    const s = labelStats(ctx.label || {}, ctx.info);
    const latestExtra = (ctx.label?.latest || ctx.label?.latest_version || {}).extra || {};
    const spread = latestExtra.quality;
    replace(
      stats,
      stat("Positive", s.nPos, "pos", "stat-pos"),
      stat("Negative", s.nNeg, "neg", "stat-neg"),
      stat(spread ? `Model quality, folds ${fmtMetric(spread.low)}–${fmtMetric(spread.high)}` : "Model quality", fmtMetric(s.quality), "", "stat-quality", `25th percentile of balanced accuracy over stratified ${spread?.folds || "K"}-fold cross-validation, each fold's model marking as positive the share of the catalog this version marks (at most half), averaged over repeated splits (1 is perfect, 0.5 is a coin). Each fold's hit rates are (hits + ½) / (shots + 1), so folds of a few shots cannot read a perfect 1: with 10 + 10 labels the best is 0.92. The folds train on every label but are scored on those not from the Borderline feed, which were picked for being hard. 'folds' is the 10th–90th percentile of the folds' scores: with few labels it is wide, so the score is a rough guide.${sampleText(latestExtra)}`),
      stat("Data diversity", fmtMetric(s.diversity), "", "stat-diversity", "How well your labelled shots cover the corpus's visual clusters (1 is full coverage)"),
      stat("Version", s.version ? `v${s.version}` : "—", "", "stat-version"),
    );
    // Few labels from a uniform sample: the folds mostly see shots like those searched for or shown (issue 13).
    // Imported labels, and labels saved without a source, may be a random sample for all we know: they count.
    const warning = qualityCaveat(latestExtra);
    if (warning) {
      caveat.title = QUALITY_CAVEAT_EVIDENCE;
      const fix = h("a", { href: "#", id: "caveat-random", onclick: (e) => (e.preventDefault(), openSuggested("random")) }, "Label a page of the Random feed");
      caveat.replaceChildren(`${warning} `, fix, " before trusting it.");
    } else caveat.replaceChildren();
    const desc = document.getElementById("label-description");
    if (desc && ctx.label) {
      desc.textContent = ctx.label.description || "";
      desc.title = ctx.label.description || "";
    }
    paintAbout();
    buildButton.disabled = !ctx.canEdit || !s.ready || ctx.building;
    buildHint.textContent = ctx.building ? "building…" : s.ready ? "ready to build" : `need ${missingText(s)}`;
    buildHint.classList.toggle("missing", !s.ready);
    // The recommender's pick: off unless the annotator opts in (issue 13; HINT_EVIDENCE says why).
    const rec = s.recommendation;
    const shown = Boolean(rec) && hintShown();
    if (rec) {
      const toggle = h("input", { type: "checkbox", id: "hint-toggle", onchange: (e) => toggleHint(e.target.checked) });
      toggle.checked = shown;
      const optIn = h("label", { class: "hint-opt-in muted", title: HINT_EVIDENCE }, toggle, " Show the recommender's hint");
      if (shown) {
        replace(suggestion, optIn, h("span", { id: "hint-text" }, " · Hint: ", h("a", { href: "#", class: "suggested-link", onclick: (e) => (e.preventDefault(), openSuggested(rec)) }, FEED_NAMES[rec] || rec), h("span", { class: "muted", title: HINT_EVIDENCE }, " — a hint, not advice: the source whose latest labels raised model quality most")));
      } else replace(suggestion, optIn);
    } else suggestion.replaceChildren();
    for (const btn of tabsNav.querySelectorAll("button")) btn.classList.toggle("suggested", shown && rec === "search" && btn.dataset.tab === "search");
  }

  function toggleHint(on) {
    setHintShown(on);
    paintHeader();
    if (currentTab === "feeds") {
      ctx.pendingFeed = ctx.activeFeed; // re-drawn to star the hint (or not) on the feed being read
      selectTab("feeds");
    }
  }

  // --- what the label means: description, keywords and example shots, for every annotator ---------
  function paintAbout() {
    const lbl = ctx.label || {};
    const pos = lbl.positive_examples || [];
    const neg = lbl.negative_examples || [];
    const keywords = lbl.keywords || [];
    const key = JSON.stringify([lbl.description || "", keywords, pos, neg]);
    if (key === aboutKey) return;
    aboutKey = key;
    const shown = Boolean(pos.length || neg.length);
    about.classList.toggle("hidden", !shown);
    // The block shows the whole description; the header's one-line copy stands in when there are no examples.
    document.getElementById("label-description")?.classList.toggle("hidden", shown);
    replace(
      about,
      h(
        "div",
        { class: "about-text" },
        lbl.description ? h("p", { class: "about-description" }, lbl.description) : null,
        keywords.length ? h("p", { class: "about-keywords" }, h("span", { class: "muted" }, "Keywords: "), keywords.map((k) => h("span", { class: "pill" }, k))) : null,
      ),
      exampleRow("Good examples", pos, true, "examples-pos"),
      exampleRow("Counter-examples", neg, false, "examples-neg"),
    );
  }

  function exampleRow(title, ids, value, id) {
    if (!ids.length) return null;
    return h("div", { class: `example-row ${value ? "pos" : "neg"}`, id }, h("span", { class: "example-row-title" }, value ? "★ " : "✗ ", title), h("div", { class: "example-tiles" }, ids.map((sid) => exampleTile(sid, value))));
  }

  function exampleTile(sid, value) {
    const tile = h("div", { class: "example-tile", dataset: { shot: sid } });
    const media = h("div", { class: "media", title: "Play this shot" }, h("img", { src: api.thumbUrl(sid), alt: value ? "good example" : "counter-example", loading: "lazy", draggable: "false" }), h("span", { class: "play", "aria-hidden": "true" }, "▶"));
    media.addEventListener("click", async () => {
      try {
        if (!tile.shot) tile.shot = ctx.shotInfo.get(sid) || (await api.shot(sid));
        playShot(tile);
        const video = tile.querySelector("video");
        if (video) {
          video.controls = false; // too small for controls: a click plays and pauses
          video.poster = api.thumbUrl(sid);
        }
      } catch (e) {
        toast(e.message, "error");
      }
    });
    tile.append(media);
    if (ctx.canEdit) tile.append(h("button", { type: "button", class: "remove-example", title: "Remove from the label's examples", "aria-label": "Remove from the examples", onclick: () => ctx.setExample({ shot_id: sid }, value) }, "×"));
    return tile;
  }

  ctx.exampleOf = (sid) => {
    const lbl = ctx.label || {};
    if ((lbl.positive_examples || []).includes(sid)) return true;
    if ((lbl.negative_examples || []).includes(sid)) return false;
    return null;
  };

  // Make a shot a good example (value true) or a counter-example (false); the same click again removes it.
  ctx.setExample = async (shot, value) => {
    if (!ctx.canEdit) return toast("Viewers cannot change the examples.", "error");
    const sid = shot.shot_id;
    try {
      ctx.label = await api.label(name); // the newest lists, so another annotator's change is kept
      const was = ctx.exampleOf(sid);
      const pos = (ctx.label.positive_examples || []).filter((x) => x !== sid);
      const neg = (ctx.label.negative_examples || []).filter((x) => x !== sid);
      if (was !== value) (value ? pos : neg).push(sid);
      ctx.label = await api.changeLabel(name, { positive_examples: pos, negative_examples: neg });
      paintHeader();
      for (const card of document.querySelectorAll(".card[data-shot]")) paintCard(card, ctx);
      toast(was === value ? "Removed from the examples" : value ? "Added to the good examples" : "Added to the counter-examples");
    } catch (e) {
      toast(e.message, "error");
    }
  };

  function stat(title, value, kind, id, help) {
    return h("div", { class: `stat ${kind}`, id, title: help || title }, h("span", { class: "stat-value" }, String(value)), h("span", { class: "stat-label" }, title));
  }

  let refreshTimer = null;
  async function refresh() {
    ctx.label = await api.label(name);
    paintHeader();
  }
  ctx.refresh = refresh;
  ctx.refreshSoon = () => {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => refresh().catch((e) => toast(e.message, "error")), 150);
  };
  ctx.stats = () => labelStats(ctx.label || {}, ctx.info);

  async function loadMine() {
    const answer = await api.annotations(name, { annotator: me.name, limit: 100000 });
    const rows = Array.isArray(answer) ? answer : answer.annotations || [];
    ctx.mine.clear();
    for (const row of rows) if (row.annotator === undefined || row.annotator === me.name) ctx.mine.set(row.shot_id, { value: row.value ?? null, version: row.version ?? 0 });
  }
  ctx.loadMine = loadMine;

  // --- annotating ---------------------------------------------------------------
  function rowOf(answer) {
    return (answer && (answer.annotation || answer)) || {};
  }

  ctx.annotate = async (shot, value, source, { fromUndo = false } = {}) => {
    if (!ctx.canEdit) return toast("Viewers cannot label.", "error");
    const id = shot.shot_id;
    const before = ctx.mine.get(id) || { value: null, version: 0 };
    if (before.value === value) return;
    try {
      const answer =
        value === null
          ? await api.unannotate(name, id, { expectedVersion: before.version })
          : await api.annotate(name, id, value, { source: source || "search", expectedVersion: before.version });
      const row = rowOf(answer);
      ctx.mine.set(id, { value, version: row.version ?? before.version + 1 });
      if (!fromUndo) ctx.undo.push({ shot, value: before.value, source });
      repaintShot(id, ctx);
      hideConflict();
      ctx.refreshSoon();
    } catch (e) {
      if (e.status === 409) showConflict(shot, value, source, e);
      else toast(e.message, "error");
    }
  };

  ctx.undoLast = async () => {
    const last = ctx.undo.pop();
    if (!last) return toast("Nothing to undo.");
    if (last.batch) return undoGroup(last, ctx); // a whole group's labelling is one step
    await ctx.annotate(last.shot, last.value, "undo", { fromUndo: true });
    toast(`Undone: ${last.shot.title || last.shot.shot_id} is ${last.value === null ? "unlabelled" : last.value ? "positive" : "negative"} again`);
  };

  ctx.labelGroup = (shot, value, source) => {
    if (!ctx.canEdit) return toast("Viewers cannot label.", "error");
    return labelGroup(shot, value, ctx);
  };

  function hideConflict() {
    conflictBox.classList.add("hidden");
  }

  function showConflict(shot, value, source, err) {
    for (const card of document.querySelectorAll(`.card[data-shot="${CSS.escape(shot.shot_id)}"]`)) card.classList.add("conflicted");
    const d = err.detail || {};
    const cur = d.current || {};
    const theirValue = cur.value ?? d.current_value ?? d.value;
    const who = cur.annotator ?? d.changed_by ?? d.annotator;
    const shown = theirValue === true ? "positive" : theirValue === false ? "negative" : theirValue === null ? "unlabelled" : null;
    replace(
      conflictBox,
      h("strong", {}, "Not saved — someone changed this annotation since you loaded it. "),
      h("span", {}, shown ? `It is now ${shown}${who ? ` (by ${who})` : ""}; you tried ${value ? "positive" : value === false ? "negative" : "to remove it"}. ` : `${err.message} `),
      h("button", {
        type: "button",
        class: "primary small",
        id: "conflict-reload",
        onclick: async () => {
          await loadMine();
          repaintShot(shot.shot_id, ctx);
          await refresh();
          hideConflict();
          toast("Reloaded: the card shows the current value. Apply your change again if you still want it.");
        },
      }, "Reload"),
      h("button", { type: "button", class: "link", onclick: hideConflict }, "Dismiss"),
    );
    conflictBox.classList.remove("hidden");
  }

  // --- building -------------------------------------------------------------------
  function showProgress(fraction, text) {
    progress.classList.remove("hidden");
    const pct = Math.round(Math.max(0, Math.min(1, fraction || 0)) * 100);
    progress.setAttribute("aria-valuenow", String(pct));
    progress.querySelector(".progress-fill").style.width = `${pct}%`;
    progress.querySelector(".progress-text").textContent = text || `${pct}%`;
  }

  async function waitForJob(job) {
    let state = job;
    while (!["done", "succeeded", "failed", "error"].includes(state.status || state.state)) {
      showProgress(state.progress ?? state.fraction ?? 0, state.stage || state.message || "building…");
      await new Promise((r) => setTimeout(r, BUILD_POLL_MS));
      state = await api.job(state.job_id || state.id || job.job_id || job.id);
    }
    if (["failed", "error"].includes(state.status || state.state)) {
      const e = state.error || {};
      throw new Error(e.message || state.message || "the build failed");
    }
    return state.result || state;
  }

  ctx.build = async () => {
    const s = ctx.stats();
    if (!ctx.canEdit) return;
    if (!s.ready) return toast(`Not yet: label ${missingText(s)}.`, "error");
    if (ctx.building) return;
    ctx.building = true;
    paintHeader();
    showProgress(0.02, "starting…");
    try {
      let result = await api.build(name);
      if (result && (result.job_id || (result.job && result.status !== "done"))) result = await waitForJob(result.job || result);
      ctx.lastBuild = result;
      showProgress(1, "done");
      toast(`Built version ${result.version}: quality ${fmtMetric(result.model_quality)}, diversity ${fmtMetric(result.data_diversity)}`);
      ctx.building = false;
      await refresh();
      selectTab("feeds");
    } catch (e) {
      toast(`Build failed: ${e.message}`, "error");
    } finally {
      ctx.building = false;
      setTimeout(() => progress.classList.add("hidden"), 1200);
      paintHeader();
    }
  };
  buildButton.addEventListener("click", () => ctx.build());

  // --- navigation -----------------------------------------------------------------
  ctx.moreLike = (shot) => {
    ctx.pendingLike = shot;
    selectTab("search");
  };

  function openSuggested(rec) {
    if (rec === "search") selectTab("search");
    else {
      ctx.pendingFeed = rec;
      selectTab("feeds");
    }
  }

  async function selectTab(key) {
    const entry = TABS.find((t) => t[0] === key) || TABS[0];
    if (current && current.dispose) current.dispose();
    currentTab = entry[0];
    for (const btn of tabsNav.querySelectorAll("button")) {
      const on = btn.dataset.tab === currentTab;
      btn.classList.toggle("active", on);
      btn.setAttribute("aria-selected", String(on));
    }
    history.replaceState(null, "", `#/labels/${encodeURIComponent(name)}/${currentTab}`);
    panel.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      current = (await entry[2](panel, ctx)) || null;
    } catch (e) {
      replace(panel, h("p", { class: "form-error" }, e.message));
    }
  }
  ctx.selectTab = selectTab;

  for (const [key, title] of TABS) {
    tabsNav.append(h("button", { type: "button", role: "tab", class: "tab", dataset: { tab: key }, id: `tab-${key}`, onclick: () => selectTab(key) }, title));
  }

  await Promise.all([refresh(), loadMine()]);
  await selectTab(tab);

  return {
    dispose() {
      if (current && current.dispose) current.dispose();
    },
    onKey(event) {
      if (event.key === "u") {
        ctx.undoLast();
        return true;
      }
      if (event.key === "b") {
        ctx.build();
        return true;
      }
      return gridKey(event, ctx);
    },
  };
}
