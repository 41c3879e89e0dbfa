// Shot cards: a thumbnail until played, the shot's own span of its video when clicked,
// positive / negative buttons, "more like this", and keyboard control of the focused card.

import { api } from "./api.js";
import { fmtMetric, fmtTime, h } from "./dom.js";
import { decorateGroup } from "./groups.js";

const LABELLED = { true: "labelled positive", false: "labelled negative" };

// ctx: { mine: Map(shot_id -> {value, version}), annotate(shot, value, source), moreLike(shot), canEdit }
const SCORE_HELP = "Model score: how sure the model is that this shot is positive";

export function shotGrid(items, ctx, { source, showScore = false, scoreHelp = SCORE_HELP, emptyText = "No shots here.", decorate } = {}) {
  if (!items || !items.length) return h("p", { class: "empty" }, emptyText);
  const grid = h("div", { class: "grid", role: "list", dataset: { source } });
  for (const item of items) grid.append(shotCard(item, ctx, { source, showScore, scoreHelp, decorate }));
  return grid;
}

export function shotCard(shot, ctx, { source, showScore = false, scoreHelp = SCORE_HELP, decorate } = {}) {
  noteAnnotation(shot, ctx);
  const card = h("article", {
    class: "card",
    tabindex: "0",
    role: "listitem",
    dataset: { shot: shot.shot_id, source },
    "aria-label": `Shot ${shot.title || shot.video_id || ""} ${fmtTime(shot.start_s)} to ${fmtTime(shot.end_s)}`,
  });
  card.shot = shot;
  card.source = source;

  const media = h(
    "div",
    { class: "media", title: "Play this shot (Enter)" },
    h("img", { src: api.thumbUrl(shot.shot_id), alt: "", loading: "lazy", draggable: "false" }),
    h("span", { class: "play", "aria-hidden": "true" }, "▶"),
    h("span", { class: "badge span", title: "The shot's time span in its video" }, `${fmtTime(shot.start_s)}–${fmtTime(shot.end_s)}`),
  );
  media.addEventListener("click", () => playShot(card));

  const badges = h("div", { class: "badges" });
  if (showScore && shot.score !== undefined && shot.score !== null) {
    badges.append(h("span", { class: "badge score", title: scoreHelp }, fmtMetric(shot.score)));
  }
  if (shot.labeled === true || shot.labeled === false) {
    badges.append(h("span", { class: `badge labelled ${shot.labeled ? "pos" : "neg"}`, title: "Already labelled (consensus of annotators)" }, LABELLED[shot.labeled]));
  }
  media.append(badges);

  const meta = h(
    "div",
    { class: "meta" },
    h("span", { class: "title", title: shot.title || shot.video_id || "" }, shot.title || shot.video_id || shot.shot_id),
    h("button", { type: "button", class: "link btn-like", title: "Search for shots that look like this one", onclick: () => ctx.moreLike(shot) }, "More like this"),
    h("a", { class: "link open-title", href: titleHref(shot), title: "Open the title: its player and every label's track" }, "Open title"),
  );

  const actions = h(
    "div",
    { class: "actions" },
    h("button", { type: "button", class: "btn-pos", title: "Positive (p or 1)", disabled: !ctx.canEdit, onclick: () => ctx.annotate(shot, true, source) }, "✓ Positive"),
    h("button", { type: "button", class: "btn-neg", title: "Negative (n or 2)", disabled: !ctx.canEdit, onclick: () => ctx.annotate(shot, false, source) }, "✗ Negative"),
  );

  card.append(media, meta, actions);
  if (ctx.canEdit && ctx.setExample) {
    card.append(
      h(
        "div",
        { class: "example-actions" },
        h("button", { type: "button", class: "link btn-example-pos", title: "Show this shot to every annotator as a good example of the label (click again to remove)", onclick: () => ctx.setExample(shot, true) }, "☆ good example"),
        h("button", { type: "button", class: "link btn-example-neg", title: "Show this shot to every annotator as a counter-example: what the label does not mean (click again to remove)", onclick: () => ctx.setExample(shot, false) }, "☆ counter-example"),
      ),
    );
  }
  if (ctx.shotInfo) ctx.shotInfo.set(shot.shot_id, shot);
  decorateGroup(card, shot, ctx, source); // near-duplicates: size badge, open the group, label it whole (issue 16)
  if (decorate) decorate(card, shot);
  paintCard(card, ctx);
  return card;
}

// Lists from the service carry the caller's own {value, version} of each shot: keep the newest we know.
function noteAnnotation(shot, ctx) {
  const seen = shot.annotation;
  if (!seen || seen.version === undefined) return;
  const known = ctx.mine.get(shot.shot_id);
  if (!known || seen.version > known.version) ctx.mine.set(shot.shot_id, { value: seen.value ?? null, version: seen.version });
}

export function paintCard(card, ctx) {
  const mine = ctx.mine.get(card.dataset.shot);
  const value = mine ? mine.value : null;
  card.classList.remove("conflicted");
  card.classList.toggle("is-pos", value === true);
  card.classList.toggle("is-neg", value === false);
  const pos = card.querySelector(".btn-pos");
  const neg = card.querySelector(".btn-neg");
  if (pos) pos.setAttribute("aria-pressed", String(value === true));
  if (neg) neg.setAttribute("aria-pressed", String(value === false));
  paintExample(card, ctx);
}

