"""The `va` command: thin commands over library functions.

Subcommands live in their own modules and are imported only when run, so
`va status` does not pay for Ray, BentoML or the web framework.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

import click

from annotator_core.errors import VAError

# command name -> "module:function"; each module owns its command and its help.
COMMANDS = {
    "status": "va_cli.status:status",
    "ingest": "va_cli.ingest:ingest",
    "proxies": "va_cli.proxies:proxies",
    "search": "va_cli.search:search",
    "users": "va_cli.users:users",
    "serve": "va_cli.serve:serve",
    "demo": "va_cli.serve:demo",
    "publish": "va_cli.scoring:publish",
    "score-corpus": "va_cli.scoring:score_corpus",
    "serve-scoring": "va_cli.scoring:serve_scoring",
    "map": "va_cli.corpus_map:corpus_map",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._importable(name))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        command: click.Command = getattr(module, attr)
        return command

    @staticmethod
    def _importable(name: str) -> bool:
        module_name = COMMANDS[name].split(":")[0]
        return importlib.util.find_spec(module_name) is not None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VAError as exc:
            # Our own errors already say what is wrong and how to fix it: one line, no traceback.
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(2)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    envvar="VA_CONFIG",
    help="TOML file of settings (keys as in the README's Configuration, lower case).",
)
@click.pass_context
def cli(ctx: click.Context, config: str | None) -> None:
    """Video Annotator: turn a video catalog into video classifiers.

    \b
    Quick start:
      va demo                 ingest sample footage and start the annotation service
      va ingest PATH...       shots, frames and embeddings of videos into LanceDB
      va serve                start the annotation service
      va status               settings in effect and what the stores hold
    """
    ctx.obj = {"config": config}


def settings_from(ctx: click.Context, **overrides: Any) -> Any:
    """Read the settings once for this command (config file, environment, then flags)."""
    from annotator_core.settings import load_settings

    root = ctx.find_root()
    config = (root.obj or {}).get("config")
    return load_settings(config, **{k: v for k, v in overrides.items() if v is not None})


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
