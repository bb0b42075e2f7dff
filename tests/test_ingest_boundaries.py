"""Boundaries: TopoJSON districts, GeoJSON regions and small areas, ICBs dissolved from districts."""

# The session fixture `real_estate` is imported from tests.ingest_data; its use as a
# test parameter is what pytest expects, not a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

import estates
from estates.ingest import build_icb_footprints, load_boundaries, load_points
from estates.ingest.boundaries import find_field
from tests.conftest import shared_file
from tests.ingest_data import GM_LADS, TOPO_LAD, RealEstate, real_estate  # noqa: F401

REGIONS = "boundaries_england/eer.json"
WARDS = "trafford_council_assets/boundaries/electoral_ward.geojson"
GM_CODES = [f"E080000{i:02d}" for i in range(1, 11)]
GM_ICB = "E54000057"


def test_national_topojson_districts(real_estate: RealEstate) -> None:
    topo = json.loads(shared_file(TOPO_LAD).read_text(encoding="utf-8"))
    features = topo["objects"]["lad"]["geometries"]
    report = real_estate.reports["topo"]
    assert report.rows_read == len(features) == 326
    assert (report.inserted, report.rejected) == (326, 0)
    assert report.extra["code_field"] == "LAD13CD"
    lads = real_estate.estate.boundaries(kind="lad")
    assert len(lads) == 326 and lads.crs.to_epsg() == 27700
    assert set(lads["code"]) == {f["properties"]["LAD13CD"] for f in features}
    assert lads.geometry.is_valid.all()
    assert set(lads.geometry.geom_type) == {"MultiPolygon"}
    trafford = lads.set_index("code").loc["E08000009"]
    assert trafford["name"] == "Trafford"
    assert 100e6 < trafford.geometry.area < 112e6  # about 106 km2, in EPSG:27700 square metres


def test_generalised_gm_districts_replace_the_national_ones(real_estate: RealEstate) -> None:
    report = real_estate.reports["gm_lads"]
    assert (report.rows_read, report.updated, report.inserted) == (10, 10, 0)
    lads = real_estate.estate.boundaries(kind="lad", codes=GM_CODES)
    assert sorted(lads["code"]) == GM_CODES
    gm = gpd.read_file(shared_file(GM_LADS)).to_crs(27700).set_index("lad17cd")
    for code, geom in zip(lads["code"], lads.geometry, strict=True):
        assert abs(geom.area - gm.loc[code].geometry.area) < 1


def test_reload_is_unchanged_and_sites_follow_new_boundaries(
    estate: estates.Estate, tmp_path: Path
) -> None:
    # Sites first, boundaries after: every located site is assigned when boundaries arrive.
    points = tmp_path / "points.csv"
    points.write_text(
        "id,name,lon,lat\n1,Trafford Town Hall,-2.30901,53.44600\n2,Manchester Town Hall,-2.24425,53.47937\n"
        "3,Somewhere in Wales,-3.5,52.5\n",
        encoding="utf-8",
    )
    load_points(estate, points, organisation="Test", sector="other")
    first = load_boundaries(estate, shared_file(GM_LADS), kind="lad")
    assert (first.extra["sites_assigned"], first.extra["sites_outside"]) == (2, 1)
    sites = estate.sites().set_index("name")
    assert sites.loc["Trafford Town Hall", "lad_code"] == "E08000009"
    assert sites.loc["Manchester Town Hall", "lad_code"] == "E08000003"
    assert sites["lad_code"].isna().sum() == 1
    again = load_boundaries(estate, shared_file(GM_LADS), kind="lad")
    assert (again.unchanged, again.inserted, again.updated) == (10, 0, 0)


def test_regions_and_wards(estate: estates.Estate) -> None:
    regions = load_boundaries(estate, shared_file(REGIONS), kind="region")
    assert (regions.inserted, regions.extra["code_field"]) == (9, "EER13CD")
    wards = load_boundaries(estate, shared_file(WARDS), kind="ward")
    assert (wards.inserted, wards.extra["code_field"]) == (21, "area_code")
    assert set(estate.boundaries()["kind"]) == {"region", "ward"}
    north_west = estate.boundaries(kind="region").set_index("name").loc["North West"]
    assert north_west.geometry.contains(estate.boundaries(kind="ward").geometry.union_all())


