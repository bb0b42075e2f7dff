"""Bad input corpus: every loader, every kind of broken file, through the real CLI.

One table (:data:`CASES`) of files the tests write, mostly by editing a few rows of the
real published files in ``../shared/data``. Each case declares its outcome:

- ``fails``: the whole file is refused: exit status 1, exactly one line on stderr that
  names the file and says what is wrong (and no traceback), nothing on stdout, and every
  table of the database (ours, the GeoPackage catalog and R-trees, or PostGIS's) has the
  same rows and content checksum as before (:func:`tests.ingest_data.snapshot`).
- ``rejects``: the file loads, the named rows are kept as rejected rows with a reason
  containing the given word, the good rows load, and
  ``rows_read == inserted + updated + unchanged + rejected``.
- ``reports``: rows whose problem the loader can work around by design (DESIGN.md: a
  swapped or mislabelled pair is fixed, a pair outside Great Britain is not used and the
  site is located by its postcode, an unknown postcode leaves the site unlocated, never
  dropped) load, and the report names each such row with what was done. The case's
  ``check`` asserts exactly that.

Every case runs on the GeoPackage; the cases marked ``postgis`` also run on PostGIS.
:func:`test_corpus_summary` prints the numbers (run with ``-s`` to see them).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pytest
import shapely
from click.testing import CliRunner
from pyproj import Transformer

import estates
from estates.cli import main
from estates.ingest import _read
from tests import pg_cluster
from tests.conftest import ROOT, shared_file
from tests.ingest_data import ERIC, GM_LADS, GM_POSTCODES, TRAFFORD, real_lookup_subset, snapshot

FAILS, REJECTS, REPORTS = "fails", "rejects", "reports"
GP = "nhs_tu_asset_mapping/gp_practices_geo.csv"
LIBRARIES = "trafford_council_assets/trafford_libraries.geojson"
ERIC_FILE = "ERIC_201920_SiteData_case.csv"
TO_BNG = Transformer.from_crs(4326, 27700, always_xy=True)
BIG_BYTES = 100 * (1 << 20)

#: The kinds of bad input the reliability issue lists; every one has at least one case.
KINDS = (
    "empty file",
    "header only",
    "binary garbage",
    "truncated mid-row",
    "wrong delimiter",
    "wrong encoding",
    "missing required columns",
    "duplicate site keys",
    "text in numeric columns",
    "negative or absurd areas",
    "percentages over 100",
    "coordinates outside Great Britain",
    "swapped lat/long",
    "BNG values under a lat/long header",
    "postcodes that do not exist",
    "100 MB single-line file",
    "invalid or empty geometries in GeoJSON",
    "boundary file with no CRS",
    "TopoJSON with no objects",
    "ERIC file of an unknown year",
)
LOADERS = ("eric", "council", "points", "postcodes", "boundaries")

# -- real rows to start from ----------------------------------------------------------------


@functools.cache
def _csv_rows(relative: str, n: int) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    with open(shared_file(relative), encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = tuple(next(reader))
        rows = tuple(tuple(row) for _, row in zip(range(n), reader, strict=False))
    return header, rows


def eric_rows() -> tuple[list[str], list[list[str]]]:
    """The header and the first five sites (Manchester University NHS FT) of ERIC 2019/20."""
    header, rows = _csv_rows(ERIC, 5)
    return list(header), [list(r) for r in rows]


def trafford_rows() -> tuple[list[str], list[list[str]]]:
    """The header and the first four assets of the Trafford register, as published."""
    header, rows = _csv_rows(TRAFFORD, 4)
    return list(header), [list(r) for r in rows]


def gp_rows() -> tuple[list[str], list[list[str]]]:
    header, rows = _csv_rows(GP, 4)
    return list(header), [list(r) for r in rows]


def postcode_rows() -> tuple[list[str], list[list[str]]]:
    header, rows = _csv_rows(GM_POSTCODES, 4)
    return list(header), [list(r) for r in rows]


def csv_text(header: list[str], rows: list[list[str]], delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def edited(
    source: Callable[[], tuple[list[str], list[list[str]]]],
    changes: dict[tuple[int, str], str],
    extra: list[list[str]] | None = None,
) -> Callable[[], bytes]:
    """A builder: the real rows with some cells changed (row index 0 = first data row)."""

    def build() -> bytes:
        header, rows = source()
        for (row, column), value in changes.items():
            rows[row][header.index(column)] = value
        return csv_text(header, rows + [list(r) for r in extra or []]).encode()

    return build


def text_of(source: Callable[[], tuple[list[str], list[list[str]]]]) -> str:
    header, rows = source()
    return csv_text(header, rows)


def header_only(source: Callable[[], tuple[list[str], list[list[str]]]]) -> Callable[[], bytes]:
    return lambda: csv_text(source()[0], []).encode()


def truncated(
    source: Callable[[], tuple[list[str], list[list[str]]]], keep: int = 30
) -> Callable[[], bytes]:
    """The real rows with the last one cut after ``keep`` characters (no line end), as a
    broken download leaves it."""

    def build() -> bytes:
        text = text_of(source)
        last_start = text.rstrip("\n").rfind("\n") + 1
        return text[: last_start + keep].encode()

    return build


def semicolons(source: Callable[[], tuple[list[str], list[list[str]]]]) -> Callable[[], bytes]:
    return lambda: csv_text(*source(), delimiter=";").encode()


def tabs(source: Callable[[], tuple[list[str], list[list[str]]]]) -> Callable[[], bytes]:
    return lambda: csv_text(*source(), delimiter="\t").encode()


def utf16_no_bom(source: Callable[[], tuple[list[str], list[list[str]]]]) -> Callable[[], bytes]:
    return lambda: text_of(source).encode("utf-16-le")


def bad_bytes(source: Callable[[], tuple[list[str], list[list[str]]]]) -> Callable[[], bytes]:
    """Bytes that are neither UTF-8 nor Windows-1252 (0x81, 0x8D, 0x90 are unassigned there)."""
    return lambda: text_of(source).encode() + b"x,Caf\x81\x8d\x90,y\n"


def garbage() -> bytes:
    return np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()


def png() -> bytes:
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)


def without_columns(
    source: Callable[[], tuple[list[str], list[list[str]]]], *drop: str
) -> Callable[[], bytes]:
    def build() -> bytes:
        header, rows = source()
        keep = [i for i, h in enumerate(header) if h not in drop]
        return csv_text([header[i] for i in keep], [[r[i] for i in keep] for r in rows]).encode()

    return build


def libraries(features: list[dict[str, Any]] | None = None, keep: int = 2) -> dict[str, Any]:
    data = json.loads(shared_file(LIBRARIES).read_text(encoding="utf-8"))
    data["features"] = data["features"][:keep] + (features or [])
    return data


def districts(features: list[dict[str, Any]] | None = None, keep: int = 2) -> dict[str, Any]:
    data = json.loads(shared_file(GM_LADS).read_text(encoding="utf-8"))
    data["features"] = data["features"][:keep] + (features or [])
    return data


def as_json(build: Callable[[], dict[str, Any]]) -> Callable[[], bytes]:
    return lambda: json.dumps(build()).encode()


def _feature(props: dict[str, Any], geometry: dict[str, Any] | None) -> dict[str, Any]:
    return {"type": "Feature", "properties": props, "geometry": geometry}


def _district_in_metres() -> dict[str, Any]:
    """GM districts with their coordinates in National Grid metres and no ``crs`` member."""
    data = districts()
    del data["crs"]

    def metres(coords: Any) -> Any:
        if isinstance(coords[0], int | float):
            return list(TO_BNG.transform(coords[0], coords[1]))
        return [metres(c) for c in coords]

    for feature in data["features"]:
        feature["geometry"]["coordinates"] = metres(feature["geometry"]["coordinates"])
    return data


def _topojson(objects: dict[str, Any], arcs: list[Any]) -> Callable[[], bytes]:
    return lambda: json.dumps({"type": "Topology", "objects": objects, "arcs": arcs}).encode()


_SQUARE_ARC = [[[383000, 395000], [384000, 395000], [384000, 396000], [383000, 396000]]]
_SQUARE_ARC[0].append(_SQUARE_ARC[0][0])


def _shapefile_without_prj(path: Path) -> None:
    frame = pyogrio.read_dataframe(shared_file(GM_LADS), columns=["lad17cd", "lad17nm"])
    pyogrio.write_dataframe(frame.head(2).to_crs(27700), path, driver="ESRI Shapefile")
    path.with_suffix(".prj").unlink(missing_ok=True)


def _big_line(filler: bytes) -> Callable[[Path], None]:
    """One 100 MB line with no line end, written in 1 MB pieces."""

    def write(path: Path) -> None:
        piece = filler * ((1 << 20) // len(filler))
        with open(path, "wb") as handle:
            for _ in range(BIG_BYTES // len(piece)):
                handle.write(piece)

    return write


# -- case table --------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One bad file, the loader it is given to, and what must happen."""

    id: str
    loader: str
    kind: str
    name: str
    build: Callable[[], bytes] | Callable[[Path], None]
    outcome: str
    #: fails: words the one error line must contain.
    words: tuple[str, ...] = ()
    #: rejects: rejected row number -> a word its reason must contain.
    rejected: dict[int, str] = field(default_factory=dict)
    #: rejects and reports: rows that must load (inserted + updated + unchanged).
    loaded: int = 0
    options: tuple[str, ...] = ()
    #: reports: extra assertions on the JSON report and the database.
    check: Callable[[dict[str, Any], estates.Estate], None] | None = None
    postgis: bool = False
    writes_path: bool = False


