"""The schema, one set of models for both backends (DESIGN.md, "Data model").

Only Alembic creates these tables (``migrations/``); a test proves that the migrated
schema equals these models on the GeoPackage and on PostGIS. Text is ``TEXT`` and floats
are ``DOUBLE`` so GDAL/QGIS read every column of the GeoPackage.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shapely.geometry.base import BaseGeometry
from sqlalchemy import (
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from estates.db.types import Geometry, JSONText, Timestamp

SECTORS = ("nhs", "council", "central_government", "emergency_services", "other")
BOUNDARY_KINDS = ("lad", "icb", "region", "ward", "lsoa", "msoa", "other")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


#: (table, geometry column, geometry type name) of every spatial table.
SPATIAL_COLUMNS = (
    ("site", "geom", "POINT"),
    ("boundary", "geom", "MULTIPOLYGON"),
    ("analysis_feature", "geom", "GEOMETRY"),
)


class Organisation(Base):
    __tablename__ = "organisation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    sector: Mapped[str] = mapped_column(Text)


class LoadBatch(Base):
    """One load of one file: what it was, when, and what it did."""

    __tablename__ = "load_batch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    loader: Mapped[str] = mapped_column(Text)
    file_name: Mapped[str] = mapped_column(Text)
    file_sha256: Mapped[str] = mapped_column(Text)
    options: Mapped[Any] = mapped_column(JSONText, nullable=True)
    status: Mapped[str] = mapped_column(Text, default="running")  # running, complete, undone
    started_at: Mapped[datetime] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    located: Mapped[int] = mapped_column(Integer, default=0)
    unlocated: Mapped[int] = mapped_column(Integer, default=0)
    non_geographic: Mapped[int] = mapped_column(Integer, default=0)


class Site(Base):
    """A public site, located or not (unlocated sites are kept, never dropped)."""

    __tablename__ = "site"
    __table_args__ = (
        Index("ix_site_geom_gist", "geom", postgresql_using="gist").ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_key: Mapped[str] = mapped_column(Text, unique=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    name: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    postcode: Mapped[str | None] = mapped_column(Text)
    uprn: Mapped[str | None] = mapped_column(Text)
    site_type: Mapped[str | None] = mapped_column(Text)
    tenure: Mapped[str | None] = mapped_column(Text)
    holding_type: Mapped[str | None] = mapped_column(Text)
    occupancy: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(Text)
    gia_m2: Mapped[float | None] = mapped_column(Double)
    land_ha: Mapped[float | None] = mapped_column(Double)
    non_geographic: Mapped[bool] = mapped_column(Boolean, default=False)
    located_by: Mapped[str] = mapped_column(
        Text, default="none"
    )  # source_coordinates, postcode, none
    content_hash: Mapped[str] = mapped_column(Text)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("load_batch.id"), index=True)
    geom: Mapped[BaseGeometry | None] = mapped_column(Geometry("POINT"), nullable=True)


class SiteFootprint(Base):
    """Which boundary of each kind contains a located site (district, ICB, ward, ...)."""

    __tablename__ = "site_footprint"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("site.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(Text, primary_key=True)
    code: Mapped[str] = mapped_column(Text)  # no index: see migration 0003


class SiteMeasure(Base):
    """Per site and period figures (ERIC), plus the raw source row for provenance."""

    __tablename__ = "site_measure"
    __table_args__ = (UniqueConstraint("site_id", "period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"), index=True)
    period: Mapped[str] = mapped_column(Text)
    empty_pct: Mapped[float | None] = mapped_column(Double)
    underused_pct: Mapped[float | None] = mapped_column(Double)
    unutilised_pct: Mapped[float | None] = mapped_column(Double)
    not_functionally_suitable_pct: Mapped[float | None] = mapped_column(Double)
    occupied_pct: Mapped[float | None] = mapped_column(Double)
    occupied_floor_area_m2: Mapped[float | None] = mapped_column(Double)
    backlog_high_gbp: Mapped[float | None] = mapped_column(Double)
    backlog_significant_gbp: Mapped[float | None] = mapped_column(Double)
    backlog_moderate_gbp: Mapped[float | None] = mapped_column(Double)
    backlog_low_gbp: Mapped[float | None] = mapped_column(Double)
    running_cost_gbp: Mapped[float | None] = mapped_column(Double)
    energy_cost_gbp: Mapped[float | None] = mapped_column(Double)
    land_not_delivering_ha: Mapped[float | None] = mapped_column(Double)
    raw: Mapped[Any] = mapped_column(JSONText, nullable=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("load_batch.id"), index=True)


class SiteChange(Base):
    """What a load batch did to a site: the row before, so the batch can be undone."""

    __tablename__ = "site_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("load_batch.id"), index=True)
    site_id: Mapped[int] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(Text)  # insert, update
    changed_fields: Mapped[Any] = mapped_column(JSONText, nullable=True)
    before: Mapped[Any] = mapped_column(JSONText, nullable=True)


class RejectedRow(Base):
    """A row of a readable file that could not be used, with the reason."""

    __tablename__ = "rejected_row"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("load_batch.id"), index=True)
    row_number: Mapped[int] = mapped_column(Integer)
    column_name: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[Any] = mapped_column(JSONText, nullable=True)


class Boundary(Base):
    """A footprint polygon: district, ICB, region, ward, LSOA, MSOA."""

    __tablename__ = "boundary"
    __table_args__ = (
        UniqueConstraint("kind", "code"),
        Index("ix_boundary_geom_gist", "geom", postgresql_using="gist").ddl_if(
            dialect="postgresql"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    code: Mapped[str] = mapped_column(Text, index=True)
    name: Mapped[str | None] = mapped_column(Text)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("load_batch.id"))
    geom: Mapped[BaseGeometry] = mapped_column(Geometry("MULTIPOLYGON"))


class AnalysisRun(Base):
    """One analysis: what was asked, with which code, when, and its headline results."""

    __tablename__ = "analysis_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)  # flags, colocation, pool, sensitivity
    footprint: Mapped[str | None] = mapped_column(Text)
    period: Mapped[str | None] = mapped_column(Text)
    parameters: Mapped[Any] = mapped_column(JSONText)
    code_version: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    summary: Mapped[Any] = mapped_column(JSONText, nullable=True)


class RunResult(Base):
    """A run's per-site results (flags, sentences, figures, roles) as one columnar blob.

    One row per run, not per site: :mod:`estates.db.columnar` keeps a national run in
    about 12 MB instead of 480 MB of per-site JSON (about 3 s to write, 1 s to read).
    """

    __tablename__ = "run_result"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("analysis_run.id", ondelete="CASCADE"), primary_key=True
    )
    sites: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class AnalysisFeature(Base):
    """A drawn result of a run: a co-location hull, a pooling flow line, an access area."""

    __tablename__ = "analysis_feature"
    __table_args__ = (
        Index("ix_analysis_feature_geom_gist", "geom", postgresql_using="gist").ddl_if(
            dialect="postgresql"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("analysis_run.id", ondelete="CASCADE"), index=True
    )
    layer: Mapped[str] = mapped_column(Text)
    key: Mapped[str | None] = mapped_column(Text)
    values: Mapped[Any] = mapped_column(JSONText, nullable=True)
    geom: Mapped[BaseGeometry | None] = mapped_column(Geometry("GEOMETRY"), nullable=True)


class Postcode(Base):
    """A postcode's grid reference (EPSG:27700), from ONSPD, Code-Point Open or a lat/long file.

    Plain attributes, no geometry column, so a national lookup loads in seconds.
    """

    __tablename__ = "postcode"

    postcode: Mapped[str] = mapped_column(Text, primary_key=True)  # normalised, "M6 8HD"
    easting: Mapped[float] = mapped_column(Double)
    northing: Mapped[float] = mapped_column(Double)
    source: Mapped[str | None] = mapped_column(Text, nullable=True)
