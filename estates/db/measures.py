"""Per-site, per-period measures (``site_measure``): bulk upsert with change records."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Connection

from estates.db import bulk
from estates.db.store import MEASURE_FIELDS, json_text

_CHUNK = 5000


@dataclass
class MeasureWrite:
    """Site ids whose measures for the period were inserted, changed or left alone."""

    inserted: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
    return value


def _same(a: Any, b: Any) -> bool:
    a, b = _plain(a), _plain(b)
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-9)
    return bool(a == b)


def _json(value: Any) -> Any:
    if isinstance(value, str):
        return json.loads(value)
    return value


def read_period(connection: Connection, period: str) -> dict[int, dict[str, Any]]:
    """Existing measures of one period, by site id (with ``id`` and parsed ``raw``)."""
    result = connection.execute(
        text(
            f"SELECT id, site_id, {', '.join(MEASURE_FIELDS)}, raw, batch_id FROM site_measure WHERE period = :p"
        ),
        {"p": period},
    )
    out = {}
    for row in result.mappings():
        record = dict(row)
        record["raw"] = _json(record["raw"])
        out[int(record["site_id"])] = record
    return out


def write_measures(
    connection: Connection, frame: pd.DataFrame, period: str, batch_id: int | None
) -> MeasureWrite:
    """Insert or update one period's measures; record each change in ``site_change``.

    ``frame`` has ``site_id``, the :data:`~estates.db.store.MEASURE_FIELDS` and ``raw``
    (per row the source row for provenance, as its :func:`json_text`: encoded where the
    file was parsed, not by the writer).
    """
    existing = read_period(connection, period)
    result = MeasureWrite()
    new_rows: list[dict[str, Any]] = []
    changed_rows: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    records = frame.loc[:, ["site_id", *MEASURE_FIELDS, "raw"]].to_dict("records")
    for record in records:
        site_id = int(record["site_id"])
        values = {f: _plain(record[f]) for f in MEASURE_FIELDS}
        row = {
            "site_id": site_id,
            "period": period,
            **values,
            "raw": record["raw"],
            "batch_id": batch_id,
        }
        old = existing.get(site_id)
        if old is None:
            result.inserted.append(site_id)
            new_rows.append(row)
            changes.append(
                {"b": batch_id, "s": site_id, "a": "measure_insert", "f": None, "before": None}
            )
            continue
        changed = [f for f in MEASURE_FIELDS if not _same(old[f], values[f])]
        if old["raw"] != _json(record["raw"]):
            changed.append("raw")
        if not changed:
            result.unchanged.append(site_id)
            continue
        result.updated.append(site_id)
        changed_rows.append(row)
        before = {
            "period": period,
            **{f: _plain(old[f]) for f in MEASURE_FIELDS},
            "raw": old["raw"],
            "batch_id": _plain(old.get("batch_id")),
        }
        changes.append(
            {
                "b": batch_id,
                "s": site_id,
                "a": "measure_update",
                "f": json_text([f"{period}:{c}" for c in changed]),
                "before": json_text(before),
            }
        )
    columns = ["site_id", "period", *MEASURE_FIELDS, "raw", "batch_id"]
    if new_rows:
        bulk.insert_rows(
            connection, "site_measure", columns, [[row[c] for row in new_rows] for c in columns]
        )
    if changed_rows:
        sets = ", ".join(f"{c} = :{c}" for c in columns if c not in ("site_id", "period"))
        connection.execute(
            text(f"UPDATE site_measure SET {sets} WHERE site_id = :site_id AND period = :period"),
            changed_rows,
        )
    if changes and batch_id is not None:
        bulk.insert_rows(
            connection,
            "site_change",
            ("batch_id", "site_id", "action", "changed_fields", "before"),
            [[change[k] for change in changes] for k in ("b", "s", "a", "f", "before")],
        )
    return result
