"""The Map tab in a real headless Chromium: every shot is drawn, a lasso on the canvas yields exactly the shots
whose stored coordinates lie inside it, and they are labelled from the feed it becomes (issue 15).

The map is the one the real ingest of the shared e2e service laid out (UMAP at the end of ``run_ingest``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from matplotlib.path import Path as PolygonPath

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]

LABEL = "map-lasso"
CANVAS = (900, 600)
PAD = 20


def test_a_lasso_on_the_map_yields_the_shots_inside_it(annotation_service: Any, browser: Any, artifacts: Path) -> None:
    from playwright.sync_api import expect

    from annotator_core.shot_store import ShotStore

    stored = ShotStore.from_settings(annotation_service.settings).read_shot_map().to_pylist()
    assert len(stored) == annotation_service.shots  # ingest mapped every shot
    coords = {r["shot_id"]: (r["x"], r["y"]) for r in stored}
    headers = {"Authorization": f"Bearer {annotation_service.second_token}"}
    httpx.post(f"{annotation_service.url}/api/labels", json={"name": LABEL}, headers=headers).raise_for_status()

    expect.set_options(timeout=20_000)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    sent: list[dict[str, Any]] = []
    page.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/map/select") else None)
    page.goto(annotation_service.url + "/")
    name, password = annotation_service.login
    page.fill("#login-name", name)
    page.fill("#login-password", password)
    page.click("#login-form button[type=submit]")
    expect(page.locator(".who .user")).to_contain_text(name)
    page.goto(f"{annotation_service.url}/#/labels/{LABEL}/map")
    expect(page.locator("#map-canvas")).to_be_visible()
    expect(page.locator("#map-summary")).to_contain_text(f"{len(coords)} of {len(coords)} shots")

    # A lasso around the middle half of the map, drawn where the page draws the points.
    xs = np.array([c[0] for c in coords.values()])
    ys = np.array([c[1] for c in coords.values()])
    box = page.locator("#map-canvas").bounding_box()
    assert box is not None
    scale_x = (CANVAS[0] - 2 * PAD) / (xs.max() - xs.min())
    scale_y = (CANVAS[1] - 2 * PAD) / (ys.max() - ys.min())

    def screen(x: float, y: float) -> tuple[float, float]:
        px, py = PAD + (x - xs.min()) * scale_x, CANVAS[1] - PAD - (y - ys.min()) * scale_y
        return box["x"] + px * box["width"] / CANVAS[0], box["y"] + py * box["height"] / CANVAS[1]

    (x0, x1), (y0, y1) = np.percentile(xs, [15, 85]), np.percentile(ys, [15, 85])
    lasso = [(x0, y0), (x1, y0), (x1, (y0 + y1) / 2), ((x0 + x1) / 2, y1), (x0, y1)]
    page.mouse.move(*screen(*lasso[0]))
    page.mouse.down()
    for vertex in [*lasso[1:], lasso[0]]:
        page.mouse.move(*screen(*vertex), steps=8)
    page.mouse.up()
    expect(page.locator("#map-selection-summary")).to_contain_text("shots inside the selection")
    page.screenshot(path=str(artifacts / "map-01-lasso.png"))

    # The browser sent the lasso it drew; the shots inside it by their stored coordinates are the feed.
    assert len(sent) == 1 and len(sent[0]["polygon"]) >= 3
    drawn = PolygonPath(np.array(sent[0]["polygon"]))
    inside = {sid for sid, xy in coords.items() if drawn.contains_point(xy)}
    assert 0 < len(inside) < len(coords)
    assert int(page.locator("#map-selection-summary").get_attribute("data-total") or -1) == len(inside)
    cards = page.locator("#map-feed .card")
    expect(cards).to_have_count(len(inside))
    assert {cards.nth(i).get_attribute("data-shot") for i in range(len(inside))} == inside

    # Label the first shot of the selection from the feed.
    first = cards.first
    shot_id = first.get_attribute("data-shot")
    first.locator(".btn-pos").click()
    expect(first).to_have_class(re.compile(r"\bis-pos\b"))
    listed = httpx.get(f"{annotation_service.url}/api/labels/{LABEL}/annotations", headers=headers).json()
    assert [(a["shot_id"], a["value"], a["source"]) for a in listed["annotations"]] == [(shot_id, True, "map")]
    page.screenshot(path=str(artifacts / "map-02-labelled.png"))
    assert not problems, problems
    context.close()
