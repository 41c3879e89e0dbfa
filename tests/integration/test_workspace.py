"""A label's build over real stores: LanceDB and SQLite in a temporary folder, real labelled vectors.

The corpus is scikit-learn's 1,797 handwritten digits as "shots" (64-d pixel vectors, L2-normalised),
and the label is "digit 3", so the classifier, the feeds and the metrics have a ground truth to meet.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits

from annotator_core.classifier import l2_rows
from annotator_core.errors import NotEnoughAnnotations, ValidationFailed
from annotator_core.feeds import FEEDS
from annotator_core.recommend import SOURCES
from annotator_core.shot_store import ShotStore
from annotator_core.store import AnnotationStore
from annotator_core.workspace import LabelWorkspace, Readiness

LABEL = "digit three"


@pytest.fixture()
def corpus(make_settings):
    """Stores in tmp_path holding the digits as shots, plus the truth for each shot id."""
    settings = make_settings(feed_size=20, n_clusters=10, diversity_cap=10, cv_folds=5)
    data = load_digits()
    vectors = l2_rows(data.data.astype(np.float32))
    ids = [f"digits:{i}" for i in range(len(vectors))]
    shots = ShotStore.from_settings(settings)
    shots.upsert_shots(
        [
            {
                "shot_id": sid,
                "video_id": "digits",
                "start_frame": i,
                "end_frame": i + 1,
                "start_s": float(i),
                "end_s": float(i + 1),
                "thumbnail": b"",
                "cluster_id": -1,
                "encoder": "pixels",
                "vector": vectors[i].tolist(),
            }
            for i, sid in enumerate(ids)
        ]
    )
    annotations = AnnotationStore.from_settings(settings)
    annotations.labels.create(LABEL)
    truth = dict(zip(ids, (data.target == 3).tolist(), strict=True))
    return settings, shots, annotations, truth, vectors, ids


def _label(annotations, truth, shot_ids, source, annotator="ann"):
    for sid in shot_ids:
        annotations.annotations.annotate(LABEL, sid, annotator, truth[sid], source=source)


def test_build_end_to_end(corpus) -> None:
    settings, shots, annotations, truth, vectors, ids = corpus
    positives = [s for s in ids if truth[s]]
    negatives = [s for s in ids if not truth[s]]
    ws = LabelWorkspace(LABEL, shots=shots, store=annotations, settings=settings)

    _label(annotations, truth, positives[:7] + negatives[:12], "search")
    assert ws.readiness() == Readiness(7, 12, 3, 0, False)
    with pytest.raises(NotEnoughAnnotations, match=r"7 positive and 12 negative.*label 3 more positive") as err:
        ws.build()
    assert (err.value.need_positive, err.value.need_negative) == (3, 0)

    _label(annotations, truth, positives[7:15], "search")
    _label(annotations, truth, negatives[12:30], "random")
    stages = []
    first = ws.build(created_by="ann", progress=lambda stage, frac: stages.append((stage, frac)))
    assert first.version == 1 and (first.n_pos, first.n_neg) == (15, 30)
    assert stages[-1] == ("saved", 1.0)
    assert first.model_quality > 0.7
    # clustering has not run: diversity is 0 and the version says why
    assert first.data_diversity == 0.0 and first.extra["clustered"] is False
    assert "not clustered" in first.extra["diversity_note"]
    assert first.recommendation in SOURCES
    for part in ("annotations", "vectors", "train", "quality", "score", "feeds", "diversity", "save", "total"):
        assert first.timings[part] >= 0
    json.dumps(first.to_dict())  # JSON-ready for the service

    labelled = set(positives[:15] + negatives[:30])
    feeds = first.feeds
    assert list(feeds) == list(FEEDS) and all(len(feeds[name]) == 20 for name in FEEDS)
    top = feeds["top_positive"]
    assert sum(truth[item.shot_id] for item in top) >= 18  # the model found threes it was not shown
    assert [i.score for i in top] == sorted((i.score for i in top), reverse=True)
    for item in top + feeds["top_negative"]:
        assert item.labeled == (truth[item.shot_id] if item.shot_id in labelled else None)
    for name in ("borderline", "random"):
        assert not labelled & {item.shot_id for item in feeds[name]}

    # the saved version gives the same classifier and feeds back, scoring like the build did
    clf = ws.classifier(1)
    rows = [ids.index(item.shot_id) for item in top]
    np.testing.assert_allclose(clf.predict_proba(vectors[rows]), [i.score for i in top], atol=1e-5)
    # the quality folds were decided where the build's model is on the catalog: the share of shots it flags at
    # the labels' prior (15 : 30); this corpus is under the 2,048-row sample, so the sample is every shot
    flagged = np.mean(clf.decision_function(vectors) > np.log(15 / 30))
    assert 0.05 < flagged < 0.5
    assert first.extra["quality"]["flagged"] == pytest.approx(flagged, abs=1 / len(ids))
    assert [i.shot_id for i in ws.feed("top_positive")] == [i.shot_id for i in top]
    saved = annotations.versions.get(LABEL, 1)
    assert saved.shots_table_version == shots.version() and saved.encoder == "pixels" and saved.dim == 64
    assert len(saved.snapshot) == 45 and saved.snapshot_event_id == annotations.annotations.last_event_id(LABEL)
    with pytest.raises(ValidationFailed, match="unknown feed 'best'"):
        ws.feed("best")

    # clustering runs (ingest's job), the annotator labels the borderline feed, builds again
    clusters = KMeans(n_clusters=10, n_init=3, random_state=0).fit_predict(vectors)
    shots.set_cluster_ids(ids, clusters.tolist())
    borderline = [item.shot_id for item in feeds["borderline"][:10]]
    _label(annotations, truth, borderline, "borderline")
    assert [i.labeled for i in ws.feed("borderline", version=1)][:10] == [truth[s] for s in borderline]

    restarted = LabelWorkspace(LABEL, shots=shots, store=annotations, settings=settings)
    second = restarted.build()
    assert second.version == 2 and second.n_pos + second.n_neg == 55
    # the ten labels from the borderline feed train the folds but are not scored: an earlier model chose them
    assert (first.extra["quality_left_out"], second.extra["quality_left_out"]) == (0, 10)
    # labels from a uniform sample, which tell the score about the catalog at large: the 18 negatives above
    assert first.extra["label_sources"] == {"search": 27, "random": 18}
    assert first.extra["quality_caveat"] is None  # 18 of 45 from a uniform sample: no caveat
    assert second.extra["label_sources"] == {"search": 27, "random": 18, "borderline": 10}
    # each build names the feed to label next: borderline every other build
    assert (first.next_feed, second.next_feed) == ("borderline", "random")
    assert second.extra["clustered"] is True and 0 < second.data_diversity <= 1
    gain = second.model_quality - first.model_quality
    assert second.extra["rewards"] == {"borderline": pytest.approx(gain)}
    state = annotations.labels.recommender_state(LABEL)
    assert state["name"] == settings.recommender and state["counts"]["borderline"] == 1
    assert state["steps"] == 1 and state["last_version"] == 2

    # labels from the random feed are counted by where each shot was picked: another annotator finding one of them
    # again by search does not make it a searched shot
    randoms = [item.shot_id for item in second.feeds["random"][:6]]
    _label(annotations, truth, randoms, "random")
    _label(annotations, truth, randoms[:1], "search", annotator="other")
    # a search label withdrawn, then the same shot drawn by the random feed: picked at random
    withdrawn = second.feeds["random"][6].shot_id
    _label(annotations, truth, [withdrawn], "search")
    annotations.annotations.annotate(LABEL, withdrawn, "ann", None, source="search")
    _label(annotations, truth, [withdrawn], "random")
    # a borderline shot labelled again in Review by another annotator: an earlier model still picked it, so the
    # folds still leave it out
    _label(annotations, truth, borderline[:1], "review", annotator="other")
    third = restarted.build()
    assert third.extra["label_sources"] == {"search": 27, "random": 18 + 6 + 1, "borderline": 10}
    assert third.extra["quality_left_out"] == 10
    # the random-AP reward's sample is the same shots: a random-feed shot relabelled in Review stays in it
    assert (first.extra["signals"]["random_labels"], third.extra["signals"]["random_labels"]) == (18, 25)
    _label(annotations, truth, randoms[1:2], "review", annotator="other")
    assert restarted.build().extra["signals"]["random_labels"] == 25


def test_a_build_with_few_labels_from_a_uniform_sample_carries_the_quality_caveat(corpus) -> None:
    settings, shots, annotations, truth, _vectors, ids = corpus
    positives = [s for s in ids if truth[s]]
    negatives = [s for s in ids if not truth[s]]
    ws = LabelWorkspace(LABEL, shots=shots, store=annotations, settings=settings)
    _label(annotations, truth, positives[:12] + negatives[:12], "search")
    first = ws.build()
    assert first.extra["quality_caveat"] == {"from_sample": 0, "labels": 24, "share": 0.0, "min_share": 0.1}
    # one random label in 25: still under a tenth
    _label(annotations, truth, negatives[12:13], "random")
    assert ws.build().extra["quality_caveat"]["from_sample"] == 1
    # three of 27 (random, or imported from a file that does not say where) clear it; an import that says it
    # was picked by search does not count
    _label(annotations, truth, negatives[13:14], "random")
    _label(annotations, truth, negatives[14:15], "import")
    _label(annotations, truth, negatives[15:16], "import:search")
    third = ws.build()
    assert third.extra["label_sources"] == {"search": 24, "random": 2, "import": 1, "import:search": 1}
    assert third.extra["quality_caveat"] is None
    assert third.extra["label_sample"] == {"from_sample": 3, "labels": 28, "share": 3 / 28}


def test_labels_of_shots_gone_from_the_store_do_not_count(corpus) -> None:
    settings, shots, annotations, truth, _vectors, ids = corpus
    positives = [s for s in ids if truth[s]]
    negatives = [s for s in ids if not truth[s]]
    _label(annotations, truth, positives[:9] + negatives[:10], "search")
    annotations.annotations.annotate(LABEL, "deleted-video:0", "ann", True, source="search")
    ws = LabelWorkspace(LABEL, shots=shots, store=annotations, settings=settings)
    assert ws.readiness().ready
    with pytest.raises(NotEnoughAnnotations, match=r"1 labelled shots are no longer in the shot store"):
        ws.build()


@pytest.mark.parametrize("scorer", ["memory", "mapped"])
def test_a_sample_before_any_build_is_unlabelled_holds_still_and_moves_on(make_settings, scorer) -> None:
    """The pre-build random sample (issue 13): no model, only unlabelled shots, one per duplicate group."""
    settings = make_settings(feed_size=20, corpus_scorer=scorer, corpus_mapped_from=1)
    data = load_digits()
    vectors = l2_rows(data.data[:300].astype(np.float32))
    ids = [f"digits:{i}" for i in range(len(vectors))]
    shots = ShotStore.from_settings(settings)
    shots.upsert_shots(
        [
            {"shot_id": sid, "video_id": "digits", "start_frame": i, "end_frame": i + 1, "start_s": float(i),
             "end_s": float(i + 1), "thumbnail": b"", "cluster_id": -1, "encoder": "pixels",
             "vector": vectors[i].tolist()}
            for i, sid in enumerate(ids)
        ]
    )  # fmt: skip
    annotations = AnnotationStore.from_settings(settings)
    annotations.labels.create(LABEL)
    ws = LabelWorkspace(LABEL, shots=shots, store=annotations, settings=settings)

    first = ws.sample()
    assert len(first) == len(set(first)) == 20 and set(first) <= set(ids)
    assert ws.sample() == first  # nothing labelled since: the page can reload without reshuffling

    labelled = first[:5] + ids[100:110]
    for sid in labelled:
        annotations.annotations.annotate(LABEL, sid, "ann", sid.endswith("0"), source="random")
    after = ws.sample()
    assert after != first and not set(after) & set(labelled)
    # Asked for every shot, it answers exactly the unlabelled ones: every one can be drawn, no labelled one is.
    assert sorted(ws.sample(size=1000)) == sorted(set(ids) - set(labelled))

    # A near-duplicate group is drawn once, by its representative.
    group = ids[200:204]
    shots.upsert_duplicates(
        [{"shot_id": s, "group_id": group[0], "representative": s == group[0], "encoder": "pixels"} for s in group]
    )
    everything = set(LabelWorkspace(LABEL, shots=shots, store=annotations, settings=settings).sample(size=1000))
    assert group[0] in everything and not everything & set(group[1:])
    assert len(everything) == len(ids) - len(labelled) - 3

    with pytest.raises(ValidationFailed, match="size of at least 1"):
        ws.sample(size=0)
