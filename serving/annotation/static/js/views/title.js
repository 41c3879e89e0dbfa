// A title's page: the player and, under it, one track per label drawn on a <canvas> (thousands of shots
// stay smooth): each shot a segment coloured by its score, the caller's annotations marked above it.
// The whole timeline is fetched once (GET /api/videos/{id}/timeline). Clicking a segment plays that shot;
// keys as in the feeds: j / → next shot, k / ← previous, ↑ / ↓ another label's track, p / 1 positive,
// n / 2 negative, Enter / space play, u undo.

import { api, request } from "../api.js";
import { fmtMetric, fmtTime, h, replace, toast } from "../dom.js";

const enc = encodeURIComponent;
const TRACK_H = 30;
const MARK_H = 6;
const SOURCE_TEXT = {
  scores: (v) => `published scores (v${v})`,
  build: (v) => `latest build (v${v})`,
  none: () => "no build yet",
};

// Score 0 -> cool grey-blue, 1 -> warm orange; no score -> light grey.
export function scoreColour(score) {
  if (score === null || score === undefined) return "#e3e6ec";
  const t = Math.max(0, Math.min(1, score));
  const from = [59, 76, 192];
  const to = [240, 128, 20];
  const c = from.map((f, i) => Math.round(f + (to[i] - f) * t));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

export async function renderTitles(main, { go }) {
  const answer = await api.videos();
  const rows = (answer.videos || []).filter((v) => v.status !== "failed");
  replace(
    main,
    h("h1", {}, "Titles"),
    rows.length
      ? h(
          "table",
          { class: "titles-list" },
          h("thead", {}, h("tr", {}, h("th", {}, "Title"), h("th", {}, "Shots"), h("th", {}, "Duration"))),
          h(
            "tbody",
            {},
            rows.map((v) =>
              h(
                "tr",
                {},
                h("td", {}, h("a", { href: `#/titles/${enc(v.video_id)}`, class: "title-link" }, v.title || v.video_id)),
                h("td", {}, String(v.n_shots ?? "")),
                h("td", {}, fmtTime(v.duration_s)),
              ),
            ),
          ),
        )
      : h("p", { class: "empty" }, "No titles yet: run `va ingest PATH` or `va demo`."),
  );
  return { dispose() {}, onKey: () => false, go };
}

export async function renderTitle(main, { session, videoId, shotId }) {
  const data = await request("GET", `/api/videos/${enc(videoId)}/timeline`);
  const n = data.shot_ids.length;
  const canEdit = Boolean(session.me && session.me.role !== "viewer");
  const duration = Math.max(data.duration_s || 0, n ? data.end_s[n - 1] : 0, 0.001);
  const state = { shot: Math.max(0, shotId ? data.shot_ids.indexOf(shotId) : 0), track: 0, undo: [] };
  const video = h("video", { id: "title-player", controls: true, preload: "auto", playsinline: true, style: "width:100%;max-height:52vh;background:#000;border-radius:8px" });
  if (n) video.src = `/api/shots/${enc(data.shot_ids[0])}/video`;
  let stopAt = null;
  video.addEventListener("timeupdate", () => {
    if (stopAt !== null && video.currentTime >= stopAt) {
      video.pause();
      stopAt = null;
    }
    paintPlayhead();
  });

  const info = h("div", { id: "title-shot", class: "muted", style: "margin:.4rem 0" });
  const tracksBox = h("div", { id: "title-tracks", style: "position:relative" });
  const canvases = [];
  for (const [i, track] of data.tracks.entries()) {
    const canvas = h("canvas", {
      class: "track-canvas",
      dataset: { label: track.label, index: String(i) },
      height: String(TRACK_H),
      style: `width:100%;height:${TRACK_H}px;display:block;cursor:pointer;border-radius:4px`,
      title: "Click a shot to play it",
    });
    canvas.addEventListener("click", (event) => {
      const rect = canvas.getBoundingClientRect();
      const at = shotAt(((event.clientX - rect.left) / rect.width) * duration);
      if (at < 0) return;
      state.track = i;
      select(at, { play: true });
    });
    canvases.push(canvas);
    tracksBox.append(
      h(
        "div",
        { class: "track", dataset: { label: track.label }, style: "margin:.5rem 0" },
        h("div", { class: "track-name", style: "font-size:.85rem;display:flex;gap:.6rem" }, h("strong", {}, track.label), h("span", { class: "muted" }, SOURCE_TEXT[track.source](track.version))),
        canvas,
      ),
    );
  }
  const legend = h(
    "p",
    { class: "muted", style: "font-size:.8rem" },
    "Colour: the shot's score, ",
    h("span", { style: `color:${scoreColour(0)}` }, "■ 0"),
    " … ",
    h("span", { style: `color:${scoreColour(1)}` }, "■ 1"),
    "; marks above a shot: your ",
    h("span", { style: "color:#138a4b" }, "■ positive"),
    " / ",
    h("span", { style: "color:#c4322c" }, "■ negative"),
    ". Keys: j/k or ←/→ shot, ↑/↓ label, p/n label it, Enter play, u undo.",
  );
  replace(
    main,
    h("p", {}, h("a", { href: "#/titles" }, "← Titles")),
    h("h1", { id: "title-name" }, data.title || videoId),
    n ? video : h("p", { class: "empty" }, "This title has no shots."),
    info,
    data.tracks.length ? tracksBox : h("p", { class: "empty" }, "No labels yet: create one to see its track here."),
    legend,
  );

  function shotAt(t) {
    let lo = 0;
    let hi = n - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (data.start_s[mid] <= t) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  function paint() {
    for (const [i, canvas] of canvases.entries()) paintTrack(canvas, data.tracks[i], i === state.track);
    paintInfo();
  }

  function paintTrack(canvas, track, active) {
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    if (canvas.width !== width) canvas.width = width;
    canvas.height = Math.round(TRACK_H * ratio);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    const w = width / ratio;
    g.clearRect(0, 0, w, TRACK_H);
    const x = (t) => (t / duration) * w;
    for (let s = 0; s < n; s++) {
      const x0 = x(data.start_s[s]);
      const x1 = Math.max(x0 + 0.5, x(data.end_s[s]));
      const gap = x1 - x0 > 4 ? 1 : 0; // a hairline between shots wide enough to tell apart
      g.fillStyle = scoreColour(track.scores[s]);
      g.fillRect(x0, MARK_H, x1 - x0 - gap, TRACK_H - MARK_H);
      const mine = track.mine[s];
      if (mine === true || mine === false) {
        g.fillStyle = mine ? "#138a4b" : "#c4322c";
        g.fillRect(x0, 0, x1 - x0, MARK_H - 1);
      }
    }
    if (n) {
      const s = state.shot;
      g.strokeStyle = active ? "#111" : "rgba(0,0,0,.45)";
      g.lineWidth = active ? 2 : 1;
      g.strokeRect(x(data.start_s[s]) + 1, MARK_H, Math.max(2, x(data.end_s[s]) - x(data.start_s[s]) - 2), TRACK_H - MARK_H - 1);
    }
  }

  function paintPlayhead() {
    const i = shotAt(video.currentTime);
    if (i >= 0 && i !== state.shot && !video.paused) {
      state.shot = i;
      paint();
    }
  }

  function paintInfo() {
    if (!n) return;
    const s = state.shot;
    const track = data.tracks[state.track];
    const parts = [`Shot ${s + 1} of ${n}`, `${fmtTime(data.start_s[s])}–${fmtTime(data.end_s[s])}`];
    if (track) {
      parts.push(`${track.label}: score ${fmtMetric(track.scores[s])}`);
      const mine = track.mine[s];
      parts.push(mine === true ? "you: positive" : mine === false ? "you: negative" : "not labelled by you");
    }
    info.dataset.shot = data.shot_ids[s];
    info.textContent = parts.join(" · ");
  }

  function select(i, { play = false } = {}) {
    state.shot = Math.max(0, Math.min(n - 1, i));
    paint();
    if (play) playShot();
  }

  function playShot() {
    const s = state.shot;
    const start = data.start_s[s];
    stopAt = data.end_s[s];
    const go = () => {
      video.currentTime = start;
      video.play().catch(() => {});
    };
    if (video.readyState >= 1) go();
    else video.addEventListener("loadedmetadata", go, { once: true });
  }

  async function annotate(value, { fromUndo = false, at = state.shot, trackIndex = state.track } = {}) {
    const track = data.tracks[trackIndex];
    if (!track) return;
    if (!canEdit) return toast("Viewers cannot label.", "error");
    const shotId = data.shot_ids[at];
    const before = { value: track.mine[at], version: track.mine_versions[at] };
    if (before.value === value) return;
    try {
      const answer =
        value === null
          ? await api.unannotate(track.label, shotId, { expectedVersion: before.version })
          : await api.annotate(track.label, shotId, value, { source: "", expectedVersion: before.version });
      const row = (answer && (answer.annotation || answer)) || {};
      track.mine[at] = value;
      track.mine_versions[at] = row.version ?? before.version + 1;
      if (!fromUndo) state.undo.push({ at, trackIndex, value: before.value });
      paint();
    } catch (e) {
      toast(e.status === 409 ? "Someone changed this annotation since the page loaded; reload the page." : e.message, "error");
    }
  }

  const onResize = () => paint();
  window.addEventListener("resize", onResize);
  paint();
  if (shotId && state.shot > 0) playShot();

  return {
    dispose() {
      window.removeEventListener("resize", onResize);
      video.pause();
    },
    onKey(event) {
      const key = event.key;
      if (!n) return false;
      if (key === "ArrowRight" || key === "j") select(state.shot + 1);
      else if (key === "ArrowLeft" || key === "k") select(state.shot - 1);
      else if (key === "ArrowDown") {
        state.track = Math.min(data.tracks.length - 1, state.track + 1);
        paint();
      } else if (key === "ArrowUp") {
        state.track = Math.max(0, state.track - 1);
        paint();
      } else if (["p", "1", "n", "2"].includes(key)) {
        const at = state.shot;
        annotate(key === "p" || key === "1", { at }).then(() => select(at + 1));
      } else if (key === "Enter" || key === " ") {
        if (event.target && ["BUTTON", "A", "VIDEO"].includes(event.target.tagName)) return false;
        playShot();
      } else if (key === "u") {
        const last = state.undo.pop();
        if (!last) toast("Nothing to undo.");
        else annotate(last.value, { fromUndo: true, at: last.at, trackIndex: last.trackIndex }).then(() => select(last.at));
      } else return false;
      return true;
    },
  };
}
