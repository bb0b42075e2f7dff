"""Postcode lookups: the Greater Manchester file, ONSPD and Code-Point Open layouts, relocation."""

# The session fixture `real_estate` is imported from tests.ingest_data; its use as a
# test parameter is what pytest expects, not a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import pytest
import shapely
from pyproj import Transformer
from sqlalchemy import text

import estates
from estates.ingest import load_boundaries, load_eric, load_postcodes
from estates.ingest.postcodes import parse_postcode_file
from tests.conftest import shared_file
from tests.ingest_data import ERIC, GM_LADS, GM_POSTCODES, GM_TRUSTS, RealEstate, real_estate  # noqa: F401

TO_BNG = Transformer.from_crs(4326, 27700, always_xy=True)


def _gm_lookup() -> dict[str, tuple[float, float]]:
    with open(shared_file(GM_POSTCODES), encoding="utf-8", newline="") as handle:
        return {
            r["postcode"]: (float(r["longitude"]), float(r["latitude"]))
            for r in csv.DictReader(handle)
        }


def test_greater_manchester_lookup(real_estate: RealEstate) -> None:
    report = real_estate.reports["postcodes"]
    assert (report.rows_read, report.inserted, report.rejected) == (112_847, 112_847, 0)
    assert report.extra["layout"] == "generic"
    # Loaded before any site: it located nothing yet; the ERIC load located from it.
    assert report.extra["sites_located"] == 0
    assert real_estate.reports["eric"].extra["located_from_postcode"] >= 41
    with real_estate.estate.read() as c:
        row = c.execute(
            text("SELECT easting, northing FROM postcode WHERE postcode = 'M13 9WL'")
        ).one()
    lon, lat = _gm_lookup()["M13 9WL"]
    e, n = TO_BNG.transform(lon, lat)
    assert abs(row[0] - e) < 0.01 and abs(row[1] - n) < 0.01


def test_same_lookup_twice_changes_nothing(estate: estates.Estate, tmp_path: Path) -> None:
    subset = tmp_path / "gm_subset.csv"
    with open(shared_file(GM_POSTCODES), encoding="utf-8", newline="") as src:
        lines = src.readlines()
    subset.write_text("".join(lines[:2001]), encoding="utf-8")
    first = load_postcodes(estate, subset)
    second = load_postcodes(estate, subset)
    assert (first.inserted, second.unchanged, second.inserted, second.updated) == (2000, 2000, 0, 0)


def test_lookup_loaded_later_locates_earlier_sites(estate: estates.Estate, tmp_path: Path) -> None:
    eric = load_eric(estate, shared_file(ERIC))
    load_boundaries(estate, shared_file(GM_LADS), kind="lad")
    assert eric.located == 0
    sites = estate.sites()
    gm = sites[sites["organisation_code"].isin(GM_TRUSTS) & ~sites["non_geographic"]]
    wanted = set(gm["postcode"].dropna())
    lookup = _gm_lookup()
    subset = tmp_path / "gm_trust_postcodes.csv"
    with open(subset, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "postcode", "latitude", "longitude"])
        for n, code in enumerate(sorted(wanted & set(lookup)), start=1):
            writer.writerow([n, code, lookup[code][1], lookup[code][0]])
    report = load_postcodes(estate, subset)
    expected = sites[~sites["non_geographic"] & sites["postcode"].isin(wanted & set(lookup))]
    assert report.extra["sites_located"] == len(expected)
    after = estate.sites().set_index("source_key")
    gm_after = after.loc[gm["source_key"]]
    assert int(gm_after.geometry.notna().sum()) == 41
    assert gm_after.loc[gm_after.geometry.isna(), "name"].tolist() == ["WRIGHTINGTON HOSPITAL"]
    # Newly located sites got their district too.
    assert gm_after.loc[gm_after.geometry.notna(), "lad_code"].notna().all()
    with estate.read() as c:
        changed = c.execute(
            text("SELECT count(*) FROM site_change WHERE batch_id = :b AND action = 'update'"),
            {"b": report.batch_id},
        ).scalar_one()
    assert changed == len(expected)


ONSPD_HEADER = (
    "pcd,pcd2,pcds,dointr,doterm,oscty,ced,oslaua,osward,parish,usertype,oseast1m,osnrth1m,"
    "osgrdind,oshlthau,nhser,ctry,rgn,streg,pcon,eer,teclec,ttwa,pct,itl,statsward,oa01,casward,"
    "npark,lsoa01,msoa01,ur01ind,oac01,oa11,lsoa11,msoa11,wz11,sicbl,bua24,ru11ind,oac11,lat,long,"
    "lep1,lep2,pfa,imd,calncv,icb,oa21,lsoa21,msoa21"
)


