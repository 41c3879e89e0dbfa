"""Thumbnail fingerprints: invariant to the copies' edits on real photos, and a Hamming join equal to brute force."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import sklearn.datasets
from hypothesis import given, settings
from hypothesis import strategies as st

from annotator_core.errors import ValidationFailed
from annotator_core.fingerprint import (
    MIRROR_MASK,
    NO_CODE,
    Fingerprint,
    fingerprint_distance,
    fingerprint_gray,
    fingerprint_jpeg,
    fingerprint_pairs,
    trim_borders,
)
from annotator_core.settings import Settings

PHOTOS = Path(sklearn.datasets.__file__).parent / "images"  # two real photos shipped with scikit-learn
DEFAULT_DISTANCE = Settings.model_fields["duplicate_fingerprint_distance"].default


def photo(name: str) -> np.ndarray:
    """A real photo, shrunk to a 320-pixel-wide grayscale thumbnail as ingest keeps one."""
    rgb = cv2.imread(str(PHOTOS / name), cv2.IMREAD_GRAYSCALE)
    return cv2.resize(rgb, (320, round(320 * rgb.shape[0] / rgb.shape[1])), interpolation=cv2.INTER_AREA)


def letterboxed(gray: np.ndarray) -> np.ndarray:
    """Squeezed to 75 % of its height and padded back with black bars, as the benchmark's ffmpeg copy."""
    h, w = gray.shape
    inner = cv2.resize(gray, (w, round(h * 0.75)), interpolation=cv2.INTER_AREA)
    top = (h - inner.shape[0]) // 2
    out = np.zeros_like(gray)
    out[top : top + inner.shape[0]] = inner
    return out


def cropped(gray: np.ndarray) -> np.ndarray:
    """The centre 90 % of each side, scaled back up (a 10 % crop)."""
    h, w = gray.shape
    dh, dw = round(h * 0.05), round(w * 0.05)
    return cv2.resize(gray[dh : h - dh, dw : w - dw], (w, h), interpolation=cv2.INTER_LINEAR)


def brightened(gray: np.ndarray) -> np.ndarray:
    """ffmpeg's eq=brightness=0.12:contrast=1.1, clipped to 8 bits."""
    return np.clip((gray.astype(np.float32) - 128) * 1.1 + 128 + 0.12 * 255, 0, 255).astype(np.uint8)


def jpeg(gray: np.ndarray, quality: int = 85) -> bytes:
    return cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


@pytest.mark.parametrize("name", ["china.jpg", "flower.jpg"])
def test_edited_copies_stay_within_the_default_distance_and_the_other_photo_stays_far(name: str) -> None:
    source = photo(name)
    original = fingerprint_jpeg(jpeg(source))
    assert original is not None
    mirrored = fingerprint_jpeg(jpeg(np.ascontiguousarray(source[:, ::-1])))
    assert mirrored is not None and fingerprint_distance(original, mirrored) <= 2  # JPEG noise only
    for edit in (letterboxed, cropped, brightened):
        copy = fingerprint_jpeg(jpeg(edit(source), quality=60))
        assert copy is not None and fingerprint_distance(original, copy) <= DEFAULT_DISTANCE, edit.__name__
    other = fingerprint_jpeg(jpeg(photo("flower.jpg" if name == "china.jpg" else "china.jpg")))
    assert other is not None and fingerprint_distance(original, other) > 16


def test_mirroring_flips_exactly_the_odd_horizontal_frequencies() -> None:
    source = photo("china.jpg").astype(np.float32)
    plain, mirrored = fingerprint_gray(source), fingerprint_gray(source[:, ::-1])
    assert plain is not None and mirrored is not None and mirrored.full == plain.full ^ MIRROR_MASK


