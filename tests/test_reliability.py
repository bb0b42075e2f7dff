"""Crashes, concurrent writers, integrity checks and undo, on both backends."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import shapely
from click.testing import CliRunner
from sqlalchemy import text

import estates
from estates.cli import main
from estates.db import store
from estates.db.models import Base
from estates.demo import demo_sites

ROOT = Path(__file__).resolve().parents[1]


def table_checksums(estate: estates.Estate) -> dict[str, str]:
    """A content checksum per table we own (order-independent)."""
    sums = {}
    with estate.engine.connect() as c:
        for table in Base.metadata.sorted_tables:
            rows = c.execute(text(f"SELECT * FROM {table.name}")).fetchall()
            digest = hashlib.sha256()
            for line in sorted(
                repr(tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)) for r in rows
            ):
                digest.update(line.encode())
            sums[table.name] = f"{len(rows)}:{digest.hexdigest()[:16]}"
    return sums


def load_frame(estate: estates.Estate, frame, name: str = "frame") -> int:  # type: ignore[no-untyped-def]
    with estate.batch("test", name) as batch:
        result = store.write_sites(batch.connection, frame, batch.id)
        batch.counts.update(
            rows_read=len(frame), inserted=len(result.inserted), updated=len(result.updated)
        )
        return batch.id


def test_failed_batch_leaves_database_unchanged(estate: estates.Estate) -> None:
    load_frame(estate, demo_sites(n_sites=30))
    before = table_checksums(estate)
    with pytest.raises(RuntimeError, match="boom"), estate.batch("test", "bad") as batch:
        store.write_sites(batch.connection, demo_sites(seed=2, n_sites=40), batch.id)
        raise RuntimeError("boom")
    assert table_checksums(estate) == before


def test_check_passes_on_a_healthy_database(estate: estates.Estate) -> None:
    load_frame(estate, demo_sites(n_sites=30))
    report = estate.check()
    assert report.ok, report.problems
    assert len(report.checks) >= 10


def test_check_finds_a_broken_rtree_and_repair_fixes_it(tmp_path: Path) -> None:
    estate = estates.connect(tmp_path / "r.gpkg")
    load_frame(estate, demo_sites(n_sites=30))
    with estate.engine.begin() as c:
        c.exec_driver_sql("DELETE FROM rtree_site_geom WHERE id IN (1, 2)")
    report = estate.check()
    assert not report.ok
    assert any("R-tree of site.geom" in p for p in report.problems)
    result = CliRunner().invoke(main, ["--db", str(tmp_path / "r.gpkg"), "check", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["ok"] is False
    assert estate.check(repair=True).ok


def test_undo_restores_previous_state(estate: estates.Estate) -> None:
    first = demo_sites(n_sites=40)
    load_frame(estate, first, "v1")
    snapshot = table_checksums(estate)
    sites_before = estate.sites().set_index("source_key")
    second = first.copy()
    second.loc[second.index[:5], "gia_m2"] = 1.0
    second.loc[second.index[5], "geometry"] = shapely.Point(390_000, 395_000)
    extra = demo_sites(seed=9, n_sites=10)
    extra["source_key"] = [f"extra:{i}" for i in range(10)]
    combined = pd.concat([second, extra], ignore_index=True)
    batch_id = load_frame(estate, combined, "v2")
    assert len(estate.sites()) == 50
    changes = estate.undo(batch_id)
    assert changes == {
        "sites_removed": 10,
        "sites_restored": 6,
        "measures_removed": 0,
        "measures_restored": 0,
    }
    after = estate.sites().set_index("source_key")
    assert len(after) == 40
    cols = ["gia_m2", "name", "organisation_code"]
    pd.testing.assert_frame_equal(after.loc[sites_before.index, cols], sites_before[cols])
    assert after.geometry.geom_equals(sites_before.loc[after.index].geometry).all()
    now = table_checksums(estate)
    for table in ("site", "organisation", "site_measure", "site_footprint"):
        assert now[table] == snapshot[table], table
    batches = estate.batches().set_index("id")
    assert batches.loc[batch_id, "status"] == "undone"
    with pytest.raises(estates.EstatesError, match="already undone"):
        estate.undo(batch_id)
    # The undone sites' ids are never handed out again: a stored run names sites by id.
    undone_ids = set(range(41, 51))
    assert not undone_ids & set(after["site_id"])
    load_frame(estate, extra, "v3")
    reloaded = estate.sites().set_index("source_key").loc[extra["source_key"], "site_id"]
    assert reloaded.min() > 50


def test_undo_refuses_when_a_later_batch_touched_the_same_sites(estate: estates.Estate) -> None:
    frame = demo_sites(n_sites=10)
    first = load_frame(estate, frame, "v1")
    changed = frame.copy()
    changed["gia_m2"] = 5.0
    second = load_frame(estate, changed, "v2")
    with pytest.raises(estates.EstatesError, match=f"later batch\\(es\\) {second}"):
        estate.undo(first)
    estate.undo(second)
    estate.undo(first)
    assert len(estate.sites()) == 0


def test_undo_unknown_batch_is_a_clear_error(estate: estates.Estate) -> None:
    with pytest.raises(LookupError, match="no load batch 999"):
        estate.undo(999)


_WRITER = textwrap.dedent(
    """
    import sys, time
    import estates
    from estates.db import store
    from estates.demo import demo_sites
    url, seed, n, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    estate = estates.connect(url)
    frame = demo_sites(seed=seed, n_sites=n)
    with estate.batch("test", f"writer-{seed}") as batch:
        print("started", flush=True)
        result = store.write_sites(batch.connection, frame, batch.id)
        batch.counts.update(rows_read=n, inserted=len(result.inserted), updated=len(result.updated),
                            unchanged=len(result.unchanged))
        time.sleep(hold)
    print("done", flush=True)
    """
)


def _writer(
    url: str, seed: int, n: int, hold: float = 0.0, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, url, str(seed), str(n), str(hold)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def test_sigkill_mid_load_leaves_last_completed_load(db_url: str) -> None:
    estate = estates.connect(db_url)
    load_frame(estate, demo_sites(n_sites=50), "good")
    before = table_checksums(estate)
    proc = _writer(db_url, seed=5, n=150_000, hold=30.0)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    time.sleep(1.5)  # part-way through the bulk write (or holding its transaction open)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    reopened = estates.connect(db_url)
    report = reopened.check()
    assert report.ok, report.problems
    assert table_checksums(reopened) == before


def test_geopackage_second_writer_fails_busy_after_timeout(tmp_path: Path) -> None:
    path = str(tmp_path / "busy.gpkg")
    estates.connect(path)
    # Held long enough for a second process to start on a loaded machine and queue behind it.
    holder = _writer(path, seed=1, n=20, hold=20.0)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "started"
    started = time.monotonic()
    second = subprocess.run(
        [sys.executable, "-m", "estates", "--db", path, "demo"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "ESTATES_BUSY_TIMEOUT": "1"},
        timeout=60,
    )
    waited = time.monotonic() - started
    assert second.returncode == 1
    assert "database is busy" in second.stderr
    assert "Traceback" not in second.stderr
    assert waited >= 1.0
    assert holder.wait(timeout=60) == 0
    assert estates.connect(path).check().ok


@pytest.mark.postgis
def test_postgis_concurrent_writers_no_duplicates(postgis_url: str) -> None:
    estates.connect(postgis_url)  # schema first, so writers do not race to create it
    procs = [_writer(postgis_url, seed=7 + (i % 2), n=400, hold=0.2) for i in range(4)]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    estate = estates.connect(postgis_url)
    sites = estate.sites()
    assert sites["source_key"].is_unique
    batches = estate.batches()
    assert len(batches) == 4 and set(batches["status"]) == {"complete"}
    # seeds 7 and 8 share source keys demo:0000..0399: each key once, last writer wins.
    assert len(sites) == 400
    assert int(batches["inserted"].sum()) == 400
    assert estate.check().ok


def test_undo_of_an_eric_reload_restores_measures_and_footprints(
    estate: estates.Estate, tmp_path: Path
) -> None:
    """Load real ERIC rows, reload an edited copy, undo it: figures and districts come back."""
    import csv

    from estates.ingest import load_boundaries, load_eric, load_postcodes
    from tests.conftest import shared_file

    source = shared_file("eric_site_2019_20/ERIC_201920_SiteData_for_R.csv")
    with open(source, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], [r for r in rows[1:] if r[0] in ("R0A", "RM3")]
    lookup = tmp_path / "postcodes.csv"
    with open(shared_file("gm_postcodes_boundaries/ukpostcodes.csv"), encoding="utf-8") as handle:
        wanted = {" ".join(r[header.index("Post Code")].split()) for r in body}
        lines = [line for n, line in enumerate(handle) if n == 0 or line.split(",")[1] in wanted]
    lookup.write_text("".join(lines))
    load_postcodes(estate, lookup)
    load_boundaries(estate, shared_file("gm_postcodes_boundaries/GM_LADS.geojson"), kind="lad")

    def write(path: Path, data: list[list[str]]) -> Path:
        with open(path, "w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows([header, *data])
        return path

    load_eric(estate, write(tmp_path / "ERIC_201920_v1.csv", body), period="2019/20")
    before_sites = estate.sites(measures=True).set_index("source_key").sort_index()
    before = table_checksums(estate)
    edited = [list(r) for r in body]
    empty = header.index("Floor area - empty (%)")
    postcode = header.index("Post Code")
    moved = next(
        i for i, r in enumerate(edited) if r[postcode].strip() and not r[4].endswith("ORS")
    )
    other = next(
        r[postcode]
        for r in edited
        if r[postcode].strip()
        and " ".join(r[postcode].split()) != " ".join(edited[moved][postcode].split())
    )
    edited[moved][postcode] = other
    for r in edited[:5]:
        r[empty] = "42"
    report = load_eric(estate, write(tmp_path / "ERIC_201920_v2.csv", edited), period="2019/20")
    assert report.updated >= 5
    assert estate.sites(measures=True)["empty_pct"].eq(42).sum() >= 4
    estate.undo(report.batch_id)
    after_sites = estate.sites(measures=True).set_index("source_key").sort_index()
    columns = ["empty_pct", "postcode", "lad_code", "gia_m2"]
    pd.testing.assert_frame_equal(after_sites[columns], before_sites[columns])
    assert list(after_sites.geometry.to_wkt()) == list(before_sites.geometry.to_wkt())
    now = table_checksums(estate)
    for table in ("site", "site_measure", "site_footprint", "organisation", "postcode"):
        assert now[table] == before[table], table


# -- real `estates load` processes: SIGKILL part-way, and four loaders at once -------------

KILL_ORG = "Killtest Borough Council"
_LGA = [
    "OrganisationLabel",
    "AssetCode",
    "PropertyName",
    "PostCode",
    "CoordinateReferenceSystem",
    "GeoX",
    "GeoY",
    "TenureDetail",
    "BuildingSize",
]


def write_council_csv(path: Path, first: int, n: int, seed: int) -> dict[str, float]:
    """An LGTC register (LGA columns, WGS84 GeoX/GeoY in Greater Manchester) of assets
    ``K<first>`` .. ``K<first + n - 1>``; returns each source key's BuildingSize."""
    import csv

    import numpy as np

    rng = np.random.default_rng(seed)
    lon = rng.uniform(-2.45, -2.05, n)
    lat = rng.uniform(53.35, 53.6, n)
    size = np.round(rng.uniform(50, 5_000, n), 2)
    codes = [f"K{first + i:07d}" for i in range(n)]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(_LGA)
        for i, code in enumerate(codes):
            writer.writerow(
                [
                    KILL_ORG,
                    code,
                    f"Asset {code}",
                    "M1 1AA",
                    "WGS84",
                    f"{lon[i]:.6f}",
                    f"{lat[i]:.6f}",
                    "Vacant" if i % 13 == 0 else "Owner Occupied",
                    f"{size[i]:.2f}",
                ]
            )
    return {
        f"lgtc:killtest-borough-council:{c}": float(s) for c, s in zip(codes, size, strict=True)
    }


