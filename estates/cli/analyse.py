"""``estates analyse | colocate | pool | sensitivity | export``: the analysis commands.

Each command calls one function of :mod:`estates.pipeline`, prints a short human summary
with the elapsed time (or exactly one JSON object with ``--json``) and stores its run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from estates.cli import Context, emit, json_option, main, pass_context

_footprint = click.option(
    "--footprint", metavar="CODE", default=None, help="District, ICB or other boundary code."
)
_period = click.option(
    "--period", metavar="P", default=None, help="Measures period, e.g. 2019/20 (default: latest)."
)
_config = click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Analysis settings TOML (see estates/analysis/defaults.toml).",
)


def _settings(config: Path | None) -> Any:
    from estates.analysis.settings import load_settings

    return load_settings(config)


def _money(value: float) -> str:
    return f"£{value:,.0f}"


@main.command("analyse")
@_footprint
@_period
@_config
@json_option
@pass_context
def analyse(
    ctx: Context, footprint: str | None, period: str | None, config: Path | None, as_json: bool
) -> None:
    """Measure every site and flag under-use, each flag with its reason in numbers."""
    from estates.pipeline import run_flags

    started = time.perf_counter()
    run = run_flags(ctx.estate, footprint=footprint, period=period, settings=_settings(config))
    payload = {**run.summary, "elapsed_s": round(time.perf_counter() - started, 3)}

    def lines(p: dict[str, Any]) -> list[str]:
        out = [
            f"run {p['run_id']}: {p['sites_assessed']} sites assessed"
            f"{' in ' + p['footprint'] if p['footprint'] else ''} "
            f"({p['pooled_rows_not_assessed']} pooled rows not assessed)",
            f"  sites with any flag: {p['sites_with_any_flag']}; "
            f"total spare floor area: {p['total_spare_m2']:,.0f} m2",
        ]
        for name, count in p["flag_counts"].items():
            out.append(f"  {name}: {count} flagged, {p['not_assessable'][name]} not assessable")
        out.append(f"done in {p['elapsed_s']:.2f} s")
        return out

    emit(payload, as_json, lines)


@main.command("colocate")
@_footprint
@click.option(
    "--distance",
    "distance",
    type=click.FloatRange(min=0, min_open=True),
    default=800.0,
    show_default=True,
    metavar="METRES",
    help="Sites this close are linked (800 m: about ten minutes' walk).",
)
@_period
@json_option
@pass_context
def colocate_command(
    ctx: Context, footprint: str | None, distance: float, period: str | None, as_json: bool
) -> None:
    """Find clusters of different organisations' sites within walking distance."""
    from estates.pipeline import run_colocation

    started = time.perf_counter()
    run = run_colocation(ctx.estate, footprint=footprint, distance_m=distance, period=period)
    payload = {**run.summary, "elapsed_s": round(time.perf_counter() - started, 3)}

    def lines(p: dict[str, Any]) -> list[str]:
        out = [
            f"run {p['run_id']}: {p['cluster_count']} co-location clusters at {p['distance_m']:g} m "
            f"holding {p['sites_in_clusters']} of {p['sites']} sites",
        ]
        for c in p["top_clusters"][:5]:
            out.append(
                f"  cluster {c['cluster_id']}: {c['n_sites']} sites of {c['n_organisations']} "
                f"organisations, {c['combined_spare_m2'] or 0:,.0f} m2 spare, "
                f"{c['vacant_council_assets']} vacant council assets"
            )
        out.append(f"done in {p['elapsed_s']:.2f} s")
        return out

    emit(payload, as_json, lines)


