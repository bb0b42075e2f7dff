"""drop two indexes that cost more to keep than they save

Revision ID: 0003
Revises: 0002

Both receive one random-order B-tree insert per site loaded, which measured as the
largest single cost of writing a national register:

- ``ix_site_postcode``: no query looks sites up by postcode (locating goes the other
  way, from a site's postcode to the postcode table's primary key); it was a quarter of
  the time of inserting 440,000 council assets.
- ``ix_site_footprint_code``: 0.7 s of every 147,000 footprint rows written (4.5x the
  insert without it), on every site load and every boundary load. Without it, selecting
  one district's sites scans the assignments: 65 ms instead of 11 ms at 460,000 rows,
  next to the seconds any analysis of those sites takes.

A user who wants either back can create it; downgrade does.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain DROP/CREATE INDEX: a batch (copy-and-move) rebuild would lose the R-tree triggers.
    op.drop_index("ix_site_postcode", table_name="site")
    op.drop_index("ix_site_footprint_code", table_name="site_footprint")


def downgrade() -> None:
    op.create_index("ix_site_footprint_code", "site_footprint", ["code"], unique=False)
    op.create_index("ix_site_postcode", "site", ["postcode"], unique=False)
