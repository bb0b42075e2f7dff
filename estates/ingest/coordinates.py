"""Which coordinate convention a published pair really uses, row by row.

Registers mix conventions: ``GeoX``/``GeoY`` may be longitude/latitude or British
National Grid metres, a row may have its pair the wrong way round (Trafford's Davyhulme
Youth Centre sits "in the sea off Somalia" as published), or carry grid metres under a
``WGS84`` label. Each row's pair is tried under its declared convention first and then
under the others; the first reading that falls inside Great Britain wins and the row is
reported with what was fixed. A pair that is inside Great Britain under no reading is
not used (the site is located by its postcode if it has one) and is reported.

"Inside Great Britain" is a coarse envelope: longitude -8.9..2.1 and latitude 49.8..61.0,
or 5,000..700,000 m east and 5,000..1,250,000 m north on the National Grid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError as ProjCRSError

from estates.ingest._parse import as_objects, is_null_text, parse_numbers
from estates.settings import WORKING_EPSG

LONLAT = "lonlat"
BNG = "bng"
UNKNOWN = "unknown"

#: Row statuses: the first two mean the pair was used as published.
OK = "ok"
MISSING = "missing"
SWAPPED = "swapped"
BNG_AS_LONLAT = "bng_as_lonlat"
LONLAT_AS_BNG = "lonlat_as_bng"
OUTSIDE_GB = "outside_gb"
NOT_NUMERIC = "not_numeric"
PARTIAL = "partial"

LON_RANGE = (-8.9, 2.1)
LAT_RANGE = (49.8, 61.0)
EAST_RANGE = (5_000.0, 700_000.0)
NORTH_RANGE = (5_000.0, 1_250_000.0)

_TO_BNG = Transformer.from_crs("EPSG:4326", f"EPSG:{WORKING_EPSG}", always_xy=True)

_LONLAT_WORDS = re.compile(r"wgs\s*-?\s*84|etrs\s*-?\s*89|4326|4258|crs84|lat|long|degree")
_BNG_WORDS = re.compile(r"osgb|27700|british\s*national\s*grid|national\s*grid|\bbng\b|ordnance")


@dataclass
class CoordinateResult:
    """Per-row outcome: National Grid easting/northing (NaN when unused) and a status."""

    easting: np.ndarray
    northing: np.ndarray
    status: np.ndarray

    @property
    def located(self) -> np.ndarray:
        return ~np.isnan(self.easting)


def declared_convention(crs_text: pd.Series) -> np.ndarray:
    """``lonlat``, ``bng`` or ``unknown`` from a CRS column (``WGS84``, ``OSGB36``, ``EPSG:27700``...)."""
    cells = as_objects(crs_text)
    conventions = {}
    for value in pd.unique(cells):  # a handful of distinct labels, however long the file
        text = str(value).lower() if value is not None else ""
        if _BNG_WORDS.search(text):
            conventions[value] = BNG
        elif _LONLAT_WORDS.search(text):
            conventions[value] = LONLAT
        else:
            conventions[value] = UNKNOWN
    return np.asarray([conventions[v] for v in cells], dtype=object)


def other_crs(crs_text: str) -> CRS | None:
    """A CRS named in a register that is neither WGS84 nor the National Grid, if pyproj knows it."""
    try:
        crs = CRS.from_user_input(crs_text.strip())
    except (ProjCRSError, ValueError, TypeError):
        return None
    epsg = crs.to_epsg()
    return None if epsg in (4326, 4258, WORKING_EPSG) else crs


def _missing(n: int) -> np.ndarray:
    """``n`` statuses of MISSING; ``np.full`` of a string into an object array is 30x slower."""
    status = np.empty(n, dtype=object)
    status[:] = MISSING
    return status


def _in(values: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (values >= bounds[0]) & (values <= bounds[1])


def _lonlat_ok(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return _in(lon, LON_RANGE) & _in(lat, LAT_RANGE)


def _bng_ok(e: np.ndarray, n: np.ndarray) -> np.ndarray:
    return _in(e, EAST_RANGE) & _in(n, NORTH_RANGE)


def _lonlat_reading(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fits = _lonlat_ok(lon, lat)
    e = np.full(len(lon), np.nan)
    n = np.full(len(lon), np.nan)
    if fits.any():
        e[fits], n[fits] = lonlat_to_bng(lon[fits], lat[fits])
        fits &= _bng_ok(e, n)
    return fits, e, n


def lonlat_to_bng(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised WGS84 -> EPSG:27700 (NaN in, NaN out)."""
    e, n = _TO_BNG.transform(np.asarray(lon, dtype="float64"), np.asarray(lat, dtype="float64"))
    e = np.where(np.isfinite(e), e, np.nan)
    n = np.where(np.isfinite(n), n, np.nan)
    return e, n