def _cli_process(url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "estates", "--db", url, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def _write_state(url: str) -> tuple[bool, bool]:
    """(a load's write transaction is open, it is writing sites right now).

    GeoPackage: the rollback journal exists while the transaction is open, and passes
    64 KiB once the bulk insert rewrites the site table's index pages. PostGIS: a session
    of this database holds the estate's advisory write lock, and is running the bulk
    ``COPY site_staging`` / ``INSERT INTO site``.
    """
    from sqlalchemy.engine import make_url

    from estates.settings import resolve_database_url

    resolved = make_url(resolve_database_url(url))
    if resolved.get_backend_name() == "sqlite":
        journal = Path(f"{resolved.database}-journal")
        try:
            size = journal.stat().st_size
        except FileNotFoundError:
            return False, False
        return True, size >= 64 * 1024
    import psycopg

    conninfo = resolved.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT a.state, a.query FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objid = %s "
            "AND a.datname = current_database()",
            (store.PG_WRITE_LOCK,),
        ).fetchall()
    writing = any(
        state == "active" and query.startswith(("INSERT INTO site ", "COPY site_staging"))
        for state, query in rows
    )
    return bool(rows), writing


@pytest.mark.slow
def test_sigkill_of_a_real_cli_load_keeps_the_last_completed_load(
    db_url: str, tmp_path: Path
) -> None:
    """``estates load council`` of 200,000 rows killed with SIGKILL while it writes: the
    database opens, ``estates check`` passes and every table equals the state after the
    previous completed load (the interrupted batch left no row anywhere)."""
    from tests.ingest_data import snapshot

    small = tmp_path / "register_v1.csv"
    write_council_csv(small, 0, 2_000, seed=1)
    first = _cli_process(db_url, "load", "council", str(small), "--json")
    _out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    with estates.connect(db_url) as estate:
        before = snapshot(estate)
    assert before["site"][0] == 2_000
    big = tmp_path / "register_v2.csv"
    write_council_csv(big, 0, 200_000, seed=2)  # the same 2,000 assets changed, and more
    proc = _cli_process(db_url, "load", "council", str(big), "--no-progress")
    try:
        deadline = time.monotonic() + 240
        while not _write_state(db_url)[1]:  # wait until it is part-way through the sites
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the load never started writing sites"
            time.sleep(0.01)
        proc.send_signal(signal.SIGSTOP)
        # Frozen: if its transaction is still open it has not committed; kill it there.
        assert _write_state(db_url)[0], "the load committed before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    check = subprocess.run(
        [sys.executable, "-m", "estates", "--db", db_url, "check", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)["ok"] is True
    with estates.connect(db_url) as estate:
        assert snapshot(estate) == before
        assert list(estate.batches()["status"]) == ["complete"]