def _issue(report: dict[str, Any], row: int) -> dict[str, Any]:
    found = [i for i in report["coordinate_issues"] if i["row_number"] == row]
    assert len(found) == 1, report["coordinate_issues"]
    return found[0]


def _site(estate: estates.Estate, key: str) -> Any:
    sites = estate.sites().set_index("source_key")
    return sites.loc[key]


def _at(lon: float, lat: float) -> shapely.Point:
    return shapely.Point(*TO_BNG.transform(lon, lat))


def _trafford_key(row: int) -> str:
    _, rows = trafford_rows()
    return f"lgtc:trafford-council:{rows[row][4]}"


def _trafford_lonlat(row: int) -> tuple[float, float]:
    header, rows = trafford_rows()
    return float(rows[row][header.index("GeoX")]), float(rows[row][header.index("GeoY")])


def _gp_lonlat(row: int) -> tuple[float, float]:
    header, rows = gp_rows()
    return float(rows[row][header.index("LON")]), float(rows[row][header.index("LAT")])


def check_council_outside(report: dict[str, Any], estate: estates.Estate) -> None:
    issue = _issue(report, 3)
    assert issue["issue"] == "outside_gb" and "outside Great Britain" in issue["problem"]
    assert issue["action"] == "located by its postcode instead"
    assert _site(estate, _trafford_key(1))["located_by"] == "postcode"


def check_council_swapped(report: dict[str, Any], estate: estates.Estate) -> None:
    issue = _issue(report, 2)
    assert issue["issue"] == "swapped" and "wrong way round" in issue["problem"]
    assert issue["action"] == "placed at the corrected position"
    site = _site(estate, _trafford_key(0))
    assert site.geometry.distance(_at(*_trafford_lonlat(0))) < 1


