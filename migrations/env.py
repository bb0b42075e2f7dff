"""Alembic environment for both backends.

It never touches tables it does not own: reflected tables without a model (the
GeoPackage catalog ``gpkg_*``, R-trees ``rtree_*``, PostGIS ``spatial_ref_sys``, topology
...) are filtered out, so autogenerate can never emit ``drop_table`` for them.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import engine_from_config, pool

from estates.db.models import Base

target_metadata = Base.metadata
config = context.config


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    if type_ == "table":
        return name in target_metadata.tables
    if type_ == "index" and name and name.endswith("_gist"):
        # GIST indexes exist on PostGIS only; the GeoPackage has its R-tree instead.
        return context.get_context().dialect.name == "postgresql"
    table = getattr(obj, "table", None)
    return table is None or table.name in target_metadata.tables


def _configure(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section) or {}, poolclass=pool.NullPool
    )
    with engine.begin() as connection:
        _configure(connection)
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported: run `estates db upgrade`")
run_migrations_online()
