"""The two spatial joins the pipeline depends on, done by each engine on the same data.

- co-location links: pairs of points (i < j) at most ``distance`` metres apart;
- footprint assignment: which polygon contains each point.

Engines: ours (shapely 2 STRtree, vectorised, as ``estates`` does it), PostGIS
(``ST_DWithin`` / ``ST_Contains`` on GIST-indexed tables), DuckDB spatial (``ST_DWithin`` /
``ST_Contains``, extension loaded from the PyPI wheel, no network) and plain geopandas
``sjoin``. Each returns a count so the engines can be checked against each other; loading
the data into an engine is timed apart from the query.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from estates.settings import WORKING_CRS


@dataclass
class Timing:
    engine: str
    task: str
    seconds: float
    count: int
    load_seconds: float = 0.0


def timed(function: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    count = function()
    return time.perf_counter() - start, count


# --- ours ------------------------------------------------------------------------------


def ours_links(points: np.ndarray, distance: float) -> int:
    """Pairs within ``distance``, as co-location finds them (k-d tree, each pair once)."""
    from estates.analysis.colocation import link_pairs

    left, _right = link_pairs(points, distance)
    return len(left)


def ours_contains(points: np.ndarray, polygons: np.ndarray) -> int:
    """Points in a polygon, as footprint assignment finds them (one polygon per point)."""
    from estates.ingest.footprints import assign_points

    codes = np.arange(len(polygons)).astype(object)
    return len(assign_points(np.arange(len(points)), points, polygons, codes))


# --- geopandas sjoin (the naive analyst's path) ----------------------------------------


def geopandas_links(points: np.ndarray, distance: float) -> int:
    frame = gpd.GeoDataFrame({"i": np.arange(len(points))}, geometry=points, crs=WORKING_CRS)
    joined = gpd.sjoin(frame, frame, predicate="dwithin", distance=distance)
    return int((joined["i_left"] < joined["i_right"]).sum())


def geopandas_contains(points: np.ndarray, polygons: np.ndarray) -> int:
    pts = gpd.GeoDataFrame({"i": np.arange(len(points))}, geometry=points, crs=WORKING_CRS)
    polys = gpd.GeoDataFrame({"code": np.arange(len(polygons))}, geometry=polygons, crs=WORKING_CRS)
    joined = gpd.sjoin(pts, polys, predicate="within")
    return int(joined["i"].nunique())


# --- DuckDB spatial --------------------------------------------------------------------


def duckdb_connection() -> Any:
    import duckdb
    import duckdb_extension_spatial

    extension = next(
        Path(duckdb_extension_spatial.__file__).parent.glob("extensions/*/spatial.duckdb_extension")
    )
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    con.execute(f"LOAD '{extension}'")
    con.execute("SET threads = 2")
    return con


def _duckdb_table(con: Any, name: str, geoms: np.ndarray) -> None:
    import pandas as pd

    table = pd.DataFrame({"id": np.arange(len(geoms)), "wkb": list(shapely.to_wkb(geoms))})
    con.register("incoming", table)
    con.execute(
        f"CREATE OR REPLACE TABLE {name} AS SELECT id, ST_GeomFromWKB(wkb) AS geom FROM incoming"
    )
    con.unregister("incoming")


def duckdb_links(points: np.ndarray, distance: float) -> tuple[float, float, int]:
    con = duckdb_connection()
    load, _ = timed(lambda: (_duckdb_table(con, "pts", points), 0)[1])
    seconds, count = timed(
        lambda: int(
            con.execute(
                "SELECT count(*) FROM pts a JOIN pts b ON ST_DWithin(a.geom, b.geom, ?) WHERE a.id < b.id",
                [distance],
            ).fetchone()[0]
        )
    )
    con.close()
    return load, seconds, count


def duckdb_contains(points: np.ndarray, polygons: np.ndarray) -> tuple[float, float, int]:
    con = duckdb_connection()

    def load() -> int:
        _duckdb_table(con, "pts", points)
        _duckdb_table(con, "polys", polygons)
        return 0

    load_s, _ = timed(load)
    seconds, count = timed(
        lambda: int(
            con.execute(
                "SELECT count(DISTINCT p.id) FROM pts p JOIN polys g ON ST_Contains(g.geom, p.geom)"
            ).fetchone()[0]
        )
    )
    con.close()
    return load_s, seconds, count


# --- PostGIS ---------------------------------------------------------------------------


def _pg_table(conn: Any, name: str, geoms: np.ndarray) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.execute(f"CREATE TABLE {name} (id integer PRIMARY KEY, geom geometry(Geometry, 27700))")
    hexes = shapely.to_wkb(shapely.set_srid(geoms, 27700), hex=True, include_srid=True)
    with conn.cursor() as cursor, cursor.copy(f"COPY {name} (id, geom) FROM STDIN") as copy:
        for i, h in enumerate(hexes):
            copy.write_row((i, h))
    conn.execute(f"CREATE INDEX ON {name} USING gist (geom)")
    conn.execute(f"ANALYZE {name}")


def postgis_links(url: str, points: np.ndarray, distance: float) -> tuple[float, float, int]:
    import psycopg

    with psycopg.connect(
        url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as conn:
        load, _ = timed(lambda: (_pg_table(conn, "bench_pts", points), 0)[1])
        seconds, count = timed(
            lambda: int(
                conn.execute(
                    "SELECT count(*) FROM bench_pts a JOIN bench_pts b "
                    "ON a.id < b.id AND ST_DWithin(a.geom, b.geom, %s)",
                    (distance,),
                ).fetchone()[0]
            )
        )
    return load, seconds, count


def postgis_contains(
    url: str, points: np.ndarray, polygons: np.ndarray
) -> tuple[float, float, int]:
    import psycopg

    with psycopg.connect(
        url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as conn:

        def load() -> int:
            _pg_table(conn, "bench_pts", points)
            _pg_table(conn, "bench_polys", polygons)
            return 0

        load_s, _ = timed(load)
        seconds, count = timed(
            lambda: int(
                conn.execute(
                    "SELECT count(DISTINCT p.id) FROM bench_pts p JOIN bench_polys g ON ST_Contains(g.geom, p.geom)"
                ).fetchone()[0]
            )
        )
    return load_s, seconds, count
