"""per-site run results as one columnar blob per run

Revision ID: 0004
Revises: 0003

``site_result`` held one row per site per run, its figures and sentences as a JSON
object: about 950 bytes a site, so a national flag run (500,000 sites) took 480 MB,
16 s to write and 20 s to read back. ``run_result`` holds one row per run, the same
results column by column (:mod:`estates.db.columnar`): about 12 MB, written in about
3 s and read in under 1 s. Upgrade converts every stored run; downgrade writes the rows
back (every key in every row, as runs were first stored).
"""

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from alembic import op

from estates.db import columnar
from estates.db.columnar import jsonable
from estates.db.migration_helpers import register_spatial_tables, unregister_spatial_tables
from estates.db.types import JSONText

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The key under which runs kept their column list while rows left their nulls out.
_RESULT_COLUMNS = "result_columns"


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _cast(bind: sa.Connection, name: str) -> str:
    return f":{name}" if bind.dialect.name == "sqlite" else f"CAST(:{name} AS JSONB)"


def _summaries(bind: sa.Connection) -> dict[int, dict[str, Any]]:
    rows = bind.execute(sa.text("SELECT id, summary FROM analysis_run ORDER BY id"))
    return {int(i): _json(s) or {} for i, s in rows}


def _set_summary(bind: sa.Connection, run_id: int, summary: dict[str, Any]) -> None:
    bind.execute(
        sa.text(f"UPDATE analysis_run SET summary = {_cast(bind, 's')} WHERE id = :id"),
        {"s": json.dumps(summary, ensure_ascii=False), "id": run_id},
    )


def upgrade() -> None:
    op.create_table(
        "run_result",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("sites", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["analysis_run.id"],
            name=op.f("fk_run_result_run_id_analysis_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_run_result")),
    )
    register_spatial_tables(["run_result"])  # a GeoPackage attributes table, as the others
    bind = op.get_bind()
    for run_id, summary in _summaries(bind).items():
        columns = summary.pop(_RESULT_COLUMNS, None)
        rows = bind.execute(
            sa.text(
                'SELECT site_id, flags, role, "values" FROM site_result WHERE run_id = :id '
                "ORDER BY site_id"
            ),
            {"id": run_id},
        ).fetchall()
        if rows:
            objects = [_json(r[3]) or {} for r in rows]
            values = pd.DataFrame(objects, columns=columns)  # columns None: every key
            values = values.drop(columns=[c for c in ("site_id",) if c in values])
            values.insert(0, "site_id", np.asarray([r[0] for r in rows], dtype="int64"))
            for position, name in ((1, "flags"), (2, "role")):
                if name not in values:
                    values[name] = pd.Series([r[position] for r in rows], dtype=object)
            bind.execute(
                sa.text("INSERT INTO run_result (run_id, sites, data) VALUES (:r, :n, :d)"),
                {"r": run_id, "n": len(rows), "d": columnar.encode_frame(values)},
            )
        if columns is not None:
            _set_summary(bind, run_id, summary)
    unregister_spatial_tables(["site_result"])
    op.drop_index("ix_site_result_site_id", table_name="site_result")
    op.drop_index("ix_site_result_run_id", table_name="site_result")
    op.drop_table("site_result")


def downgrade() -> None:
    op.create_table(
        "site_result",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("flags", sa.Text(), nullable=True),
        sa.Column("role", sa.Text(), nullable=True),
        sa.Column("values", JSONText(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["analysis_run.id"],
            name=op.f("fk_site_result_run_id_analysis_run"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.id"], name=op.f("fk_site_result_site_id_site"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site_result")),
        sa.UniqueConstraint("run_id", "site_id", name=op.f("uq_site_result_run_id_site_id")),
    )
    op.create_index("ix_site_result_run_id", "site_result", ["run_id"], unique=False)
    op.create_index("ix_site_result_site_id", "site_result", ["site_id"], unique=False)
    register_spatial_tables(["site_result"])
    bind = op.get_bind()
    known = {int(r[0]) for r in bind.execute(sa.text("SELECT id FROM site"))}
    blobs = bind.execute(sa.text("SELECT run_id, data FROM run_result ORDER BY run_id"))
    for run_id, data in blobs.fetchall():
        frame = columnar.decode_frame(bytes(data))
        values = frame.drop(columns=["site_id"])
        rows = [
            {
                "run": int(run_id),
                "site": int(site_id),
                "flags": jsonable(record.get("flags")),
                "role": jsonable(record.get("role")),
                "v": json.dumps({k: jsonable(v) for k, v in record.items()}, ensure_ascii=False),
            }
            for site_id, record in zip(
                frame["site_id"], values.to_dict(orient="records"), strict=True
            )
            if int(site_id) in known  # the old table could not hold deleted sites
        ]
        if rows:
            bind.execute(
                sa.text(
                    'INSERT INTO site_result (run_id, site_id, flags, role, "values") '
                    f"VALUES (:run, :site, :flags, :role, {_cast(bind, 'v')})"
                ),
                rows,
            )
    unregister_spatial_tables(["run_result"])
    op.drop_table("run_result")
