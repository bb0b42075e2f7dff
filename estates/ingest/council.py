"""Council land and building asset registers (Local Government Transparency Code 2015).

Reads the LGA schema as published (``OrganisationLabel``, ``UPRN``, ``AssetCode``,
``PropertyName``, ``PostCode``, ``CoordinateReferenceSystem``, ``GeoX``/``GeoY``,
``TenureType``, ``TenureDetail``, ``HoldingType``, ``BuildingSize``, ``LandArea``) and
the variants councils publish, through header synonyms (:data:`SYNONYMS`) and an
optional mapping profile (:mod:`estates.ingest.profile`), never code per council: title
lines above the header, Windows-1252 or UTF-8 with BOM, National Grid or lat/long under
various names. Coordinates are checked row by row (:mod:`estates.ingest.coordinates`);
a swapped or mislabelled pair is fixed and reported, a pair outside Great Britain is
not stored (the asset is located by its postcode if possible) and reported.

Sites are keyed ``lgtc:<organisation slug>:<AssetCode>`` (``uprn-<UPRN>`` when the row
has no asset code). ``TenureDetail`` becomes ``occupancy``: ``vacant``, ``occupied``,
``let`` or ``other`` (a profile's ``[occupancy]`` table adds local wording).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from estates.errors import ConfigurationError, MissingColumnError
from estates.ingest import _parse, _read, coordinates
from estates.ingest._sites import (
    PreparedSites,
    coordinate_issues,
    empty_site_frame,
    prepare_sites,
    write_site_frame,
)
from estates.ingest.profile import BUILDING_UNITS, LAND_UNITS, Profile, load_profile
from estates.ingest.report import LoadReport, RowProblems, progress_bar

if TYPE_CHECKING:
    from tqdm import tqdm

    from estates.estate import Estate

log = logging.getLogger(__name__)

LOADER = "council"

#: Header synonyms per canonical field, compared ignoring case, spaces and punctuation.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "organisation": (
        "OrganisationLabel",
        "Organisation",
        "Organisation Name",
        "Council",
        "Local Authority",
        "Authority",
    ),
    "asset_id": (
        "AssetCode",
        "Asset Code",
        "Asset Reference",
        "Asset Ref",
        "Asset ID",
        "Asset Number",
        "Asset No",
        "Property Reference",
        "Property Ref",
        "Property Code",
        "Property ID",
        "Property Number",
        "Site Reference",
        "Site Ref",
        "Site Code",
        "Reference",
        "Ref",
    ),
    "uprn": ("UPRN", "Unique Property Reference Number", "UPRN Number", "Property UPRN"),
    "name": (
        "PropertyName",
        "Property Name",
        "Asset Name",
        "Site Name",
        "Building Name",
        "Name",
        "Property",
        "Asset Description",
        "Property Description",
        "Description",
    ),
    "address": ("Address", "Full Address", "Property Address", "Site Address", "Address 1"),
    "street_number": ("StreetNumber", "Street Number", "Building Number", "House Number"),
    "street_name": ("StreetName", "Street Name", "Street", "Road"),
    "town": ("PostTown", "Post Town", "Town", "Town/City"),
    "postcode": ("PostCode", "Post Code", "Postcode", "Postal Code", "Post Code(s)"),
    "crs": (
        "CoordinateReferenceSystem",
        "Coordinate Reference System",
        "CRS",
        "Coordinate System",
        "Spatial Reference",
    ),
    "x": ("GeoX", "Geo X", "X", "X Coordinate", "XCoord", "X Coord", "Map X"),
    "y": ("GeoY", "Geo Y", "Y", "Y Coordinate", "YCoord", "Y Coord", "Map Y"),
    "easting": (
        "Easting",
        "Eastings",
        "OS Easting",
        "Grid Easting",
        "BNG Easting",
        "Easting (BNG)",
        "Grid Reference Easting",
    ),
    "northing": (
        "Northing",
        "Northings",
        "OS Northing",
        "Grid Northing",
        "BNG Northing",
        "Northing (BNG)",
        "Grid Reference Northing",
    ),
    "longitude": ("Longitude", "Long", "Lon", "Lng"),
    "latitude": ("Latitude", "Lat"),
    "tenure": ("TenureType", "Tenure Type", "Tenure", "Ownership", "Freehold/Leasehold"),
    "tenure_detail": (
        "TenureDetail",
        "Tenure Detail",
        "Occupancy",
        "Occupancy Status",
        "Occupation Status",
        "Use Status",
        "Status",
    ),
    "site_type": (
        "OtherDetail",
        "Other Detail",
        "Asset Type",
        "Property Type",
        "Asset Use",
        "Property Use",
        "Current Use",
        "Use",
        "Type",
    ),
    "holding_type": (
        "HoldingType",
        "Holding Type",
        "Land or Building",
        "Land/Building",
        "Asset Class",
    ),
    "building_size": (
        "BuildingSize",
        "Building Size",
        "Gross Internal Area",
        "GIA",
        "GIA (m2)",
        "GIA m2",
        "Floor Area",
        "Internal Floor Area",
        "Building Area",
    ),
    "land_area": ("LandArea", "Land Area", "Site Area", "Land Area (ha)", "Area (ha)", "Hectares"),
    "category": ("Category", "Asset Category"),
}
_SYNONYM_KEYS = {_parse.normalise_header(name) for names in SYNONYMS.values() for name in names}

#: TenureDetail wording -> occupancy (exact, lower-case); then keyword rules below.
OCCUPANCY = {
    "vacant": "vacant",
    "empty": "vacant",
    "unoccupied": "vacant",
    "void": "vacant",
    "owner occupied": "occupied",
    "occupied": "occupied",
    "operational": "occupied",
    "in use": "occupied",
    "leasehold in": "occupied",
    "leasehold out": "let",
    "leased out": "let",
    "let": "let",
    "let out": "let",
    "tenanted": "let",
    "licence out": "let",
    "surplus": "surplus",
    "other": "other",
}
_OCCUPANCY_RULES = (
    (re.compile(r"\b(?:vacant|empty|unoccupied|void)\b"), "vacant"),
    (re.compile(r"\b(?:let|leased out|leasehold out|tenant|tenanted|licen[cs]e out)\b"), "let"),
    (re.compile(r"\b(?:occupied|operational|in use)\b"), "occupied"),
    (re.compile(r"\bsurplus\b"), "surplus"),
)


def _score(fields: list[str]) -> int:
    return sum(1 for f in fields if _parse.normalise_header(f) in _SYNONYM_KEYS)


def normalise_occupancy(values: pd.Series, extra: Mapping[str, str] | None = None) -> pd.Series:
    """Occupancy words (``vacant``, ``occupied``, ``let``, ``surplus``, ``other``) from tenure text."""
    table = {**OCCUPANCY, **{k.strip().lower(): v for k, v in (extra or {}).items()}}
    cells = _parse.as_objects(values)
    words: dict[object, str | None] = {}
    for value in pd.unique(cells):  # few distinct wordings, however long the register
        text = str(value).strip().lower() if value is not None else ""
        word = table.get(text)
        if word is None and text:
            word = next((w for pattern, w in _OCCUPANCY_RULES if pattern.search(text)), "other")
        words[value] = word
    return pd.Series([words[v] for v in cells], index=values.index, dtype=object)


def find_columns(columns: Sequence[str], profile: Profile, path: str) -> dict[str, str]:
    """Canonical field -> file column: the profile's mapping, then header synonyms."""
    found = _parse.match_columns(columns, SYNONYMS)
    by_key = {_parse.normalise_header(c): c for c in columns}
    for field, header in profile.columns.items():
        column = header if header in columns else by_key.get(_parse.normalise_header(header))
        if column is None:
            raise MissingColumnError(
                f"{path}: the profile {profile.path} maps {field} to column {header!r}, which is "
                f"not in the file; its columns are: {', '.join(columns)}"
            )
        # The profile wins, and its column is no longer claimed by another field.
        for other, col in list(found.items()):
            if col == column and other != field:
                del found[other]
        found[field] = column
    return found


