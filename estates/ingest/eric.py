"""NHS Digital ERIC (Estates Returns Information Collection) site-level CSV, 2016/17 on.

Column names drift between years, so each year has its own mapping table
(:data:`LAYOUTS`) from the canonical site and measure fields to that year's headers.
The year is the ``period`` argument, else the one in the file name
(``ERIC_201920_SiteData.csv`` -> 2019/20), checked against the headers; a header that
fits no year fails with the columns the closest year expected and did not find.

Measures (``site_measure``, per site and period; percentages are of GIA as published):

- ``empty_pct``, ``underused_pct`` (2019/20 on) or ``unutilised_pct`` (to 2018/19);
- ``not_functionally_suitable_pct`` (of occupied floor area), ``occupied_pct`` (NHS
  estate occupied floor area %), ``occupied_floor_area_m2`` (2021/22 on);
- backlog by risk (high, significant, moderate, low; cost to eradicate, GBP);
- ``land_not_delivering_ha``;
- ``running_cost_gbp``: the estates and facilities **running** costs of the year: leases
  and rent, rates, other estates and facilities finance costs, maintenance (estates and
  property, grounds and gardens, EBME), other hard and soft FM, FM management, energy,
  water and sewerage, waste, car parking, cleaning, inpatient food, laundry and linen,
  portering, and every PFI contractor/management cost line of those sections. It
  EXCLUDES capital charges (depreciation, PDC dividend, interest on capital), indirect
  accommodation subsidies and backlog (cost to eradicate) figures. Layouts to 2018/19
  publish only the aggregate hard FM and soft FM running costs; those two are summed.
  The exact headers summed are in ``EricLayout.running_cost`` and the load report.
- ``energy_cost_gbp``: electricity, gas, oil, coal, green-tariff and third-party
  renewable electricity, non-fossil renewable fuel and other energy costs, plus the
  energy section's PFI lines (2019/20 layout); ``Energy cost (all energy supplies)``
  in earlier layouts.

Each trust has one ``OTHER REPORTABLE SITES`` row pooling its small sites: kept as a
non-geographic site (never located, never on a map), counted separately. The raw row
is stored with every measure; repeated headers (``PFI Contractor (SPV) costs (£)``
appears once per service section) are named by section there, e.g.
``PFI Contractor (SPV) costs (£) [energy]``.

Only the 2019/20 layout has been checked against a published file in this project's
test data; the other years follow NHS Digital's published column names and fail loudly,
listing the missing columns, if a file differs.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from estates.db import measures as db_measures
from estates.db.store import MEASURE_FIELDS, json_text
from estates.errors import ConfigurationError, UnknownLayoutError
from estates.ingest import _parse, _read
from estates.ingest._sites import (
    PreparedSites,
    empty_site_frame,
    prepare_sites,
    write_site_frame,
)
from estates.ingest.report import LoadReport, RowProblems, progress_bar

if TYPE_CHECKING:
    from tqdm import tqdm

    from estates.estate import Estate

log = logging.getLogger(__name__)

LOADER = "eric"

# --- mapping tables ---------------------------------------------------------------------

_IDENTITY = {
    "trust_code": ("Trust Code", "Organisation Code"),
    "trust_name": ("Trust Name", "Organisation Name"),
    "trust_type": ("Trust Type", "Organisation Type"),
    "site_code": ("Site Code",),
    "site_name": ("Site Name",),
    "site_type": ("Site Type",),
    "postcode": ("Post Code", "Postcode", "Site Post Code"),
    "tenure": ("Tenure",),
    "gia_m2": ("Gross internal floor area (m²)", "Gross internal site floor area (m²)"),
}
_COMMON_MEASURES = {
    "not_functionally_suitable_pct": ("Not functionally suitable - occupied floor area (%)",),
    "occupied_pct": ("NHS estate occupied floor area (%)",),
    "backlog_high_gbp": ("Cost to eradicate high risk backlog (£)",),
    "backlog_significant_gbp": ("Cost to eradicate significant risk backlog (£)",),
    "backlog_moderate_gbp": ("Cost to eradicate moderate risk backlog (£)",),
    "backlog_low_gbp": ("Cost to eradicate low risk backlog (£)",),
}

_PFI = ("PFI Contractor (SPV) costs (£)", "PFI Management (Trust) costs (£)")

#: 2019/20 on: every running cost line (PFI lines of every section are included by name).
_RUNNING_2019 = (
    "Leases and rent (£)",
    "Rates (£)",
    "Other Estates and Facilities finance costs (£)",
    "Estates and property maintenance (£)",
    "Grounds and gardens maintenance (£)",
    "Electro Bio Medical Equipment maintenance (£)",
    "Other Hard FM (Estates) costs (£)",
    "Other Soft FM (Hotel Services) costs (£)",
    "Management (Hard and Soft FM) costs (£)",
    *_PFI,
    "Electricity costs (£)",
    "Gas costs (£)",
    "Oil costs (£)",
    "Coal costs (£)",
    "Electricity costs - green energy tariff (£)",
    "Electricity costs - third party owned renewable (£)",
    "Non-fossil fuel costs - renewable (£)",
    "Other energy costs (£)",
    "Water and sewerage cost (£)",
    "Incineration (clinical waste) cost (£)",
    "Alternative Treatment (clinical waste) cost (£)",
    "Offensive waste cost (£)",
    "Clinical waste processed on site cost (£)",
    "Domestic waste (landfill) cost (£)",
    "Domestic waste (recycling) cost (£)",
    "Domestic waste (food) cost (£)",
    "Domestic waste (textiles) cost (£)",
    "Domestic waste (incineration) cost (£)",
    "Domestic waste processed on site cost (£)",
    "Confidential waste cost (£)",
    "Other waste costs (£)",
    "Car parking services cost (£)",
    "Cleaning service cost (£)",
    "Inpatient food service cost (£)",
    "Laundry service cost (£)",
    "Linen service cost (£)",
    "Portering service cost (£)",
)
_ENERGY_2019 = (
    "Electricity costs (£)",
    "Gas costs (£)",
    "Oil costs (£)",
    "Coal costs (£)",
    "Electricity costs - green energy tariff (£)",
    "Electricity costs - third party owned renewable (£)",
    "Non-fossil fuel costs - renewable (£)",
    "Other energy costs (£)",
    "PFI Contractor (SPV) costs (£) [energy]",
    "PFI Management (Trust) costs (£) [energy]",
)
_EXCLUDED_2019 = (
    "Depreciation (£)",
    "PDC (£)",
    "Interest on Capital (£)",
    "Indirect accommodation subsidies (£)",
)
_RUNNING_2016 = ("Hard FM (Estates) costs (£)", "Soft FM (Hotel Services) costs (£)")
_ENERGY_2016 = ("Energy cost (all energy supplies) (£)",)


@dataclass(frozen=True)
class EricLayout:
    """One year's mapping: canonical field -> accepted header names, and the cost columns."""

    period: str
    family: str
    fields: Mapping[str, tuple[str, ...]]
    required: tuple[str, ...]
    running_cost: tuple[str, ...]
    energy_cost: tuple[str, ...]
    excluded_costs: tuple[str, ...] = field(default=())