def check_council_bng(report: dict[str, Any], estate: estates.Estate) -> None:
    issue = _issue(report, 4)
    assert issue["issue"] == "bng_as_lonlat" and "National Grid" in issue["problem"]
    site = _site(estate, _trafford_key(2))
    assert site.geometry.distance(shapely.Point(377_500, 392_600)) < 1


def check_council_unknown_postcode(report: dict[str, Any], estate: estates.Estate) -> None:
    assert report["unmatched_postcodes"] == 1 and report["unlocated"] == 1
    site = _site(estate, _trafford_key(3))
    assert site.geometry is None and site["postcode"] == "ZZ99 9ZZ"
    assert site["located_by"] == "none"


def check_eric_unknown_postcode(report: dict[str, Any], estate: estates.Estate) -> None:
    assert report["unmatched_postcodes"] == 1 and report["unlocated"] == 1
    site = _site(estate, "eric:R0A47")
    assert site.geometry is None and site["postcode"] == "ZZ99 9ZZ"


def check_points_text(report: dict[str, Any], estate: estates.Estate) -> None:
    issue = _issue(report, 3)
    assert issue["issue"] == "not_numeric" and "not a pair of numbers" in issue["problem"]
    assert issue["action"] == "left unlocated" and report["unlocated"] == 1


def check_points_outside(report: dict[str, Any], estate: estates.Estate) -> None:
    issue = _issue(report, 2)
    assert issue["issue"] == "outside_gb" and issue["action"] == "left unlocated"
    _, rows = gp_rows()
    assert _site(estate, f"points:case-p-outside:{rows[0][1]}").geometry is None


def check_points_swapped(report: dict[str, Any], estate: estates.Estate) -> None:
    issue = _issue(report, 3)
    assert issue["issue"] == "swapped"
    _, rows = gp_rows()
    site = _site(estate, f"points:case-p-swapped:{rows[1][1]}")
    assert site.geometry.distance(_at(*_gp_lonlat(1))) < 1


def check_points_bng(report: dict[str, Any], estate: estates.Estate) -> None:
    issue = _issue(report, 4)
    assert issue["issue"] == "bng_as_lonlat"
    _, rows = gp_rows()
    site = _site(estate, f"points:case-p-bng:{rows[2][1]}")
    assert site.geometry.distance(shapely.Point(383_000, 395_000)) < 1


def check_points_geometries(report: dict[str, Any], estate: estates.Estate) -> None:
    # Two good libraries placed; the empty, null and unreadable geometries kept unlocated.
    assert (report["located"], report["unlocated"]) == (2, 3)
    sites = estate.sites().set_index("source_key")
    for name in ("Empty point", "No geometry", "Unclosed ring"):
        assert sites.loc[f"points:case-p-geometries:{name}"].geometry is None


def _eric(changes: dict[tuple[int, str], str], extra: list[list[str]] | None = None) -> Any:
    return edited(eric_rows, changes, extra)


def _eric_duplicate() -> bytes:
    header, rows = eric_rows()
    rows[2][header.index("Site Code")] = rows[0][header.index("Site Code")]
    return csv_text(header, rows).encode()


def _council_duplicate() -> bytes:
    header, rows = trafford_rows()
    rows[3][header.index("AssetCode")] = rows[1][header.index("AssetCode")]
    return csv_text(header, rows).encode()


def _council_short_and_long_rows() -> bytes:
    text = text_of(trafford_rows).splitlines(keepends=True)
    text[2] = text[2].rstrip("\n") + ",extra,cells\n"  # row 3: two more fields
    text[3] = ",".join(text[3].split(",")[:6]) + "\n"  # row 4: cut after 6 fields
    return "".join(text).encode()


def _gp_duplicate() -> bytes:
    header, rows = gp_rows()
    rows[3][header.index("ODS_Code")] = rows[0][header.index("ODS_Code")]
    return csv_text(header, rows).encode()


def _postcode_problems() -> bytes:
    header, rows = postcode_rows()
    lat, lon = rows[0][2], rows[0][3]
    more = [
        ["9", "M1 1AA", lon, lat],  # row 6: swapped
        ["10", "M1 1AB", "395000", "383000"],  # row 7: grid metres under lat/long
        ["11", "M1 1AD", "10.5", "10.5"],  # row 8: outside Great Britain
        ["12", "NOT A POSTCODE", lat, lon],  # row 9: not a postcode
        ["13", rows[1][1], lat, lon],  # row 10: repeats row 3
        ["14", "M1 1AE", "north", lon],  # row 11: text in a number
    ]
    return csv_text(header, rows + more).encode()


def _lookup(lines: str) -> Callable[[], bytes]:
    return lambda: lines.encode()


def _invalid_geometry_districts() -> dict[str, Any]:
    ring = [[-2.3, 53.45], [-2.2, 53.45], [-2.2, 53.5], [-2.3, 53.5]]
    return districts(
        [
            _feature(
                {"lad17cd": "E0X000001", "lad17nm": "Empty"}, {"type": "Polygon", "coordinates": []}
            ),
            _feature({"lad17cd": "E0X000002", "lad17nm": "Null"}, None),
            _feature(
                {"lad17cd": "E0X000003", "lad17nm": "Unclosed"},
                {"type": "Polygon", "coordinates": [ring]},
            ),
            _feature(
                {"lad17cd": "E0X000004", "lad17nm": "Bow tie"},
                {
                    "type": "Polygon",
                    "coordinates": [
                        [[-2.3, 53.4], [-2.2, 53.45], [-2.2, 53.4], [-2.3, 53.45], [-2.3, 53.4]]
                    ],
                },
            ),
            _feature(
                {"lad17cd": "E0X000005", "lad17nm": "A point"},
                {"type": "Point", "coordinates": [-2.3, 53.4]},
            ),
        ]
    )