def _unit_factor(header: str, default: str, units: dict[str, float], kind: str) -> float:
    """Conversion factor from the unit a header names (``Site Area (acres)``), else the default."""
    key = _parse.normalise_header(header)
    if kind == "land":
        if "acre" in key:
            return units["acres"]
        if key.endswith(("m2", "sqm")) or "squaremet" in key:
            return units["m2"]
    elif "sqft" in key or "squarefe" in key or key.endswith("ft2"):
        return units["sqft"]
    return units[default]


@dataclass
class ParsedCouncil:
    """A register parsed and validated, ready to write."""

    sites: pd.DataFrame
    easting: np.ndarray
    northing: np.ndarray
    status: np.ndarray
    issue_rows: list[dict[str, Any]]
    row_numbers: np.ndarray
    rejected: list[dict[str, Any]]
    rows_read: int
    columns: dict[str, str]
    encoding: str
    #: Located, hashed and with footprints, if a read-ahead worker did it (load_sources).
    prepared: PreparedSites | None = None


def parse_council(
    path: str | os.PathLike[str],
    *,
    organisation: str | None = None,
    profile: Profile | None = None,
) -> ParsedCouncil:
    """Read and check a council asset register without touching the database."""
    profile = profile or Profile()
    where = os.fspath(path)
    table = _read.read_csv_table(
        path,
        what="council asset register",
        score=_score,
        min_score=2,
        header_row=profile.header_row,
        encoding=profile.encoding,
        header_hint="; expected LGA columns such as AssetCode, PropertyName, PostCode, GeoX, GeoY "
        "(map other names in a profile file)",
    )
    frame = table.frame
    cols = find_columns(table.columns, profile, where)
    if "asset_id" not in cols and "uprn" not in cols:
        raise MissingColumnError(
            f"{where}: no column identifies the assets: expected one of "
            f"{', '.join(SYNONYMS['asset_id'][:6])}, ... or UPRN; found: "
            f'{", ".join(table.header)}. Map it in a profile: [columns] asset_id = "..."'
        )
    default_org = organisation or profile.organisation
    if "organisation" not in cols and not default_org:
        raise MissingColumnError(
            f"{where}: no OrganisationLabel column and no organisation given; pass "
            '--organisation NAME (or organisation = "..." in a profile)'
        )
    n = len(frame)

    def text(field: str) -> pd.Series:
        if field not in cols:
            return pd.Series([None] * n, dtype=object)
        return _parse.clean_text(frame[cols[field]])

    problems = RowProblems(n)

    def number(field: str, factor: float, bounds: tuple[float, float], unit: str) -> np.ndarray:
        if field not in cols:
            return np.full(n, np.nan)
        values, bad = _parse.parse_numbers(frame[cols[field]])
        for i in np.flatnonzero(bad):
            problems.add(
                i,
                f"{cols[field]} {frame[cols[field]].iloc[i]!r} is not a number; fix the cell or "
                "leave it empty",
                cols[field],
            )
        values = values * factor
        for i in np.flatnonzero(_parse.outside_range(values, bounds)):
            cell = frame[cols[field]].iloc[i]
            reason = _parse.range_reason(cols[field], cell, values[i], bounds, unit)
            problems.add(i, reason, cols[field])
        return values

    org = text("organisation")
    if default_org:
        org = (
            org.where(org.notna(), default_org)
            if organisation is None
            else pd.Series([organisation] * n, dtype=object)
        )
    for i in np.flatnonzero(org.isna().to_numpy()):
        problems.add(i, "no OrganisationLabel; pass --organisation NAME")
    asset = text("asset_id")
    uprn = pd.Series(
        [u[:-2] if u is not None and u.endswith(".0") else u for u in text("uprn")],
        index=asset.index,
        dtype=object,
    )
    ident = pd.Series(
        [
            a if a is not None else (f"uprn-{u}" if u is not None else None)
            for a, u in zip(asset, uprn, strict=True)
        ],
        index=asset.index,
        dtype=object,
    )
    for i in np.flatnonzero(ident.isna().to_numpy()):
        problems.add(i, "no AssetCode or UPRN to identify the asset")
    slugs = {v: _parse.slug(v) for v in pd.unique(org.dropna())}
    org_slug = pd.Series([slugs.get(v) for v in org], index=org.index, dtype=object)
    key = pd.Series(
        [
            f"lgtc:{s}:{i}" if s is not None and i is not None else None
            for s, i in zip(org_slug, ident, strict=True)
        ],
        index=asset.index,
        dtype=object,
    )
    dup = key.duplicated(keep="first").to_numpy() & key.notna().to_numpy()
    if dup.any():
        first = pd.Series(table.row_numbers, index=key.to_numpy()).groupby(level=0).first()
        for i in np.flatnonzero(dup):
            problems.add(
                i, f"asset {ident.iloc[i]} repeats row {int(first[key.iloc[i]])}; each asset once"
            )

    land_default = profile.land_area_unit or "ha"
    building_default = profile.building_size_unit or "m2"
    gia = number(
        "building_size",
        _unit_factor(cols.get("building_size", ""), building_default, BUILDING_UNITS, "building"),
        _parse.FLOOR_AREA_M2_RANGE,
        "m²",
    )
    land = number(
        "land_area",
        _unit_factor(cols.get("land_area", ""), land_default, LAND_UNITS, "land"),
        _parse.LAND_HA_RANGE,
        "ha",
    )

    # Coordinates: each row uses its first pair with any text.
    pairs: list[coordinates.Pair] = []
    declared: Any
    if profile.coordinates:
        named = profile.coordinates.strip().lower()
        if named in (coordinates.BNG, coordinates.LONLAT):
            declared = named
        else:
            declared = coordinates.other_crs(
                profile.coordinates
            ) or coordinates.declared_convention(pd.Series([profile.coordinates] * n))
    elif "crs" in cols:
        declared = coordinates.declared_convention(frame[cols["crs"]])
    else:
        declared = coordinates.UNKNOWN
    if "x" in cols and "y" in cols:
        pairs.append(coordinates.Pair(cols["x"], cols["y"], declared))
    if "easting" in cols and "northing" in cols:
        pairs.append(coordinates.Pair(cols["easting"], cols["northing"], coordinates.BNG))
    if "longitude" in cols and "latitude" in cols:
        pairs.append(coordinates.Pair(cols["longitude"], cols["latitude"], coordinates.LONLAT))
    checked, used = coordinates.resolve_pairs(frame, pairs)

    bad = problems.mask()
    rejected = problems.rejected(table.row_numbers, frame)
    rejected.extend(table.bad_rows)

    sites = empty_site_frame(n)
    sites["organisation_name"] = org
    sites["organisation_code"] = org_slug
    sites["sector"] = "council"
    sites["source_key"] = key
    name = text("name")
    sites["name"] = name
    if "address" in cols:
        sites["address"] = text("address")
    else:
        street = _parse.join_text([text("street_number"), text("street_name")], sep=" ")
        sites["address"] = _parse.join_text([street, text("town")])
    sites["postcode"] = _parse.normalise_postcodes(
        frame[cols["postcode"]] if "postcode" in cols else pd.Series([None] * n, dtype=object)
    )
    sites["uprn"] = uprn
    sites["site_type"] = text("site_type")
    sites["tenure"] = text("tenure")
    sites["holding_type"] = text("holding_type")
    sites["occupancy"] = normalise_occupancy(text("tenure_detail"), profile.occupancy)
    sites["category"] = text("category")
    sites["gia_m2"] = gia
    sites["land_ha"] = land
    sites.loc[checked.located, "located_by"] = "source_coordinates"

    issue_rows = []
    for i in np.flatnonzero(~bad & ~np.isin(checked.status, [coordinates.OK, coordinates.MISSING])):
        pair = pairs[used[i]]
        issue_rows.append(
            {
                "index": int(i),
                "row_number": int(table.row_numbers[i]),
                "source_key": sites.at[i, "source_key"],
                "name": sites.at[i, "name"],
                "status": checked.status[i],
                "problem": coordinates.describe(
                    checked.status[i], pair.x, pair.y, frame.at[i, pair.x], frame.at[i, pair.y]
                ),
            }
        )
    keep = ~bad
    kept_index = np.cumsum(keep) - 1
    for issue in issue_rows:
        issue["index"] = int(kept_index[issue["index"]])
    return ParsedCouncil(
        sites=sites.loc[keep].reset_index(drop=True),
        easting=checked.easting[keep],
        northing=checked.northing[keep],
        status=checked.status[keep],
        issue_rows=issue_rows,
        row_numbers=table.row_numbers[keep],
        rejected=rejected,
        rows_read=n + len(table.bad_rows),
        columns=cols,
        encoding=table.encoding,
    )


