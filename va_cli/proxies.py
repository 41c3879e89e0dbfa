"""`va proxies`: make browser-playable proxies of the ingested titles a browser cannot play, ahead of time."""

from __future__ import annotations

import click

from va_cli.main import settings_from


@click.command()
@click.option("--limit", type=int, default=None, help="Look at only the first N ingested titles.")
@click.option("--dry-run", is_flag=True, help="Say which titles would get a proxy; make nothing.")
@click.option("--concurrency", type=int, default=0, help="ffmpeg processes at once; 0 means one per CPU.")
@click.pass_context
def proxies(ctx: click.Context, limit: int | None, dry_run: bool, concurrency: int) -> None:
    """Make whole-title proxies (H.264 MP4, VA_PROXY_HEIGHT) of ingested titles a browser cannot play.

    Titles a browser plays (H.264 MP4/MOV, VP8/VP9/AV1 WebM) are served as they are; the rest play from
    their proxy. A rerun reuses the proxies already made (they are keyed by the video's fingerprint).
    Without this command the annotation service makes each shot's proxy when it is first played.
    """
    from annotator_core.media.proxy import ProxyStore, make_title_proxies
    from annotator_core.shot_store import ShotStore

    settings = settings_from(ctx)
    videos = ShotStore.from_settings(settings).videos(status="done")
    if limit is not None:
        videos = videos[: max(0, limit)]
    store = ProxyStore.from_settings(settings)
    click.echo(f"{len(videos)} titles; proxies in {store.options.folder}" + (" (dry run)" if dry_run else ""))
    report = make_title_proxies(videos, store=store, concurrency=concurrency, dry_run=dry_run)
    verb = "would make" if dry_run else "made"
    click.echo(
        f"playable as they are: {report.playable}; {verb}: {report.made}; reused: {report.reused}; "
        f"failed: {report.n_failed} ({report.seconds:.1f} s)"
    )
    for uri, reason in report.failed or []:
        click.echo(f"  cannot make a proxy of {uri}: {reason}", err=True)
    if report.n_failed:
        ctx.exit(1)
