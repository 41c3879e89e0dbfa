"""Every shot plays in the real browser, whatever its source format (issue 17).

The catalog holds an H.264 MP4 (played as it is), an MPEG-4 Part 2 AVI, an HEVC MP4 (when the local
ffmpeg has libx265) and a ProRes MOV, which Chromium cannot decode: they play from proxies. Every shot's
<video> reaches readyState >= 2 at the shot's start and stops at its end. When no proxy can be made, the
card says why and the shot is labelled from its thumbnail.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from proxy_formats import make_format_clips
from va_testing import serve_annotation_app

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]
LOGIN = ("proxy-viewer", "correct horse battery staple")


@dataclass(frozen=True)
class Formats:
    settings: Any
    url: str
    titles: dict[str, str]  # format -> title shown in the UI


@pytest.fixture(scope="module")
def formats_service(tmp_path_factory: pytest.TempPathFactory, sample_videos_dir: Path) -> Iterator[Formats]:
    """The catalog formats ingested by the real pipeline (handcrafted encoder), served on a free port."""
    from annotator_core.settings import Settings
    from annotator_core.shot_store import ShotStore
    from annotator_core.store import AnnotationStore
    from pipelines.ingest import run_ingest

    root = tmp_path_factory.mktemp("proxy-e2e")
    files = make_format_clips(sample_videos_dir / "bikes.mp4", root / "footage")
    settings = Settings(data_dir=root / "data", encoder="handcrafted", n_clusters=2)
    summary = run_ingest([str(p) for p in files.values()], settings=settings, encoder_spec="handcrafted")
    assert summary.videos_failed == 0, summary.failures
    title_of = {str(v["uri"]): str(v["title"]) for v in ShotStore.from_settings(settings).videos(status="done")}
    annotations = AnnotationStore.from_settings(settings)
    annotations.users.create(LOGIN[0], "annotator", password=LOGIN[1])
    annotations.db.close()
    with serve_annotation_app(settings) as url:
        yield Formats(settings=settings, url=url, titles={name: title_of[str(p)] for name, p in files.items()})


def _open_label(browser: Any, url: str, label: str) -> tuple[Any, Any]:
    from playwright.sync_api import expect

    expect.set_options(timeout=60_000)  # a shot's first play makes its proxy; the machine may be loaded
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(url + "/")
    page.fill("#login-name", LOGIN[0])
    page.fill("#login-password", LOGIN[1])
    page.click("#login-form button[type=submit]")
    expect(page.locator(".who .user")).to_contain_text(LOGIN[0])
    page.fill("#label-name", label)
    page.click("#create-label button[type=submit]")
    expect(page.locator("#label-title")).to_have_text(label)
    return context, page


def _show_title(page: Any, title: str) -> Any:
    from playwright.sync_api import expect

    page.click("#tab-search")
    value = page.locator("#search-video option", has_text=title).get_attribute("value")
    page.select_option("#search-video", value)
    expect(page.locator("#search-summary")).to_contain_text(title)
    cards = page.locator("#search-results .card")
    expect(cards.first).to_be_visible()
    return cards


def test_every_shot_of_every_format_plays_its_span(formats_service: Formats, browser: Any, artifacts: Path) -> None:
    from playwright.sync_api import expect

    context, page = _open_label(browser, formats_service.url, "plays")
    renditions: dict[str, set[str]] = {}
    page.on(
        "response",
        lambda r: (
            renditions.setdefault(r.url.split("/api/shots/")[1].split("/")[0], set()).add(
                r.headers.get("x-va-rendition", "")
            )
            if "/video" in r.url and "/api/shots/" in r.url
            else None
        ),
    )
    played = 0
    for name, title in formats_service.titles.items():
        cards = _show_title(page, title)
        for i in range(cards.count()):
            card = cards.nth(i)
            start, end = card.evaluate("card => [card.shot.start_s, card.shot.end_s]")
            card.locator(".media").click()
            video = card.locator("video")
            expect(video).to_have_count(1)
            # Played through: it stops at the shot's end.
            page.wait_for_function(
                "([v, end]) => v.readyState >= 2 && v.paused && v.currentTime >= end - 0.1",
                arg=[video.element_handle(), end],
                timeout=60_000,
            )
            assert end - 0.1 <= video.evaluate("v => v.currentTime") <= end + 0.3, (name, i)
            # Back at the shot's start, a frame is there to show (readyState >= 2, HAVE_CURRENT_DATA).
            at_start = video.evaluate(
                """(v, start) => new Promise((done) => {
                     v.addEventListener("seeked", () => done([v.readyState, v.currentTime]), { once: true });
                     v.currentTime = start;
                   })""",
                start,
            )
            assert at_start[0] >= 2 and abs(at_start[1] - start) <= 0.1, (name, i, at_start, start)
            played += 1
        page.screenshot(path=str(artifacts / f"proxy-{name}.png"))
    assert played >= len(formats_service.titles)
    expect(page.locator(".unplayable")).to_have_count(0)
    shot_renditions = {r for seen in renditions.values() for r in seen}
    assert shot_renditions == {"source", "proxy"}, renditions
    context.close()


def test_a_shot_that_cannot_play_says_why_and_is_labelled_from_its_thumbnail(
    formats_service: Formats, browser: Any, artifacts: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the proxy folder should be")
    broken = formats_service.settings.model_copy(update={"proxy_dir": str(blocker / "proxies")})
    with serve_annotation_app(broken) as url:
        context, page = _open_label(browser, url, "unplayable")
        card = _show_title(page, formats_service.titles["prores"]).first
        card.locator(".media").click()
        reason = card.locator(".unplayable")
        expect(reason).to_contain_text("this shot cannot play")
        expect(reason).to_contain_text("label it from its thumbnail")
        expect(card.locator(".media img")).to_be_visible()
        page.screenshot(path=str(artifacts / "proxy-unplayable.png"))
        card.locator(".btn-pos").click()
        expect(card).to_have_class(re.compile(r"\bis-pos\b"))
        context.close()
