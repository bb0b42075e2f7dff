"""Other public estate as points: GP practices, Trafford service buildings, vector formats."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely
from pyproj import Transformer

import estates
from estates.ingest import load_points, load_postcodes
from tests.conftest import shared_file
from tests.ingest_data import real_lookup_subset

GP = "nhs_tu_asset_mapping/gp_practices_geo.csv"
LEISURE = "trafford_council_assets/trafford_leisure_centres.csv"
HUBS = "trafford_council_assets/trafford_community_hubs.csv"
LIBRARIES = "trafford_council_assets/trafford_libraries.geojson"
TO_BNG = Transformer.from_crs(4326, 27700, always_xy=True)


def _close(point: shapely.Point, lon: float, lat: float) -> bool:
    e, n = TO_BNG.transform(lon, lat)
    return bool(point.distance(shapely.Point(e, n)) < 1)


def test_gp_practices_load_with_only_the_required_options(estate: estates.Estate) -> None:
    with open(shared_file(GP), encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    without = [r for r in rows if r["LAT"] in ("", "NA")]
    report = load_points(estate, shared_file(GP), organisation="GP practices", sector="nhs")
    assert report.rows_read == len(rows) == 12_447
    assert (report.inserted, report.rejected) == (12_447, 0)
    assert report.unlocated == len(without) == 67
    assert report.located == 12_380
    sites = estate.sites().set_index("source_key")
    assert sites.index.str.startswith("points:gp-practices:").all()
    for row in rows[:200]:
        site = sites.loc[f"points:gp-practices:{row['ODS_Code']}"]
        assert site["name"] == row["Name"] and site["site_type"] == "GP PRACTICE"
        if row["LAT"] != "NA":
            assert _close(site.geometry, float(row["LON"]), float(row["LAT"]))
        else:
            assert site.geometry is None
    again = load_points(estate, shared_file(GP), organisation="GP practices", sector="nhs")
    assert again.unchanged == 12_447


@pytest.mark.parametrize(
    ("relative", "count", "name_column"),
    [(LEISURE, 9, "name"), (HUBS, 6, "community_hub")],
)
def test_trafford_service_buildings(
    estate: estates.Estate, relative: str, count: int, name_column: str
) -> None:
    with open(shared_file(relative), encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    report = load_points(
        estate, shared_file(relative), organisation="Trafford Council", sector="council"
    )
    assert (report.rows_read, report.inserted, report.located) == (count, count, count)
    assert report.extra["columns"]["name"] == name_column
    sites = estate.sites()
    assert sorted(sites["name"]) == sorted(r[name_column] for r in rows)
    by_name = sites.set_index("name")
    for row in rows:
        assert _close(by_name.loc[row[name_column]].geometry, float(row["lon"]), float(row["lat"]))
        assert by_name.loc[row[name_column], "postcode"] == row["postcode"]
    assert set(sites["organisation_code"]) == {"trafford-council"}


def _libraries() -> list[dict]:  # type: ignore[type-arg]
    return json.loads(shared_file(LIBRARIES).read_text(encoding="utf-8"))["features"]


def test_libraries_geojson(estate: estates.Estate) -> None:
    report = load_points(
        estate,
        shared_file(LIBRARIES),
        organisation="Trafford Council",
        sector="council",
        category="library",
    )
    assert (report.rows_read, report.located) == (13, 13)
    sites = estate.sites().set_index("name")
    assert set(sites["category"]) == {"library"}
    for feature in _libraries():
        lon, lat = feature["geometry"]["coordinates"]
        assert _close(sites.loc[feature["properties"]["name"]].geometry, lon, lat)


@pytest.mark.parametrize(("driver", "suffix"), [("GPKG", ".gpkg"), ("ESRI Shapefile", ".shp")])
def test_geopackage_and_shapefile(
    estate: estates.Estate, tmp_path: Path, driver: str, suffix: str
) -> None:
    libraries = gpd.read_file(shared_file(LIBRARIES)).to_crs(27700)
    points = libraries.copy()
    if driver == "GPKG":  # one library as a polygon (a building footprint)
        libraries.loc[libraries.index[0], "geometry"] = points.geometry.iloc[0].buffer(30)
    path = tmp_path / f"libraries{suffix}"
    pyogrio.write_dataframe(libraries, path, driver=driver, promote_to_multi=False)
    report = load_points(estate, path, organisation="Trafford Council", sector="council")
    assert (report.rows_read, report.located) == (13, 13)
    assert report.extra["converted_to_points"] == (1 if driver == "GPKG" else 0)
    sites = estate.sites().set_index("name")
    for _, row in points.iterrows():
        assert sites.loc[row["name"]].geometry.distance(row.geometry) < 30
    for _, row in points.iloc[1:].iterrows():
        assert sites.loc[row["name"]].geometry.distance(row.geometry) < 1


def test_shapefile_without_crs_is_refused(estate: estates.Estate, tmp_path: Path) -> None:
    libraries = gpd.read_file(shared_file(LIBRARIES)).to_crs(27700)
    path = tmp_path / "nocrs.shp"
    pyogrio.write_dataframe(libraries, path, driver="ESRI Shapefile")
    path.with_suffix(".prj").unlink()
    with pytest.raises(estates.CrsError, match=r"nocrs\.shp.*no coordinate reference system"):
        load_points(estate, path, organisation="X", sector="council")


def test_points_located_from_postcodes(estate: estates.Estate, tmp_path: Path) -> None:
    load_postcodes(estate, real_lookup_subset(tmp_path, ["M32 0TH"]))
    path = tmp_path / "jobcentres.csv"
    path.write_text(
        "Office,Post code\nStretford Jobcentre,M32  0TH\nNowhere Jobcentre,ZZ9 9ZZ\nNo Code,\n",
        encoding="utf-8",
    )
    report = load_points(
        estate, path, organisation="Department for Work and Pensions", sector="central_government"
    )
    assert (report.rows_read, report.located, report.unlocated) == (3, 1, 2)
    sites = estate.sites().set_index("name")
    assert sites.loc["Stretford Jobcentre", "located_by"] == "postcode"
    assert sites.loc["Nowhere Jobcentre", "located_by"] == "none"


def test_bad_options_and_files(estate: estates.Estate, tmp_path: Path) -> None:
    with pytest.raises(estates.ConfigurationError, match="sector"):
        load_points(estate, shared_file(LEISURE), organisation="X", sector="army")
    nowhere = tmp_path / "nowhere.csv"
    nowhere.write_text("name,website\nA,http://a\n", encoding="utf-8")
    with pytest.raises(estates.MissingColumnError, match="longitude/latitude"):
        load_points(estate, nowhere, organisation="X", sector="other")
    dupes = tmp_path / "dupes.csv"
    dupes.write_text(
        "id,name,lon,lat\n1,A,-2.3,53.4\n1,B,-2.3,53.4\n,C,-2.3,53.4\n", encoding="utf-8"
    )
    report = load_points(estate, dupes, organisation="X", sector="other")
    assert (report.rows_read, report.inserted, report.rejected) == (3, 1, 2)
    reasons = estate.rejected_rows(report.batch_id)["reason"].tolist()
    assert any("repeats row 2" in r for r in reasons) and any("no id" in r for r in reasons)
