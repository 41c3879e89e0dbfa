"""A long title decoded in chunks by separate tasks, stitched back into exactly the shots of one pass.

A title longer than ``chunk_seconds`` is cut in time (:func:`plan_chunks`). Each chunk *owns* the
frames ``[start, end)``; its task seeks to the keyframe before ``start - warm-up`` and feeds the
shot detector from there, so the detector's state (its rolling window, the minimum shot length
since the last cut) is the one a single pass has when it reaches ``start``; it also decodes a few
frames past ``end``, because cuts are reported a few frames late. A cut belongs to the chunk that
owns its frame, so every boundary is seen, and seen once.

A chunk returns its owned frames as :class:`Piece` s split at its cuts. A piece that starts at a
cut and ends at one is a whole shot and is sampled in the chunk's task; the pieces at a chunk's
edges may be parts of a shot that spans a chunk boundary, and travel with their kept frames.
:class:`Stitcher` (pure: no decoding) joins consecutive pieces into shots, a new shot at each
piece that opens one, so a shot is never split at a chunk boundary and its id
(``video_id:start_frame``) is the single pass's.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import cv2
import decord
import numpy as np

from annotator_core.errors import first_line
from annotator_core.media.decode import TRUNCATION_TOLERANCE, DecodeStats, Frames, add_stretch, cut_detector
from annotator_core.media.probe import VideoInfo, VideoRefused
from annotator_core.media.sampling import OpenShot, SampleOptions, ShotSample, decode_size, sample_shot

WARMUP_SECONDS = 2.0  # detector warm-up before a chunk's first owned frame (at least WARMUP_MIN_SHOTS shots)
WARMUP_MIN_SHOTS = 4  # ... and at least this many minimum-length shots, so a suppressed cut cannot differ
LAST_CHUNK_MIN_SHARE = 0.25  # a last chunk shorter than this share of a chunk joins the one before


@dataclass(frozen=True)
class Chunk:
    """Frames ``[start, end)`` of a title (``end`` None: to the end of the title), warmed up from ``warmup_from``."""

    index: int
    start: int
    end: int | None
    warmup_from: int


@dataclass
class Piece:
    """Owned frames ``[start, end)`` between two boundaries (a cut, a chunk edge, the title's ends)."""

    start: int
    end: int
    opens_shot: bool  # ``start`` is a cut or frame 0: a new shot begins with this piece
    kept: list[tuple[int, np.ndarray]] = field(default_factory=list)  # frames to sample from (decode size)
    sample: ShotSample | None = None  # set when the piece is a whole shot, sampled in the chunk's task


@dataclass
class ChunkResult:
    chunk: Chunk
    cuts: list[int]  # the cuts in the frames this chunk owns
    pieces: list[Piece]
    stats: DecodeStats
    frames: int  # one past the last owned frame decoded (the title's frame count for the last chunk)


def warmup_frames(*, fps: float, min_shot_frames: int) -> int:
    return max(round(WARMUP_SECONDS * fps), WARMUP_MIN_SHOTS * min_shot_frames)


def plan_chunks(*, n_frames: int, fps: float, chunk_seconds: float, min_shot_frames: int) -> list[Chunk]:
    """Chunks of ``chunk_seconds`` each (the last may be up to 1.25 long); one chunk when 0 or short enough."""
    if chunk_seconds < 0:
        raise ValueError(f"chunk_seconds must be >= 0 (0: never split), got {chunk_seconds}")
    size = max(1, round(chunk_seconds * fps))
    if chunk_seconds == 0 or n_frames <= size:
        return [Chunk(index=0, start=0, end=None, warmup_from=0)]
    starts = list(range(0, n_frames, size))
    if len(starts) > 1 and n_frames - starts[-1] < size * LAST_CHUNK_MIN_SHARE:
        starts.pop()
    warm = warmup_frames(fps=fps, min_shot_frames=min_shot_frames)
    ends: list[int | None] = [*starts[1:], None]
    return [
        Chunk(index=i, start=s, end=e, warmup_from=max(0, s - warm))
        for i, (s, e) in enumerate(zip(starts, ends, strict=True))
    ]


# --------------------------------------------------------------------------- stitching (pure)


class Stitcher:
    """Joins the pieces of consecutive chunks, in order, into whole shots (lists of pieces)."""

    def __init__(self) -> None:
        self.open: list[Piece] = []  # the pieces of the shot not yet known to be whole
        self.next_frame = 0

    def add(self, pieces: Sequence[Piece]) -> list[list[Piece]]:
        """The shots these pieces close; the last one stays open until a piece opens the next shot."""
        shots: list[list[Piece]] = []
        for piece in pieces:
            if piece.start != self.next_frame or piece.end <= piece.start:
                raise ValueError(
                    f"piece [{piece.start}, {piece.end}) does not continue at frame {self.next_frame}; "
                    "chunks must be stitched in order, each covering the frames its plan owns"
                )
            if piece.start == 0 and not piece.opens_shot:
                raise ValueError("the piece at frame 0 must open a shot")
            if piece.opens_shot and self.open:
                shots.append(self.open)
                self.open = []
            self.open.append(piece)
            self.next_frame = piece.end
        return shots

    def finish(self) -> list[list[Piece]]:
        """The last shot, which the title's end closes."""
        shots, self.open = ([self.open] if self.open else []), []
        return shots


def shot_sample(pieces: Sequence[Piece], options: SampleOptions) -> ShotSample:
    """One shot's sample from its pieces: the chunk's own when it was whole there, else from all kept frames."""
    if len(pieces) == 1 and pieces[0].sample is not None:
        return pieces[0].sample
    kept = [item for piece in pieces for item in piece.kept]
    if not kept:
        raise ValueError(f"shot [{pieces[0].start}, {pieces[-1].end}) has no frames to sample")
    return sample_shot(pieces[0].start, pieces[-1].end, kept, options)


# --------------------------------------------------------------------------- one chunk's decode


def _keyframe_before(reader: decord.VideoReader, frame: int) -> int:
    if frame <= 0:
        return 0
    keys = [int(k) for k in reader.get_key_indices() if k <= frame]
    return max(keys) if keys else 0


def decode_chunk(path: str, info: VideoInfo, options: SampleOptions, chunk: Chunk) -> ChunkResult:
    """Decode one chunk: detector warm-up from the keyframe before it, its owned frames as pieces.

    Raises VideoRefused when the decoder fails or the file ends before the chunk (or, for the last
    chunk, before the declared frame count allows).
    """
    pieces = iter_chunk(path, info, options, chunk)
    while True:
        try:
            next(pieces)
        except StopIteration as done:
            result: ChunkResult = done.value
            return result


def iter_chunk(path: str, info: VideoInfo, options: SampleOptions, chunk: Chunk) -> Generator[Piece, None, ChunkResult]:
    """:func:`decode_chunk` that yields each piece as soon as it closes and returns the chunk's result.

    The title's own task decodes its first chunk this way, so that chunk's shots go on to be embedded
    while it decodes, as a single pass's would, instead of when the whole chunk is done.
    """
    stats = DecodeStats()
    width, height = decode_size(info, options)
    cv2.setNumThreads(1)
    try:
        frames = Frames(lambda: decord.VideoReader(path, num_threads=1, width=width, height=height), info)
        index = _keyframe_before(frames.reader, chunk.warmup_from)
        if index:
            frames.start_at(index)
    except (RuntimeError, decord.DECORDError) as exc:
        raise VideoRefused(f"not a video the decoder can read ({first_line(exc, limit=200)})") from None
    detector = cut_detector(info, options)
    end = chunk.end if chunk.end is not None else info.n_frames * 2 + 1_000_000  # the last chunk: to the end
    stop = end + detector.lag + options.detector.shortest_shot(info.fps) + 2 if chunk.end is not None else end
    recent: deque[tuple[int, np.ndarray]] = deque(maxlen=detector.lag + 2)
    cuts: list[int] = []
    pieces: list[Piece] = []
    emitted = 0  # pieces already yielded
    shot = OpenShot(chunk.start)
    opens = chunk.start == 0

    def close(at: int, *, whole: bool) -> None:
        """End the open piece at ``at``; ``whole``: it is ended by a cut, so it is a whole shot if it opened one."""
        nonlocal shot, opens
        before = [(i, f) for i, f in shot.kept if i < at] or shot.kept[:1]
        piece = Piece(start=shot.start, end=at, opens_shot=opens)
        if whole and opens:
            t0 = time.perf_counter()
            piece.sample = sample_shot(shot.start, at, before, options)
            stats.sample_s += time.perf_counter() - t0
        else:
            piece.kept = before
        pieces.append(piece)

    def split(cut: int) -> None:
        nonlocal shot, opens
        if not chunk.start <= cut < end:
            return  # a cut another chunk owns
        cuts.append(cut)
        if cut <= shot.start:
            opens = True  # the cut is this chunk's first frame: its first piece opens a shot
            return
        after = dict((i, f) for i, f in [*shot.kept, *recent] if i >= cut)
        close(cut, whole=True)
        shot, opens = OpenShot(cut), True
        for i in sorted(after):
            shot.add(i, after[i])

    while frames.index < stop:
        t0 = time.perf_counter()
        try:
            index, frame = next(frames)
        except StopIteration:
            break
        t1 = time.perf_counter()
        if chunk.start <= index < end:
            recent.append((index, frame))
            shot.add(index, frame)
        found = detector.process(index, frame)
        stats.decode_s += t1 - t0
        stats.detect_s += time.perf_counter() - t1
        for cut in found:
            split(cut)
        yield from pieces[emitted:]
        emitted = len(pieces)
    index = frames.index
    # the stretches this chunk owns (its warm-up's belong to the chunk before, which reports them)
    stats.lost = [(max(a, chunk.start), min(b, end)) for a, b in frames.lost if b > chunk.start and a < end]
    if chunk.end is not None:
        if index < chunk.end:
            raise VideoRefused(f"truncated: decoded {index} frames, the chunk at {chunk.start} needs {chunk.end}")
        close(chunk.end, whole=False)
        yield from pieces[emitted:]
        return ChunkResult(chunk=chunk, cuts=cuts, pieces=pieces, stats=stats, frames=chunk.end)
    if index < info.n_frames * TRUNCATION_TOLERANCE or index <= chunk.start:
        raise VideoRefused(f"truncated: decoded {index} of {info.n_frames} frames")
    for cut in sorted(detector.finish()):
        if cut < index:
            split(cut)
    if index > shot.start and shot.kept:
        close(index, whole=True)
    yield from pieces[emitted:]
    stats.frames = index
    return ChunkResult(chunk=chunk, cuts=cuts, pieces=pieces, stats=stats, frames=index)


def _replayed(result: ChunkResult) -> Generator[Piece, None, ChunkResult]:
    """A finished chunk as :func:`iter_chunk` would have given it."""
    yield from result.pieces
    return result


def decode_chunked(
    results: Iterable[ChunkResult | Generator[Piece, None, ChunkResult]], options: SampleOptions, stats: DecodeStats
) -> Iterator[ShotSample]:
    """The title's shots, in order, from its chunks (in chunk order); ``stats`` sums their timings.

    A chunk is its finished result, or a chunk still decoding (:func:`iter_chunk`): its shots are
    yielded as its pieces close them.
    """
    stitcher = Stitcher()
    for item in results:
        chunk = _replayed(item) if isinstance(item, ChunkResult) else item
        while True:
            try:
                piece = next(chunk)
            except StopIteration as done:
                result: ChunkResult = done.value
                break
            for pieces in stitcher.add([piece]):
                yield shot_sample(pieces, options)
        stats.decode_s += result.stats.decode_s
        stats.detect_s += result.stats.detect_s
        stats.sample_s += result.stats.sample_s
        for start, end in result.stats.lost:  # one stretch across a chunk edge is one stretch
            add_stretch(stats.lost, start, end)
        stats.frames = result.frames
    for pieces in stitcher.finish():
        yield shot_sample(pieces, options)