def load_council(
    estate: Estate,
    path: str | os.PathLike[str],
    *,
    organisation: str | None = None,
    profile: str | os.PathLike[str] | Profile | None = None,
    progress: bool = False,
) -> LoadReport:
    """Load a council land and building asset register (LGTC 2015 or a variant).

    Parameters
    ----------
    organisation
        The council's name when the file has no ``OrganisationLabel`` column (or to
        override it).
    profile
        A TOML/YAML mapping profile for a home-made layout (see :mod:`estates.ingest.profile`).

    The report's ``coordinate_issues`` lists every row whose coordinates were fixed or
    not used, with the reason and what happened. :func:`load_councils` loads several
    registers, parsing the next while the current one is written.
    """
    started = time.perf_counter()
    bar = progress_bar(3, "council register", progress)
    bar.set_postfix_str("reading")
    prof = as_profile(profile)
    parsed = parse_council(path, organisation=organisation, profile=prof)
    bar.update(1)
    return write_council(
        estate, path, parsed, organisation=organisation, profile=prof, started=started, bar=bar
    )


def load_councils(
    estate: Estate,
    paths: Sequence[str | os.PathLike[str]],
    *,
    organisation: str | None = None,
    organisations: Sequence[str | None] | None = None,
    profile: str | os.PathLike[str] | Profile | None = None,
    progress: bool = False,
) -> list[LoadReport]:
    """Load several council registers in order, reading the next while one is written.

    The result is the same as calling :func:`load_council` on each file in turn: each
    file is its own load batch (all of it or none of it), with the same site ids, rows
    and report. Only the work is overlapped: while file *i* is written to the database
    in this process, the next files are parsed (and their sites prepared) in one worker
    process, which never writes to the database. With one file no worker is started.

    Parameters
    ----------
    paths
        The registers, loaded in this order.
    organisation
        The council's name for every file (see :func:`load_council`).
    organisations
        Instead of ``organisation``: one name (or None) per path, for registers that
        have no ``OrganisationLabel`` column.
    profile
        One mapping profile applied to every file.

    Returns
    -------
    list of LoadReport
        One per file, in order. A report's ``elapsed_s`` is the wall time this call spent
        on that file after finishing the one before (waiting for its parse, then
        writing), so the reports' times add up to the call's.

    Raises
    ------
    EstatesError
        The first file that cannot be read or loaded stops the load there: the files
        before it stay loaded, its own batch leaves the database as it was, the files
        after it are not loaded, and the error names the file (as :func:`load_council`'s
        errors do). The worker is shut down before the error is raised (after it finishes
        the parse it was on, which is discarded).

    Notes
    -----
    The worker is a new Python process (see :func:`estates.ingest.sources.load_sources`,
    which this calls): in a script, call this under ``if __name__ == "__main__":``, as
    Python requires of any spawned process.

    Examples
    --------
    >>> import estates
    >>> from estates.ingest import load_councils
    >>> estate = estates.connect("/tmp/doctest-councils.gpkg")
    >>> load_councils(estate, [])
    []
    """
    from estates.ingest.sources import Source, load_sources

    paths = list(paths)
    orgs = _organisations_per_path(paths, organisation, organisations)
    prof = as_profile(profile)  # read once, handed to the worker whole
    return load_sources(
        estate,
        [
            Source("council", path, {"organisation": org, "profile": prof})
            for path, org in zip(paths, orgs, strict=True)
        ],
        progress=progress,
    )


