"""Explained flags: each rule a threshold from the settings and a sentence with the numbers.

Every rule gives each site one status:

- ``flagged``: the rule's condition holds; ``reason_<rule>`` is the sentence with the numbers;
- ``pass``: every input is there and the condition does not hold;
- ``not_assessable``: an input is missing (or the peer group is too small); the reason says
  which. A missing input never passes a rule;
- ``not_applicable``: the rule does not concern this site (``vacant`` for non-council sites;
  every rule for pooled non-geographic rows such as ERIC's ``OTHER REPORTABLE SITES``).

Rules (thresholds in ``defaults.toml``):

``underused_space``
    empty % + under-used % (or un-utilised %) strictly greater than
    ``underused_space_max_pct`` (2.5, Carter) of GIA.
``vacant``
    a council asset whose occupancy (the register's ``TenureDetail``) says vacant.
``surplus_land``
    land not delivering services strictly greater than ``surplus_land_min_ha`` (0 ha).
``poor_condition``
    high + significant risk backlog per m2 of GIA strictly above the ``peer_quantile``
    (0.75: top quartile) of the sites of the same site type.
``high_running_cost``
    running cost per m2 of GIA strictly above the ``peer_quantile`` of the same site type
    (running cost = ERIC estates and facilities running costs, excluding capital charges).
``not_functionally_suitable``
    not functionally suitable share of occupied floor area strictly above
    ``not_functionally_suitable_max_pct`` (10%).
"""

from __future__ import annotations

from collections.abc import Callable

import geopandas as gpd
import numpy as np
import pandas as pd

from estates.analysis.measures import (
    DERIVED_COLUMNS,
    RUNNING_COST_DEFINITION,
    numeric_column,
    site_measures,
    text_column,
)
from estates.analysis.settings import AnalysisSettings

FLAG_NAMES = (
    "underused_space",
    "vacant",
    "surplus_land",
    "poor_condition",
    "high_running_cost",
    "not_functionally_suitable",
)
FLAGGED, PASS, NOT_ASSESSABLE, NOT_APPLICABLE = (
    "flagged",
    "pass",
    "not_assessable",
    "not_applicable",
)
STATUSES = (FLAGGED, PASS, NOT_ASSESSABLE, NOT_APPLICABLE)
PEER_RULES = {
    "poor_condition": "backlog_high_significant_per_m2",
    "high_running_cost": "running_cost_per_m2",
}
_DECIMALS = 9  # compare thresholds after rounding, so 1.5 + 1.0 is not 2.5000000000000004


def _pct(value: float) -> str:
    """6.1 -> '6.1', 3 -> '3.0', 0.47 -> '0.47'."""
    text = f"{value:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _quantile_words(q: float) -> str:
    if abs(q - 0.75) < 1e-9:
        return "top quartile"
    if abs(q - 0.5) < 1e-9:
        return "top half"
    return f"top {100 * (1 - q):g}%"


