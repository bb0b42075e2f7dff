"""Column types that mean the same on the GeoPackage and on PostGIS."""

from __future__ import annotations

import json
from typing import Any

import geoalchemy2
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import DateTime, Text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

from estates.db import geopackage
from estates.settings import WORKING_EPSG


class _GeoPackageBlob(UserDefinedType[bytes]):
    """A BLOB declared with its geometry type name, as the GeoPackage spec asks."""

    cache_ok = True

    def __init__(self, geometry_type: str) -> None:
        self.geometry_type = geometry_type

    def get_col_spec(self, **kw: Any) -> str:
        return self.geometry_type


class GeoPackageGeometry(TypeDecorator[BaseGeometry]):
    """Shapely geometry stored as GeoPackage binary (EPSG:27700) on SQLite."""

    impl = _GeoPackageBlob
    cache_ok = True

    def __init__(self, geometry_type: str) -> None:
        super().__init__(geometry_type)
        self.geometry_type = geometry_type

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        return geopackage.encode([value], WORKING_EPSG)[0]

    def process_result_value(self, value: Any, dialect: Dialect) -> BaseGeometry | None:
        if value is None:
            return None
        return geopackage.decode([value])[0]


class _PostGISGeometry(geoalchemy2.Geometry):
    """GeoAlchemy2 geometry that takes and returns shapely objects."""

    cache_ok = True

    def bind_processor(self, dialect: Dialect):
        parent = super().bind_processor(dialect)

        def process(value: Any) -> Any:
            if isinstance(value, BaseGeometry):
                value = f"SRID={WORKING_EPSG};{shapely.to_wkt(value, rounding_precision=-1)}"
            return parent(value) if parent else value

        return process

    def result_processor(self, dialect: Dialect, coltype: Any):
        def process(value: Any) -> BaseGeometry | None:
            if value is None:
                return None
            data = value if isinstance(value, bytes | memoryview) else bytes.fromhex(str(value))
            return shapely.from_wkb(bytes(data))

        return process


def Geometry(geometry_type: str) -> TypeEngine[Any]:
    """A geometry column in EPSG:27700: GeoPackage binary on SQLite, PostGIS geometry on PostgreSQL."""
    return GeoPackageGeometry(geometry_type).with_variant(
        _PostGISGeometry(geometry_type, srid=WORKING_EPSG, spatial_index=False), "postgresql"
    )


class JSONText(TypeDecorator[Any]):
    """JSON kept as TEXT (GDAL reads it as a string field); JSONB on PostgreSQL."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB())
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return json.dumps(value, ensure_ascii=False, default=str)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return json.loads(value)


#: ISO 8601 with a ``T``, as GDAL expects in GeoPackage DATETIME columns.
Timestamp = DateTime(timezone=True).with_variant(
    sqlite.DATETIME(
        storage_format="%(year)04d-%(month)02d-%(day)02dT%(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06dZ",
        regexp=r"(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)\.(\d+)Z",
    ),
    "sqlite",
)


def _reflected_geopackage_type(geometry_type: str) -> type[GeoPackageGeometry]:
    def __init__(self: GeoPackageGeometry) -> None:
        GeoPackageGeometry.__init__(self, geometry_type)

    return type(
        f"GeoPackage{geometry_type.title()}",
        (GeoPackageGeometry,),
        {"cache_ok": True, "__init__": __init__},
    )


# GeoAlchemy2 maps these SQLite column types to SpatiaLite geometry, whose reflection
# queries SpatiaLite's ``geometry_columns`` table, which a GeoPackage does not have.
# Reflect them as GeoPackage geometry instead.
for _name in (
    "GEOMETRY",
    "POINT",
    "LINESTRING",
    "POLYGON",
    "MULTIPOINT",
    "MULTILINESTRING",
    "MULTIPOLYGON",
    "GEOMETRYCOLLECTION",
):
    sqlite.base.ischema_names[_name] = _reflected_geopackage_type(_name)