def _layout(period: str, family: str) -> EricLayout:
    fields: dict[str, tuple[str, ...]] = {**_IDENTITY, **_COMMON_MEASURES}
    required = ["trust_code", "trust_name", "site_code", "site_name", "postcode", "gia_m2"]
    if family == "2016/17-2018/19":
        fields["unutilised_pct"] = ("Un-utilised space (%)",)
        fields["land_ha"] = ("Site land area (Hectare)", "Site land area (Hectares)")
        fields["land_not_delivering_ha"] = ("Land area not delivering services (Hectares)",)
        required += ["unutilised_pct", "land_ha"]
        return EricLayout(period, family, fields, tuple(required), _RUNNING_2016, _ENERGY_2016)
    fields["empty_pct"] = ("Floor area - empty (%)",)
    fields["underused_pct"] = ("Floor area - under used (%)",)
    fields["land_ha"] = ("Land area owned (Hectares)",)
    fields["land_not_delivering_ha"] = ("Land area not delivering services (Hectares)",)
    required += ["empty_pct", "underused_pct", "land_ha"]
    if family == "2021/22-":
        fields["occupied_floor_area_m2"] = ("Occupied floor area (m²)",)
        required.append("occupied_floor_area_m2")
    return EricLayout(
        period, family, fields, tuple(required), _RUNNING_2019, _ENERGY_2019, _EXCLUDED_2019
    )


