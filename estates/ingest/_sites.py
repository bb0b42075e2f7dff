"""The last steps every site loader shares, inside its load batch.

Prepare a frame (locate rows without usable coordinates from the postcode lookup, hash
the rows, find their footprints: reads only), then write it (upsert by ``source_key``,
footprints of the sites added or moved) and count the outcomes. Sites are never
dropped for lack of a location.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy.engine import Connection

from estates.db import postcodes as db_postcodes
from estates.db import store
from estates.db.bulk import gc_paused
from estates.estate import Batch
from estates.ingest import coordinates, footprints
from estates.ingest._parse import is_full_postcode
from estates.settings import WORKING_CRS

log = logging.getLogger(__name__)


@dataclass
class SitesWritten:
    """What writing a site frame did."""

    write: store.WriteResult
    located_from_postcode: int = 0
    unmatched_postcodes: int = 0
    no_postcode: int = 0
    footprints: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Per row of the frame written: ``source_coordinates``, ``postcode`` or ``none``.
    located_by: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))


_BULK_CACHE_KIB = -262144  # 256 MiB of SQLite page cache while a big batch writes


@contextmanager
def bulk_write(batch: Batch) -> Iterator[None]:
    """Settings for writing many rows at once: garbage collector paused (it rescans
    every row object again and again) and, on the GeoPackage, a larger page cache so
    index inserts in random key order stay in memory. Both restored afterwards."""
    raw = batch.connection.connection.driver_connection
    previous = None
    if store.is_sqlite(batch.connection) and raw is not None:
        previous = raw.execute("PRAGMA cache_size").fetchone()[0]
        raw.execute(f"PRAGMA cache_size = {_BULK_CACHE_KIB}")
    try:
        with gc_paused():
            yield
    finally:
        if previous is not None and raw is not None:
            raw.execute(f"PRAGMA cache_size = {int(previous)}")


def empty_site_frame(n: int) -> pd.DataFrame:
    """A frame with every canonical column, missing values, ``n`` rows."""
    frame = pd.DataFrame(index=pd.RangeIndex(n))
    for column in (*store.ORGANISATION_FIELDS, *store.SITE_FIELDS):
        frame[column] = pd.Series([None] * n, dtype=object)
    frame["non_geographic"] = False
    frame["located_by"] = "none"
    return frame


@dataclass
class PreparedSites:
    """What writing a site frame needs that reads, but never changes, the database.

    Rows without usable coordinates located from the postcode lookup, every row's
    position, content hash and footprints: about a third of a register's write. A
    read-ahead worker prepares the next file this way while this process writes the one
    before (:mod:`estates.ingest.sources`); alone, a loader prepares inside its own batch.
    Plain arrays, not a second frame: the worker sends it here, and a frame of points
    would cost more to unpickle than it saves.
    """

    frame: pd.DataFrame  # the canonical frame it was prepared from (``located_by`` as read)
    easting: np.ndarray  # EPSG:27700 metres; NaN: unlocated
    northing: np.ndarray
    located_by: np.ndarray  # ``source_coordinates``, ``postcode`` or ``none``
    by_postcode: np.ndarray  # rows located from the postcode lookup
    has_postcode: np.ndarray
    non_geographic: np.ndarray
    hashes: np.ndarray  # store.content_hash of each row
    footprints: dict[str, pd.DataFrame]  # per boundary kind: ``row, code``
    #: The rows ready to copy in if all are new (see :func:`stage`); None: bind them.
    staged: store.StagedSites | None = None

    def sites(self) -> gpd.GeoDataFrame:
        """The site frame to write: the canonical columns, final ``located_by``, points."""
        return _site_frame(self.frame, self.located_by, self.easting, self.northing)


def _with_located_by(frame: pd.DataFrame, located_by: np.ndarray) -> pd.DataFrame:
    frame = frame.reset_index(drop=True).copy()
    frame["located_by"] = located_by
    return frame


def _site_frame(
    frame: pd.DataFrame, located_by: np.ndarray, easting: np.ndarray, northing: np.ndarray
) -> gpd.GeoDataFrame:
    frame = _with_located_by(frame, located_by)
    located = ~np.isnan(easting)
    geoms = np.full(len(frame), None, dtype=object)
    if located.any():
        geoms[located] = shapely.points(easting[located], northing[located])
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=WORKING_CRS))


def locate_from_postcodes(
    connection: Connection,
    postcodes: pd.Series,
    easting: np.ndarray,
    northing: np.ndarray,
    wanted: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fill ``easting``/``northing`` of the ``wanted`` rows from the postcode table.

    Returns the new arrays and a mask of the rows located this way.
    """
    easting = easting.copy()
    northing = northing.copy()
    full = wanted & is_full_postcode(postcodes)
    located = np.zeros(len(postcodes), dtype=bool)
    if not full.any():
        return easting, northing, located
    keys = postcodes[full]
    found = db_postcodes.lookup(connection, keys.tolist())
    if found.empty:
        return easting, northing, located
    by_code = found.set_index("postcode")
    e = keys.map(by_code["easting"]).to_numpy(dtype="float64", na_value=np.nan)
    n = keys.map(by_code["northing"]).to_numpy(dtype="float64", na_value=np.nan)
    idx = np.flatnonzero(full)
    hit = ~np.isnan(e)
    easting[idx[hit]] = e[hit]
    northing[idx[hit]] = n[hit]
    located[idx[hit]] = True
    return easting, northing, located


