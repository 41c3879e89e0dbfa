"""One label's active-learning workspace: what happens when an annotator clicks "build".

:meth:`LabelWorkspace.build` reads the consensus annotations, trains the
label's classifier, asks the corpus scorer for the four feeds (one float32
pass over a small corpus; the shared, compressed, pruned corpus of
:mod:`annotator_core.corpus` at catalog scale), computes model quality and data
diversity, rewards the recommender for the change in quality, and saves all of
it as the label's next classifier version.

The k-means clusters behind data diversity belong to ingest (``cluster_id`` on
every shot); a build only counts them, so it stays one pass over the vectors.

Near-duplicate groups (:mod:`annotator_core.duplicates`) make a build honest:
the quality folds keep each group in one fold, data diversity counts a group
once per class, and every feed shows a group once, by its representative (the
other members are left out like labelled shots, and dropped from the two top
feeds, which are asked for more until they are full again).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from annotator_core.classifier import Classifier, train, unit_mean
from annotator_core.corpus.scorer import Scorer, make_scorer
from annotator_core.duplicates import duplicate_groups, one_per_group, shown_once
from annotator_core.errors import NotEnoughAnnotations, NotFoundError, ValidationFailed
from annotator_core.feeds import BORDERLINE_SOURCE, FEEDS, next_feed
from annotator_core.metrics import (
    REFERENCE_ROWS,
    Quality,
    data_diversity,
    model_quality_estimate,
    sample_caveat,
    sample_share,
)
from annotator_core.recommend import Recommender, make_recommender
from annotator_core.relevance import like_positives
from annotator_core.rewards import (
    DEFAULT_REWARD,
    RANDOM_SOURCE,
    BuildSignals,
    batch_counts,
    random_sample_ap,
    rewards_for,
)
from annotator_core.settings import Settings
from annotator_core.shot_store import ShotStore
from annotator_core.store import AnnotationStore, EventRow, VersionInfo

Progress = Callable[[str, float], None]
UNKNOWN_SOURCE = "unknown"  # a label saved without a source (an API client that sent none), in label_sources
IMPORT_SOURCE = "import"  # labels imported from a file that does not say where they were picked
# Labels imported from a file that says where they were picked ("import:search", "import:random", …): an export
# names each shot's picked_from, and an import keeps it behind this prefix, apart from this workspace's own picks.
IMPORT_PREFIX = IMPORT_SOURCE + ":"
# Sources that are, or may be, a uniform sample of the catalog: the quality caveat counts them as one.
SAMPLE_SOURCES = frozenset({RANDOM_SOURCE, UNKNOWN_SOURCE, IMPORT_SOURCE, IMPORT_PREFIX + RANDOM_SOURCE})


@dataclass(frozen=True)
class Readiness:
    n_pos: int
    n_neg: int
    need_pos: int  # more positives needed before a build (0 when enough)
    need_neg: int
    ready: bool


@dataclass(frozen=True)
class FeedItem:
    shot_id: str
    score: float  # P(positive) from the version's classifier
    labeled: bool | None  # API field name (kept stable); consensus value when the shot is labelled, else None


@dataclass
class BuildResult:
    version: int
    model_quality: float
    data_diversity: float
    n_pos: int
    n_neg: int
    recommendation: str  # a SOURCES name, or "" when none
    next_feed: str  # the feed to label a page of now: this version's turn in feeds.LABELLING_CYCLE
    feeds: dict[str, list[FeedItem]]
    timings: dict[str, float]  # seconds per part
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["feeds"] = {name: [asdict(item) for item in items] for name, items in self.feeds.items()}
        return out


class LabelWorkspace:
    def __init__(
        self,
        label: str,
        *,
        shots: ShotStore,
        store: AnnotationStore,
        settings: Settings,
        scorer: Scorer | None = None,
    ) -> None:
        self.label = label
        self.shots = shots
        self.store = store
        self.settings = settings
        # One scorer per shot store (it keeps the mapped corpus open across builds) unless one is given.
        self.scorer: Scorer = scorer or shots.shared("corpus-scorer", lambda: make_scorer(shots, settings))

    # -- before a build ----------------------------------------------------------

    def readiness(self) -> Readiness:
        n_pos, n_neg = self.store.annotations.counts(self.label)
        return _readiness(n_pos, n_neg, self.settings)

    def check_ready(self) -> Readiness:
        """The readiness, or :class:`NotEnoughAnnotations` saying how many more of each a build needs."""
        readiness = self.readiness()
        if not readiness.ready:
            raise _not_enough(self.label, readiness, self.settings)
        return readiness

    def sample(self, *, size: int | None = None) -> list[str]:
        """A uniform random sample of the unlabelled shots, with no model needed (source ``random``).

        Before the first build the loop alternates it with search (issue 13): search finds positives,
        the sample shows the corpus's own negatives (and its rare positives) without the query's bias,
        and its annotations are the unbiased set the ``random-ap`` reward scores. A near-duplicate
        group is drawn once, by its representative, as in the feeds. The draw is seeded by the label's
        last annotation event, so it holds still while nothing is labelled and moves on once something is.
        """
        want = self.settings.feed_size if size is None else size
        if want < 1:
            raise ValidationFailed(f"a sample needs a size of at least 1, got {want}.")
        seed = int(self.store.annotations.last_event_id(self.label))
        labelled = list(self.store.annotations.consensus(self.label))
        groups = duplicate_groups(self.shots, self.settings)
        excluded = list(dict.fromkeys([*labelled, *groups.hidden_ids()])) if len(groups) else labelled
        return self.scorer.view().sample(excluded_ids=excluded, size=want, seed=seed)

    def positives_query(self) -> tuple[np.ndarray, list[str]]:
        """The query of "more like my positives" (:func:`like_positives`: the label's consensus fitted as a build
        fits it, at the build's C), and every shot labelled for the label, which such a search leaves out.

        Raises :class:`ValidationFailed` when no positive is labelled yet (or none is in the corpus).
        """
        consensus = self.store.annotations.consensus(self.label)
        positives = [sid for sid, value in consensus.items() if value]
        if not positives:
            raise ValidationFailed(
                f"label {self.label!r} has no positive annotation yet; label a shot positive (from search or the "
                "sample) first, then search for more like it."
            )
        negatives = [sid for sid, value in consensus.items() if not value]
        found = self.scorer.view().labelled(positives + negatives)
        y = np.fromiter((consensus[sid] for sid in found.ids), dtype=bool, count=len(found.ids))
        if not y.any():
            raise ValidationFailed(
                f"none of label {self.label!r}'s positive shots is in the corpus any more; label a current one first."
            )
        return like_positives(found.vectors[y], found.vectors[~y], C=self.settings.classifier_c), list(consensus)

    # -- the build -----------------------------------------------------------------

    def build(self, *, created_by: str = "", progress: Progress | None = None) -> BuildResult:
        """Train, score the corpus, pick feeds, score quality and diversity, recommend, save a version."""
        report = progress or (lambda _stage, _fraction: None)
        timings: dict[str, float] = {}
        clock = _Clock(timings)
        started = time.perf_counter()

        with clock("annotations"):
            snapshot_event_id = self.store.annotations.last_event_id(self.label)
            consensus = self.store.annotations.consensus(self.label)
        n_pos = sum(1 for v in consensus.values() if v)
        readiness = _readiness(n_pos, len(consensus) - n_pos, self.settings)
        if not readiness.ready:
            raise _not_enough(self.label, readiness, self.settings)
        report("annotations", 0.1)

        with clock("vectors"):
            corpus = self.scorer.view()
            labelled = corpus.labelled(list(consensus))
            reference = corpus.reference(size=REFERENCE_ROWS)
            encoder = self.shots.encoder() or ""
        labelled_ids = labelled.ids
        missing = len(consensus) - len(labelled_ids)
        y = np.fromiter((consensus[sid] for sid in labelled_ids), dtype=bool, count=len(labelled_ids))
        in_store = _readiness(int(y.sum()), int((~y).sum()), self.settings)
        if not in_store.ready:
            raise _not_enough(self.label, in_store, self.settings, missing=missing)
        x = labelled.vectors
        with clock("groups"):
            groups = duplicate_groups(self.shots, self.settings)
            fold_keys = groups.fold_groups(labelled_ids) if len(groups) else None
        report("vectors", 0.2)

        seed = int(snapshot_event_id)
        with clock("train"):
            # Centred on the labelled rows' own mean: same fit as the corpus mean, no corpus pass (issue 13).
            centre = unit_mean(x)
            clf = train(x, y, seed=seed, encoder=encoder, C=self.settings.classifier_c, centre=centre)
        report("train", 0.35)
        # The corpus scan (memory-bound; both scorers' kernels run without the GIL and without BLAS, whose lock
        # would make the quality fits wait for a whole sgemv) overlaps the quality estimate, the diversity and
        # the recommender's reward, which need only the labelled shots: at 10M shots that hides ~40 ms of the
        # ~90 ms outside the scan. "score" is the scan's own wall time, from start to end.
        scan_started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="va-scan") as scan:
            scoring = scan.submit(
                shown_once, corpus, clf, groups, labelled_ids=labelled_ids, size=self.settings.feed_size, seed=seed
            )
            scoring.add_done_callback(lambda _f: timings.__setitem__("score", time.perf_counter() - scan_started))
            with clock("sources"):
                events = self.store.annotations.events(self.label)
                picked_from = pick_sources(events)
                # shots the borderline feed picked train the folds but are not what they are scored on (a relabel in
                # Review does not change that an earlier model chose them for being hard to call)
                evaluated = np.fromiter(
                    (picked_from.get(sid) != BORDERLINE_SOURCE for sid in labelled_ids), dtype=bool, count=len(y)
                )
            with clock("quality"):
                estimate, quality_folds = self._quality(
                    x,
                    y,
                    seed=seed,
                    centre=centre,
                    fold_keys=fold_keys,
                    model=clf,
                    reference=reference,
                    evaluated=evaluated,
                )
                quality = estimate.value
            report("quality", 0.5)
            with clock("diversity"):
                shown = one_per_group(fold_keys, y)
                diversity, diversity_info = self._diversity(
                    corpus.cluster_k(labelled), labelled.cluster_ids[shown], y[shown]
                )
            with clock("recommend"):
                recommender, rewards, previous, signals = self._reward(estimate, labelled_ids, y, events, picked_from)
                recommendation = recommender.recommend()
            with clock("scan_wait"):
                picks = scoring.result()
        report("score", 0.75)
        with clock("feeds"):
            saved_feeds = {n: [[sid, round(score, 6)] for sid, score in items] for n, items in picks.feeds.items()}
        report("feeds", 0.85)

        timings["total_before_save"] = time.perf_counter() - started
        label_sources = dict(Counter(picked_from.get(sid) or UNKNOWN_SOURCE for sid in labelled_ids))
        extra: dict[str, Any] = {
            "feeds": saved_feeds,
            "recommendation": recommendation,
            "recommender": recommender.name,
            "rewards": rewards,
            "reward": DEFAULT_REWARD,
            "signals": signals.as_dict(),
            "quality": estimate.as_dict(),
            "previous_version": previous.version if previous else None,
            "missing_shots": missing,
            "n_shots": corpus.n_shots,
            "scoring": picks.info,
            "classifier": clf.info,
            "quality_folds": quality_folds,
            "quality_left_out": int((~evaluated).sum()),  # labels from the borderline feed: trained on, not scored
            # where the labelled shots were picked from; with under a tenth from a uniform sample (RANDOM_SOURCE: the
            # random feed, the sample beside search before the first build, or imported as picked so) or of unknown
            # origin (imported from a file that does not say, or saved without a source), the score mostly covers
            # shots like those searched for or shown and flatters models that find nothing elsewhere: the caveat
            # says so, and the UI shows it
            "label_sources": label_sources,
            "label_sample": sample_share(label_sources, uniform=SAMPLE_SOURCES),  # shown beside the score
            "quality_caveat": sample_caveat(label_sources, uniform=SAMPLE_SOURCES),
            "duplicates": {
                "groups": groups.n_groups,
                "hidden": groups.n_hidden,
                "labelled_groups": int(np.unique(fold_keys).shape[0]) if fold_keys is not None else len(labelled_ids),
            },
            "timings": dict(timings),
            **diversity_info,
        }
        with clock("save"):
            saved = self.store.versions.save(
                self.label,
                model=clf.to_bytes(),
                encoder=encoder,
                dim=clf.dim,
                n_pos=int(y.sum()),
                n_neg=int((~y).sum()),
                model_quality=quality,
                data_diversity=diversity,
                snapshot=[[sid, consensus[sid]] for sid in sorted(consensus)],
                snapshot_event_id=snapshot_event_id,
                shots_table_version=corpus.version,
                created_by=created_by,
                extra=extra,
            )
            state = recommender.to_dict()
            state["last_version"] = saved.version
            self.store.labels.save_recommender_state(self.label, state)
        timings["total"] = time.perf_counter() - started
        report("saved", 1.0)
        return BuildResult(
            version=saved.version,
            model_quality=quality,
            data_diversity=diversity,
            n_pos=saved.n_pos,
            n_neg=saved.n_neg,
            recommendation=recommendation,
            next_feed=next_feed(saved.version),
            feeds={name: _items(items, consensus) for name, items in saved_feeds.items()},
            timings=timings,
            extra={k: v for k, v in extra.items() if k not in ("feeds", "timings")},
        )

    def _quality(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        seed: int,
        centre: np.ndarray,
        fold_keys: np.ndarray | None,
        model: Classifier,
        reference: np.ndarray,
        evaluated: np.ndarray,
    ) -> tuple[Quality, str]:
        """Group-aware model quality, and which folds it used ("grouped", "plain", or why it fell back).

        A label whose positives (or negatives) all sit in one near-duplicate group cannot be scored
        group-aware; its build still gets the plain score, and the version says so (``quality_folds``).
        ``model`` (the build's, trained on all of x) warm-starts the folds' fits. Each fold is decided at the
        build's operating point on the catalog: it flags the share of ``reference`` (catalog rows) that
        ``model`` flags at the labels' prior (``threshold="corpus"``, issue 13). ``evaluated``: the labelled
        rows the folds are scored on (all train); builds leave out the borderline feed's.
        """

        def estimate(groups: np.ndarray | None) -> Quality:
            s = self.settings
            return model_quality_estimate(
                x,
                y,
                folds=s.cv_folds,
                seed=seed,
                C=s.classifier_c,
                centre=centre,
                threshold="corpus" if reference.shape[0] >= 2 else "prior",
                groups=groups,
                warm_start=model,
                reference=reference if reference.shape[0] >= 2 else None,
                evaluate=evaluated,
            )

        if fold_keys is None:
            return estimate(None), "plain"
        try:
            return estimate(fold_keys), "grouped"
        except ValidationFailed:
            return estimate(None), "plain: fewer than 2 near-duplicate groups of a class, so copies may share folds"

    def _diversity(self, corpus_k: int, labelled_clusters: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, Any]]:
        k = self.settings.n_clusters
        if corpus_k == 0:
            note = "shots are not clustered yet (cluster_id is -1); run the clustering step of `va ingest`"
            return 0.0, {"clustered": False, "diversity_note": note, "n_clusters": k}
        k = max(k, corpus_k)  # clustering may have run with a larger k
        value = data_diversity(labelled_clusters[y], labelled_clusters[~y], k=k, cap=self.settings.diversity_cap)
        return value, {"clustered": True, "n_clusters": k}

    def _reward(
        self,
        estimate: Quality,
        labelled_ids: list[str],
        y: np.ndarray,
        events: list[EventRow],
        picked_from: dict[str, str],
    ) -> tuple[Recommender, dict[str, float], VersionInfo | None, BuildSignals]:
        """Reward the sources of the labels since the previous build (``rewards.DEFAULT_REWARD``).

        The build's signals (quality, AP on the random-feed annotations scored out of fold, positives
        per source since the previous build) are saved with the version for the next build's reward.
        ``events``: the label's annotation events; ``picked_from``: where each labelled shot was picked
        (:func:`pick_sources`), so a random-feed shot relabelled in Review stays in the uniform sample.
        """
        state = self.store.labels.recommender_state(self.label)
        s = self.settings
        if state.get("name") == s.recommender:
            recommender = Recommender.from_dict(state)
        else:
            recommender = make_recommender(s.recommender, c=s.ucb_c, epsilon=s.epsilon)
        try:
            previous: VersionInfo | None = self.store.versions.get(self.label)
        except NotFoundError:
            previous = None
        from_random = np.fromiter((picked_from.get(sid) == RANDOM_SOURCE for sid in labelled_ids), dtype=bool)
        since = previous.snapshot_event_id if previous is not None else 0
        batch = [e for e in events if e.id > since and e.new_value is not None and e.source]
        signals = BuildSignals(
            quality=estimate.value,
            random_ap=random_sample_ap(estimate.out_of_fold, y, from_random),
            batch=batch_counts([e.source for e in batch], [bool(e.new_value) for e in batch]),
            random_labels=int(from_random.sum()),
        )
        before: BuildSignals | None = None
        if previous is not None:
            stored = previous.extra.get("signals")
            before = BuildSignals.from_dict(stored) if stored else BuildSignals(previous.model_quality, float("nan"))
        rewards = rewards_for(DEFAULT_REWARD, before, signals)
        if any(src in recommender.counts for src in rewards):
            recommender.update(rewards)
        return recommender, rewards, previous, signals

    # -- after a build -----------------------------------------------------------------

    def feed(self, name: str, *, version: int | None = None) -> list[FeedItem]:
        """A feed of a saved version, each shot marked with its current consensus label (if any)."""
        if name not in FEEDS:
            raise ValidationFailed(f"unknown feed {name!r}; feeds are {', '.join(FEEDS)}.")
        saved = self.store.versions.get(self.label, version)
        items = saved.extra.get("feeds", {}).get(name, [])
        return _items(items, self.store.annotations.consensus(self.label))

    def classifier(self, version: int | None = None) -> Classifier:
        return Classifier.from_bytes(self.store.versions.get(self.label, version).model)


# --------------------------------------------------------------------------- helpers


class _Clock:
    """``with clock("part"):`` adds the part's wall time in seconds to ``timings``."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings
        self._part = ""
        self._start = 0.0

    def __call__(self, part: str) -> _Clock:
        self._part = part
        return self

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *_exc: object) -> None:
        self.timings[self._part] = time.perf_counter() - self._start


