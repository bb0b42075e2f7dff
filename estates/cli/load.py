"""``estates load ...``, ``estates sites``, ``estates summary``, ``estates rejected``.

A thin layer over :mod:`estates.ingest`: parse options, call the loader, print the
report (a few lines, or one JSON object with ``--json``). Progress bars go to stderr
only when it is a terminal, and ``--no-progress`` turns them off.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from estates.cli import Context, echo_json, emit, json_option, main, pass_context
from estates.db.models import BOUNDARY_KINDS, SECTORS
from estates.ingest.report import LoadReport

_MAX_ISSUE_LINES = 10


def progress_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--no-progress",
        is_flag=True,
        help="No progress bar (off anyway when stderr is not a terminal).",
    )(function)


def _progress(no_progress: bool) -> bool:
    return not no_progress and sys.stderr.isatty()


def _report_lines(report: LoadReport) -> list[str]:
    out = report.lines()
    issues = report.extra.get("coordinate_issues") or []
    for issue in issues[:_MAX_ISSUE_LINES]:
        out.append(
            f"    row {issue['row_number']} {issue['source_key']}: {issue['problem']}; {issue['action']}"
        )
    if len(issues) > _MAX_ISSUE_LINES:
        out.append(f"    ... {len(issues) - _MAX_ISSUE_LINES} more (--json lists them all)")
    if report.rejected:
        out.append(f"  see the rejected rows: estates rejected --batch {report.batch_id}")
    return out


def _report(report: LoadReport, as_json: bool) -> None:
    emit(report.as_dict(), as_json, lambda payload: _report_lines(report))


def _reports(reports: list[LoadReport], as_json: bool) -> None:
    """One report as :func:`_report` prints it; several: each one's lines, or one JSON list."""
    if len(reports) == 1:
        _report(reports[0], as_json)
    elif as_json:
        echo_json([report.as_dict() for report in reports])
    else:
        for report in reports:
            for line in _report_lines(report):
                click.echo(line)


@main.group("load")
def load_group() -> None:
    """Load real public estate data files as published."""


@load_group.command("eric")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--period",
    metavar="YYYY/YY",
    help="Financial year, e.g. 2019/20 (default: from the file name).",
)
@json_option
@progress_option
@pass_context
def load_eric_command(
    ctx: Context, file: str, period: str | None, as_json: bool, no_progress: bool
) -> None:
    """NHS Digital ERIC site-level CSV (2016/17 on)."""
    from estates.ingest import load_eric

    _report(load_eric(ctx.estate, file, period=period, progress=_progress(no_progress)), as_json)


@load_group.command("council")
@click.argument(
    "files", metavar="FILE...", nargs=-1, required=True, type=click.Path(dir_okay=False)
)
@click.option("--organisation", metavar="NAME", help="The council, when the file does not name it.")
@click.option(
    "--profile",
    type=click.Path(dir_okay=False),
    help="TOML/YAML column mapping for a home-made layout.",
)
@json_option
@progress_option
@pass_context
def load_council_command(
    ctx: Context,
    files: tuple[str, ...],
    organisation: str | None,
    profile: str | None,
    as_json: bool,
    no_progress: bool,
) -> None:
    """Council land and building asset registers (Local Government Transparency Code 2015).

    Several files load in order, each in its own batch, the next one read while one is
    written; the options apply to every file, and --json prints a list. A file that
    cannot be loaded stops there: the files before it stay loaded, later ones are not.
    """
    from estates.ingest import load_councils

    reports = load_councils(
        ctx.estate,
        files,
        organisation=organisation,
        profile=profile,
        progress=_progress(no_progress),
    )
    _reports(reports, as_json)


@load_group.command("points")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--organisation", required=True, metavar="NAME", help="The body that holds these sites."
)
@click.option("--sector", required=True, type=click.Choice(SECTORS), help="Its sector.")
@click.option("--category", metavar="TEXT", help="Stored on every site, e.g. library.")
@click.option("--layer", metavar="NAME", help="Layer of a multi-layer GeoPackage.")
@json_option
@progress_option
@pass_context
def load_points_command(
    ctx: Context,
    file: str,
    organisation: str,
    sector: str,
    category: str | None,
    layer: str | None,
    as_json: bool,
    no_progress: bool,
) -> None:
    """Other public sites as points: CSV (lon/lat, easting/northing or postcode), GeoJSON, GPKG, SHP."""
    from estates.ingest import load_points

    report = load_points(
        ctx.estate,
        file,
        organisation=organisation,
        sector=sector,
        category=category,
        layer=layer,
        progress=_progress(no_progress),
    )
    _report(report, as_json)


@load_group.command("postcodes")
@click.argument("file", type=click.Path(dir_okay=False))
@json_option
@progress_option
@pass_context
def load_postcodes_command(ctx: Context, file: str, as_json: bool, no_progress: bool) -> None:
    """Postcode lookup (ONSPD, Code-Point Open, postcode/latitude/longitude); locates sites."""
    from estates.ingest import load_postcodes

    _report(load_postcodes(ctx.estate, file, progress=_progress(no_progress)), as_json)