def as_profile(profile: str | os.PathLike[str] | Profile | None) -> Profile:
    return profile if isinstance(profile, Profile) else load_profile(profile)


def _organisations_per_path(
    paths: list[str | os.PathLike[str]],
    organisation: str | None,
    organisations: Sequence[str | None] | None,
) -> list[str | None]:
    if organisations is None:
        return [organisation] * len(paths)
    if organisation is not None:
        raise ConfigurationError(
            "load_councils: pass organisation (one name for every file) or organisations "
            "(one per file), not both"
        )
    if isinstance(organisations, str) or len(organisations) != len(paths):
        found = "a string" if isinstance(organisations, str) else f"{len(organisations)} names"
        raise ConfigurationError(
            f"load_councils: organisations needs one name (or None) per path: {len(paths)} "
            f"paths but {found}; use organisation= for one name for every file"
        )
    return list(organisations)


def write_council(
    estate: Estate,
    path: str | os.PathLike[str],
    parsed: ParsedCouncil,
    *,
    organisation: str | None,
    profile: Profile,
    started: float,
    bar: tqdm,
    sha256: str | None = None,
) -> LoadReport:
    """Write a parsed register in one load batch and report it (``started``: for elapsed_s)."""
    options = {"organisation": organisation, "profile": profile.path}
    with estate.batch(LOADER, path, options, sha256=sha256) as batch:
        batch.counts["rows_read"] = parsed.rows_read
        batch.reject(parsed.rejected)
        bar.set_postfix_str("locating and writing sites")
        prepared = parsed.prepared or prepare_sites(
            batch.connection, parsed.sites, parsed.easting, parsed.northing
        )
        written = write_site_frame(batch, prepared)
        counts = dict(batch.counts)
        batch_id = batch.id
    bar.update(2)
    bar.close()
    issues = coordinate_issues(parsed.issue_rows, written.located_by)
    for issue in issues:
        log.info(
            "%s row %s (%s): %s; %s",
            path,
            issue["row_number"],
            issue["source_key"],
            issue["problem"],
            issue["action"],
        )
    report = LoadReport(
        batch_id=batch_id,
        file=os.fspath(path),
        loader=LOADER,
        elapsed_s=time.perf_counter() - started,
        **counts,
        extra={
            "organisations": sorted(parsed.sites["organisation_name"].dropna().unique().tolist()),
            "encoding": parsed.encoding,
            "located_from_coordinates": int(
                (parsed.sites["located_by"] == "source_coordinates").sum()
            ),
            "located_from_postcode": written.located_from_postcode,
            "unmatched_postcodes": written.unmatched_postcodes,
            "no_postcode": written.no_postcode,
            "coordinates_fixed": sum(1 for i in issues if i["action"].startswith("placed")),
            "coordinate_issues": issues,
            "columns": parsed.columns,
            "footprints": written.footprints,
        },
    )
    report.check()
    return report
