"""Read-only roll-ups of the estate: counts per sector, load batches, rejected rows."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Connection

from estates.errors import NotFoundError

_BATCH_COLUMNS = (
    "id",
    "loader",
    "file_name",
    "status",
    "started_at",
    "finished_at",
    "rows_read",
    "inserted",
    "updated",
    "unchanged",
    "rejected",
    "located",
    "unlocated",
    "non_geographic",
)


def footprint_exists(connection: Connection, code: str) -> bool:
    found = connection.execute(
        text(
            "SELECT 1 FROM boundary WHERE code = :c UNION SELECT 1 FROM site_footprint WHERE code = :c"
        ),
        {"c": code},
    ).first()
    return found is not None


def known_footprints(connection: Connection, limit: int = 12) -> list[str]:
    rows = connection.execute(
        text("SELECT DISTINCT code FROM boundary ORDER BY code LIMIT :n"), {"n": limit}
    )
    return [r[0] for r in rows]


def check_footprint(connection: Connection, code: str | None) -> None:
    """Fail clearly when asked for a footprint that no boundary or site carries."""
    if code is None or footprint_exists(connection, code):
        return
    known = known_footprints(connection)
    hint = f"loaded codes include {', '.join(known)}" if known else "no boundaries are loaded yet"
    raise NotFoundError(
        f"footprint {code!r} not found: {hint} (load them with `estates load boundaries`)"
    )


def summary(connection: Connection, footprint: str | None = None) -> dict[str, Any]:
    """Per sector: sites, located, unlocated, non-geographic, total GIA m2 and land ha;
    plus totals and the load batches."""
    check_footprint(connection, footprint)
    where = ""
    params: dict[str, Any] = {"true": True}
    if footprint is not None:
        where = "WHERE s.id IN (SELECT site_id FROM site_footprint WHERE code = :footprint)"
        params["footprint"] = footprint
    rows = connection.execute(
        text(
            "SELECT o.sector, count(*) AS sites, "
            "sum(CASE WHEN s.geom IS NOT NULL THEN 1 ELSE 0 END) AS located, "
            "sum(CASE WHEN s.non_geographic = :true THEN 1 ELSE 0 END) AS non_geographic, "
            "sum(s.gia_m2) AS gia_m2, sum(s.land_ha) AS land_ha "
            f"FROM site s JOIN organisation o ON o.id = s.organisation_id {where} "
            "GROUP BY o.sector ORDER BY o.sector"
        ),
        params,
    ).fetchall()
    sectors: dict[str, dict[str, Any]] = {}
    for sector, sites, located, non_geo, gia, land in rows:
        sectors[sector] = {
            "sites": int(sites),
            "located": int(located or 0),
            "unlocated": int(sites) - int(located or 0) - int(non_geo or 0),
            "non_geographic": int(non_geo or 0),
            "gia_m2": round(float(gia), 3) if gia is not None else 0.0,
            "land_ha": round(float(land), 4) if land is not None else 0.0,
        }
    keys = ("sites", "located", "unlocated", "non_geographic", "gia_m2", "land_ha")
    total = {k: sum(s[k] for s in sectors.values()) for k in keys}
    total["gia_m2"] = round(float(total["gia_m2"]), 3)
    total["land_ha"] = round(float(total["land_ha"]), 4)
    batches = connection.execute(
        text(f"SELECT {', '.join(_BATCH_COLUMNS)} FROM load_batch ORDER BY id")
    ).fetchall()
    return {
        "footprint": footprint,
        "sectors": sectors,
        "total": total,
        "batches": [
            {
                k: (v.isoformat() if hasattr(v, "isoformat") else v)
                for k, v in zip(_BATCH_COLUMNS, b, strict=True)
            }
            for b in batches
        ],
    }


def rejected_rows(connection: Connection, batch_id: int | None = None) -> pd.DataFrame:
    """Rejected rows (all, or of one batch) with the raw row decoded."""
    params: dict[str, Any] = {}
    where = ""
    if batch_id is not None:
        if (
            connection.execute(
                text("SELECT 1 FROM load_batch WHERE id = :b"), {"b": batch_id}
            ).first()
            is None
        ):
            raise NotFoundError(f"load batch {batch_id} does not exist")
        where = "WHERE batch_id = :b"
        params["b"] = batch_id
    result = connection.execute(
        text(
            "SELECT id, batch_id, row_number, column_name, reason, raw FROM rejected_row "
            f"{where} ORDER BY batch_id, row_number, id"
        ),
        params,
    )
    frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    frame["raw"] = [json.loads(v) if isinstance(v, str) else v for v in frame["raw"]]
    return frame