@load_group.command("boundaries")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--kind", required=True, type=click.Choice(BOUNDARY_KINDS), help="What the polygons are."
)
@click.option(
    "--code-field", metavar="F", help="Field with the code (default: found, e.g. LAD23CD)."
)
@click.option(
    "--name-field", metavar="F", help="Field with the name (default: found, e.g. LAD23NM)."
)
@click.option("--layer", metavar="NAME", help="Layer of a multi-layer file.")
@click.option(
    "--dissolve-from",
    type=click.Choice(BOUNDARY_KINDS),
    metavar="KIND",
    help="FILE is a lookup CSV: build KIND footprints by dissolving loaded boundaries of this kind "
    "(e.g. --kind icb --dissolve-from lad).",
)
@click.option(
    "--member-field", metavar="F", help="With --dissolve-from: the lookup's member code column."
)
@json_option
@progress_option
@pass_context
def load_boundaries_command(
    ctx: Context,
    file: str,
    kind: str,
    code_field: str | None,
    name_field: str | None,
    layer: str | None,
    dissolve_from: str | None,
    member_field: str | None,
    as_json: bool,
    no_progress: bool,
) -> None:
    """Footprint polygons (GeoJSON, TopoJSON, GeoPackage, shapefile), or ICBs dissolved from districts."""
    from estates.ingest import build_icb_footprints, load_boundaries

    progress = _progress(no_progress)
    if dissolve_from:
        report = build_icb_footprints(
            ctx.estate,
            file,
            kind=kind,
            from_kind=dissolve_from,
            member_field=member_field,
            code_field=code_field,
            name_field=name_field,
            progress=progress,
        )
    else:
        report = load_boundaries(
            ctx.estate,
            file,
            kind=kind,
            code_field=code_field,
            name_field=name_field,
            layer=layer,
            progress=progress,
        )
    _report(report, as_json)


_SITE_COLUMNS = ("source_key", "name", "organisation_code", "sector", "postcode", "located_by")


@main.command("sites")
@click.option("--footprint", metavar="CODE", help="Only sites in this footprint (e.g. E08000009).")
@click.option("--sector", type=click.Choice(SECTORS), help="Only this sector.")
@click.option("--unlocated", is_flag=True, help="Only sites with no location, with the reason.")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE.csv, .geojson or .gpkg."
)
@json_option
@pass_context
def sites_command(
    ctx: Context,
    footprint: str | None,
    sector: str | None,
    unlocated: bool,
    output: str | None,
    as_json: bool,
) -> None:
    """List or export sites."""
    from estates.ingest.queries import find_sites, write_sites_file

    sites = find_sites(ctx.estate, footprint=footprint, sector=sector, unlocated=unlocated)
    if output:
        path = write_sites_file(sites, output)
        emit(
            {"count": len(sites), "file": str(path)},
            as_json,
            lambda p: [f"wrote {p['count']} sites to {p['file']}"],
        )
        return
    columns = [
        *_SITE_COLUMNS,
        *(c for c in sites.columns if c.endswith("_code") and c != "organisation_code"),
    ]
    if unlocated:
        columns.append("unlocated_reason")
    table = sites.loc[:, [c for c in columns if c in sites.columns]]
    if as_json:
        records = json.loads(table.to_json(orient="records", force_ascii=False))
        located = sites.geometry.notna()
        for record, geom, has in zip(records, sites.geometry, located, strict=True):
            record["easting"] = round(geom.x, 3) if has else None
            record["northing"] = round(geom.y, 3) if has else None
        emit({"count": len(sites), "sites": records}, True, lambda p: [])
        return
    click.echo(f"{len(sites)} sites")
    if len(table):
        click.echo(table.fillna("").to_string(index=False))


@main.command("summary")
@click.option("--footprint", metavar="CODE", help="Only sites in this footprint.")
@json_option
@pass_context
def summary_command(ctx: Context, footprint: str | None, as_json: bool) -> None:
    """Sites per sector (located, unlocated, non-geographic, GIA m2, land ha) and load batches."""

    def lines(p: dict[str, Any]) -> list[str]:
        out = [
            f"{'sector':<20} {'sites':>7} {'located':>8} {'unlocated':>9} {'non-geo':>8} {'GIA m2':>14} {'land ha':>10}"
        ]
        for name, s in [*p["sectors"].items(), ("total", p["total"])]:
            out.append(
                f"{name:<20} {s['sites']:>7} {s['located']:>8} {s['unlocated']:>9} "
                f"{s['non_geographic']:>8} {s['gia_m2']:>14,.0f} {s['land_ha']:>10,.2f}"
            )
        out.append(f"{len(p['batches'])} load batches")
        return out

    emit(ctx.estate.summary(footprint), as_json, lines)


@main.command("rejected")
@click.option("--batch", "batch_id", type=int, help="Only this load batch.")
@json_option
@pass_context
def rejected_command(ctx: Context, batch_id: int | None, as_json: bool) -> None:
    """Rows that loaders rejected, with row number and reason."""
    frame = ctx.estate.rejected_rows(batch_id)
    records = (
        [{k: v for k, v in r.items() if k != "raw"} for r in frame.to_dict("records")]
        if not as_json
        else frame.to_dict("records")
    )
    emit(
        {"count": len(frame), "rows": records},
        as_json,
        lambda p: (
            [f"{p['count']} rejected rows"]
            + [f"batch {r['batch_id']} row {r['row_number']}: {r['reason']}" for r in p["rows"]]
        ),
    )
