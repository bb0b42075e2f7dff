"""The bulk write paths: multi-row inserts, the packed R-tree, hashes checked by value."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from sqlalchemy import text

import estates
from estates.db import bulk, rtree, store
from estates.demo import demo_sites


def _reference_tree(ids: np.ndarray, boxes: np.ndarray) -> sqlite3.Connection:
    """The same entries inserted one by one by SQLite itself."""
    ref = sqlite3.connect(":memory:")
    ref.execute("CREATE VIRTUAL TABLE r USING rtree(id, minx, maxx, miny, maxy)")
    ref.executemany(
        "INSERT INTO r VALUES (?, ?, ?, ?, ?)",
        zip(ids.tolist(), *(boxes[:, k].tolist() for k in (0, 2, 1, 3)), strict=True),
    )
    return ref


def _box_query(con: sqlite3.Connection, table: str, box: tuple[float, ...]) -> list[int]:
    minx, miny, maxx, maxy = box
    rows = con.execute(
        f"SELECT id FROM {table} WHERE maxx >= ? AND minx <= ? AND maxy >= ? AND miny <= ?",
        (minx, maxx, miny, maxy),
    )
    return sorted(r[0] for r in rows)


@pytest.mark.parametrize("n", [0, 1, 51, 52, 2_601, 2_653, 40_000])
def test_packed_rtree_equals_sqlites_own(n: int) -> None:
    """Same stored boxes (32-bit, rounded outwards), same answers, valid for rtreecheck,
    and still an ordinary R-tree for later inserts and deletes."""
    rng = np.random.default_rng(n)
    x, y = rng.uniform(-5_000, 700_000, n), rng.uniform(0, 1_250_000, n)
    size = rng.uniform(0, 300, n) * (rng.random(n) < 0.3)  # points and small boxes
    boxes = np.column_stack([x, y, x + size, y + size])
    ids = rng.permutation(3 * n + 1)[:n] + 1
    con = sqlite3.connect(":memory:")
    rtree.rebuild(con, "rtree_site_geom", ids, boxes[:, 0], boxes[:, 2], boxes[:, 1], boxes[:, 3])
    ref = _reference_tree(ids, boxes)
    assert con.execute("SELECT rtreecheck('rtree_site_geom')").fetchone()[0] == "ok"
    stored = sorted(con.execute("SELECT * FROM rtree_site_geom").fetchall())
    assert stored == sorted(ref.execute("SELECT * FROM r").fetchall())
    for _ in range(20):
        cx, cy, d = rng.uniform(0, 700_000), rng.uniform(0, 1_250_000), rng.uniform(10, 80_000)
        box = (cx - d, cy - d, cx + d, cy + d)
        assert _box_query(con, "rtree_site_geom", box) == _box_query(ref, "r", box)
    con.execute("INSERT INTO rtree_site_geom VALUES (?, 1, 2, 3, 4)", (10**9,))
    con.executemany("DELETE FROM rtree_site_geom WHERE id = ?", [(int(i),) for i in ids[: n // 2]])
    assert con.execute("SELECT rtreecheck('rtree_site_geom')").fetchone()[0] == "ok"
    assert con.execute("SELECT count(*) FROM rtree_site_geom").fetchone()[0] == n - n // 2 + 1
    entries = rtree.read_entries(con, "rtree_site_geom")
    assert sorted(entries["id"].tolist()) == sorted([*ids[n // 2 :].tolist(), 10**9])


def test_bulk_load_then_edits_keep_the_geopackage_index_right(tmp_path: Path) -> None:
    """A load big enough to rebuild the R-tree, then row edits through the triggers: GDAL's
    bounding-box answers and `estates check` (rtreecheck included) stay right."""
    path = tmp_path / "bulk.gpkg"
    estate = estates.connect(path)
    sites = demo_sites(n_sites=6_000, seed=3)
    estate.write_sites(sites)
    with estate.write() as connection:
        connection.execute(text("DELETE FROM site WHERE id % 7 = 0"))
        connection.execute(text("UPDATE site SET geom = NULL WHERE id % 11 = 0"))
    assert estate.check().ok
    located = estate.sites(located=True)
    minx, miny, maxx, maxy = located.total_bounds
    box = (minx, miny, (minx + maxx) / 2, (miny + maxy) / 2)
    expected = set(located.loc[located.intersects(shapely.box(*box)), "site_id"])
    got = pyogrio.read_dataframe(
        path, layer="site", bbox=box, columns=["source_key"], fid_as_index=True
    )
    assert set(got.index) == expected and expected


def test_a_changed_hash_with_equal_values_is_not_an_update(estate: estates.Estate) -> None:
    """A stored hash from another version of the hash function costs a comparison, not a
    false update: the rows read back equal, so nothing is recorded and the hash is renewed."""
    sites = demo_sites(n_sites=40)
    estate.write_sites(sites)
    with estate.write() as connection:
        connection.execute(text("UPDATE site SET content_hash = 'older-format'"))
    changed = sites.copy()
    changed.loc[changed.index[0], "name"] = "Renamed site"
    result = estate.write_sites(changed)
    assert result.updated == [changed["source_key"].iloc[0]]
    assert len(result.unchanged) == 39
    with estate.read() as connection:
        old = connection.execute(
            text("SELECT count(*) FROM site WHERE content_hash = 'older-format'")
        ).scalar_one()
    assert old == 0
    again = estate.write_sites(changed)
    assert (len(again.updated), len(again.unchanged)) == (0, 40)


def test_only_the_schemas_rtrees_are_touched() -> None:
    con = sqlite3.connect(":memory:")
    empty = np.zeros(0)
    with pytest.raises(ValueError, match="not the R-tree"):
        rtree.rebuild(
            con, 'rtree_site_geom"; DROP TABLE site; --', empty, empty, empty, empty, empty
        )
    with pytest.raises(ValueError, match="not the R-tree"):
        rtree.read_entries(con, "sqlite_master")


def test_insert_columns_chunks_and_checks_names(tmp_path: Path) -> None:
    estate = estates.connect(tmp_path / "rows.gpkg")
    n = 1_234  # not a multiple of the rows per statement
    with estate.write() as connection:
        raw = connection.connection.driver_connection
        written = bulk.insert_columns(
            raw,
            "postcode",
            ("postcode", "easting", "northing", "source"),
            ([f"ZZ{i} 1AA" for i in range(n)], [float(i) for i in range(n)], [0.5] * n, ["t"] * n),
        )
        assert written == n
        rows = connection.execute(text("SELECT postcode, easting FROM postcode ORDER BY easting"))
        assert [tuple(r) for r in rows][:2] == [("ZZ0 1AA", 0.0), ("ZZ1 1AA", 1.0)]
        stored = connection.execute(text("SELECT northing, source FROM postcode")).all()
        assert len(stored) == n and set(stored) == {(0.5, "t")}  # constant columns, bound once
        with pytest.raises(ValueError, match="unknown column"):
            bulk.insert_columns(raw, "postcode", ("postcode", "x; DROP TABLE site"), ([], []))
        with pytest.raises(ValueError, match="unknown table"):
            bulk.insert_columns(raw, "sqlite_master", ("name",), (["x"],))
        with pytest.raises(ValueError, match="differ in length"):
            bulk.insert_columns(raw, "postcode", ("postcode", "easting"), (["a"], [1.0, 2.0]))


def test_insert_columns_binds_a_column_once_only_when_every_cell_is_the_same(
    tmp_path: Path,
) -> None:
    """Equal is not enough: 1 and 1.0 compare equal but are stored as different text."""
    estate = estates.connect(tmp_path / "rows.gpkg")
    n = 1_001
    mixed = [1] * (n - 1) + [1.0]  # equal to each other, but text "1" and "1.0"
    with estate.write() as connection:
        raw = connection.connection.driver_connection
        bulk.insert_columns(
            raw,
            "postcode",
            ("postcode", "easting", "northing", "source"),
            ([f"ZZ{i} 1AA" for i in range(n)], [3.0] * n, [2.0] * n, mixed),
        )
        rows = connection.execute(
            text("SELECT postcode, easting, northing, source FROM postcode ORDER BY rowid")
        ).all()
    assert [r[0] for r in rows] == [f"ZZ{i} 1AA" for i in range(n)]
    assert {r[1:3] for r in rows} == {(3.0, 2.0)}
    assert [r[3] for r in rows] == ["1"] * (n - 1) + ["1.0"]
    with estate.write() as connection:  # every column the same: the rows still go in
        raw = connection.connection.driver_connection
        raw.execute(
            "INSERT INTO load_batch (id, loader, file_name, file_sha256, status, started_at, "
            "rows_read, inserted, updated, unchanged, rejected, located, unlocated, "
            "non_geographic) VALUES (7, 't', 't', 't', 'complete', '2026-01-01', "
            "0, 0, 0, 0, 0, 0, 0, 0)"
        )
        columns = ("batch_id", "site_id", "action")
        bulk.insert_columns(raw, "site_change", columns, ([7] * n, [5] * n, ["insert"] * n))
        stored = connection.execute(text("SELECT batch_id, site_id, action FROM site_change"))
        assert stored.all() == [(7, 5, "insert")] * n


def test_only_sites_sharing_the_files_key_prefix_are_compared(estate: estates.Estate) -> None:
    """Existing sites are read by the frame's common key prefix; the classification must
    not depend on it (overlapping prefixes, mixed frames, non-ASCII keys)."""
    base = demo_sites(n_sites=20)
    row_of: dict[str, int] = {}

    def keyed(keys: list[str]) -> gpd.GeoDataFrame:
        """The same demo row for a key every time it is written."""
        rows = [row_of.setdefault(k, len(row_of)) for k in keys]
        frame = base.iloc[rows].copy()
        frame["source_key"] = keys
        return frame

    first = estate.write_sites(keyed([f"lgtc:a:{i}" for i in range(6)]))
    assert len(first.inserted) == 6
    longer = estate.write_sites(keyed([f"lgtc:ab:{i}" for i in range(4)]))  # "lgtc:a" is no match
    assert len(longer.inserted) == 4
    accented = estate.write_sites(keyed(["lgtc:é:1", "lgtc:é:2"]))
    assert len(accented.inserted) == 2
    mixed = keyed(["lgtc:a:0", "lgtc:ab:1", "lgtc:é:1", "eric:NEW01"])  # no common prefix
    mixed.loc[mixed.index[0], "name"] = "Changed"
    result = estate.write_sites(mixed)
    assert result.updated == ["lgtc:a:0"]
    assert result.inserted == ["eric:NEW01"]
    assert sorted(result.unchanged) == ["lgtc:ab:1", "lgtc:é:1"]
    assert result.site_ids["lgtc:a:0"] == first.site_ids["lgtc:a:0"]
    again = estate.write_sites(keyed([f"lgtc:a:{i}" for i in range(6)]))
    assert len(again.inserted) == 0


def test_hilbert_order_walks_a_grid_one_cell_at_a_time() -> None:
    """New sites get ids along a Hilbert curve: each next site is a neighbour on the ground."""
    from estates.db.rtree import hilbert_order

    cells = np.arange(16, dtype=float)
    xx, yy = np.meshgrid(cells, cells)
    points = shapely.points(xx.ravel(), yy.ravel())
    mixed = np.concatenate([[None], points[::-1], [shapely.Point()]])
    order = hilbert_order(mixed, bits=4)
    assert sorted(order.tolist()) == list(range(len(mixed)))
    assert order[-2:].tolist() == [0, len(mixed) - 1]  # missing and empty last, in order
    walk = shapely.get_coordinates(mixed[order[:-2]])
    assert (np.abs(np.diff(walk, axis=0)).sum(axis=1) == 1).all()


def test_hilbert_order_of_coordinates_is_that_of_the_points() -> None:
    """The worker orders staged rows from eastings and northings; the writer, from points."""
    rng = np.random.default_rng(4)
    x, y = rng.uniform(300_000, 500_000, 2_000), rng.uniform(100_000, 600_000, 2_000)
    x[::37] = np.nan  # unlocated sites
    points = shapely.points(x, y)
    points[np.isnan(x)] = None
    assert rtree.hilbert_order_xy(x, y).tolist() == rtree.hilbert_order(points).tolist()


def _staged_write(estate: estates.Estate, sites: gpd.GeoDataFrame, staged: object) -> list[str]:
    """Write ``sites`` with ``staged`` rows in one batch; the rows the copy was asked for."""
    copies: list[str] = []
    original = store._copy_staged

    def counted(raw, staged, start, batch_id, count):  # type: ignore[no-untyped-def]
        copies.append(f"{count} from {start}")
        return original(raw, staged, start, batch_id, count)

    store._copy_staged = counted  # type: ignore[assignment]
    try:
        with estate.batch("test", "staged") as batch:
            store.write_sites(batch.connection, sites, batch.id, staged=staged)  # type: ignore[arg-type]
    finally:
        store._copy_staged = original  # type: ignore[assignment]
    return copies


def test_staged_site_rows_store_exactly_what_binding_stores(tmp_path: Path) -> None:
    """Rows bound in the read-ahead worker and copied in by INSERT ... SELECT are the rows,
    ids, points, hashes and R-tree entries that binding them in the writer gives."""
    from tests.test_reliability import table_checksums

    sites = demo_sites(n_sites=3_000, seed=5)
    sites.loc[sites.index[::50], "geometry"] = None  # unlocated
    sites.loc[sites.index[1], "non_geographic"] = True
    sites.loc[sites.index[2], "name"] = "Café ‘quoted’ = 1"
    bound = estates.connect(tmp_path / "bound.gpkg")
    with bound.batch("test", "staged") as batch:
        store.write_sites(batch.connection, sites, batch.id)
    copied = estates.connect(tmp_path / "copied.gpkg")
    located = sites.geometry.notna().to_numpy()
    x = np.where(located, sites.geometry.x.where(located), np.nan)
    y = np.where(located, sites.geometry.y.where(located), np.nan)
    staged = store.stage_sites(sites, x, y, store.site_hashes(sites))
    assert _staged_write(copied, sites, staged) == ["3000 from 1"]
    ours = {k: v for k, v in table_checksums(copied).items() if k != "load_batch"}
    theirs = {k: v for k, v in table_checksums(bound).items() if k != "load_batch"}
    assert ours == theirs and ours["site"].startswith("3000:")
    with (
        sqlite3.connect(tmp_path / "copied.gpkg") as con,
        sqlite3.connect(tmp_path / "bound.gpkg") as ref,
    ):
        entries = "SELECT * FROM rtree_site_geom ORDER BY id"
        assert con.execute(entries).fetchall() == ref.execute(entries).fetchall()
        assert con.execute("SELECT rtreecheck('rtree_site_geom')").fetchone()[0] == "ok"
    assert copied.check().ok


def test_staged_rows_of_an_unknown_organisation_fail_the_write(tmp_path: Path) -> None:
    """The copy joins organisations by code: a row it would drop fails the load instead."""
    estate = estates.connect(tmp_path / "staged.gpkg")
    sites = demo_sites(n_sites=30)
    x, y = sites.geometry.x.to_numpy(), sites.geometry.y.to_numpy()
    staged = store.stage_sites(sites, x, y, store.site_hashes(sites))
    renamed = sites.copy()
    renamed["organisation_code"] = "OTHER-" + renamed["organisation_code"]
    with pytest.raises(RuntimeError, match="wrote 0 rows of 30"):
        _staged_write(estate, renamed, staged)
    assert estate.sites().empty  # the batch was rolled back