def prepare_sites(
    connection: Connection,
    frame: pd.DataFrame,
    easting: np.ndarray | None = None,
    northing: np.ndarray | None = None,
) -> PreparedSites:
    """Locate by postcode where needed, hash the rows, find their footprints.

    ``frame`` has the canonical columns with ``located_by`` already
    ``source_coordinates`` for rows whose published coordinates were used; ``easting``
    and ``northing`` are EPSG:27700 metres, NaN (or None for all) for rows still to
    locate. Reads the postcode and boundary tables only.
    """
    unlocated = np.full(len(frame), np.nan)
    easting = unlocated if easting is None else np.asarray(easting, dtype="float64")
    northing = unlocated if northing is None else np.asarray(northing, dtype="float64")
    non_geo = frame["non_geographic"].fillna(False).to_numpy(dtype=bool)
    easting = np.where(non_geo, np.nan, easting)
    northing = np.where(non_geo, np.nan, northing)
    postcodes = frame["postcode"].reset_index(drop=True)
    has_postcode = postcodes.notna().to_numpy(dtype=bool)
    need = np.isnan(easting) & ~non_geo
    easting, northing, by_postcode = locate_from_postcodes(
        connection, postcodes, easting, northing, need & has_postcode
    )
    located_by = frame["located_by"].to_numpy(dtype=object).copy()
    located_by[by_postcode] = "postcode"
    located_by[np.isnan(easting)] = "none"
    sites = _site_frame(frame, located_by, easting, northing)
    return PreparedSites(
        frame=frame,
        easting=easting,
        northing=northing,
        located_by=located_by,
        by_postcode=by_postcode,
        has_postcode=has_postcode,
        non_geographic=non_geo,
        hashes=store.site_hashes(sites),
        footprints=footprints.footprints_of(connection, sites.geometry.to_numpy()),
    )


def stage(prepared: PreparedSites) -> None:
    """Bind the prepared rows into a staging image (:func:`store.stage_sites`): in the
    read-ahead worker, that takes the writer's largest cost of a first load off it."""
    frame = _with_located_by(prepared.frame, prepared.located_by)  # no points: not needed
    prepared.staged = store.stage_sites(frame, prepared.easting, prepared.northing, prepared.hashes)


def write_site_frame(batch: Batch, prepared: PreparedSites) -> SitesWritten:
    """Upsert the prepared sites, write the footprints of those added or moved, count."""
    sites = prepared.sites()
    located = ~np.isnan(prepared.easting)
    non_geo = prepared.non_geographic
    with bulk_write(batch):
        result = store.write_sites(
            batch.connection, sites, batch.id, hashes=prepared.hashes, staged=prepared.staged
        )
        assigned = _write_footprints(batch, result, sites, prepared.footprints)
    batch.counts["inserted"] += len(result.inserted)
    batch.counts["updated"] += len(result.updated)
    batch.counts["unchanged"] += len(result.unchanged)
    batch.counts["located"] += int(located.sum())
    batch.counts["non_geographic"] += int(non_geo.sum())
    batch.counts["unlocated"] += int((~located & ~non_geo).sum())
    still = ~located & ~non_geo
    return SitesWritten(
        write=result,
        located_from_postcode=int(prepared.by_postcode.sum()),
        unmatched_postcodes=int((still & prepared.has_postcode).sum()),
        no_postcode=int((still & ~prepared.has_postcode).sum()),
        footprints=assigned,
        located_by=prepared.located_by,
    )


def _write_footprints(
    batch: Batch,
    result: store.WriteResult,
    sites: gpd.GeoDataFrame,
    prepared: dict[str, pd.DataFrame],
) -> dict[str, dict[str, Any]]:
    """Footprints of the sites just inserted and of those updated (they may have moved)."""
    keys = sites["source_key"]
    position = pd.Series(np.arange(len(keys)), index=keys.to_numpy())
    located = sites.geometry.notna().to_numpy()
    out: dict[str, dict[str, Any]] = {}
    for changed, new_sites in ((result.inserted, True), (result.updated, False)):
        if not changed:
            continue
        rows = position.loc[changed].to_numpy()
        # The prepared footprints, renumbered from frame rows to rows of ``changed``.
        renumber = np.full(len(keys), -1, dtype=np.int64)
        renumber[rows] = np.arange(len(rows))
        found = {}
        for kind, of_kind in prepared.items():
            at = renumber[of_kind["row"].to_numpy(dtype=np.int64)]
            found[kind] = pd.DataFrame(
                {"row": at[at >= 0], "code": of_kind["code"].to_numpy(dtype=object)[at >= 0]}
            )
        done = footprints.write_footprints(
            batch.connection,
            np.asarray([result.site_ids[k] for k in changed], dtype=np.int64),
            located[rows],
            found,
            new_sites=new_sites,
        )
        for kind, counts in done.items():
            total = out.setdefault(kind, {"assigned": 0, "outside": 0})
            total["assigned"] += counts["assigned"]
            total["outside"] += counts["outside"]
    return out


def coordinate_issues(
    issue_rows: list[dict[str, Any]], located_by: np.ndarray
) -> list[dict[str, Any]]:
    """The per-row coordinate report, with what happened to each site in the end."""
    out = []
    for issue in issue_rows:
        fixed = issue["status"] in (
            coordinates.SWAPPED,
            coordinates.BNG_AS_LONLAT,
            coordinates.LONLAT_AS_BNG,
        )
        how = located_by[issue["index"]]
        action = (
            "placed at the corrected position"
            if fixed
            else ("located by its postcode instead" if how == "postcode" else "left unlocated")
        )
        out.append(
            {
                "row_number": issue["row_number"],
                "source_key": issue["source_key"],
                "name": issue["name"],
                "issue": issue["status"],
                "problem": issue["problem"],
                "action": action,
            }
        )
    return out