def test_black_bars_are_trimmed_but_a_dark_picture_is_kept() -> None:
    source = photo("flower.jpg")
    boxed = np.zeros((source.shape[0] + 80, source.shape[1] + 60), np.uint8)
    boxed[40:-40, 30:-30] = source
    trimmed = trim_borders(boxed)
    assert abs(trimmed.shape[0] - source.shape[0]) <= 2 and abs(trimmed.shape[1] - source.shape[1]) <= 2
    night = np.full((90, 160), 5, np.uint8)
    assert trim_borders(night).shape == night.shape


def test_an_unreadable_or_flat_thumbnail_has_no_fingerprint() -> None:
    assert fingerprint_jpeg(b"") is None
    assert fingerprint_jpeg(b"not a jpeg") is None
    # black frames and plain cards: their DCT signs are noise, so they would all match each other
    assert fingerprint_jpeg(jpeg(np.zeros((180, 320), np.uint8))) is None
    assert fingerprint_jpeg(jpeg(np.full((180, 320), 128, np.uint8))) is None


def test_bad_distance_names_the_value_and_the_fix() -> None:
    with pytest.raises(ValidationFailed, match=r"40.*VA_DUPLICATE_FINGERPRINT_DISTANCE"):
        fingerprint_pairs(np.zeros(3, np.int64), np.zeros(3, np.int64), max_distance=40)


def random_codes(n: int, copies: int, flips: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random 63-bit (full, crop) codes; the last ``copies`` are copies of earlier ones' full or crop code
    with up to ``flips`` bits flipped, some mirrored; a few rows have no code."""
    rng = np.random.default_rng(seed)
    full = rng.integers(0, 1 << 63, n, dtype=np.int64)
    crop = rng.integers(0, 1 << 63, n, dtype=np.int64)
    for row in range(max(0, n - copies), n):
        source = int(rng.integers(0, max(1, n - copies)))
        base = int(full[source] if rng.random() < 0.5 else crop[source])
        for bit in rng.integers(0, 63, int(rng.integers(0, flips + 1))):
            base ^= 1 << int(bit)
        if rng.random() < 0.5:
            base ^= MIRROR_MASK
        full[row] = base
    full[rng.random(n) < 0.05] = NO_CODE
    return full, crop


def brute_force(full: np.ndarray, crop: np.ndarray, max_distance: int) -> set[tuple[int, int]]:
    prints = [Fingerprint(int(f), int(c)) for f, c in zip(full, crop, strict=True)]
    return {
        (a, b)
        for a in range(len(prints))
        for b in range(a + 1, len(prints))
        if full[a] != NO_CODE and full[b] != NO_CODE and fingerprint_distance(prints[a], prints[b]) <= max_distance
    }


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 120),
    copies=st.integers(0, 60),
    max_distance=st.integers(0, 10),
    every=st.integers(1, 5),
    seed=st.integers(0, 10_000),
)
def test_fingerprint_join_finds_exactly_the_brute_force_pairs(
    n: int, copies: int, max_distance: int, every: int, seed: int
) -> None:
    full, crop = random_codes(n, copies, max_distance + 2, seed)
    truth = brute_force(full, crop, max_distance)
    found = {(int(a), int(b)) for a, b in fingerprint_pairs(full, crop, max_distance=max_distance)}
    assert found == truth
    # an incremental join (only the pairs touching the asked rows) finds exactly those of the whole join
    queries = np.arange(0, n, every)
    asked = {(int(a), int(b)) for a, b in fingerprint_pairs(full, crop, max_distance=max_distance, queries=queries)}
    assert asked == {p for p in truth if p[0] % every == 0 or p[1] % every == 0}


def test_the_join_in_two_threads_finds_what_one_thread_finds(monkeypatch) -> None:
    import annotator_core.fingerprint as fingerprint

    monkeypatch.setattr(fingerprint, "QUERY_CHUNK", 16)  # many chunks, so the two threads both get work
    full, crop = random_codes(150, 60, 8, 3)
    truth = brute_force(full, crop, 6)
    threaded = {(int(a), int(b)) for a, b in fingerprint_pairs(full, crop, max_distance=6, threads=2)}
    assert threaded == truth and len(truth) > 0
