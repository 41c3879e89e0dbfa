"""The ingest job on Ray Data: catalog -> one decode task per title -> embedding actors -> keyed writes.

- catalog: the driver lists the paths; a Ray Data map fingerprints each file
  (its ``video_id``); videos already ``done`` are skipped, so a re-run resumes.
- decode: ONE task per title (``map_batches`` over one-row blocks) probes it and
  decodes it once, sequentially, yielding each shot's span, its few sample
  frames (already at the encoder's size) and a JPEG thumbnail, then one video
  row. Full-resolution frames never leave the task. A bad file becomes a
  ``failed`` video row; a native crash kills only the worker: the task is retried
  ``decode_retries`` times, then its block is dropped and the video is written as
  failed, while every other title goes on.
  A title longer than ``chunk_seconds`` is split in time: its task decodes the first
  chunk and Ray tasks the others, stitched into the same shots (pipelines/chunked.py).
- embed: a fixed pool of actors (one GPU each when there are GPUs) that load
  the encoder once and embed large batches of shots, so decoding the next titles
  overlaps embedding these.
- write: the driver streams the output and writes ``shots`` in batches of
  ``write_batch_size`` (each write is one LanceDB fragment) with keyed
  ``merge_insert``; a video's ``done`` row is written only after all its shots
  are, so a killed run, resumed, ends with exactly the rows of an uninterrupted one
  (pipelines/ingest_writer.py).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray

from annotator_core.encoders import describe_encoder
from annotator_core.errors import EncoderUnavailable, ValidationFailed
from annotator_core.media.sampling import SampleOptions
from annotator_core.settings import Settings
from annotator_core.shot_store import ShotStore
from pipelines.catalog import Catalog, fingerprint, is_remote, scan_catalog, shown, title_of
from pipelines.ingest_writer import IngestSummary, ProgressFn, ShotWriter
from pipelines.ray_session import data_context, ray_session
from pipelines.stages import CPU_EMBED_SHOTS, DECODED_BLOCK_BYTES, DecodeFn, DecodeJob, EmbedShots, decode_title

# --------------------------------------------------------------------------- the driver


def _fingerprint_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row with its ``video_id``, or with ``unreadable`` (why) and no id: one file that cannot be read must
    not fail the map, which would drop its whole block (other files too) and leave the driver without them."""
    try:
        return {**row, "video_id": fingerprint(row["uri"], row["size"]), "unreadable": None}
    except PermissionError:
        why = "permission denied: cannot read it; check its owner and mode (chmod)"
    except OSError as exc:
        why = f"cannot read it ({exc.strerror or exc}); check that it is still there and readable"
    return {**row, "video_id": None, "unreadable": why}


def catalog_rows(catalog: Catalog, paths: Sequence[str]) -> list[dict[str, Any]]:
    """Fingerprint the catalog's files as a Ray Data map; one row per readable file, in catalog order.

    A file that cannot be read is added to ``catalog.skipped`` with the reason instead.
    """
    entries = catalog.entries
    if not entries:
        left_out = (
            f" ({len(catalog.skipped)} file(s) skipped; {catalog.skipped[0][0]}: {catalog.skipped[0][1]})"
            if catalog.skipped
            else ""
        )
        raise ValidationFailed(
            f"no video files found under {', '.join(shown(p) for p in paths)}{left_out}; give video files, "
            "folders or s3:// / gs:// prefixes."
        )
    items = [{"uri": e.uri, "size": e.size} for e in entries]
    ds = ray.data.from_items(items, override_num_blocks=min(len(items), 64)).map(_fingerprint_row)
    found = {row["uri"]: row for row in ds.take_all()}
    rows = []
    for entry in entries:
        row = found.get(entry.uri)
        if row is None:  # its block was dropped (a worker died), so nothing is known of the file
            catalog.skipped.append((entry.uri, "its fingerprint could not be taken (a Ray worker died); run again"))
        elif row["unreadable"] is not None:
            catalog.skipped.append((entry.uri, row["unreadable"]))
        else:
            rows.append({"uri": row["uri"], "size": row["size"], "video_id": row["video_id"]})
    return rows


