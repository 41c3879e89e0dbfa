"""`va users`: accounts of the annotation service (admin, annotator, viewer) and their API tokens."""

from __future__ import annotations

import click

from va_cli.main import settings_from

ROLE_CHOICE = click.Choice(["admin", "annotator", "viewer"])


def _store(ctx: click.Context):  # type: ignore[no-untyped-def]
    from annotator_core.store import AnnotationStore

    return AnnotationStore.from_settings(settings_from(ctx))


@click.group()
def users() -> None:
    """Create users, list them, and issue API tokens.

    \b
    Roles: viewer reads; annotator also labels and builds; admin does everything,
    users and publishing included. Scripts send the token as
    'Authorization: Bearer <token>'; people log in to the web page with a password.
    """


@users.command("add")
@click.argument("name")
@click.option("--role", type=ROLE_CHOICE, default="annotator", show_default=True, help="What the user may do.")
@click.option(
    "--password",
    is_flag=False,
    flag_value="",
    default=None,
    help="Password for the web page; give the flag alone to be prompted (hidden input).",
)
@click.pass_context
def add(ctx: click.Context, name: str, role: str, password: str | None) -> None:
    """Create user NAME and print its API token (shown only this once)."""
    if password == "":
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    if password is not None and len(password) < 8:
        raise click.BadParameter("use at least 8 characters", param_hint="--password")
    user, token = _store(ctx).users.create(name, role, password=password)
    click.echo(f"created {user.role} {user.name!r}" + (" with a password" if password else " (API token only)"))
    click.echo(token)


@users.command("list")
@click.pass_context
def list_users(ctx: click.Context) -> None:
    """List users with their roles."""
    rows = _store(ctx).users.all()
    if not rows:
        click.echo("no users yet; create one with `va users add NAME --role admin --password`.")
        return
    for user in rows:
        click.echo(f"{user.name:24} {user.role:10} {user.created_at:%Y-%m-%d %H:%M}")


@users.command("token")
@click.argument("name")
@click.pass_context
def token(ctx: click.Context, name: str) -> None:
    """Issue a new API token for NAME and print it (the previous token stops working)."""
    click.echo(_store(ctx).users.reset_token(name))


@users.command("password")
@click.argument("name")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help="The new password.")
@click.pass_context
def set_password(ctx: click.Context, name: str, password: str) -> None:
    """Set or change NAME's password for the web page."""
    if len(password) < 8:
        raise click.BadParameter("use at least 8 characters", param_hint="--password")
    _store(ctx).users.set_password(name, password)
    click.echo(f"password of {name!r} changed")
