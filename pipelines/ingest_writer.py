"""The ingest job's write stage: embedded rows in, keyed batches into the shot store, the run's summary out.

The driver streams the pipeline's output into :class:`ShotWriter`, which writes ``shots`` in batches of
``write_batch_size`` (each write is one LanceDB fragment) with keyed ``merge_insert``. A video's row is
written only after all its shots are, so a killed run, resumed, ends with exactly the rows of an
uninterrupted one. What a run did is counted in :class:`IngestSummary`, handed live to ``progress``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from annotator_core.records import VideoRecord, shot_id, shots_schema
from annotator_core.settings import Settings
from annotator_core.shot_store import ShotStore
from pipelines.stages import failed_fields, video_fields


@dataclass
class IngestSummary:
    """What a run did; also handed, live, to the ``progress`` callback while it runs."""

    videos_done: int = 0
    videos_failed: int = 0
    videos_skipped: int = 0  # done before, or the same content as another file: nothing left to do
    failed_before: int = 0  # of the skipped: failed on an earlier run and unchanged since (see retry_failed)
    moved: list[str] = field(default_factory=list)  # done videos found at a new path (moved or renamed): updated
    # files left out, with why: links out of the folder or broken, names not UTF-8, unreadable
    links_skipped: list[tuple[str, str]] = field(default_factory=list)
    other_suffixes: dict[str, int] = field(default_factory=dict)  # files of folders and globs not taken: suffix -> n
    shots: int = 0
    seconds: float = 0.0
    video_seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)
    damaged: list[tuple[str, str]] = field(default_factory=list)  # ingested with stretches it could not decode
    videos_total: int = 0  # videos this run set out to ingest (after skips and --limit)
    encoder: str = ""
    dry_run: bool = False
    planned: list[str] = field(default_factory=list)  # URIs a dry run would ingest
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def videos_remaining(self) -> int:
        return max(0, self.videos_total - self.videos_done - self.videos_failed)

    @property
    def files_left_out(self) -> int:
        """Files the paths named that this run could not consider (see ``links_skipped``)."""
        return len(self.links_skipped)

    @property
    def throughput(self) -> float:
        """Video-seconds ingested per wall-clock second."""
        return self.video_seconds / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["videos_remaining"] = self.videos_remaining
        out["files_left_out"] = self.files_left_out
        out["throughput"] = self.throughput
        return out


ProgressFn = Callable[[IngestSummary], None]


def new_video(entry: dict[str, Any], encoder: str) -> VideoRecord:
    """The ``videos`` row of a catalog entry before it is probed: the one place a video row is made."""
    return VideoRecord(**video_fields(entry, encoder))


class ShotWriter:
    """Collects the embedded rows on the driver and writes them in large keyed batches."""

    def __init__(
        self,
        store: ShotStore,
        *,
        settings: Settings,
        summary: IngestSummary,
        progress: ProgressFn | None,
        started: float,
    ) -> None:
        self.store = store
        self.batch_size = settings.write_batch_size
        self.retries = settings.decode_retries
        self.summary = summary
        self.progress = progress
        self.started = started
        self.pending: dict[str, list[dict[str, Any]]] = {}  # shots of videos not yet complete
        self.videos: dict[str, VideoRecord] = {}  # video rows waiting for all their shots
        self.shot_buffer: list[dict[str, Any]] = []
        self.video_buffer: list[VideoRecord] = []  # written right after the shots buffered before them
        self.seen: set[str] = set()
        self.failed_at = store.failed_at()  # path -> ids of failed rows there, read once per run

    def add(self, batch: pa.Table) -> None:
        for row in batch.to_pylist():
            vid = row["video_id"]
            if row["kind"] == "video":
                payload = json.loads(row["video"])
                for stage, seconds in payload["timings"].items():
                    self._time(stage, seconds)
                self.videos[vid] = VideoRecord.model_validate(payload["record"])
                self.seen.add(vid)
            else:
                self._time("embed", row["embed_s"])
                self.pending.setdefault(vid, []).append(row)
        for vid in [v for v, video in self.videos.items() if self._complete(video)]:
            self._accept(self.videos.pop(vid), self.pending.pop(vid, []))
        if len(self.shot_buffer) >= self.batch_size:
            self.flush()
        self._report()

    def _complete(self, video: VideoRecord) -> bool:
        return video.status == "failed" or len(self.pending.get(video.video_id, [])) >= video.n_shots

    def _accept(self, video: VideoRecord, shots: list[dict[str, Any]]) -> None:
        if video.status == "done":
            self.shot_buffer.extend(self._shot_record(video, s) for s in shots)
        self.video_buffer.append(video)

    def _shot_record(self, video: VideoRecord, row: dict[str, Any]) -> dict[str, Any]:
        return {
            "shot_id": shot_id(row["video_id"], row["start_frame"]),
            "video_id": row["video_id"],
            "start_frame": row["start_frame"],
            "end_frame": row["end_frame"],
            "start_s": row["start_s"],  # the decode task's: timestamps on a variable-rate stream
            "end_s": row["end_s"],
            "thumbnail": row["thumbnail"],
            "cluster_id": -1,
            "encoder": video.encoder,
            "vector": row["vector"],
        }

    def flush(self) -> None:
        t0 = time.perf_counter()
        if self.shot_buffer:
            dim = len(self.shot_buffer[0]["vector"])
            self.store.upsert_shots(pa.Table.from_pylist(self.shot_buffer, schema=shots_schema(dim)))
        if self.video_buffer:
            now = datetime.now(UTC)
            failed = [v.video_id for v in self.video_buffer if v.status == "failed"]
            for vid in failed:  # shots an earlier, interrupted run wrote for a video that now fails
                self.store.delete_video_shots(vid)
            # A file refused while still being copied (or replaced since) is not still failing once its new
            # content has a row at its path: its old failed row goes. Done rows of older content stay (their
            # shots may carry labels).
            stale = [old for v in self.video_buffer for old in self.failed_at.pop(v.uri, set()) if old != v.video_id]
            if stale:
                self.store.delete_failed_videos(stale)
            self.store.upsert_videos([{**v.model_dump(), "ingested_at": now} for v in self.video_buffer])
        s = self.summary
        for video in self.video_buffer:
            if video.status == "done":
                s.videos_done += 1
                s.shots += video.n_shots
                s.video_seconds += video.duration_s
                if video.error:
                    s.damaged.append((video.uri, video.error))
            else:
                s.videos_failed += 1
                s.failures.append((video.uri, video.error))
        self.shot_buffer, self.video_buffer = [], []
        self._time("write", time.perf_counter() - t0)

    def finish(self, todo: list[dict[str, Any]]) -> None:
        """Write what is left; titles whose task died every time, or whose shots were lost, become failed."""
        for row in todo:
            vid = row["video_id"]
            if vid in self.seen and vid not in self.videos:
                continue
            video = self.videos.pop(vid, None)
            if video is None:
                error = f"the decoder crashed (worker died) on each of {self.retries + 1} attempts"
                video = new_video(row, self.summary.encoder).model_copy(update=failed_fields(error))
            else:
                lost = video.n_shots - len(self.pending.get(vid, []))
                error = f"{lost} of {video.n_shots} shots were lost in embedding"
                video = video.model_copy(update=failed_fields(error))
            self.pending.pop(vid, None)
            self._accept(video, [])
        self.flush()
        self._report()

    def _time(self, stage: str, seconds: float) -> None:
        self.summary.stage_seconds[stage] = self.summary.stage_seconds.get(stage, 0.0) + float(seconds)

    def _report(self) -> None:
        self.summary.seconds = time.perf_counter() - self.started
        if self.progress is not None:
            self.progress(self.summary)
