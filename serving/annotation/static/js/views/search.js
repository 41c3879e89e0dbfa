// Step 1 of the loop: find first examples by text (with a vision-language model), by example
// ("more like this", or more like every positive so far) or by video, and label them.

import { api } from "../api.js";
import { fmtTime, h, replace, toast } from "../dom.js";
import { shotGrid } from "../shots.js";

const NO_TEXT =
  "Text search needs a vision-language model; use “more like this” on any shot or filter by video.";

let videosCache = null;

function hasText(info) {
  return info.has_text === undefined ? true : Boolean(info.has_text);
}

function listOf(answer, key) {
  return Array.isArray(answer) ? answer : (answer && (answer[key] || answer.results || answer.items)) || [];
}

export async function renderSearch(panel, ctx) {
  const textOk = hasText(ctx.info);
  const query = h("input", {
    type: "search",
    id: "search-text",
    name: "q",
    placeholder: textOk ? "Describe the shots you want, e.g. “cyclists on a road”" : "Text search is off for this encoder",
    disabled: !textOk,
    "aria-describedby": "search-note",
  });
  const video = h("select", { id: "search-video", name: "video", title: "Only shots of this video" }, h("option", { value: "" }, "All videos"));
  const title = h("input", { id: "search-title", name: "title", placeholder: "Title contains…", size: "14" });
  const go = h("button", { type: "submit", class: "primary" }, "Search");
  const browse = h("button", { type: "button", id: "search-browse", title: "Every shot of the chosen video" }, "Show video");
  const likeMine = h(
    "button",
    {
      type: "button",
      id: "search-like-positives",
      title: "The shots a model of your labels so far ranks highest: like your positives in what sets them apart from your negatives. Works before the first build; shots you have labelled are left out. Once you have a few positives, use it for your search pages.",
    },
    "More like my positives",
  );
  const note = h("p", { class: textOk ? "hidden" : "notice", id: "search-note" }, NO_TEXT);
  const likeBar = h("div", { class: "like-bar hidden", id: "like-bar" });
  const summary = h("p", { class: "muted small", id: "search-summary" });
  const results = h("div", { id: "search-results" });
  const form = h("form", { class: "search-form", id: "search-form" }, query, video, title, go, browse, likeMine);

  replace(panel, note, form, likeBar, summary, results);

  let like = null;
  let pickedForYou = false; // the video was chosen by the page to have something to show, not by the user

  let latest = 0; // only the newest search may fill the page, whatever order the answers come back in

  async function run(params, what) {
    const mine = ++latest;
    summary.textContent = "Searching…";
    try {
      const answer = await api.search({ label: ctx.name, limit: 60, video: video.value, title: title.value.trim(), ...params });
      if (mine !== latest) return;
      const items = listOf(answer, "results");
      const where = [];
      const ranked = Boolean(params.q || params.like || params.like_label);
      if (ranked) {
        if (video.value) where.push(`in ${(videosCache.find((v) => v.video_id === video.value) || {}).title || video.value}`);
        if (title.value.trim()) where.push(`in titles with “${title.value.trim()}”`);
      }
      summary.textContent = [`${items.length} shot${items.length === 1 ? "" : "s"} ${what}`, ...where].join(" ");
      replace(results, shotGrid(items, ctx, { source: "search", showScore: ranked, scoreHelp: "Similarity to your search (1 is identical)", emptyText: "No shots match. Try another video or clear the title filter." }));
    } catch (e) {
      if (mine !== latest) return;
      summary.textContent = "";
      const noText = e.code === "no_text_tower" || e.code === "encoder_unavailable";
      replace(results, h("p", { class: noText ? "notice" : "form-error" }, noText ? NO_TEXT : e.message));
    }
  }

  function showLike(shot) {
    like = shot;
    replace(
      likeBar,
      h("img", { src: api.thumbUrl(shot.shot_id), alt: "" }),
      h("span", {}, "Shots like ", h("strong", {}, shot.title || shot.video_id || shot.shot_id), ` ${fmtTime(shot.start_s)}–${fmtTime(shot.end_s)}`),
      h("button", { type: "button", class: "link", onclick: () => { like = null; likeBar.classList.add("hidden"); } }, "✕ clear"),
    );
    likeBar.classList.remove("hidden");
    return run({ like: shot.shot_id }, "like this one");
  }

  function busiestVideo() {
    const best = (videosCache || []).filter((v) => !v.status || v.status === "done").reduce((a, b) => ((b.n_shots || 0) > (a ? a.n_shots || 0 : -1) ? b : a), null);
    return best ? best.video_id : "";
  }

  // Without text or an example, show whole videos: the chosen one, else the one with most shots.
  function showVideo() {
    like = null;
    likeBar.classList.add("hidden");
    if (!video.value && !title.value.trim() && video.options.length > 1) {
      video.value = busiestVideo();
      pickedForYou = true;
    }
    const name = video.value ? (videosCache.find((v) => v.video_id === video.value) || {}).title || video.value : `titles with “${title.value.trim()}”`;
    if (!video.value && !title.value.trim()) {
      replace(results, h("p", { class: "empty" }, "No videos yet: ingest some with `va ingest PATH`."));
      return Promise.resolve();
    }
    return run({}, `of ${name}`);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = query.value.trim();
    if (q && textOk) {
      like = null;
      likeBar.classList.add("hidden");
      if (pickedForYou) video.value = "";
      pickedForYou = false;
      run({ q }, `for “${q}”`);
    } else if (like) run({ like: like.shot_id }, "like this one");
    else if (!textOk && q) toast(NO_TEXT, "error");
    else showVideo();
  });
  browse.addEventListener("click", showVideo);
  likeMine.addEventListener("click", () => {
    like = null;
    likeBar.classList.add("hidden");
    if (pickedForYou) video.value = "";
    pickedForYou = false;
    return run({ like_label: ctx.name }, "like your positives");
  });
  video.addEventListener("change", () => {
    pickedForYou = false;
    return like ? run({ like: like.shot_id }, "like this one") : showVideo();
  });

  try {
    if (!videosCache) videosCache = listOf(await api.videos(), "videos");
    for (const v of videosCache) {
      if (v.status && v.status !== "done") continue;
      video.append(h("option", { value: v.video_id }, `${v.title || v.video_id} (${v.n_shots} shot${v.n_shots === 1 ? "" : "s"})`));
    }
  } catch (e) {
    toast(`Videos could not be listed: ${e.message}`, "error");
  }

  if (ctx.pendingLike) {
    const shot = ctx.pendingLike;
    ctx.pendingLike = null;
    await showLike(shot);
  } else if (latest === 0) {
    // Only if the user has not searched while the video list was loading.
    await showVideo();
  }
  return {};
}
