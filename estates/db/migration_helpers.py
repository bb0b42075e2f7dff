"""Spatial steps that migrations run after creating or before dropping tables.

On the GeoPackage: register each table in the catalog (features or attributes) and build
the R-tree with its triggers. On PostGIS: a GIST index per geometry column.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from estates.db import geopackage
from estates.db.models import SPATIAL_COLUMNS
from estates.settings import WORKING_EPSG


def _execute(sql: str, params: tuple[object, ...] = ()) -> None:
    bind = op.get_bind()
    bind.exec_driver_sql(sql, params) if params else bind.exec_driver_sql(sql)


def register_spatial_tables(tables: list[str]) -> None:
    """Make the new ``tables`` spatial tables or GeoPackage layers."""
    spatial = {t: (c, g) for t, c, g in SPATIAL_COLUMNS}
    dialect = op.get_bind().dialect.name
    for table in tables:
        if dialect == "postgresql":
            if table in spatial:
                column = spatial[table][0]
                op.create_index(
                    f"ix_{table}_{column}_gist", table, [column], postgresql_using="gist"
                )
            continue
        if table in spatial:
            column, geometry_type = spatial[table]
            geopackage.register_geometry(_execute, table, column, geometry_type, WORKING_EPSG)
        else:
            geopackage.register_attributes(_execute, table)


def unregister_spatial_tables(tables: list[str]) -> None:
    """Undo :func:`register_spatial_tables` before the tables are dropped."""
    spatial = {t: c for t, c, _ in SPATIAL_COLUMNS}
    bind = op.get_bind()
    for table in tables:
        if bind.dialect.name == "postgresql":
            if table in spatial:
                bind.execute(text(f'DROP INDEX IF EXISTS "ix_{table}_{spatial[table]}_gist"'))
            continue
        geopackage.unregister(_execute, table, spatial.get(table))
