"""Sample efficiency of Video Annotator's loop, replayed with simulated annotators (paper §5.1 and §5.2).

Data: Fashion-MNIST (Debian ``dataset-fashion-mnist``), a random pool of
``--pool`` of its 70,000 images (20,000 by default, to keep the run to minutes
on 2 cores). Features: PCA of the pixels (64 components, fitted on the pool),
L2-normalised like shot embeddings. Each of the 10 classes against the rest is
one label (10% positive); 20% of the pool is held out for testing, the rest is
the corpus annotators label from. A simulated annotator labels with the ground
truth. Classifiers are what a build trains (``annotator_core.classifier.train``
with the default ``classifier_c``); AP is measured on the held-out part.

Methods, each a sequence of labelled corpus items whose first n are used:

- RCC: random items.
- search: nearest neighbours of the mean of 3 positive examples (standing in
  for zero-shot text retrieval, which needs a text tower PCA does not have).
- CC: search and random, alternating (50/50) — the paper's strongest baseline.
- VA: bootstrap like CC (search for positives, some random items as
  negatives) until 10 positives and 10 negatives, the build minimum; then batches of d = 25 from the four feeds of
  the latest build in turn (top positive, borderline, top negative, random),
  rebuilding after every batch — the loop the paper's users followed.
- VA + round robin / ε-greedy (ε = 0.25) / UCB (c = 0.01): as VA, but each batch
  comes from the source (search or a feed) the recommender picks. The reward is
  the change in test AP since the previous build, as in the paper's replay
  (``--reward test-ap``), or the change in CV model quality, the only signal the
  product has (``--reward quality``).

    .venv/bin/python benchmarks/sample_efficiency.py        # ~5-10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import gzip
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.metrics import average_precision_score

from annotator_core.classifier import Classifier, l2_rows, train
from annotator_core.feeds import build_feeds
from annotator_core.metrics import model_quality
from annotator_core.recommend import make_recommender
from annotator_core.settings import Settings

DATA = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SIZES = (25, 50, 100, 200, 500, 1000)
BATCH = 25
MIN_EACH = 10  # the build minimum (settings min_positive / min_negative)
MIN_TRAIN = 5  # the paper's coverage rule: 5 positives and 5 negatives to train and cross-validate
FEED_CYCLE = ("top_positive", "borderline", "top_negative", "random")
RECOMMENDERS = ("round-robin", "epsilon-greedy", "ucb")
C = float(Settings.model_fields["classifier_c"].default)


def load_fashion_mnist() -> tuple[np.ndarray, np.ndarray]:
    def read(name: str, offset: int) -> np.ndarray:
        with gzip.open(DATA / name) as fh:
            return np.frombuffer(fh.read(), dtype=np.uint8, offset=offset)

    if not DATA.exists():
        raise SystemExit(f"{DATA} is missing: apt-get install dataset-fashion-mnist")
    images = np.concatenate([read("train-images-idx3-ubyte.gz", 16), read("t10k-images-idx3-ubyte.gz", 16)])
    labels = np.concatenate([read("train-labels-idx1-ubyte.gz", 8), read("t10k-labels-idx1-ubyte.gz", 8)])
    return images.reshape(-1, 784), labels


def search_ranking(corpus: np.ndarray, truth: np.ndarray, rng: np.random.Generator, examples: int = 3) -> np.ndarray:
    """Corpus rows by cosine similarity to the mean of a few positive examples (the examples come first)."""
    chosen = rng.choice(np.flatnonzero(truth), size=examples, replace=False)
    query = corpus[chosen].mean(axis=0)
    order = np.argsort(-(corpus @ query), kind="stable")
    return np.concatenate([chosen, order[~np.isin(order, chosen)]])


def interleave(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
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
class Test:
    x: np.ndarray
    y: np.ndarray


class Annotator:
    """A simulated annotator working one label through the VA loop; ``order`` is what they labelled."""

    def __init__(self, corpus: np.ndarray, truth: np.ndarray, search: np.ndarray, test: Test, seed: int) -> None:
        self.corpus, self.truth, self.search, self.test, self.seed = corpus, truth, search, test, seed
        self.labelled = np.zeros(len(truth), dtype=bool)
        self.order: list[int] = []
        self.random = np.random.default_rng(seed).permutation(len(truth))

    def take(self, ranked: np.ndarray, k: int) -> None:
        """Label the next ``k`` unlabelled items of a ranking."""
        fresh = ranked[~self.labelled[ranked]][:k].tolist()
        self.labelled[fresh] = True
        self.order.extend(fresh)

    def counts(self) -> tuple[int, int]:
        pos = int(self.truth[self.labelled].sum())
        return pos, int(self.labelled.sum()) - pos

    def bootstrap(self) -> None:
        """Search for positives and pick some negatives (as CC does) until a build is allowed."""
        self.order = interleave(self.search, self.random, BATCH).tolist()
        self.labelled[self.order] = True
        while min(self.counts()) < MIN_EACH:
            self.take(self.search if self.counts()[0] < MIN_EACH else self.random, BATCH)

    def value(self, clf: Classifier, rows: np.ndarray, reward: str) -> float:
        """What the recommender is rewarded on: test AP (the paper's replay) or CV model quality (the product)."""
        if reward == "test-ap":
            return float(average_precision_score(self.test.y, clf.predict_proba(self.test.x, normalised=True)))
        return model_quality(self.corpus[rows], self.truth[rows], folds=5, seed=self.seed, C=C)

    def run(self, n_max: int, recommender: str | None, reward: str) -> np.ndarray:
        self.bootstrap()
        bandit = make_recommender(recommender, seed=self.seed) if recommender else None
        previous: tuple[str, float] | None = None
        step = 0
        while True:
            rows = np.asarray(self.order)
            clf = train(self.corpus[rows], self.truth[rows], C=C)  # the build after each batch
            if bandit is not None:
                value = self.value(clf, rows, reward)
                if previous is not None:
                    bandit.update({previous[0]: value - previous[1]})
            if len(self.order) >= n_max:
                return np.asarray(self.order[:n_max])
            scores = clf.predict_proba(self.corpus, normalised=True)
            feeds = build_feeds(scores, labeled=self.labelled, size=len(rows) + BATCH, seed=self.seed + step)
            sources = {"search": self.search, **feeds.as_dict()}
            source = FEED_CYCLE[step % len(FEED_CYCLE)] if bandit is None else bandit.recommend()
            self.take(sources[source], BATCH)
            if bandit is not None:
                previous = (source, value)
            step += 1


def evaluate(
    order: np.ndarray, corpus: np.ndarray, truth: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> list[float]:
    """AP on the test set at each n (NaN where the first n lack 5 positives or 5 negatives)."""
    out = []
    for n in SIZES:
        rows = order[:n]
        pos = int(truth[rows].sum())
        if pos < MIN_TRAIN or n - pos < MIN_TRAIN:
            out.append(float("nan"))
            continue
        clf = train(corpus[rows], truth[rows], C=C)
        out.append(float(average_precision_score(test_y, clf.predict_proba(test_x, normalised=True))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", type=int, default=20_000, help="images drawn from the 70,000")
    parser.add_argument("--components", type=int, default=64, help="PCA components of the features")
    parser.add_argument("--bootstraps", type=int, default=5)
    parser.add_argument("--labels", type=int, nargs="*", default=list(range(10)), help="class ids to run")
    parser.add_argument(
        "--reward",
        choices=["test-ap", "quality"],
        default="test-ap",
        help="recommender reward: change in test AP (the paper's replay) or in CV model quality (the product's)",
    )
    parser.add_argument("--plot", default=str(Path(__file__).with_name("sample_efficiency.png")))
    args = parser.parse_args()
    started = time.perf_counter()

    images, classes = load_fashion_mnist()
    rng = np.random.default_rng(0)
    pick = rng.choice(len(images), size=args.pool, replace=False)
    pixels = images[pick].astype(np.float32) / 255.0
    features = l2_rows(PCA(args.components, random_state=0).fit_transform(pixels).astype(np.float32))
    n_test = args.pool // 5
    test_x, corpus = features[:n_test], features[n_test:]
    test_classes, corpus_classes = classes[pick][:n_test], classes[pick][n_test:]
    print(
        f"Fashion-MNIST pool {args.pool:,} (corpus {len(corpus):,}, test {n_test:,}), "
        f"PCA-{args.components} features, C={C}, {args.bootstraps} bootstraps, batches of {BATCH}, "
        f"recommender reward {args.reward}"
    )

    methods = ["RCC", "search", "CC", "VA", *(f"VA+{r}" for r in RECOMMENDERS)]
    ap = {m: np.full((len(args.labels), args.bootstraps, len(SIZES)), np.nan) for m in methods}
    for li, label in enumerate(args.labels):
        truth, test_y = corpus_classes == label, test_classes == label
        test = Test(test_x, test_y)
        for b in range(args.bootstraps):
            brng = np.random.default_rng(1000 * label + b)
            random_order = brng.permutation(len(corpus))
            search = search_ranking(corpus, truth, brng)
            orders = {
                "RCC": random_order[: SIZES[-1]],
                "search": search[: SIZES[-1]],
                "CC": interleave(search, random_order, SIZES[-1]),
                "VA": Annotator(corpus, truth, search, test, b).run(SIZES[-1], None, args.reward),
            }
            for r in RECOMMENDERS:
                orders[f"VA+{r}"] = Annotator(corpus, truth, search, test, b).run(SIZES[-1], r, args.reward)
            for m, order in orders.items():
                ap[m][li, b] = evaluate(order, corpus, truth, test_x, test_y)
        print(
            f"  {CLASSES[label]:<12} done at {time.perf_counter() - started:5.0f} s: AP@1000 "
            + "  ".join(f"{m} {np.nanmean(ap[m][li, :, -1]):.3f}" for m in methods)
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells: no run had 5+5 examples
        report(ap, methods, args.labels)
        plot(ap, methods, args.plot)
    print(f"\nplot: {args.plot}; total {time.perf_counter() - started:.0f} s")


def report(ap: dict[str, np.ndarray], methods: list[str], labels: list[int]) -> None:
    header = "".join(f"{'n=' + str(n):>9}" for n in SIZES)
    print("\nMean AP over labels and bootstraps (coverage: % of label×bootstrap runs with 5+5 examples)")
    print(f"  {'method':<18}{header}")
    for m in methods:
        mean = np.nanmean(ap[m], axis=(0, 1))
        cover = 100 * np.mean(~np.isnan(ap[m]), axis=(0, 1))
        print(f"  {m:<18}" + "".join(f"{v:9.3f}" for v in mean) + "   coverage " + " ".join(f"{c:.0f}%" for c in cover))

    print("\nTable 2 analogue: AP gain of VA over CC, (AP_VA − AP_CC) × 100, mean over bootstraps per label")
    print(f"  {'label':<18}{header}")
    gains = 100 * (np.nanmean(ap["VA"], axis=1) - np.nanmean(ap["CC"], axis=1))
    for li, label in enumerate(labels):
        print(f"  {CLASSES[label]:<18}" + "".join(f"{g:9.1f}" for g in gains[li]))
    print(f"  {'median (overall)':<18}" + "".join(f"{g:9.1f}" for g in np.nanmedian(gains, axis=0)))

    print("\nTable 3 analogue: AP gain × 100 of each recommender over VA without one, at n = 1000,")
    print("  distribution over label × bootstrap runs")
    print(f"  {'recommender':<18}{'10%':>8}{'25%':>8}{'median':>8}{'75%':>8}{'90%':>8}   median gain per n")
    for r in RECOMMENDERS:
        diff = 100 * (ap[f"VA+{r}"] - ap["VA"])
        q = np.nanpercentile(diff[:, :, -1], [10, 25, 50, 75, 90])
        per_n = np.nanmedian(diff.reshape(-1, len(SIZES)), axis=0)
        print(f"  {r:<18}" + "".join(f"{v:8.1f}" for v in q) + "   " + " ".join(f"{v:+.1f}" for v in per_n))


def plot(ap: dict[str, np.ndarray], methods: list[str], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for m in methods:
        mean = np.nanmean(ap[m], axis=(0, 1))
        ax.plot(SIZES, mean, marker="o", label=m, linestyle="--" if m.startswith("VA+") else "-")
    ax.set_xscale("log")
    ax.set_xticks(SIZES, [str(n) for n in SIZES])
    ax.set_xlabel("annotations n")
    ax.set_ylabel("test AP (mean over labels × bootstraps)")
    ax.set_title("Fashion-MNIST one-vs-rest, PCA features: sample efficiency")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
