"""Council asset registers: Trafford as published, its swapped row, districts, variants, profiles."""

# The session fixture `real_estate` is imported from tests.ingest_data; its use as a
# test parameter is what pytest expects, not a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import csv
import logging
import multiprocessing
import re
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from sqlalchemy import text

import estates
from estates.ingest import LoadReport, load_council, load_councils, load_postcodes, sources
from estates.ingest.council import normalise_occupancy
from estates.ingest.profile import load_profile
from tests.conftest import shared_file
from tests.ingest_data import (  # noqa: F401
    TRAFFORD,
    RealEstate,
    real_estate,
    real_lookup_subset,
    snapshot,
)

SWAPPED = "TMBC0396/P0000036"
TO_WGS84 = Transformer.from_crs(27700, 4326, always_xy=True)
TO_BNG = Transformer.from_crs(4326, 27700, always_xy=True)


def _published() -> list[dict[str, str]]:
    with open(shared_file(TRAFFORD), encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _trafford_sites(real: RealEstate):  # type: ignore[no-untyped-def]
    sites = real.estate.sites(sector="council")
    return sites[sites["source_key"].str.startswith("lgtc:trafford-council:")].set_index(
        "source_key"
    )


def test_all_608_assets_accounted_for(real_estate: RealEstate) -> None:
    rows = _published()
    report = real_estate.reports["trafford"]
    assert len(rows) == 608 == report.rows_read
    assert (report.inserted, report.rejected, report.non_geographic) == (608, 0, 0)
    assert (report.located, report.unlocated) == (395, 213)
    assert report.extra["located_from_coordinates"] == 373
    assert report.extra["located_from_postcode"] == 22
    sites = _trafford_sites(real_estate)
    assert len(sites) == 608
    assert sites["located_by"].value_counts().to_dict() == {
        "source_coordinates": 373,
        "none": 213,
        "postcode": 22,
    }


def test_published_positions_survive_the_round_trip(real_estate: RealEstate) -> None:
    sites = _trafford_sites(real_estate)
    with_coords = [r for r in _published() if r["GeoX"] and r["GeoY"]]
    assert len(with_coords) == 373
    checked = 0
    for row in with_coords:
        if row["AssetCode"] == SWAPPED:
            continue
        point = sites.loc[f"lgtc:trafford-council:{row['AssetCode']}"].geometry
        lon, lat = TO_WGS84.transform(point.x, point.y)
        e, n = TO_BNG.transform(float(row["GeoX"]), float(row["GeoY"]))
        assert abs(point.x - e) < 1 and abs(point.y - n) < 1
        assert abs(lon - float(row["GeoX"])) < 1e-5 and abs(lat - float(row["GeoY"])) < 1e-5
        checked += 1
    assert checked == 372


def test_swapped_row_is_detected_and_placed_correctly(real_estate: RealEstate) -> None:
    row = next(r for r in _published() if r["AssetCode"] == SWAPPED)
    assert float(row["GeoX"]) > 50  # published latitude first: lon 53, lat -2 is off Somalia
    site = _trafford_sites(real_estate).loc[f"lgtc:trafford-council:{SWAPPED}"]
    e, n = TO_BNG.transform(float(row["GeoY"]), float(row["GeoX"]))  # swapped back by the test
    assert site.geometry.distance(shapely.Point(e, n)) < 1
    assert 370_000 < site.geometry.x < 380_000 and 390_000 < site.geometry.y < 400_000  # Trafford
    issues = real_estate.reports["trafford"].extra["coordinate_issues"]
    assert len(issues) == 1
    assert issues[0]["source_key"].endswith(SWAPPED)
    assert issues[0]["issue"] == "swapped" and issues[0]["row_number"] == 387
    assert "wrong way round" in issues[0]["problem"]


def test_every_located_asset_is_in_a_district(real_estate: RealEstate) -> None:
    sites = _trafford_sites(real_estate)
    located = sites[sites.geometry.notna()]
    assert len(located) == 395
    assert located["lad_code"].notna().all()  # none silently dropped
    assert int((located["lad_code"] == "E08000009").sum()) == 388
    outside = located[located["lad_code"] != "E08000009"]
    assert len(outside) == 7
    # Independent check: each of those 7 points really lies in the district it was given.
    boundaries = real_estate.estate.boundaries(kind="lad").set_index("code")
    for _, site in outside.iterrows():
        assert boundaries.loc[site["lad_code"]].geometry.intersects(site.geometry)
    assert sites.loc[sites.geometry.isna(), "lad_code"].isna().all()
    assert real_estate.reports["gm_lads"].extra["sites_outside"] == 0


def test_vacant_assets_and_tenure(real_estate: RealEstate) -> None:
    sites = _trafford_sites(real_estate)
    published = _published()
    vacant = {r["AssetCode"] for r in published if r["TenureDetail"] == "Vacant"}
    assert len(vacant) == 187
    flagged = {k.split(":", 2)[2] for k in sites.index[sites["occupancy"] == "vacant"]}
    assert flagged == vacant
    assert int(sites["uprn"].isna().sum()) == 336
    assert int(sites["gia_m2"].isna().sum()) == 445
    assert sites["land_ha"].isna().all()


def test_reload_changes_nothing(real_estate: RealEstate) -> None:
    again = real_estate.reports["trafford_again"]
    assert (again.rows_read, again.unchanged, again.inserted, again.updated) == (608, 608, 0, 0)


def test_unmatched_postcodes_listed(real_estate: RealEstate) -> None:
    from estates.ingest.queries import find_sites

    unlocated = find_sites(real_estate.estate, sector="council", unlocated=True)
    trafford = unlocated[unlocated["source_key"].str.startswith("lgtc:trafford-council:")]
    assert len(trafford) == 213
    reasons = trafford["unlocated_reason"].value_counts().to_dict()
    assert reasons["no postcode"] == 3
    assert sum(reasons.values()) == 213


def test_changed_register_updates_only_changed_assets(
    estate: estates.Estate, tmp_path: Path
) -> None:
    first = load_council(estate, shared_file(TRAFFORD))
    assert first.inserted == 608
    rows = _published()
    fields = list(rows[0])
    rows[0]["BuildingSize"] = "999.5"
    rows[1]["GeoX"] = str(float(rows[1]["GeoX"]) + 0.001)
    path = tmp_path / "trafford_v2.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fields)
        writer.writeheader()
        writer.writerows(rows)
    second = load_council(estate, path)
    assert (second.updated, second.unchanged, second.inserted) == (2, 606, 0)
    with estate.read() as c:
        changed = (
            c.execute(
                text(
                    "SELECT s.source_key FROM site_change c JOIN site s ON s.id = c.site_id "
                    "WHERE c.batch_id = :b AND c.action = 'update'"
                ),
                {"b": second.batch_id},
            )
            .scalars()
            .all()
        )
    assert sorted(changed) == sorted(
        f"lgtc:trafford-council:{rows[i]['AssetCode']}" for i in (0, 1)
    )


# --- variants: title lines, Windows-1252, BNG, other header names -----------------------


VARIANT = (
    "Example Borough Council - Land and Property Assets\r\n"
    "Published under the Local Government Transparency Code 2015\r\n"
    "\r\n"
    "Property Ref,Site Name,Address,Post Code,Unique Property Reference Number,Easting,Northing,"
    "Tenure,Occupancy Status,Gross Internal Area,Site Area (acres)\r\n"
    'EX1,Café on the Green,1 Green Lane,M41  5SL,100012345678,375482,395320,Freehold,Vacant,"1,250",2\r\n'
    "EX2,Depot,Works Road,M17 1EH,,53.4697,-2.3332,Freehold,Operational,,\r\n"
    "EX3,Pier,Sea Front,,,-2.3332,53.4697,Leasehold,Let out,100,\r\n"
    "EX4,Mystery,Nowhere,,,900000,9000000,Freehold,Other,,\r\n"
    "EX5,Bad size,Somewhere,,,375482,395320,Freehold,,lots,\r\n"
    "EX1,Duplicate,Again,,,375482,395320,Freehold,,,\r\n"
    "EX6,Extra field,Here,M41 5SL,,375482,395320,Freehold,,,,surprise\r\n"
)


def test_variant_register_with_title_lines_cp1252_and_bng(
    estate: estates.Estate, tmp_path: Path
) -> None:
    path = tmp_path / "example_assets.csv"
    path.write_bytes(VARIANT.encode("cp1252"))
    report = load_council(estate, path, organisation="Example Borough Council")
    assert report.extra["encoding"] == "cp1252"
    assert report.rows_read == 7
    assert report.rejected == 3  # bad number, duplicate asset, extra field
    assert report.inserted == 4
    assert report.rows_read == report.inserted + report.rejected
    sites = estate.sites().set_index("source_key")
    ex1 = sites.loc["lgtc:example-borough-council:EX1"]
    assert ex1["name"] == "Café on the Green"
    assert ex1["postcode"] == "M41 5SL"
    assert ex1["uprn"] == "100012345678"
    assert ex1["occupancy"] == "vacant"
    assert ex1["gia_m2"] == 1250
    assert ex1["land_ha"] == pytest.approx(2 * 0.40468564224)
    assert ex1.geometry.equals(shapely.Point(375482, 395320))
    # EX2: lat/long given under Easting/Northing, the wrong way round: used as lon/lat.
    ex2 = sites.loc["lgtc:example-borough-council:EX2"]
    e, n = TO_BNG.transform(-2.3332, 53.4697)
    assert ex2.geometry.distance(shapely.Point(e, n)) < 1
    assert ex2["occupancy"] == "occupied"
    # EX3: lon/lat under Easting/Northing, right order: used as WGS84.
    ex3 = sites.loc["lgtc:example-borough-council:EX3"]
    assert ex3.geometry.distance(shapely.Point(e, n)) < 1 and ex3["occupancy"] == "let"
    # EX4: outside Great Britain however read: not stored, reported, no postcode -> unlocated.
    ex4 = sites.loc["lgtc:example-borough-council:EX4"]
    assert ex4.geometry is None and ex4["located_by"] == "none"
    issues = {i["source_key"].rsplit(":", 1)[1]: i for i in report.extra["coordinate_issues"]}
    assert issues["EX4"]["issue"] == "outside_gb" and issues["EX4"]["action"] == "left unlocated"
    assert issues["EX2"]["issue"] == "lonlat_as_bng"
    assert issues["EX2"]["row_number"] == 6
    rejected = estate.rejected_rows(report.batch_id).set_index("row_number")
    assert (
        "not a number" in rejected.loc[9, "reason"]
        and rejected.loc[9, "column_name"] == "Gross Internal Area"
    )
    assert "repeats row 5" in rejected.loc[10, "reason"]
    assert "11 fields but the header has 11" not in rejected.loc[11, "reason"]
    assert "12 fields" in rejected.loc[11, "reason"]
    assert rejected.loc[10, "raw"]["Site Name"] == "Duplicate"


def test_coordinates_outside_gb_fall_back_to_the_postcode(
    estate: estates.Estate, tmp_path: Path
) -> None:
    load_postcodes(estate, real_lookup_subset(tmp_path, ["M32 0TH"]))
    path = tmp_path / "register.csv"
    path.write_text(
        "OrganisationLabel,AssetCode,PropertyName,PostCode,CoordinateReferenceSystem,GeoX,GeoY\n"
        "Trafford Council,T1,Town Hall,M32 0TH,WGS84,0,0\n"
        "Trafford Council,T2,Depot,M32  0TH,OSGB36,383000,398000\n"
        "Trafford Council,T3,Library,M32 0TH,WGS84,383000,398000\n",
        encoding="utf-8",
    )
    report = load_council(estate, path)
    sites = estate.sites().set_index("source_key")
    t1 = sites.loc["lgtc:trafford-council:T1"]
    assert t1["located_by"] == "postcode"
    issues = {i["source_key"].rsplit(":", 1)[1]: i for i in report.extra["coordinate_issues"]}
    assert issues["T1"]["action"] == "located by its postcode instead"
    assert sites.loc["lgtc:trafford-council:T2"].geometry.equals(shapely.Point(383000, 398000))
    assert sites.loc["lgtc:trafford-council:T3"].geometry.equals(shapely.Point(383000, 398000))
    assert issues["T3"]["issue"] == "bng_as_lonlat"
    assert "T2" not in issues


# --- profiles ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_profile_maps_an_unusual_layout(
    estate: estates.Estate, tmp_path: Path, suffix: str
) -> None:
    data = tmp_path / "odd.csv"
    data.write_text(
        "Council asset list\n"
        "Ref No,Building,PC,X (m),Y (m),State of use\n"
        "A-1,Old School,M41 5SL,375482,395320,Surplus - awaiting disposal\n"
        "A-2,Library,M41 5SL,375500,395300,In use\n",
        encoding="utf-8",
    )
    if suffix == ".toml":
        profile_text = (
            'organisation = "Oddshire Council"\n'
            'coordinates = "bng"\n'
            "header_row = 2\n"
            "[columns]\n"
            'asset_id = "Ref No"\nname = "Building"\npostcode = "PC"\nx = "X (m)"\ny = "Y (m)"\n'
            'tenure_detail = "State of use"\n'
            "[occupancy]\n"
            '"Surplus - awaiting disposal" = "vacant"\n'
        )
    else:
        profile_text = (
            "organisation: Oddshire Council\ncoordinates: bng\nheader_row: 2\n"
            "columns:\n  asset_id: Ref No\n  name: Building\n  postcode: PC\n"
            "  x: X (m)\n  y: Y (m)\n  tenure_detail: State of use\n"
            "occupancy:\n  Surplus - awaiting disposal: vacant\n"
        )
    profile = tmp_path / f"oddshire{suffix}"
    profile.write_text(profile_text, encoding="utf-8")
    report = load_council(estate, data, profile=profile)
    assert (report.inserted, report.rejected, report.located) == (2, 0, 2)
    sites = estate.sites().set_index("source_key")
    school = sites.loc["lgtc:oddshire-council:A-1"]
    assert school["occupancy"] == "vacant" and school["name"] == "Old School"
    assert school.geometry.equals(shapely.Point(375482, 395320))
    assert sites.loc["lgtc:oddshire-council:A-2", "occupancy"] == "occupied"


