"""``estates db``: schema migrations and upkeep."""

from __future__ import annotations

from typing import Any

import click

from estates.cli import Context, emit, json_option, main, pass_context
from estates.db.engine import head_revision
from estates.estate import Estate
from estates.settings import display_url


@main.group("db")
def db_group() -> None:
    """Create or upgrade the database schema (Alembic)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@json_option
@pass_context
def upgrade(ctx: Context, revision: str, as_json: bool) -> None:
    """Upgrade the schema to REVISION (default: the newest)."""
    estate = Estate(ctx.db, upgrade=False)
    before = estate.revision()
    estate.upgrade(revision)
    after = estate.revision()
    emit(
        {"database": display_url(estate.url), "from": before, "to": after},
        as_json,
        lambda p: [f"{p['database']}: schema {p['from'] or 'empty'} -> {p['to']}"],
    )


@db_group.command("downgrade")
@click.argument("revision")
@pass_context
def downgrade(ctx: Context, revision: str) -> None:
    """Downgrade the schema to REVISION (``base`` removes every table)."""
    estate = Estate(ctx.db, upgrade=False)
    estate.downgrade(revision)
    click.echo(f"{display_url(estate.url)}: schema now {estate.revision() or 'empty'}")


@db_group.command("current")
@json_option
@pass_context
def current(ctx: Context, as_json: bool) -> None:
    """Show the schema revision of the database and the newest one."""
    estate = Estate(ctx.db, upgrade=False)
    rev = estate.revision()
    emit(
        {
            "database": display_url(estate.url),
            "current": rev,
            "head": head_revision(),
            "up_to_date": rev == head_revision(),
        },
        as_json,
        lambda p: [f"{p['database']}: {p['current'] or 'empty'} (head {p['head']})"],
    )


@db_group.command("vacuum")
@json_option
@pass_context
def vacuum(ctx: Context, as_json: bool) -> None:
    """Rewrite the database to hand freed space back to the disk (after an upgrade)."""
    estate = Estate(ctx.db)
    sizes = estate.vacuum()

    def lines(payload: dict[str, Any]) -> list[str]:
        before, after = payload["bytes_before"], payload["bytes_after"]
        if before is None:
            return [f"{payload['database']}: vacuumed"]
        return [f"{payload['database']}: {before / 1e6:,.1f} MB -> {after / 1e6:,.1f} MB"]

    emit({"database": display_url(estate.url), **sizes}, as_json, lines)
