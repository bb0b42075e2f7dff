"""Pooling scenario at scale: a 5,000-site synthetic footprint, solved with SciPy milp (HiGHS).

Run ``python -m benchmarks.pooling_scale [N ...]``. Prints one row per footprint: sites,
MILP candidates, candidate pairs, independent parts, solver status, proven gap and the
wall time of :func:`estates.analysis.pooling.pool_footprint` (flags included).

Two mixes, both seeded:

- ``stress``: 45% NHS sites, *every one* with ERIC-style measures (spare space, running
  cost, backlog), so about 1,400 release candidates and 45,000 candidate pairs within
  3 km: far denser than any real footprint;
- ``realistic``: 10% of sites with ERIC-style measures (trust sites), the rest points
  with no measures (GP practices, council assets, other public buildings), as in the
  Greater Manchester data.
"""

from __future__ import annotations

import sys
import time

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from estates.analysis.pooling import pool_footprint
from estates.analysis.settings import load_settings

NHS_TYPES = [
    "1. General acute hospital",
    "4. Mental Health (including Specialist services)",
    "7. Community hospital (with inpatient beds)",
    "8. Other inpatient",
]


def synthetic_footprint(
    n: int = 5000, *, measured_share: float = 0.45, seed: int = 1, side_m: float = 35_000.0
) -> gpd.GeoDataFrame:
    """``n`` sites around 25 town centres in a ``side_m`` square (about Greater Manchester)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, side_m, (25, 2))
    which = rng.integers(0, 25, n)
    xy = centres[which] + rng.normal(0, 1500, (n, 2)) + np.array([370_000, 390_000])
    measured = rng.random(n) < measured_share
    sector = np.where(measured, "nhs", rng.choice(["nhs", "council", "emergency_services"], n))
    site_type = np.where(
        measured,
        rng.choice(NHS_TYPES, n, p=[0.08, 0.32, 0.4, 0.2]),
        np.where(sector == "nhs", "GP practice", rng.choice(["Office", "Library", "Depot"], n)),
    )
    gia = np.round(rng.lognormal(7.5, 1.0, n))

    def measure(values: np.ndarray) -> np.ndarray:
        return np.where(measured, values, np.nan)

    frame = pd.DataFrame(
        {
            "site_id": np.arange(1, n + 1),
            "organisation_code": np.where(
                sector == "nhs", "R" + (which % 5).astype(str), "C" + (which % 3).astype(str)
            ),
            "organisation_name": "synthetic",
            "sector": sector,
            "source_key": [f"synthetic:{i}" for i in range(n)],
            "name": [f"site {i}" for i in range(n)],
            "site_type": site_type,
            "tenure": rng.choice(["1. Freehold", "7. Leased from NHS Property Services"], n),
            "occupancy": np.where(
                sector == "council", rng.choice(["owner occupied", "vacant"], n, p=[0.9, 0.1]), None
            ),
            "gia_m2": gia,
            "land_ha": np.round(gia / 4000 * rng.uniform(0.5, 3, n), 2),
            "non_geographic": False,
            "empty_pct": measure(
                np.where(rng.random(n) < 0.4, rng.uniform(0, 15, n), 0.0).round(1)
            ),
            "underused_pct": measure(
                np.where(rng.random(n) < 0.3, rng.uniform(0, 10, n), 0.0).round(1)
            ),
            "not_functionally_suitable_pct": measure(
                np.where(rng.random(n) < 0.2, rng.uniform(0, 60, n), 0.0).round(1)
            ),
            "backlog_high_gbp": measure(gia * rng.exponential(20, n)),
            "backlog_significant_gbp": measure(gia * rng.exponential(30, n)),
            "backlog_moderate_gbp": measure(gia * rng.exponential(30, n)),
            "backlog_low_gbp": measure(gia * rng.exponential(30, n)),
            "running_cost_gbp": measure(gia * rng.lognormal(4.5, 0.4, n)),
            "land_not_delivering_ha": measure(np.zeros(n)),
        }
    )
    return gpd.GeoDataFrame(frame, geometry=shapely.points(xy), crs="EPSG:27700")


def main(sizes: list[int]) -> None:
    settings = load_settings()
    header = (
        f"{'mix':<10}{'sites':>7}{'cands':>7}{'pairs':>8}{'parts':>7}{'released':>9}"
        f"{'gap':>9}{'seconds':>9}  status"
    )
    print(header)
    for mix, share in (("realistic", 0.10), ("stress", 0.45)):
        for n in sizes:
            sites = synthetic_footprint(n, measured_share=share)
            started = time.perf_counter()
            scenario = pool_footprint(sites, settings)
            seconds = time.perf_counter() - started
            h = scenario.headline
            print(
                f"{mix:<10}{n:>7}{h['sites_considered']:>7}{h['milp_pairs']:>8}"
                f"{h.get('milp_parts', 0):>7}{h['sites_released']:>9}{h['mip_gap']:>9.2%}"
                f"{seconds:>9.2f}  {h['status']}",
                flush=True,
            )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 5000])
