"""Review helpers: where annotators disagree, where the model contradicts them, and agreement scores.

Pure functions over annotation rows (anything with ``shot_id``, ``annotator``,
``value``) and model scores; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import combinations
from typing import Any, Protocol

import numpy as np

CONFIDENT_POSITIVE = 0.8
CONFIDENT_NEGATIVE = 0.2


class Vote(Protocol):
    @property
    def shot_id(self) -> str: ...
    @property
    def annotator(self) -> str: ...
    @property
    def value(self) -> bool | None: ...


def votes_by_shot(rows: Iterable[Vote]) -> dict[str, dict[str, bool]]:
    """shot_id -> {annotator: value}, withdrawn annotations left out."""
    out: dict[str, dict[str, bool]] = {}
    for row in rows:
        if row.value is not None:
            out.setdefault(row.shot_id, {})[row.annotator] = bool(row.value)
    return out


def annotator_disagreements(votes: Mapping[str, Mapping[str, bool]]) -> list[dict[str, Any]]:
    """Shots that some annotators marked positive and others negative."""
    return [
        {"shot_id": shot, "votes": dict(sorted(v.items()))} for shot, v in votes.items() if len(set(v.values())) > 1
    ]


def model_contradictions(
    consensus: Mapping[str, bool],
    scores: Mapping[str, float],
    *,
    high: float = CONFIDENT_POSITIVE,
    low: float = CONFIDENT_NEGATIVE,
) -> list[dict[str, Any]]:
    """Labelled shots whose model score confidently says the opposite (> high for a negative, < low for a positive)."""
    out: list[dict[str, Any]] = []
    for shot, value in consensus.items():
        score = scores.get(shot)
        if score is None:
            continue
        if (value and score < low) or (not value and score > high):
            out.append({"shot_id": shot, "consensus": value, "score": float(score)})
    # Most confident contradictions first.
    out.sort(key=lambda r: -abs(r["score"] - (1.0 if r["consensus"] else 0.0)))
    return out


def cohen_kappa(a: list[bool], b: list[bool]) -> float | None:
    """Cohen's kappa of two raters over the same items; None with no items, 1.0 when both never vary alike."""
    n = len(a)
    if n == 0:
        return None
    x = np.asarray(a, dtype=bool)
    y = np.asarray(b, dtype=bool)
    observed = float(np.mean(x == y))
    px, py = float(x.mean()), float(y.mean())
    expected = px * py + (1 - px) * (1 - py)
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(votes: Mapping[str, Mapping[str, bool]]) -> float | None:
    """Fleiss' kappa over shots with two or more annotators (the variable-rater form)."""
    per_item = []
    for v in votes.values():
        n = len(v)
        if n < 2:
            continue
        pos = sum(1 for x in v.values() if x)
        per_item.append((n, pos, n - pos))
    if not per_item:
        return None
    p_items = [(pos * (pos - 1) + neg * (neg - 1)) / (n * (n - 1)) for n, pos, neg in per_item]
    total = sum(n for n, _, _ in per_item)
    p_pos = sum(pos for _, pos, _ in per_item) / total
    expected = p_pos**2 + (1 - p_pos) ** 2
    observed = float(np.mean(p_items))
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1.0 - expected)


def agreement(votes: Mapping[str, Mapping[str, bool]]) -> dict[str, Any]:
    """Share of multiply-annotated shots where all agree, mean pairwise Cohen's kappa and Fleiss' kappa."""
    multi = {s: v for s, v in votes.items() if len(v) >= 2}
    annotators = sorted({a for v in votes.values() for a in v})
    pairs = []
    for a, b in combinations(annotators, 2):
        common = [s for s, v in multi.items() if a in v and b in v]
        kappa = cohen_kappa([multi[s][a] for s in common], [multi[s][b] for s in common])
        if kappa is not None:
            pairs.append({"annotators": [a, b], "shots": len(common), "cohen_kappa": kappa})
    agreed = sum(1 for v in multi.values() if len(set(v.values())) == 1)
    return {
        "annotators": annotators,
        "shots_annotated": len(votes),
        "shots_with_several_annotators": len(multi),
        "agreement": agreed / len(multi) if multi else None,
        "cohen_kappa": float(np.mean([p["cohen_kappa"] for p in pairs])) if pairs else None,
        "fleiss_kappa": fleiss_kappa(multi),
        "pairs": pairs,
    }
