"""``estates demo``: build the demo database from the generated demo data set."""

from __future__ import annotations

import click

from estates.cli import Context, emit, json_option, main, pass_context
from estates.demo import demo_sites
from estates.settings import display_url


@main.command("demo")
@json_option
@pass_context
def demo(ctx: Context, as_json: bool) -> None:
    """Load the seeded demo estate into the database and print a summary."""
    estate = ctx.estate
    result = estate.write_sites(demo_sites())
    sites = estate.sites()
    by_sector = sites.groupby("sector").size().to_dict()
    emit(
        {
            "database": display_url(estate.url),
            "inserted": len(result.inserted),
            "updated": len(result.updated),
            "unchanged": len(result.unchanged),
            "sites": len(sites),
            "by_sector": by_sector,
        },
        as_json,
        lambda p: [
            f"demo estate in {p['database']}: {p['sites']} sites "
            f"({p['inserted']} new, {p['updated']} updated, {p['unchanged']} unchanged)",
            *(f"  {sector}: {n}" for sector, n in sorted(p["by_sector"].items())),
        ],
    )
    click.echo(
        f"open {display_url(estate.url)} in QGIS, or run `estates --help` for more", err=True
    )