def test_four_concurrent_cli_loads_of_overlapping_registers(db_url: str, tmp_path: Path) -> None:
    """Four ``estates load council`` processes at once on files that share asset codes:
    no duplicate site, four complete batches, each asset inserted exactly once, and each
    asset holds the figures of the last batch that wrote it. On PostGIS the writers queue
    on the estate's advisory lock; on the GeoPackage on SQLite's lock, within
    ``ESTATES_BUSY_TIMEOUT`` (set generously here)."""
    estates.connect(db_url).close()  # schema first, so the writers do not race to create it
    files = {}
    for i in range(4):  # K0..K4999, K2500..K7499, ...: each file shares half its assets
        path = tmp_path / f"register_{i}.csv"
        files[str(path)] = write_council_csv(path, i * 2_500, 5_000, seed=10 + i)
    procs = [
        _cli_process(db_url, "load", "council", path, "--json", env={"ESTATES_BUSY_TIMEOUT": "300"})
        for path in files
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        report = json.loads(out)
        assert (
            report["rows_read"]
            == 5_000
            == report["inserted"] + report["updated"] + report["unchanged"] + report["rejected"]
        )
    with estates.connect(db_url) as estate:
        sites = estate.sites()
        batches = estate.batches().sort_values("id")
        assert estate.check().ok
    assert sites["source_key"].is_unique
    expected_keys = set().union(*(set(sizes) for sizes in files.values()))
    assert set(sites["source_key"]) == expected_keys and len(sites) == 12_500
    assert list(batches["status"]) == ["complete"] * 4
    assert sorted(batches["file_name"]) == sorted(files)
    assert int(batches["inserted"].sum()) == 12_500
    assert (batches["rows_read"] == 5_000).all() and int(batches["rejected"].sum()) == 0
    assert int((batches["inserted"] + batches["updated"] + batches["unchanged"]).sum()) == 20_000
    # Batches commit one after another, in id order: the last one to write an asset wins.
    final: dict[str, float] = {}
    for name in batches["file_name"]:
        final.update(files[name])
    stored = sites.set_index("source_key")["gia_m2"]
    assert stored.round(2).to_dict() == final


def test_vacuum_hands_a_deleted_runs_space_back(estate: estates.Estate) -> None:
    from estates.pipeline import run_flags

    load_frame(estate, demo_sites(n_sites=3000))
    run = run_flags(estate)
    with estate.write() as connection:
        connection.exec_driver_sql(f"DELETE FROM analysis_run WHERE id = {int(run.run_id)}")
    sizes = estate.vacuum()
    if estate.is_geopackage:
        assert sizes["bytes_after"] < sizes["bytes_before"]
    else:
        assert sizes == {"bytes_before": None, "bytes_after": None}
    assert estate.check().ok
    assert len(estate.sites()) == 3000


def test_db_vacuum_command(tmp_path: Path) -> None:
    db = str(tmp_path / "v.gpkg")
    load_frame(estates.connect(db), demo_sites(n_sites=20))
    result = CliRunner().invoke(main, ["--db", db, "db", "vacuum", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["bytes_after"] <= payload["bytes_before"]
    plain = CliRunner().invoke(main, ["--db", db, "db", "vacuum"])
    assert plain.exit_code == 0 and " MB -> " in plain.stdout