def run_ingest(
    paths: Sequence[str],
    *,
    settings: Settings,
    encoder_spec: str | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    address: str | None = None,
    progress: ProgressFn | None = None,
    decode_fn: DecodeFn | None = None,
    retry_failed: bool = False,
) -> IngestSummary:
    """Ingest the videos under ``paths`` into the shot store named by ``settings``; see the module doc.

    Videos done before are skipped; so are videos that failed before, unless their content changed
    (a new fingerprint) or ``retry_failed``. ``decode_fn`` replaces the per-title UDF
    (:func:`decode_title`); tests use it to crash a worker.
    """
    started = time.perf_counter()
    spec = encoder_spec or settings.encoder
    # Check the encoder here once: a bad spec fails before any work, and the decode tasks learn its frame size.
    # Only what the driver needs: the embedding actors load the model itself.
    encoder = describe_encoder(spec)
    summary = IngestSummary(encoder=encoder.name, dry_run=dry_run)
    # Ray starts (forking its processes) before LanceDB's runtime does in this process.
    with ray_session(address or settings.ray_address or None), data_context():
        # A dry run writes nothing, the store's folder included: with none yet, nothing is done before.
        fresh = dry_run and not settings.lancedb_uri and not Path(settings.resolved_lancedb_uri).exists()
        store = ShotStore.from_settings(settings) if not fresh else None
        existing = store.encoder() if store is not None else None
        if store is not None and existing is not None and existing != encoder.name:
            raise ValidationFailed(
                f"the shots table at {store.uri} was embedded with {existing!r}, not {encoder.name!r}; "
                f"ingest with --encoder {existing}, or point VA_LANCEDB_URI at a new folder."
            )
        t0 = time.perf_counter()
        catalog = scan_catalog(paths, follow_external_links=settings.follow_external_links)
        rows = catalog_rows(catalog, paths)
        summary.links_skipped = catalog.skipped
        summary.other_suffixes = dict(catalog.other_suffixes.most_common())
        summary.stage_seconds["catalog"] = time.perf_counter() - t0
        done_uris = {v["video_id"]: v["uri"] for v in store.videos(status="done")} if store is not None else {}
        done = set(done_uris)
        failed = set() if retry_failed or store is None else store.failed_video_ids()
        moved = _moved(rows, done_uris)
        if moved and not dry_run and store is not None:
            store.relocate_videos([(video_id, uri, title_of(uri)) for video_id, uri in moved])
        summary.moved = [uri for _video_id, uri in moved]
        todo: list[dict[str, Any]] = []
        seen: set[str] = set()
        for row in rows:
            if row["video_id"] in done or row["video_id"] in failed or row["video_id"] in seen:
                summary.videos_skipped += 1  # done or failed before, or the same content under another name
                summary.failed_before += row["video_id"] in failed and row["video_id"] not in seen
                seen.add(row["video_id"])
                continue
            seen.add(row["video_id"])
            todo.append(row)
        if limit is not None:
            todo = todo[: max(0, limit)]
        summary.videos_total = len(todo)
        summary.planned = [row["uri"] for row in todo]
        if dry_run or not todo or store is None:
            summary.seconds = time.perf_counter() - started
            return summary
        store.ensure_tables(encoder.dim)
        job = DecodeJob(
            options=SampleOptions.from_settings(settings, frame_size=encoder.frame_size),
            max_duration_s=settings.max_video_duration_s,
            max_pixels=settings.max_video_pixels,
            max_frames=settings.max_video_frames,
            probe_timeout_s=settings.probe_timeout_s,
            encoder=encoder.name,
            chunk_seconds=settings.chunk_seconds,
            decode_retries=settings.decode_retries,
        )
        writer = ShotWriter(store, settings=settings, summary=summary, progress=progress, started=started)
        try:
            for batch in _pipeline(
                todo, job=job, spec=spec, settings=settings, decode_fn=decode_fn or decode_title
            ).iter_batches(batch_size=None, batch_format="pyarrow"):
                writer.add(batch)
        except ray.exceptions.RayActorError as exc:
            raise _actor_failed(exc, spec) from None
        writer.finish(todo)
    summary.seconds = time.perf_counter() - started
    if summary.shots:
        _after_run(store, settings, summary)
    summary.seconds = time.perf_counter() - started
    return summary


def _moved(rows: Sequence[dict[str, Any]], done_uris: dict[str, str]) -> list[tuple[str, str]]:
    """``(video_id, new uri)`` of done videos found under another local path while the stored one is gone: the
    file was moved or renamed, so the stored path would fail proxies and playback. A copy beside the original
    (both paths there) is the same video and keeps its first path."""
    moved: dict[str, str] = {}
    for row in rows:
        stored = done_uris.get(row["video_id"])
        if stored is None or stored == row["uri"] or row["video_id"] in moved:
            continue
        if not is_remote(stored) and not os.path.exists(stored):
            moved[row["video_id"]] = row["uri"]
    return list(moved.items())


