"""An offline encoder with real meaning and no weights: colour, edges and motion of a shot.

Four blocks, each L2-normalised then weighted, concatenated and L2-normalised:

- colour layout: mean Lab colour of each cell of a 6x6 grid (where colours are),
- colour histograms: joint hue-saturation and value histograms (which colours),
- edges: Sobel orientation histogram, Canny edge density per cell, gradient statistics (texture, structure),
- motion: Farneback optical flow between consecutive frames: magnitude per cell, direction histogram,
  mean flow per quadrant, global pan/zoom and frame-difference statistics (what moves, how).

Deterministic (OpenCV runs single-threaded here) and 256-d.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import cv2
import numpy as np

from annotator_core.encoders.base import Encoder, l2_normalise

FRAME_SIZE = (144, 256)  # (height, width): 16:9, small enough for fast optical flow
LAYOUT_GRID = 6
CELL_GRID = 4
HUE_BINS, SAT_BINS, VALUE_BINS = 12, 4, 16
ORIENTATION_BINS = 16
FLOW_DIRECTION_BINS = 16
MOVING_PX = 1.0  # flow magnitude (pixels at FRAME_SIZE) counted as motion
FLOW_SCALE = 2  # optical flow runs on frames this many times smaller than FRAME_SIZE

# Block sizes and weights (the weight is each block's share of the squared length).
BLOCKS = {"layout": 108, "histogram": 64, "edges": 36, "motion": 48}
WEIGHTS = {"layout": 0.35, "histogram": 0.30, "edges": 0.15, "motion": 0.20}
DIM = sum(BLOCKS.values())


class HandcraftedEncoder(Encoder):
    name = "handcrafted"
    dim = DIM
    has_text = False
    frame_size = FRAME_SIZE

    def __init__(self) -> None:
        cv2.setNumThreads(1)  # one thread: the same numbers every run, and Ray runs one task per core

    def embed_shots(self, shots: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(shots), DIM), np.float32)
        for i, frames in enumerate(shots):
            if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
                raise ValueError(f"shot {i}: expected uint8 frames [k, H, W, 3] with k >= 1, got {frames.shape}")
            out[i] = shot_features(frames)
        return out


def shot_features(frames: np.ndarray) -> np.ndarray:
    """One 256-d unit vector for the frames ``[k, H, W, 3]`` (uint8 RGB) of one shot."""
    small = [_resize(np.ascontiguousarray(f, dtype=np.uint8)) for f in frames]
    grays = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in small]
    blocks = {
        "layout": np.mean([colour_layout(f) for f in small], axis=0),
        "histogram": np.mean([colour_histogram(f) for f in small], axis=0),
        "edges": np.mean([edge_statistics(g) for g in grays], axis=0),
        "motion": motion_statistics(grays),
    }
    parts = []
    for name, size in BLOCKS.items():
        block = np.asarray(blocks[name], np.float32)
        assert block.shape == (size,), (name, block.shape)
        norm = float(np.linalg.norm(block))
        unit = block / norm if norm > 1e-9 else block
        parts.append(unit * np.sqrt(WEIGHTS[name]))
    return l2_normalise(np.concatenate(parts))


def _resize(frame: np.ndarray) -> np.ndarray:
    h, w = FRAME_SIZE
    if frame.shape[:2] == (h, w):
        return frame
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)


def _cells(values: np.ndarray, grid: int) -> np.ndarray:
    """Mean of ``values`` [H, W] or [H, W, C] over each cell of a grid x grid split, row-major."""
    return cv2.resize(values, (grid, grid), interpolation=cv2.INTER_AREA)


def colour_layout(rgb: np.ndarray) -> np.ndarray:
    """Mean Lab colour per cell of a 6x6 grid, centred (L around 50, a and b around 0) and scaled to ~[-1, 1]."""
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)  # L 0..100, a/b about -128..127
    grid = _cells(lab, LAYOUT_GRID).reshape(-1, 3)
    grid = (grid - np.array([50.0, 0.0, 0.0], np.float32)) / np.array([50.0, 64.0, 64.0], np.float32)
    return grid.ravel()


def colour_histogram(rgb: np.ndarray) -> np.ndarray:
    """Joint hue-saturation histogram (12x4) and value histogram (16), each a distribution; sqrt (Hellinger)."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)  # H 0..179, S and V 0..255
    hs = cv2.calcHist([hsv], [0, 1], None, [HUE_BINS, SAT_BINS], [0, 180, 0, 256]).ravel()
    v = cv2.calcHist([hsv], [2], None, [VALUE_BINS], [0, 256]).ravel()
    return np.sqrt(np.concatenate([hs / max(hs.sum(), 1.0), v / max(v.sum(), 1.0)]))