#: The mapping table of every supported year.
LAYOUTS: dict[str, EricLayout] = {
    **{p: _layout(p, "2016/17-2018/19") for p in ("2016/17", "2017/18", "2018/19")},
    **{p: _layout(p, "2019/20-2020/21") for p in ("2019/20", "2020/21")},
    **{p: _layout(p, "2021/22-") for p in ("2021/22", "2022/23", "2023/24")},
}

#: Plausible range per stored figure (percentages are 0-100 by their ``_pct`` name).
_RANGES: dict[str, tuple[tuple[float, float], str]] = {
    "gia_m2": (_parse.FLOOR_AREA_M2_RANGE, "m²"),
    "occupied_floor_area_m2": (_parse.FLOOR_AREA_M2_RANGE, "m²"),
    "land_ha": (_parse.LAND_HA_RANGE, "ha"),
    "land_not_delivering_ha": (_parse.LAND_HA_RANGE, "ha"),
}

_POOLED_NAME = "OTHER REPORTABLE SITES"
_POOLED_TYPE = "OTHER REPORTABLE SITE"

#: Keywords that name the service section of a repeated PFI header, from the column before it.
_SECTIONS = (
    ("portering", "portering"),
    ("laundr", "laundry and linen"),
    ("linen", "laundry and linen"),
    ("meal", "food"),
    ("food", "food"),
    ("cleaning", "cleaning"),
    ("parking", "car parking"),
    ("waste", "waste"),
    ("water", "water"),
    ("energy", "energy"),
    ("kwh", "energy"),
    ("fm", "estates and facilities"),
    ("maintenance", "estates and facilities"),
)


# --- period and layout ------------------------------------------------------------------


def normalise_period(value: str) -> str:
    """``2019/20``, ``2019-20``, ``201920``, ``2019_20`` or ``2019/2020`` -> ``2019/20``."""
    m = re.fullmatch(r"\s*(20\d\d)\s*[-_/ ]?\s*(\d{2}|\d{4})\s*", str(value))
    if m:
        start, end = int(m.group(1)), int(m.group(2)[-2:])
        if end == (start + 1) % 100:
            return f"{start}/{end:02d}"
    raise ConfigurationError(
        f"period {value!r} is not a financial year; write it like 2019/20 "
        f"(supported: {', '.join(LAYOUTS)})"
    )


def period_from_name(path: str | os.PathLike[str]) -> str | None:
    """The financial year in an ERIC file name (``ERIC_201920_SiteData.csv``), if any."""
    name = Path(path).name
    for m in re.finditer(r"(?<!\d)(20\d\d)[-_ ]?(\d\d)(?!\d)", name):
        start, end = int(m.group(1)), int(m.group(2))
        if end == (start + 1) % 100:
            return f"{start}/{end:02d}"
    return None


def _missing(layout: EricLayout, by_key: set[str]) -> list[str]:
    missing = []
    for name in layout.required:
        if not any(_parse.normalise_header(h) in by_key for h in layout.fields[name]):
            missing.append(layout.fields[name][0])
    return missing


