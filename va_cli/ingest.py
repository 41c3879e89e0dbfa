"""`va ingest PATH...`: shots, frames and embeddings of videos into LanceDB, on Ray Data."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click

from va_cli.main import settings_from


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--address",
    default=None,
    help="Ray cluster to run on (e.g. ray://head:10001, or 'auto'); default VA_RAY_ADDRESS, else a local Ray.",
)
@click.option(
    "--encoder",
    "encoder_spec",
    default=None,
    help="Encoder spec: clip:<hub id or local folder>, tiny-clip or handcrafted (default VA_ENCODER).",
)
@click.option("--limit", type=click.IntRange(min=0), default=None, help="Ingest at most this many new videos.")
@click.option(
    "--dry-run", is_flag=True, help="List and fingerprint the videos, say what would be ingested, write nothing."
)
@click.option(
    "--strict/--no-strict",
    default=None,
    help="Exit with status 1 when any video of the catalog failed, in this run or an earlier one and not retried, "
    "or a file it names was left out (a name not UTF-8, unreadable, a broken link or one out of the folder) "
    "(default VA_STRICT, off: failures are rows, the run goes on).",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Try again the videos that failed before; by default a failed video is retried only once its file changed.",
)
@click.option(
    "--allow-random-weights-benchmark",
    "allow_random_weights",
    is_flag=True,
    help="Allow a random-clip:<arch> encoder (real-size model, RANDOM weights, meaningless vectors): benchmarks only.",
)
@click.option(
    "--score/--no-score",
    default=None,
    help="Then score the new shots for every published label, in the same Ray job (default VA_INGEST_SCORE, off).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--verbose", is_flag=True, help="Print Ray's own messages here, not to the log file the summary names.")
@click.pass_context
def ingest(
    ctx: click.Context,
    paths: tuple[str, ...],
    address: str | None,
    encoder_spec: str | None,
    limit: int | None,
    dry_run: bool,
    strict: bool | None,
    retry_failed: bool,
    allow_random_weights: bool,
    score: bool | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Ingest videos: detect shots, sample frames, embed them and write them to LanceDB.

    PATH may be a video file, a folder (searched recursively for video files), a quoted
    glob, or an s3:// / gs:// prefix. Each title is decoded once on Ray Data; videos already
    ingested are skipped, so running the same command again resumes an interrupted run.
    A file that is not a readable video becomes a `failed` row with its reason, and is not
    tried again until it changes (or with --retry-failed). Symlinks that lead out of a folder
    being ingested are skipped (VA_FOLLOW_EXTERNAL_LINKS=true follows them).

    \b
    Examples:
      va ingest ~/footage --encoder handcrafted
      va ingest s3://bucket/catalog/ --address ray://head:10001 --limit 100
      va ingest ~/footage --dry-run
      va ingest ~/footage --retry-failed
      va ingest ~/new-titles --score
    """
    from annotator_core.encoders import is_benchmark_only
    from pipelines.ingest import run_ingest
    from pipelines.ray_session import ray_log_path, ray_output_to, ray_session

    settings = settings_from(ctx, strict=strict, ingest_score=score)
    spec = encoder_spec or settings.encoder
    if is_benchmark_only(spec) and not allow_random_weights:
        raise click.UsageError(
            f"encoder {spec!r} has random weights: its vectors mean nothing, so it is for throughput benchmarks "
            "only; pass --allow-random-weights-benchmark to ingest with it anyway (into a store of its own), "
            "or use clip:<hub id or local folder> or handcrafted."
        )
    if not (address or settings.ray_address):  # on a cluster the workers' tools count, not this machine's
        _check_media_tools(dry_run=dry_run)
    models = _published_or_none(settings) if settings.ingest_score and not dry_run else None
    # One Ray session for the ingest and the scoring after it (both use the Ray running in this process).
    # A dry run writes nothing into a data folder that is not there yet: Ray's log goes to the temp folder.
    logs_in = settings.data_dir if not dry_run or settings.data_dir.exists() else Path(tempfile.gettempdir()) / "va"
    quiet = None if verbose else ray_log_path(logs_in)
    with (
        ray_output_to(quiet) as ray_log,
        ray_session(address or settings.ray_address or None),
        _ProgressDisplay(enabled=not as_json) as display,
    ):
        summary = run_ingest(
            list(paths),
            settings=settings,
            encoder_spec=encoder_spec,
            limit=limit,
            dry_run=dry_run,
            address=address,
            progress=display.update,
            retry_failed=retry_failed,
        )
        scoring = _score_new_shots(settings, models) if models else None
    if as_json:
        out = summary.to_dict()
        if settings.ingest_score and not dry_run:
            out["scoring"] = scoring.__dict__ if scoring else None
        out["ray_log"] = str(ray_log) if ray_log else None
        click.echo(json.dumps(out, indent=2, default=str))
        return _exit(ctx, summary, settings)
    _print_summary(summary)
    if settings.ingest_score and not dry_run:
        from va_cli.scoring import describe_scoring

        click.echo(describe_scoring(scoring) if scoring else "no label is published yet: nothing to score.")
    if ray_log:
        click.echo(f"Ray's own messages: {ray_log} (--verbose prints them here)")
    _exit(ctx, summary, settings)


