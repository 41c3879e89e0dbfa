"""Before the first build the Feeds tab offers a random sample to label beside search, its labels carry the
source ``random``, Search finds more like the positives so far, and after a build the Feeds tab opens on
Borderline (issue 13's interleave flow)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_support import Served
from va_testing import poll

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]

LABEL = "sample-first"


def test_the_feeds_tab_samples_before_a_build_and_opens_borderline_after(
    small_service: Served, browser: Any, artifacts: Path
) -> None:
    from playwright.sync_api import expect

    served = small_service
    api = httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {served.second_token}"}, timeout=300)
    api.post("/api/labels", json={"name": LABEL}).raise_for_status()

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

    # -- no model yet: the Feeds tab says what is missing and shows a random sample of unlabelled shots --
    page.goto(f"{served.url}/#/labels/{LABEL}/feeds")
    expect(page.locator("#sample-intro")).to_contain_text("No model yet")
    expect(page.locator("#sample-intro")).to_contain_text(
        "3 more positive and 3 more negative shots, from Search and from this sample"
    )
    expected = api.get(f"/api/labels/{LABEL}/sample").json()["items"]
    cards = page.locator("#feed-body .card")
    expect(cards).to_have_count(min(served.settings.feed_size, served.shots))  # type: ignore[attr-defined]
    shown = cards.evaluate_all("cards => cards.map(c => c.dataset.shot)")
    assert shown == [i["shot_id"] for i in expected]  # the same draw: nothing was labelled in between
    expect(cards.first.locator(".badge.score")).to_have_count(0)  # no model, so no score
    page.screenshot(path=str(artifacts / "sample-01-before-build.png"))

    # Labelling from the sample sends the source 'random' (the unbiased set the random-ap reward scores).
    first, second = cards.nth(0), cards.nth(1)
    first.locator(".btn-neg").click()
    expect(first).to_have_class(re.compile(r"\bis-neg\b"))
    second.locator(".btn-pos").click()
    expect(second).to_have_class(re.compile(r"\bis-pos\b"))

    def mine() -> dict[str, str]:
        rows = api.get(f"/api/labels/{LABEL}/annotations", params={"annotator": name}).json()["annotations"]
        return {r["shot_id"]: r["source"] for r in rows}

    got = poll(mine, until=lambda rows: len(rows) == 2, timeout=20, what="the sample's two annotations")
    assert got == {shown[0]: "random", shown[1]: "random"}
    # The next draw leaves them out.
    redrawn = {i["shot_id"] for i in api.get(f"/api/labels/{LABEL}/sample", params={"size": 500}).json()["items"]}
    assert not redrawn & {shown[0], shown[1]}

    # -- Search offers "More like my positives": unlabelled shots like the sample's positive --
    page.goto(f"{served.url}/#/labels/{LABEL}/search")
    page.click("#search-like-positives")
    expect(page.locator("#search-summary")).to_contain_text("like your positives")
    like_cards = page.locator("#search-results .card")
    expect(like_cards.first).to_be_visible()
    liked = like_cards.evaluate_all("cards => cards.map(c => c.dataset.shot)")
    want = api.get("/api/search", params={"like_label": LABEL, "limit": 60}).json()["results"]
    assert liked == [r["shot_id"] for r in want] and not set(liked) & {shown[0], shown[1]}
    expect(like_cards.first.locator(".badge.score")).to_be_visible()  # ranked by likeness
    like_cards.first.locator(".btn-pos").click()
    got = poll(mine, until=lambda rows: len(rows) == 3, timeout=20, what="the search annotation")
    assert got[liked[0]] == "search"
    page.screenshot(path=str(artifacts / "sample-02-like-positives.png"))

    # -- after a build the Feeds tab opens on Borderline, the feed the replays found best to start from --
    items = [{"shot_id": s, "value": i % 2 == 0} for i, s in enumerate(shown[2:8]) if s != liked[0]]
    api.post(f"/api/labels/{LABEL}/annotations:batch", json={"items": items, "source": "search"}).raise_for_status()
    assert api.post(f"/api/labels/{LABEL}/build").status_code == 200
    page.goto(f"{served.url}/#/labels/{LABEL}/search")
    page.goto(f"{served.url}/#/labels/{LABEL}/feeds")
    expect(page.locator("#feed-borderline")).to_have_class(re.compile(r"\bactive\b"))
    expect(page.locator("#feed-body .card").first.locator(".badge.score")).to_be_visible()
    expect(page.locator("#sample-intro")).to_have_count(0)
    # the two labels from the sample are over a tenth of the build's labels: no caveat over the score
    assert api.get(f"/api/labels/{LABEL}").json()["latest_version"]["extra"]["quality_caveat"] is None
    expect(page.locator("#quality-caveat")).to_have_count(1)
    expect(page.locator("#quality-caveat")).to_be_hidden()
    page.screenshot(path=str(artifacts / "sample-03-after-build.png"))
    assert problems == []
    context.close()
