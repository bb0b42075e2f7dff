"""Cell parsing, header matching, coordinate conventions and CSV reading, without a database."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer

import estates
from estates.ingest import _parse, _read, coordinates

TO_BNG = Transformer.from_crs(4326, 27700, always_xy=True)


def test_numbers_as_published() -> None:
    cells = pd.Series(
        [
            "292,119",
            "Not Applicable",
            "",
            "12.5%",
            "£1,234.50",
            "(1,000)",
            "abc",
            "7 m²",
            " 42 ",
            "n/a",
            "1,5",
        ]
    )
    values, bad = _parse.parse_numbers(cells)
    expected = [292119, np.nan, np.nan, 12.5, 1234.5, -1000, np.nan, 7, 42, np.nan, np.nan]
    assert np.allclose(values, expected, equal_nan=True)
    assert bad.tolist() == [
        False,
        False,
        False,
        False,
        False,
        False,
        True,
        False,
        False,
        False,
        True,
    ]


def test_postcodes_normalised() -> None:
    cells = pd.Series(["M6   8HD", "m31", " wa14 1 ", "", None, "WN6  9EP", "EC1A1BB", "sw1a 2aa"])
    assert _parse.normalise_postcodes(cells).tolist() == [
        "M6 8HD",
        "M31",
        "WA14 1",
        None,
        None,
        "WN6 9EP",
        "EC1A 1BB",
        "SW1A 2AA",
    ]
    assert _parse.is_full_postcode(cells).tolist() == [
        True,
        False,
        False,
        False,
        False,
        True,
        True,
        True,
    ]


def test_header_synonyms_ignore_case_spacing_and_units() -> None:
    found = _parse.match_columns(
        ["Post Code", "GeoX", "Unique Property Reference Number", "Site Area (acres)"],
        {
            "postcode": ["PostCode"],
            "uprn": ["UPRN", "Unique Property Reference Number"],
            "land": ["Site Area"],
            "x": ["GeoX"],
        },
    )
    assert found == {
        "postcode": "Post Code",
        "uprn": "Unique Property Reference Number",
        "land": "Site Area (acres)",
        "x": "GeoX",
    }


def test_text_cleaning_and_slugs() -> None:
    assert _parse.clean_text(pd.Series([" a ", "", "Not Applicable", None, 3])).tolist() == [
        "a",
        None,
        None,
        None,
        "3",
    ]
    assert _parse.slug("Trafford Council") == "trafford-council"
    assert _parse.slug("St. Helens (MBC)") == "st-helens-mbc"
    joined = _parse.join_text(
        [pd.Series(["105", None, ""]), pd.Series(["Road", "Street", None])], " "
    )
    assert joined.tolist() == ["105 Road", "Street", None]


def _bng(lon: float, lat: float) -> tuple[float, float]:
    return TO_BNG.transform(lon, lat)


def test_coordinate_conventions() -> None:
    e, n = _bng(-2.365856, 53.457484)
    x = np.array([-2.365856, 53.457484, e, 375_000.0, -2.365856, 53.457484, 0.0, np.nan, 1.2])
    y = np.array([53.457484, -2.365856, n, 395_000.0, 53.457484, -2.365856, 0.0, 53.4, 52.6])
    declared = np.array(
        ["lonlat", "lonlat", "lonlat", "bng", "bng", "unknown", "lonlat", "lonlat", "unknown"],
        dtype=object,
    )
    result = coordinates.check_coordinates(x, y, declared)
    assert result.status.tolist() == [
        "ok",
        "swapped",
        "bng_as_lonlat",
        "ok",
        "lonlat_as_bng",
        "swapped",
        "outside_gb",
        "missing",
        "ok",
    ]
    assert abs(result.easting[0] - e) < 1e-6 and abs(result.easting[1] - e) < 1e-6
    assert abs(result.northing[4] - n) < 1e-6 and abs(result.northing[5] - n) < 1e-6
    assert np.isnan(result.easting[6]) and np.isnan(result.easting[7])
    east_anglia = _bng(1.2, 52.6)  # a lon/lat pair that also looks like tiny grid metres
    assert abs(result.easting[8] - east_anglia[0]) < 1e-6


def test_declared_convention_from_crs_labels() -> None:
    labels = pd.Series(
        ["WGS84", "OSGB36", "EPSG:27700", "British National Grid", "", None, "ETRS89"]
    )
    assert coordinates.declared_convention(labels).tolist() == [
        "lonlat",
        "bng",
        "bng",
        "bng",
        "unknown",
        "unknown",
        "lonlat",
    ]
    assert coordinates.other_crs("EPSG:3857") is not None
    assert coordinates.other_crs("EPSG:27700") is None
    assert coordinates.other_crs("not a crs") is None


def test_pairs_not_numeric_or_partial() -> None:
    frame = pd.DataFrame({"x": ["abc", "-2.3", "", "383000"], "y": ["53.4", "", "", "398000"]})
    result, used = coordinates.resolve_pairs(frame, [coordinates.Pair("x", "y", "unknown")])
    assert result.status.tolist() == ["not_numeric", "partial", "missing", "ok"]
    assert used.tolist() == [0, 0, -1, 0]
    assert result.located.tolist() == [False, False, False, True]


def test_csv_reading_title_lines_bom_and_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(
        "\ufeffMy Council assets\r\nas at 31 March\r\n\r\nAssetCode,Name,Notes\r\n"
        'A1,Hall,"two\r\nlines"\r\nA2,Depot,\r\n,,\r\nA3,Yard,x\r\n'.encode()
    )
    table = _read.read_csv_table(
        path, what="test", score=lambda f: sum(h in ("AssetCode", "Name") for h in f)
    )
    assert table.encoding == "utf-8-sig"
    assert table.header == ["AssetCode", "Name", "Notes"]
    assert table.header_row == 4
    assert table.frame["AssetCode"].tolist() == ["A1", "A2", "A3"]
    assert table.row_numbers.tolist() == [5, 7, 9]  # A1's quoted value spans two lines
    assert table.blank_rows == 1


def test_encodings(tmp_path: Path) -> None:
    cp1252 = tmp_path / "w.csv"
    cp1252.write_bytes("Name\nCafé – ‘quoted’\n".encode("cp1252"))
    assert _read.detect_encoding(cp1252) == "cp1252"
    utf16 = tmp_path / "u.csv"
    utf16.write_bytes("Name\nCafé\n".encode("utf-16"))
    assert _read.detect_encoding(utf16) == "utf-16"
    broken = tmp_path / "b.csv"
    broken.write_bytes(b"Name\nok\n\x81\x8d\n")
    with pytest.raises(estates.InvalidSourceError, match="line 3"):
        _read.detect_encoding(broken)
    with pytest.raises(estates.InvalidSourceError, match="not valid ascii"):
        _read.detect_encoding(cp1252, "ascii")


def test_sniffing(tmp_path: Path) -> None:
    cases = {
        "a.csv": b"a,b\n1,2\n",
        "a.geojson": b'{"type": "FeatureCollection", "features": []}',
        "a.json": b'{"type":"Topology","objects":{}}',
        "a.gpkg": b"SQLite format 3\x00" + bytes(100),
        "a.xlsx": b"PK\x03\x04" + bytes(100),
        "a.zip": b"PK\x03\x04" + bytes(100),
        "a.png": b"\x89PNG\r\n\x1a\n" + bytes(100),
    }
    kinds = {}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        kinds[name] = _read.sniff(tmp_path / name)
    assert kinds == {
        "a.csv": "csv",
        "a.geojson": "geojson",
        "a.json": "topojson",
        "a.gpkg": "gpkg",
        "a.xlsx": "xlsx",
        "a.zip": "zip",
        "a.png": "binary",
    }
    with pytest.raises(estates.InvalidSourceError, match="no such file"):
        _read.sniff(tmp_path / "missing.csv")
