"""`va score-corpus` on a real LanceDB table with local Ray: keyed, idempotent, follows new publishes."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from scoring_support import add_version, make_store

pytestmark = pytest.mark.slow


def test_score_corpus_writes_every_shot_once_and_follows_a_new_version(tmp_path, corpus, monkeypatch):
    from annotator_core.classifier import Classifier
    from annotator_core.shot_store import ShotStore
    from annotator_core.store import AnnotationStore
    from va_cli.main import cli

    settings = make_store(tmp_path / "va-data", corpus)
    monkeypatch.setenv("VA_DATA_DIR", str(tmp_path / "va-data"))
    runner = CliRunner()
    for label in ("bikes", "bunny"):
        result = runner.invoke(cli, ["publish", label])
        assert result.exit_code == 0, result.output
        assert f"published '{label}' version 1" in result.output

    result = runner.invoke(cli, ["score-corpus", "--json"])
    assert result.exit_code == 0, result.output
    store = ShotStore.from_settings(settings)
    rows = store.read_scores()
    assert rows.num_rows == 2 * len(corpus.ids)
    annotations = AnnotationStore.from_settings(settings)
    bikes = Classifier.from_bytes(annotations.versions.get("bikes").model)
    got = dict(zip(*store.read_scores(label="bikes").select(["shot_id", "score"]).to_pydict().values(), strict=True))
    np.testing.assert_allclose([got[s] for s in corpus.ids], bikes.predict_proba(corpus.vectors), atol=1e-5)

    # A re-run adds nothing; a newly published version replaces only its label's rows.
    assert runner.invoke(cli, ["score-corpus", "bikes"]).exit_code == 0
    assert store.read_scores().num_rows == 2 * len(corpus.ids)
    add_version(settings, corpus, "bikes", positive="bikes", C=0.05)
    assert runner.invoke(cli, ["publish", "bikes"]).exit_code == 0
    result = runner.invoke(cli, ["score-corpus", "bikes"])
    assert result.exit_code == 0, result.output
    rows = store.read_scores()
    assert rows.num_rows == 2 * len(corpus.ids)
    versions = {
        (lbl, v) for lbl, v in zip(rows.column("label").to_pylist(), rows.column("version").to_pylist(), strict=True)
    }
    assert versions == {("bikes", 2), ("bunny", 1)}

    unknown = runner.invoke(cli, ["score-corpus", "no such label"])
    assert unknown.exit_code == 2 and "no such label" in unknown.output