def test_profile_errors_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('organisaton = "typo"\n', encoding="utf-8")
    with pytest.raises(estates.ConfigurationError, match="organisaton"):
        load_profile(bad)
    bad.write_text('[columns]\nasset = "Ref"\n', encoding="utf-8")
    with pytest.raises(estates.ConfigurationError, match="asset"):
        load_profile(bad)


def test_profile_column_missing_from_file(estate: estates.Estate, tmp_path: Path) -> None:
    data = tmp_path / "r.csv"
    data.write_text("AssetCode,PropertyName\nA,B\n", encoding="utf-8")
    profile = tmp_path / "p.toml"
    profile.write_text('organisation = "X"\n[columns]\npostcode = "Post Code"\n', encoding="utf-8")
    with pytest.raises(estates.MissingColumnError, match="Post Code"):
        load_council(estate, data, profile=profile)


def test_occupancy_words() -> None:
    import pandas as pd

    words = normalise_occupancy(
        pd.Series(
            [
                "Vacant",
                "Owner Occupied",
                "Leasehold out",
                "Leasehold In",
                "Vacant land",
                None,
                "Let to tenant",
                "Odd",
            ]
        )
    ).tolist()
    assert words == ["vacant", "occupied", "let", "occupied", "vacant", None, "let", "other"]
    assert np.array_equal(
        normalise_occupancy(pd.Series(["Awaiting disposal"]), {"awaiting disposal": "vacant"}),
        ["vacant"],
    )