def pick_sources(events: Iterable[EventRow]) -> dict[str, str]:
    """Where each labelled shot was picked from: the source of the earliest label still standing on it.

    A label stands from an annotator's first value until they withdraw it; a relabel (in review, or the same
    shot found again by search) does not change how the shot came to be labelled, but a withdrawn label no
    longer counts, so a shot withdrawn from search and later drawn by the random feed was picked at random.
    Events run oldest first, so the dict keeps each standing label in the order it began.
    """
    standing: dict[tuple[str, str], str] = {}
    for e in events:
        key = (e.shot_id, e.annotator)
        if e.new_value is None:
            standing.pop(key, None)
        else:
            standing.setdefault(key, e.source)
    picked: dict[str, str] = {}
    for (shot_id, _annotator), source in standing.items():
        picked.setdefault(shot_id, source)
    return picked


def _readiness(n_pos: int, n_neg: int, settings: Settings) -> Readiness:
    need_pos = max(0, settings.min_positive - n_pos)
    need_neg = max(0, settings.min_negative - n_neg)
    return Readiness(n_pos, n_neg, need_pos, need_neg, need_pos == 0 and need_neg == 0)


def _not_enough(label: str, r: Readiness, settings: Settings, *, missing: int = 0) -> NotEnoughAnnotations:
    gone = f" ({missing} labelled shots are no longer in the shot store)" if missing else ""
    return NotEnoughAnnotations(
        f"label {label!r} has {r.n_pos} positive and {r.n_neg} negative annotations{gone}; a build needs "
        f"at least {settings.min_positive} positive and {settings.min_negative} negative — label "
        f"{r.need_pos} more positive and {r.need_neg} more negative shots.",
        need_positive=r.need_pos,
        need_negative=r.need_neg,
    )


def _items(saved: list[list[Any]], consensus: dict[str, bool]) -> list[FeedItem]:
    return [FeedItem(str(sid), float(score), consensus.get(str(sid))) for sid, score, *_ in saved]