def _invalid_geometry_libraries() -> dict[str, Any]:
    ring = [[-2.3, 53.45], [-2.2, 53.45], [-2.2, 53.5], [-2.3, 53.5]]
    return libraries(
        [
            _feature({"name": "Empty point"}, {"type": "Point", "coordinates": []}),
            _feature({"name": "No geometry"}, None),
            _feature({"name": "Unclosed ring"}, {"type": "Polygon", "coordinates": [ring]}),
        ]
    )


def _no_code_districts() -> dict[str, Any]:
    data = districts(keep=3)
    data["features"][1]["properties"]["lad17cd"] = None
    return data


_P = ("--organisation", "Case P", "--sector", "other")


def _points(case: str) -> tuple[str, ...]:
    return ("--organisation", f"Case P {case}", "--sector", "nhs")


# fmt: off
CASES: list[Case] = [
    # -- ERIC -------------------------------------------------------------------------------
    Case("eric-empty", "eric", "empty file", ERIC_FILE, lambda: b"", FAILS, ("empty",), postgis=True),
    Case("eric-header-only", "eric", "header only", ERIC_FILE, header_only(eric_rows), FAILS, ("no data rows", "row 1")),
    Case("eric-garbage", "eric", "binary garbage", ERIC_FILE, garbage, FAILS, ("binary file",)),
    Case("eric-truncated", "eric", "truncated mid-row", ERIC_FILE, truncated(eric_rows), FAILS, ("truncated", "row 6"), postgis=True),
    Case("eric-semicolons", "eric", "wrong delimiter", ERIC_FILE, semicolons(eric_rows), FAILS, ("semicolons", "comma-separated")),
    Case("eric-bytes", "eric", "wrong encoding", ERIC_FILE, bad_bytes(eric_rows), FAILS, ("cannot decode", "line 7", "UTF-8")),
    Case(
        "eric-missing-columns", "eric", "missing required columns", ERIC_FILE,
        without_columns(eric_rows, "Gross internal floor area (m²)", "Floor area - empty (%)"),
        FAILS, ("expected columns not found", "Gross internal floor area (m²)", "Floor area - empty (%)"),
    ),
    Case("eric-duplicate", "eric", "duplicate site keys", ERIC_FILE, _eric_duplicate, REJECTS, rejected={4: "repeats row 2"}, loaded=4, postgis=True),
    Case(
        "eric-text-number", "eric", "text in numeric columns", ERIC_FILE,
        _eric({(1, "Gross internal floor area (m²)"): "about 5000", (3, "Cost to eradicate high risk backlog (£)"): "TBC later"}),
        REJECTS, rejected={3: "not a number", 5: "not a number"}, loaded=3,
    ),
    Case("eric-negative-area", "eric", "negative or absurd areas", ERIC_FILE, _eric({(0, "Gross internal floor area (m²)"): "-292,119"}), REJECTS, rejected={2: "negative"}, loaded=4),
    Case(
        "eric-absurd-area", "eric", "negative or absurd areas", ERIC_FILE,
        _eric({(1, "Gross internal floor area (m²)"): "124,998,000,000", (2, "Land area owned (Hectares)"): "9999999"}),
        REJECTS, rejected={3: "over 1,000,000 m²", 4: "over 100,000 ha"}, loaded=3,
    ),
    Case(
        "eric-percent-over-100", "eric", "percentages over 100", ERIC_FILE,
        _eric({(0, "Floor area - empty (%)"): "150", (4, "Floor area - under used (%)"): "-5", (2, "NHS estate occupied floor area (%)"): "100.01"}),
        REJECTS, rejected={2: "over 100 %", 4: "over 100 %", 6: "negative"}, loaded=2, postgis=True,
    ),
    Case("eric-unknown-year-name", "eric", "ERIC file of an unknown year", "ERIC_203031_SiteData.csv", lambda: text_of(eric_rows).encode(), FAILS, ("2030/31", "no ERIC mapping", "--period"), postgis=True),
    Case("eric-unknown-year-option", "eric", "ERIC file of an unknown year", ERIC_FILE, lambda: text_of(eric_rows).encode(), FAILS, ("no ERIC mapping for 2015/16", "supported years"), options=("--period", "2015/16")),
    Case("eric-year-mismatch", "eric", "ERIC file of an unknown year", "ERIC_201617_SiteData.csv", lambda: text_of(eric_rows).encode(), FAILS, ("2016/17", "expected columns not found", "Un-utilised space (%)"), options=("--period", "2016/17")),
    Case("eric-unknown-postcode", "eric", "postcodes that do not exist", ERIC_FILE, _eric({(3, "Post Code"): "ZZ99 9ZZ"}), REPORTS, loaded=5, check=check_eric_unknown_postcode),
    Case("eric-100mb", "eric", "100 MB single-line file", ERIC_FILE, _big_line(b"x"), FAILS, ("line 1", "longer than 1 MB"), writes_path=True),
    # -- council ----------------------------------------------------------------------------
    Case("council-empty", "council", "empty file", "assets.csv", lambda: b"", FAILS, ("empty",)),
    Case("council-header-only", "council", "header only", "assets.csv", header_only(trafford_rows), FAILS, ("no data rows",), postgis=True),
    Case("council-png", "council", "binary garbage", "assets.csv", png, FAILS, ("binary file", "not the CSV")),
    Case("council-truncated", "council", "truncated mid-row", "assets.csv", truncated(trafford_rows), FAILS, ("truncated", "row 5")),
    Case(
        "council-short-long-rows", "council", "truncated mid-row", "assets.csv", _council_short_and_long_rows,
        REJECTS, rejected={3: "22 fields but the header has 20", 4: "6 fields but the header has 20"}, loaded=2,
    ),
    Case("council-semicolons", "council", "wrong delimiter", "assets.csv", semicolons(trafford_rows), FAILS, ("semicolons",)),
    Case("council-utf16", "council", "wrong encoding", "assets.csv", utf16_no_bom(trafford_rows), FAILS, ("UTF-16", "UTF-8"), postgis=True),
    Case("council-bytes", "council", "wrong encoding", "assets.csv", bad_bytes(trafford_rows), FAILS, ("cannot decode", "line 6")),
    Case("council-no-id", "council", "missing required columns", "assets.csv", without_columns(trafford_rows, "AssetCode", "UPRN"), FAILS, ("identifies the assets", "profile")),
    Case("council-no-org", "council", "missing required columns", "assets.csv", without_columns(trafford_rows, "OrganisationLabel"), FAILS, ("--organisation",)),
    Case("council-duplicate", "council", "duplicate site keys", "assets.csv", _council_duplicate, REJECTS, rejected={5: "repeats row 3"}, loaded=3, postgis=True),
    Case("council-text-number", "council", "text in numeric columns", "assets.csv", edited(trafford_rows, {(1, "BuildingSize"): "large"}), REJECTS, rejected={3: "not a number"}, loaded=3),
    Case("council-negative-area", "council", "negative or absurd areas", "assets.csv", edited(trafford_rows, {(0, "BuildingSize"): "-415.05", (2, "LandArea"): "-1"}), REJECTS, rejected={2: "negative", 4: "negative"}, loaded=2),
    Case("council-absurd-area", "council", "negative or absurd areas", "assets.csv", edited(trafford_rows, {(3, "LandArea"): "250000"}), REJECTS, rejected={5: "over 100,000 ha"}, loaded=3, postgis=True),
    Case("council-outside-gb", "council", "coordinates outside Great Britain", "assets.csv", edited(trafford_rows, {(1, "GeoX"): "45.3", (1, "GeoY"): "2.1"}), REPORTS, loaded=4, check=check_council_outside, postgis=True),
    Case("council-swapped", "council", "swapped lat/long", "assets.csv", lambda: _council_swapped(), REPORTS, loaded=4, check=check_council_swapped),
    Case("council-bng-as-lonlat", "council", "BNG values under a lat/long header", "assets.csv", edited(trafford_rows, {(2, "GeoX"): "377500", (2, "GeoY"): "392600"}), REPORTS, loaded=4, check=check_council_bng),
    Case("council-unknown-postcode", "council", "postcodes that do not exist", "assets.csv", edited(trafford_rows, {(3, "PostCode"): "ZZ99 9ZZ", (3, "GeoX"): "", (3, "GeoY"): ""}), REPORTS, loaded=4, check=check_council_unknown_postcode),
    Case("council-100mb", "council", "100 MB single-line file", "assets.csv", _big_line(b","), FAILS, ("line 1", "longer than 1 MB", "not a CSV table"), writes_path=True),
    # -- points -----------------------------------------------------------------------------
    Case("points-empty", "points", "empty file", "sites.csv", lambda: b"", FAILS, ("empty",), options=_P),
    Case("points-header-only", "points", "header only", "sites.csv", header_only(gp_rows), FAILS, ("no data rows",), options=_P),
    Case("points-garbage", "points", "binary garbage", "sites.geojson", garbage, FAILS, ("binary file",), options=_P),
    Case("points-truncated", "points", "truncated mid-row", "sites.csv", truncated(gp_rows), FAILS, ("truncated",), options=_P),
    Case("points-truncated-geojson", "points", "truncated mid-row", "sites.geojson", lambda: json.dumps(libraries())[:700].encode(), FAILS, ("cannot be read",), options=_P),
    Case("points-tabs", "points", "wrong delimiter", "sites.csv", tabs(gp_rows), FAILS, ("tabs",), options=_P),
    Case("points-utf16", "points", "wrong encoding", "sites.csv", utf16_no_bom(gp_rows), FAILS, ("UTF-16",), options=_P),
    Case("points-no-location", "points", "missing required columns", "sites.csv", without_columns(gp_rows, "LAT", "LON"), FAILS, ("no location columns",), options=_P, postgis=True),
    Case("points-duplicate", "points", "duplicate site keys", "sites.csv", _gp_duplicate, REJECTS, rejected={5: "repeats row 2"}, loaded=3, options=_points("duplicate")),
    Case("points-text-number", "points", "text in numeric columns", "sites.csv", edited(gp_rows, {(1, "LAT"): "fifty-three"}), REPORTS, loaded=4, options=_points("text"), check=check_points_text),
    Case("points-outside-gb", "points", "coordinates outside Great Britain", "sites.csv", edited(gp_rows, {(0, "LAT"): "-33.86", (0, "LON"): "151.21"}), REPORTS, loaded=4, options=("--organisation", "Case P outside", "--sector", "nhs"), check=check_points_outside),
    Case("points-swapped", "points", "swapped lat/long", "sites.csv", lambda: _gp_swapped(), REPORTS, loaded=4, options=("--organisation", "Case P swapped", "--sector", "nhs"), check=check_points_swapped),
    Case("points-bng-as-lonlat", "points", "BNG values under a lat/long header", "sites.csv", edited(gp_rows, {(2, "LAT"): "395000", (2, "LON"): "383000"}), REPORTS, loaded=4, options=("--organisation", "Case P bng", "--sector", "nhs"), check=check_points_bng, postgis=True),
    Case("points-geometries", "points", "invalid or empty geometries in GeoJSON", "sites.geojson", as_json(_invalid_geometry_libraries), REPORTS, loaded=5, options=("--organisation", "Case P geometries", "--sector", "council"), check=check_points_geometries, postgis=True),
    Case("points-no-features", "points", "invalid or empty geometries in GeoJSON", "sites.geojson", as_json(lambda: libraries(keep=0)), FAILS, ("no features",), options=_P),
    Case("points-metres-geojson", "points", "BNG values under a lat/long header", "sites.geojson", as_json(_district_in_metres), FAILS, ("longitude/latitude", "National Grid", "EPSG:4326"), options=_P),
    Case("points-100mb", "points", "100 MB single-line file", "sites.csv", _big_line(b"x"), FAILS, ("longer than 1 MB",), options=_P, writes_path=True),
    # -- postcodes --------------------------------------------------------------------------
    Case("postcodes-empty", "postcodes", "empty file", "lookup.csv", lambda: b"", FAILS, ("empty",)),
    Case("postcodes-header-only", "postcodes", "header only", "lookup.csv", header_only(postcode_rows), FAILS, ("no postcode rows",), postgis=True),
    Case("postcodes-garbage", "postcodes", "binary garbage", "lookup.csv", garbage, FAILS, ("binary file",)),
    Case("postcodes-truncated", "postcodes", "truncated mid-row", "lookup.csv", truncated(postcode_rows, keep=12), FAILS, ("truncated",)),
    Case("postcodes-semicolons", "postcodes", "wrong delimiter", "lookup.csv", semicolons(postcode_rows), FAILS, ("not a postcode lookup", "semicolons")),
    Case("postcodes-bytes", "postcodes", "wrong encoding", "lookup.csv", bad_bytes(postcode_rows), FAILS, ("cannot decode",)),
    Case("postcodes-no-coordinates", "postcodes", "missing required columns", "lookup.csv", without_columns(postcode_rows, "latitude"), FAILS, ("not a postcode lookup", "latitude/longitude")),
    Case(
        "postcodes-bad-rows", "postcodes", "coordinates outside Great Britain", "lookup.csv", _postcode_problems, REJECTS,
        rejected={6: "wrong way round", 7: "National Grid", 8: "outside Great Britain", 9: "not a full postcode", 10: "repeats row 3", 11: "not a number"},
        loaded=4, postgis=True,
    ),
    Case("postcodes-swapped", "postcodes", "swapped lat/long", "lookup.csv", edited(postcode_rows, {(2, "latitude"): "-2.31", (2, "longitude"): "53.64"}), REJECTS, rejected={4: "wrong way round"}, loaded=3),
    Case("postcodes-not-postcodes", "postcodes", "postcodes that do not exist", "lookup.csv", edited(postcode_rows, {(0, "postcode"): "BL0", (1, "postcode"): "12345"}), REJECTS, rejected={2: "not a full postcode", 3: "not a full postcode"}, loaded=2),
    Case("postcodes-duplicate", "postcodes", "duplicate site keys", "lookup.csv", edited(postcode_rows, {(3, "postcode"): "bl0  0aa"}), REJECTS, rejected={5: "repeats row 2"}, loaded=3),
    Case("postcodes-100mb", "postcodes", "100 MB single-line file", "lookup.csv", _big_line(b"x"), FAILS, ("longer than 1 MB",), writes_path=True),
    # -- boundaries -------------------------------------------------------------------------
    Case("boundaries-empty", "boundaries", "empty file", "lad.geojson", lambda: b"", FAILS, ("empty",), options=("--kind", "lad")),
    Case("boundaries-garbage", "boundaries", "binary garbage", "lad.geojson", garbage, FAILS, ("binary file",), options=("--kind", "lad"), postgis=True),
    Case("boundaries-truncated", "boundaries", "truncated mid-row", "lad.geojson", lambda: json.dumps(districts())[:3000].encode(), FAILS, ("cannot be read",), options=("--kind", "lad")),
    Case("boundaries-no-features", "boundaries", "invalid or empty geometries in GeoJSON", "lad.geojson", as_json(lambda: districts(keep=0)), FAILS, ("no features",), options=("--kind", "lad")),
    Case(
        "boundaries-bad-geometries", "boundaries", "invalid or empty geometries in GeoJSON", "lad.geojson", as_json(_invalid_geometry_districts), REJECTS,
        rejected={3: "no polygon", 4: "no polygon", 5: "no polygon", 7: "no polygon"}, loaded=3, options=("--kind", "lad"), postgis=True,
    ),
    Case("boundaries-no-code", "boundaries", "missing required columns", "lad.geojson", as_json(_no_code_districts), REJECTS, rejected={2: "no lad17cd"}, loaded=2, options=("--kind", "lad")),
    Case("boundaries-unknown-code-field", "boundaries", "missing required columns", "lad.geojson", as_json(districts), FAILS, ("no field 'LAD23CD'",), options=("--kind", "lad", "--code-field", "LAD23CD")),
    Case("boundaries-shapefile-no-prj", "boundaries", "boundary file with no CRS", "lad.shp", _shapefile_without_prj, FAILS, ("no coordinate reference system", ".prj"), options=("--kind", "lad"), writes_path=True, postgis=True),
    Case("boundaries-metres-geojson", "boundaries", "boundary file with no CRS", "lad.geojson", as_json(_district_in_metres), FAILS, ("longitude/latitude", "National Grid"), options=("--kind", "lad")),
    Case("boundaries-topojson-metres", "boundaries", "boundary file with no CRS", "lad.topojson", _topojson({"lad": {"type": "GeometryCollection", "geometries": [{"type": "Polygon", "arcs": [[0]], "properties": {"code": "E1"}}]}}, _SQUARE_ARC), FAILS, ("no coordinate reference system",), options=("--kind", "lad")),
    Case("boundaries-topojson-no-objects", "boundaries", "TopoJSON with no objects", "lad.topojson", _topojson({}, []), FAILS, ("TopoJSON with no objects",), options=("--kind", "lad"), postgis=True),
    Case("boundaries-csv", "boundaries", "wrong format", "lad.geojson", lambda: b"code,name\nE08000009,Trafford\n", FAILS, ("CSV text", "not a lad boundary file"), options=("--kind", "lad")),
    Case("boundaries-lookup-header-only", "boundaries", "header only", "lookup.csv", _lookup("LAD17CD,ICB23CD,ICB23NM\n"), FAILS, ("no data rows",), options=("--kind", "icb", "--dissolve-from", "lad")),
    Case(
        "boundaries-lookup-unknown-district", "boundaries", "codes that do not exist", "lookup.csv",
        _lookup("LAD17CD,ICB23CD,ICB23NM\nE08000001,E54000057,Greater Manchester\nE09999999,E54000057,Greater Manchester\n"),
        REJECTS, rejected={3: "not loaded"}, loaded=1, options=("--kind", "icb", "--dissolve-from", "lad"),
    ),
]
# fmt: on


