"""Exports of stored runs: GeoPackage layers, neutralised CSV, GeoJSON in EPSG:4326; the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely
from click.testing import CliRunner

import estates
from estates.analysis.settings import load_settings
from estates.cli import main
from estates.export import export_run, neutralise
from estates.ingest import load_boundaries, load_eric, load_postcodes
from estates.pipeline import run_flags, run_pooling
from tests.conftest import shared_file

MANCHESTER = "E08000003"
NASTY = ['=HYPERLINK("http://example.com","x")', "+44 161 000", "-1+2", "@SUM(A1)", "\tTab"]


def _load(estate: estates.Estate) -> None:
    """Sites with formula-like names in Manchester, then GM postcodes, districts and ERIC."""
    crafted = gpd.GeoDataFrame(
        {
            "source_key": [f"test:{i}" for i in range(len(NASTY))],
            "organisation_code": "=ORG",
            "organisation_name": "=cmd|' /C calc'!A0",
            "sector": "council",
            "name": NASTY,
            "occupancy": "vacant",
            "gia_m2": 100.0,
            "located_by": "source_coordinates",
            "non_geographic": False,
        },
        geometry=[shapely.Point(384_000 + 50 * i, 398_000) for i in range(len(NASTY))],
        crs="EPSG:27700",
    )
    estate.write_sites(crafted)
    load_postcodes(estate, shared_file("gm_postcodes_boundaries/ukpostcodes.csv"))
    load_boundaries(estate, shared_file("gm_postcodes_boundaries/GM_LADS.geojson"), kind="lad")
    load_eric(estate, shared_file("eric_site_2019_20/ERIC_201920_SiteData_for_R.csv"))


def test_exports_of_flag_and_pooling_runs(estate: estates.Estate, tmp_path: Path) -> None:
    _load(estate)
    flags = run_flags(estate, footprint=MANCHESTER)
    assert flags.summary["flag_counts"]["vacant"] == len(NASTY)

    # CSV: every formula-like text cell neutralised, numbers untouched, BNG coordinates.
    out_csv = tmp_path / "sites.csv"
    export_run(estate, flags.run_id, out_csv)
    with out_csv.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(flags.sites)
    names = {r["name"] for r in rows}
    assert {"'" + n for n in NASTY} <= names
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "@", "\t")), value
            assert not value.startswith("-") or value.replace(".", "", 1).lstrip("-").isdigit()
    crafted = [r for r in rows if r["source_key"].startswith("test:")]
    assert {r["organisation_name"] for r in crafted} == {"'=cmd|' /C calc'!A0"}
    assert float(crafted[0]["easting"]) == pytest.approx(384_000, abs=1e-6)
    assert float(crafted[0]["northing"]) == pytest.approx(398_000, abs=1e-6)

    # GeoJSON: EPSG:4326, Manchester lies near 2.2 W, 53.5 N.
    out_json = tmp_path / "sites.geojson"
    export_run(estate, flags.run_id, out_json)
    back = gpd.read_file(out_json)
    assert back.crs.to_epsg() == 4326
    located = back[back.geometry.notna()]
    assert located.geometry.x.between(-2.4, -2.0).all()
    assert located.geometry.y.between(53.3, 53.7).all()
    assert len(back) == len(flags.sites)

    # GeoPackage of a pooling run with floor area moved: sites, flows and the run table.
    receivers = dict(load_settings().group_receivers)
    receivers["mental_health"] = ("mental_health", "acute", "community")
    settings = load_settings().replace(group_receivers=receivers)
    pool = run_pooling(estate, footprint=MANCHESTER, settings=settings, max_distance_m=5000)
    assert len(pool.flows) > 0
    out_gpkg = tmp_path / "pool.gpkg"
    result = export_run(estate, pool.run_id, out_gpkg)
    layers = dict(pyogrio.list_layers(out_gpkg))
    assert {"sites", "flows", "run"} <= set(layers)
    assert layers["flows"] == "LineString"
    assert result["layers"]["sites"] == len(pool.sites)
    flows = gpd.read_file(out_gpkg, layer="flows")
    assert flows.crs.to_epsg() == 27700
    assert flows["floor_area_m2"].sum() == pytest.approx(pool.flows["floor_area_m2"].sum())
    sites = gpd.read_file(out_gpkg, layer="sites")
    assert (sites["role"] == "released").sum() == pool.summary["sites_released"]
    run_table = pyogrio.read_dataframe(out_gpkg, layer="run")
    assert json.loads(run_table["summary"].iloc[0])["run_id"] == pool.run_id

    # One layer of a run as CSV: line centroids as easting/northing.
    export_run(estate, pool.run_id, tmp_path / "flows.csv", layer="flows")
    with (tmp_path / "flows.csv").open(encoding="utf-8") as handle:
        flow_rows = list(csv.DictReader(handle))
    assert len(flow_rows) == len(pool.flows)
    assert all(float(r["easting"]) > 300_000 for r in flow_rows)


def test_export_refuses_what_it_cannot_do(estate: estates.Estate, tmp_path: Path) -> None:
    _load(estate)
    run = run_flags(estate, footprint=MANCHESTER)
    with pytest.raises(estates.ConfigurationError, match=r"must end in \.gpkg, \.csv, \.geojson"):
        export_run(estate, run.run_id, tmp_path / "x.xlsx")
    with pytest.raises(estates.ConfigurationError, match="has no layer 'flows'"):
        export_run(estate, run.run_id, tmp_path / "x.csv", layer="flows")
    target = tmp_path / "x.gpkg"
    target.write_bytes(b"")
    with pytest.raises(estates.ConfigurationError, match="already exists"):
        export_run(estate, run.run_id, target)
    export_run(estate, run.run_id, target, overwrite=True)
    assert "sites" in dict(pyogrio.list_layers(target))


def test_neutralise_only_touches_formula_text() -> None:
    assert neutralise("=1+1") == "'=1+1"
    assert neutralise("@x") == "'@x"
    assert neutralise("plain") == "plain"
    assert neutralise(-5.0) == -5.0


def test_cli_analyse_and_export(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.gpkg")
    estate = estates.connect(db)
    load_eric(estate, shared_file("eric_site_2019_20/ERIC_201920_SiteData_for_R.csv"))
    estate.close()
    runner = CliRunner()
    analysed = runner.invoke(main, ["--db", db, "analyse", "--json"], catch_exceptions=False)
    assert analysed.exit_code == 0
    payload = json.loads(analysed.stdout)  # exactly one JSON object
    assert payload["sites_assessed"] == 1085
    assert set(payload["flag_counts"]) == {
        "underused_space",
        "vacant",
        "surplus_land",
        "poor_condition",
        "high_running_cost",
        "not_functionally_suitable",
    }
    human = runner.invoke(main, ["--db", db, "sensitivity"], catch_exceptions=False)
    assert human.exit_code == 0 and "done in" in human.stdout
    out = tmp_path / "latest.gpkg"
    exported = runner.invoke(main, ["--db", db, "export", "-o", str(out), "--json"])
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["run_id"] == payload["run_id"] + 1
    again = runner.invoke(main, ["--db", db, "export", "-o", str(out)])
    assert again.exit_code == 1
    assert "already exists" in again.stderr
    bad = runner.invoke(main, ["--db", db, "pool", "--footprint", "NOPE"])
    assert bad.exit_code == 1 and "has no sites" in bad.stderr
    config = tmp_path / "bad.toml"
    config.write_text("[flags]\ntypo = 1\n", encoding="utf-8")
    bad_config = runner.invoke(main, ["--db", db, "analyse", "--config", str(config)])
    assert bad_config.exit_code == 1 and "unknown setting 'typo'" in bad_config.stderr