def _actor_failed(exc: Exception, spec: str) -> Exception:
    """An embedding actor that died in its constructor (the driver only described the model: the actors load it)
    as one line naming the model and the cause; any other actor death as it is."""
    text = str(exc)
    if "creation task" not in text or "EmbedShots" not in text:
        return exc
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    cause = lines[-1][:300] if lines else type(exc).__name__
    return EncoderUnavailable(
        f"the embedding workers could not load encoder {spec!r} ({cause}); check that the model's files are "
        "complete (save or download it again), or ingest with another --encoder. Videos written so far are kept."
    )


def _pipeline(todo: list[dict[str, Any]], *, job: DecodeJob, spec: str, settings: Settings, decode_fn: DecodeFn) -> Any:
    gpus = int(ray.cluster_resources().get("GPU", 0))
    # One title per block, so a crashed title loses only its own block.
    ds: ray.data.Dataset = ray.data.from_items(todo, override_num_blocks=len(todo))
    ds.context.target_max_block_size = DECODED_BLOCK_BYTES  # this job's context: a copy, not Ray's global one
    with warnings.catch_warnings():
        # Ray 2.60 deprecates remote args passed through, but has no named parameter for max_retries,
        # and its default (-1) would retry a title that crashes its decoder for ever.
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = ds.map_batches(
            decode_fn,
            fn_kwargs={"job": job},
            batch_size=1,
            batch_format="pyarrow",
            num_cpus=1,
            compute=ray.data.TaskPoolStrategy(size=settings.decode_concurrency or None),
            max_retries=settings.decode_retries,  # a worker that died (segfault) is retried this often
            retry_exceptions=False,  # Python errors are already the title's failed row
        )
    return ds.map_batches(
        EmbedShots,
        fn_constructor_kwargs={
            "spec": spec,
            "device": settings.device,
            "frames_per_shot": settings.frames_per_shot,
            "cpu_precision": settings.cpu_precision,
            "cache_dir": str(
                (settings.data_dir / "cache" / "onnx").absolute()
            ),  # VA_CPU_PRECISION=int8's prepared model
        },
        batch_size=settings.embed_batch_size if gpus else min(settings.embed_batch_size, CPU_EMBED_SHOTS),
        batch_format="pyarrow",
        # One GPU per actor: never ask for more actors than the cluster has GPUs, or they would wait for ever.
        compute=ray.data.ActorPoolStrategy(size=min(settings.embed_concurrency, gpus or settings.embed_concurrency)),
        num_gpus=1 if gpus else 0,
        # Without a GPU the actor shares the cores with the decode tasks instead of holding one idle.
        num_cpus=1 if gpus else 0,
    )


def _after_run(store: ShotStore, settings: Settings, summary: IngestSummary) -> None:
    """Group near-duplicates, cluster every shot (k-means, for data diversity), then bring the compressed corpus
    up to date or, below its size, build or refresh the ANN index."""
    from annotator_core.corpus.scorer import prepare_corpus
    from pipelines.cluster import cluster_shots
    from pipelines.index import ensure_index
    from pipelines.near_duplicates import find_duplicates

    t0 = time.perf_counter()
    find_duplicates(store, settings=settings)  # group the new shots with their near-duplicates (issue 16)
    summary.stage_seconds["duplicates"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cluster_shots(store, k=settings.n_clusters)
    summary.stage_seconds["cluster"] = time.perf_counter() - t0
    if settings.map_at_ingest:  # place the new shots on the corpus map, or lay out the first one (issue 15)
        from pipelines.corpus_map import map_shots

        summary.stage_seconds["map"] = map_shots(store, settings=settings).seconds
    t0 = time.perf_counter()
    corpus = prepare_corpus(store, settings)  # the compressed corpus builds use at catalog scale (issue 12)
    summary.stage_seconds["corpus"] = time.perf_counter() - t0
    if corpus is None:  # with a corpus, searches probe its partitions: no ANN index to train (~1 h at 10M)
        t0 = time.perf_counter()
        ensure_index(store, settings=settings)
        summary.stage_seconds["index"] = time.perf_counter() - t0
    if settings.proxy_mode == "ingest":  # whole-title browser proxies of what a browser cannot play (issue 17)
        from annotator_core.media.proxy import ProxyStore, make_title_proxies

        proxy_store, done = ProxyStore.from_settings(settings), store.videos(status="done")
        proxies = make_title_proxies(done, store=proxy_store, concurrency=settings.decode_concurrency)
        summary.stage_seconds["proxies"] = proxies.seconds