def _council_swapped() -> bytes:
    header, rows = trafford_rows()
    x, y = header.index("GeoX"), header.index("GeoY")
    rows[0][x], rows[0][y] = rows[0][y], rows[0][x]
    return csv_text(header, rows).encode()


def _gp_swapped() -> bytes:
    header, rows = gp_rows()
    lat, lon = header.index("LAT"), header.index("LON")
    rows[1][lat], rows[1][lon] = rows[1][lon], rows[1][lat]
    return csv_text(header, rows).encode()


# -- the estate every case runs against --------------------------------------------------

_BASES: dict[str, str] = {}


def _base_url(request: pytest.FixtureRequest, backend: str) -> str:
    """A database with something in every table, made once per backend for the module."""
    if backend in _BASES:
        return _BASES[backend]
    folder = request.getfixturevalue("tmp_path_factory").mktemp("bad_input")
    if backend == "gpkg":
        url = str(folder / "base.gpkg")
    else:
        admin = request.getfixturevalue("postgis_admin_url")
        url = pg_cluster.create_database(admin, f"estates_bad_input_{os.getpid()}")
    from estates.ingest import load_boundaries, load_council, load_eric, load_postcodes

    header, rows = eric_rows()
    _, assets = trafford_rows()
    wanted = [r[header.index("Post Code")] for r in rows] + [r[9] for r in assets]
    with estates.connect(url) as estate:
        load_postcodes(estate, real_lookup_subset(folder, [" ".join(p.split()) for p in wanted]))
        eric = folder / ERIC_FILE
        eric.write_text(csv_text(header, rows), encoding="utf-8")
        load_eric(estate, eric)
        council = folder / "trafford.csv"
        council.write_text(text_of(trafford_rows), encoding="utf-8")
        load_council(estate, council)
        load_boundaries(estate, shared_file(GM_LADS), kind="lad")
        for table, (count, _) in snapshot(estate).items():
            if table in ("site", "site_measure", "boundary", "postcode", "load_batch"):
                assert count > 0, table
    _BASES[backend] = url
    return url


