"""The benchmark generator and every stage run at a tiny scale, so they cannot rot.

No timings are asserted here: benchmarks measure, tests check behaviour.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
import shapely

from benchmarks import engines
from benchmarks.stages import STAGES, run_stage
from tests.conftest import shared_file


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    shared_file("nhs_tu_asset_mapping/gp_practices_geo.csv")
    folder = tmp_path_factory.mktemp("bench")
    run_stage("generate", {"folder": str(folder), "sites": 1_500, "postcodes": 20_000})
    return {"folder": str(folder), "db": str(folder / "tiny.gpkg"), "pool_sites": "300"}


def test_generator_writes_real_layouts(tiny: dict[str, str]) -> None:
    folder = Path(tiny["folder"])
    with open(folder / "onspd.csv", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
        rows = sum(1 for _ in handle)
    assert {"pcds", "oseast1m", "osnrth1m", "lat", "long"} <= set(header)
    assert rows == 20_000
    variant = (folder / "council_3_variant.csv").read_bytes().splitlines()
    assert variant[0].startswith(b"Synthetic Borough Council")  # a title line above the header
    eric = (folder / "eric_site_2019_20.csv").read_text(encoding="utf-8").splitlines()
    assert "Floor area - under used (%)" in eric[0] and "OTHER REPORTABLE SITES" in eric[1]


def test_every_stage_runs(tiny: dict[str, str]) -> None:
    order = ["load_postcodes", "load_boundaries", "load_councils", "load_eric", "load_points"]
    order += ["geocode", "footprints", "flags", "colocation", "pooling", "map", "bbox", "e2e"]
    assert set(order) | {"generate"} == set(STAGES)
    results = {name: run_stage(name, dict(tiny)) for name in order}
    assert results["load_postcodes"]["inserted"] == 20_000
    councils = results["load_councils"]
    assert councils["rows_read"] == councils["inserted"] + councils["rejected"]
    assert councils["located"] > 0.9 * councils["inserted"]
    assert results["footprints"]["assigned"] > 0
    geocoded = results["geocode"]
    assert 0 < geocoded["found"] <= geocoded["distinct"] <= geocoded["postcodes"]
    assert results["pooling"]["status"] in ("optimal", "time_limit")
    assert results["map"]["sites_drawn"] == results["footprints"]["sites"]
    box = results["bbox"]  # GDAL's answer through the spatial index is the R-tree's own
    assert box["rows"] == box["query_rows"] == box["rtree_rows"]
    assert results["e2e"]["sites"] > 0 and set(results["e2e"]["split_s"]) >= {
        "postcodes",
        "flags_colocation",
        "map",
    }
    for result in results.values():
        assert result["seconds"] >= 0 and result["peak_mb"] > 0


def test_engines_agree_on_counts(postgis_url: str) -> None:
    points = shapely.points([[0, 0], [500, 0], [1300, 0], [5000, 5000]])
    polygons = shapely.polygons(
        [
            [[-10, -10], [600, -10], [600, 10], [-10, 10]],
            [[4000, 4000], [6000, 4000], [6000, 6000], [4000, 6000]],
        ]
    )
    assert engines.ours_links(points, 800.0) == engines.geopandas_links(points, 800.0) == 2
    assert (
        engines.ours_contains(points, polygons) == engines.geopandas_contains(points, polygons) == 3
    )
    assert engines.postgis_links(postgis_url, points, 800.0)[2] == 2
    assert engines.postgis_contains(postgis_url, points, polygons)[2] == 3
    if importlib.util.find_spec("duckdb_extension_spatial") is None:
        pytest.skip("DuckDB spatial is a benchmark-only dependency (make bench installs it)")
    assert engines.duckdb_links(points, 800.0)[2] == 2
    assert engines.duckdb_contains(points, polygons)[2] == 3