def edge_statistics(gray: np.ndarray) -> np.ndarray:
    """Magnitude-weighted gradient orientation histogram (16), Canny density per cell (16), 4 global stats."""
    g = gray.astype(np.float32) / 255.0
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    magnitude, angle = cv2.cartToPolar(gx, gy)
    # Orientation modulo pi: an edge and its opposite gradient are the same edge.
    bins = (np.mod(angle, np.pi) / np.pi * ORIENTATION_BINS).astype(np.int64) % ORIENTATION_BINS
    orientation = np.bincount(bins.ravel(), weights=magnitude.ravel(), minlength=ORIENTATION_BINS)
    orientation = np.sqrt(orientation / max(float(orientation.sum()), 1e-9))
    edges = cv2.Canny(gray, 100, 200).astype(np.float32) / 255.0
    density = np.sqrt(_cells(edges, CELL_GRID).ravel())
    stats = np.array([magnitude.mean(), magnitude.std(), np.sqrt(edges.mean()), float(g.std())], np.float32)
    return np.concatenate([orientation, density, stats]).astype(np.float32)


def motion_statistics(grays: Sequence[np.ndarray]) -> np.ndarray:
    """Optical-flow statistics over consecutive frames; zeros for a single frame (no motion seen)."""
    if len(grays) < 2:
        return np.zeros(BLOCKS["motion"], np.float32)
    per_pair = []
    # Flow at half resolution (4x cheaper; motion statistics need no fine detail), in FRAME_SIZE pixels.
    grays = [
        cv2.resize(g, (g.shape[1] // FLOW_SCALE, g.shape[0] // FLOW_SCALE), interpolation=cv2.INTER_AREA) for g in grays
    ]
    h, w = grays[0].shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    xs = (xs - w / 2) / (w / 2)
    ys = (ys - h / 2) / (h / 2)
    radius = np.sqrt(xs**2 + ys**2) + 1e-6
    for prev, nxt in itertools.pairwise(grays):
        flow = FLOW_SCALE * cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 2, 9, 3, 5, 1.1, 0)  # type: ignore[call-overload]
        fx, fy = flow[..., 0], flow[..., 1]
        magnitude, angle = cv2.cartToPolar(fx, fy)
        log_mag = np.log1p(magnitude)
        cell_mag = _cells(log_mag, CELL_GRID).ravel()  # 16: where things move
        bins = (angle / (2 * np.pi) * FLOW_DIRECTION_BINS).astype(np.int64) % FLOW_DIRECTION_BINS
        weights = np.bincount(bins.ravel(), weights=magnitude.ravel(), minlength=FLOW_DIRECTION_BINS)
        direction = np.sqrt(weights / max(float(weights.sum()), 1e-9)) * min(1.0, float(magnitude.mean()))
        quadrant = _cells(flow, 2).reshape(-1) / 8.0  # 8: mean (dx, dy) per quadrant, ~pixels/8
        divergence = float(np.mean((fx * xs + fy * ys) / radius))  # > 0 zoom in, < 0 zoom out
        diff = float(np.mean(np.abs(nxt.astype(np.float32) - prev.astype(np.float32)))) / 255.0
        stats = np.array(
            [
                log_mag.mean(),
                log_mag.std(),
                float((magnitude > MOVING_PX).mean()),
                np.log1p(float(np.percentile(magnitude, 95))),
                float(np.median(fx)) / 8.0,  # global pan
                float(np.median(fy)) / 8.0,
                divergence / 4.0,
                diff * 4.0,
            ],
            np.float32,
        )
        per_pair.append(np.concatenate([cell_mag, direction, quadrant, stats]))
    return np.mean(per_pair, axis=0).astype(np.float32)