def choose_layout(
    path: str | os.PathLike[str], header: list[str], period: str | None
) -> EricLayout:
    """The year's layout for this header: checked against ``period`` when given."""
    by_key = {_parse.normalise_header(h) for h in header}
    if period is not None:
        period = normalise_period(period)
        if period not in LAYOUTS:
            raise ConfigurationError(
                f"{os.fspath(path)}: no ERIC mapping for {period} (--period); supported years: "
                f"{', '.join(LAYOUTS)}"
            )
        missing = _missing(LAYOUTS[period], by_key)
        if missing:
            raise UnknownLayoutError(
                f"{os.fspath(path)}: not an ERIC {period} site-level file: expected columns not "
                f"found: {'; '.join(missing)}. Check --period, or that this is the site data "
                "CSV (not trust data)"
            )
        return LAYOUTS[period]
    fitting = [layout for layout in LAYOUTS.values() if not _missing(layout, by_key)]
    # Later families add columns: prefer the layout that explains the most of them.
    families = {layout.family for layout in fitting}
    if "2021/22-" in families:
        families = {"2021/22-"}
    fitting = [layout for layout in fitting if layout.family in families]
    if not fitting:
        closest = min(LAYOUTS.values(), key=lambda layout: len(_missing(layout, by_key)))
        raise UnknownLayoutError(
            f"{os.fspath(path)}: header matches no known ERIC site-data layout "
            f"({', '.join(LAYOUTS)}); the closest ({closest.family}) expected columns not "
            f"found: {'; '.join(_missing(closest, by_key))}. Check this is the ERIC site "
            "data CSV, or pass --period"
        )
    named = period_from_name(path)
    if named is not None and named not in LAYOUTS:
        raise UnknownLayoutError(
            f"{os.fspath(path)}: the file name says {named}, a year with no ERIC mapping "
            f"(supported: {', '.join(LAYOUTS)}); its header fits "
            f"{', '.join(lay.period for lay in fitting)}: if the file is one of those, pass "
            f"--period (e.g. --period {fitting[0].period})"
        )
    for layout in fitting:
        if layout.period == named:
            return layout
    if len(fitting) == 1:
        return fitting[0]
    raise UnknownLayoutError(
        f"{os.fspath(path)}: the header fits ERIC {', '.join(lay.period for lay in fitting)} "
        "and the file name names no year; pass --period (e.g. --period "
        f"{fitting[0].period})"
    )


# --- reading ----------------------------------------------------------------------------


def _section(previous: str) -> str:
    low = previous.lower()
    for keyword, section in _SECTIONS:
        if keyword in low:
            return section
    return "other"


def raw_names(header: list[str]) -> list[str]:
    """Header names for the raw JSON: repeated names get their service section."""
    counts: dict[str, int] = {}
    for h in header:
        counts[h] = counts.get(h, 0) + 1
    out: list[str] = []
    previous = ""
    for h in header:
        if counts[h] > 1:
            name = f"{h} [{_section(previous)}]"
            n = 2
            while name in out:
                name = f"{h} [{_section(previous)} {n}]"
                n += 1
            out.append(name)
        else:
            out.append(h)
            previous = h
    return out


def _score(fields: list[str]) -> int:
    keys = {_parse.normalise_header(f) for f in fields}
    wanted = {_parse.normalise_header(h) for names in _IDENTITY.values() for h in names}
    return len(keys & wanted)


@dataclass
class ParsedEric:
    """An ERIC file parsed and validated, ready to write."""

    layout: EricLayout
    sites: pd.DataFrame
    measures: pd.DataFrame
    row_numbers: np.ndarray
    rejected: list[dict[str, Any]]
    running_cost_columns: list[str]
    energy_cost_columns: list[str]
    missing_optional: list[str]
    rows_read: int
    #: Located, hashed and with footprints, if a read-ahead worker did it (load_sources).
    prepared: PreparedSites | None = None


