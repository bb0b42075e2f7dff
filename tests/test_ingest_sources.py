"""Many files in one call, read ahead in a worker: the same database as loading one by one."""

from __future__ import annotations

import csv
import logging
import tempfile
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
from estates.ingest import sources as sources_module
from estates.ingest.council import as_profile, write_council
from estates.ingest.report import progress_bar
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


def test_sources_load_as_the_loaders_one_by_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="estates.ingest.sources")
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
    # Each batch records its file's hash, taken in the worker (the first file's too).
    batches = text("SELECT loader, file_name, file_sha256 FROM load_batch ORDER BY id")
    with together.read() as mine, one_by_one.read() as theirs:
        hashed = mine.execute(batches).all()
        assert hashed == theirs.execute(batches).all()
    assert [len(sha) for _, _, sha in hashed] == [64] * 5
    assert [r.loader for r in reports] == [r.loader for r in expected]
    for got, want in zip(reports, expected, strict=True):
        mine, theirs = got.as_dict(), want.as_dict()
        mine.pop("elapsed_s"), theirs.pop("elapsed_s")
        assert mine == theirs
    assert sum(r.inserted for r in reports) > 100_000  # postcodes and sites
    # ERIC and the GP points were located, hashed and given footprints in the worker
    # (once the boundaries were written), not here: and still the same database. The
    # register right after the boundaries was prepared here, as the worker could not
    # have started sooner.
    # Staged too (bound into rows to copy) unless this process was already waiting for it.
    prepared = [
        r.getMessage().replace(" and staged", "")
        for r in caplog.records
        if "in the read-ahead worker" in r.getMessage()
    ]
    assert sorted(prepared) == [
        f"file {n}: sites prepared in the read-ahead worker" for n in (4, 5)
    ]


def test_a_file_prepared_ahead_updates_what_changed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="estates.ingest.sources")
    rows = list(csv.reader(shared_file(TRAFFORD).open(encoding="utf-8-sig", newline="")))
    rows[1][rows[0].index("PropertyName")] = "Altrincham Town Hall (renamed)"
    rows[2][rows[0].index("GeoX")], rows[2][rows[0].index("GeoY")] = "-2.2426", "53.4808"
    edited = tmp_path / "trafford_edited.csv"
    with edited.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    one_by_one = estates.connect(tmp_path / "one.gpkg")
    load_postcodes(one_by_one, shared_file(GM_POSTCODES))
    load_boundaries(one_by_one, shared_file(GM_LADS), kind="lad")
    load_council(one_by_one, shared_file(TRAFFORD))
    load_boundaries(one_by_one, shared_file(GM_LADS), kind="lad")
    load_points(one_by_one, shared_file(GP), organisation="GP practices", sector="nhs")
    expected = load_council(one_by_one, edited)
    together = estates.connect(tmp_path / "together.gpkg")
    load_sources(together, _sources()[:3])
    # The edited register is prepared in the worker once the boundaries are written again.
    caplog.clear()
    again = load_sources(together, [_sources()[1], _sources()[4], Source("council", edited)])
    assert "file 3: sites prepared" in caplog.text and "in the read-ahead worker" in caplog.text
    assert (again[2].updated, expected.updated) == (2, 2)  # one renamed, one moved
    assert again[2].extra["footprints"] == expected.extra["footprints"]
    assert _content(together) == _content(one_by_one)


def test_a_preparation_that_fails_is_done_in_the_writer(
    estate: estates.Estate, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = shared_file(TRAFFORD)
    sha256, kept = sources_module._read(0, "council", path, {}, True)
    assert kept is None and len(sha256 or "") == 64  # kept in "the worker"
    parsed = sources_module._prepare(0, "council", str(tmp_path / "missing.gpkg"))
    assert parsed is not None and parsed.prepared is None
    assert "preparing in the main process instead" in caplog.text
    bar = progress_bar(1, "council", False)
    report = write_council(
        estate, path, parsed, organisation=None, profile=as_profile(None), started=0.0, bar=bar
    )
    assert report.inserted == parsed.rows_read - len(parsed.rejected) > 0


def _private_temp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A temporary folder of this test's own, where the load keeps its handed-off files."""
    folder = tmp_path / "temp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_the_worker_hands_files_off_and_leaves_nothing_behind(
    estate: estates.Estate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large results come back through files of a private folder, not the pool's pipe;
    each is read once, and the folder is gone when the load ends."""
    temp = _private_temp(monkeypatch, tmp_path)
    taken = sources_module._taken
    handed_off: list[str] = []

    def spy(result: object) -> object:
        if isinstance(result, sources_module._HandedOff):
            assert Path(result.path).parent.parent == temp
            handed_off.append(result.path)
        return taken(result)

    monkeypatch.setattr(sources_module, "_taken", spy)
    load_sources(estate, _sources())
    assert len(handed_off) == 4  # every file read ahead: boundaries, council, ERIC, points
    assert not any(Path(p).exists() for p in handed_off)
    assert list(temp.iterdir()) == []


def test_a_bad_file_stops_the_load_there(
    estate: estates.Estate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = _private_temp(monkeypatch, tmp_path)
    bad = tmp_path / "eric.csv"
    bad.write_text("Trust Code,Site Code\nRXX,RXX01\n", encoding="utf-8")
    sources = _sources()
    sources[3] = Source("eric", bad)
    with pytest.raises(estates.EstatesError, match=r"eric\.csv"):
        load_sources(estate, sources)
    assert list(temp.iterdir()) == []  # the points read ahead were handed off, then removed
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


def test_a_result_that_cannot_be_handed_off_comes_back_through_the_pipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = {"rows": list(range(10))}
    monkeypatch.setattr(sources_module, "_handoff_folder", str(tmp_path))
    handed = sources_module._hand_off(result)
    assert isinstance(handed, sources_module._HandedOff)
    assert sources_module._taken(handed) == result and list(tmp_path.iterdir()) == []

    def disk_full(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sources_module.pickle, "dump", disk_full)
    assert sources_module._hand_off(result) is result  # returned as it is
    assert list(tmp_path.iterdir()) == []  # the partial file removed
