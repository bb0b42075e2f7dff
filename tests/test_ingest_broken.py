"""Files that cannot be read leave the database exactly as it was, with one clear message.

Each broken file is written by the test; before and after each failed load the test
compares the row count and a content checksum of every table (ours, the GeoPackage
catalog and R-trees, or PostGIS's).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import estates
from estates.ingest import (
    build_icb_footprints,
    load_boundaries,
    load_council,
    load_eric,
    load_points,
    load_postcodes,
)
from tests.conftest import shared_file
from tests.ingest_data import ERIC, GM_LADS, TRAFFORD, real_lookup_subset, snapshot

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    return buffer.getvalue()


@pytest.fixture
def loaded(estate: estates.Estate, tmp_path_factory: pytest.TempPathFactory) -> estates.Estate:
    """An estate with something in every table: postcodes, ERIC, Trafford, districts."""
    folder = tmp_path_factory.mktemp("lookup")
    load_postcodes(estate, real_lookup_subset(folder, ["M13 9WL", "M32 0TH", "M41 5SL"]))
    load_eric(estate, shared_file(ERIC))
    load_council(estate, shared_file(TRAFFORD))
    load_boundaries(estate, shared_file(GM_LADS), kind="lad")
    return estate


def _eric_text(rows: int = 5) -> tuple[list[str], str]:
    with open(shared_file(ERIC), encoding="utf-8", newline="") as handle:
        lines = handle.readlines()
    return lines[0].rstrip("\r\n").split(","), "".join(lines[: rows + 1])


def _expect_atomic(
    estate: estates.Estate,
    load: Callable[[], Any],
    path: Path,
    error: type[Exception],
    *words: str,
) -> str:
    before = snapshot(estate)
    with pytest.raises(error) as caught:
        load()
    message = str(caught.value)
    assert str(path) in message, message
    for word in words:
        assert word.lower() in message.lower(), message
    assert "\n" not in message
    assert snapshot(estate) == before, f"database changed after: {message}"
    return message


def test_broken_eric_files(loaded: estates.Estate, tmp_path: Path) -> None:
    header, good = _eric_text()
    cases: list[tuple[str, bytes, type[Exception], tuple[str, ...]]] = [
        ("ERIC_201920_picture.csv", PNG, estates.InvalidSourceError, ("binary file",)),
        ("ERIC_201920_book.xlsx", _zip_bytes(), estates.InvalidSourceError, ("workbook", "CSV")),
        ("ERIC_201920_empty.csv", b"", estates.InvalidSourceError, ("empty",)),
        (
            "ERIC_201920_other.csv",
            b"Region,Count\nNorth,3\n",
            estates.InvalidSourceError,
            ("no header row", "Site Code"),
        ),
        (
            "ERIC_201920_cut.csv",
            (good + "R0A,MANCHESTER UNIVERSITY NHS FOUNDATION TRUST,NORTH WE").encode(),
            estates.InvalidSourceError,
            ("truncated", "row 7"),
        ),
        (
            "ERIC_201920_cut_in_quote.csv",
            (
                good + 'R0A,MANCHESTER,NORTH WEST,ACUTE,R0AXX,NEW SITE,1. General,,,M1 1AA,"8,524'
            ).encode(),
            estates.InvalidSourceError,
            ("truncated", "quote"),
        ),
        (
            "ERIC_201920_bytes.csv",
            good.encode() + b"R0A,BAD \x81\x8d\x90 BYTES\n",
            estates.InvalidSourceError,
            ("cannot decode", "line 7"),
        ),
    ]
    missing_header = [h for h in header if h != "Floor area - empty (%)"]
    body = good.split("\n", 1)[1]
    missing_rows = [
        [c for h, c in zip(header, row, strict=True) if h != "Floor area - empty (%)"]
        for row in csv.reader(io.StringIO(body))
    ]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(missing_header)
    writer.writerows(missing_rows)
    cases.append(
        (
            "ERIC_201920_missing.csv",
            out.getvalue().encode(),
            estates.UnknownLayoutError,
            ("Floor area - empty (%)", "expected columns not found"),
        )
    )
    for name, content, error, words in cases:
        path = tmp_path / name
        path.write_bytes(content)
        _expect_atomic(loaded, lambda p=path: load_eric(loaded, p), path, error, *words)
    good_path = tmp_path / "eric.csv"
    good_path.write_text(good, encoding="utf-8")
    _expect_atomic(
        loaded,
        lambda: load_eric(loaded, good_path),
        good_path,
        estates.UnknownLayoutError,
        "--period",
    )
    with pytest.raises(estates.ConfigurationError, match="2030/31"):
        load_eric(loaded, good_path, period="2030/31")


def test_broken_council_files(loaded: estates.Estate, tmp_path: Path) -> None:
    published = shared_file(TRAFFORD).read_bytes()
    cut = published[: published.index(b"\n", 5000) + 60]  # stops part-way through a row
    libraries = shared_file("trafford_council_assets/trafford_libraries.geojson").read_bytes()
    cases: list[tuple[str, bytes, type[Exception], tuple[str, ...], dict[str, Any]]] = [
        ("assets.csv", libraries, estates.InvalidSourceError, ("GeoJSON", "not the CSV"), {}),
        ("assets_cut.csv", cut, estates.InvalidSourceError, ("truncated",), {}),
        (
            "assets_noid.csv",
            b"PropertyName,PostCode,GeoX,GeoY\nHall,M1 1AA,-2.2,53.4\n",
            estates.MissingColumnError,
            ("identifies the assets", "UPRN", "profile"),
            {"organisation": "X"},
        ),
        (
            "assets_noorg.csv",
            b"AssetCode,PropertyName,PostCode\nA1,Hall,M1 1AA\n",
            estates.MissingColumnError,
            ("--organisation",),
            {},
        ),
        (
            "assets_bytes.csv",
            b"AssetCode,PropertyName\nA1,Caf\x81\x8d\n",
            estates.InvalidSourceError,
            ("cannot decode", "line 2"),
            {"organisation": "X"},
        ),
    ]
    for name, content, error, words, options in cases:
        path = tmp_path / name
        path.write_bytes(content)
        _expect_atomic(
            loaded, lambda p=path, o=options: load_council(loaded, p, **o), path, error, *words
        )
    profile = tmp_path / "profile.toml"
    profile.write_text('[columns]\nasset_id = "Ref"\nnaem = "Name"\n', encoding="utf-8")
    before = snapshot(loaded)
    with pytest.raises(estates.ConfigurationError, match="naem"):
        load_council(loaded, shared_file(TRAFFORD), profile=profile)
    assert snapshot(loaded) == before


def test_broken_points_postcodes_and_boundaries(loaded: estates.Estate, tmp_path: Path) -> None:
    libraries = shared_file("trafford_council_assets/trafford_libraries.geojson").read_text(
        encoding="utf-8"
    )
    geojson_cut = tmp_path / "libraries_cut.geojson"
    geojson_cut.write_text(libraries[: len(libraries) // 2], encoding="utf-8")
    _expect_atomic(
        loaded,
        lambda: load_points(loaded, geojson_cut, organisation="T", sector="council"),
        geojson_cut,
        estates.InvalidSourceError,
        "cannot be read",
    )
    book = tmp_path / "sites.xlsx"
    book.write_bytes(_zip_bytes())
    _expect_atomic(
        loaded,
        lambda: load_points(loaded, book, organisation="T", sector="council"),
        book,
        estates.InvalidSourceError,
        "workbook",
    )
    no_coords = tmp_path / "lookup.csv"
    no_coords.write_text("postcode,ward\nM1 1AA,X\n", encoding="utf-8")
    _expect_atomic(
        loaded,
        lambda: load_postcodes(loaded, no_coords),
        no_coords,
        estates.MissingColumnError,
        "not a postcode lookup",
    )
    lookup_cut = tmp_path / "lookup_cut.csv"
    lookup_cut.write_text(
        "postcode,latitude,longitude\nM1 1AA,53.47,-2.24\nM1 1AB,53.4", encoding="utf-8"
    )
    _expect_atomic(
        loaded,
        lambda: load_postcodes(loaded, lookup_cut),
        lookup_cut,
        estates.InvalidSourceError,
        "truncated",
    )
    topo = shared_file("boundaries_england/topo_lad.json").read_text(encoding="utf-8")
    topo_cut = tmp_path / "topo_cut.json"
    topo_cut.write_text(topo[: len(topo) // 3], encoding="utf-8")
    _expect_atomic(
        loaded,
        lambda: load_boundaries(loaded, topo_cut, kind="lad"),
        topo_cut,
        estates.InvalidSourceError,
        "cannot be read",
    )
    table = tmp_path / "districts.csv"
    table.write_text("code,name\nE1,A\n", encoding="utf-8")
    _expect_atomic(
        loaded,
        lambda: load_boundaries(loaded, table, kind="lad"),
        table,
        estates.InvalidSourceError,
        "CSV",
    )
    lookup = tmp_path / "icb_lookup.csv"
    lookup.write_text("district,icb\nE08000009,E54000057\n", encoding="utf-8")
    _expect_atomic(
        loaded,
        lambda: build_icb_footprints(loaded, lookup),
        lookup,
        estates.MissingColumnError,
        "lad code",
    )


def test_bad_rows_in_a_good_file_are_kept_not_dropped(
    estate: estates.Estate, tmp_path: Path
) -> None:
    path = tmp_path / "register.csv"
    path.write_text(
        "OrganisationLabel,AssetCode,PropertyName,PostCode,BuildingSize,GeoX,GeoY\n"
        "Testshire Council,A1,Hall,M1 1AA,100,-2.24,53.47\n"
        "Testshire Council,,No code,M1 1AA,,,\n"
        "Testshire Council,A3,Odd size,M1 1AA,big,,\n"
        "Testshire Council,A4,Too many,M1 1AA,1,2,3,4\n"
        "Testshire Council,A5,Too few\n"
        "Testshire Council,A1,Again,M1 1AA,,,\n",
        encoding="utf-8",
    )
    report = load_council(estate, path)
    assert report.rows_read == 6
    assert (report.inserted, report.rejected) == (1, 5)
    assert report.rows_read == report.inserted + report.updated + report.unchanged + report.rejected
    rejected = estate.rejected_rows(report.batch_id).set_index("row_number")
    assert sorted(rejected.index) == [3, 4, 5, 6, 7]
    assert "no AssetCode or UPRN" in rejected.loc[3, "reason"]
    assert (
        "'big' is not a number" in rejected.loc[4, "reason"]
        and rejected.loc[4, "column_name"] == "BuildingSize"
    )
    assert "8 fields but the header has 7" in rejected.loc[5, "reason"]
    assert "3 fields but the header has 7" in rejected.loc[6, "reason"]
    assert "repeats row 2" in rejected.loc[7, "reason"]
    assert rejected.loc[7, "raw"]["PropertyName"] == "Again"
    with estate.read() as c:
        from sqlalchemy import text

        stored = c.execute(
            text("SELECT rejected FROM load_batch WHERE id = :b"), {"b": report.batch_id}
        ).scalar_one()
    assert stored == 5
    assert json.dumps(report.as_dict())  # serialisable for --json
