"""Threshold sensitivity: how robust is each site's flag to the thresholds chosen?

The sweep takes every combination of the values in the settings' ``[sensitivity]``
section (``underused_space_max_pct``, ``peer_quantile``,
``not_functionally_suitable_max_pct``, ``surplus_land_min_ha``); each combination is one
setting. For each site it reports the share of settings under which each rule flags it
and under which it has any flag. A share near 1 is a robust flag; near 0.5, a flag that
depends on where the line is drawn. Shares are over the settings under which the rule
could be assessed for the site (missing when never).
"""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import pandas as pd

from estates.analysis.flags import FLAG_NAMES, FLAGGED, PASS, flag_statuses
from estates.analysis.measures import DERIVED_COLUMNS, site_measures
from estates.analysis.settings import AnalysisSettings

SWEPT = {
    "underused_space_max_pct": "sweep_underused_space_max_pct",
    "peer_quantile": "sweep_peer_quantile",
    "not_functionally_suitable_max_pct": "sweep_not_functionally_suitable_max_pct",
    "surplus_land_min_ha": "sweep_surplus_land_min_ha",
}
#: Flag share at or above which a flag is called robust, at or below which fragile.
ROBUST_SHARE = 0.8


def sweep_settings(settings: AnalysisSettings) -> list[AnalysisSettings]:
    """Every combination of the swept values, as settings."""
    names = list(SWEPT)
    values = [getattr(settings, SWEPT[name]) for name in names]
    return [
        settings.replace(**dict(zip(names, combo, strict=True)))
        for combo in itertools.product(*values)
    ]


def flag_sensitivity(
    sites: gpd.GeoDataFrame,
    settings: AnalysisSettings,
    *,
    peers: gpd.GeoDataFrame | None = None,
) -> pd.DataFrame:
    """Per site, the share of swept settings under which it is flagged, overall and per rule.

    Returns a DataFrame (same index as ``sites``) with ``site_id``, ``source_key``,
    ``name``, ``share_flagged`` (any rule), ``share_<rule>`` for every rule,
    ``flagged_at_settings`` (the share under the given settings' own thresholds, 0 or
    1), ``robustness`` ("robust", "fragile", "borderline" or "never flagged") and
    ``settings_swept``. The input is not modified.
    """
    frame = sites if all(c in sites for c in DERIVED_COLUMNS) else site_measures(sites)
    peer_frame = (
        frame
        if peers is None
        else (peers if all(c in peers for c in DERIVED_COLUMNS) else site_measures(peers))
    )
    variants = sweep_settings(settings)
    n = len(frame)
    flagged = {name: np.zeros(n) for name in FLAG_NAMES}
    assessable = {name: np.zeros(n) for name in FLAG_NAMES}
    any_flag = np.zeros(n)
    any_assessable = np.zeros(n)
    cache: dict[tuple[str, float], np.ndarray] = {}
    for variant in variants:
        statuses = _cached_statuses(frame, variant, peer_frame, cache)
        hit = np.zeros(n, dtype=bool)
        seen = np.zeros(n, dtype=bool)
        for name in FLAG_NAMES:
            status = statuses[name]
            is_flagged = status == FLAGGED
            flagged[name] += is_flagged
            assessable[name] += np.isin(status, (FLAGGED, PASS))
            hit |= is_flagged
            seen |= np.isin(status, (FLAGGED, PASS))
        any_flag += hit
        any_assessable += seen
    own = flag_statuses(frame, settings, peer_frame)
    out = pd.DataFrame(index=frame.index)
    for column in ("site_id", "source_key", "name", "organisation_code", "sector", "site_type"):
        if column in frame:
            out[column] = frame[column]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["share_flagged"] = np.where(any_assessable > 0, any_flag / len(variants), np.nan)
        for name in FLAG_NAMES:
            out[f"share_{name}"] = np.where(
                assessable[name] > 0, flagged[name] / assessable[name], np.nan
            )
    out["flagged_at_settings"] = np.any(
        np.column_stack([own[name] == FLAGGED for name in FLAG_NAMES]), axis=1
    ).astype(float)
    share = out["share_flagged"].to_numpy()
    out["robustness"] = np.select(
        [np.isnan(share), share >= ROBUST_SHARE, share == 0, share <= 1 - ROBUST_SHARE],
        ["not assessable", "robust", "never flagged", "fragile"],
        default="borderline",
    )
    out["settings_swept"] = len(variants)
    return out


def _cached_statuses(
    frame: pd.DataFrame,
    variant: AnalysisSettings,
    peers: pd.DataFrame,
    cache: dict[tuple[str, float], np.ndarray],
) -> dict[str, np.ndarray]:
    """Statuses of one swept setting; each rule depends on one swept value, so reuse them."""
    keys = {
        "underused_space": variant.underused_space_max_pct,
        "vacant": 0.0,
        "surplus_land": variant.surplus_land_min_ha,
        "poor_condition": variant.peer_quantile,
        "high_running_cost": variant.peer_quantile,
        "not_functionally_suitable": variant.not_functionally_suitable_max_pct,
    }
    if not all((name, value) in cache for name, value in keys.items()):
        statuses = flag_statuses(frame, variant, peers)
        for name, value in keys.items():
            cache[(name, value)] = statuses[name]
    return {name: cache[(name, value)] for name, value in keys.items()}
