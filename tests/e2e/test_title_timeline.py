"""A title's page in a real headless Chromium: the player, one canvas track per label, a click plays that shot.

Its own small service (one demo montage with known cuts, ingested by the real pipeline) so the labels it
creates do not show up in the annotation workflow test, which starts from an empty label list.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from va_testing import serve_annotation_app

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]

LABEL = "title-test"
TITLE = "montage_02"
EDITOR = ("editor", "correct horse battery")


@pytest.fixture(scope="module")
def title_service(tmp_path_factory: pytest.TempPathFactory, demo_footage: list[Path]) -> Iterator[tuple[str, Any]]:
    from annotator_core.settings import Settings
    from annotator_core.shot_store import ShotStore
    from annotator_core.store import AnnotationStore
    from pipelines.ingest import run_ingest

    settings = Settings(data_dir=tmp_path_factory.mktemp("va-title"), encoder="handcrafted", n_clusters=2)
    footage = [p for p in demo_footage if p.stem == TITLE]
    summary = run_ingest([str(p) for p in footage], settings=settings, encoder_spec="handcrafted")
    assert summary.videos_failed == 0, summary.failures
    assert ShotStore.from_settings(settings).counts()["shots"] >= 3
    store = AnnotationStore.from_settings(settings)
    store.users.create(EDITOR[0], "annotator", password=EDITOR[1])
    store.labels.create(LABEL)
    with serve_annotation_app(settings) as url:
        yield url, settings


def test_clicking_a_segment_plays_that_shot_and_keys_label_it(
    title_service: Any, browser: Any, artifacts: Path
) -> None:
    from playwright.sync_api import expect

    from annotator_core.shot_store import ShotStore
    from annotator_core.store import AnnotationStore

    url, settings = title_service
    expect.set_options(timeout=20_000)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

    page.goto(url + "/")
    page.fill("#login-name", EDITOR[0])
    page.fill("#login-password", EDITOR[1])
    page.click("#login-form button[type=submit]")
    expect(page.locator(".who .user")).to_contain_text(EDITOR[0])

    # The title list, from the top bar, links to the title page.
    page.click(".nav-titles")
    link = page.locator(".titles-list .title-link", has_text=TITLE)
    expect(link).to_be_visible()
    link.click()
    expect(page.locator("#title-name")).to_have_text(TITLE)
    canvas = page.locator(f'.track-canvas[data-label="{LABEL}"]')
    expect(canvas).to_be_visible()

    store = ShotStore.from_settings(settings)
    video_id = next(v["video_id"] for v in store.videos() if v["title"] == TITLE)
    shots = store.shots_of_video(video_id)
    assert len(shots) >= 3
    duration = max(float(store.get_video(video_id)["duration_s"]), float(shots[-1]["end_s"]))
    target = shots[2]
    start, end = float(target["start_s"]), float(target["end_s"])

    # Click the middle of the third shot's segment: the player seeks to it, plays, and stops at its end.
    box = canvas.bounding_box()
    assert box is not None
    x = box["width"] * ((start + end) / 2) / duration
    canvas.click(position={"x": x, "y": box["height"] - 5})
    expect(page.locator("#title-shot")).to_have_attribute("data-shot", target["shot_id"])
    video = page.locator("#title-player")
    expect(video).to_have_attribute("src", re.compile(r"/api/shots/.+/video$"))
    page.wait_for_function(
        "([v, start]) => v.readyState >= 2 && !v.paused && v.currentTime >= start - 0.05",
        arg=[video.element_handle(), start],
    )
    page.wait_for_function("([v, end]) => v.paused && v.currentTime >= end - 0.1", arg=[video.element_handle(), end])
    assert start - 0.1 <= video.evaluate("v => v.currentTime") <= end + 0.3
    page.screenshot(path=str(artifacts / "title-timeline.png"))

    # Keys as in the feeds: p labels the selected shot positive and moves on; k goes back; n relabels it.
    page.locator("body").press("p")
    expect(page.locator("#title-shot")).to_have_attribute("data-shot", shots[3]["shot_id"])
    annotations = AnnotationStore.from_settings(settings).annotations
    assert {r.shot_id: r.value for r in annotations.current(LABEL)} == {target["shot_id"]: True}
    page.locator("body").press("k")
    expect(page.locator("#title-shot")).to_contain_text("you: positive")
    page.locator("body").press("n")
    expect(page.locator("#title-shot")).to_have_attribute("data-shot", shots[3]["shot_id"])
    assert {r.shot_id: r.value for r in annotations.current(LABEL)} == {target["shot_id"]: False}
    # A reload draws the annotation from the server's timeline (the mark is on the canvas, the text says it).
    page.reload()
    expect(page.locator("#title-name")).to_have_text(TITLE)
    page.goto(f"{url}/#/titles/{video_id}/{target['shot_id']}")
    expect(page.locator("#title-shot")).to_contain_text("you: negative")
    assert not problems, problems
    context.close()