def _params() -> list[Any]:
    out = []
    for case in CASES:
        out.append(pytest.param(case, "gpkg", id=f"{case.id}-gpkg"))
        if case.postgis:
            out.append(
                pytest.param(case, "postgis", id=f"{case.id}-postgis", marks=pytest.mark.postgis)
            )
    return out


def write_case(case: Case, folder: Path) -> Path:
    path = folder / case.name
    if case.writes_path:
        case.build(path)  # type: ignore[call-arg]
    else:
        path.write_bytes(case.build())  # type: ignore[call-arg,arg-type]
    return path


def run_cli(url: str, case: Case, path: Path) -> Any:
    args = ["--db", url, "load", case.loader, str(path), "--json", "--no-progress", *case.options]
    return CliRunner().invoke(main, args)


@pytest.mark.parametrize(("case", "backend"), _params())
def test_bad_input(
    case: Case, backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = _base_url(request, backend)
    path = write_case(case, tmp_path)
    try:
        with estates.connect(url) as estate:
            before = snapshot(estate)
            result = run_cli(url, case, path)
            assert "Traceback" not in result.stdout + result.stderr
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                raise AssertionError(f"{case.id}: {result.exception!r}") from result.exception
            if case.outcome == FAILS:
                _assert_fails(case, path, result, estate, before)
            else:
                _assert_loads(case, result, estate)
    finally:
        if case.writes_path and path.exists():
            path.unlink()  # the 100 MB files


def _assert_fails(
    case: Case, path: Path, result: Any, estate: estates.Estate, before: dict[str, Any]
) -> None:
    assert result.exit_code == 1, f"{case.id}: {result.output}"
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("estates: error: ") and str(path) in line, line
    for word in case.words:
        assert word.lower() in line.lower(), f"{case.id}: {word!r} not in {line!r}"
    assert snapshot(estate) == before, f"{case.id}: the database changed"


def _assert_loads(case: Case, result: Any, estate: estates.Estate) -> None:
    assert result.exit_code == 0, f"{case.id}: {result.output}"
    report = json.loads(result.stdout)
    outcomes = report["inserted"] + report["updated"] + report["unchanged"]
    assert report["rows_read"] == outcomes + report["rejected"]
    assert outcomes == case.loaded, report
    rejected = estate.rejected_rows(report["batch_id"])
    assert report["rejected"] == len(rejected) == len(case.rejected)
    reasons = dict(zip(rejected["row_number"], rejected["reason"], strict=True))
    assert sorted(reasons) == sorted(case.rejected), reasons
    for row, word in case.rejected.items():
        assert word.lower() in reasons[row].lower(), f"row {row}: {word!r} not in {reasons[row]!r}"
    if case.outcome == REPORTS:
        assert case.check is not None
        case.check(report, estate)
    batch = estate.batches().set_index("id").loc[report["batch_id"]]
    assert batch["status"] == "complete" and batch["rejected"] == len(case.rejected)


def test_corpus_summary() -> None:
    """Every kind of bad input and every loader is covered; the counts are printed."""
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.kind for c in CASES} >= set(KINDS)
    assert {c.loader for c in CASES} == set(LOADERS)
    for case in CASES:
        assert case.outcome in (FAILS, REJECTS, REPORTS)
        assert bool(case.words) == (case.outcome == FAILS), case.id
        assert bool(case.rejected) == (case.outcome == REJECTS), case.id
        assert (case.check is not None) == (case.outcome == REPORTS), case.id
    outcomes = Counter(c.outcome for c in CASES)
    per_loader = Counter(c.loader for c in CASES)
    postgis = sum(c.postgis for c in CASES)
    print(
        f"\nbad-input corpus: {len(CASES)} cases ({postgis} also on PostGIS): "
        f"{outcomes[FAILS]} fail the whole file, {outcomes[REJECTS]} reject rows, "
        f"{outcomes[REPORTS]} load with per-row reports; per loader: {dict(per_loader)}"
    )
    assert min(per_loader.values()) >= 8


