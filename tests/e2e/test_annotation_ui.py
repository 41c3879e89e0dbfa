"""The whole annotation workflow in a real headless Chromium against the served app over real footage.

Log in, create a label, search (the offline encoder has no text tower: the page says so and
"more like this" is used), label 10 + 10 with the keyboard, undo with 'u', build with 'b', see
the four feeds and both scores, review, undo one annotation there, see the history plot,
export and import, and meet a conflict. A screenshot is saved at every step.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest

# The first test's setup ingests the demo footage with Ray: 198 s of setup and 38 s of test measured at load 10-24
# on 2 cores, too close to 300 s.
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]

LABEL = "street-scenes"
FEEDS = ("top_positive", "top_negative", "borderline", "random")


def _stat(page: Any, stat_id: str) -> Any:
    return page.locator(f"#{stat_id} .stat-value")


def _new_page(browser: Any) -> tuple[Any, Any, list[str]]:
    """A fresh browser context and page; script errors on the page are collected for the test to check."""
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    return context, page, problems


def test_annotation_workflow_in_the_browser(annotation_service: Any, browser: Any, artifacts: Path) -> None:
    from playwright.sync_api import expect

    context, page, problems = _new_page(browser)
    page.on(
        "console",
        # Answers the test provokes on purpose (bad password, not logged in yet, the conflict) are expected.
        lambda msg: (
            problems.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" and not re.search(r"status of (401|409)", msg.text)
            else None
        ),
    )

    def shot(name: str) -> None:
        page.screenshot(path=str(artifacts / f"{name}.png"), full_page=False)

    # -- log in ----------------------------------------------------------------------------------
    page.goto(annotation_service.url + "/")
    expect(page.locator("#login-form")).to_be_visible()
    name, password = annotation_service.login
    page.fill("#login-name", name)
    page.fill("#login-password", "wrong password")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-form .form-error")).to_have_text("Wrong name or password.")
    page.fill("#login-password", password)
    shot("01-login")
    page.click("#login-form button[type=submit]")
    expect(page.locator(".who .user")).to_contain_text(name)
    expect(page.locator(".labels-list")).to_contain_text("No labels yet")
    shot("02-labels-empty")

    # -- create a label ----------------------------------------------------------------------------
    page.fill("#label-name", LABEL)
    page.fill("#label-description", "Shots of streets: traffic, cyclists, pavements. Not indoor or cartoon shots.")
    page.fill("#label-keywords", "street, traffic, bicycle")
    page.click("#create-label button[type=submit]")
    expect(page.locator("#label-title")).to_have_text(LABEL)
    expect(page.locator("#build-button")).to_be_disabled()
    expect(page.locator("#build-hint")).to_have_text("need 10 more positive, 10 more negative")

    # -- search: no text tower with the offline encoder, so the page says so; "more like this" works
    expect(page.locator("#search-note")).to_contain_text("Text search needs a vision-language model")
    expect(page.locator("#search-text")).to_be_disabled()
    expect(page.locator("#search-results .card").first).to_be_visible()
    shot("03-search-by-video")
    first = page.locator("#search-results .card").first
    example = first.get_attribute("data-shot")
    first.locator(".btn-like").click()
    expect(page.locator("#like-bar")).to_be_visible()
    expect(page.locator("#search-summary")).to_contain_text("like this one")
    cards = page.locator("#search-results .card")
    # Every other shot, each near-duplicate group once (the montages reuse clips): as many cards as the API
    # answers for the same search, and more than a handful.
    same = page.request.get(
        f"{annotation_service.url}/api/search?like={example}&limit=60",
        headers={"Authorization": f"Bearer {annotation_service.second_token}"},
    )
    assert same.status == 200, same.text()
    expected = len(same.json()["results"])
    assert expected >= 10, same.json()
    expect(cards).to_have_count(expected)
    expect(cards.first.locator(".badge.score")).to_be_visible()

    # Playing a card swaps its thumbnail for the shot's span of the video, streamed by range requests:
    # it starts at the shot's start and stops at its end.
    played = cards.nth(3)
    played.locator(".media").click()
    video = played.locator("video")
    expect(video).to_have_attribute("src", re.compile(r"/api/shots/.+/video#t=[\d.]+,[\d.]+"))
    span = played.evaluate("card => [card.shot.start_s, card.shot.end_s]")
    page.wait_for_function(
        "([v, end]) => v.readyState >= 2 && v.paused && v.currentTime >= end - 0.1",
        arg=[video.element_handle(), span[1]],
    )
    assert span[0] - 0.1 <= video.evaluate("v => v.currentTime") <= span[1] + 0.3
    shot("04-more-like-this")

    # -- label 10 positive and 11 negative with the keyboard, then undo the last with 'u' -----------
    cards.nth(1).focus()
    for _ in range(10):
        page.keyboard.press("p")
    expect(_stat(page, "stat-pos")).to_have_text("10")
    expect(page.locator("#build-hint")).to_have_text("need 10 more negative")
    for _ in range(11):
        page.keyboard.press("2")
    expect(_stat(page, "stat-neg")).to_have_text("11")
    expect(page.locator("#search-results .card.is-pos")).to_have_count(10)
    expect(page.locator("#search-results .card.is-neg")).to_have_count(11)
    page.keyboard.press("u")
    expect(_stat(page, "stat-neg")).to_have_text("10")
    expect(page.locator("#search-results .card.is-neg")).to_have_count(10)
    expect(page.locator("#build-button")).to_be_enabled()
    expect(page.locator("#build-hint")).to_have_text("ready to build")
    shot("05-labelled-10-10")

    # -- example shots: one good example and one counter-example, shown under the header to everyone --
    expect(page.locator("#label-about")).to_be_hidden()
    good, counter = cards.nth(1), cards.nth(12)
    good_id, counter_id = good.get_attribute("data-shot"), counter.get_attribute("data-shot")
    good.locator(".btn-example-pos").click()
    expect(page.locator(f'#examples-pos .example-tile[data-shot="{good_id}"]')).to_be_visible()
    expect(good.locator(".btn-example-pos")).to_have_attribute("aria-pressed", "true")
    expect(good.locator(".badge.example")).to_have_text("★ example")
    expect(page.locator("#label-about .about-description")).to_contain_text("Shots of streets")
    expect(page.locator("#label-about .about-keywords .pill")).to_have_text(["street", "traffic", "bicycle"])
    counter.locator(".btn-example-neg").click()
    expect(page.locator(f'#examples-neg .example-tile[data-shot="{counter_id}"]')).to_be_visible()
    page.locator(f'#examples-pos .example-tile[data-shot="{good_id}"] .media').click()
    expect(page.locator("#examples-pos video")).to_have_attribute("src", re.compile(r"/api/shots/.+/video#t="))
    shot("15-examples")
    # The examples are part of the label (PATCH with the full lists): they persist and every reader gets them.
    label = page.evaluate(f"fetch('/api/labels/{LABEL}').then(r => r.json())")
    assert (label["positive_examples"], label["negative_examples"]) == ([good_id], [counter_id])
    # The same button again takes the shot out of the examples; marking examples labels nothing.
    counter.locator(".btn-example-neg").click()
    expect(page.locator("#examples-neg")).to_have_count(0)
    expect(counter.locator(".btn-example-neg")).to_have_attribute("aria-pressed", "false")
    label = page.evaluate(f"fetch('/api/labels/{LABEL}').then(r => r.json())")
    assert (label["positive_examples"], label["negative_examples"]) == ([good_id], [])
    assert label["counts"] == {"positive": 10, "negative": 10}
    cards.nth(0).focus()

    # -- build with 'b': progress, then the four feeds with scores, and both metrics in the header --
    page.keyboard.press("b")
    expect(page.locator("#tab-feeds")).to_have_class(re.compile(r"\bactive\b"))
    expect(_stat(page, "stat-version")).to_have_text("v1")
    for stat_id in ("stat-quality", "stat-diversity"):
        expect(_stat(page, stat_id)).to_have_text(re.compile(r"^[01]\.\d\d$"))
    # All 20 labels came from search, none from a random sample: the header says the score only covers shots
    # like those (issue 13: search-only label sets scored a median 0.69 with 39% of their models useless).
    caveat = page.locator("#quality-caveat")
    expect(caveat).to_be_visible()
    expect(caveat).to_contain_text("None of these labels came from a random sample")
    expect(caveat).to_have_attribute("title", re.compile(r"labels found by search alone"))
    # the score's tooltip gives the share in every build, caveat or not (extra.label_sample)
    expect(page.locator("#stat-quality")).to_have_attribute("title", re.compile(r"0 of these 20 labels \(0%\) came"))
    expect(page.locator("#feed-tabs button")).to_have_count(4)
    # The first build's turn in the labelling cycle is Borderline: opened, and the one tab marked next.
    expect(page.locator("#feed-borderline")).to_have_class(re.compile(r"\bactive\b"))
    expect(page.locator("#feed-tabs .next-mark")).to_have_count(1)
    expect(page.locator("#feed-borderline .next-mark")).to_have_text("▸ next")
    # The caveat's fix is a link: from any tab it opens the Random feed, not the build's turn (Borderline).
    page.click("#tab-review")
    page.click("#caveat-random")
    expect(page.locator("#tab-feeds")).to_have_class(re.compile(r"\bactive\b"))
    expect(page.locator("#feed-random")).to_have_class(re.compile(r"\bactive\b"))
    for feed in FEEDS:
        page.click(f"#feed-{feed}")
        expect(page.locator(f"#feed-{feed}")).to_have_class(re.compile(r"\bactive\b"))
        grid = page.locator("#feed-body .card")
        expect(grid.first).to_be_visible()
        expect(grid.first.locator(".badge.score")).to_have_text(re.compile(r"^[01]\.\d\d$"))
        if feed == "top_positive":
            # The top feeds include shots already labelled, marked as such.
            expect(page.locator("#feed-body .badge.labelled").first).to_be_visible()
            shot("06-feed-top-positive")
        if feed == "borderline":
            shot("07-feed-borderline")
    expect(page.locator("#label-stats")).to_be_visible()
    # The recommender's pick is an opt-in hint, never advice (issue 13: no live reward beat the feeds in turn).
    # After the first build nothing is rewarded yet, so it names the first source, Search: hidden until the
    # annotator ticks "Show the recommender's hint", whose tooltip gives the replays' evidence; then hinted, not opened.
    rec = page.evaluate(f"fetch('/api/labels/{LABEL}').then(r => r.json())")["latest_version"]["recommendation"]
    assert rec == "search", rec
    toggle = page.locator("#hint-toggle")
    expect(toggle).not_to_be_checked()
    expect(page.locator("#suggestion label")).to_have_attribute(
        "title", re.compile(r"did not beat labelling the feeds")
    )
    expect(page.locator("#suggestion")).not_to_contain_text("a hint, not advice")
    expect(page.locator("#tab-search")).not_to_have_class(re.compile(r"\bsuggested\b"))
    toggle.check()
    expect(page.locator("#suggestion")).to_contain_text("a hint, not advice")
    expect(page.locator("#tab-search")).to_have_class(re.compile(r"\bsuggested\b"))
    expect(page.locator("#tab-feeds")).to_have_class(re.compile(r"\bactive\b"))
    expect(page.locator("#feed-tabs .star")).to_have_count(0)

    # Labelling from a feed sends that feed as the source.
    page.click("#feed-random")
    random_card = page.locator("#feed-body .card").first
    random_card.locator(".btn-pos").click()
    expect(random_card).to_have_class(re.compile(r"\bis-pos\b"))
    me = page.evaluate("fetch('/api/me').then(r => r.json())")
    answer = page.evaluate(f"fetch('/api/labels/{LABEL}/annotations?annotator={me['name']}').then(r => r.json())")
    sources = {a["shot_id"]: a["source"] for a in answer["annotations"]}
    random_shot = random_card.get_attribute("data-shot")
    assert sources[random_shot] == "random"
    assert sum(1 for s in sources.values() if s == "search") == 20

    # -- review: every labelled shot; undo one annotation ---------------------------------------------
    page.click("#tab-review")
    expect(page.locator("#review-summary")).to_have_text(re.compile(r"^21 labelled shots"))
    shot("08-review")
    # (a search label: the list is ordered by the model's score, and the random-feed label must stay for v2)
    page.locator(f"#review-body .card:not([data-shot='{random_shot}'])").first.locator(".undo-vote").click()
    expect(page.locator("#review-summary")).to_have_text(re.compile(r"^20 labelled shots"))
    page.select_option("#review-value", "false")
    expect(page.locator("#review-summary")).to_have_text(re.compile(r"^\d+ labelled shots?"))
    page.click("#review-disagreements")
    expect(page.locator("#review-summary")).to_contain_text("0 shot(s) where annotators disagree")

    # -- a second build; the hint now names a feed -------------------------------------------------------
    # One search label before it rewards search (random was rewarded by the random-feed label above), so the
    # recommender names the first source never rewarded, Top positive. That feed's tab is starred "hint", with
    # a tooltip that says it is not advice; the Feeds tab opens on the build's turn instead; following it is a click.
    (extra,) = page.evaluate(f"fetch('/api/labels/{LABEL}/sample?size=1').then(r => r.json())")["items"]
    searched = page.request.put(
        f"{annotation_service.url}/api/labels/{LABEL}/annotations/{extra['shot_id']}",
        data={"value": False, "source": "search"},
        headers={"X-CSRF-Token": me["csrf_token"], "Origin": annotation_service.url},
    )
    assert searched.status == 200, searched.text()
    page.click("#build-button")
    expect(_stat(page, "stat-version")).to_have_text("v2")
    # The caveat follows the version: v2 counts the random feed's label above, one of its 21 labels, still under
    # the tenth below which search-found labels' scores flattered useless models (benchmarks/quality_caveat.py).
    v2 = page.evaluate(f"fetch('/api/labels/{LABEL}').then(r => r.json())")["latest_version"]
    assert v2["extra"]["label_sources"].get("random") == 1, v2["extra"]["label_sources"]
    assert v2["extra"]["quality_caveat"]["from_sample"] == 1, v2["extra"]["quality_caveat"]
    expect(caveat).to_contain_text("Only 1 of these 21 labels (5%) came from a random sample")
    expect(caveat).to_have_attribute("title", re.compile(r"With under 10% of the labels from a random sample"))
    rec = page.evaluate(f"fetch('/api/labels/{LABEL}').then(r => r.json())")["latest_version"]["recommendation"]
    assert rec == "top_positive", rec
    page.click("#tab-feeds")
    # v2's turn in the labelling cycle is Random (Borderline every other build): it opens, marked next
    assert page.evaluate(f"fetch('/api/labels/{LABEL}').then(r => r.json())")["latest_version"]["next_feed"] == "random"
    expect(page.locator("#feed-random")).to_have_class(re.compile(r"\bactive\b"))
    expect(page.locator("#feed-random .next-mark")).to_have_text("▸ next")
    expect(page.locator("#feed-tabs .next-mark")).to_have_count(1)
    star = page.locator("#feed-tabs .star")
    expect(star).to_have_count(1)
    expect(page.locator("#feed-top_positive .star")).to_have_text("★ hint")
    expect(page.locator("#feed-top_positive")).to_have_attribute("title", re.compile(r"^Hint, not advice"))
    expect(page.locator("#feed-top_positive")).not_to_have_class(re.compile(r"\bactive\b"))
    expect(page.locator("#suggestion")).to_contain_text("Top positive")
    expect(page.locator("#suggestion")).to_contain_text("a hint, not advice")
    shot("09b-feed-hint")
    page.click("#suggestion .suggested-link")
    expect(page.locator("#feed-top_positive")).to_have_class(re.compile(r"\bactive\b"))
    # opting out again hides the star and the hint, and leaves the annotator on the feed they were reading
    page.uncheck("#hint-toggle")
    expect(page.locator("#feed-tabs .star")).to_have_count(0)
    expect(page.locator("#suggestion")).not_to_contain_text("a hint, not advice")
    expect(page.locator("#feed-top_positive")).to_have_class(re.compile(r"\bactive\b"))

    # -- history: the version, its metrics and the plot; the second build added a point ----------------
    page.click("#tab-history")
    expect(page.locator("#versions-table tbody tr")).to_have_count(2)
    # both versions carry the quality caveat (v2: 1 random label of 21; v1: none), marked beside the score
    marks = page.locator("#versions-table .caveat-mark")
    expect(marks).to_have_count(2)
    expect(page.locator('#versions-table tr[data-version="2"] .caveat-mark')).to_have_attribute(
        "title", re.compile(r"Only 1 of these 21 labels")
    )
    expect(page.locator("#history-plot circle")).to_have_count(4)
    shot("10-history")

    # -- export and import -------------------------------------------------------------------------
    page.click("#tab-data")
    csv_href = page.locator("#export-csv").get_attribute("href")
    exported = page.request.get(annotation_service.url + csv_href)
    assert exported.status == 200
    rows = list(csv.DictReader(io.StringIO(exported.text())))
    assert len(rows) == 21 and {"shot_id", "annotator", "value", "picked_from"} <= set(rows[0])
    parquet = page.request.get(annotation_service.url + page.locator("#export-parquet").get_attribute("href"))
    assert parquet.status == 200 and parquet.body()[:4] == b"PAR1"
    picked = rows[0]["picked_from"]
    body = f"shot_id,value,picked_from\n{rows[0]['shot_id']},1,{picked}\nno-such-video:0,1,search\n"
    page.set_input_files("#import-file", files=[{"name": "old.csv", "mimeType": "text/csv", "buffer": body.encode()}])
    page.click("#import-form button[type=submit]")
    expect(page.locator("#import-report")).to_contain_text("1 row(s) not imported")
    expect(page.locator("#import-report .unmatched")).to_contain_text("no such shot")
    # the matched row keeps where it was picked (issue 13: the quality caveat counts imported random labels)
    expect(page.locator("#import-picked")).to_have_text(f"Where they were picked: {picked.replace('_', ' ')} 1.")
    shot("11-export-import")

    # -- a conflict: the annotation changed elsewhere since the page loaded it -------------------------
    page.click("#tab-search")
    montage = page.locator("#search-video option", has_text="montage_02").get_attribute("value")
    page.select_option("#search-video", montage)
    expect(page.locator("#search-summary")).to_contain_text("montage_02")
    unlabelled = page.locator("#search-results .card:not(.is-pos):not(.is-neg)").first
    expect(unlabelled).to_be_visible()
    shot_id = unlabelled.get_attribute("data-shot")
    card = page.locator(f'#search-results .card[data-shot="{shot_id}"]')

    def write_elsewhere(version: int) -> Any:
        return page.request.put(
            f"{annotation_service.url}/api/labels/{LABEL}/annotations/{shot_id}",
            data={"value": True, "expected_version": version, "source": "search"},
            headers={"X-CSRF-Token": me["csrf_token"], "Origin": annotation_service.url},
        )

    changed = write_elsewhere(0)
    if changed.status == 409:  # a shot labelled and withdrawn earlier in this test ('u', review) is past version 0
        changed = write_elsewhere(changed.json()["error"]["current"]["version"])
    assert changed.status == 200, changed.text()
    card.locator(".btn-neg").click()
    expect(page.locator("#conflict")).to_be_visible()
    expect(page.locator("#conflict")).to_contain_text("It is now positive")
    shot("12-conflict")
    page.click("#conflict-reload")
    expect(page.locator("#conflict")).to_be_hidden()
    expect(card).to_have_class(re.compile(r"\bis-pos\b"))
    card.locator(".btn-neg").click()
    expect(card).to_have_class(re.compile(r"\bis-neg\b"))

    # -- a second annotator (a script with an API token) disagrees; the review shows it -------------------
    theirs = page.request.put(
        f"{annotation_service.url}/api/labels/{LABEL}/annotations/{shot_id}",
        data={"value": True, "source": "search"},
        headers={"Authorization": f"Bearer {annotation_service.second_token}"},
    )
    assert theirs.status == 200, theirs.text()
    page.click("#tab-review")
    page.click("#review-disagreements")
    expect(page.locator("#review-summary")).to_contain_text("1 shot(s) where annotators disagree")
    expect(page.locator("#review-summary")).to_contain_text("annotators agree on 0% of the 1 shots")
    disputed = page.locator(f'#disagree-annotators .card[data-shot="{shot_id}"]')
    expect(disputed.locator(".votes li")).to_have_count(2)
    expect(disputed.locator(".votes")).to_contain_text("second-editor")
    shot("13-review-disagreements")

    # -- the labels list shows the counts and both metrics at a glance ---------------------------------
    page.click(".crumbs a")
    row = page.locator(f'tr[data-label="{LABEL}"]')
    expect(row).to_contain_text("v2")
    # the list marks the score with the latest version's caveat too, not only the label's page
    expect(row.locator(".caveat-mark")).to_have_attribute("title", re.compile(r"Only 1 of these 21 labels"))
    expect(row.locator(".meter-num").first).to_have_text(re.compile(r"^[01]\.\d\d$"))
    shot("14-labels-list")

    context.close()
    assert not problems, problems


def test_text_search_with_a_vision_language_model(text_search_service: Any, browser: Any, artifacts: Path) -> None:
    from playwright.sync_api import expect

    context, page, problems = _new_page(browser)
    page.goto(text_search_service.url + "/")
    name, password = text_search_service.login
    page.fill("#login-name", name)
    page.fill("#login-password", password)
    page.click("#login-form button[type=submit]")
    page.fill("#label-name", "cyclists")
    page.click("#create-label button[type=submit]")
    expect(page.locator("#label-title")).to_have_text("cyclists")

    # The tiny CLIP has a text tower: the text box is on and no notice says otherwise.
    expect(page.locator("#search-text")).to_be_enabled()
    expect(page.locator("#search-note")).to_be_hidden()
    page.fill("#search-text", "people riding bicycles in a street")
    page.press("#search-text", "Enter")
    expect(page.locator("#search-summary")).to_contain_text("for “people riding bicycles in a street”")
    cards = page.locator("#search-results .card")
    expect(cards).to_have_count(text_search_service.shots)
    expect(cards.first.locator(".badge.score")).to_have_text(re.compile(r"^-?[01]\.\d\d$"))

    # Narrowing by title keeps the text query and shows only that video's shots.
    page.fill("#search-title", "bikes")
    page.press("#search-text", "Enter")
    expect(page.locator("#search-summary")).to_contain_text("in titles with “bikes”")
    assert set(page.locator("#search-results .card .title").all_inner_texts()) == {"bikes"}
    cards.first.focus()
    page.keyboard.press("p")
    expect(_stat(page, "stat-pos")).to_have_text("1")
    page.screenshot(path=str(artifacts / "20-text-search.png"))
    context.close()
    assert not problems, problems
