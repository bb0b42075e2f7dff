"""Per-site run results: JSON rows built column-wise without nulls, read back whole."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

import estates
from estates.db import runs
from estates.db.store import is_sqlite
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


def _expected_texts(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """Independent: per row, the dict of non-null values dumped by ``json.dumps``."""
    out = []
    for i in range(len(frame)):
        row = {c: _plain(frame[c].iloc[i]) for c in columns}
        kept = {c: v for c, v in row.items() if v is not None}
        out.append(json.dumps(kept, ensure_ascii=False, separators=(",", ":"), allow_nan=False))
    return out


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


@pytest.mark.parametrize("batch_rows", [1, 7, 1000])
def test_json_objects_equal_dumps_of_the_non_null_values(batch_rows: int) -> None:
    frame = _awkward()
    columns = [*frame.columns, "absent", "status"]  # unknown and repeated names are skipped
    texts = [t for batch in runs.json_objects(frame, columns, batch_rows=batch_rows) for t in batch]
    assert texts == _expected_texts(frame, list(frame.columns))
    for t in texts:
        assert "null" not in t.replace("null_", "")
        assert isinstance(json.loads(t), dict)


def test_json_objects_of_rows_with_nothing() -> None:
    frame = pd.DataFrame({"a": [None, None], "b": [np.nan, np.nan]})
    assert list(runs.json_objects(frame, ["a", "b"])) == [["{}", "{}"]]
    assert list(runs.json_objects(frame.iloc[:0], ["a", "b"])) == []
    assert list(runs.json_objects(frame, [])) == [["{}", "{}"]]


def _results_frame(site_ids: list[int]) -> pd.DataFrame:
    n = len(site_ids)
    frame = _awkward(n).drop(columns=["when", "B", "category"])
    frame.insert(0, "site_id", site_ids)
    frame["flags"] = ["underused_space" if i % 4 == 0 else "" for i in range(n)]
    frame["all_nan"] = np.nan
    return frame


def _write(estate: estates.Estate, frame: pd.DataFrame, *, old_format: bool) -> int:
    columns = [c for c in frame.columns if c != "site_id"]
    with estate.write() as connection:
        run_id = runs.create_run(
            connection, kind="flags", footprint=None, period=None, parameters={}, code_version="t"
        )
        if not old_format:
            written = runs.write_site_results(connection, run_id, frame, columns)
            runs.set_summary(connection, run_id, {"sites": len(frame)}, result_columns=written)
            return run_id
        # As runs were stored before result_columns: every key in every row, nulls as null.
        cast = ":v" if is_sqlite(connection) else "CAST(:v AS JSONB)"
        connection.execute(
            text(
                'INSERT INTO site_result (run_id, site_id, flags, role, "values") '
                f"VALUES (:run, :site, :flags, NULL, {cast})"
            ),
            [
                {
                    "run": run_id,
                    "site": int(frame["site_id"].iloc[i]),
                    "flags": frame["flags"].iloc[i],
                    "v": json.dumps({c: _plain(frame[c].iloc[i]) for c in columns}),
                }
                for i in range(len(frame))
            ],
        )
        runs.set_summary(connection, run_id, {"sites": len(frame)})
    return run_id


def test_results_read_back_as_the_full_rows_did(estate: estates.Estate) -> None:
    estate.write_sites(demo_sites(n_sites=48))
    site_ids = sorted(int(i) for i in estate.sites()["site_id"])
    frame = _results_frame(site_ids)
    new_run = _write(estate, frame, old_format=False)
    old_run = _write(estate, frame, old_format=True)
    with estate.read() as connection:
        new = runs.read_site_results(connection, new_run)
        old = runs.read_site_results(connection, old_run)
        row = runs.read_run(connection, new_run)
        stored = [
            r[0]
            for r in connection.execute(
                text('SELECT "values" FROM site_result WHERE run_id = :r ORDER BY site_id'),
                {"r": new_run},
            )
        ]
        extract = (
            "json_extract(\"values\", '$.status')"
            if is_sqlite(connection)
            else "\"values\" ->> 'status'"
        )
        statuses = [
            r[0]
            for r in connection.execute(
                text(f"SELECT {extract} FROM site_result WHERE run_id = :r ORDER BY site_id"),
                {"r": new_run},
            )
        ]
    # The same frame as a run whose rows hold every key, columns null everywhere included;
    # in the run's own column order on both backends (JSONB reorders the keys of a row).
    pd.testing.assert_frame_equal(new, old, check_exact=True, check_like=True)
    assert list(new.columns) == [*frame.columns, "role"]
    assert new["never"].tolist() == [None] * len(frame)
    assert new["all_nan"].tolist() == [None] * len(frame)
    assert new["reason"].isna().sum() > 0 and new["reason"].dropna().tolist() == [
        r for r in frame["reason"] if r is not None
    ]
    assert np.array_equal(
        new["f"].to_numpy(dtype=float),
        frame["f"].where(np.isfinite(frame["f"])).to_numpy(),
        equal_nan=True,
    )
    assert statuses == frame["status"].tolist()
    # Nulls are left out of the stored objects, and the run keeps its columns apart.
    objects = [json.loads(v) if isinstance(v, str) else v for v in stored]
    assert all(None not in o.values() for o in objects)
    assert not any("never" in o or "all_nan" in o for o in objects)
    assert row["summary"] == {"sites": len(frame)}
    assert row[runs.RESULT_COLUMNS] == [c for c in frame.columns if c != "site_id"]
