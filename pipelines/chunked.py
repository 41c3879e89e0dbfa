"""A long title's decode split in time across Ray tasks (see annotator_core/media/chunks.py).

The title's decode task plans the chunks, starts one Ray task for each chunk but the first,
decodes the first itself (its shots go on as they close, as a single pass's do), then stitches
the other chunks' pieces in order as they arrive: it yields the same shots, in the same order, as
one sequential pass, so everything after the decode stage (the embedding actors, the keyed
writes, the ``done`` row written last, resume) is unchanged. While the task waits for its
chunks, Ray lends its CPU to them.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import ray

from annotator_core.media.chunks import (
    Chunk,
    ChunkResult,
    Piece,
    decode_chunk,
    decode_chunked,
    iter_chunk,
    plan_chunks,
)
from annotator_core.media.decode import DecodeStats, decode_shots
from annotator_core.media.probe import VideoInfo
from annotator_core.media.remux import decodable
from annotator_core.media.sampling import SampleOptions, ShotSample
from pipelines.catalog import local_copy


def _decode_chunk(uri: str, info: VideoInfo, options: SampleOptions, chunk: Chunk) -> ChunkResult:
    with local_copy(uri) as local, decodable(local, stream=info.stream) as path:  # the stream the title's task read
        return decode_chunk(path, info, options, chunk)


_decode_chunk_task = ray.remote(num_cpus=1)(_decode_chunk)


def decode_title_shots(
    uri: str,
    path: str,
    info: VideoInfo,
    options: SampleOptions,
    stats: DecodeStats,
    *,
    chunk_seconds: float,
    retries: int,
) -> Iterator[ShotSample]:
    """The shots of the title at ``path`` (``uri`` for the chunk tasks), chunked when longer than ``chunk_seconds``.

    A transcoded title (``info.transcoded``) is decoded here in one pass: its copy exists only in this task, and
    each chunk task would transcode the whole title again.
    """
    plan = plan_chunks(
        n_frames=info.n_frames, fps=info.fps, chunk_seconds=0.0 if info.transcoded else chunk_seconds,
        min_shot_frames=options.detector.shortest_shot(info.fps),
    )  # fmt: skip
    if len(plan) == 1 or not ray.is_initialized():
        yield from decode_shots(path, info, options, stats)
        return
    task = _decode_chunk_task.options(max_retries=retries, retry_exceptions=False)
    refs = [task.remote(uri, info, options, chunk) for chunk in plan[1:]]

    def results() -> Iterator[ChunkResult | Generator[Piece, None, ChunkResult]]:
        yield iter_chunk(path, info, options, plan[0])  # decoded here, its shots streamed as they close
        for ref in refs:
            yield ray.get(ref)

    try:
        yield from decode_chunked(results(), options, stats)
    finally:
        for ref in refs:  # a failed chunk fails the title: its other chunks need not finish
            ray.cancel(ref)
