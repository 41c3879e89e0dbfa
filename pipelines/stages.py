"""The ingest job's worker-side stages: the per-title decode UDF and the embedding actor.

Ray ships these to its worker processes by module, so this module imports only what the
workers need (decoding, sampling, the encoder registry) and none of the driver's LanceDB,
storage or writer code: every decode task's and embedding actor's process starts ~1 s sooner,
a cost paid once per worker and again whenever a chunk task or an actor starts a fresh one.
``tests/unit/test_import_boundaries.py`` keeps it so.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from annotator_core.encoders import load_encoder, spec_uses_torch
from annotator_core.errors import SETUP_FAILURE, ConfigError
from annotator_core.media.decode import MAX_LOST_SHARE, DecodeStats, frames_lost, lost_note
from annotator_core.media.probe import VideoInfo, VideoRefused
from annotator_core.media.remux import probed
from annotator_core.media.sampling import SampleOptions
from pipelines.catalog import local_copy, title_of
from pipelines.chunked import decode_title_shots

SHOTS_PER_YIELD = 16  # shots per batch a decode task hands on (small: frames are ~150-450 KB a shot)
# Ray Data coalesces what a task yields into blocks of up to 128 MiB, so a title's shots reached the embedding
# actors only when the whole title was decoded; blocks this small leave the task as each batch is yielded.
DECODED_BLOCK_BYTES = 4 << 20
# Without a GPU, shots per embedding batch at most: embedding starts after this many shots, not after
# ``embed_batch_size`` (64, sized for a GPU), which a few titles' decode only reaches at its very end.
CPU_EMBED_SHOTS = 16

# One schema for every row the decode tasks emit: shot rows and, last per title, one video row.
DECODED_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),  # "shot" | "video"
        ("video_id", pa.string()),
        ("start_frame", pa.int64()),
        ("end_frame", pa.int64()),
        ("start_s", pa.float64()),  # from the frame's timestamp on a variable-rate stream, else frame / fps
        ("end_s", pa.float64()),
        ("frames", pa.binary()),  # uint8 [k, H, W, 3] in C order
        ("thumbnail", pa.binary()),
        ("video", pa.string()),  # JSON of the video row and decode timings; "" for shots
    ]
)

DecodeFn = Callable[..., Iterator[pa.Table]]


# --------------------------------------------------------------------------- the decode stage


@dataclass(frozen=True)
class DecodeJob:
    """Everything a decode task needs, as plain values (it is shipped to every worker)."""

    options: SampleOptions
    max_duration_s: float
    max_pixels: int
    max_frames: int
    probe_timeout_s: float
    encoder: str
    chunk_seconds: float = 0.0  # titles longer than this are decoded in chunks by parallel tasks (0: never)
    decode_retries: int = 0


def video_fields(entry: dict[str, Any], encoder: str) -> dict[str, Any]:
    """The fields of a catalog entry's ``videos`` row before it is probed (the driver validates the row)."""
    return {"video_id": entry["video_id"], "uri": entry["uri"], "title": title_of(entry["uri"]), "encoder": encoder}


def failed_fields(error: str) -> dict[str, Any]:
    """What makes a ``videos`` row a failed one: its status, the error, and no shots."""
    return {"status": "failed", "error": error, "n_shots": 0}


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=DECODED_SCHEMA)


def _shot_row(video_id: str, sample: Any, info: VideoInfo) -> dict[str, Any]:
    return {
        "kind": "shot",
        "video_id": video_id,
        "start_frame": sample.start_frame,
        "end_frame": sample.end_frame,
        "start_s": info.seconds(sample.start_frame),
        "end_s": info.seconds(sample.end_frame),
        "frames": np.ascontiguousarray(sample.frames, dtype=np.uint8).tobytes(),
        "thumbnail": sample.thumbnail,
        "video": "",
    }


