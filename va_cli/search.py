"""`va search`: the shots nearest to a text or to another shot, for checking an ingest by hand."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from va_cli.main import settings_from

if TYPE_CHECKING:
    from annotator_core.shot_store import ShotStore


@click.command()
@click.argument("text", required=False)
@click.option("--like", "like", metavar="SHOT_ID", help="Search by example: shots that look like this shot.")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=10, show_default=True, help="Shots to print.")
@click.option("--video", "video_id", metavar="VIDEO_ID", help="Only shots of this video.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
@click.pass_context
def search(
    ctx: click.Context, text: str | None, like: str | None, limit: int, video_id: str | None, as_json: bool
) -> None:
    """Print the shots nearest to TEXT (needs an encoder with a text tower) or to --like SHOT_ID.

    \b
    Examples:
      va search "a cyclist on a mountain road"
      va search --like 3f9c2e1a0b7d4c55:120 --limit 5
      va search "a rabbit" --video 3f9c2e1a0b7d4c55
    """
    if (text is None) == (like is None):
        raise click.UsageError('give either TEXT or --like SHOT_ID, e.g. va search "a red car"')
    from annotator_core.corpus.search import ShotSearch
    from annotator_core.errors import NotFoundError
    from annotator_core.shot_store import ShotStore, sql_in

    settings = settings_from(ctx)
    store = ShotStore.from_settings(settings)
    if not store.has_shots():
        raise NotFoundError(f"no shots in {store.uri}; run `va ingest PATH` first.")
    limit = min(limit, settings.search_limit)
    if like is not None:
        vector = store.get_shot(like, columns=["vector"])["vector"]
    else:
        from annotator_core.encoders import load_encoder

        # Text goes through the encoder the shots were embedded with, so both are in one space.
        spec = store.encoder() or settings.encoder
        vector = load_encoder(spec, device=settings.device).embed_texts([text or ""])[0]
    where = sql_in("video_id", [video_id]) if video_id else None
    hits = ShotSearch(store, settings).by_vector(vector, k=limit, where=where)
    titles = _titles(store, {h.video_id for h in hits})
    if as_json:
        for rank, hit in enumerate(hits, start=1):
            row = {"rank": rank, "score": round(hit.score, 4), "shot_id": hit.shot_id, "video_id": hit.video_id}
            row |= {"start_s": hit.start_s, "end_s": hit.end_s, "title": titles.get(hit.video_id, "")}
            click.echo(json.dumps(row))
        return
    if not hits:
        click.echo("no shots found")
        return
    width = max(len(h.shot_id) for h in hits)
    click.echo(f"{'#':>3}  {'score':>6}  {'shot':<{width}}  {'time':>17}  title")
    for rank, hit in enumerate(hits, start=1):
        span = f"{_clock(hit.start_s)}-{_clock(hit.end_s)}"
        click.echo(f"{rank:>3}  {hit.score:>6.3f}  {hit.shot_id:<{width}}  {span:>17}  {titles.get(hit.video_id, '')}")


def _titles(store: ShotStore, video_ids: set[str]) -> dict[str, str]:
    from annotator_core.errors import NotFoundError

    titles = {}
    for video_id in video_ids:
        try:
            titles[video_id] = str(store.get_video(video_id)["title"])
        except NotFoundError:
            titles[video_id] = ""
    return titles


def _clock(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, seconds), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:04.1f}" if hours else f"{minutes:02d}:{secs:04.1f}"
