"""`va score-corpus` scores only what is missing or stale; `va ingest --score` scores what an ingest adds.

Real LanceDB tables, real published ONNX models, local Ray, real footage ingested with ffmpeg-decoded frames.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from scoring_support import ENCODER, WINDOW, add_version, make_store

pytestmark = pytest.mark.slow


def _versions(rows) -> dict[tuple[str, str], int]:
    d = rows.select(["shot_id", "label", "version"]).to_pydict()
    return {(s, lbl): v for s, lbl, v in zip(d["shot_id"], d["label"], d["version"], strict=True)}


def test_rerun_scores_only_new_shots_and_a_republished_label_once(tmp_path, corpus, monkeypatch):
    from annotator_core.classifier import Classifier
    from annotator_core.shot_store import ShotStore
    from annotator_core.store import AnnotationStore
    from va_cli.main import cli

    settings = make_store(tmp_path / "va-data", corpus)
    monkeypatch.setenv("VA_DATA_DIR", str(tmp_path / "va-data"))
    runner = CliRunner()
    for label in ("bikes", "bunny"):
        assert runner.invoke(cli, ["publish", label]).exit_code == 0
    n = len(corpus.ids)

    first = runner.invoke(cli, ["score-corpus", "--json"])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert (summary["scored"], summary["skipped"], summary["rows"]) == (n, 0, 2 * n)
    assert summary["missing"] == {"bikes": n, "bunny": n} and summary["stale"] == {"bikes": 0, "bunny": 0}

    # New shots arrive (windows of the same footage under new ids, as a newly ingested title would add).
    store = ShotStore.from_settings(settings)
    new_ids = [f"newtitle:{i}" for i in range(7)]
    new_vectors = corpus.vectors[:7] * np.float32(0.9) + corpus.vectors[7:14] * np.float32(0.1)
    store.upsert_shots(
        [
            {
                "shot_id": sid,
                "video_id": "newtitle",
                "start_frame": i * WINDOW,
                "end_frame": (i + 1) * WINDOW,
                "start_s": 0.0,
                "end_s": 0.3,
                "vector": vec.tolist(),
                "thumbnail": b"",
                "cluster_id": -1,
                "encoder": ENCODER,
            }
            for i, (sid, vec) in enumerate(zip(new_ids, new_vectors, strict=True))
        ]
    )
    before = _versions(store.read_scores())
    second = runner.invoke(cli, ["score-corpus"])
    assert second.exit_code == 0, second.output
    assert f"scored 7 of {n + 7} shots" in second.output
    assert f"skipped {n} shots" in second.output
    after = store.read_scores()
    assert after.num_rows == 2 * (n + 7)
    assert set(_versions(after)) - set(before) == {(s, lbl) for s in new_ids for lbl in ("bikes", "bunny")}
    bikes = Classifier.from_bytes(AnnotationStore.from_settings(settings).versions.get("bikes").model)
    got = dict(zip(*store.read_scores(label="bikes").select(["shot_id", "score"]).to_pydict().values(), strict=True))
    np.testing.assert_allclose([got[s] for s in new_ids], bikes.predict_proba(new_vectors), atol=1e-5)
    # The old rows were not rewritten: the scores table's row count per (shot, label) is still one and
    # nothing was read for them (the summary says so; a third run touches nothing at all).
    third = json.loads(runner.invoke(cli, ["score-corpus", "--json"]).stdout)
    assert (third["scored"], third["skipped"], third["rows"]) == (0, n + 7, 0)

    # A new version of "bikes" makes every bikes score stale: one run rescores exactly them, once.
    add_version(settings, corpus, "bikes", positive="bikes", C=0.05)
    assert runner.invoke(cli, ["publish", "bikes"]).exit_code == 0
    fourth = json.loads(runner.invoke(cli, ["score-corpus", "--json"]).stdout)
    assert fourth["versions"] == {"bikes": 2, "bunny": 1}
    assert (fourth["scored"], fourth["skipped"], fourth["rows"]) == (n + 7, 0, n + 7)
    assert fourth["stale"] == {"bikes": n + 7, "bunny": 0} and fourth["missing"] == {"bikes": 0, "bunny": 0}
    versions = _versions(store.read_scores())
    assert len(versions) == 2 * (n + 7)
    assert {v for (_, lbl), v in versions.items() if lbl == "bikes"} == {2}
    assert {v for (_, lbl), v in versions.items() if lbl == "bunny"} == {1}
    fifth = json.loads(runner.invoke(cli, ["score-corpus", "--json"]).stdout)
    assert (fifth["scored"], fifth["rows"]) == (0, 0)


def test_ingest_with_score_leaves_every_new_shot_scored_for_every_published_label(
    tmp_path, corpus, sample_videos_dir, monkeypatch
):
    from annotator_core.shot_store import ShotStore
    from va_cli.main import cli

    settings = make_store(tmp_path / "va-data", corpus)
    monkeypatch.setenv("VA_DATA_DIR", str(tmp_path / "va-data"))
    monkeypatch.setenv("VA_ENCODER", ENCODER)
    monkeypatch.setenv("VA_N_CLUSTERS", "2")
    runner = CliRunner()
    for label in ("bikes", "bunny"):
        assert runner.invoke(cli, ["publish", label]).exit_code == 0
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    shutil.copy(sample_videos_dir / "bikes.mp4", catalog / "bikes.mp4")

    result = runner.invoke(cli, ["ingest", str(catalog), "--score", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["videos_done"] == 1 and summary["shots"] > 0
    store = ShotStore.from_settings(settings)
    new_ids = {r["shot_id"] for r in store.shots_of_video(store.videos(status="done")[0]["video_id"])}
    assert len(new_ids) == summary["shots"]
    # The store held the corpus, unscored: the ingest's scoring covers the new shots and that backlog.
    assert summary["scoring"]["scored"] == len(corpus.ids) + len(new_ids)
    scored = _versions(store.read_scores())
    assert {(s, lbl) for s in new_ids for lbl in ("bikes", "bunny")} <= set(scored)
    assert len(scored) == 2 * (len(corpus.ids) + len(new_ids))

    # Another title, ingested with --score: only its shots are scored, the rest is skipped.
    shutil.copy(sample_videos_dir / "carphone_pristine.mp4", catalog / "carphone.mp4")
    again = runner.invoke(cli, ["ingest", str(catalog), "--score"], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    total = store.counts()["shots"]
    added = total - len(corpus.ids) - len(new_ids)
    assert added > 0
    assert f"scored {added} of {total} shots" in again.output
    assert f"skipped {total - added} shots" in again.output
    assert len(_versions(store.read_scores())) == 2 * total

    # Without --score (and VA_INGEST_SCORE off) an ingest scores nothing.
    shutil.copy(sample_videos_dir / "bigbuckbunny.mp4", catalog / "bunny.mp4")
    plain = runner.invoke(cli, ["ingest", str(catalog), "--json"], catch_exceptions=False)
    assert plain.exit_code == 0, plain.output
    assert "scoring" not in json.loads(plain.stdout)
    assert len(_versions(store.read_scores())) == 2 * total
