"""Sample efficiency of Video Annotator's loop, replayed with simulated annotators (paper §5.1 and §5.2).

Data: Fashion-MNIST (Debian ``dataset-fashion-mnist``), a random pool of
``--pool`` of its 70,000 images (20,000 by default, to keep the run on 2 cores
in bounds). Features: PCA of the pixels (64 components, fitted on the pool),
L2-normalised like shot embeddings. Each of the 10 classes against the rest is
one label; 20% of the pool is held out for testing, the rest is the corpus
annotators label from. ``--prevalence`` sub-samples each label's positives in
the corpus and the test part (10% is the data's own; 2% and 0.5% are closer to
the paper's video concepts). A simulated annotator labels with the ground
truth. Classifiers are what a build trains (``annotator_core.classifier.train``
with the default ``classifier_c``, centred on the labelled rows' mean); AP is
measured on the held-out part.

Zero-shot proxy (there are no CLIP weights offline and PCA has no text tower):
the "text query" is the normalised mean of ``--zs-examples`` positives drawn
from the 50,000 images outside the pool (never in the corpus or the test part),
plus Gaussian noise of norm ``--zs-noise`` (relative to the unit query), again
normalised. With the defaults (5 examples, noise 1.0) the proxy's AP at n = 25
sits below CC's, as the paper's zero-shot baseline does (Table 1 there).

Other data (``--data``): ``digits`` (scikit-learn's 1,797 8x8 digit images), or
an ``.npz`` of your own with ``x`` (one row per item: pixels, or a catalog's
shot vectors) and ``y`` (integer class ids), optionally ``names``: the same
replay, so a team can see whether the loop pays on its own concepts before
labelling. A tenth of the data stays outside the pool for the zero-shot query.
``--components 0`` keeps the rows as they are (unit-normalised) instead of a
PCA: raw pixels, like CLIP vectors, share a large common direction, which PCA
removes; the tuned choices were made on PCA-64 of Fashion-MNIST, so this is
their check on another geometry (benchmarks/README.md).

Methods, each a sequence of labelled corpus items whose first n are used:

- RCC: random items. ZS: the zero-shot ranking. CC: ZS and random alternating
  (50/50) — the paper's strongest baseline.
- VA: bootstrap like CC (ZS for positives, random for negatives) until 10
  positives and 10 negatives, the build minimum; then batches of d = 25 from
  the feeds of the latest build, rebuilding after every batch. ``--va-flow``
  picks how the bootstrap ends and the feeds' order: ``interleave`` (the
  default, and the product's flow: search and a random sample alternate, a
  batch at a time, until the build minimum — the Feeds tab shows the sample
  before the first build — then the product's labelling cycle,
  ``annotator_core.feeds.LABELLING_CYCLE``: borderline every other batch, the
  other three between (borderline, random, borderline, top positive,
  borderline, top negative), the Feeds tab opening on each build's turn),
  ``interleave-in-turn`` (the product's flow until 2026-12-07: the same
  bootstrap, then the four feeds in turn from borderline: borderline, random,
  top positive, top negative) or ``search-first`` (the product's flow before
  that: after the first 25, search alone until 10 positives, then the four
  feeds in turn from top positive). ``--build-min``
  is the build minimum (settings ``min_positive`` / ``min_negative``, 10 by
  default; 5 is the paper's smallest training set). From ``--like-positives``
  positives on (3), the bootstrap's search half is "more like my positives":
  ``--like-query model`` (the product's: a model fitted to the labels so far)
  or ``rocchio`` (the product's until 2026-12-07).
- VA+UCB[reward]: as VA, but UCB (c = 0.01) picks each batch's source among the
  product's arms (search = the zero-shot ranking, and the four feeds), rewarded
  by one of ``annotator_core.rewards`` (``quality``, ``random-ap``, ``yield``)
  or by the paper's oracle (``test-ap``: change in test AP, not available live).
- VA+UCB-paper[reward]: the paper's Experiment 2 arms instead: the VA process
  (next feed of the cycle), random items, zero-shot items.

Reports per prevalence: mean AP and coverage (runs with ≥ 5 + 5, the paper's
Figure 7), the Table 2 analogue (VA − CC), the Table 3 analogue (each
recommender − VA), and how well the quality score a build shows tracks test AP
(Spearman ρ over every label × run × n × method point).

    .venv/bin/python benchmarks/sample_efficiency.py                   # see benchmarks/README.md for time
    .venv/bin/python benchmarks/sample_efficiency.py --bootstraps 1 --labels 0 6 --prevalence 0.02   # smoke
"""

from __future__ import annotations

import argparse
import gzip
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.decomposition import PCA
from sklearn.metrics import average_precision_score, roc_auc_score

from annotator_core.classifier import Classifier, l2_rows, train, unit_mean
from annotator_core.corpus.scorer import strided_rows
from annotator_core.feeds import BORDERLINE_SOURCE, LABELLING_CYCLE, build_feeds
from annotator_core.metrics import (
    RATE_PRIOR,
    REFERENCE_ROWS,
    Quality,
    balanced_accuracy,
    model_quality_estimate,
)
from annotator_core.recommend import make_recommender
from annotator_core.relevance import like_positives, rocchio_query
from annotator_core.rewards import REWARDS, BuildSignals, batch_counts, random_sample_ap, rewards_for
from annotator_core.settings import Settings

