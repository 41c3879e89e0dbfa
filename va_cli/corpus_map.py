"""`va map`: bring the corpus map up to date, or recompute it whole (issue 15)."""

from __future__ import annotations

import click

from va_cli.main import settings_from


@click.command("map")
@click.option("--full", is_flag=True, help="Refit the layout on a fresh sample and place every shot again.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fit sample and the layout.")
@click.pass_context
def corpus_map(ctx: click.Context, full: bool, seed: int) -> None:
    """Lay the shot vectors out in 2-D for the Map view: new shots are placed near the fitted ones;
    with --full (or when there is no map yet) the layout is fitted on up to VA_MAP_FIT_SAMPLE shots
    and every other shot placed by it."""
    from annotator_core.shot_store import ShotStore
    from pipelines.corpus_map import map_shots

    settings = settings_from(ctx)
    store = ShotStore.from_settings(settings)
    if not store.has_shots():
        raise click.ClickException("there are no shots to map yet; run `va ingest FOLDER` first.")
    click.echo(f"mapping {store.counts().get('shots', 0)} shots ({'full' if full else 'incremental'}) ...")
    report = map_shots(store, settings=settings, full=full, seed=seed)
    click.echo(
        f"{report.mode}: {report.placed} shots placed, {report.removed} removed, {report.shots} on the map "
        f"(layout {report.layout_version}, fitted on {report.fitted}) in {report.seconds:.1f} s"
    )
