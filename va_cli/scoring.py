"""`va publish`, `va score-corpus`, `va serve-scoring`: the production side of a label."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from va_cli.main import settings_from


@click.command()
@click.argument("label")
@click.option("--version", "version", type=int, default=None, help="Classifier version to publish (default: latest).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.pass_context
def publish(ctx: click.Context, label: str, version: int | None, as_json: bool) -> None:
    """Export LABEL's classifier to ONNX and save it in the BentoML model store.

    \b
    Each publish is a new model version; older ones stay (pin one with VA_SCORING_PINS).
    A running scoring service picks the new model up within VA_SCORING_RELOAD_S seconds.
    Example:  va publish "car chase" --version 3
    """
    from serving.model_store import publish as publish_label

    settings = settings_from(ctx)
    published = publish_label(label, version=version, settings=settings)
    if as_json:
        click.echo(json.dumps(published.__dict__))
        return
    click.echo(
        f"published {published.label!r} version {published.version} as {published.tag} "
        f"({published.encoder}, {published.dim}-d) in {settings.resolved_model_store}"
    )


@click.command("score-corpus")
@click.argument("labels", nargs=-1)
@click.option("--address", default=None, help="Ray cluster address (default: VA_RAY_ADDRESS, else local Ray).")
@click.option("--batch-size", type=int, default=4096, show_default=True, help="Shots per scoring batch.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.pass_context
def score_corpus(
    ctx: click.Context, labels: tuple[str, ...], address: str | None, batch_size: int, as_json: bool
) -> None:
    """Score the shots that miss a score of the published LABELS (all published labels when none are named).

    \b
    A Ray Data job; rows (shot_id, label, version, score, model_tag) go to the
    LanceDB table `scores`, keyed on (shot_id, label). Only what is missing or stale
    is scored: after an ingest a re-run reads just the new shots, and a newly
    published version rescores its label once; the rest is counted as skipped.
    Example:  va score-corpus "car chase" "close-up"
    """
    from rich.progress import Progress

    from pipelines.score_corpus import run_score_corpus
    from va_cli.published import published_models

    settings = settings_from(ctx)
    models = published_models(settings, list(labels) or None)
    with Progress(transient=True, disable=as_json) as bar:
        task = bar.add_task("scoring shots", total=None)
        summary = run_score_corpus(
            models,
            settings=settings,
            address=address,
            batch_size=batch_size,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if as_json:
        click.echo(json.dumps(summary.__dict__))
        return
    click.echo(describe_scoring(summary))


def describe_scoring(summary: Any) -> str:
    """One line on a score-corpus run: what it scored, what was stale, what it skipped."""
    versions = ", ".join(f"{label} v{v}" for label, v in summary.versions.items())
    stale = sum((summary.stale or {}).values())
    return (
        f"scored {summary.scored} of {summary.shots} shots for {len(summary.labels)} label(s) ({versions}): "
        f"{summary.rows} rows merged into `scores` ({stale} stale) in {summary.seconds:.1f} s; "
        f"skipped {summary.skipped} shots already scored with the published versions"
    )


@click.command("serve-scoring")
@click.option("--host", default=None, help="Address to listen on (default: VA_SCORING_HOST).")
@click.option("--port", type=int, default=None, help="Port (default: VA_SCORING_PORT).")
@click.option("--workers", type=int, default=None, help="Worker processes (default: VA_SCORING_WORKERS).")
@click.pass_context
def serve_scoring(ctx: click.Context, host: str | None, port: int | None, workers: int | None) -> None:
    """Start the BentoML scoring service over the published models.

    \b
    Routes: POST /v1/score/embeddings, /v1/score/embeddings/binary, /v1/score/shots,
    /v1/score/clip, /v1/labels; probes /livez and /readyz; Prometheus /metrics.
    Example:  curl -s -XPOST localhost:3000/v1/labels
    """
    settings = settings_from(ctx, scoring_host=host, scoring_port=port, scoring_workers=workers)
    os.execve(sys.executable, serve_command(settings), serve_environment(settings))


def serve_command(settings: object) -> list[str]:
    """The `bentoml serve` command line for the scoring service."""
    return [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "serving.scoring.service:Scoring",
        "--host",
        str(settings.scoring_host),  # type: ignore[attr-defined]
        "--port",
        str(settings.scoring_port),  # type: ignore[attr-defined]
    ]


def serve_environment(settings: object) -> dict[str, str]:
    """This process's environment plus what the service needs to see the same settings and store."""
    env = dict(os.environ)
    env["BENTOML_HOME"] = str(settings.resolved_model_store)  # type: ignore[attr-defined]
    env.setdefault("BENTOML_DO_NOT_TRACK", "True")
    # The service reads its settings itself (in each worker): hand it these, flags included.
    for name, value in settings.model_dump(mode="json").items():  # type: ignore[attr-defined]
        if value is None:
            continue
        env[f"VA_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    env.pop("VA_CONFIG", None)  # every value is in the environment now
    return env