DATA = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SIZES = (25, 50, 100, 200, 500, 1000)
BATCH = 25
MIN_EACH = int(Settings.model_fields["min_positive"].default)  # the default build minimum (settings min_positive)
MIN_TRAIN = 5  # the paper's coverage rule: 5 positives and 5 negatives to train and cross-validate
FEED_CYCLE = ("top_positive", "borderline", "top_negative", "random")
# The four feeds in turn from borderline (chosen on runs 0-5 of 2% and 0.5% among four orders, confirmed on
# runs 6-11), the product's order until the labelling cycle (borderline every other page) replaced it.
IN_TURN_CYCLE = ("borderline", "random", "top_positive", "top_negative")
CYCLES = {"interleave": LABELLING_CYCLE, "interleave-in-turn": IN_TURN_CYCLE, "search-first": FEED_CYCLE}
VA_FLOWS = tuple(CYCLES)
PRODUCT_ARMS = ("search", *FEED_CYCLE)
PAPER_ARMS = ("va", "random", "zero_shot")
C = float(Settings.model_fields["classifier_c"].default)
LIVE_REWARDS = tuple(REWARDS)  # quality, random-ap, yield
ORACLE = "test-ap"
# VA's search half becomes "more like my positives" from this many positives (chosen on runs 0-5 among 1-3, confirmed
# on runs 6-11; README "More like my positives").
LIKE_FROM = 3
USELESS_AP = 0.1  # below this test AP a model finds almost nothing: where a flattering score misleads most
# The query of "more like my positives": the product's (a model of the labels so far) or Rocchio's, its query
# until 2026-12-07 (benchmarks/README "More like my positives").
LIKE_QUERIES = ("model", "rocchio")


def load_fashion_mnist() -> tuple[np.ndarray, np.ndarray]:
    def read(name: str, offset: int) -> np.ndarray:
        with gzip.open(DATA / name) as fh:
            return np.frombuffer(fh.read(), dtype=np.uint8, offset=offset)

    if not DATA.exists():
        raise SystemExit(f"{DATA} is missing: apt-get install dataset-fashion-mnist")
    images = np.concatenate([read("train-images-idx3-ubyte.gz", 16), read("t10k-images-idx3-ubyte.gz", 16)])
    labels = np.concatenate([read("train-labels-idx1-ubyte.gz", 8), read("t10k-labels-idx1-ubyte.gz", 8)])
    return images.reshape(-1, 784), labels


DATASETS = ("fashion-mnist", "digits")


def load_dataset(data: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Rows (one item each, float32), class ids and class names of ``--data``: Debian's Fashion-MNIST (pixels in
    [0, 1]), scikit-learn's digits (1,797 8x8 images, pixels in [0, 1]), or an ``.npz`` of your own with ``x`` (one
    row per item: image pixels or embeddings, e.g. a catalog's shot vectors) and ``y`` (integer class ids), and
    optionally ``names`` (one per class id, in id order)."""
    if data == "fashion-mnist":
        images, classes = load_fashion_mnist()
        return images.astype(np.float32) / 255.0, classes.astype(np.int64), tuple(CLASSES)
    if data == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.data.astype(np.float32) / 16.0, digits.target.astype(np.int64), tuple(map(str, range(10)))
    fix = "pass fashion-mnist, digits, or an .npz file with arrays x (one row per item) and y (integer class ids)"
    path = Path(data)
    if path.suffix != ".npz" or not path.is_file():
        raise SystemExit(f"--data {data}: not a known dataset or an existing .npz file; {fix}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--data {data}: cannot read it as .npz ({exc}); {fix}") from None
    x, y = arrays.get("x"), arrays.get("y")
    if x is None or y is None:
        raise SystemExit(f"--data {data}: it holds {sorted(arrays)} but needs x and y; {fix}")
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
        raise SystemExit(f"--data {data}: x must be a 2-D array of finite numbers, not {x.dtype} {x.shape}; {fix}")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or (y < 0).any():
        raise SystemExit(f"--data {data}: y must hold one class id (an integer ≥ 0) per row of x; {fix}")
    ids = int(y.max()) + 1
    names = arrays.get("names")
    if names is None:
        return x.astype(np.float32), y.astype(np.int64), tuple(map(str, range(ids)))
    if names.shape != (ids,):
        raise SystemExit(f"--data {data}: names must hold one name per class id 0..{ids - 1}, not {names.shape}")
    return x.astype(np.float32), y.astype(np.int64), tuple(map(str, names.tolist()))


def fit(x: np.ndarray, y: np.ndarray) -> Classifier:
    """What a build trains: the default C, centred on the labelled rows' own mean."""
    return train(x, y, C=C, centre=unit_mean(x))


def zero_shot_ranking(
    corpus: np.ndarray, held_out_positives: np.ndarray, rng: np.random.Generator, *, examples: int, noise: float
) -> np.ndarray:
    """Corpus rows by cosine similarity to a noisy mean of held-out positives (the zero-shot proxy)."""
    chosen = held_out_positives[rng.choice(len(held_out_positives), size=examples, replace=False)]
    query = l2_rows(chosen.mean(axis=0, keepdims=True))[0]
    jitter = rng.standard_normal(query.shape[0]).astype(np.float32)
    query = query + noise * jitter / np.linalg.norm(jitter)
    return np.argsort(-(corpus @ query), kind="stable")