def test_icb_dissolved_from_districts(estate: estates.Estate, tmp_path: Path) -> None:
    load_boundaries(estate, shared_file(GM_LADS), kind="lad")
    lookup = tmp_path / "LAD24_SICBL24_ICB24_EN_LU.csv"
    lookup.write_text(
        "LAD24CD,LAD24NM,ICB24CD,ICB24NM\n"
        + "".join(
            f"{c},District {c},{GM_ICB},NHS Greater Manchester Integrated Care Board\n"
            for c in GM_CODES
        )
        + "E06000007,Warrington,E54000008,NHS Cheshire and Merseyside Integrated Care Board\n",
        encoding="utf-8",
    )
    report = build_icb_footprints(estate, lookup)
    assert report.rows_read == 11
    assert (report.inserted, report.rejected) == (10, 1)  # Warrington's district is not loaded
    assert "E06000007 is not loaded" in estate.rejected_rows(report.batch_id)["reason"].iloc[0]
    icb = estate.boundaries(kind="icb").set_index("code").loc[GM_ICB]
    assert icb["name"] == "NHS Greater Manchester Integrated Care Board"
    districts = estate.boundaries(kind="lad").geometry.union_all()
    assert abs(icb.geometry.area - districts.area) / districts.area < 1e-6
    assert icb.geometry.symmetric_difference(districts).area < 1


def test_field_detection() -> None:
    assert find_field(["lsoa11cd", "wd18cd", "lad19cd"], "lsoa", *_code()) == "lsoa11cd"
    assert find_field(["lsoa11cd", "wd18cd", "lad19cd"], "lad", *_code()) == "lad19cd"
    assert find_field(["area_code", "area_name"], "ward", *_code()) == "area_code"
    assert find_field(["name"], "other", *_code()) is None


def _code():  # type: ignore[no-untyped-def]
    from estates.ingest.boundaries import _ONS_CODE, _PLAIN_CODES

    return _ONS_CODE, _PLAIN_CODES


def test_no_code_field_and_bad_kind(estate: estates.Estate) -> None:
    localities = shared_file("trafford_council_assets/boundaries/localities.geojson")
    with pytest.raises(estates.MissingColumnError, match="--code-field"):
        load_boundaries(estate, localities, kind="other")
    report = load_boundaries(estate, localities, kind="other", code_field="area_name")
    assert report.inserted == 4
    with pytest.raises(estates.ConfigurationError, match="lad"):
        load_boundaries(estate, localities, kind="county")


def test_invalid_polygons_are_repaired(estate: estates.Estate, tmp_path: Path) -> None:
    bowtie = shapely.Polygon([(-2.30, 53.44), (-2.28, 53.46), (-2.28, 53.44), (-2.30, 53.46)])
    frame = gpd.GeoDataFrame(
        {"code": ["X1", "X2"], "name": ["Bow tie", "Empty"]},
        geometry=[bowtie, None],
        crs=4326,
    )
    path = tmp_path / "bowtie.geojson"
    frame.to_file(path, driver="GeoJSON")
    report = load_boundaries(estate, path, kind="other")
    assert (report.inserted, report.rejected) == (1, 1)
    stored = estate.boundaries(kind="other").geometry.iloc[0]
    assert stored.is_valid and stored.area > 0


def test_points_on_shared_edges_go_to_the_smaller_then_lower_code() -> None:
    """Pure assignment: inside, on an edge shared by two polygons, nested, outside."""
    import numpy as np

    from estates.ingest.footprints import assign_points

    big = shapely.box(0, 0, 10, 10)  # area 100
    left, right = shapely.box(10, 0, 20, 10), shapely.box(10, 10, 20, 20)  # area 100 each
    small = shapely.box(2, 2, 4, 4)  # inside big, area 4
    polygons = np.array([big, left, right, small], dtype=object)
    codes = np.array(["E1", "E3", "E2", "E4"], dtype=object)
    points = shapely.points([[5, 5], [10, 5], [15, 10], [3, 3], [50, 50], [15, 15]])
    ids = np.array([11, 12, 13, 14, 15, 16])
    out = assign_points(ids, points, polygons, codes)
    # 12 sits on the edge big|left (equal areas: lower code E1); 13 on left|right (E2 < E3);
    # 14 is in big and in small (the smaller wins); 15 is outside everything.
    assert out["site_id"].tolist() == [11, 12, 13, 14, 16]
    assert out["code"].tolist() == ["E1", "E1", "E2", "E4", "E2"]