def check_coordinates(
    x: np.ndarray,
    y: np.ndarray,
    declared: np.ndarray | str,
) -> CoordinateResult:
    """Read each (x, y) pair under its declared convention, else the first that fits GB.

    Parameters
    ----------
    x, y
        The published pair as floats (NaN where empty); ``x`` is the longitude or easting
        column, ``y`` the latitude or northing column.
    declared
        Per row (or for all rows) ``lonlat``, ``bng`` or ``unknown``.

    Returns
    -------
    CoordinateResult
        Status ``ok`` (used as declared, or as the only convention that fits when the
        declaration is unknown), ``swapped``, ``bng_as_lonlat``, ``lonlat_as_bng``
        (used after the fix), ``outside_gb`` or ``missing`` (not used).
    """
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    n = len(x)
    conv = np.broadcast_to(np.asarray(declared, dtype=object), (n,))
    easting = np.full(n, np.nan)
    northing = np.full(n, np.nan)
    status = _missing(n)
    present = ~np.isnan(x) & ~np.isnan(y)
    status[present] = OUTSIDE_GB
    unresolved = present.copy()

    # Each reading: (rows where it fits Great Britain, its easting, its northing).
    # Lon/lat readings are projected only for rows inside the lon/lat envelope.
    readings = {
        "lonlat": _lonlat_reading(x, y),
        "bng": (_bng_ok(x, y), x, y),
        "lonlat_swapped": _lonlat_reading(y, x),
        "bng_swapped": (_bng_ok(y, x), y, x),
    }
    orders = {
        LONLAT: [
            ("lonlat", OK),
            ("lonlat_swapped", SWAPPED),
            ("bng", BNG_AS_LONLAT),
            ("bng_swapped", BNG_AS_LONLAT),
        ],
        BNG: [
            ("bng", OK),
            ("bng_swapped", SWAPPED),
            ("lonlat", LONLAT_AS_BNG),
            ("lonlat_swapped", LONLAT_AS_BNG),
        ],
        UNKNOWN: [
            ("lonlat", OK),
            ("bng", OK),
            ("lonlat_swapped", SWAPPED),
            ("bng_swapped", SWAPPED),
        ],
    }
    if isinstance(declared, str):  # one convention for every row: no per-row comparison
        orders = {declared: orders[declared]} if declared in orders else {}
    for convention, order in orders.items():
        rows = unresolved & (conv == convention) if len(orders) > 1 else unresolved.copy()
        for reading, label in order:
            fits, e, nn = readings[reading]
            take = rows & fits
            easting[take] = e[take]
            northing[take] = nn[take]
            status[take] = label
            rows &= ~take
            unresolved &= ~take
    return CoordinateResult(easting, northing, status)


def transform_to_bng(x: np.ndarray, y: np.ndarray, crs: CRS) -> CoordinateResult:
    """A pair in another named CRS (e.g. Web Mercator), kept only when it lands in GB."""
    transformer = Transformer.from_crs(crs, f"EPSG:{WORKING_EPSG}", always_xy=True)
    e, n = transformer.transform(np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64"))
    e = np.where(np.isfinite(e), e, np.nan)
    n = np.where(np.isfinite(n), n, np.nan)
    present = ~np.isnan(np.asarray(x, dtype="float64")) & ~np.isnan(np.asarray(y, dtype="float64"))
    ok = present & _bng_ok(e, n)
    status = np.where(ok, OK, np.where(present, OUTSIDE_GB, MISSING)).astype(object)
    return CoordinateResult(np.where(ok, e, np.nan), np.where(ok, n, np.nan), status)


def describe(status: str, x_name: str, y_name: str, x: object, y: object) -> str | None:
    """The per-row sentence for a pair that was fixed or not used (None when used as is)."""
    pair = f"{x_name}/{y_name} ({x}, {y})"
    return {
        SWAPPED: f"{pair} are the wrong way round; used swapped back",
        BNG_AS_LONLAT: f"{pair} are National Grid metres labelled as longitude/latitude; "
        "used as EPSG:27700",
        LONLAT_AS_BNG: f"{pair} are longitude/latitude labelled as National Grid; used as WGS84",
        OUTSIDE_GB: f"{pair} is outside Great Britain however it is read; not used",
        NOT_NUMERIC: f"{pair} is not a pair of numbers; not used",
        PARTIAL: f"{pair} has only one coordinate; not used",
    }.get(status)


@dataclass
class Pair:
    """One coordinate column pair of a file and what it is declared to be.

    ``declared`` is ``lonlat``/``bng``/``unknown`` (for all rows or per row), or a pyproj
    ``CRS`` for a named other system.
    """

    x: str
    y: str
    declared: np.ndarray | str | CRS


def resolve_pairs(frame: pd.DataFrame, pairs: list[Pair]) -> tuple[CoordinateResult, np.ndarray]:
    """Check every row's coordinates, using for each row the first pair that has any text.

    Returns the result and, per row, the index of the pair used (-1 when none had text).
    Cells with text that is not a number give ``not_numeric``; one coordinate without the
    other gives ``partial``.
    """

    n = len(frame)
    easting = np.full(n, np.nan)
    northing = np.full(n, np.nan)
    status = _missing(n)
    used = np.full(n, -1, dtype=np.int64)
    open_rows = np.ones(n, dtype=bool)
    for k, pair in enumerate(pairs):
        x_null = is_null_text(frame[pair.x])
        y_null = is_null_text(frame[pair.y])
        has_text = open_rows & ~(x_null & y_null)
        if not has_text.any():
            continue
        x, x_bad = parse_numbers(frame[pair.x])
        y, y_bad = parse_numbers(frame[pair.y])
        if isinstance(pair.declared, CRS):
            result = transform_to_bng(x, y, pair.declared)
        else:
            result = check_coordinates(x, y, pair.declared)
        rows = has_text
        easting[rows] = result.easting[rows]
        northing[rows] = result.northing[rows]
        status[rows] = result.status[rows]
        status[rows & (x_bad | y_bad)] = NOT_NUMERIC
        status[rows & ~(x_bad | y_bad) & (x_null ^ y_null)] = PARTIAL
        unusable = rows & np.isin(status, [NOT_NUMERIC, PARTIAL])
        easting[unusable] = np.nan
        northing[unusable] = np.nan
        used[rows] = k
        open_rows &= ~rows
    return CoordinateResult(easting, northing, status), used
