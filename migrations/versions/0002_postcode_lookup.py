"""postcode lookup

Revision ID: 0002
Revises: 0001

A plain attribute table (no geometry column) so that a 2.6-million-row ONSPD loads in
seconds; loaders turn easting/northing into points only for the sites they locate.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from estates.db.migration_helpers import register_spatial_tables, unregister_spatial_tables

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ["postcode"]


def upgrade() -> None:
    op.create_table(
        "postcode",
        sa.Column("postcode", sa.Text(), nullable=False),
        sa.Column("easting", sa.Double(), nullable=False),
        sa.Column("northing", sa.Double(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("postcode", name=op.f("pk_postcode")),
    )
    register_spatial_tables(TABLES)


def downgrade() -> None:
    unregister_spatial_tables(TABLES)
    op.drop_table("postcode")
