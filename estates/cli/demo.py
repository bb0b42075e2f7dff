"""``estates demo``: the whole pipeline on the generated demo estate, ending with maps."""

from __future__ import annotations

import time
from pathlib import Path

import click

from estates.cli import Context, emit, json_option, main, pass_context
from estates.settings import display_url


@main.command("demo")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("gis_data/demo"),
    show_default=True,
    help="Where the generated demo source files are written.",
)
@click.option(
    "--maps-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("maps"),
    show_default=True,
    help="Where demo_sites.html and demo_pooling.html are written.",
)
@json_option
@pass_context
def demo(ctx: Context, data_dir: Path, maps_dir: Path, as_json: bool) -> None:
    """Generate the seeded demo estate, load it, analyse it and draw its maps."""
    from estates import demo as demo_data
    from estates import ingest, publish

    started = time.perf_counter()
    estate = ctx.estate
    files = demo_data.write_demo_files(data_dir)
    loads = {
        "postcodes": ingest.load_postcodes(estate, files.postcodes),
        "districts": ingest.load_boundaries(estate, files.districts, kind="lad"),
        "icb": ingest.build_icb_footprints(estate, files.icb_lookup),
        "small_areas": ingest.load_boundaries(estate, files.small_areas, kind="lsoa"),
        "eric": ingest.load_eric(estate, files.eric, period="2019/20"),
        "council": ingest.load_council(estate, files.council),
        "fire_stations": ingest.load_points(
            estate,
            files.fire_stations,
            organisation=demo_data.FIRE_NAME,
            sector="emergency_services",
        ),
    }
    sites_map = publish.write_sites_map(
        estate, footprint=demo_data.ICB_CODE, output=maps_dir / "demo_sites.html"
    )
    pooling_map = publish.write_pooling_map(
        estate, footprint=demo_data.ICB_CODE, output=maps_dir / "demo_pooling.html"
    )
    summary = estate.summary()
    payload = {
        "database": display_url(estate.url),
        "loads": {name: report.as_dict() for name, report in loads.items()},
        "runs": {**sites_map["runs"], **pooling_map["runs"]},
        "flags": sites_map["flags"],
        "colocation": sites_map["colocation"],
        "pooling": pooling_map["headline"],
        "maps": {"sites": sites_map["path"], "pooling": pooling_map["path"]},
        "summary": summary,
        "seconds": round(time.perf_counter() - started, 1),
    }
    emit(payload, as_json, _lines)


def _lines(p: dict[str, object]) -> list[str]:
    loads = p["loads"]
    assert isinstance(loads, dict)
    flags = p["flags"]
    coloc = p["colocation"]
    pool = p["pooling"]
    maps = p["maps"]
    assert (
        isinstance(flags, dict)
        and isinstance(coloc, dict)
        and isinstance(pool, dict)
        and isinstance(maps, dict)
    )
    lines = [f"demo estate in {p['database']} ({p['seconds']} s)"]
    for name, report in loads.items():
        lines.append(
            f"  loaded {name:<13} {report['rows_read']:>5} rows: {report['inserted']} new, "
            f"{report['updated']} updated, {report['unchanged']} unchanged, {report['rejected']} rejected"
        )
    counts = ", ".join(f"{k} {v}" for k, v in flags.get("flag_counts", {}).items() if v)
    lines.append(
        f"  flags: {flags.get('sites_with_any_flag')} of {flags.get('sites_assessed')} sites flagged ({counts})"
    )
    lines.append(
        f"  co-location at 800 m: {coloc.get('cluster_count')} clusters holding {coloc.get('sites_in_clusters')} sites"
    )
    lines.append(
        f"  pooling: {pool.get('sites_released')} sites released, "
        f"{pool.get('floor_area_released_m2', 0):,.0f} m2 re-provided, "
        f"GBP {pool.get('running_cost_saved_gbp', 0):,.0f} a year saved ({pool.get('status')})"
    )
    lines.append(f"maps written: {maps['sites']}")
    lines.append(f"              {maps['pooling']}")
    return lines
