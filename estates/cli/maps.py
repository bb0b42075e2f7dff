"""``estates map``: draw the site map or a pooling scenario as a Folium HTML file."""

from __future__ import annotations

from pathlib import Path

import click

from estates.cli import Context, emit, json_option, main, pass_context


def _slug(text: str | None) -> str:
    keep = "".join(c if c.isalnum() or c in "-_" else "_" for c in (text or "all"))
    return keep.strip("_") or "all"


@main.command("map")
@click.argument("kind", type=click.Choice(["sites", "pooling"]))
@click.option("--footprint", metavar="CODE", help="District or ICB code (e.g. E08000009).")
@click.option("--run", "run_id", type=int, metavar="ID", help="Draw a stored analysis run.")
@click.option("--period", metavar="YYYY/YY", help="Measures period (default: each site's latest).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="HTML file to write (default: maps/<kind>_<footprint>.html).",
)
@click.option(
    "--fast-threshold",
    type=click.IntRange(min=0),
    default=None,
    help="Most sites drawn as Folium markers before the fast path (default 1000).",
)
@click.option(
    "--tiles",
    default="OpenStreetMap",
    show_default=True,
    help="Background map (a Folium tiles name or URL), or 'none'.",
)
@json_option
@pass_context
def map_command(
    ctx: Context,
    kind: str,
    footprint: str | None,
    run_id: int | None,
    period: str | None,
    output: Path | None,
    fast_threshold: int | None,
    tiles: str,
    as_json: bool,
) -> None:
    """Draw KIND (``sites`` or ``pooling``) as an HTML map that opens in any browser.

    Without --run the analysis runs now (and is stored, so the map can be traced
    back to it); with --run ID the stored run is drawn.
    """
    from estates import publish

    if kind == "pooling" and footprint is None and run_id is None:
        raise click.UsageError(
            "a pooling map needs --footprint CODE (or --run ID of a pooling run)"
        )
    estate = ctx.estate
    write = publish.write_sites_map if kind == "sites" else publish.write_pooling_map
    target = output or Path("maps") / f"{kind}_{_slug(footprint)}.html"
    written = write(
        estate,
        output=target,
        footprint=footprint,
        period=period,
        run_id=run_id,
        fast_threshold=fast_threshold,
        tiles=None if tiles.lower() == "none" else tiles,
    )
    result = {k: v for k, v in written.items() if k not in ("flags", "colocation", "headline")}
    result.update(result.pop("runs", {}))
    emit(
        result,
        as_json,
        lambda p: [
            f"{p['path']}: {p['kind']} map, {p['sites_drawn']:,} sites drawn "
            f"({p['sites_unlocated']:,} not located, {p['sites_non_geographic']:,} non-geographic), "
            f"{p['bytes'] / 1e6:.1f} MB{', fast path' if p['fast_path'] else ''}"
        ],
    )