# --- several registers in one call ------------------------------------------------------


def _trafford_v2(folder: Path) -> Path:
    """The real register with one building size changed and one asset moved."""
    rows = _published()
    rows[0]["BuildingSize"] = "999.5"
    rows[1]["GeoX"] = str(float(rows[1]["GeoX"]) + 0.001)
    path = folder / "trafford_v2.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _content(estate: estates.Estate) -> dict[str, object]:
    """Every table's rows and checksum, load batches (and the GeoPackage's table list)
    without their clock times."""
    content: dict[str, object] = dict(snapshot(estate))
    del content["load_batch"]
    with estate.read() as c:
        if content.pop("gpkg_contents", None):
            content["gpkg_contents"] = sorted(
                tuple(r)
                for r in c.execute(
                    text(
                        "SELECT table_name, data_type, identifier, min_x, min_y, max_x, max_y, "
                        "srs_id FROM gpkg_contents"
                    )
                )
            )
        content["load_batch"] = [
            tuple(r)
            for r in c.execute(
                text(
                    "SELECT id, loader, file_name, file_sha256, options, status, rows_read, "
                    "inserted, updated, unchanged, rejected, located, unlocated, non_geographic "
                    "FROM load_batch ORDER BY id"
                )
            )
        ]
    return content


def _without_time(report: LoadReport) -> dict[str, object]:
    return {k: v for k, v in report.as_dict().items() if k != "elapsed_s"}


