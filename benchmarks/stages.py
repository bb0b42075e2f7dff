"""Benchmark stages. Each runs in its own process (``python -m benchmarks stage NAME``) so
its peak memory is its own; each prints one JSON line: seconds, peak MB and what it did.
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import shapely

StageFn = Callable[[dict[str, Any]], dict[str, Any]]
STAGES: dict[str, StageFn] = {}


def stage(name: str) -> Callable[[StageFn], StageFn]:
    def register(function: StageFn) -> StageFn:
        STAGES[name] = function
        return function

    return register


def peak_mb() -> float:
    """Peak resident memory of this process since its exec (VmHWM).

    Not ``ru_maxrss``: on Linux that survives fork+exec, so a stage would report the
    memory of the parent that started it.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_stage(name: str, params: dict[str, Any]) -> dict[str, Any]:
    start = time.perf_counter()
    details = STAGES[name](params)
    return {
        "stage": name,
        "seconds": round(time.perf_counter() - start, 3),
        "peak_mb": round(peak_mb(), 1),
        **details,
    }


def _estate(params: dict[str, Any]):  # type: ignore[no-untyped-def]
    import estates

    return estates.connect(params["db"])


def _files(params: dict[str, Any]) -> dict[str, Any]:
    return json.loads(Path(params["folder"], "manifest.json").read_text())


def _report(report: Any) -> dict[str, Any]:
    data = report.as_dict() if hasattr(report, "as_dict") else dict(report)
    return {
        k: data[k]
        for k in (
            "rows_read",
            "inserted",
            "updated",
            "unchanged",
            "rejected",
            "located",
            "unlocated",
        )
        if k in data
    }


