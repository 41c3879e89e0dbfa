"""The README cannot rot: its commands exist, its `va` subcommands and options are real."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import click

from va_cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _code_lines(text: str) -> list[str]:
    blocks = re.findall(r"```(?:bash)?\n(.*?)```", text, flags=re.S)
    lines: list[str] = []
    for block in blocks:
        lines.extend(block.replace("\\\n", " ").splitlines())
    return lines


def test_quick_start_is_exactly_two_commands_that_exist() -> None:
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = [line.split("#")[0].strip() for line in _code_lines(quick) if line.strip()]
    assert commands == ["scripts/va demo", "scripts/test"]
    for command in commands:
        script = ROOT / command.split()[0]
        assert script.is_file() and os.access(script, os.X_OK), script


def test_every_va_command_in_the_readme_parses() -> None:
    ctx = click.Context(cli)
    seen = 0
    for line in _code_lines(README):
        line = line.split(" #")[0].strip()
        if not line.startswith("va "):
            continue
        args = shlex.split(line)[1:]
        command = cli.get_command(ctx, args[0])
        assert command is not None, f"README runs `va {args[0]}`, which does not exist"
        if isinstance(command, click.Group):
            sub = command.get_command(ctx, args[1])
            assert sub is not None, f"README runs `va {args[0]} {args[1]}`, which does not exist"
            command, args = sub, args[1:]
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        for word in args[1:]:
            if word.startswith("--"):
                assert word.split("=")[0] in options, f"`{line}`: {command.name} has no option {word}"
        seen += 1
    assert seen >= 8


def test_every_command_has_help_a_newcomer_can_act_on() -> None:
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None and command.help and len(command.help) > 20, name