@main.command("pool")
@click.option("--footprint", metavar="CODE", required=True, help="District or ICB code.")
@click.option(
    "--max-distance",
    "max_distance",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="METRES",
    help="Farthest a site's floor area may move (default from the settings).",
)
@_config
@_period
@json_option
@pass_context
def pool(
    ctx: Context,
    footprint: str,
    max_distance: float | None,
    config: Path | None,
    period: str | None,
    as_json: bool,
) -> None:
    """One-body pooling scenario: which flagged sites could close, and what it yields."""
    from estates.pipeline import run_pooling

    started = time.perf_counter()
    run = run_pooling(
        ctx.estate,
        footprint=footprint,
        max_distance_m=max_distance,
        settings=_settings(config),
        period=period,
    )
    payload = {**run.summary, "elapsed_s": round(time.perf_counter() - started, 3)}

    def lines(p: dict[str, Any]) -> list[str]:
        a = p["access"]
        return [
            f"run {p['run_id']}: {p['footprint']}: {p['sites_released']} of "
            f"{p['sites_considered']} flagged candidate sites released "
            f"(solver: {p['status']}, gap {p['mip_gap']:.4%})",
            f"  floor area re-provided: {p['floor_area_moved_m2']:,.0f} m2 "
            f"(buildings released: {p['floor_area_released_m2']:,.0f} m2 GIA)",
            f"  running cost saved: {_money(p['running_cost_saved_gbp'])} a year; backlog avoided: "
            f"{_money(p['backlog_avoided_total_gbp'])}",
            f"  land released: {p['land_released_ha']:,.2f} ha; indicative receipts: "
            f"{_money(p['indicative_receipts_gbp'])} ({p['receipt_assumptions']})",
            f"  access ({p['access_areas']}): mean increase {a['mean_increase_m']:,.0f} m, "
            f"worst {a['worst_increase_m']:,.0f} m, {a['areas_beyond_threshold']} areas pushed "
            f"beyond {a['threshold_m']:,.0f} m",
            f"  flagged but not released: {p['flagged_not_released']}; flagged but protected: "
            f"{p['flagged_protected']}",
            f"done in {p['elapsed_s']:.2f} s",
        ]

    emit(payload, as_json, lines)


@main.command("sensitivity")
@_footprint
@_period
@_config
@json_option
@pass_context
def sensitivity(
    ctx: Context, footprint: str | None, period: str | None, config: Path | None, as_json: bool
) -> None:
    """Sweep the thresholds: how robust is each site's flag?"""
    from estates.pipeline import run_sensitivity

    started = time.perf_counter()
    run = run_sensitivity(
        ctx.estate, footprint=footprint, period=period, settings=_settings(config)
    )
    payload = {**run.summary, "elapsed_s": round(time.perf_counter() - started, 3)}

    def lines(p: dict[str, Any]) -> list[str]:
        out = [
            f"run {p['run_id']}: {p['sites']} sites under {p['settings_swept']} threshold settings"
        ]
        out += [f"  {k}: {v}" for k, v in sorted(p["robustness"].items())]
        out.append(f"done in {p['elapsed_s']:.2f} s")
        return out

    emit(payload, as_json, lines)


@main.command("export")
@click.option("--run", "run_id", type=int, default=None, help="Run id (default: the newest run).")
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="FILE.gpkg (every layer), FILE.csv or FILE.geojson (one layer).",
)
@click.option(
    "--layer",
    default="sites",
    show_default=True,
    help="Layer for .csv/.geojson: sites, clusters, flows or access.",
)
@click.option("--overwrite", is_flag=True, help="Replace FILE if it exists.")
@json_option
@pass_context
def export(
    ctx: Context,
    run_id: int | None,
    output: Path,
    layer: str,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Write a stored run's sites, clusters, flows and access to a file."""
    from estates.export import export_run
    from estates.pipeline import latest_run

    started = time.perf_counter()
    chosen = run_id if run_id is not None else latest_run(ctx.estate)
    result = export_run(ctx.estate, chosen, output, layer=layer, overwrite=overwrite)
    payload = {**result, "elapsed_s": round(time.perf_counter() - started, 3)}
    emit(
        payload,
        as_json,
        lambda p: [
            f"run {p['run_id']} -> {p['path']}: "
            + ", ".join(f"{k} ({v} rows)" for k, v in p["layers"].items()),
            f"done in {p['elapsed_s']:.2f} s",
        ],
    )
