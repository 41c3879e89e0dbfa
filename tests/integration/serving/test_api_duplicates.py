"""Near-duplicate groups over HTTP: a group's members, labelling the whole group and undoing it in one step,
and feeds and search showing each group once (a served app over the real digits corpus and LanceDB)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from serving_support import write_digit_corpus
from va_testing import serve_annotation_app


def _rows(groups: dict[str, list[str]]) -> list[dict[str, Any]]:
    return [
        {"shot_id": sid, "group_id": head, "representative": sid == head, "encoder": "handcrafted"}
        for head, members in groups.items()
        for sid in [head, *members]
    ]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, dict[str, int], dict, Any]]:
    from annotator_core.settings import Settings
    from annotator_core.shot_store import ShotStore
    from annotator_core.store import AnnotationStore

    settings = Settings(data_dir=tmp_path_factory.mktemp("duplicates"), encoder="handcrafted", session_secret="s")
    digit_of = write_digit_corpus(settings)
    zeros = [s for s, d in digit_of.items() if d == 0]
    ones = [s for s, d in digit_of.items() if d == 1]
    # Groups among the zeros (what a top-positive feed of "zero" shows) and among the ones.
    groups = {zeros[0]: zeros[1:4], zeros[10]: zeros[11:20], ones[0]: ones[1:3]}
    ShotStore.from_settings(settings).upsert_duplicates(_rows(groups))
    store = AnnotationStore.from_settings(settings)
    token = store.users.create("ann", "annotator", password="ann-password-1")[1]
    store.users.create("ben", "annotator", password="ben-password-1")
    store.db.close()
    with (
        serve_annotation_app(settings) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client,
    ):
        yield client, digit_of, groups, settings


def test_a_shot_lists_its_group(served: Any) -> None:
    client, _digits, groups, _settings = served
    head, members = next(iter(groups.items()))
    found = client.get(f"/api/shots/{members[1]}/group").json()
    assert found["group_id"] == head and found["group_size"] == 4
    assert [m["shot_id"] for m in found["members"]] == [head, *members]
    assert [m["representative"] for m in found["members"]] == [True, False, False, False]
    assert all(m["title"].startswith("Digits reel") for m in found["members"])
    shot = client.get(f"/api/shots/{members[0]}").json()
    assert (shot["group_id"], shot["group_size"]) == (head, 4)
    single = client.get("/api/shots/digits08:0/group").json()
    assert single["group_size"] == 1 and [m["shot_id"] for m in single["members"]] == ["digits08:0"]


def test_label_the_whole_group_and_undo_it_in_one_step(served: Any) -> None:
    client, _digits, groups, _settings = served
    client.post("/api/labels", json={"name": "group-undo"}).raise_for_status()
    head, members = list(groups.items())[1]
    everyone = [head, *members]
    client.put(f"/api/labels/group-undo/annotations/{members[0]}", json={"value": False}).raise_for_status()
    done = client.post(f"/api/labels/group-undo/groups/{members[3]}/annotations", json={"value": True}).json()
    assert (done["group_id"], done["group_size"], done["written"], done["unchanged"]) == (head, 10, 10, 0)
    assert all(done["annotations"][sid]["value"] is True for sid in everyone)
    listed = client.get("/api/labels/group-undo/annotations").json()["annotations"]
    assert {a["shot_id"]: a["source"] for a in listed} == dict.fromkeys(everyone, "group")
    events = client.get("/api/labels/group-undo/events").json()["events"]
    grouped = [e for e in events if e["batch"]]
    assert len(grouped) == 10 and {e["batch"] for e in grouped} == {done["batch"]}

    # One undo (through any one of its events) puts every member back: the one labelled negative before too.
    undone = client.post(f"/api/labels/group-undo/events/{grouped[4]['id']}/undo").json()
    assert undone["undone"] == 10
    values = {a["shot_id"]: a["value"] for a in client.get("/api/labels/group-undo/annotations").json()["annotations"]}
    assert values == {members[0]: False}
    # The undo is one step as well: undoing it labels the group again.
    again = client.post(f"/api/labels/group-undo/batches/{undone['batch']}/undo").json()
    assert again["undone"] == 10
    assert len(client.get("/api/labels/group-undo/annotations", params={"value": True}).json()["annotations"]) == 10
    # A group change changed since is refused whole, with nothing written.
    client.put(f"/api/labels/group-undo/annotations/{head}", json={"value": False}).raise_for_status()
    conflict = client.post(f"/api/labels/group-undo/batches/{again['batch']}/undo")
    assert conflict.status_code == 409 and head in conflict.json()["error"]["message"]
    assert client.post("/api/labels/group-undo/batches/abc123/undo").status_code == 404


def test_search_shows_each_group_once(served: Any) -> None:
    client, _digits, groups, _settings = served
    head, members = list(groups.items())[1]
    hidden = {sid for ms in groups.values() for sid in ms}
    for like in (members[2], "digits05:0"):
        results = client.get("/api/search", params={"like": like, "limit": 30}).json()["results"]
        assert len(results) == 30
        keys = [r["group_id"] for r in results]
        assert len(set(keys)) == 30  # one shot per group
        assert all(r["group_size"] == len([r["shot_id"]]) or r["group_id"] in groups for r in results)
    near = client.get("/api/search", params={"like": members[2], "limit": 30}).json()["results"]
    assert head not in {r["group_id"] for r in near}  # the query's own group is left out
    far = client.get("/api/search", params={"like": "digits05:0", "limit": 50}).json()["results"]
    assert not any(r["group_id"] == r["shot_id"] and r["shot_id"] in hidden for r in far)


def test_more_like_my_positives_leaves_out_the_groups_of_labelled_shots(served: Any) -> None:
    client, digits, groups, _settings = served
    head, members = list(groups.items())[1]  # a group of ten zeros
    zeros = [s for s, d in digits.items() if d == 0 and s != head and s not in members]
    label = "like-zero-groups"
    client.post("/api/labels", json={"name": label}).raise_for_status()
    items = [{"shot_id": head, "value": True}] + [{"shot_id": s, "value": True} for s in zeros[40:42]]
    client.post(f"/api/labels/{label}/annotations:batch", json={"items": items, "source": "search"}).raise_for_status()
    results = client.get("/api/search", params={"like_label": label, "limit": 30}).json()["results"]
    assert len(results) == 30
    shown = {r["shot_id"] for r in results}
    # the labelled head's copies are the nearest shots to the query, yet none is offered
    assert not shown & {head, *members} and head not in {r["group_id"] for r in results}
    assert len({r["group_id"] for r in results}) == 30  # and every other group once
    # a short page still fills when the nearest shots are all copies of what is labelled
    few = client.get("/api/search", params={"like_label": label, "limit": 3}).json()["results"]
    assert len(few) == 3 and not {r["shot_id"] for r in few} & {head, *members}


def test_feeds_show_each_group_once_with_its_size(served: Any) -> None:
    client, digits, groups, settings = served
    client.post("/api/labels", json={"name": "zero"}).raise_for_status()
    hidden = {sid for ms in groups.values() for sid in ms}
    pos = [s for s, d in digits.items() if d == 0 and s not in hidden and s not in groups][:12]
    neg = [s for s, d in digits.items() if d != 0 and s not in hidden and s not in groups][:40]
    items = [{"shot_id": s, "value": True} for s in pos] + [{"shot_id": s, "value": False} for s in neg]
    client.post("/api/labels/zero/annotations:batch", json={"items": items, "source": "search"}).raise_for_status()
    built = client.post("/api/labels/zero/build").json()
    assert built["extra"]["duplicates"]["hidden"] == len(hidden)
    assert built["extra"]["quality_folds"] == "grouped"
    heads_seen = {}
    for name, feed in built["feeds"].items():
        assert len(feed) == 50, name
        ids = [i["shot_id"] for i in feed]
        assert not hidden & set(ids), name  # a copy never stands beside its representative
        assert len({i["group_id"] for i in feed}) == 50, name
        heads_seen.update({i["shot_id"]: i["group_size"] for i in feed if i["shot_id"] in groups})
        served_feed = client.get(f"/api/labels/zero/feeds/{name}").json()["items"]
        assert [i["group_size"] for i in served_feed] == [i["group_size"] for i in feed]
    assert all(n == len(groups[h]) + 1 for h, n in heads_seen.items())
    # The sizes are read when a feed is served: a group found after the build shows on its representative.
    from annotator_core.shot_store import ShotStore

    first = built["feeds"]["top_positive"][0]["shot_id"]
    others = [s for s, d in digits.items() if d == 7][:2]
    ShotStore.from_settings(settings).upsert_duplicates(_rows({first: others}))
    shown = client.get("/api/labels/zero/feeds/top_positive").json()["items"][0]
    assert (shown["shot_id"], shown["group_id"], shown["group_size"]) == (first, first, 3)


def test_a_label_whose_positives_are_one_group_is_scored_and_says_how(served: Any) -> None:
    client, digits, groups, _settings = served
    client.post("/api/labels", json={"name": "one-group"}).raise_for_status()
    head = list(groups)[1]  # ten zeros in one group
    client.post(f"/api/labels/one-group/groups/{head}/annotations", json={"value": True}).raise_for_status()
    hidden = {sid for ms in groups.values() for sid in ms} | set(groups)
    neg = [s for s, d in digits.items() if d == 3 and s not in hidden][:10]
    items = [{"shot_id": s, "value": False} for s in neg]
    client.post("/api/labels/one-group/annotations:batch", json={"items": items}).raise_for_status()
    built = client.post("/api/labels/one-group/build").json()
    assert built["extra"]["quality_folds"].startswith("plain: fewer than 2 near-duplicate groups")
    assert built["extra"]["duplicates"]["labelled_groups"] == 11


def test_more_like_my_positives_fills_a_page_when_the_nearest_shots_are_copies_of_a_labelled_one(
    served: Any,
) -> None:
    """Real footage has groups of a dozen copies: all nearest the one positive, all left out, yet the page fills."""
    from va_testing import poll

    from annotator_core.shot_store import ShotStore

    client, digits, groups, settings = served
    grouped = {sid for head, ms in groups.items() for sid in (head, *ms)}
    seed = next(s for s, d in digits.items() if d == 4 and s not in grouped)
    nearest = [r["shot_id"] for r in client.get("/api/search", params={"like": seed, "limit": 12}).json()["results"]]
    ShotStore.from_settings(settings).upsert_duplicates(_rows({seed: nearest}))
    poll(
        lambda: client.get(f"/api/shots/{seed}/group").json()["group_size"],
        until=lambda size: size == 13,
        timeout=20,
        what="the new group",
    )
    label = "like-one-big-group"
    client.post("/api/labels", json={"name": label}).raise_for_status()
    item = {"items": [{"shot_id": seed, "value": True}], "source": "search"}
    client.post(f"/api/labels/{label}/annotations:batch", json=item).raise_for_status()
    for limit in (3, 5, 20):
        results = client.get("/api/search", params={"like_label": label, "limit": limit}).json()["results"]
        assert len(results) == limit, (limit, len(results))
        assert not {r["shot_id"] for r in results} & {seed, *nearest}