@stage("generate")
def generate_estate(params: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.generate import Scale, generate

    folder = Path(params["folder"])
    made = generate(folder, Scale(int(params["sites"]), int(params["postcodes"])))
    manifest = {
        "eric": str(made.eric),
        "councils": [str(p) for p in made.councils],
        "points": str(made.points),
        "postcodes": str(made.postcodes),
        "districts": str(made.districts),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return {"files": len(made.councils) + 4}


# --- loaders -------------------------------------------------------------------------


@stage("load_postcodes")
def load_postcodes(params: dict[str, Any]) -> dict[str, Any]:
    from estates.ingest import load_postcodes as load

    return _report(load(_estate(params), _files(params)["postcodes"]))


def _council_organisations(paths: list[str]) -> list[str | None]:
    # The home-made variant has no OrganisationLabel column, as many real ones lack it.
    return ["Synthetic Borough Council 3" if "variant" in path else None for path in paths]


@stage("load_councils")
def load_councils(params: dict[str, Any]) -> dict[str, Any]:
    from estates.ingest import load_councils as load

    paths = _files(params)["councils"]
    totals: dict[str, int] = {}
    for report in load(_estate(params), paths, organisations=_council_organisations(paths)):
        for key, value in _report(report).items():
            totals[key] = totals.get(key, 0) + int(value)
    return totals


@stage("load_eric")
def load_eric(params: dict[str, Any]) -> dict[str, Any]:
    from estates.ingest import load_eric as load

    return _report(load(_estate(params), _files(params)["eric"]))


@stage("load_points")
def load_points(params: dict[str, Any]) -> dict[str, Any]:
    from estates.ingest import load_points as load

    return _report(
        load(_estate(params), _files(params)["points"], organisation="GP practices", sector="nhs")
    )


@stage("load_boundaries")
def load_boundaries(params: dict[str, Any]) -> dict[str, Any]:
    from estates.ingest import load_boundaries as load

    return _report(load(_estate(params), _files(params)["districts"], kind="lad"))


# --- analysis --------------------------------------------------------------------------


@stage("footprints")
def footprints(params: dict[str, Any]) -> dict[str, Any]:
    """Assign every located site to its district (in memory, as the loaders do)."""
    from estates.ingest.footprints import assign_points

    estate = _estate(params)
    sites = estate.sites(located=True)
    districts = estate.boundaries(kind="lad")
    start = time.perf_counter()
    assigned = assign_points(
        sites["site_id"].to_numpy(),
        np.asarray(sites.geometry.values),
        np.asarray(districts.geometry.values),
        districts["code"].to_numpy(dtype=object),
    )
    return {
        "sites": len(sites),
        "assigned": len(assigned),
        "compute_s": round(time.perf_counter() - start, 3),
    }


@stage("geocode")
def geocode(params: dict[str, Any]) -> dict[str, Any]:
    """Every stored site postcode looked up in the loaded postcode table, as loaders do
    for rows without usable coordinates."""
    from sqlalchemy import text

    from estates.db import postcodes as db_postcodes

    estate = _estate(params)
    with estate.read() as connection:
        codes = [
            r[0]
            for r in connection.execute(
                text("SELECT postcode FROM site WHERE postcode IS NOT NULL")
            )
        ]
        start = time.perf_counter()
        found = db_postcodes.lookup(connection, codes)
        lookup_s = time.perf_counter() - start
    return {
        "postcodes": len(codes),
        "distinct": len(set(codes)),
        "found": len(found),
        "lookup_s": round(lookup_s, 3),
    }


@stage("flags")
def flags(params: dict[str, Any]) -> dict[str, Any]:
    from estates.pipeline import run_flags

    run = run_flags(_estate(params))
    return {
        "sites_assessed": run.summary.get("sites_assessed"),
        "flagged": run.summary.get("sites_with_any_flag"),
    }


@stage("colocation")
def colocation(params: dict[str, Any]) -> dict[str, Any]:
    from estates.pipeline import run_colocation

    run = run_colocation(_estate(params), distance_m=800.0)
    return {
        "clusters": run.summary.get("cluster_count"),
        "sites_in_clusters": run.summary.get("sites_in_clusters"),
    }


@stage("pooling")
def pooling(params: dict[str, Any]) -> dict[str, Any]:
    """A one-body scenario on an ICB-sized synthetic footprint of ``pool_sites`` sites."""
    from estates.analysis.flags import flag_sites
    from estates.analysis.pooling import pool_footprint
    from estates.analysis.settings import load_settings

    estate = _estate(params)
    sites = estate.sites(located=True, measures=True)
    sites = sites[~sites["non_geographic"]]
    # The densest sites around one point: an ICB-sized footprint of about pool_sites sites.
    centre = shapely.Point(np.median(sites.geometry.x), np.median(sites.geometry.y))
    order = np.argsort(sites.geometry.distance(centre).to_numpy())
    footprint = sites.iloc[order[: int(params.get("pool_sites", 5000))]]
    settings = load_settings(None)
    flagged = flag_sites(footprint, settings)
    start = time.perf_counter()
    scenario = pool_footprint(flagged, settings)
    head = scenario.headline
    return {
        "sites": len(footprint),
        "solve_s": round(time.perf_counter() - start, 3),
        "status": head.get("status"),
        "mip_gap": head.get("mip_gap"),
        "released": head.get("sites_released"),
    }


@stage("map")
def national_map(params: dict[str, Any]) -> dict[str, Any]:
    from estates.maps import save_map, sites_map

    estate = _estate(params)
    sites = estate.sites(located=True)
    out = Path(params["folder"]) / "national_sites.html"
    info = save_map(sites_map(sites, title="National estate"), out)
    return {
        "sites": len(sites),
        "html_mb": round(out.stat().st_size / 1e6, 2),
        **{k: v for k, v in info.items() if k != "path"},
    }


@stage("bbox")
def bbox(params: dict[str, Any]) -> dict[str, Any]:
    """GDAL opens the GeoPackage and answers a bounding-box query through its R-tree.

    Each call opens the file again, seven times (the first is the cold one; the median is
    reported). ``query``: the features in the box, as GDAL answers them (ids and
    envelopes, ``pyogrio.read_bounds``); ``frame``: the same with every column as a
    GeoDataFrame; ``open``: opening the file and reading the layer's metadata. The same
    box counted straight from the R-tree checks that GDAL's answer is the index's.
    """
    import sqlite3
    import statistics

    import pyogrio

    box = (380_000, 390_000, 390_000, 400_000)

    def timed(call: Callable[[], Any]) -> tuple[list[float], Any]:
        times, out = [], None
        for _ in range(7):
            start = time.perf_counter()
            out = call()
            times.append((time.perf_counter() - start) * 1000)
        return times, out

    open_ms, _ = timed(lambda: pyogrio.read_info(params["db"], layer="site"))
    query_ms, (fids, _bounds) = timed(
        lambda: pyogrio.read_bounds(params["db"], layer="site", bbox=box)
    )
    frame_ms, frame = timed(lambda: pyogrio.read_dataframe(params["db"], layer="site", bbox=box))
    con = sqlite3.connect(f"file:{params['db']}?mode=ro", uri=True)
    start = time.perf_counter()
    (indexed,) = con.execute(
        "SELECT count(*) FROM rtree_site_geom WHERE maxx >= ? AND minx <= ? AND maxy >= ? "
        "AND miny <= ?",
        (box[0], box[2], box[1], box[3]),
    ).fetchone()
    rtree_ms = (time.perf_counter() - start) * 1000
    con.close()
    return {
        "rows": len(frame),
        "query_rows": len(fids),
        "rtree_rows": int(indexed),
        "open_ms": round(statistics.median(open_ms), 1),
        "query_first_ms": round(query_ms[0], 1),
        "query_ms": round(statistics.median(query_ms), 1),
        "frame_ms": round(statistics.median(frame_ms), 1),
        "rtree_ms": round(rtree_ms, 2),
    }


@stage("e2e")
def end_to_end(params: dict[str, Any]) -> dict[str, Any]:
    """The whole national pipeline on a new GeoPackage: load (with geocoding and footprint
    assignment; each file read in a worker process while the one before is written),
    flag, co-locate, write a national summary map."""
    import os

    from estates.ingest import Source, load_sources
    from estates.maps import save_map, sites_map
    from estates.pipeline import run_flags_and_colocation

    if os.path.exists(params["db"]):
        os.remove(params["db"])
    files = _files(params)
    estate = _estate(params)
    split: dict[str, float] = {}

    peaks: dict[str, float] = {}

    def step(name: str, function: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        out = function()
        split[name] = round(time.perf_counter() - start, 2)
        peaks[name] = round(peak_mb(), 0)  # the process's peak so far, after this step
        return out

    councils = files["councils"]
    sources = [
        Source("postcodes", files["postcodes"]),
        Source("boundaries", files["districts"], {"kind": "lad"}),
        *(
            Source("council", path, {"organisation": organisation})
            for path, organisation in zip(councils, _council_organisations(councils), strict=True)
        ),
        Source("eric", files["eric"]),
        Source("points", files["points"], {"organisation": "GP practices", "sector": "nhs"}),
    ]
    names = ["postcodes", "districts", *(f"council_{n + 1}" for n in range(len(councils)))]
    # One call: each file read in a worker while the one before it is written. A report's
    # elapsed_s is the wall time spent on its file after the one before (the wait for its
    # read, then its write), so the split adds up to the call's time.
    reports = step("loads", lambda: load_sources(estate, sources))
    del split["loads"]
    split.update(
        {n: round(r.elapsed_s, 2) for n, r in zip([*names, "eric", "points"], reports, strict=True)}
    )
    # As `estates map` does: one read of the site table; co-location found in a forked
    # process while the flags are computed and stored here.
    _, coloc = step("flags_colocation", lambda: run_flags_and_colocation(estate, distance_m=800.0))
    sites = coloc.sites
    out = Path(params["folder"]) / "national_summary.html"
    info = step(
        "map",
        lambda: save_map(sites_map(sites, clusters=coloc.clusters, title="National estate"), out),
    )
    return {
        "split_s": split,
        "peak_mb_after": peaks,
        "sites": len(sites),
        "html_mb": round(info["bytes"] / 1e6, 2),
        # The largest child's peak (all have exited): the read-ahead worker (spawned, from
        # about 200 MB of imports) or a forked analysis child, whose resident pages are
        # mostly shared with this process: an upper bound on what children added.
        "worker_peak_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 0),
    }