def interleave(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """Alternate two rankings (a first), skipping items already taken, until n items."""
    out: list[int] = []
    seen: set[int] = set()
    ia = ib = 0
    while len(out) < n:
        src, i = (a, ia) if len(out) % 2 == 0 else (b, ib)
        while int(src[i]) in seen:
            i += 1
        out.append(int(src[i]))
        seen.add(int(src[i]))
        if len(out) % 2 == 1:
            ia = i + 1
        else:
            ib = i + 1
    return np.asarray(out)


@dataclass(frozen=True)
class Task:
    """One label at one prevalence: its corpus, truth, held-out test part and the two fixed rankings."""

    corpus: np.ndarray
    truth: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    random: np.ndarray
    search: np.ndarray


@dataclass
class Annotator:
    """A simulated annotator working one label through the VA loop; ``order`` is what they labelled."""

    task: Task
    seed: int
    flow: str = "interleave"  # how the bootstrap ends and which feed comes first (see VA_FLOWS)
    build_min: int = MIN_EACH  # positives and negatives before the first build (settings min_positive/negative)
    like_from: int = LIKE_FROM  # positives after which the search half is "more like my positives" (0: never)
    like_query: str = "model"  # which query "more like my positives" is (see LIKE_QUERIES)
    order: list[int] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.labelled = np.zeros(len(self.task.truth), dtype=bool)

    def take(self, ranked: np.ndarray, k: int, source: str) -> None:
        """Label the next ``k`` unlabelled items of a ranking."""
        fresh = ranked[~self.labelled[ranked]][:k].tolist()
        self.labelled[fresh] = True
        self.order.extend(fresh)
        self.sources.extend([source] * len(fresh))

    def counts(self) -> tuple[int, int]:
        pos = int(self.task.truth[self.labelled].sum())
        return pos, int(self.labelled.sum()) - pos

    def bootstrap(self) -> None:
        """Search for positives and take random items (as CC does) until a build is allowed.

        ``interleave``: keep alternating, a batch at a time, until the build minimum (see
        :meth:`_interleave`). ``search-first``: one batch alternating search and random, then search alone for
        positives and random for negatives. Either tops up so if the first 1,000 items run out first.
        """
        t = self.task
        if self.flow.startswith("interleave"):
            self._interleave()
        else:
            for i, row in enumerate(interleave(t.search, t.random, min(BATCH, len(t.truth))).tolist()):
                self.labelled[row] = True
                self.order.append(row)
                self.sources.append("search" if i % 2 == 0 else "random")
        while min(self.counts()) < self.build_min:
            if self.counts()[0] < self.build_min:
                self.take(t.search, BATCH, "search")
            else:
                self.take(t.random, BATCH, "random")

    def _interleave(self) -> None:
        """Search and the random sample alternate, an item each, until a batch ends with the build minimum.

        From ``like_from`` positives on, each batch's search half is "more like my positives" (the product's
        ``like_positives`` query over what is labelled so far, or with ``like_query="rocchio"`` Rocchio's, the
        product's query until 2026-12-07), ranked again at every batch; before that, and
        with ``like_from`` 0, it is the text query's ranking.
        """
        t = self.task
        ranking = t.search
        for i in range(min(SIZES[-1], len(t.truth))):
            if i >= BATCH and i % BATCH == 0 and min(self.counts()) >= self.build_min:
                break
            if i % BATCH == 0 and self.like_from and self.counts()[0] >= self.like_from:
                rows = np.asarray(self.order)
                y = t.truth[rows]
                pos, neg = t.corpus[rows[y]], t.corpus[rows[~y]]
                query = like_positives(pos, neg, C=C) if self.like_query == "model" else rocchio_query(pos, neg)
                ranking = np.argsort(-(t.corpus @ query), kind="stable")
            source = ranking if i % 2 == 0 else t.random
            row = int(source[np.argmax(~self.labelled[source])])
            self.labelled[row] = True
            self.order.append(row)
            self.sources.append("search" if i % 2 == 0 else "random")

    def signals(self, clf: Classifier, batch_start: int, reward: str) -> BuildSignals:
        """What the live product measures at this build (only what ``reward`` needs)."""
        rows = np.asarray(self.order)
        y = self.task.truth[rows]
        quality, random_ap = float("nan"), float("nan")
        if reward in ("quality", "random-ap"):
            x = self.task.corpus[rows]
            estimate = shown_quality(x, y, self.task, self.seed, self.sources)
            quality = estimate.value
            from_random = np.asarray(self.sources) == "random"
            random_ap = random_sample_ap(estimate.out_of_fold, y, from_random)
        if reward == ORACLE:  # the paper's replay: the oracle's "quality" is test AP
            quality = float(average_precision_score(self.task.test_y, clf.predict_proba(self.task.test_x)))
        new = slice(batch_start, None)
        return BuildSignals(quality, random_ap, batch_counts(self.sources[new], y[new].tolist()))

    def run(self, n_max: int, *, reward: str | None = None, arms: str = "product") -> np.ndarray:
        """Label until ``n_max``: plain VA (``reward=None``) or VA with UCB over ``arms``."""
        t = self.task
        self.bootstrap()
        names = PRODUCT_ARMS if arms == "product" else PAPER_ARMS
        bandit = make_recommender("ucb", seed=self.seed, sources=names) if reward else None
        previous: BuildSignals | None = None
        batch_start, step, va_step = 0, 0, 0
        while True:
            rows = np.asarray(self.order)
            clf = fit(t.corpus[rows], t.truth[rows])  # the build after each batch
            if bandit is not None and reward is not None:
                current = self.signals(clf, batch_start, reward)
                # a batch is credited to the arm it was taken for; bootstrap batches to their own sources
                rewarded = rewards_for("quality" if reward == ORACLE else reward, previous, current)
                bandit.update({self._arm(s, arms): r for s, r in rewarded.items()})
                previous = current
            if len(self.order) >= n_max:
                return np.asarray(self.order[:n_max])
            scores = clf.predict_proba(t.corpus, normalised=True)
            # the top feeds include labelled shots (marked in the UI), so ask for enough to fill a batch
            feeds = build_feeds(scores, labelled=self.labelled, size=len(rows) + BATCH, seed=self.seed + step)
            batch_start = len(self.order)
            cycle = CYCLES[self.flow]
            if bandit is None:
                source = cycle[step % len(cycle)]
                self.take(feeds.as_dict()[source], BATCH, source)
            else:
                arm = bandit.recommend()
                if arm == "va":
                    source = cycle[va_step % len(cycle)]
                    va_step += 1
                    self.take(feeds.as_dict()[source], BATCH, source)
                    self.sources[batch_start:] = [f"va:{source}"] * (len(self.order) - batch_start)
                elif arm in ("search", "zero_shot"):
                    self.take(t.search, BATCH, "search" if arm == "search" else "zero_shot")
                elif arm == "random" and arms == "paper":
                    self.take(t.random, BATCH, "random")
                else:
                    self.take(feeds.as_dict()[arm], BATCH, arm)
            if len(self.order) == batch_start:
                raise RuntimeError(f"step {step} labelled nothing new; a source ran dry")
            step += 1

    @staticmethod
    def _arm(source: str, arms: str) -> str:
        """The bandit arm a labelled item's source belongs to."""
        if arms == "product":
            return source
        if source.startswith("va:"):
            return "va"
        return {"search": "zero_shot"}.get(source, source)


@dataclass
class Point:
    """One (label, run, n, method) point: test AP and AUC, the quality score a build would show, and
    what that score estimates: the model's balanced accuracy on the test part at the prior threshold."""

    ap: float
    auc: float
    quality: float
    test_balanced_accuracy: float = float("nan")
    rarer_class: float = float("nan")  # labelled rows of the rarer class (a build needs 10 of each)
    # the score as builds showed it until 2026-12-07 14:00 UTC: each fold's plain balanced accuracy (no rate prior)
    quality_before: float = float("nan")
    # balanced accuracy on an independent draw from the test part with the labelled set's class counts: what a
    # held-out check as large as the labels themselves would read (a reference for the score, which has none)
    same_size_balanced_accuracy: float = float("nan")


# What each (label, run, n, method) point records, in this order: Point's fields.
FIELDS = tuple(f.name for f in fields(Point))


def shown_quality(
    x: np.ndarray, y: np.ndarray, task: Task, seed: int, sources: list[str] | None = None, *, before: bool = False
) -> Quality:
    """The quality a build shows: repeated stratified K-fold, each fold decided at the build's operating point
    on the catalog (it flags the share of a strided catalog sample that the build's model flags at the prior),
    and scored on the labels that did not come from the borderline feed (``sources``, one per row; all train).
    ``before=True``: as builds showed it until 2026-12-07 14:00 UTC, each fold's plain balanced accuracy
    (``rate_prior=0``; now each rate is its Jeffreys estimate, :data:`~annotator_core.metrics.RATE_PRIOR`)."""
    reference = task.corpus[strided_rows(len(task.corpus), REFERENCE_ROWS)]
    evaluated = None
    if sources is not None:
        evaluated = np.asarray([not s.endswith(BORDERLINE_SOURCE) for s in sources], dtype=bool)
    return model_quality_estimate(
        x,
        y,
        C=C,
        centre=unit_mean(x),
        seed=seed,
        threshold="corpus",
        reference=reference,
        evaluate=evaluated,
        rate_prior=0.0 if before else RATE_PRIOR,
    )


def evaluate(order: np.ndarray, task: Task, seed: int, sources: list[str] | None = None) -> list[Point]:
    """Test AP, AUC and model quality at each n (NaN where the first n lack 5 positives or 5 negatives);
    ``sources``: where each labelled item came from (the quality score leaves the borderline feed's out)."""
    out = []
    for n in SIZES:
        rows = order[:n]
        y = task.truth[rows]
        pos = int(y.sum())
        if len(rows) < n or pos < MIN_TRAIN or n - pos < MIN_TRAIN:
            out.append(Point(float("nan"), float("nan"), float("nan")))
            continue
        x = task.corpus[rows]
        logits = fit(x, y).decision_function(task.test_x, normalised=True)
        taken = None if sources is None else sources[:n]
        quality = shown_quality(x, y, task, seed, taken).value
        before = shown_quality(x, y, task, seed, taken, before=True).value
        flagged = logits > np.log(pos / (n - pos))
        test_ba = balanced_accuracy(task.test_y, flagged)
        same_size = same_size_balanced_accuracy(task.test_y, flagged, pos, n - pos, np.random.default_rng([seed, n]))
        ap, auc = average_precision_score(task.test_y, logits), roc_auc_score(task.test_y, logits)
        out.append(Point(float(ap), float(auc), quality, test_ba, float(min(pos, n - pos)), before, same_size))
    return out


def same_size_balanced_accuracy(
    truth: np.ndarray, flagged: np.ndarray, positives: int, negatives: int, rng: np.random.Generator
) -> float:
    """Balanced accuracy of ``flagged`` on a random draw of ``positives`` + ``negatives`` rows (without replacement;
    all of a class when it has fewer): an independent check as large as the labelled set, with its class mix."""
    pos, neg = np.flatnonzero(truth), np.flatnonzero(~truth)
    rows = np.concatenate(
        [
            rng.choice(pos, size=min(positives, len(pos)), replace=False),
            rng.choice(neg, size=min(negatives, len(neg)), replace=False),
        ]
    )
    return balanced_accuracy(truth[rows], flagged[rows])


@dataclass(frozen=True)
class Pool:
    """The benchmark's items as unit feature rows: corpus and test part, and the zero-shot proxy's examples."""

    corpus_x: np.ndarray
    corpus_c: np.ndarray
    test_x: np.ndarray
    test_c: np.ndarray
    outside_x: np.ndarray  # items outside the pool (never in corpus or test): the zero-shot query's examples
    outside_c: np.ndarray
    names: tuple[str, ...] = tuple(CLASSES)  # class names by id


def load_pool(size: int, components: int, data: str = "fashion-mnist") -> Pool:
    """A random pool of ``size`` items of ``data`` (a fifth held out for testing; at most nine tenths of the data,
    so that a tenth stays outside) as unit rows: PCA-``components`` of the rows fitted on the pool, or with
    ``components`` 0 the rows as they are (pixels, or your embeddings); and up to 5,000 items outside the pool
    for the zero-shot proxy (~500 per class for Fashion-MNIST)."""
    images, classes, names = load_dataset(data)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(images))
    size = min(size, len(images) * 9 // 10)
    pick, outside = order[:size], order[size:]
    pca = PCA(min(components, size, images.shape[1]), random_state=0).fit(images[pick]) if components else None

    def features(rows: np.ndarray) -> np.ndarray:
        return l2_rows(images[rows] if pca is None else pca.transform(images[rows]).astype(np.float32))

    pool_x, pool_c = features(pick), classes[pick]
    n_test = size // 5
    outside = outside[:5000]
    return Pool(
        pool_x[n_test:], pool_c[n_test:], pool_x[:n_test], pool_c[:n_test], features(outside), classes[outside], names
    )


def check_labels(pool: Pool, labels: list[int], zs_examples: int) -> None:
    """Refuse labels the replay cannot run: a class id the data lacks, or one with too few items outside the pool
    for the zero-shot query, or too few in the corpus or test part to cross-validate and score."""
    for label in labels:
        if not 0 <= label < len(pool.names):
            raise SystemExit(f"--labels {label}: the data's class ids are 0..{len(pool.names) - 1}")
        outside = int((pool.outside_c == label).sum())
        if outside < zs_examples:
            raise SystemExit(
                f"--labels {label} ({pool.names[label]}): {outside} items of it lie outside the pool, the zero-shot "
                f"query needs {zs_examples}; pass a smaller --pool or --zs-examples"
            )
        for part, c in (("corpus", pool.corpus_c), ("test part", pool.test_c)):
            if (c == label).sum() < MIN_TRAIN or (c != label).sum() < MIN_TRAIN:
                raise SystemExit(
                    f"--labels {label} ({pool.names[label]}): the {part} has fewer than {MIN_TRAIN} items in or out "
                    "of it; pass a larger --pool or leave the label out"
                )


def make_task(pool: Pool, label: int, run: int, prevalence: float, *, zs_examples: int, zs_noise: float) -> Task:
    """One label's run at one prevalence: positives sub-sampled in corpus and test part, the zero-shot ranking
    and the random order, all drawn from the seed (label, run, prevalence)."""
    rng = np.random.default_rng([label, run, int(prevalence * 1e4)])
    keep = subsample(pool.corpus_c, label, prevalence, rng)
    keep_test = subsample(pool.test_c, label, prevalence, rng)
    corpus, truth = pool.corpus_x[keep], pool.corpus_c[keep] == label
    search = zero_shot_ranking(
        corpus, pool.outside_x[pool.outside_c == label], rng, examples=zs_examples, noise=zs_noise
    )
    test_x, test_y = pool.test_x[keep_test], pool.test_c[keep_test] == label
    return Task(corpus, truth, test_x, test_y, rng.permutation(len(corpus)), search)


def subsample(classes: np.ndarray, label: int, prevalence: float, rng: np.random.Generator) -> np.ndarray:
    """Rows keeping every negative and enough positives for ``prevalence`` (all of them at the data's own)."""
    pos, neg = np.flatnonzero(classes == label), np.flatnonzero(classes != label)
    want = round(prevalence * len(neg) / (1.0 - prevalence))
    keep = pos if want >= len(pos) else rng.choice(pos, size=max(want, MIN_TRAIN), replace=False)
    return np.sort(np.concatenate([neg, keep]))


def task_pool(args: argparse.Namespace) -> Pool:
    """The pool that :func:`add_task_arguments`' options pick; ``args.labels`` defaults to every class."""
    pool = load_pool(args.pool, args.components, args.data)
    if args.labels is None:
        args.labels = sorted({int(c) for c in np.unique(pool.corpus_c)} & {int(c) for c in np.unique(pool.test_c)})
    check_labels(pool, args.labels, args.zs_examples)
    return pool


def add_task_arguments(parser: argparse.ArgumentParser, *, bootstraps: int) -> None:
    """The options that pick the replay's tasks (:func:`load_pool`, :func:`make_task`): this script's and
    ``quality_caveat.py``'s, so both replay the same labels, runs and zero-shot proxy."""
    parser.add_argument(
        "--data",
        default=DATASETS[0],
        help="fashion-mnist, digits, or an .npz with x (rows: pixels or embeddings) and y (class ids)",
    )
    parser.add_argument("--pool", type=int, default=20_000, help="items drawn from the data (70,000 for Fashion-MNIST)")
    parser.add_argument(
        "--components", type=int, default=64, help="PCA components of the features (0: the rows as they are)"
    )
    parser.add_argument("--bootstraps", type=int, default=bootstraps, help="runs per label and prevalence")
    parser.add_argument("--labels", type=int, nargs="*", help="class ids to run (default: every class)")
    parser.add_argument("--prevalence", type=float, nargs="+", default=[0.1, 0.02, 0.005], help="positive shares")
    parser.add_argument("--zs-examples", type=int, default=5, help="held-out positives behind the zero-shot query")
    parser.add_argument("--zs-noise", type=float, default=1.0, help="norm of the noise added to the unit query")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_task_arguments(parser, bootstraps=3)
    parser.add_argument(
        "--rewards", nargs="*", default=[*LIVE_REWARDS, ORACLE], choices=[*LIVE_REWARDS, ORACLE], help="UCB rewards"
    )
    parser.add_argument("--arms", nargs="*", default=["product", "paper"], choices=["product", "paper"])
    parser.add_argument(
        "--va-flow", default="interleave", choices=VA_FLOWS, help="how VA's bootstrap ends (see the docstring)"
    )
    parser.add_argument(
        "--build-min", type=int, default=MIN_EACH, help="positives and negatives before VA's first build"
    )
    parser.add_argument(
        "--like-positives",
        type=int,
        default=LIKE_FROM,
        help="positives after which VA's search half is 'more like my positives' (interleave flow; 0: text only)",
    )
    parser.add_argument(
        "--like-query",
        default=LIKE_QUERIES[0],
        choices=LIKE_QUERIES,
        help="'more like my positives': a model of the labels (the product's) or Rocchio's mean (before 2026-12-07)",
    )
    parser.add_argument("--plot", default=str(Path(__file__).with_name("sample_efficiency.png")))
    args = parser.parse_args()
    if args.build_min < 2:
        parser.error(f"--build-min {args.build_min}: a build cross-validates, so pass at least 2 (10 is the default)")
    started = time.perf_counter()

    pool = task_pool(args)

    methods = ["RCC", "ZS", "CC", "VA"]
    variants = [(arms, r) for arms in args.arms for r in args.rewards]
    methods += [f"VA+UCB{'-paper' if arms == 'paper' else ''}[{r}]" for arms, r in variants]
    print(
        f"{args.data} pool {len(pool.corpus_x) + len(pool.test_x):,} (corpus {len(pool.corpus_x):,}, test "
        f"{len(pool.test_x):,} before sub-sampling), "
        f"{features_name(args.components, pool)}, C={C} centred, {args.bootstraps} runs per label, batches of {BATCH}, "
        f"zero-shot proxy: mean of {args.zs_examples} held-out positives + noise {args.zs_noise}, "
        f"VA flow {args.va_flow}, first build at {args.build_min} + {args.build_min}, "
        f"search half like the positives ({args.like_query}) from {args.like_positives or 'never'}"
    )
    results: dict[float, dict[str, np.ndarray]] = {}
    for prevalence in args.prevalence:
        shape = (len(args.labels), args.bootstraps, len(SIZES), len(FIELDS))
        res = {m: np.full(shape, np.nan) for m in methods}
        for li, label in enumerate(args.labels):
            for b in range(args.bootstraps):
                task = make_task(pool, label, b, prevalence, zs_examples=args.zs_examples, zs_noise=args.zs_noise)
                orders = {
                    "RCC": task.random[: SIZES[-1]],
                    "ZS": task.search[: SIZES[-1]],
                    "CC": interleave(task.search, task.random, SIZES[-1]),
                }
                sources: dict[str, list[str]] = {}  # where VA's labels came from (its quality leaves borderline out)
                for (arms, r), m in zip([(None, None), *variants], methods[3:], strict=True):
                    va = Annotator(task, b, args.va_flow, args.build_min, args.like_positives, args.like_query)
                    orders[m] = va.run(SIZES[-1], reward=r, arms=arms or "product")
                    sources[m] = va.sources
                for m, o in orders.items():
                    res[m][li, b] = [[getattr(p, f) for f in FIELDS] for p in evaluate(o, task, b, sources.get(m))]
            print(
                f"  prevalence {prevalence:.1%} {pool.names[label]:<12} done at "
                f"{time.perf_counter() - started:5.0f} s: "
                + "  ".join(f"{m} {np.nanmean(res[m][li, :, -1, 0]):.3f}" for m in methods[:4])
            )
        results[prevalence] = res
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells: no run had 5+5 examples
            report(res, methods, [pool.names[label] for label in args.labels], prevalence)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        report_quality(results)
        plot(results, methods, args.plot, f"{args.data} one-vs-rest, {features_name(args.components, pool)}")
    print(f"\nplot: {args.plot}; total {time.perf_counter() - started:.0f} s")


def paired_means(a: np.ndarray, b: np.ndarray) -> list[tuple[float, float, int]]:
    """Per n: mean of ``a`` and of ``b`` (label × run × n) over the runs both cover, and how many runs that is."""
    both = ~np.isnan(a) & ~np.isnan(b)
    out = []
    for i in range(a.shape[-1]):
        k = int(both[..., i].sum())
        out.append(
            (float(np.mean(a[..., i][both[..., i]])), float(np.mean(b[..., i][both[..., i]])), k)
            if k
            else (float("nan"), float("nan"), 0)
        )
    return out


def report(res: dict[str, np.ndarray], methods: list[str], labels: list[str], prevalence: float) -> None:
    ap = {m: r[..., 0] for m, r in res.items()}
    header = "".join(f"{'n=' + str(n):>8}" for n in SIZES)
    print(f"\n=== prevalence {prevalence:.1%} ===")
    print("Mean test AP over labels × runs (over runs with 5 + 5); coverage = % of runs with 5 + 5 (Figure 7)")
    print(f"  {'method':<26}{header}   coverage per n")
    for m in methods:
        mean = np.nanmean(ap[m], axis=(0, 1))
        cover = 100 * np.mean(~np.isnan(ap[m]), axis=(0, 1))
        print(f"  {m:<26}" + "".join(f"{v:8.3f}" for v in mean) + "   " + " ".join(f"{c:.0f}%" for c in cover))

    shown = np.nanmean(res["VA"][..., FIELDS.index("quality")], axis=(0, 1))
    print(f"  {'VA: quality shown (mean)':<26}" + "".join(f"{v:8.3f}" for v in shown))
    print("Table 2 analogue: (AP_VA − AP_CC) × 100, mean over runs per label")
    print(f"  {'label':<26}{header}")
    gains = 100 * (np.nanmean(ap["VA"], axis=1) - np.nanmean(ap["CC"], axis=1))
    for li, label in enumerate(labels):
        print(f"  {label:<26}" + "".join(f"{g:8.1f}" for g in gains[li]))
    print(f"  {'median (overall)':<26}" + "".join(f"{g:8.1f}" for g in np.nanmedian(gains, axis=0)))
    # VA covers more runs than CC at small n (its search top-up finds 5 positives where CC's half does not),
    # and those extra runs are the hard ones; the paired mean compares the two on the same runs.
    paired = paired_means(ap["VA"], ap["CC"])
    print("  mean AP VA / CC on the runs both cover: " + ", ".join(f"{v:.3f}/{c:.3f}" for v, c, _ in paired))
    va, rcc, cc = (np.nanmean(ap[m], axis=(0, 1)) for m in ("VA", "RCC", "CC"))
    # a method without a single 5 + 5 run at n has no AP there and does not count against VA
    verdicts = zip(SIZES, va, rcc, cc, strict=True)
    wins = [f"n={n}: {'yes' if v >= np.nanmax([r, c, -1.0]) else 'no'}" for n, v, r, c in verdicts if n >= 50]
    print("  VA mean AP ≥ RCC and CC (where covered): " + ", ".join(wins))
    # RCC reaches 5 + 5 in few runs at low prevalence (1 of 120 at 0.5%, n = 200), so its unpaired mean can
    # be one lucky run's; the paired verdict compares VA with each baseline on the runs both cover.
    against = {m: paired_means(ap["VA"], ap[m]) for m in ("RCC", "CC")}
    paired_wins = []
    for i, n in enumerate(SIZES):
        if n < 50:
            continue
        parts = [f"{m} {k} runs" for m, rows in against.items() if (k := rows[i][2]) and rows[i][0] < rows[i][1]]
        covered = [rows[i] for rows in against.values() if rows[i][2]]
        paired_wins.append(f"n={n}: " + ("no (" + ", ".join(parts) + ")" if parts else "yes" if covered else "–"))
    print("  VA mean AP ≥ RCC and CC on the runs each covers with VA (paired): " + ", ".join(paired_wins))

    print("Table 3 analogue: (AP_VA+UCB − AP_VA) × 100 at n = 1000 over label × run; median per n")
    print(f"  {'variant':<26}{'10%':>7}{'25%':>7}{'median':>7}{'75%':>7}{'90%':>7}   median gain per n")
    for m in methods[4:]:
        diff = 100 * (ap[m] - ap["VA"])
        q = np.nanpercentile(diff[:, :, -1], [10, 25, 50, 75, 90])
        per_n = np.nanmedian(diff.reshape(-1, len(SIZES)), axis=0)
        print(f"  {m:<26}" + "".join(f"{v:7.1f}" for v in q) + "   " + " ".join(f"{v:+.1f}" for v in per_n))


def covered(arrays: Iterable[np.ndarray]) -> np.ndarray:
    """The (label, run, n) points of these [labels, runs, n, FIELDS] arrays with 5 + 5, one row of FIELDS each
    (a point without them is all NaN)."""
    points = np.concatenate([a.reshape(-1, len(FIELDS)) for a in arrays])
    return points[~np.isnan(points).any(axis=1)]


def report_quality(results: dict[float, dict[str, np.ndarray]]) -> None:
    """ρ(quality, test AP) and misleading points, with the ceiling: ρ(test balanced accuracy, test AP).

    The score estimates balanced accuracy; even its exact value on the test part (the ceiling column)
    ranks points by AP only so well, so ρ(quality, AP) cannot exceed it by much. "same size": balanced
    accuracy on an independent test draw as large as the labelled set, with its class mix: what a held-out
    check of that size would reach (the score has no such check; it cross-validates the labels). "before" is
    the same points scored as builds did until 2026-12-07 14:00 UTC (plain fold rates), side by side.
    """
    print("\nModel quality shown by a build vs held-out test AP, every (label, run, n, method) point with 5 + 5")
    print("(shown: points with 10 + 10, the default build minimum; ceiling: ρ(test balanced accuracy, AP); same")
    print(" size: ρ of balanced accuracy on an independent test draw with the labels' class counts; before: each")
    print(" fold's plain balanced accuracy, as builds scored until 2026-12-07 14:00 UTC, not its Jeffreys estimate)")
    ap, auc, quality, test_ba, rarer, before, same_size = (
        FIELDS.index(f)
        for f in (
            "ap",
            "auc",
            "quality",
            "test_balanced_accuracy",
            "rarer_class",
            "quality_before",
            "same_size_balanced_accuracy",
        )
    )

    def line(name: str, points: np.ndarray) -> str:
        if len(points) < 3:
            return f"  {name}: {len(points)} points"
        rho = spearmanr(points[:, quality], points[:, ap]).statistic
        rho_before = spearmanr(points[:, before], points[:, ap]).statistic
        ceiling = spearmanr(points[:, test_ba], points[:, ap]).statistic
        same = spearmanr(points[:, same_size], points[:, ap]).statistic
        good = points[:, auc] >= 0.85
        misleading = int((good & (points[:, quality] <= 0.55)).sum())
        misleading_before = int((good & (points[:, before] <= 0.55)).sum())
        return (
            f"  {name}: {len(points):5d} points, Spearman ρ(quality, AP) = {rho:.3f} (before {rho_before:.3f}, "
            f"same size {same:.3f}, ceiling {ceiling:.3f}); quality ≤ 0.55 while test AUC ≥ 0.85: {misleading} points "
            f"(before {misleading_before})"
        )

    pooled = []
    for prevalence, res in results.items():
        points = covered(res.values())
        pooled.append(points)
        print(line(f"prevalence {prevalence:5.1%}", points))
    everything = np.concatenate(pooled)
    print(line("all prevalences  ", everything))
    print(line("shown (≥ 10 + 10)", everything[everything[:, rarer] >= MIN_EACH]))

    # Where the score flatters: ZS labels search results only, every other method labels random shots too. The
    # annotation UI warns when a build has no label from a uniform sample (a version's extra.label_sources).
    print(f"Points a build shows whose model is useless on held-out data (test AP < {USELESS_AP}), by method,")
    print("and the quality the build showed there (ZS: search only; the others label random shots too)")
    for m in next(iter(results.values())):
        points = covered(res[m] for res in results.values())
        points = points[points[:, rarer] >= MIN_EACH]
        if not len(points):
            continue
        low = points[points[:, ap] < USELESS_AP, quality]
        spread = (
            f"; quality shown there median {np.median(low):.2f} (10th–90th {np.percentile(low, 10):.2f}–"
            f"{np.percentile(low, 90):.2f})"
            if len(low)
            else ""
        )
        print(f"  {m:<26}{len(low):5d} of {len(points):5d} ({len(low) / len(points):4.0%}){spread}")


def features_name(components: int, pool: Pool) -> str:
    """How the rows were made, for the header and the plot."""
    dim = pool.corpus_x.shape[1]
    return f"PCA-{dim} of the rows" if components else f"the rows as they are ({dim}-d)"


def plot(results: dict[float, dict[str, np.ndarray]], methods: list[str], path: str, title: str) -> None:
    """Top row: mean test AP per n and method, one panel per prevalence. Bottom row: the quality a build shows
    against test AP at every (label, run, n, method) point with 5 + 5, with Spearman ρ, so the score's
    trustworthiness is seen where it is weak (few labels, rare labels), not only as one number."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(results), figsize=(5.5 * len(results), 9.0), squeeze=False)
    quality = FIELDS.index("quality")
    for col, (prevalence, res) in enumerate(results.items()):
        ax = axes[0][col]
        for m in methods:
            mean = np.nanmean(res[m][..., 0], axis=(0, 1))
            ax.plot(SIZES, mean, marker="o", label=m, linestyle="--" if m.startswith("VA+") else "-")
        ax.set_xscale("log")
        ax.set_xticks(SIZES, [str(n) for n in SIZES])
        ax.set_xlabel("annotations n")
        ax.set_title(f"prevalence {prevalence:.1%}")
        ax.grid(True, alpha=0.3)

        ax = axes[1][col]
        everything = []
        for m in methods:  # every method, as report_quality pools them
            points = covered([res[m]])
            everything.append(points)
            ax.scatter(points[:, quality], points[:, 0], s=4, alpha=0.35, label=m)
        pooled = np.concatenate(everything)
        rho = spearmanr(pooled[:, quality], pooled[:, 0]).statistic if len(pooled) > 2 else float("nan")
        ax.set_xlabel("model quality a build shows")
        ax.set_title(f"quality vs test AP: Spearman ρ {rho:.3f} ({len(pooled):,} points)", fontsize=9)
        ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("test AP (mean over labels × runs)")
    axes[1][0].set_ylabel("test AP of the build's model")
    axes[0][-1].legend(fontsize=7)
    axes[1][-1].legend(fontsize=7, markerscale=3)
    fig.suptitle(f"{title}: sample efficiency, and the quality score against test AP")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
