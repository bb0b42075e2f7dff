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

import math
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
_STATUS_OBJECTS = np.array(STATUSES, dtype=object)  # a status code is its position here
#: ";"-joined names of every subset of the rules, indexed by its bit pattern.
_FLAG_SETS = np.array(
    [
        ";".join(name for bit, name in enumerate(FLAG_NAMES) if pattern >> bit & 1)
        for pattern in range(1 << len(FLAG_NAMES))
    ],
    dtype=object,
)
#: Builds one rule's sentences for the sites at the given positions.
Maker = Callable[[np.ndarray], list[str]]


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
        return sites.copy(deep=False)
    return site_measures(sites)


def _assessed_mask(frame: pd.DataFrame) -> np.ndarray:
    if "non_geographic" not in frame:
        return np.ones(len(frame), dtype=bool)
    return ~frame["non_geographic"].fillna(False).astype(bool).to_numpy()


def peer_thresholds(peers: pd.DataFrame, column: str, quantile: float) -> pd.DataFrame:
    """Per site type: number of peers with a value and the value at ``quantile``."""
    assessed = _assessed_mask(peers)  # two columns only: never a copy of the whole frame
    values = pd.to_numeric(peers[column], errors="coerce")[assessed]
    site_type = peers["site_type"][assessed]
    ok = values.notna() & site_type.notna()
    grouped = values[ok].groupby(site_type[ok])
    return pd.DataFrame({"n": grouped.size(), "threshold": grouped.quantile(quantile)})


def _peer_tables(peers: pd.DataFrame, quantile: float) -> dict[str, pd.DataFrame]:
    return {name: peer_thresholds(peers, column, quantile) for name, column in PEER_RULES.items()}


