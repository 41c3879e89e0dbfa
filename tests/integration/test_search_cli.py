"""`va search` (run in-process by click's runner) over a real LanceDB filled with embeddings of real frames."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from annotator_core.records import shot_id
from annotator_core.shot_store import ShotStore

TITLES = {"bikes": "bikes.mp4", "bunny": "bigbuckbunny.mp4"}
STARTS = [0, 25, 50, 75, 100]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_va(args: list[str], data_dir: Path) -> Result:
    """``va ARGS`` with every setting at its default except the data folder (other VA_* variables unset)."""
    from click.testing import CliRunner

    from va_cli.main import cli

    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("VA_")}
    env["VA_DATA_DIR"] = str(data_dir)
    result = CliRunner().invoke(cli, args, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Result(result.exit_code, result.stdout, result.stderr)


def _fill(data_dir: Path, videos_dir: Path, spec: str) -> tuple[ShotStore, dict[str, np.ndarray]]:
    """Shots of two real titles embedded with ``spec``, written as ingest writes them."""
    import decord

    from annotator_core.encoders import load_encoder

    encoder = load_encoder(spec, device="cpu")
    store = ShotStore(str(data_dir / "lancedb"))
    vectors: dict[str, np.ndarray] = {}
    for video_id, name in TITLES.items():
        reader = decord.VideoReader(str(videos_dir / name), width=256, height=144)
        shots = [reader.get_batch([s, s + 8, s + 16]).asnumpy() for s in STARTS]
        embedded = encoder.embed_shots(shots)
        store.upsert_videos(
            [
                {
                    "video_id": video_id,
                    "uri": str(videos_dir / name),
                    "title": name,
                    "duration_s": len(reader) / 25,
                    "fps": 25.0,
                    "width": 256,
                    "height": 144,
                    "n_frames": len(reader),
                    "n_shots": len(STARTS),
                    "status": "done",
                    "error": "",
                    "ingested_at": datetime.now(UTC),
                    "encoder": encoder.name,
                }
            ]
        )
        rows = []
        for start, vector in zip(STARTS, embedded, strict=True):
            sid = shot_id(video_id, start)
            vectors[sid] = vector
            rows.append(
                {
                    "shot_id": sid,
                    "video_id": video_id,
                    "start_frame": start,
                    "end_frame": start + 25,
                    "start_s": start / 25,
                    "end_s": (start + 25) / 25,
                    "thumbnail": b"",
                    "cluster_id": -1,
                    "encoder": encoder.name,
                    "vector": vector.tolist(),
                }
            )
        store.upsert_shots(rows)
    return store, vectors


@pytest.fixture(scope="module")
def tiny_catalog(sample_videos_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    data_dir = tmp_path_factory.mktemp("va-search")
    _, vectors = _fill(data_dir, sample_videos_dir, "tiny-clip")
    return data_dir, vectors


def _rows(result: Result) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_search_by_example_finds_the_shot_itself_first(tiny_catalog) -> None:
    data_dir, vectors = tiny_catalog
    target = shot_id("bunny", 50)
    rows = _rows(run_va(["search", "--like", target, "--limit", "4", "--json"], data_dir))
    assert len(rows) == 4
    assert rows[0]["shot_id"] == target and rows[0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert rows[0]["title"] == "bigbuckbunny.mp4" and rows[0]["start_s"] == 2.0
    ids = list(vectors)
    exact = np.array([vectors[i] for i in ids]) @ vectors[target]
    assert [r["shot_id"] for r in rows] == [ids[i] for i in np.argsort(-exact)[:4]]


def test_text_search_ranks_shots_by_the_text_tower(tiny_catalog) -> None:
    from annotator_core.encoders import load_encoder

    data_dir, vectors = tiny_catalog
    text = "a cyclist riding down a mountain road"
    rows = _rows(run_va(["search", text, "--limit", "3", "--json"], data_dir))
    query = load_encoder("tiny-clip", device="cpu").embed_texts([text])[0]
    ids = list(vectors)
    exact = np.array([vectors[i] for i in ids]) @ query
    assert [r["shot_id"] for r in rows] == [ids[i] for i in np.argsort(-exact)[:3]]
    assert [r["score"] for r in rows] == pytest.approx(np.sort(exact)[::-1][:3].tolist(), abs=1e-3)


def test_video_filter_and_table_output(tiny_catalog) -> None:
    data_dir, _ = tiny_catalog
    rows = _rows(run_va(["search", "--like", shot_id("bikes", 0), "--video", "bunny", "--json"], data_dir))
    assert len(rows) == len(STARTS) and {r["video_id"] for r in rows} == {"bunny"}
    table = run_va(["search", "--like", shot_id("bikes", 25), "--limit", "2"], data_dir)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["#", "score", "shot", "time", "title"]
    assert lines[1].split()[:3] == ["1", "1.000", "bikes:25"]
    assert "00:01.0-00:02.0" in lines[1] and lines[1].endswith("bikes.mp4")
    assert len(lines) == 3


def test_bad_requests_are_one_line_with_the_fix(tiny_catalog, tmp_path: Path) -> None:
    data_dir, _ = tiny_catalog
    neither = run_va(["search"], data_dir)
    assert neither.returncode == 2 and "give either TEXT or --like SHOT_ID" in neither.stderr
    missing = run_va(["search", "--like", "nope:0"], data_dir)
    assert missing.returncode == 2 and "no shot 'nope:0'" in missing.stderr and "Traceback" not in missing.stderr
    empty = run_va(["search", "anything"], tmp_path)
    assert empty.returncode == 2 and "run `va ingest PATH` first" in empty.stderr


def test_text_search_over_an_encoder_without_text_says_so(sample_videos_dir: Path, tmp_path: Path) -> None:
    _fill(tmp_path, sample_videos_dir, "handcrafted")
    result = run_va(["search", "a red car"], tmp_path)
    assert result.returncode == 2
    assert "'handcrafted' has no text tower" in result.stderr and "search by example" in result.stderr
    rows = _rows(run_va(["search", "--like", shot_id("bikes", 75), "--limit", "1", "--json"], tmp_path))
    assert rows[0]["shot_id"] == shot_id("bikes", 75)