def _measured(sites: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    if all(c in sites for c in DERIVED_COLUMNS):
        return sites.copy()
    return site_measures(sites)


def _assessed_mask(frame: pd.DataFrame) -> np.ndarray:
    if "non_geographic" not in frame:
        return np.ones(len(frame), dtype=bool)
    return ~frame["non_geographic"].fillna(False).astype(bool).to_numpy()


def peer_thresholds(peers: pd.DataFrame, column: str, quantile: float) -> pd.DataFrame:
    """Per site type: number of peers with a value and the value at ``quantile``."""
    assessed = peers.loc[_assessed_mask(peers)]
    values = pd.to_numeric(assessed[column], errors="coerce")
    ok = values.notna() & assessed["site_type"].notna()
    grouped = values[ok].groupby(assessed.loc[ok, "site_type"])
    return pd.DataFrame({"n": grouped.size(), "threshold": grouped.quantile(quantile)})


def flag_statuses(
    sites: pd.DataFrame, settings: AnalysisSettings, peers: pd.DataFrame | None = None
) -> dict[str, np.ndarray]:
    """The status of every rule for every site (no sentences), vectorised.

    ``sites`` and ``peers`` must already carry the measures (:func:`site_measures`).
    Used by :func:`flag_sites` and by the sensitivity sweep.
    """
    peers = sites if peers is None else peers
    n = len(sites)
    assessed = _assessed_mask(sites)
    out: dict[str, np.ndarray] = {}

    def rule(assessable: np.ndarray, flagged: np.ndarray, applicable: np.ndarray) -> np.ndarray:
        status = np.full(n, NOT_APPLICABLE, dtype=object)
        live = applicable & assessed
        status[live] = NOT_ASSESSABLE
        status[live & assessable] = PASS
        status[live & assessable & flagged] = FLAGGED
        return status

    everywhere = np.ones(n, dtype=bool)
    gia = numeric_column(sites, "gia_m2")
    spare_pct = numeric_column(sites, "spare_pct")
    ok = ~np.isnan(spare_pct) & (gia > 0)
    with np.errstate(invalid="ignore"):
        over = np.round(spare_pct, _DECIMALS) > settings.underused_space_max_pct
    out["underused_space"] = rule(ok, over, everywhere)

    sector = text_column(sites, "sector")
    occupancy = text_column(sites, "occupancy")
    council = sector == "council"
    known = np.array([isinstance(v, str) and v.strip() != "" for v in occupancy], dtype=bool)
    vacant = np.array([isinstance(v, str) and "vacant" in v.lower() for v in occupancy])
    out["vacant"] = rule(known, vacant, council)

    land = numeric_column(sites, "land_not_delivering_ha")
    with np.errstate(invalid="ignore"):
        surplus = np.round(land, _DECIMALS) > settings.surplus_land_min_ha
    out["surplus_land"] = rule(~np.isnan(land), surplus, everywhere)

    site_type = text_column(sites, "site_type")
    for name, column in PEER_RULES.items():
        table = peer_thresholds(peers, column, settings.peer_quantile)
        table = table[table["n"] >= settings.min_peer_group]
        threshold = pd.Series(site_type).map(table["threshold"]).to_numpy(dtype="float64")
        value = numeric_column(sites, column)
        ok = ~np.isnan(value) & ~np.isnan(threshold)
        with np.errstate(invalid="ignore"):
            out[name] = rule(ok, value > threshold, everywhere)

    nfs = numeric_column(sites, "not_functionally_suitable_pct")
    with np.errstate(invalid="ignore"):
        above = np.round(nfs, _DECIMALS) > settings.not_functionally_suitable_max_pct
    out["not_functionally_suitable"] = rule(~np.isnan(nfs), above, everywhere)
    return out


def _sentences(
    frame: pd.DataFrame,
    statuses: dict[str, np.ndarray],
    settings: AnalysisSettings,
    peers: pd.DataFrame,
) -> dict[str, list[str | None]]:
    """One sentence per flagged (or not assessable) site and rule; None otherwise."""
    q = settings.peer_quantile
    rows = frame.reset_index(drop=True)
    peer_tables = {name: peer_thresholds(peers, column, q) for name, column in PEER_RULES.items()}

    def value(row: pd.Series, column: str) -> float:
        v = row.get(column)
        return float(v) if v is not None and pd.notna(v) else float("nan")

    def underused(row: pd.Series) -> str:
        gia, spare = value(row, "gia_m2"), value(row, "spare_m2")
        target = f"target <= {_pct(settings.underused_space_max_pct)}%"
        if not np.isnan(value(row, "unutilised_pct")):
            return (
                f"un-utilised {_pct(value(row, 'unutilised_pct'))}% of {gia:,.0f} m2 GIA = "
                f"{spare:,.0f} m2 spare; {target}"
            )
        return (
            f"empty {_pct(value(row, 'empty_pct'))}% + under-used "
            f"{_pct(value(row, 'underused_pct'))}% of {gia:,.0f} m2 GIA = {spare:,.0f} m2 spare; "
            f"{target}"
        )

    def vacant(row: pd.Series) -> str:
        parts = ["council asset recorded as vacant in the asset register"]
        if value(row, "gia_m2") > 0:
            parts.append(f"{value(row, 'gia_m2'):,.0f} m2 building")
        if value(row, "land_ha") > 0:
            parts.append(f"{value(row, 'land_ha'):,.2f} ha land")
        return "; ".join(parts)

    def surplus(row: pd.Series) -> str:
        return (
            f"{value(row, 'land_not_delivering_ha'):,.2f} ha of land not delivering services; "
            f"target {settings.surplus_land_min_ha:g} ha"
        )

    def peer(
        name: str, what: str, amount_of: Callable[[pd.Series], float]
    ) -> Callable[[pd.Series], str]:
        def sentence(row: pd.Series) -> str:
            t = peer_tables[name].loc[row["site_type"]]
            return (
                f"{what} £{amount_of(row):,.0f} = £{value(row, PEER_RULES[name]):,.2f} per m2 "
                f"of {value(row, 'gia_m2'):,.0f} m2 GIA; {_quantile_words(q)} of "
                f"{int(t['n'])} '{row['site_type']}' sites is above £{t['threshold']:,.2f} per m2"
            )

        return sentence

    def nfs(row: pd.Series) -> str:
        return (
            f"{_pct(value(row, 'not_functionally_suitable_pct'))}% of occupied floor area not "
            f"functionally suitable; threshold {_pct(settings.not_functionally_suitable_max_pct)}%"
        )

    makers: dict[str, Callable[[pd.Series], str]] = {
        "underused_space": underused,
        "vacant": vacant,
        "surplus_land": surplus,
        "poor_condition": peer(
            "poor_condition",
            "high + significant risk backlog",
            lambda row: value(row, "backlog_high_gbp") + value(row, "backlog_significant_gbp"),
        ),
        "high_running_cost": peer(
            "high_running_cost", RUNNING_COST_DEFINITION, lambda row: value(row, "running_cost_gbp")
        ),
        "not_functionally_suitable": nfs,
    }
    missing_words = {
        "underused_space": "not assessable: empty/under-used % or GIA missing",
        "vacant": "not assessable: occupancy (TenureDetail) not recorded",
        "surplus_land": "not assessable: land not delivering services not reported",
        "not_functionally_suitable": "not assessable: not functionally suitable % not reported",
    }
    out: dict[str, list[str | None]] = {}
    for name in FLAG_NAMES:
        status = statuses[name]
        sentences: list[str | None] = [None] * len(rows)
        for i in np.flatnonzero(status == FLAGGED):
            sentences[i] = makers[name](rows.iloc[i])
        missing = np.flatnonzero(status == NOT_ASSESSABLE)
        if name in PEER_RULES:
            words = _peer_missing(rows, missing, name, peer_tables[name], settings)
        else:
            words = [missing_words[name]] * len(missing)
        for i, text in zip(missing, words, strict=True):
            sentences[i] = text
        out[name] = sentences
    return out


def _peer_missing(
    rows: pd.DataFrame,
    positions: np.ndarray,
    name: str,
    table: pd.DataFrame,
    settings: AnalysisSettings,
) -> list[str]:
    """Why each of these sites cannot be compared with its peers."""
    what = "backlog" if name == "poor_condition" else "running cost"
    site_types = text_column(rows, "site_type")[positions]
    values = numeric_column(rows, PEER_RULES[name])[positions]
    counts = table["n"].to_dict()
    out = []
    for site_type, value in zip(site_types, values, strict=True):
        if site_type is None:
            out.append("not assessable: site type missing")
        elif np.isnan(value):
            out.append(f"not assessable: {what} or GIA missing")
        else:
            out.append(
                f"not assessable: only {int(counts.get(site_type, 0))} '{site_type}' site(s) "
                f"have the {what} figures (a peer comparison needs {settings.min_peer_group})"
            )
    return out


def flag_sites(
    sites: gpd.GeoDataFrame,
    settings: AnalysisSettings,
    *,
    peers: gpd.GeoDataFrame | None = None,
) -> gpd.GeoDataFrame:
    """Return a copy of ``sites`` with the measures, each rule's status and its sentence.

    Adds ``flag_<rule>`` (flagged / pass / not_assessable / not_applicable) and
    ``reason_<rule>`` for every rule in :data:`FLAG_NAMES`, plus ``flags`` (";"-joined
    flagged rules), ``flag_count`` and ``flag_sentences`` ("\\n"-joined sentences).

    Parameters
    ----------
    sites
        Canonical site frame with measures (``estate.sites(measures=True)``), EPSG:27700.
    settings
        Thresholds (:func:`estates.analysis.settings.load_settings`).
    peers
        The sites that form the peer groups of ``poor_condition`` and
        ``high_running_cost`` (default: ``sites`` itself), e.g. every site in the
        database when ``sites`` is one footprint.
    """
    frame = _measured(sites)
    peer_frame = frame if peers is None else _measured(peers)
    statuses = flag_statuses(frame, settings, peer_frame)
    sentences = _sentences(frame, statuses, settings, peer_frame)
    for name in FLAG_NAMES:
        frame[f"flag_{name}"] = statuses[name]
        frame[f"reason_{name}"] = pd.Series(sentences[name], index=frame.index, dtype=object)
    flagged = np.column_stack([statuses[name] == FLAGGED for name in FLAG_NAMES])
    names = np.array(FLAG_NAMES, dtype=object)
    frame["flags"] = [";".join(names[row]) for row in flagged]
    frame["flag_count"] = flagged.sum(axis=1).astype("int64")
    frame["flag_sentences"] = [
        "\n".join(str(sentences[name][i]) for k, name in enumerate(FLAG_NAMES) if flagged[i, k])
        for i in range(len(frame))
    ]
    return frame