def test_several_registers_load_as_one_by_one(
    estate: estates.Estate,
    twin_estate: estates.Estate,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    unlocated = [r["PostCode"] for r in _published() if not r["GeoX"]]
    lookup = real_lookup_subset(tmp_path, ["M41 5SL", "M17 1EH", *unlocated])
    variant = tmp_path / "example_assets.csv"
    variant.write_bytes(VARIANT.encode("cp1252"))
    paths = [shared_file(TRAFFORD), variant, _trafford_v2(tmp_path)]
    organisations = [None, "Example Borough Council", None]
    one_by_one = []
    for e in (estate, twin_estate):
        load_postcodes(e, lookup)
    for path, organisation in zip(paths, organisations, strict=True):
        one_by_one.append(load_council(estate, path, organisation=organisation))
    with caplog.at_level(logging.INFO, logger="estates"):
        together = load_councils(twin_estate, paths, organisations=organisations)
    assert [_without_time(r) for r in together] == [_without_time(r) for r in one_by_one]
    assert [(r.inserted, r.updated, r.unchanged) for r in together] == [
        (608, 0, 0),
        (4, 0, 0),
        (0, 2, 606),
    ]
    assert _content(twin_estate) == _content(estate)
    assert twin_estate.sites().equals(estate.sites())  # same ids, same values, same order
    # The variant was parsed in the worker; its log record reached this process's logger.
    decoded = [r for r in caplog.records if "reading it as Windows-1252" in r.getMessage()]
    assert [r.processName != "MainProcess" for r in decoded] == [True]
    assert str(variant) in decoded[0].getMessage()
    assert multiprocessing.active_children() == []


def test_a_bad_register_stops_the_load_there(
    estate: estates.Estate, twin_estate: estates.Estate, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"AssetCode,PropertyName\nA1,Caf\x81\x8d\n")  # not text in any encoding
    later = tmp_path / "later.csv"
    later.write_bytes(VARIANT.encode("cp1252"))
    with pytest.raises(
        estates.InvalidSourceError, match=f"{re.escape(str(broken))}: cannot decode"
    ):
        load_councils(
            estate,
            [shared_file(TRAFFORD), broken, later],
            organisations=[None, None, "Example Borough Council"],
        )
    assert multiprocessing.active_children() == []  # the worker is gone
    # The file before it is loaded; nothing of the bad file or the one after it.
    load_council(twin_estate, shared_file(TRAFFORD))
    assert _content(estate) == _content(twin_estate)
    assert estate.batches()["file_name"].tolist() == [str(shared_file(TRAFFORD))]


def test_a_bad_first_register_loads_nothing(estate: estates.Estate, tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    before = snapshot(estate)
    with pytest.raises(
        estates.InvalidSourceError, match=f"{re.escape(str(missing))}: no such file"
    ):
        load_councils(estate, [missing, shared_file(TRAFFORD)])
    assert snapshot(estate) == before
    assert multiprocessing.active_children() == []


def test_one_register_starts_no_worker(
    estate: estates.Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_worker(*args: object, **kwargs: object) -> None:
        raise AssertionError("a worker was started for one file")

    monkeypatch.setattr(sources, "ProcessPoolExecutor", no_worker)
    (report,) = load_councils(estate, [shared_file(TRAFFORD)])
    assert report.inserted == 608
    assert load_councils(estate, []) == []


def test_organisations_one_per_path(estate: estates.Estate) -> None:
    path = shared_file(TRAFFORD)
    with pytest.raises(estates.ConfigurationError, match="not both"):
        load_councils(estate, [path, path], organisation="A", organisations=["A", "B"])
    with pytest.raises(estates.ConfigurationError, match="2 paths but 1 names"):
        load_councils(estate, [path, path], organisations=["A"])
    with pytest.raises(estates.ConfigurationError, match="2 paths but a string"):
        load_councils(estate, [path, path], organisations="AB")
    assert estate.batches().empty
