"""Many files in one call, read ahead in a worker: the same database as loading one by one."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

import estates
from estates.ingest import (
    Source,
    load_boundaries,
    load_council,
    load_eric,
    load_points,
    load_postcodes,
    load_sources,
)
from tests.conftest import shared_file
from tests.ingest_data import ERIC, GM_LADS, GM_POSTCODES, TRAFFORD
from tests.test_reliability import table_checksums

GP = "nhs_tu_asset_mapping/gp_practices_geo.csv"
#: Tables that record when and how long, not what: they differ between any two loads.
_TIMED = ("load_batch",)


def _sources() -> list[Source]:
    return [
        Source("postcodes", shared_file(GM_POSTCODES)),
        Source("boundaries", shared_file(GM_LADS), {"kind": "lad"}),
        Source("council", shared_file(TRAFFORD)),
        Source("eric", shared_file(ERIC)),
        Source("points", shared_file(GP), {"organisation": "GP practices", "sector": "nhs"}),
    ]


def _content(estate: estates.Estate) -> dict[str, str]:
    return {k: v for k, v in table_checksums(estate).items() if k not in _TIMED}


def test_sources_load_as_the_loaders_one_by_one(tmp_path: Path) -> None:
    one_by_one = estates.connect(tmp_path / "one.gpkg")
    expected = [
        load_postcodes(one_by_one, shared_file(GM_POSTCODES)),
        load_boundaries(one_by_one, shared_file(GM_LADS), kind="lad"),
        load_council(one_by_one, shared_file(TRAFFORD)),
        load_eric(one_by_one, shared_file(ERIC)),
        load_points(one_by_one, shared_file(GP), organisation="GP practices", sector="nhs"),
    ]
    together = estates.connect(tmp_path / "together.gpkg")
    reports = load_sources(together, _sources())
    assert _content(together) == _content(one_by_one)
    assert [r.loader for r in reports] == [r.loader for r in expected]
    for got, want in zip(reports, expected, strict=True):
        mine, theirs = got.as_dict(), want.as_dict()
        mine.pop("elapsed_s"), theirs.pop("elapsed_s")
        assert mine == theirs
    assert sum(r.inserted for r in reports) > 100_000  # postcodes and sites


def test_a_bad_file_stops_the_load_there(estate: estates.Estate, tmp_path: Path) -> None:
    bad = tmp_path / "eric.csv"
    bad.write_text("Trust Code,Site Code\nRXX,RXX01\n", encoding="utf-8")
    sources = _sources()
    sources[3] = Source("eric", bad)
    with pytest.raises(estates.EstatesError, match=r"eric\.csv"):
        load_sources(estate, sources)
    batches = estate.batches()
    # The files before it stay loaded; it and the files after it left nothing.
    assert sorted(batches["loader"]) == sorted(["postcodes", "boundaries", "council"])
    assert set(estate.sites()["sector"]) == {"council"}


def test_sources_are_checked_before_anything_is_loaded(estate: estates.Estate) -> None:
    first = Source("postcodes", shared_file(GM_POSTCODES))
    with pytest.raises(estates.ConfigurationError, match="unknown loader 'spreadsheet'"):
        load_sources(estate, [first, Source("spreadsheet", shared_file(GP))])
    with pytest.raises(estates.ConfigurationError, match="do not fit the points loader"):
        load_sources(estate, [first, Source("points", shared_file(GP), {"colour": "red"})])
    with estate.read() as connection:
        assert connection.execute(text("SELECT count(*) FROM postcode")).scalar_one() == 0
    assert load_sources(estate, []) == []