def decode_title(batch: pa.Table, job: DecodeJob) -> Iterator[pa.Table]:
    """The per-title Ray Data UDF: one catalog row in, its shot rows and then one video row out."""
    for entry in batch.to_pylist():
        video = video_fields(entry, job.encoder)
        stats = DecodeStats()
        try:
            limits = {"max_duration_s": job.max_duration_s, "max_pixels": job.max_pixels, "max_frames": job.max_frames}
            with (
                local_copy(entry["uri"]) as local,
                probed(local, timeout_s=job.probe_timeout_s, **limits) as (path, info),
            ):
                video.update(
                    duration_s=info.duration_s, fps=info.fps, width=info.width, height=info.height,
                    n_frames=info.n_frames,
                )  # fmt: skip
                rows: list[dict[str, Any]] = []
                n_shots = 0
                shots = decode_title_shots(
                    entry["uri"], path, info, job.options, stats,
                    chunk_seconds=job.chunk_seconds, retries=job.decode_retries,
                )  # fmt: skip
                for sample in shots:
                    rows.append(_shot_row(entry["video_id"], sample, info))
                    n_shots += 1
                    if len(rows) >= SHOTS_PER_YIELD:
                        yield _table(rows)
                        rows = []
                if rows:
                    yield _table(rows)
                video.update(n_shots=n_shots, n_frames=stats.frames, duration_s=info.seconds(stats.frames))
                lost = frames_lost(stats.lost)
                if lost > MAX_LOST_SHARE * info.n_frames:  # chunks each under the share, the title over it
                    raise VideoRefused(
                        f"damaged: {lost} of its {info.n_frames} frames ({lost / info.n_frames:.0%}) cannot be "
                        f"decoded, more than the {MAX_LOST_SHARE:.0%} ingest skips; re-encode it or copy it again"
                    )
                note = lost_note(stats.lost, info) or info.note
                if note:
                    video.update(error=note)
        except VideoRefused as exc:
            video.update(failed_fields(str(exc)))
        except ConfigError as exc:  # this machine lacks a tool (ffmpeg): not the file's fault, retried next run
            video.update(failed_fields(f"{SETUP_FAILURE}{exc}"))
        except Exception as exc:  # any other fault of this one title is its failed row, not the job's end
            video.update(failed_fields(f"{type(exc).__name__}: {exc}"[:500]))
        timings = {"decode": stats.decode_s, "detect": stats.detect_s, "sample": stats.sample_s}
        payload = json.dumps({"record": video, "timings": timings})
        yield _table(
            [{"kind": "video", "video_id": entry["video_id"], "start_frame": 0, "end_frame": 0, "start_s": 0.0,
              "end_s": 0.0, "frames": b"", "thumbnail": b"", "video": payload}]
        )  # fmt: skip


# --------------------------------------------------------------------------- the embedding stage


class EmbedShots:
    """Embedding actor: loads the encoder once, then turns batches of shot frames into vectors."""

    def __init__(
        self, spec: str, device: str, frames_per_shot: int, cpu_precision: str = "auto", cache_dir: str | None = None
    ) -> None:
        # Import torch only for an encoder that runs on it: ~1.5 s of a core at each actor's start, which on a
        # small machine the decode tasks would otherwise give up.
        torch = import_module("torch") if spec_uses_torch(spec) else None
        if torch is not None and (device == "cpu" or (device == "auto" and not torch.cuda.is_available())):
            # Without a GPU the actor holds no CPU (num_cpus=0, see _pipeline), so Ray set OMP_NUM_THREADS=1 and
            # torch would embed on one core; give it the cores this worker may run on, shared with the decoders.
            torch.set_num_threads(len(os.sched_getaffinity(0)))
        self.encoder = load_encoder(
            spec, device=device, cpu_precision=cpu_precision, cache_dir=Path(cache_dir) if cache_dir else None
        )
        self.frames_per_shot = frames_per_shot

    def __call__(self, batch: pa.Table) -> pa.Table:
        t0 = time.perf_counter()
        kinds = batch.column("kind").to_pylist()
        h, w = self.encoder.frame_size
        dim = self.encoder.dim
        shape = (self.frames_per_shot, h, w, 3)
        shot_rows = [i for i, kind in enumerate(kinds) if kind == "shot"]
        frames = batch.column("frames")
        shots = [np.frombuffer(frames[i].as_py(), dtype=np.uint8).reshape(shape) for i in shot_rows]
        vectors = np.zeros((batch.num_rows, dim), np.float32)
        if shots:
            vectors[shot_rows] = self.encoder.embed_shots(shots)
        out = batch.drop_columns(["frames"])
        out = out.append_column("vector", pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim))
        seconds = (time.perf_counter() - t0) / max(1, len(shot_rows))
        return out.append_column("embed_s", pa.array([seconds] * batch.num_rows, pa.float64()))
