"""Any other public estate as points: GP practices, libraries, jobcentres, fire stations.

CSV with longitude/latitude, easting/northing or postcode columns (found from the
headers), or GeoJSON, GeoPackage, shapefile (non-point features are placed at a point
inside them). One organisation and sector per file, from the options; the name column is
found from common headers, else the first text column (``community_hub``). Sites are
keyed ``points:<organisation slug>:<id>``, the id being the file's own identifier column
(``ODS_Code``, ``id``, ``reference``...) when it has one, else the name (and postcode).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import shapely

from estates.db.models import SECTORS
from estates.errors import ConfigurationError, MissingColumnError
from estates.ingest import _parse, _read, coordinates
from estates.ingest._sites import (
    PreparedSites,
    coordinate_issues,
    empty_site_frame,
    prepare_sites,
    write_site_frame,
)
from estates.ingest.report import LoadReport, RowProblems, progress_bar
from estates.settings import WORKING_CRS

if TYPE_CHECKING:
    from tqdm import tqdm

    from estates.estate import Estate

log = logging.getLogger(__name__)

LOADER = "points"

SYNONYMS: dict[str, tuple[str, ...]] = {
    "id": (
        "ODS_Code",
        "ODS Code",
        "Organisation Code",
        "Site Code",
        "Asset Code",
        "AssetCode",
        "Asset ID",
        "Reference",
        "Ref",
        "Identifier",
        "id",
        "code",
        "fid",
        "objectid",
    ),
    "name": (
        "name",
        "Site Name",
        "Property Name",
        "PropertyName",
        "Practice Name",
        "Organisation Name",
        "Title",
    ),
    "address": ("address", "Full Address", "Site Address", "Address 1", "Address Line 1"),
    "postcode": ("postcode", "Post Code", "PostCode", "Postal Code", "pcds", "pcd"),
    "uprn": ("UPRN", "Unique Property Reference Number"),
    "crs": ("CRS", "CoordinateReferenceSystem", "Coordinate Reference System"),
    "longitude": ("lon", "long", "longitude", "lng"),
    "latitude": ("lat", "latitude"),
    "easting": ("easting", "eastings", "os easting", "oseast1m", "x (easting)"),
    "northing": ("northing", "northings", "os northing", "osnrth1m", "y (northing)"),
    "x": ("x", "GeoX", "x coordinate"),
    "y": ("y", "GeoY", "y coordinate"),
    "site_type": ("type", "role", "site type", "category", "service", "Asset Type"),
}
_SYNONYM_KEYS = {_parse.normalise_header(n) for names in SYNONYMS.values() for n in names}


def _score(fields: list[str]) -> int:
    return sum(1 for f in fields if _parse.normalise_header(f) in _SYNONYM_KEYS)


def _name_fallback(frame: pd.DataFrame, taken: set[str]) -> str | None:
    """The first column of mostly non-numeric, non-web text: a name column without the name."""
    for column in frame.columns:
        if column in taken or column.startswith("column "):
            continue
        text = _parse.clean_text(frame[column]).dropna().astype(str)
        if text.empty:
            continue
        numeric = pd.to_numeric(text, errors="coerce").notna().mean()
        web = text.str.contains(r"@|https?://|www\.", regex=True).mean()
        if numeric < 0.5 and web < 0.5 and text.str.len().median() <= 120:
            return str(column)
    return None


@dataclass
class ParsedPoints:
    """A point file parsed, ready to write."""

    sites: pd.DataFrame
    easting: np.ndarray
    northing: np.ndarray
    issues: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    rows_read: int
    columns: dict[str, str]
    converted_to_points: int = 0
    #: Located, hashed and with footprints, if a read-ahead worker did it (load_sources).
    prepared: PreparedSites | None = None


def _check_options(organisation: str, sector: str) -> None:
    if not organisation or not organisation.strip():
        raise ConfigurationError("--organisation is required: the body that holds these sites")
    if sector not in SECTORS:
        raise ConfigurationError(f"sector {sector!r} is not one of {', '.join(SECTORS)}")


def _build(
    where: str,
    frame: pd.DataFrame,
    row_numbers: np.ndarray,
    *,
    organisation: str,
    sector: str,
    category: str | None,
    easting: np.ndarray | None = None,
    northing: np.ndarray | None = None,
    status: np.ndarray | None = None,
    geometry_column: str = "",
) -> tuple[
    pd.DataFrame, np.ndarray, np.ndarray, list[dict[str, Any]], list[dict[str, Any]], dict[str, str]
]:
    """The site frame from text columns (and, for vector files, point coordinates)."""
    n = len(frame)
    columns = [str(c) for c in frame.columns]
    cols = _parse.match_columns([c for c in columns if not c.startswith("column ")], SYNONYMS)
    if "name" not in cols:
        fallback = _name_fallback(frame, set(cols.values()))
        if fallback:
            cols["name"] = fallback
    pairs: list[coordinates.Pair] = []
    if easting is None:
        declared: Any = (
            coordinates.declared_convention(frame[cols["crs"]])
            if "crs" in cols
            else coordinates.UNKNOWN
        )
        if "longitude" in cols and "latitude" in cols:
            pairs.append(coordinates.Pair(cols["longitude"], cols["latitude"], coordinates.LONLAT))
        if "easting" in cols and "northing" in cols:
            pairs.append(coordinates.Pair(cols["easting"], cols["northing"], coordinates.BNG))
        if "x" in cols and "y" in cols:
            pairs.append(coordinates.Pair(cols["x"], cols["y"], declared))
        if not pairs and "postcode" not in cols:
            raise MissingColumnError(
                f"{where}: no location columns: expected longitude/latitude (lon, lat), "
                f"easting/northing, x/y or a postcode column; found: {', '.join(columns)}"
            )
        checked, used = coordinates.resolve_pairs(frame, pairs)
        easting, northing, status = checked.easting, checked.northing, checked.status
    else:
        used = np.zeros(n, dtype=np.int64)
    assert northing is not None and status is not None

    def text(field: str) -> pd.Series:
        if field not in cols:
            return pd.Series([None] * n, dtype=object)
        return _parse.clean_text(frame[cols[field]])

    name = text("name")
    postcode = (
        _parse.normalise_postcodes(frame[cols["postcode"]])
        if "postcode" in cols
        else pd.Series([None] * n, dtype=object)
    )
    if "id" in cols:
        ident = text("id").astype("string")
    else:
        # No identifier column: the name, plus the postcode only where names repeat.
        ident = name.astype("string")
        repeated = ident.duplicated(keep=False).fillna(False)
        if "postcode" in cols and repeated.any():
            with_postcode = (ident + " | " + postcode.astype("string").fillna("")).str.rstrip(" |")
            ident = ident.mask(repeated, with_postcode)
    org_slug = _parse.slug(organisation)
    key = ("points:" + org_slug + ":" + ident).astype("string")
    problems = RowProblems(n)
    for i in np.flatnonzero(key.isna().to_numpy()):
        what = cols.get("id", "name")
        problems.add(i, f"no {what} to identify the site")
    dup = key.duplicated(keep="first").fillna(False).to_numpy() & key.notna().to_numpy()
    if dup.any():
        first = pd.Series(row_numbers, index=key.to_numpy()).groupby(level=0).first()
        for i in np.flatnonzero(dup):
            problems.add(i, f"{ident.iloc[i]} repeats row {int(first[key.iloc[i]])}")
    bad = problems.mask()
    rejected = problems.rejected(row_numbers, frame)

    sites = empty_site_frame(n)
    sites["organisation_code"] = org_slug
    sites["organisation_name"] = organisation.strip()
    sites["sector"] = sector
    sites["source_key"] = key.astype(object).where(key.notna(), None)
    sites["name"] = name
    sites["address"] = text("address")
    sites["postcode"] = postcode
    sites["uprn"] = text("uprn")
    sites["site_type"] = text("site_type")
    sites["category"] = category
    located = ~np.isnan(easting)
    sites.loc[located, "located_by"] = "source_coordinates"

    issues = []
    kept_index = np.cumsum(~bad) - 1
    for i in np.flatnonzero(~bad & ~np.isin(status, [coordinates.OK, coordinates.MISSING])):
        if pairs:
            pair = pairs[used[i]]
            problem = coordinates.describe(
                status[i], pair.x, pair.y, frame.at[i, pair.x], frame.at[i, pair.y]
            )
        else:
            problem = f"the {geometry_column or 'geometry'} is outside Great Britain; not used"
        issues.append(
            {
                "index": int(kept_index[i]),
                "row_number": int(row_numbers[i]),
                "source_key": sites.at[i, "source_key"],
                "name": sites.at[i, "name"],
                "status": status[i],
                "problem": problem,
            }
        )
    keep = ~bad
    return (
        sites.loc[keep].reset_index(drop=True),
        easting[keep],
        northing[keep],
        issues,
        rejected,
        cols,
    )


def parse_points(
    path: str | os.PathLike[str],
    *,
    organisation: str,
    sector: str,
    category: str | None = None,
    layer: str | None = None,
) -> ParsedPoints:
    """Read a point file (CSV, GeoJSON, GeoPackage, shapefile) without touching the database."""
    _check_options(organisation, sector)
    where = os.fspath(path)
    kind = _read.sniff(path)
    if kind == "csv":
        table = _read.read_csv_table(path, what="point list", score=_score, min_score=1)
        sites, e, n, issues, rejected, cols = _build(
            where,
            table.frame,
            table.row_numbers,
            organisation=organisation,
            sector=sector,
            category=category,
        )
        rejected.extend(table.bad_rows)
        return ParsedPoints(
            sites, e, n, issues, rejected, len(table.frame) + len(table.bad_rows), cols
        )
    if kind in ("xlsx", "binary", "utf16", "json"):
        raise _read.source_error(
            path,
            f"is {_read.describe_format(kind)}; points load from CSV, GeoJSON, GeoPackage or shapefile",
        )
    layer_frame = _read.read_vector(path, what="point layer", layer=layer)
    geoms = np.asarray(layer_frame.geometry.values, dtype=object)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    not_point = ~missing & (shapely.get_type_id(geoms) != 0)
    geoms = geoms.copy()
    geoms[not_point] = shapely.point_on_surface(geoms[not_point])
    geoms[missing] = None
    series = layer_frame.set_geometry(list(geoms), crs=layer_frame.crs).geometry.to_crs(WORKING_CRS)
    e = series.x.to_numpy(dtype="float64", na_value=np.nan) if len(series) else np.array([])
    n = series.y.to_numpy(dtype="float64", na_value=np.nan) if len(series) else np.array([])
    in_gb = (
        (e >= coordinates.EAST_RANGE[0])
        & (e <= coordinates.EAST_RANGE[1])
        & (n >= coordinates.NORTH_RANGE[0])
        & (n <= coordinates.NORTH_RANGE[1])
    )
    status = np.where(
        np.isnan(e), coordinates.MISSING, np.where(in_gb, coordinates.OK, coordinates.OUTSIDE_GB)
    ).astype(object)
    e = np.where(in_gb, e, np.nan)
    n = np.where(in_gb, n, np.nan)
    properties = pd.DataFrame(layer_frame.drop(columns=layer_frame.geometry.name))
    properties = properties.astype(object).where(properties.notna(), "")
    properties = properties.map(str) if len(properties) else properties
    properties.columns = [str(c) for c in properties.columns]
    rows = np.arange(1, len(properties) + 1, dtype=np.int64)
    sites, e, n, issues, rejected, cols = _build(
        where,
        properties.reset_index(drop=True),
        rows,
        organisation=organisation,
        sector=sector,
        category=category,
        easting=e,
        northing=n,
        status=status,
        geometry_column="geometry",
    )
    return ParsedPoints(
        sites,
        e,
        n,
        issues,
        rejected,
        len(properties),
        cols,
        converted_to_points=int(not_point.sum()),
    )


def load_points(
    estate: Estate,
    path: str | os.PathLike[str],
    *,
    organisation: str,
    sector: str,
    category: str | None = None,
    layer: str | None = None,
    progress: bool = False,
) -> LoadReport:
    """Load a list of public sites as points for one organisation and sector.

    Parameters
    ----------
    organisation
        The body that holds the sites (its name; the code is a slug of it).
    sector
        One of ``nhs``, ``council``, ``central_government``, ``emergency_services``, ``other``.
    category
        Free text stored on every site (e.g. ``library``).
    layer
        The layer of a multi-layer GeoPackage.
    """
    started = time.perf_counter()
    bar = progress_bar(2, "points", progress)
    parsed = parse_points(
        path, organisation=organisation, sector=sector, category=category, layer=layer
    )
    bar.update(1)
    options = {"organisation": organisation, "sector": sector, "category": category, "layer": layer}
    return write_points(estate, path, parsed, options=options, started=started, bar=bar)


def write_points(
    estate: Estate,
    path: str | os.PathLike[str],
    parsed: ParsedPoints,
    *,
    options: dict[str, Any],
    started: float,
    bar: tqdm,
    sha256: str | None = None,
) -> LoadReport:
    """Write parsed points in one load batch and report them (``options``: as loaded with)."""
    organisation, sector = options["organisation"], options["sector"]
    with estate.batch(LOADER, path, options, sha256=sha256) as batch:
        batch.counts["rows_read"] = parsed.rows_read
        batch.reject(parsed.rejected)
        prepared = parsed.prepared or prepare_sites(
            batch.connection, parsed.sites, parsed.easting, parsed.northing
        )
        written = write_site_frame(batch, prepared)
        counts = dict(batch.counts)
        batch_id = batch.id
    bar.update(1)
    bar.close()
    issues = coordinate_issues(parsed.issues, written.located_by)
    report = LoadReport(
        batch_id=batch_id,
        file=os.fspath(path),
        loader=LOADER,
        elapsed_s=time.perf_counter() - started,
        **counts,
        extra={
            "organisation": organisation,
            "sector": sector,
            "located_from_coordinates": int(
                (parsed.sites["located_by"] == "source_coordinates").sum()
            ),
            "located_from_postcode": written.located_from_postcode,
            "unmatched_postcodes": written.unmatched_postcodes,
            "converted_to_points": parsed.converted_to_points,
            "coordinate_issues": issues,
            "columns": parsed.columns,
            "footprints": written.footprints,
        },
    )
    report.check()
    return report