def _text_test(values: np.ndarray, test: Callable[[object], bool]) -> np.ndarray:
    """``test`` of each value, evaluated once per distinct value (codes, not rows)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    answers = np.array([test(v) for v in uniques] + [test(None)], dtype=bool)
    return answers[codes]


def flag_statuses(
    sites: pd.DataFrame, settings: AnalysisSettings, peers: pd.DataFrame | None = None
) -> dict[str, np.ndarray]:
    """The status of every rule for every site (no sentences), vectorised.

    ``sites`` and ``peers`` must already carry the measures (:func:`site_measures`).
    Used by :func:`flag_sites` and by the sensitivity sweep.
    """
    peers = sites if peers is None else peers
    return _statuses(sites, settings, _peer_tables(peers, settings.peer_quantile))


def _statuses(
    sites: pd.DataFrame, settings: AnalysisSettings, peer_tables: dict[str, pd.DataFrame]
) -> dict[str, np.ndarray]:
    n = len(sites)
    assessed = _assessed_mask(sites)
    out: dict[str, np.ndarray] = {}

    def rule(assessable: np.ndarray, flagged: np.ndarray, applicable: np.ndarray) -> np.ndarray:
        code = np.full(n, 3, dtype=np.int8)  # NOT_APPLICABLE; codes index STATUSES
        live = applicable & assessed
        code[live] = 2
        code[live & assessable] = 1
        code[live & assessable & flagged] = 0
        return _STATUS_OBJECTS[code]

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
    known = _text_test(occupancy, lambda v: isinstance(v, str) and v.strip() != "")
    vacant = _text_test(occupancy, lambda v: isinstance(v, str) and "vacant" in v.lower())
    out["vacant"] = rule(known, vacant, council)

    land = numeric_column(sites, "land_not_delivering_ha")
    with np.errstate(invalid="ignore"):
        surplus = np.round(land, _DECIMALS) > settings.surplus_land_min_ha
    out["surplus_land"] = rule(~np.isnan(land), surplus, everywhere)

    kind, kinds = _site_types(sites)
    for name, column in PEER_RULES.items():
        table = peer_tables[name]
        table = table[table["n"] >= settings.min_peer_group]
        per_kind = pd.Series(kinds, dtype=object).map(table["threshold"])
        threshold = np.append(per_kind.to_numpy(dtype="float64"), np.nan)[kind]
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
    peer_tables: dict[str, pd.DataFrame],
) -> dict[str, np.ndarray]:
    """One sentence per flagged (or not assessable) site and rule; None otherwise.

    Each rule's sentences are built for its flagged sites only, from whole columns
    (f-strings over zipped arrays): no row objects.
    """
    q = settings.peer_quantile
    n = len(frame)

    def floats(column: str, at: np.ndarray) -> list[float]:
        return numeric_column(frame, column)[at].tolist()

    def underused(at: np.ndarray) -> list[str]:
        target = f"target <= {_pct(settings.underused_space_max_pct)}%"
        return [
            f"un-utilised {_pct(unutilised)}% of {gia:,.0f} m2 GIA = "
            f"{spare:,.0f} m2 spare; {target}"
            if not math.isnan(unutilised)
            else f"empty {_pct(empty)}% + under-used "
            f"{_pct(under)}% of {gia:,.0f} m2 GIA = {spare:,.0f} m2 spare; "
            f"{target}"
            for gia, spare, unutilised, empty, under in zip(
                floats("gia_m2", at),
                floats("spare_m2", at),
                floats("unutilised_pct", at),
                floats("empty_pct", at),
                floats("underused_pct", at),
                strict=True,
            )
        ]

    def vacant(at: np.ndarray) -> list[str]:
        return [
            "council asset recorded as vacant in the asset register"
            + (f"; {gia:,.0f} m2 building" if gia > 0 else "")
            + (f"; {land:,.2f} ha land" if land > 0 else "")
            for gia, land in zip(floats("gia_m2", at), floats("land_ha", at), strict=True)
        ]

    def surplus(at: np.ndarray) -> list[str]:
        target = f"target {settings.surplus_land_min_ha:g} ha"
        return [
            f"{land:,.2f} ha of land not delivering services; {target}"
            for land in floats("land_not_delivering_ha", at)
        ]

    def peer(name: str, what: str, amounts: Callable[[np.ndarray], np.ndarray]) -> Maker:
        def sentences(at: np.ndarray) -> list[str]:
            site_type = text_column(frame, "site_type")[at]
            table = peer_tables[name]
            peers_n = pd.Series(site_type).map(table["n"]).tolist()
            threshold = pd.Series(site_type).map(table["threshold"]).tolist()
            return [
                f"{what} £{amount:,.0f} = £{per_m2:,.2f} per m2 "
                f"of {gia:,.0f} m2 GIA; {_quantile_words(q)} of "
                f"{int(count)} '{kind}' sites is above £{above:,.2f} per m2"
                for amount, per_m2, gia, count, kind, above in zip(
                    amounts(at).tolist(),
                    floats(PEER_RULES[name], at),
                    floats("gia_m2", at),
                    peers_n,
                    site_type.tolist(),
                    threshold,
                    strict=True,
                )
            ]

        return sentences

    def nfs(at: np.ndarray) -> list[str]:
        threshold = f"threshold {_pct(settings.not_functionally_suitable_max_pct)}%"
        return [
            f"{_pct(pct)}% of occupied floor area not functionally suitable; {threshold}"
            for pct in floats("not_functionally_suitable_pct", at)
        ]

    makers: dict[str, Maker] = {
        "underused_space": underused,
        "vacant": vacant,
        "surplus_land": surplus,
        "poor_condition": peer(
            "poor_condition",
            "high + significant risk backlog",
            lambda at: (
                numeric_column(frame, "backlog_high_gbp")[at]
                + numeric_column(frame, "backlog_significant_gbp")[at]
            ),
        ),
        "high_running_cost": peer(
            "high_running_cost",
            RUNNING_COST_DEFINITION,
            lambda at: numeric_column(frame, "running_cost_gbp")[at],
        ),
        "not_functionally_suitable": nfs,
    }
    missing_words = {
        "underused_space": "not assessable: empty/under-used % or GIA missing",
        "vacant": "not assessable: occupancy (TenureDetail) not recorded",
        "surplus_land": "not assessable: land not delivering services not reported",
        "not_functionally_suitable": "not assessable: not functionally suitable % not reported",
    }
    out: dict[str, np.ndarray] = {}
    for name in FLAG_NAMES:
        status = statuses[name]
        sentences = np.full(n, None, dtype=object)
        flagged = np.flatnonzero(status == FLAGGED)
        if len(flagged):
            sentences[flagged] = makers[name](flagged)
        missing = np.flatnonzero(status == NOT_ASSESSABLE)
        if name in PEER_RULES:
            sentences[missing] = _peer_missing(frame, missing, name, peer_tables[name], settings)
        else:
            sentences[missing] = missing_words[name]
        out[name] = sentences
    return out


def _peer_missing(
    rows: pd.DataFrame,
    positions: np.ndarray,
    name: str,
    table: pd.DataFrame,
    settings: AnalysisSettings,
) -> np.ndarray:
    """Why each of these sites cannot be compared with its peers."""
    what = "backlog" if name == "poor_condition" else "running cost"
    kind, kinds = _site_types(rows)
    kind = kind[positions]
    values = numeric_column(rows, PEER_RULES[name])[positions]
    counts = table["n"].to_dict()
    no_type = kind < 0
    out = np.empty(len(positions), dtype=object)  # np.full of a string here is 30x slower
    out[:] = f"not assessable: {what} or GIA missing"
    out[no_type] = "not assessable: site type missing"
    too_few = np.flatnonzero(~no_type & ~np.isnan(values))
    words = np.array(
        [
            f"not assessable: only {int(counts.get(site_type, 0))} '{site_type}' site(s) "
            f"have the {what} figures (a peer comparison needs {settings.min_peer_group})"
            for site_type in kinds
        ],
        dtype=object,
    )
    out[too_few] = words[kind[too_few]]
    return out


def _site_types(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each site's type as a code (-1 when missing) into the distinct types: rules and
    sentences then look each type up once, not once per site."""
    codes, kinds = pd.factorize(text_column(frame, "site_type"))
    return codes, np.asarray(kinds, dtype=object)


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
    tables = _peer_tables(peer_frame, settings.peer_quantile)
    statuses = _statuses(frame, settings, tables)
    sentences = _sentences(frame, statuses, settings, tables)
    for name in FLAG_NAMES:
        frame[f"flag_{name}"] = statuses[name]
        frame[f"reason_{name}"] = pd.Series(sentences[name], index=frame.index, dtype=object)
    flagged = np.column_stack([statuses[name] == FLAGGED for name in FLAG_NAMES])
    # Each site's set of flagged rules as a bit pattern: 2**6 possible ";"-joined names.
    pattern = flagged.astype(np.int64) @ (1 << np.arange(len(FLAG_NAMES), dtype=np.int64))
    frame["flags"] = _FLAG_SETS[pattern]
    frame["flag_count"] = flagged.sum(axis=1).astype("int64")
    joined = np.empty(len(frame), dtype=object)  # np.full of a string here is 30x slower
    joined[:] = ""
    some = np.flatnonzero(pattern)
    reasons = zip(*(sentences[name][some] for name in FLAG_NAMES), strict=True)
    joined[some] = [
        "\n".join([text for text, hit in zip(texts, hits, strict=True) if hit])
        for texts, hits in zip(reasons, flagged[some].tolist(), strict=True)
    ]
    frame["flag_sentences"] = joined
    return frame
