"""The last steps every site loader shares, inside its load batch.

Locate rows without usable coordinates from the postcode lookup, write the canonical
site frame (upsert by ``source_key``), assign footprints to the sites that were added
or moved, and count the outcomes. Sites are never dropped for lack of a location.
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


def locate_from_postcodes(
    batch: Batch,
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
    found = db_postcodes.lookup(batch.connection, keys.tolist())
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


def write_site_frame(
    batch: Batch, frame: pd.DataFrame, easting: np.ndarray, northing: np.ndarray
) -> SitesWritten:
    """Locate by postcode where needed, upsert the sites, assign footprints, count.

    ``frame`` has the canonical columns with ``located_by`` already
    ``source_coordinates`` for rows whose published coordinates were used; ``easting``
    and ``northing`` are EPSG:27700 metres, NaN for rows still to locate.
    """
    frame = frame.reset_index(drop=True).copy()
    non_geo = frame["non_geographic"].fillna(False).to_numpy(dtype=bool)
    easting = np.where(non_geo, np.nan, np.asarray(easting, dtype="float64"))
    northing = np.where(non_geo, np.nan, np.asarray(northing, dtype="float64"))
    has_postcode = frame["postcode"].notna().to_numpy(dtype=bool)
    need = np.isnan(easting) & ~non_geo
    easting, northing, by_postcode = locate_from_postcodes(
        batch, frame["postcode"], easting, northing, need & has_postcode
    )
    located = ~np.isnan(easting)
    frame.loc[by_postcode, "located_by"] = "postcode"
    frame.loc[~located, "located_by"] = "none"
    geoms = np.full(len(frame), None, dtype=object)
    if located.any():
        geoms[located] = shapely.points(easting[located], northing[located])
    sites = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=WORKING_CRS))
    with bulk_write(batch):
        result = store.write_sites(batch.connection, sites, batch.id)
        assigned = _assign_footprints(batch, result, frame["source_key"], geoms)
    batch.counts["inserted"] += len(result.inserted)
    batch.counts["updated"] += len(result.updated)
    batch.counts["unchanged"] += len(result.unchanged)
    batch.counts["located"] += int(located.sum())
    batch.counts["non_geographic"] += int(non_geo.sum())
    batch.counts["unlocated"] += int((~located & ~non_geo).sum())
    still = ~located & ~non_geo
    return SitesWritten(
        write=result,
        located_from_postcode=int(by_postcode.sum()),
        unmatched_postcodes=int((still & has_postcode).sum()),
        no_postcode=int((still & ~has_postcode).sum()),
        footprints=assigned,
        located_by=frame["located_by"].to_numpy(dtype=object),
    )


def _assign_footprints(
    batch: Batch, result: store.WriteResult, keys: pd.Series, geoms: np.ndarray
) -> dict[str, dict[str, Any]]:
    """Footprints of the sites just inserted (from their points in memory) and moved."""
    position = pd.Series(np.arange(len(keys)), index=keys.to_numpy())
    out: dict[str, dict[str, Any]] = {}
    for changed, new_sites in ((result.inserted, True), (result.updated, False)):
        if not changed:
            continue
        rows = position.loc[changed].to_numpy()
        done = footprints.assign_footprints(
            batch.connection,
            site_ids=[result.site_ids[k] for k in changed],
            points=geoms[rows],
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
