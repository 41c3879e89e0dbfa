"""Recommenders that suggest where to label next (paper §5.2, Experiment 2).

Each annotation source — search or one of the four feeds — is an arm of a
multi-armed bandit. After every build the sources the new labels came from
are rewarded (``annotator_core.rewards`` says with what: the change in model
quality, in AP on the random-feed annotations, or the yield of positives); as
in the paper, an arm's score s_i is its most recent reward (the paper found
running and exponentially-weighted averages worse).

- ``round-robin``: cycles through the sources, ignoring rewards.
- ``epsilon-greedy``: with probability ε a uniformly random source, otherwise
  the source with the highest s_i (ε = 0.25 in the paper).
- ``ucb``: argmax s_i + c·sqrt(ln N / n_i), N the builds so far and n_i the
  builds source i was rewarded in (c = 0.01 in the paper).
- ``none``: never recommends (the annotator chooses alone).

Untried sources are recommended first (the paper scores each source's first
batch before the bandit starts). ``recommend()`` does not change the state, so
asking twice gives the same answer; ``update()`` moves it on. State is a plain
dict (``to_dict``/``from_dict``) so it survives restarts in the annotation store.

``RECOMMENDERS`` is the registry: name -> factory. A new recommender is one
class and one entry there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from annotator_core.errors import ValidationFailed

SOURCES = ("search", "top_positive", "top_negative", "borderline", "random")


class Recommender:
    """Base class: arms, their latest rewards and pull counts, and the number of builds."""

    name: ClassVar[str] = ""

    def __init__(self, *, sources: Sequence[str] = SOURCES, seed: int = 0) -> None:
        if not sources or len(set(sources)) != len(sources):
            raise ValidationFailed(f"sources must be distinct and non-empty, got {list(sources)}.")
        self.sources = tuple(sources)
        self.seed = int(seed)
        self.scores: dict[str, float] = {}
        self.counts: dict[str, int] = dict.fromkeys(self.sources, 0)
        self.steps = 0

    def recommend(self) -> str:
        """The source to label from next ("" when this recommender makes no suggestion)."""
        untried = [s for s in self.sources if self.counts[s] == 0]
        return untried[0] if untried else self._choose()

    def _choose(self) -> str:
        raise NotImplementedError

    def update(self, rewards: Mapping[str, float]) -> None:
        """Record one build's rewards by source; sources that are not arms (import, review) are ignored."""
        known = {s: float(r) for s, r in rewards.items() if s in self.counts}
        for source, reward in known.items():
            if not math.isfinite(reward):
                raise ValidationFailed(f"reward of {source!r} is {reward}; rewards must be finite numbers.")
            self.scores[source] = reward
            self.counts[source] += 1
        self.steps += 1

    def _best(self, values: Mapping[str, float]) -> str:
        """Highest value; ties go to the earlier source so the choice is reproducible."""
        return max(self.sources, key=lambda s: (values[s], -self.sources.index(s)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sources": list(self.sources),
            "seed": self.seed,
            "scores": dict(self.scores),
            "counts": dict(self.counts),
            "steps": self.steps,
            **self._options(),
        }

    def _options(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> Recommender:
        """Rebuild any recommender from :meth:`to_dict` output (the ``name`` picks the class)."""
        name = state.get("name", "")
        options = {k: state[k] for k in ("c", "epsilon") if k in state}
        rec = make_recommender(name, sources=state.get("sources", SOURCES), seed=int(state.get("seed", 0)), **options)
        rec.scores = {s: float(v) for s, v in dict(state.get("scores", {})).items() if s in rec.counts}
        rec.counts.update({s: int(v) for s, v in dict(state.get("counts", {})).items() if s in rec.counts})
        rec.steps = int(state.get("steps", 0))
        return rec


class NoRecommender(Recommender):
    name = "none"

    def recommend(self) -> str:
        return ""


class RoundRobin(Recommender):
    name = "round-robin"

    def recommend(self) -> str:
        return self.sources[self.steps % len(self.sources)]


class EpsilonGreedy(Recommender):
    name = "epsilon-greedy"

    def __init__(self, *, epsilon: float = 0.25, sources: Sequence[str] = SOURCES, seed: int = 0) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValidationFailed(f"epsilon must be in [0, 1], got {epsilon}.")
        super().__init__(sources=sources, seed=seed)
        self.epsilon = float(epsilon)

    def _choose(self) -> str:
        # One generator per step: the same state always gives the same suggestion.
        rng = np.random.default_rng([self.seed, self.steps])
        if rng.random() < self.epsilon:
            return self.sources[int(rng.integers(len(self.sources)))]
        return self._best(self.scores)

    def _options(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon}


class UCB(Recommender):
    name = "ucb"

    def __init__(self, *, c: float = 0.01, sources: Sequence[str] = SOURCES, seed: int = 0) -> None:
        if c < 0:
            raise ValidationFailed(f"UCB exploration constant c must be non-negative, got {c}.")
        super().__init__(sources=sources, seed=seed)
        self.c = float(c)

    def upper_bounds(self) -> dict[str, float]:
        """s_i + c·sqrt(ln N / n_i) for every tried source."""
        total = max(self.steps, 1)
        return {
            s: self.scores.get(s, 0.0) + self.c * math.sqrt(math.log(total) / self.counts[s])
            for s in self.sources
            if self.counts[s] > 0
        }

    def _choose(self) -> str:
        return self._best(self.upper_bounds())

    def _options(self) -> dict[str, Any]:
        return {"c": self.c}


# name -> factory(c, epsilon, sources, seed); the keys are the names settings and stored states use.
RECOMMENDERS: dict[str, Callable[[float, float, Sequence[str], int], Recommender]] = {
    UCB.name: lambda c, _eps, sources, seed: UCB(c=c, sources=sources, seed=seed),
    EpsilonGreedy.name: lambda _c, eps, sources, seed: EpsilonGreedy(epsilon=eps, sources=sources, seed=seed),
    RoundRobin.name: lambda _c, _eps, sources, seed: RoundRobin(sources=sources, seed=seed),
    NoRecommender.name: lambda _c, _eps, sources, seed: NoRecommender(sources=sources, seed=seed),
}


def make_recommender(
    name: str,
    *,
    c: float = 0.01,
    epsilon: float = 0.25,
    seed: int = 0,
    sources: Sequence[str] = SOURCES,
) -> Recommender:
    """A fresh recommender by name: one of :data:`RECOMMENDERS` (``ucb``, ``epsilon-greedy``, ...)."""
    factory = RECOMMENDERS.get(name)
    if factory is None:
        raise ValidationFailed(f"unknown recommender {name!r}; use one of {', '.join(RECOMMENDERS)}.")
    return factory(c, epsilon, sources, seed)
