// Near-duplicate groups on shot cards (issue 16). Feeds and search show a group once; its card carries a
// badge with the group's size that opens the group, and "whole group" buttons beside the card's own:
// one request labels every member (source "group"), and one undo ('u') takes all of them back.

import { request } from "./api.js";
import { h, replace, toast } from "./dom.js";
import { repaintShot, shotGrid } from "./shots.js";

const enc = encodeURIComponent;

// Adds the group badge and the whole-group buttons to a card of a shot that has near-duplicates.
export function decorateGroup(card, shot, ctx, source) {
  const size = Number(shot.group_size || 1);
  if (size < 2) return;
  card.dataset.group = shot.group_id;
  const badge = h(
    "button",
    {
      type: "button",
      class: "badge group",
      style: "pointer-events: auto; cursor: pointer; border: 0",
      title: `This shot stands for ${size} near-duplicate shots (copies, re-encodes, recaps); click to see them all`,
      onclick: (e) => (e.stopPropagation(), openGroup(shot, ctx, source)),
    },
    `×${size}`,
  );
  card.querySelector(".badges")?.append(badge);
  if (!ctx.canEdit || !ctx.labelGroup) return;
  card.append(
    h(
      "div",
      { class: "group-actions small" },
      h("span", { class: "muted" }, `All ${size}: `),
      h("button", { type: "button", class: "link btn-group-pos", title: `Label all ${size} shots of the group positive (one undo takes them all back)`, onclick: () => ctx.labelGroup(shot, true, source) }, "✓ group"),
      " ",
      h("button", { type: "button", class: "link btn-group-neg", title: `Label all ${size} shots of the group negative (one undo takes them all back)`, onclick: () => ctx.labelGroup(shot, false, source) }, "✗ group"),
    ),
  );
}

function remember(answer, ctx) {
  for (const [sid, a] of Object.entries(answer.annotations || {})) {
    ctx.mine.set(sid, { value: a.value ?? null, version: a.version ?? 0 });
    repaintShot(sid, ctx);
  }
}

// One request records one annotation per member; the undo stack gets one entry for all of them.
export async function labelGroup(shot, value, ctx) {
  try {
    const answer = await request("POST", `/api/labels/${enc(ctx.name)}/groups/${enc(shot.shot_id)}/annotations`, { json: { value } });
    remember(answer, ctx);
    if (answer.batch) ctx.undo.push({ batch: answer.batch, shot, size: answer.group_size });
    toast(`Labelled the whole group ${value ? "positive" : "negative"}: ${answer.written} of ${answer.group_size} shots changed`);
    ctx.refreshSoon?.();
  } catch (e) {
    toast(e.message, "error");
  }
}

export async function undoGroup(last, ctx) {
  try {
    const answer = await request("POST", `/api/labels/${enc(ctx.name)}/batches/${enc(last.batch)}/undo`);
    remember(answer, ctx);
    toast(`Undone: the ${answer.undone} annotations of the group of ${last.shot.title || last.shot.shot_id} are back as they were`);
    ctx.refreshSoon?.();
  } catch (e) {
    toast(e.message, "error");
  }
}

// The group's members in a panel over the page, each a card of its own ("label this shot").
export async function openGroup(shot, ctx, source) {
  document.getElementById("group-panel")?.remove();
  const body = h("div", { class: "group-body" }, h("p", { class: "muted" }, "Loading…"));
  const panel = h(
    "section",
    {
      id: "group-panel",
      class: "group-panel",
      role: "dialog",
      "aria-label": "Near-duplicate group",
      style: "position: fixed; inset: 5% 5%; z-index: 50; overflow: auto; background: var(--bg, #fff); padding: 1rem; border-radius: 10px; box-shadow: 0 8px 40px rgba(0,0,0,.4)",
    },
    h(
      "header",
      { style: "display: flex; justify-content: space-between; align-items: center" },
      h("h2", {}, `Near-duplicates of ${shot.title || shot.shot_id}`),
      h("button", { type: "button", class: "close-group", onclick: () => panel.remove() }, "Close"),
    ),
    body,
  );
  document.body.append(panel);
  try {
    const answer = await request("GET", `/api/shots/${enc(shot.shot_id)}/group`, { query: { label: ctx.name } });
    const members = answer.members.map((m) => ({ ...m, group_size: 1 }));
    replace(
      body,
      h("p", { class: "muted small" }, `${answer.group_size} shots; feeds and search show only the first. Label one shot with its own buttons, or all with the whole-group buttons on its card.`),
      shotGrid(members, ctx, { source: source || "search" }),
    );
  } catch (e) {
    replace(body, h("p", { class: "form-error" }, e.message));
  }
}
