"""``make bench`` / ``python -m benchmarks``: the benchmark suite, results in RESULTS.md.

    python -m benchmarks [--sites 500000] [--postcodes 2600000] [--pool-sites 5000]
    python -m benchmarks stage NAME PARAMS_JSON     (one stage, used internally)

Each stage runs in its own process so its peak memory (max RSS) is its own. Reference
engines (PostGIS on a throwaway cluster, DuckDB spatial, plain geopandas) run in the same
invocation on the same data; their counts must agree with ours.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = ROOT / "benchmarks" / ".scratch"


def _stage(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one stage in a fresh process and return its JSON line."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "stage", name, json.dumps(params)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"stage {name} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _engines(folder: Path, pg_url: str | None, sites: int) -> list[dict[str, Any]]:
    """Co-location links at 800 m and point-in-polygon, by every engine, on the same points."""
    import geopandas as gpd
    import numpy as np
    import shapely

    from benchmarks import engines
    from benchmarks.generate import _anchors, _positions

    rng = np.random.default_rng(7)
    xy = _positions(rng, _anchors(), sites, 1_500.0)
    points = shapely.points(xy)
    districts = gpd.read_file(
        ROOT.parent / "shared" / "data" / "boundaries_england" / "topo_lad.json"
    )
    polygons = np.asarray(districts.set_crs(4326).to_crs(27700).geometry.make_valid().values)
    rows: list[dict[str, Any]] = []

    def add(engine: str, task: str, seconds: float, count: int, load: float = 0.0) -> None:
        rows.append(
            {
                "engine": engine,
                "task": task,
                "seconds": round(seconds, 3),
                "count": count,
                "load_s": round(load, 3),
            }
        )

    add("estates", "links_800m", *engines.timed(lambda: engines.ours_links(points, 800.0)))
    add(
        "estates",
        "point_in_polygon",  # unprepared polygons, as every other engine gets them
        *engines.timed(
            lambda: engines.ours_contains(points, shapely.from_wkb(shapely.to_wkb(polygons)))
        ),
    )
    load, secs, count = engines.duckdb_links(points, 800.0)
    add("duckdb", "links_800m", secs, count, load)
    load, secs, count = engines.duckdb_contains(points, polygons)
    add("duckdb", "point_in_polygon", secs, count, load)
    if pg_url:
        load, secs, count = engines.postgis_links(pg_url, points, 800.0)
        add("postgis", "links_800m", secs, count, load)
        load, secs, count = engines.postgis_contains(pg_url, points, polygons)
        add("postgis", "point_in_polygon", secs, count, load)
    fresh = shapely.from_wkb(
        shapely.to_wkb(polygons)
    )  # unprepared, as a new analyst would have them
    add("geopandas", "links_800m", *engines.timed(lambda: engines.geopandas_links(points, 800.0)))
    add(
        "geopandas",
        "point_in_polygon",
        *engines.timed(lambda: engines.geopandas_contains(points, fresh)),
    )
    return rows


def _pipeline(folder: Path, db: str, pool_sites: int, label: str) -> list[dict[str, Any]]:
    params = {"folder": str(folder), "db": db, "pool_sites": pool_sites}
    names = ["load_postcodes", "load_boundaries", "load_councils", "load_eric", "load_points"]
    names += ["geocode", "footprints"]
    if label == "gpkg":
        names += ["flags", "colocation", "pooling", "map", "bbox"]
    out = []
    for name in names:
        row = _stage(name, params)
        row["backend"] = label
        out.append(row)
        print(f"  {label:<8} {name:<16} {row['seconds']:>8.2f} s  {row['peak_mb']:>7.0f} MB  "
              f"{ {k: v for k, v in row.items() if k not in ('stage', 'seconds', 'peak_mb', 'backend')} }", flush=True)  # fmt: skip
    return out


def cpu_reference_s() -> float:
    """Seconds for a fixed pure-Python loop (best of 3): how fast this machine is today.

    Runs on shared virtual machines vary by 2x from one day to the next; this number
    lets two RESULTS.md files be compared.
    """
    import time

    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        total = 0
        for i in range(10_000_000):
            total += i
        best = min(best, time.perf_counter() - start)
    return round(best, 2)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    return lines


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "stage":
        from benchmarks.stages import run_stage

        print(json.dumps(run_stage(sys.argv[2], json.loads(sys.argv[3]))))
        return
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--sites", type=int, default=500_000)
    parser.add_argument("--postcodes", type=int, default=2_600_000)
    parser.add_argument("--pool-sites", type=int, default=5_000)
    parser.add_argument("--no-postgis", action="store_true")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    speed = cpu_reference_s()
    folder = SCRATCH / f"estate_{args.sites}"
    # Generated in its own process, so the parent that starts every stage stays small.
    made = _stage(
        "generate", {"folder": str(folder), "sites": args.sites, "postcodes": args.postcodes}
    )
    print(
        f"generated {args.sites:,} sites and {args.postcodes:,} postcodes in {made['seconds']:.1f} s"
    )

    gpkg = folder / "estate.gpkg"
    gpkg.unlink(missing_ok=True)
    rows = _pipeline(folder, str(gpkg), args.pool_sites, "gpkg")
    e2e = _stage("e2e", {"folder": str(folder), "db": str(folder / "e2e.gpkg")})
    print(
        f"  end to end       {e2e['seconds']:>8.2f} s  {e2e['peak_mb']:>7.0f} MB  {e2e['split_s']}",
        flush=True,
    )

    cluster = None
    pg_url = None
    if not args.no_postgis:
        from tests import pg_cluster

        if pg_cluster.unavailable_reason() is None:
            cluster = pg_cluster.Cluster().start()
            pg_url = pg_cluster.create_database(cluster.url(), "bench")
    try:
        if pg_url:
            rows += _pipeline(folder, pg_url, args.pool_sites, "postgis")
        engine_rows = _engines(folder, pg_url, args.sites)
    finally:
        if cluster is not None:
            cluster.stop()

    ours = {r["task"]: r["seconds"] for r in engine_rows if r["engine"] == "estates"}
    for r in engine_rows:
        r["ours_over_this"] = round(ours[r["task"]] / r["seconds"], 3) if r["seconds"] else ""
    counts = {}
    for r in engine_rows:
        counts.setdefault(r["task"], set()).add(r["count"])
    agree = all(len(v) == 1 for v in counts.values())

    lines = [
        "# Benchmark results",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"a 10-million-step pure-Python loop takes {speed} s (machine speed, to compare runs)",
        f"- scale: {args.sites:,} sites, {args.postcodes:,} postcodes, pooling footprint {args.pool_sites:,} sites",
        "- command: `make bench` (or `python -m benchmarks --sites N --postcodes M`)",
        "",
        "## Pipeline stages (each in its own process; peak = max RSS of that process)",
        "",
        *_table(rows, ["backend", "stage", "seconds", "peak_mb", "rows_read", "inserted", "located", "unlocated", "rejected"]),
        "",
        "Stage details:",
        "",
        *(f"- {r['backend']} {r['stage']}: " + json.dumps({k: v for k, v in r.items() if k not in ('stage', 'backend')}) for r in rows),
        "",
        "End to end on a new GeoPackage (load postcodes, districts, councils, ERIC, points with "
        "geocoding and footprint assignment, each file read in a worker process while the one before is "
        "written; flag, with co-location at 800 m found in a forked process; national summary "
        f"map): **{e2e['seconds']} s**, peak memory **{e2e['peak_mb']:.0f} MB** "
        f"(and {e2e.get('worker_peak_mb', 0):.0f} MB at most in a child process: the read-ahead "
        "worker, or a forked one, whose resident pages are mostly this process's, shared); "
        f"split (s): {json.dumps(e2e['split_s'])}; "
        f"peak MB after each step: {json.dumps(e2e['peak_mb_after'])}; "
        f"map {e2e['html_mb']} MB for {e2e['sites']:,} sites.",
        "",
        "## Spatial joins against reference engines (same points, same polygons, same run)",
        "",
        *_table(engine_rows, ["task", "engine", "seconds", "load_s", "count", "ours_over_this"]),
        "",
        f"Counts agree across engines: {'yes' if agree else 'NO: ' + json.dumps({k: sorted(v) for k, v in counts.items()})}. "
        "`ours_over_this` is our time divided by that engine's query time (below 1.0: we are faster). "
        "`load_s` is the time to load the data into that engine, not counted in `seconds`.",
    ]  # fmt: skip
    args.results.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