// The label's example shots: a badge on the card and the pressed state of the two example buttons.
function paintExample(card, ctx) {
  const example = ctx.exampleOf ? ctx.exampleOf(card.dataset.shot) : null;
  card.classList.toggle("is-example", example !== null);
  for (const [selector, value, text] of [[".btn-example-pos", true, "good example"], [".btn-example-neg", false, "counter-example"]]) {
    const button = card.querySelector(selector);
    if (!button) continue;
    button.setAttribute("aria-pressed", String(example === value));
    button.textContent = `${example === value ? "★" : "☆"} ${text}`;
  }
  const badges = card.querySelector(".badges");
  let badge = card.querySelector(".badge.example");
  if (example === null) badge?.remove();
  else if (badges) {
    if (!badge) {
      badge = h("span", { class: "badge example" });
      badges.append(badge);
    }
    badge.className = `badge example ${example ? "pos" : "neg"}`;
    badge.title = example ? "One of the label's good examples" : "One of the label's counter-examples";
    badge.textContent = example ? "★ example" : "★ counter-example";
  }
}

export function repaintShot(shotId, ctx) {
  for (const card of document.querySelectorAll(`.card[data-shot="${CSS.escape(shotId)}"]`)) paintCard(card, ctx);
}

export function playShot(card) {
  const shot = card.shot;
  const media = card.querySelector(".media");
  let video = media.querySelector("video");
  const start = Number(shot.start_s || 0);
  const end = Number(shot.end_s || 0);
  if (!video) {
    // The media fragment seeks to the shot and stops at its end; the listeners keep replays inside the span.
    video = h("video", { src: api.videoUrl(shot), preload: "auto", playsinline: true, controls: true });
    video.addEventListener("loadedmetadata", () => {
      if (video.currentTime < start || video.currentTime > end) video.currentTime = start;
    });
    video.addEventListener("timeupdate", () => {
      if (end > start && video.currentTime >= end) video.pause();
    });
    video.addEventListener("play", () => {
      if (end > start && (video.currentTime >= end - 0.05 || video.currentTime < start - 0.05)) video.currentTime = start;
    });
    video.addEventListener("error", () => media.classList.add("broken"));
    video.addEventListener("error", () => explainUnplayable(card, video));
    media.querySelector("img")?.remove();
    media.querySelector(".play")?.remove();
    media.prepend(video);
    media.classList.add("playing");
  } else if (!video.paused) {
    video.pause();
    return;
  }
  video.play().catch(() => {});
}

// A video that cannot play (no proxy could be made, the file is gone): the card shows the service's reason
// and its thumbnail again, so the shot is labelled from it (issue 17).
async function explainUnplayable(card, video) {
  let reason = "This shot cannot play in this browser; label it from its thumbnail.";
  try {
    const resp = await fetch(video.src.split("#")[0], { headers: { Range: "bytes=0-0" } });
    if (!resp.ok) reason = (await resp.json())?.error?.message || reason;
  } catch {
    // the service did not answer: keep the general reason
  }
  const media = card.querySelector(".media");
  if (!media.querySelector("img")) media.prepend(h("img", { src: api.thumbUrl(card.shot.shot_id), alt: "", draggable: "false" }));
  video.remove();
  card.querySelector(".unplayable")?.remove();
  media.after(h("p", { class: "unplayable", role: "status" }, reason));
}

function visibleGrids() {
  return [...document.querySelectorAll(".grid")].filter((g) => g.offsetParent !== null);
}

function columns(cards) {
  if (!cards.length) return 1;
  const top = cards[0].offsetTop;
  const n = cards.findIndex((c) => c.offsetTop !== top);
  return n <= 0 ? cards.length : n;
}

export function focusedCard() {
  const el = document.activeElement;
  return el && el.closest ? el.closest(".card") : null;
}

// Keyboard control of the cards on screen; returns true when the key was used.
export function gridKey(event, ctx) {
  const grids = visibleGrids();
  if (!grids.length) return false;
  const current = focusedCard();
  const cards = grids.flatMap((g) => [...g.querySelectorAll(".card")]);
  if (!cards.length) return false;
  const idx = current ? cards.indexOf(current) : -1;
  const move = (to) => {
    const target = cards[Math.max(0, Math.min(cards.length - 1, to))];
    target.focus();
    target.scrollIntoView({ block: "nearest" });
  };
  const key = event.key;
  if (key === "ArrowRight" || key === "j") move(idx + 1);
  else if (key === "ArrowLeft" || key === "k") move(idx < 0 ? 0 : idx - 1);
  else if (key === "ArrowDown") move(idx < 0 ? 0 : idx + columns(cards));
  else if (key === "ArrowUp") move(idx < 0 ? 0 : idx - columns(cards));
  else if (["p", "1", "n", "2"].includes(key)) {
    if (!current) {
      move(0);
      return true;
    }
    const value = key === "p" || key === "1";
    ctx.annotate(current.shot, value, current.source);
    if (idx < cards.length - 1) move(idx + 1);
  } else if ((key === "Enter" || key === " ") && current && event.target === current) playShot(current);
  else return false;
  return true;
}

// The title page of a shot's video, with the shot selected (views/title.js).
export function titleHref(shot) {
  const videoId = shot.video_id || String(shot.shot_id).slice(0, String(shot.shot_id).lastIndexOf(":"));
  return `#/titles/${encodeURIComponent(videoId)}/${encodeURIComponent(shot.shot_id)}`;
}
