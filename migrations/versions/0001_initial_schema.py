"""initial schema

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from estates.db.migration_helpers import register_spatial_tables, unregister_spatial_tables
from estates.db.types import Geometry, JSONText, Timestamp

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = [
    "organisation",
    "load_batch",
    "site",
    "site_footprint",
    "site_measure",
    "site_change",
    "rejected_row",
    "boundary",
    "analysis_run",
    "site_result",
    "analysis_feature",
]


def upgrade() -> None:
    op.create_table(
        "analysis_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("footprint", sa.Text(), nullable=True),
        sa.Column("period", sa.Text(), nullable=True),
        sa.Column("parameters", JSONText(), nullable=False),
        sa.Column("code_version", sa.Text(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("summary", JSONText(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysis_run")),
    )
    op.create_table(
        "load_batch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("loader", sa.Text(), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("file_sha256", sa.Text(), nullable=False),
        sa.Column("options", JSONText(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("started_at", Timestamp, nullable=False),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("inserted", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("located", sa.Integer(), nullable=False),
        sa.Column("unlocated", sa.Integer(), nullable=False),
        sa.Column("non_geographic", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_load_batch")),
    )
    op.create_table(
        "organisation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("sector", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisation")),
        sa.UniqueConstraint("code", name=op.f("uq_organisation_code")),
    )
    op.create_table(
        "analysis_feature",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("layer", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=True),
        sa.Column("values", JSONText(), nullable=True),
        sa.Column("geom", Geometry("GEOMETRY"), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["analysis_run.id"],
            name=op.f("fk_analysis_feature_run_id_analysis_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysis_feature")),
    )
    with op.batch_alter_table("analysis_feature", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_analysis_feature_run_id"), ["run_id"], unique=False)

    op.create_table(
        "boundary",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("geom", Geometry("MULTIPOLYGON"), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["load_batch.id"], name=op.f("fk_boundary_batch_id_load_batch")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_boundary")),
        sa.UniqueConstraint("kind", "code", name=op.f("uq_boundary_kind_code")),
    )
    with op.batch_alter_table("boundary", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_boundary_code"), ["code"], unique=False)

    op.create_table(
        "rejected_row",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("column_name", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", JSONText(), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["load_batch.id"], name=op.f("fk_rejected_row_batch_id_load_batch")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejected_row")),
    )
    with op.batch_alter_table("rejected_row", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rejected_row_batch_id"), ["batch_id"], unique=False)

    op.create_table(
        "site",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_key", sa.Text(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("postcode", sa.Text(), nullable=True),
        sa.Column("uprn", sa.Text(), nullable=True),
        sa.Column("site_type", sa.Text(), nullable=True),
        sa.Column("tenure", sa.Text(), nullable=True),
        sa.Column("holding_type", sa.Text(), nullable=True),
        sa.Column("occupancy", sa.Text(), nullable=True),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("gia_m2", sa.Double(), nullable=True),
        sa.Column("land_ha", sa.Double(), nullable=True),
        sa.Column("non_geographic", sa.Boolean(), nullable=False),
        sa.Column("located_by", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("geom", Geometry("POINT"), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["load_batch.id"], name=op.f("fk_site_batch_id_load_batch")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisation.id"],
            name=op.f("fk_site_organisation_id_organisation"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site")),
        sa.UniqueConstraint("source_key", name=op.f("uq_site_source_key")),
    )
    with op.batch_alter_table("site", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_site_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_site_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_site_postcode"), ["postcode"], unique=False)

    op.create_table(
        "site_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("changed_fields", JSONText(), nullable=True),
        sa.Column("before", JSONText(), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["load_batch.id"], name=op.f("fk_site_change_batch_id_load_batch")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site_change")),
    )
    with op.batch_alter_table("site_change", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_site_change_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_site_change_site_id"), ["site_id"], unique=False)

    op.create_table(
        "site_footprint",
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["site.id"],
            name=op.f("fk_site_footprint_site_id_site"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", "kind", name=op.f("pk_site_footprint")),
    )
    with op.batch_alter_table("site_footprint", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_site_footprint_code"), ["code"], unique=False)

    op.create_table(
        "site_measure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("empty_pct", sa.Double(), nullable=True),
        sa.Column("underused_pct", sa.Double(), nullable=True),
        sa.Column("unutilised_pct", sa.Double(), nullable=True),
        sa.Column("not_functionally_suitable_pct", sa.Double(), nullable=True),
        sa.Column("occupied_pct", sa.Double(), nullable=True),
        sa.Column("occupied_floor_area_m2", sa.Double(), nullable=True),
        sa.Column("backlog_high_gbp", sa.Double(), nullable=True),
        sa.Column("backlog_significant_gbp", sa.Double(), nullable=True),
        sa.Column("backlog_moderate_gbp", sa.Double(), nullable=True),
        sa.Column("backlog_low_gbp", sa.Double(), nullable=True),
        sa.Column("running_cost_gbp", sa.Double(), nullable=True),
        sa.Column("energy_cost_gbp", sa.Double(), nullable=True),
        sa.Column("land_not_delivering_ha", sa.Double(), nullable=True),
        sa.Column("raw", JSONText(), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["load_batch.id"], name=op.f("fk_site_measure_batch_id_load_batch")
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.id"], name=op.f("fk_site_measure_site_id_site"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site_measure")),
        sa.UniqueConstraint("site_id", "period", name=op.f("uq_site_measure_site_id_period")),
    )
    with op.batch_alter_table("site_measure", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_site_measure_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_site_measure_site_id"), ["site_id"], unique=False)

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
    with op.batch_alter_table("site_result", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_site_result_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_site_result_site_id"), ["site_id"], unique=False)

    register_spatial_tables(TABLES)


def downgrade() -> None:
    unregister_spatial_tables(TABLES)
    with op.batch_alter_table("site_result", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_site_result_site_id"))
        batch_op.drop_index(batch_op.f("ix_site_result_run_id"))

    op.drop_table("site_result")
    with op.batch_alter_table("site_measure", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_site_measure_site_id"))
        batch_op.drop_index(batch_op.f("ix_site_measure_batch_id"))

    op.drop_table("site_measure")
    with op.batch_alter_table("site_footprint", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_site_footprint_code"))

    op.drop_table("site_footprint")
    with op.batch_alter_table("site_change", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_site_change_site_id"))
        batch_op.drop_index(batch_op.f("ix_site_change_batch_id"))

    op.drop_table("site_change")
    with op.batch_alter_table("site", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_site_postcode"))
        batch_op.drop_index(batch_op.f("ix_site_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_site_batch_id"))

    op.drop_table("site")
    with op.batch_alter_table("rejected_row", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rejected_row_batch_id"))

    op.drop_table("rejected_row")
    with op.batch_alter_table("boundary", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_boundary_code"))

    op.drop_table("boundary")
    with op.batch_alter_table("analysis_feature", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_analysis_feature_run_id"))

    op.drop_table("analysis_feature")
    op.drop_table("organisation")
    op.drop_table("load_batch")
    op.drop_table("analysis_run")