def _exit(ctx: click.Context, summary: Any, settings: Any) -> None:
    # a rerun skips what failed before (unchanged, not retried): the catalog still holds those failures;
    # a file left out is a title the catalog loses just the same
    if (summary.videos_failed or summary.failed_before or summary.files_left_out) and settings.strict:
        ctx.exit(1)


def _check_media_tools(*, dry_run: bool) -> None:
    """Stop before any work where ffprobe is missing (every title needs it); warn where ffmpeg is (only some do)."""
    if shutil.which("ffprobe") is None:
        raise click.ClickException(
            "ffprobe is not installed; ingest reads every file's header with it (apt-get install ffmpeg)."
        )
    if shutil.which("ffmpeg") is None and not dry_run:
        click.secho(
            "warning: ffmpeg is not installed. MPEG-TS, AV1, GIF and QuickTime Animation files, and files with "
            "several video streams, need it and will fail; they are tried again on the next run once it is. HDR "
            "titles are decoded without their tone map, dark (apt-get install ffmpeg).",
            fg="yellow",
            err=True,
        )


def _published_or_none(settings: Any) -> list[Any] | None:
    """The published models to score new shots with, or None when no label is published yet."""
    from annotator_core.errors import NotFoundError
    from va_cli.published import published_models

    try:
        return published_models(settings)
    except NotFoundError:
        return None


def _score_new_shots(settings: Any, models: list[Any]) -> Any:
    """Score what the ingest added (and anything else missing or stale) with every published label."""
    from annotator_core.shot_store import ShotStore
    from pipelines.score_corpus import run_score_corpus

    if not ShotStore.from_settings(settings).has_shots():
        return None
    return run_score_corpus(models, settings=settings)


class _ProgressDisplay:
    """A rich progress bar on a terminal: videos done/failed/remaining, shots and throughput."""

    def __init__(self, *, enabled: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]ingest"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} videos"),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=not self.enabled,
        )
        self.task = self.progress.add_task("ingest", total=None, detail="listing and fingerprinting…")

    def __enter__(self) -> _ProgressDisplay:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def update(self, s: Any) -> None:
        detail = (
            f"done {s.videos_done} · failed {s.videos_failed} · remaining {s.videos_remaining} · "
            f"{s.shots} shots · {s.throughput:.1f} video-s/s"
        )
        self.progress.update(self.task, total=s.videos_total, completed=s.videos_done + s.videos_failed, detail=detail)


def _print_summary(s: Any) -> None:
    for path, why in s.links_skipped:
        click.secho(f"skipped: {path}: {why}", fg="yellow", err=True)
    for uri in s.moved:
        now = "would point" if s.dry_run else "now points"
        click.echo(f"moved: {uri}: already ingested from a path that is gone; its record {now} here.")
    if s.failed_before:
        click.echo(f"{s.failed_before} video(s) failed before and are unchanged: not retried (use --retry-failed).")
    if s.other_suffixes:
        click.echo(_other_suffixes_line(s.other_suffixes))
    left_out = f", {s.files_left_out} file(s) or folder(s) left out (named above)" if s.files_left_out else ""
    if s.dry_run:
        click.echo(
            f"dry run: {s.videos_total} video(s) would be ingested with {s.encoder}, "
            f"{s.videos_skipped} skipped (already done or duplicate content){left_out}."
        )
        for uri in s.planned:
            click.echo(f"  {uri}")
        return
    click.echo(
        f"ingested {s.videos_done} video(s), {s.shots} shots, {s.video_seconds:.1f} s of video "
        f"in {s.seconds:.1f} s ({s.throughput:.2f} video-s/s) with {s.encoder}; "
        f"{s.videos_failed} failed, {s.videos_skipped} skipped (already done or duplicate content){left_out}."
    )
    if s.stage_seconds:
        stages = ", ".join(f"{name} {sec:.1f}s" for name, sec in s.stage_seconds.items())
        click.echo(f"time per stage (summed over workers): {stages}")
    for uri, note in s.damaged:
        click.secho(f"ingested with damage: {uri}: {note}", fg="yellow", err=True)
    for uri, error in s.failures:
        click.secho(f"failed: {uri}: {error}", fg="red", err=True)


def _other_suffixes_line(counts: dict[str, int], shown: int = 5) -> str:
    """One line for the files a folder or glob held that are not videos by their suffix (the commonest named)."""
    names = ", ".join(list(counts)[:shown]) + (", …" if len(counts) > shown else "")
    return (
        f"{sum(counts.values())} file(s) with other suffixes ({names}) were not considered; "
        "name a file to ingest it whatever its suffix."
    )
