"""`va status`: the settings in effect and what the stores hold."""

from __future__ import annotations

import json

import click

from va_cli.main import settings_from


@click.command()
@click.option("--settings", "show_settings", is_flag=True, help="List every setting with its help.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option("--markdown", is_flag=True, help="With --settings: print the README's settings table.")
@click.pass_context
def status(ctx: click.Context, show_settings: bool, as_json: bool, markdown: bool) -> None:
    """Show the settings in effect, table counts, whether the database answers, and the encoder."""
    from annotator_core.status import collect_status

    settings = settings_from(ctx)
    if show_settings:
        from annotator_core.settings import setting_help

        if markdown:
            click.echo("| setting | default | what it does |\n| --- | --- | --- |")
            for env, default, help_text in setting_help():
                shown = default.replace("|", "\\|")
                click.echo(f"| `{env}` | `{shown}` | {help_text} |")
            return
        for env, default, help_text in setting_help():
            click.echo(f"{env:32} {default:36} {help_text}")
        return
    report = collect_status(settings)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    click.echo(f"data folder     {report['data_dir']}")
    click.echo(f"LanceDB         {report['lancedb']['uri']}")
    for table, count in report["lancedb"]["counts"].items():
        click.echo(f"  {table:20}{count}")
    db = report["database"]
    click.echo(f"database        {db['url']}  ({'reachable' if db['ok'] else 'NOT reachable: ' + db['error']})")
    for table, count in db.get("counts", {}).items():
        click.echo(f"  {table:20}{count}")
    enc = report["encoder"]
    click.echo(f"encoder         {enc['configured']}  (shots embedded with: {enc['in_table'] or 'none yet'})")
    dup = report["duplicates"]
    state = f"{dup['duplicate_shots']} shots are near-duplicates of another, in {dup['groups']} groups"
    click.echo(f"duplicates      {state if dup['enabled'] else 'detection off (VA_DUPLICATES=off)'}")
    proxies = report["proxies"]
    unplayable = f"titles that cannot play: {proxies['unplayable']}"
    click.echo(f"proxies         {proxies['dir']}  (mode {proxies['mode']}; {unplayable})")
    if not db["ok"]:
        ctx.exit(1)
