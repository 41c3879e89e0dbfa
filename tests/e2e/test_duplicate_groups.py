"""Near-duplicate groups in a real headless Chromium over real sample clips: a feed shows a group once
with its size, the badge opens the group, "whole group" labels every member, and one undo ('u') removes them all."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_support import Served
from va_testing import poll

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]

LABEL = "dup-groups"


def test_a_group_is_shown_once_labelled_whole_and_undone_in_one_step(
    small_service: Served, browser: Any, artifacts: Path
) -> None:
    from playwright.sync_api import expect

    from annotator_core.shot_store import ShotStore

    served = small_service
    store = ShotStore.from_settings(served.settings)
    api = httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {served.second_token}"}, timeout=300)
    # A second annotator labels 4 + 4 shots through the API and builds.
    ids = sorted(str(s) for s in store.vectors().ids)
    items = [{"shot_id": s, "value": i % 2 == 0} for i, s in enumerate(ids[:8])]
    api.post("/api/labels", json={"name": LABEL}).raise_for_status()
    api.post(f"/api/labels/{LABEL}/annotations:batch", json={"items": items, "source": "search"}).raise_for_status()
    answer = api.post(f"/api/labels/{LABEL}/build")
    assert answer.status_code == 200, answer.text
    first = answer.json()
    # The group: the best-scoring unlabelled shot, standing for two others; the next build shows it alone.
    unlabelled = [i["shot_id"] for i in first["feeds"]["top_positive"] if i["labeled"] is None]
    head, others = unlabelled[0], unlabelled[-2:]
    everyone = [head, *others]
    store.upsert_duplicates(
        [{"shot_id": sid, "group_id": head, "representative": sid == head, "encoder": "tiny"} for sid in everyone]
    )
    api.post(f"/api/labels/{LABEL}/build").raise_for_status()

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    expect.set_options(timeout=20_000)
    page.goto(served.url + "/")
    name, password = served.login
    page.fill("#login-name", name)
    page.fill("#login-password", password)
    page.click("#login-form button[type=submit]")
    expect(page.locator(".who .user")).to_contain_text(name)
    page.goto(f"{served.url}/#/labels/{LABEL}/feeds")
    page.click("#feed-top_positive")

    # The feed shows the group's representative once, with the group's size, and none of its copies.
    card = page.locator(f'#feed-body .card[data-shot="{head}"]')
    expect(card).to_be_visible()
    expect(card.locator(".badge.group")).to_have_text(f"×{len(everyone)}")
    for sid in others:
        expect(page.locator(f'#feed-body .card[data-shot="{sid}"]')).to_have_count(0)
    page.screenshot(path=str(artifacts / "dup-01-feed-group-badge.png"))

    # The badge opens the group: every member, the representative first.
    card.locator(".badge.group").click()
    expect(page.locator("#group-panel .card")).to_have_count(len(everyone))
    shown = page.locator("#group-panel .card").evaluate_all("cards => cards.map(c => c.dataset.shot)")
    assert shown[0] == head and sorted(shown[1:]) == sorted(others)
    page.screenshot(path=str(artifacts / "dup-02-group-open.png"))
    page.click("#group-panel .close-group")
    expect(page.locator("#group-panel")).to_have_count(0)

    def editors() -> dict[str, str]:
        rows = api.get(f"/api/labels/{LABEL}/annotations", params={"annotator": name}).json()["annotations"]
        return {r["shot_id"]: r["source"] for r in rows}

    # "Whole group": one click labels every member, each with the source 'group'.
    card.locator(".btn-group-pos").click()
    expect(card).to_have_class(re.compile(r"\bis-pos\b"))
    labelled = poll(editors, until=lambda rows: len(rows) == len(everyone), timeout=20, what="the group labelled")
    assert labelled == dict.fromkeys(everyone, "group")
    page.screenshot(path=str(artifacts / "dup-03-group-labelled.png"))

    # One undo removes them all.
    page.locator("#label-title").click()
    page.keyboard.press("u")
    expect(card).not_to_have_class(re.compile(r"\bis-pos\b"))
    poll(editors, until=lambda rows: not rows, timeout=20, what="the group's annotations undone")
    events = api.get(f"/api/labels/{LABEL}/events").json()["events"]
    mine = [e for e in events if e["annotator"] == name]
    assert len(mine) == 2 * len(everyone) and len({e["batch"] for e in mine}) == 2
    assert problems == []
    context.close()