def test_csv_lines_are_read_with_a_limit(tmp_path: Path) -> None:
    """The line check fails on the first over-long line wherever it is, and passes real files."""
    ok = tmp_path / "ok.csv"
    ok.write_bytes(b"a,b\r\n" + b"1,2\n" * 10 + b"3," + b"y" * 999 + b"\r4,5")
    _read.check_line_lengths(ok, limit=1_001)
    long_late = tmp_path / "late.csv"
    long_late.write_bytes(b"a,b\n" * 3 + b"z" * 5_000 + b"\n1,2\n")
    with pytest.raises(estates.InvalidSourceError, match="line 4 is longer than 1,024 bytes"):
        _read.check_line_lengths(long_late, limit=1_024)
    classic_mac = tmp_path / "cr.csv"  # line ends are "\r" alone; the long line crosses chunks
    classic_mac.write_bytes(b"a,b\r" * 300 + b"q" * 1_500 + b"\r1,2\r")
    with pytest.raises(estates.InvalidSourceError, match="line 301 is longer than 1,024 bytes"):
        _read.check_line_lengths(classic_mac, limit=1_024)
    _read.check_line_lengths(shared_file(ERIC))
    _read.check_line_lengths(shared_file(GM_POSTCODES))


def test_encoding_check_skips_plain_ascii_but_not_what_follows(tmp_path: Path) -> None:
    """Chunks of plain ASCII are passed without decoding; a character split across the end
    of one chunk and a later bad byte are still judged by the decoder, line numbers intact."""
    chunk = _read._CHUNK
    lines = b"x" * 9 + b"\n"
    ascii_part = lines * (chunk // len(lines)) + b"y" * (chunk % len(lines) - 1)
    split = tmp_path / "split.csv"  # "é" is two bytes: the first ends chunk 1
    split.write_bytes(ascii_part + "é\n".encode() + lines * 1_000)
    assert _read.detect_encoding(split) == "utf-8"
    bad = tmp_path / "bad.csv"
    bad.write_bytes(lines * (2 * chunk // len(lines)) + b"ok\n\xff\n")
    with pytest.raises(estates.InvalidSourceError, match=f"line {2 * chunk // len(lines) + 2} "):
        _read.detect_encoding(bad, "utf-8")


_MEASURE = """
import os, resource, runpy, sys, time
started = time.perf_counter()
try:
    sys.argv = ["estates", *sys.argv[1:]]
    runpy.run_module("estates", run_name="__main__")
finally:
    with open(os.environ["ESTATES_MEASURE_OUT"], "w") as out:
        out.write(f"{time.perf_counter() - started} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}")
"""


def _measured_run(tmp_path: Path, db: Path, file: Path, tag: str) -> tuple[Any, float, int]:
    out = tmp_path / f"{tag}.measure"
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, "--db", str(db), "load", "council", str(file)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "ESTATES_MEASURE_OUT": str(out)},
        timeout=300,
    )
    seconds, kib = out.read_text().split()
    return result, float(seconds), int(kib)


def test_100mb_single_line_fails_fast_without_reading_it(tmp_path: Path) -> None:
    """A real ``estates load`` process on a 100 MB file with no line end: one clear line,
    and its peak memory is that of failing on an empty file (the line is never read whole).
    Time and memory are printed for the record, not asserted on time."""
    db = tmp_path / "big.gpkg"
    estates.connect(db).close()
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    big = tmp_path / "big.csv"
    _big_line(b",")(big)
    assert big.stat().st_size == BIG_BYTES
    try:
        base, base_s, base_kib = _measured_run(tmp_path, db, empty, "empty")
        result, seconds, kib = _measured_run(tmp_path, db, big, "big")
    finally:
        big.unlink()
    assert base.returncode == 1 and "the file is empty" in base.stderr
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "line 1 is longer than 1 MB" in result.stderr and "Traceback" not in result.stderr
    extra_mib = (kib - base_kib) / 1024
    print(
        f"\n100 MB single-line file: failed in {seconds:.2f} s (empty file: {base_s:.2f} s, "
        f"mostly imports); peak RSS {kib / 1024:.0f} MiB vs {base_kib / 1024:.0f} MiB "
        f"for the empty file (+{extra_mib:.1f} MiB)"
    )
    assert extra_mib < 32, f"reading the 100 MB line took {extra_mib:.0f} MiB more memory"
