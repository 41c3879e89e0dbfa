// Reads a label's numbers from the service's answers, whatever the nesting, in one place.

import { h } from "../dom.js";

const pick = (...values) => values.find((v) => v !== undefined && v !== null);

export function labelStats(label, info = {}) {
  const r = label.readiness || {};
  const latest = label.latest || label.latest_version || {};
  const counts = label.counts || {};
  const nPos = pick(r.n_pos, label.n_pos, counts.positive, counts.n_pos, 0);
  const nNeg = pick(r.n_neg, label.n_neg, counts.negative, counts.n_neg, 0);
  const minPos = pick(label.min_positive, info.min_positive, 10);
  const minNeg = pick(label.min_negative, info.min_negative, 10);
  const needPos = pick(r.need_pos, r.need_positive, label.need_positive, Math.max(0, minPos - nPos));
  const needNeg = pick(r.need_neg, r.need_negative, label.need_negative, Math.max(0, minNeg - nNeg));
  return {
    nPos,
    nNeg,
    needPos,
    needNeg,
    ready: pick(r.ready, needPos === 0 && needNeg === 0),
    version: pick(latest.version, label.version, label.latest_version_number),
    quality: pick(latest.model_quality, label.model_quality),
    diversity: pick(latest.data_diversity, label.data_diversity),
    recommendation: pick(latest.recommendation, label.recommendation, ""),
    nextFeed: pick(latest.next_feed, ""),
    agreement: pick(label.agreement, null),
  };
}

export function missingText(s) {
  const parts = [];
  if (s.needPos > 0) parts.push(`${s.needPos} more positive`);
  if (s.needNeg > 0) parts.push(`${s.needNeg} more negative`);
  return parts.join(", ");
}

// The recommender's pick is an opt-in hint (issue 13): no live reward made it beat labelling the feeds in their
// marked order in the replays, so it is hidden until an annotator asks for it; the choice is kept per browser.
const HINT_KEY = "va.recommenderHint";
export const HINT_EVIDENCE =
  "In our replays (benchmarks/README.md, Sample efficiency) following the recommender did not beat labelling the feeds in their marked order (▸ next): median change in test AP after 1,000 labels between −5.6 and 0.0 points at 2% prevalence for its three live rewards, and none reached the +1.5 we asked of it.";
export function hintShown() {
  try {
    return localStorage.getItem(HINT_KEY) === "on";
  } catch {
    return false;
  }
}
export function setHintShown(on) {
  try {
    if (on) localStorage.setItem(HINT_KEY, "on");
    else localStorage.removeItem(HINT_KEY);
  } catch {
    /* storage refused (private mode): the choice lasts until the page reloads */
  }
}

export const FEED_NAMES = {
  top_positive: "Top positive",
  top_negative: "Top negative",
  borderline: "Borderline",
  random: "Random",
  search: "Search",
};

// The quality caveat's text for a version (issue 13), or "": its extra.quality_caveat. Versions built before
// that was saved have only label_sources, and were warned only when none of their labels could be a random sample.
export function qualityCaveat(versionExtra) {
  const extra = versionExtra || {};
  let from = 0;
  let total = 0;
  if ("quality_caveat" in extra) {
    if (!extra.quality_caveat) return "";
    ({ from_sample: from, labels: total } = extra.quality_caveat);
  } else {
    const sources = extra.label_sources;
    if (!sources || sources.random || sources.import || sources.unknown) return "";
  }
  if (!from) return "⚠ None of these labels came from a random sample, so model quality only covers shots like the ones you searched for or were shown.";
  const pct = Math.round((100 * from) / total);
  return `⚠ Only ${from} of these ${total} labels (${pct}%) came from a random sample, so model quality mostly covers shots like the ones you searched for or were shown, and may look better than the model is.`;
}

// " k of these n labels (x%) came from a random sample …", from a version's extra.label_sample (builds since the
// import kept where shots were picked), for the quality score's tooltip; "" for older versions.
export function sampleText(versionExtra) {
  const sample = (versionExtra || {}).label_sample;
  if (!sample || !sample.labels) return "";
  const pct = Math.round((100 * sample.from_sample) / sample.labels);
  return ` ${sample.from_sample} of these ${sample.labels} labels (${pct}%) came from a random sample (the Random feed, the sample before the first build, or labels whose origin is not known): the more, the fairer the score.`;
}

// "⚠" beside a version's quality when too few of its labels came from a random sample; the caveat in its tooltip.
export function caveatMark(version) {
  const warning = qualityCaveat((version || {}).extra);
  return warning ? h("span", { class: "caveat-mark", title: warning }, "⚠") : null;
}
