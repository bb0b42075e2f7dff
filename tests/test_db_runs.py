"""Per-site run results: one columnar blob per run that reads back as it was written."""

from __future__ import annotations

import io
import json
import math
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

import estates
from estates.db import columnar, runs
from estates.demo import demo_sites


def _plain(value: Any) -> Any:
    """Independent: a cell as the JSON value a reader should get back (None for null)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _awkward(n: int = 60) -> pd.DataFrame:
    """Every kind of column a run stores, with nulls, escapes and numbers that round badly."""
    rng = np.random.default_rng(11)
    floats = np.array([0.1 + 0.2, 1128.4000000000001, -0.0, 1e16, 2.5e-7, np.nan, np.inf])
    hostile = ['say "hi"', "back\\slash", "two\nlines", "tab\there", "£ and ✓", 'a",', "\x1e", ""]
    frame = pd.DataFrame(
        {
            "first": [None if i % 5 == 0 else f"key-{i}" for i in range(n)],
            "f": floats[rng.integers(0, len(floats), n)],
            "f32": np.arange(n, dtype=np.float32) / 3,
            "i": np.arange(n, dtype=np.int64) * 7,
            "I": pd.array([None if i % 4 == 0 else i for i in range(n)], dtype="Int64"),
            "b": np.arange(n) % 3 == 0,
            "B": pd.array([None if i % 6 == 0 else i % 2 == 0 for i in range(n)], dtype="boolean"),
            "status": rng.choice(["flagged", "pass", "not_assessable"], n),
            "unique": [f"{hostile[i % len(hostile)]} #{i}" for i in range(n)],
            "reason": pd.Series(
                [None if i % 3 else hostile[i % len(hostile)] for i in range(n)], dtype=object
            ),
            "mixed": pd.Series([[1, 2], 3, "x", np.nan, None, 4.5][i % 6] for i in range(n)).astype(
                object
            ),
            "when": pd.to_datetime(["2024-01-02T03:04:05"] * (n - 2) + [None, None]),
            "category": pd.Categorical([None if i % 7 == 0 else i % 3 for i in range(n)]),
            "ints": pd.Series(list(range(n)), dtype=object),
            "never": [None] * n,
        }
    )
    frame.loc[frame.index[:3], "f"] = np.nan  # the first rows have several nulls
    return frame


def _assert_read_back(back: pd.DataFrame, frame: pd.DataFrame) -> None:
    """Numbers and nullable columns exactly as written; everything else as JSON values."""
    assert list(back.columns) == list(frame.columns)
    for name in frame.columns:
        wrote, got = frame[name], back[name]
        if isinstance(wrote.dtype, np.dtype) and wrote.dtype.kind in "biuf":
            assert got.dtype == wrote.dtype, name
            a, b = wrote.to_numpy(), got.to_numpy()
            assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name
            if a.dtype.kind == "f":  # -0.0 stays -0.0
                assert np.array_equal(np.signbit(a), np.signbit(b)), name
        elif str(wrote.dtype) in ("Int64", "Float64", "boolean"):
            assert got.dtype == wrote.dtype, name
            assert got.isna().tolist() == wrote.isna().tolist(), name
            assert got.dropna().tolist() == wrote.dropna().tolist(), name
        else:
            assert got.dtype == object, name
            assert got.tolist() == [_plain(v) for v in wrote.tolist()], name


@pytest.mark.parametrize("n", [0, 1, 60, 300])
def test_a_frame_reads_back_as_it_was_written(n: int) -> None:
    frame = _awkward(max(n, 2)).iloc[:n].reset_index(drop=True)
    frame["F"] = pd.array([None if i % 3 else i / 7 for i in range(n)], dtype="Float64")
    frame["pairs"] = [f"name {i // 2}" for i in range(n)]  # at 300 rows: int16 codes
    data = columnar.encode_frame(frame)
    back = columnar.decode_frame(data)
    _assert_read_back(back, frame)
    assert len(back) == n
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        kinds = {c["name"]: c["kind"] for c in json.loads(archive["header"].tobytes())["columns"]}
        if n == 300:
            assert archive[f"{list(frame.columns).index('pairs')}.codes"].dtype == np.int16
    assert kinds["f"] == kinds["i"] == kinds["b"] == kinds["f32"] == "values"
    assert kinds["I"] == "Int64" and kinds["B"] == "boolean" and kinds["F"] == "Float64"
    assert kinds["status"] == "text"
    assert kinds["mixed"] == ("json" if n else "text")  # lists cannot be hashed
    assert kinds["unique"] == ("json" if n >= 100 else "text")  # mostly distinct: a plain list


def test_a_stored_frame_is_a_plain_npz_with_small_codes() -> None:
    frame = pd.DataFrame({"status": ["pass", "flagged", None] * 1000, "x": np.arange(3000.0)})
    data = columnar.encode_frame(frame)
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        header = json.loads(archive["header"].tobytes())
        assert header == {
            "format": 1,
            "rows": 3000,
            "columns": [{"name": "status", "kind": "text"}, {"name": "x", "kind": "values"}],
        }
        assert archive["0.codes"].dtype == np.int8
        assert json.loads(archive["0.labels"].tobytes()) == ["pass", "flagged"]
        assert archive["0.codes"][:3].tolist() == [0, 1, -1]
    assert len(data) < 3000 * 2  # a few bytes a row: codes and floats, compressed
    with pytest.raises(ValueError, match="repeated column names"):
        columnar.encode_frame(pd.DataFrame([[1, 2]], columns=["a", "a"]))


def _results_frame(site_ids: list[int]) -> pd.DataFrame:
    n = len(site_ids)
    frame = _awkward(n).drop(columns=["when", "category"])
    frame.insert(0, "site_id", site_ids)
    frame["flags"] = ["underused_space" if i % 4 == 0 else "" for i in range(n)]
    frame["all_nan"] = np.nan
    return frame


def _run(connection: Any) -> int:
    return runs.create_run(
        connection, kind="flags", footprint=None, period=None, parameters={}, code_version="t"
    )


def test_run_results_read_back_by_site_id(estate: estates.Estate) -> None:
    estate.write_sites(demo_sites(n_sites=48))
    site_ids = sorted(int(i) for i in estate.sites()["site_id"])
    frame = _results_frame(site_ids)
    shuffled = frame.sample(frac=1.0, random_state=3)
    columns = [c for c in frame.columns if c != "site_id"]
    roles = [None if i % 2 else "receiver" for i in range(len(frame))]
    with estate.write() as connection:
        run_id = _run(connection)
        encoded = runs.encode_results(shuffled, [*columns, "absent"], roles=roles)
        runs.write_results(connection, run_id, encoded)
        written = encoded.sites
        runs.set_summary(connection, run_id, {"sites": written})
        empty_run = _run(connection)
    with estate.read() as connection:
        back = runs.read_site_results(connection, run_id)
        nothing = runs.read_site_results(connection, empty_run)
        row = runs.read_run(connection, run_id)
        stored = connection.execute(
            text("SELECT run_id, sites FROM run_result ORDER BY run_id")
        ).fetchall()
    assert written == len(frame) and row["summary"] == {"sites": len(frame)}
    assert [tuple(r) for r in stored] == [(run_id, len(frame))]  # one row per run
    # In site_id order, whatever order the run had; its roles follow their sites.
    assert back["site_id"].tolist() == site_ids
    expected = shuffled.assign(role=pd.Series(roles, index=shuffled.index, dtype=object))
    expected = expected.sort_values("site_id").reset_index(drop=True)
    _assert_read_back(back, expected)
    assert back["reason"].isna().sum() > 0
    assert list(nothing.columns) == ["site_id", "flags", "role"] and nothing.empty


def test_a_run_without_flags_or_roles_still_has_the_columns(estate: estates.Estate) -> None:
    estate.write_sites(demo_sites(n_sites=5))
    sites = estate.sites()[["site_id", "name"]]
    with estate.write() as connection:
        run_id = _run(connection)
        runs.write_results(connection, run_id, runs.encode_results(sites, ["name"]))
    with estate.read() as connection:
        back = runs.read_site_results(connection, run_id)
    assert list(back.columns) == ["site_id", "name", "role", "flags"]
    assert back["flags"].tolist() == [None] * 5 and back["role"].tolist() == [None] * 5
    assert back["name"].tolist() == sites.sort_values("site_id")["name"].tolist()


def test_upgrade_converts_per_site_rows_and_downgrade_restores_them(
    estate: estates.Estate,
) -> None:
    """Runs stored as JSON rows before 0004 (both row formats) read back whole after it."""
    estate.write_sites(demo_sites(n_sites=12))
    site_ids = sorted(int(i) for i in estate.sites()["site_id"])
    estate.downgrade("0003")
    cast = ":v" if estate.is_geopackage else "CAST(:v AS JSONB)"
    compact = {"site_id": None, "flag_vacant": "flagged", "spare_m2": 12.5, "reason": None}
    with estate.write() as connection:
        run_ids = []
        for with_columns in (True, False):
            run_ids.append(_run(connection))
            summary = {"sites": 12, **({"result_columns": list(compact)} if with_columns else {})}
            connection.execute(
                text(
                    f"UPDATE analysis_run SET summary = {cast.replace(':v', ':s')} WHERE id = :id"
                ),
                {"s": json.dumps(summary), "id": run_ids[-1]},
            )
            rows = []
            for n, site_id in enumerate(site_ids):
                values = {"flag_vacant": "flagged" if n % 2 else "pass", "spare_m2": n * 1.5}
                if not with_columns:  # the first format: every key, nulls as null
                    values["reason"] = None
                rows.append(
                    {
                        "run": run_ids[-1],
                        "site": site_id,
                        "flags": "vacant" if n % 2 else "",
                        "role": "released" if n == 3 else None,
                        "v": json.dumps(values),
                    }
                )
            connection.execute(
                text(
                    'INSERT INTO site_result (run_id, site_id, flags, role, "values") '
                    f"VALUES (:run, :site, :flags, :role, {cast})"
                ),
                rows,
            )
    estate.upgrade()
    with estate.read() as connection:
        for run_id in run_ids:
            back = runs.read_site_results(connection, run_id)
            assert runs.read_run(connection, run_id)["summary"] == {"sites": 12}
            assert back["site_id"].tolist() == site_ids
            assert back["flag_vacant"].tolist() == ["pass", "flagged"] * 6
            assert back["spare_m2"].tolist() == [n * 1.5 for n in range(12)]
            assert back["flags"].tolist() == ["", "vacant"] * 6
            assert back["role"].tolist() == [None, None, None, "released", *[None] * 8]
            assert "reason" in back and back["reason"].isna().all()
    estate.downgrade("0003")
    with estate.read() as connection:
        restored = connection.execute(
            text('SELECT site_id, flags, role, "values" FROM site_result WHERE run_id = :r'),
            {"r": run_ids[0]},
        ).fetchall()
    assert sorted(r[0] for r in restored) == site_ids
    values = [json.loads(r[3]) if isinstance(r[3], str) else r[3] for r in restored]
    assert {v["flag_vacant"] for v in values} == {"pass", "flagged"}
    estate.upgrade()