def parse_eric(path: str | os.PathLike[str], period: str | None = None) -> ParsedEric:
    """Read and validate an ERIC site CSV without touching the database."""
    table = _read.read_csv_table(
        path,
        what="ERIC site-level CSV",
        score=_score,
        min_score=3,
        header_hint="; expected ERIC columns such as Trust Code, Site Code, Site Name",
    )
    layout = choose_layout(path, table.header, period)
    frame = table.frame
    frame.columns = raw_names(table.header)
    raw_columns = list(frame.columns)
    by_key: dict[str, str] = {}
    for original, raw in zip(table.header, raw_columns, strict=True):
        by_key.setdefault(_parse.normalise_header(original), raw)

    def column(name: str) -> str | None:
        for header in layout.fields[name]:
            found = by_key.get(_parse.normalise_header(header))
            if found is not None:
                return found
        return None

    n = len(frame)
    problems = RowProblems(n)

    def numbers(col: str) -> np.ndarray:
        values, bad = _parse.parse_numbers(frame[col])
        for i in np.flatnonzero(bad):
            problems.add(i, f"{col} {frame[col].iloc[i]!r} is not a number", col)
        return values

    missing_optional = []
    numeric: dict[str, np.ndarray] = {}
    for name in ("gia_m2", "land_ha", *MEASURE_FIELDS):
        if name not in layout.fields:
            continue
        col = column(name)
        if col is None:
            missing_optional.append(layout.fields[name][0])
            numeric[name] = np.full(n, np.nan)
        else:
            numeric[name] = numbers(col)
            bounds, unit = _RANGES.get(name) or (
                (_parse.PERCENT_RANGE, "%") if name.endswith("_pct") else (None, "")
            )
            if bounds is not None:
                for i in np.flatnonzero(_parse.outside_range(numeric[name], bounds)):
                    cell = frame[col].iloc[i]
                    reason = _parse.range_reason(col, cell, numeric[name][i], bounds, unit)
                    problems.add(i, reason, col)

    def summed(headers: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
        used = []
        for header in headers:
            if header in raw_columns:
                used.append(header)
            else:  # a repeated header: every section's copy
                used.extend(c for c in raw_columns if c.startswith(header + " ["))
        used = list(dict.fromkeys(used))
        if not used:
            return np.full(n, np.nan), []
        stack = np.vstack([numbers(c) for c in used])
        total = np.nansum(stack, axis=0)
        total[np.isnan(stack).all(axis=0)] = np.nan
        return total, used

    numeric["running_cost_gbp"], running_used = summed(layout.running_cost)
    numeric["energy_cost_gbp"], energy_used = summed(layout.energy_cost)

    text = {name: _parse.clean_text(frame[col]) for name in _IDENTITY if (col := column(name))}
    site_code = text["site_code"]
    for i in np.flatnonzero(site_code.isna().to_numpy()):
        problems.add(i, "no Site Code")
    trust_code = text["trust_code"]
    for k in np.flatnonzero(trust_code.isna().to_numpy()):
        problems.add(k, "no Trust Code")
    codes = site_code.astype("string").str.upper()
    first_seen: dict[str, int] = {}
    for row, code in enumerate(codes.tolist()):
        if code is pd.NA or code is None:
            continue
        if code in first_seen:
            problems.add(row, f"Site Code {code} repeats row {table.row_numbers[first_seen[code]]}")
        else:
            first_seen[code] = row

    bad = problems.mask()
    records = _parse.row_dicts(frame)
    rejected = problems.rejected(table.row_numbers, frame)
    rejected.extend(table.bad_rows)
    keep = ~bad

    sites = empty_site_frame(n)
    sites["organisation_code"] = trust_code.astype("string").str.upper().astype(object)
    sites["organisation_name"] = text["trust_name"]
    sites["sector"] = "nhs"
    sites["source_key"] = ("eric:" + codes).astype(object)
    sites["name"] = text["site_name"]
    sites["postcode"] = _parse.normalise_postcodes(frame[column("postcode") or ""])
    sites["site_type"] = text.get("site_type")
    sites["tenure"] = text.get("tenure")
    sites["category"] = text.get("trust_type")
    sites["gia_m2"] = numeric["gia_m2"]
    sites["land_ha"] = numeric["land_ha"]
    name_up = sites["name"].astype("string").str.strip().str.upper()
    type_up = sites["site_type"].astype("string").str.strip().str.upper()
    pooled = (name_up == _POOLED_NAME).fillna(False) | (type_up == _POOLED_TYPE).fillna(False)
    sites["non_geographic"] = pooled.to_numpy(dtype=bool)

    measures = pd.DataFrame({f: numeric.get(f, np.full(n, np.nan)) for f in MEASURE_FIELDS})
    # Source rows as the JSON they are stored as, encoded where the file is read (the
    # read-ahead worker, in a many-file load) rather than by the writer.
    measures["raw"] = pd.Series([json_text(r) for r in records], dtype=object)
    return ParsedEric(
        layout=layout,
        sites=sites.loc[keep].reset_index(drop=True),
        measures=measures.loc[keep].reset_index(drop=True),
        row_numbers=table.row_numbers[keep],
        rejected=rejected,
        running_cost_columns=running_used,
        energy_cost_columns=energy_used,
        missing_optional=missing_optional,
        rows_read=n + len(table.bad_rows),
    )


def load_eric(
    estate: Estate,
    path: str | os.PathLike[str],
    *,
    period: str | None = None,
    progress: bool = False,
) -> LoadReport:
    """Load an ERIC site-level CSV: trusts, sites (pooled rows non-geographic) and measures.

    Sites are located from the postcode lookup when one is loaded (``load_postcodes``,
    before or after). Nothing is written unless the whole file can be read.

    Examples
    --------
    >>> report = load_eric(estate, "ERIC_201920_SiteData.csv")  # doctest: +SKIP
    >>> report.rows_read, report.non_geographic  # doctest: +SKIP
    (1261, 176)
    """
    started = time.perf_counter()
    bar = progress_bar(4, "ERIC", progress)
    bar.set_postfix_str("reading")
    parsed = parse_eric(path, period)
    bar.update(1)
    return write_eric(estate, path, parsed, started=started, bar=bar)


def write_eric(
    estate: Estate,
    path: str | os.PathLike[str],
    parsed: ParsedEric,
    *,
    started: float,
    bar: tqdm,
    sha256: str | None = None,
) -> LoadReport:
    """Write a parsed ERIC file in one load batch and report it (``started``: for elapsed_s)."""
    options = {"period": parsed.layout.period}
    with estate.batch(LOADER, path, options, sha256=sha256) as batch:
        batch.counts["rows_read"] = parsed.rows_read
        batch.reject(parsed.rejected)
        bar.set_postfix_str("locating and writing sites")
        prepared = parsed.prepared or prepare_sites(batch.connection, parsed.sites)
        written = write_site_frame(batch, prepared)
        bar.update(1)
        bar.set_postfix_str("writing measures")
        measures = parsed.measures.copy()
        measures["site_id"] = parsed.sites["source_key"].map(written.write.site_ids).to_numpy()
        changed = db_measures.write_measures(
            batch.connection, measures, parsed.layout.period, batch.id
        )
        # A site whose row is unchanged but whose figures changed counts as updated.
        unchanged_ids = {written.write.site_ids[k] for k in written.write.unchanged}
        moved = len(unchanged_ids & set(changed.updated + changed.inserted))
        batch.counts["unchanged"] -= moved
        batch.counts["updated"] += moved
        bar.update(1)
        counts = dict(batch.counts)
        batch_id = batch.id
    bar.update(1)
    bar.close()
    report = LoadReport(
        batch_id=batch_id,
        file=os.fspath(path),
        loader=LOADER,
        elapsed_s=time.perf_counter() - started,
        **counts,
        extra={
            "period": parsed.layout.period,
            "layout": parsed.layout.family,
            "organisations": int(parsed.sites["organisation_code"].nunique()),
            "located_from_postcode": written.located_from_postcode,
            "unmatched_postcodes": written.unmatched_postcodes,
            "running_cost_columns": parsed.running_cost_columns,
            "energy_cost_columns": parsed.energy_cost_columns,
            "missing_optional_columns": parsed.missing_optional,
            "footprints": written.footprints,
        },
    )
    report.check()
    log.info("loaded %s: %s", path, report.as_dict())
    return report
