"""Only Alembic makes the schema; it equals the models; it round-trips; GDAL reads it."""

from __future__ import annotations

import sqlite3

import numpy as np
import pyogrio
import pytest
import shapely
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import estates
from estates.db.engine import head_revision
from estates.db.models import Base


def _diff(estate: estates.Estate) -> list[object]:
    with estate.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"include_object": _include_object(connection.dialect.name), "compare_type": True},
        )
        return list(compare_metadata(context, Base.metadata))


def _include_object(dialect: str):  # type: ignore[no-untyped-def]
    def include(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
        if type_ == "table":
            return name in Base.metadata.tables
        if type_ == "index" and name and name.endswith("_gist"):
            return dialect == "postgresql"
        return True

    return include


def test_models_equal_migrated_schema(db_url: str) -> None:
    estate = estates.connect(db_url)
    assert estate.revision() == head_revision()
    assert _diff(estate) == []


def test_upgrade_downgrade_upgrade_round_trips(db_url: str) -> None:
    estate = estates.connect(db_url)
    owned = set(Base.metadata.tables)
    assert owned <= set(inspect(estate.engine).get_table_names())
    estate.downgrade("base")
    remaining = set(inspect(estate.engine).get_table_names())
    assert not (owned & remaining)
    if estate.is_geopackage:
        # The GeoPackage catalog is not ours: it survives, emptied of our layers.
        assert {"gpkg_contents", "gpkg_spatial_ref_sys", "gpkg_geometry_columns"} <= remaining
        with estate.engine.connect() as c:
            assert c.exec_driver_sql("SELECT count(*) FROM gpkg_contents").scalar_one() == 0
            triggers = c.exec_driver_sql(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
            ).scalar_one()
            assert triggers == 0
    else:
        assert "spatial_ref_sys" in remaining  # PostGIS's own table is never dropped
    estate.upgrade()
    assert estate.revision() == head_revision()
    assert _diff(estate) == []


def test_new_database_is_created_on_first_use(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "fresh.gpkg"
    estates.connect(path)
    header = path.read_bytes()[:100]
    assert header.startswith(b"SQLite format 3")
    assert int.from_bytes(header[68:72], "big") == 0x47504B47  # application_id "GPKG"


def test_geopackage_opens_in_gdal_as_layers_in_bng(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from estates.demo import demo_sites

    path = tmp_path / "demo.gpkg"
    estate = estates.connect(path)
    sites = demo_sites()
    estate.write_sites(sites)
    layers = dict(pyogrio.list_layers(path))
    assert layers["site"] == "Point"
    assert layers["boundary"] == "MultiPolygon"
    assert "organisation" in layers and "load_batch" in layers
    # Every catalogued layer is one of our tables (GDAL warns about any that is not).
    assert set(layers) == set(Base.metadata.tables)
    info = pyogrio.read_info(path, layer="site")
    assert info["crs"] == "EPSG:27700"
    assert info["features"] == len(sites)
    frame = pyogrio.read_dataframe(path, layer="site")
    assert frame.crs.to_epsg() == 27700
    assert {"source_key", "name", "gia_m2", "site_type"} <= set(frame.columns)
    by_key = frame.set_index("source_key")
    original = sites.set_index("source_key")
    assert np.allclose(by_key.loc[original.index, "gia_m2"], original["gia_m2"])
    assert shapely.equals_exact(
        by_key.loc[original.index].geometry.values, original.geometry.values, tolerance=1e-6
    ).all()


def test_bbox_query_uses_rtree_and_returns_exact_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from estates.demo import demo_sites

    path = tmp_path / "bbox.gpkg"
    estate = estates.connect(path)
    sites = demo_sites(n_sites=2000)
    estate.write_sites(sites)
    minx, miny = 377_000.0, 391_000.0
    maxx, maxy = 381_000.0, 395_000.0
    x, y = sites.geometry.x.to_numpy(), sites.geometry.y.to_numpy()
    expected = set(sites.loc[(x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy), "source_key"])
    assert 0 < len(expected) < len(sites)
    got = pyogrio.read_dataframe(path, layer="site", bbox=(minx, miny, maxx, maxy))
    assert set(got["source_key"]) == expected
    # The R-tree itself answers the same (an index that was never filled would answer nothing).
    con = sqlite3.connect(path)
    ids = {
        r[0]
        for r in con.execute(
            "SELECT id FROM rtree_site_geom WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?",
            (maxx, minx, maxy, miny),
        )
    }
    keys = {
        r[0] for r in con.execute("SELECT id, source_key FROM site") if r[0] in ids for r in [r]
    }
    assert len(ids) == len(expected)
    plan = " ".join(
        str(r)
        for r in con.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM rtree_site_geom WHERE minx <= ? AND maxx >= ?",
            (maxx, minx),
        )
    )
    assert "VIRTUAL TABLE INDEX" in plan
    assert keys


def test_rtree_triggers_follow_row_by_row_edits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Edits outside our bulk path (QGIS, SQL) keep the index right through the spec triggers."""
    from estates.demo import demo_sites

    path = tmp_path / "edit.gpkg"
    estate = estates.connect(path)
    estate.write_sites(demo_sites(n_sites=20))
    with estate.engine.begin() as c:
        from estates.db.models import Site

        site_table = Site.__table__
        c.execute(
            site_table.update()
            .where(site_table.c.id == 1)
            .values(geom=shapely.Point(500_000, 200_000))
        )
        c.execute(site_table.update().where(site_table.c.id == 2).values(geom=None))
        c.execute(site_table.delete().where(site_table.c.id == 3))
    con = sqlite3.connect(path)
    assert con.execute("SELECT minx, miny FROM rtree_site_geom WHERE id = 1").fetchone() == (
        500_000.0,
        200_000.0,
    )
    assert con.execute("SELECT count(*) FROM rtree_site_geom WHERE id IN (2, 3)").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM rtree_site_geom").fetchone() == (18,)


@pytest.mark.postgis
def test_postgis_has_gist_index(postgis_url: str) -> None:
    estate = estates.connect(postgis_url)
    indexes = {i["name"] for i in inspect(estate.engine).get_indexes("site")}
    assert "ix_site_geom_gist" in indexes
    with estate.engine.connect() as c:
        srid = c.exec_driver_sql("SELECT Find_SRID('public', 'site', 'geom')").scalar_one()
    assert srid == 27700
