"""The whole annotation loop over HTTP against the real service: label, build, feeds, review, undo, export."""

from __future__ import annotations

import csv
import io

import pyarrow.parquet as pq
from va_testing import assert_error, poll

FEEDS = ("top_positive", "top_negative", "borderline", "random")
BUILD_TIMEOUT_S = 120  # a build of the 1797-shot digits corpus takes about a second; this is for a loaded machine


def finished(job: dict) -> bool:
    return job["state"] not in {"queued", "running"}


def test_full_loop_label_build_feeds_review_undo(service) -> None:
    ann = service.client("ann")
    label = "zero-loop"
    created = ann.post("/api/labels", json={"name": label, "description": "the digit 0", "keywords": ["0"]})
    assert created.status_code == 201, created.text
    assert created.json()["readiness"] == {"need_positive": 10, "need_negative": 10, "ready": False}

    # Search by example finds more zeros than chance (the corpus is a tenth zeros).
    seed = service.shots_of_digit(0, 1)[0]
    found = ann.get("/api/search", params={"like": seed, "label": label, "limit": 20}).json()
    assert found["mode"] == "like" and len(found["results"]) == 20
    assert seed not in [r["shot_id"] for r in found["results"]]
    zeros = sum(service.digit_of[r["shot_id"]] == 0 for r in found["results"])
    assert zeros >= 15, zeros
    first = found["results"][0]
    assert {"shot_id", "video_id", "start_s", "end_s", "score", "title"} <= set(first)
    assert first["annotation"] == {"value": None, "version": 0}

    positives = service.shots_of_digit(0, 10)
    negatives = [s for d in range(1, 10) for s in service.shots_of_digit(d, 2)][:10]
    early = ann.post(f"/api/labels/{label}/build")
    error = assert_error(early, 409, "not_enough_annotations")
    assert error["need_positive"] == 10 and error["need_negative"] == 10
    for sid in positives:
        r = ann.put(f"/api/labels/{label}/annotations/{sid}", json={"value": True, "source": "search"})
        assert r.status_code == 200, r.text
        assert r.json()["value"] is True and r.json()["version"] == 1
    for sid in negatives:
        r = ann.put(f"/api/labels/{label}/annotations/{sid}", json={"value": False, "expected_version": 0})
        assert r.status_code == 200, r.text

    summary = ann.get(f"/api/labels/{label}").json()
    assert summary["counts"] == {"positive": 10, "negative": 10}
    assert summary["readiness"]["ready"] is True

    built = ann.post(f"/api/labels/{label}/build")
    assert built.status_code == 200, built.text
    result = built.json()
    assert result["version"] == 1
    assert 0.5 < result["model_quality"] <= 1.0
    assert 0.0 < result["data_diversity"] <= 1.0
    assert set(result["feeds"]) == set(FEEDS)
    top = result["feeds"]["top_positive"]
    assert top and all({"shot_id", "score", "labeled", "start_s", "end_s", "annotation"} <= set(i) for i in top)
    unlabelled_top = [i for i in top if i["labeled"] is None][:20]
    assert sum(service.digit_of[i["shot_id"]] == 0 for i in unlabelled_top) >= 15
    assert result["recommendation"] in {"search", *FEEDS, ""}
    # where the labels came from: the negatives were sent without a source, so nothing says they are not a
    # random sample, and the UI's caveat (none from a random sample) stays off for this version
    assert result["extra"]["label_sources"] == {"search": 10, "unknown": 10}
    assert result["extra"]["quality_caveat"] is None

    for name in FEEDS:
        feed = ann.get(f"/api/labels/{label}/feeds/{name}").json()
        assert feed["version"] == 1 and feed["feed"] == name
        assert [i["shot_id"] for i in feed["items"]] == [i["shot_id"] for i in result["feeds"][name]]

    listed = ann.get("/api/labels").json()["labels"]
    mine = next(lbl for lbl in listed if lbl["name"] == label)
    assert mine["latest_version"]["version"] == 1
    assert mine["latest_version"]["model_quality"] == result["model_quality"]

    review = ann.get(f"/api/labels/{label}/annotations", params={"value": "true"}).json()
    assert review["total"] == 10 and review["model_version"] == 1
    assert all(a["value"] is True and a["annotator"] == "ann" for a in review["annotations"])
    assert all(a["model_score"] > 0.5 for a in review["annotations"])

    # Change one annotation, then undo that change: the old value is back and both steps are events.
    changed = positives[0]
    r = ann.put(f"/api/labels/{label}/annotations/{changed}", json={"value": False, "expected_version": 1})
    assert r.json() == {**r.json(), "value": False, "version": 2}
    events = ann.get(f"/api/labels/{label}/events").json()["events"]
    assert len(events) == 21
    last = events[-1]
    assert (last["shot_id"], last["old_value"], last["new_value"]) == (changed, True, False)
    undone = ann.post(f"/api/labels/{label}/events/{last['id']}/undo")
    assert undone.status_code == 200, undone.text
    assert undone.json()["value"] is True and undone.json()["version"] == 3
    repeated = ann.post(f"/api/labels/{label}/events/{last['id']}/undo")
    assert repeated.json()["version"] == 3  # the same undo again changes nothing
    first_event = next(e for e in events if e["shot_id"] == changed)
    stale = assert_error(ann.post(f"/api/labels/{label}/events/{first_event['id']}/undo"), 409, "conflict")
    assert stale["current"] == {"value": True, "version": 3}
    # An admin may undo someone else's change; the log keeps whose annotation it is and who undid it.
    ann.put(f"/api/labels/{label}/annotations/{changed}", json={"value": False, "expected_version": 3})
    mistake = ann.get(f"/api/labels/{label}/events").json()["events"][-1]
    assert (mistake["annotator"], mistake["actor"]) == ("ann", "ann")
    by_admin = service.client("ada").post(f"/api/labels/{label}/events/{mistake['id']}/undo")
    assert by_admin.status_code == 200 and by_admin.json()["value"] is True, by_admin.text
    undo_event = ann.get(f"/api/labels/{label}/events").json()["events"][-1]
    assert (undo_event["annotator"], undo_event["actor"], undo_event["source"]) == ("ann", "ada", "undo")
    assert ann.get(f"/api/labels/{label}").json()["counts"] == {"positive": 10, "negative": 10}

    versions = ann.get(f"/api/labels/{label}/versions").json()["versions"]
    assert [v["version"] for v in versions] == [1] and versions[0]["n_pos"] == 10

    assert_error(ann.post(f"/api/labels/{label}/versions/1/publish"), 403, "forbidden")
    published = service.client("ada").post(f"/api/labels/{label}/versions/1/publish")
    assert published.status_code == 200, published.text
    assert published.json()["version"] == 1 and published.json()["tag"]
    assert ann.get(f"/api/labels/{label}/versions").json()["versions"][0]["published_at"]

    exported = ann.get(f"/api/labels/{label}/export.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 20
    assert {r["annotator"] for r in rows} == {"ann"}
    assert all(r["model_score"] and r["updated_at"] for r in rows)
    table = pq.read_table(io.BytesIO(ann.get(f"/api/labels/{label}/export.parquet").content))
    assert table.num_rows == 20 and "model_score" in table.column_names


def _label_ready_to_build(service, client, label: str, *, positive: int, negative: int) -> None:
    """A new label with 12 shots of one digit labelled positive and 12 of another negative."""
    client.post("/api/labels", json={"name": label})
    items = [{"shot_id": s, "value": True} for s in service.shots_of_digit(positive, 12)]
    items += [{"shot_id": s, "value": False} for s in service.shots_of_digit(negative, 12)]
    batch = client.post(f"/api/labels/{label}/annotations:batch", json={"items": items, "source": "search"})
    assert batch.status_code == 200 and batch.json()["ok"] == 24


def test_each_build_names_the_feed_to_label_next_borderline_every_other_page(service) -> None:
    ann = service.client("ann")
    label = "three-next"
    _label_ready_to_build(service, ann, label, positive=3, negative=5)
    said = []
    for _ in range(4):
        built = ann.post(f"/api/labels/{label}/build")
        assert built.status_code == 200, built.text
        result = built.json()
        said.append(result["next_feed"])
        # the label's summary and its versions say the same for the latest build
        assert ann.get(f"/api/labels/{label}").json()["latest_version"]["next_feed"] == result["next_feed"]
        # label the first unlabelled shot of that feed, as an annotator following it would
        shot = next(i["shot_id"] for i in result["feeds"][result["next_feed"]] if i["labeled"] is None)
        value = service.digit_of[shot] == 3
        r = ann.put(f"/api/labels/{label}/annotations/{shot}", json={"value": value, "source": result["next_feed"]})
        assert r.status_code == 200, r.text
    assert said == ["borderline", "random", "borderline", "top_positive"]
    versions = ann.get(f"/api/labels/{label}/versions").json()["versions"]
    assert [v["next_feed"] for v in versions] == said


def test_build_in_background_reports_progress_and_result(service) -> None:
    ann = service.client("ann")
    label = "one-bg"
    _label_ready_to_build(service, ann, label, positive=1, negative=7)
    started = ann.post(f"/api/labels/{label}/build", params={"wait": "false"})
    assert started.status_code == 202, started.text
    job_id = started.json()["job"]["id"]
    assert started.headers["location"] == f"/api/jobs/{job_id}"

    def job_while_serving_others() -> dict:
        assert ann.get("/api/health").status_code == 200  # other requests are served meanwhile
        return ann.get(f"/api/jobs/{job_id}").json()

    job = poll(job_while_serving_others, until=finished, timeout=BUILD_TIMEOUT_S, what=f"build job {job_id}")
    assert job["state"] == "done" and job["progress"] == 1.0
    assert job["result"]["version"] == 1 and set(job["result"]["feeds"]) == set(FEEDS)


def test_a_second_replica_answers_for_a_build_the_first_one_runs(service) -> None:
    """Two instances of the service over the same stores, as behind a load balancer: any one reports any job."""
    import httpx
    from va_testing import serve_annotation_app

    ann = service.client("ann")
    label = "two-replicas"
    _label_ready_to_build(service, ann, label, positive=2, negative=5)
    with serve_annotation_app(service.settings) as other_url:
        other = httpx.Client(base_url=other_url, headers={"Authorization": f"Bearer {service.tokens['ann']}"})
        started = ann.post(f"/api/labels/{label}/build", params={"wait": "false"})
        job_id = started.json()["job"]["id"]
        job = other.get(f"/api/jobs/{job_id}").json()
        assert job["id"] == job_id and job["label"] == label, job
        job = poll(
            lambda: other.get(f"/api/jobs/{job_id}").json(), until=finished, timeout=BUILD_TIMEOUT_S,
            what=f"build job {job_id} seen from the second replica",
        )  # fmt: skip
        assert job["state"] == "done" and job["result"]["version"] == 1 and set(job["result"]["feeds"]) == set(FEEDS)
        assert job_id in [j["id"] for j in other.get("/api/jobs").json()["jobs"]]
        assert_error(other.get("/api/jobs/0123456789abcdef"), 404, "not_found")
        other.close()


def test_import_by_shot_id_and_by_video_span_reports_unmatched_rows(service) -> None:
    ann = service.client("ann")
    label = "import-me"
    ann.post("/api/labels", json={"name": label})
    a, b = service.shots_of_digit(3, 2)
    text = f"shot_id,value\n{a},true\n{b},0\nnope:1,true\n{a},maybe\n"
    report = ann.post(f"/api/labels/{label}/import", content=text, headers={"content-type": "text/csv"}).json()
    assert report["imported"] == 2 and report["n_unmatched"] == 2
    assert [u["line"] for u in report["unmatched"]] == [4, 5]
    again = ann.post(f"/api/labels/{label}/import", content=text, headers={"content-type": "text/csv"}).json()
    assert again["imported"] == 0 and again["unchanged"] == 2

    spans = "video_id,start_s,end_s,value\ndigits01,3.2,3.9,yes\ndigits01,5000,5001,no\nmissing,0,1,yes\n"
    files = {"file": ("labels.csv", spans, "text/csv")}
    report = ann.post(f"/api/labels/{label}/import", files=files).json()
    assert report["imported"] == 1 and report["n_unmatched"] == 2
    got = ann.get(f"/api/labels/{label}/annotations").json()["annotations"]
    assert {g["shot_id"] for g in got} == {a, b, "digits01:75"}

    # a build on imported labels counts them as imported: their origin is unknown, so no search-only caveat
    rows = [f"{s},true" for s in service.shots_of_digit(3, 12)] + [
        f"{s},false" for d in (1, 2, 4, 5) for s in service.shots_of_digit(d, 3)
    ]
    ann.post(
        f"/api/labels/{label}/import", content="shot_id,value\n" + "\n".join(rows), headers={"content-type": "text/csv"}
    )
    built = ann.post(f"/api/labels/{label}/build")
    assert built.status_code == 200, built.text
    sources = built.json()["extra"]["label_sources"]
    assert set(sources) == {"import"} and sources["import"] >= 20, sources


def test_an_export_imported_elsewhere_keeps_where_each_shot_was_picked(service) -> None:
    """The export names each shot's picked_from; importing it keeps that, so the quality caveat still counts the
    random sample (issue 13), and a relabel in review does not hide that a shot was drawn at random."""
    ann, ben = service.client("ann"), service.client("ben")
    source, copy = "picked-source", "picked-copy"
    for name in (source, copy):
        assert ann.post("/api/labels", json={"name": name}).status_code == 201
    positives, negatives = (
        service.shots_of_digit(3, 12),
        [s for d in (1, 2, 4, 5) for s in service.shots_of_digit(d, 3)],
    )
    items = [{"shot_id": s, "value": True} for s in positives] + [{"shot_id": s, "value": False} for s in negatives]
    batch = ann.post(f"/api/labels/{source}/annotations:batch", json={"items": items, "source": "search"})
    assert batch.json()["ok"] == 24, batch.text
    drawn = service.shots_of_digit(6, 1)[0]
    assert ann.put(f"/api/labels/{source}/annotations/{drawn}", json={"value": False, "source": "random"}).is_success
    # ben relabels the drawn shot in review: his row's source is "review", but the shot was picked at random
    assert ben.put(f"/api/labels/{source}/annotations/{drawn}", json={"value": False, "source": "review"}).is_success

    exported = list(csv.DictReader(io.StringIO(ann.get(f"/api/labels/{source}/export.csv").text)))
    drawn_rows = {r["annotator"]: (r["source"], r["picked_from"]) for r in exported if r["shot_id"] == drawn}
    assert drawn_rows == {"ann": ("random", "random"), "ben": ("review", "random")}
    assert {r["picked_from"] for r in exported if r["shot_id"] != drawn} == {"search"}
    table = pq.read_table(io.BytesIO(ann.get(f"/api/labels/{source}/export.parquet").content))
    assert "picked_from" in table.column_names

    body = io.StringIO()
    writer = csv.DictWriter(body, fieldnames=list(exported[0]))
    writer.writeheader()
    writer.writerows(exported)
    report = ann.post(f"/api/labels/{copy}/import", content=body.getvalue(), headers={"content-type": "text/csv"})
    assert report.json()["sources"] == {"import:search": 24, "import:random": 1}, report.text
    built = ann.post(f"/api/labels/{copy}/build")
    assert built.status_code == 200, built.text
    extra = built.json()["extra"]
    assert extra["label_sources"] == {"import:search": 24, "import:random": 1}
    # 1 of 25 from a random sample: the caveat the source label's own build would carry, not "imported, so fine"
    assert extra["quality_caveat"] == {"from_sample": 1, "labels": 25, "share": 0.04, "min_share": 0.1}
    assert ann.post(f"/api/labels/{source}/build").json()["extra"]["quality_caveat"]["from_sample"] == 1

    # without picked_from the source column says where; a word the service does not pick by is plain "import"
    text = f"shot_id,value,source\n{positives[0]},false,search\n{negatives[0]},true,review\n{drawn},true,vendor\n"
    again = ann.post(f"/api/labels/{copy}/import", content=text, headers={"content-type": "text/csv"}).json()
    assert again["sources"] == {"import:search": 1, "import": 2}
    current = {a["shot_id"]: a["source"] for a in ann.get(f"/api/labels/{copy}/annotations").json()["annotations"]}
    assert [current[s] for s in (positives[0], negatives[0], drawn)] == ["import:search", "import", "import"]


def test_a_random_sample_before_the_first_build_labels_as_random(service) -> None:
    """Before any build the loop alternates search with a random sample (issue 13); its labels carry source random."""
    ann = service.client("ann")
    label = "seven-sample"
    assert ann.post("/api/labels", json={"name": label}).status_code == 201
    first = ann.get(f"/api/labels/{label}/sample", params={"size": 30})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["source"] == "random" and len(body["items"]) == 30
    item = body["items"][0]
    assert {"shot_id", "start_s", "end_s", "annotation"} <= set(item) and item["score"] is None
    assert len({i["shot_id"] for i in body["items"]}) == 30
    # About a tenth of the digits are sevens: a uniform sample is not a search for them.
    assert sum(service.digit_of[i["shot_id"]] == 7 for i in body["items"]) <= 12

    picked = [i["shot_id"] for i in body["items"][:3]]
    for sid in picked:
        r = ann.put(f"/api/labels/{label}/annotations/{sid}", json={"value": False, "source": "random"})
        assert r.status_code == 200, r.text
    again = ann.get(f"/api/labels/{label}/sample", params={"size": 500}).json()["items"]
    assert len(again) == 500 and not {i["shot_id"] for i in again} & set(picked)
    sources = {a["shot_id"]: a["source"] for a in ann.get(f"/api/labels/{label}/annotations").json()["annotations"]}
    assert [sources[s] for s in picked] == ["random"] * 3

    assert_error(ann.get(f"/api/labels/{label}/sample", params={"size": 0}), 422, "invalid")
    assert_error(ann.get(f"/api/labels/{label}/sample", params={"size": 501}), 422, "invalid")
    assert_error(ann.get("/api/labels/no-such-label/sample"), 404, "not_found")