def _onspd_row(
    pcd: str, pcds: str, e: str, n: str, grid: str, lat: str, lon: str, doterm: str = ""
) -> str:
    cells = dict.fromkeys(ONSPD_HEADER.split(","), "")
    cells.update(
        pcd=pcd,
        pcd2=pcd,
        pcds=pcds,
        dointr="198001",
        doterm=doterm,
        oseast1m=e,
        osnrth1m=n,
        osgrdind=grid,
        lat=lat,
        long=lon,
        oslaua="E08000009",
    )
    return ",".join(cells.values())


def test_onspd_layout(estate: estates.Estate, tmp_path: Path) -> None:
    path = tmp_path / "ONSPD_NOV_2024_UK.csv"
    path.write_text(
        "\n".join(
            [
                ONSPD_HEADER,
                _onspd_row("M32 0TH", "M32 0TH", "379532", "395478", "1", "53.445997", "-2.309013"),
                _onspd_row(
                    "M1  1AA", "M1 1AA", "384500", "398100", "1", "53.47", "-2.24", doterm="200012"
                ),
                _onspd_row("GY1 1AA", "GY1 1AA", "", "", "9", "99.999999", "0.000000"),
                _onspd_row("BT1 1AA", "BT1 1AA", "333910", "374250", "1", "54.599546", "-5.926979"),
                _onspd_row("M32 0TH", "M32 0TH", "1", "1", "1", "53.0", "-2.0"),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    report = load_postcodes(estate, path)
    assert report.extra["layout"] == "onspd"
    assert (report.rows_read, report.inserted, report.rejected) == (5, 3, 2)
    reasons = estate.rejected_rows(report.batch_id).set_index("row_number")["reason"]
    assert "no usable coordinates" in reasons[4]
    assert "repeats row 2" in reasons[6]
    with estate.read() as c:
        rows = dict(
            (p, (e, n))
            for p, e, n in c.execute(text("SELECT postcode, easting, northing FROM postcode"))
        )
    assert rows["M32 0TH"] == (379532, 395478)
    assert rows["M1 1AA"] == (384500, 398100)  # terminated postcodes are kept
    # Northern Ireland: ONSPD's grid reference there is Irish Grid; latitude/longitude used.
    e, n = TO_BNG.transform(-5.926979, 54.599546)
    assert rows["BT1 1AA"] == pytest.approx((e, n))


def test_code_point_open_csv_and_zip(estate: estates.Estate, tmp_path: Path) -> None:
    content = (
        '"M1  1AE",10,384500,398100,"E92000001","E19000001","E18000002","","E08000003","E05011368"\n'
        '"M1  1AF",10,384600,398200,"E92000001","E19000001","E18000002","","E08000003","E05011368"\n'
        '"M1  1AG",90,0,0,"E92000001","E19000001","E18000002","","E08000003","E05011368"\n'
    )
    csv_path = tmp_path / "m.csv"
    csv_path.write_text(content, encoding="utf-8")
    parsed = parse_postcode_file(csv_path)
    assert parsed.kind == "codepoint" and parsed.frame["postcode"].tolist() == ["M1 1AE", "M1 1AF"]
    assert parsed.rejected[0]["row_number"] == 3
    archive = tmp_path / "codepo_gb.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("Data/CSV/m.csv", content)
        z.writestr("Data/CSV/ol.csv", content.replace("M1  1A", "OL1 1A"))
        z.writestr("Doc/Code-Point_Open_Column_Headers.csv", "PC,PQ,EA,NO\n")
    report = load_postcodes(estate, archive)
    assert (report.rows_read, report.inserted, report.rejected) == (6, 4, 2)


def test_newer_lookup_moves_sites_located_by_postcode(
    estate: estates.Estate, tmp_path: Path
) -> None:
    v1 = tmp_path / "v1.csv"
    v1.write_text(
        "postcode,easting,northing\nM32 0TH,379532,395478\nM1 1AA,384500,398100\n", encoding="utf-8"
    )
    load_postcodes(estate, v1)
    sites = tmp_path / "offices.csv"
    sites.write_text("name,postcode\nTown Hall,M32 0TH\nOther,M1 1AA\n", encoding="utf-8")
    from estates.ingest import load_points

    load_points(estate, sites, organisation="Trafford Council", sector="council")
    v2 = tmp_path / "v2.csv"
    v2.write_text(
        "postcode,easting,northing\nM32 0TH,379600,395500\nM1 1AA,384500,398100\n", encoding="utf-8"
    )
    report = load_postcodes(estate, v2)
    assert (report.updated, report.unchanged) == (1, 1)
    assert report.extra["sites_moved"] == 1
    town_hall = estate.sites().set_index("name").loc["Town Hall"]
    assert town_hall.geometry.equals(shapely.Point(379600, 395500))
