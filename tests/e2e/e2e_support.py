"""What the end-to-end tests share besides fixtures: the annotator's login, the served app's record, a corpus maker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EDITOR = ("editor", "correct horse battery")


@dataclass(frozen=True)
class Served:
    url: str
    settings: object
    shots: int
    login: tuple[str, str]  # name and password of an annotator
    second_token: str  # API token of a second annotator, who disagrees in the test


def tiny_clip_corpus(settings: object, videos: list[Path]) -> int:
    """Shots of one-second windows of real clips, embedded by the tiny CLIP, written straight to the store.

    The tiny CLIP has a text tower, so this corpus exercises text search; no Ray, so it takes seconds.
    """
    import hashlib
    from datetime import UTC, datetime

    import decord
    import numpy as np

    from annotator_core.encoders import load_encoder
    from annotator_core.media.sampling import fit_frame, jpeg_thumbnail
    from annotator_core.shot_store import ShotStore

    encoder = load_encoder("tiny-clip", device="cpu")
    video_rows, shot_rows, frames_per_shot = [], [], []
    for path in videos:
        reader = decord.VideoReader(str(path))
        fps, n = float(reader.get_avg_fps()), len(reader)
        height, width = reader[0].shape[:2]
        video_id = hashlib.sha256(path.read_bytes()).hexdigest()[:32]
        step = max(1, round(fps))
        starts = list(range(0, n - step // 2, step))
        for start in starts:
            end = min(n, start + step)
            frames = reader.get_batch(np.linspace(start, end - 1, 3).astype(int).tolist()).asnumpy()
            frames_per_shot.append(np.stack([fit_frame(f, encoder.frame_size) for f in frames]))
            shot_rows.append(
                {
                    "shot_id": f"{video_id}:{start}",
                    "video_id": video_id,
                    "start_frame": start,
                    "end_frame": end,
                    "start_s": start / fps,
                    "end_s": end / fps,
                    "thumbnail": jpeg_thumbnail(frames[1], 320),
                    "cluster_id": len(shot_rows) % 4,
                    "encoder": encoder.name,
                }
            )
        video_rows.append(
            {
                "video_id": video_id,
                "uri": str(path.resolve()),
                "title": path.stem,
                "duration_s": n / fps,
                "fps": fps,
                "width": width,
                "height": height,
                "n_frames": n,
                "n_shots": len(starts),
                "status": "done",
                "error": "",
                "ingested_at": datetime.now(UTC),
                "encoder": encoder.name,
            }
        )
    vectors = encoder.embed_shots(frames_per_shot)
    for row, vector in zip(shot_rows, vectors, strict=True):
        row["vector"] = vector.tolist()
    store = ShotStore.from_settings(settings)
    store.upsert_videos(video_rows)
    store.upsert_shots(shot_rows)
    return len(shot_rows)
