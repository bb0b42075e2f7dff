"""Measure map size and time to open in headless Chromium (not a test: prints a table).

    python -m tests.browser.measure [--runs 3]

For Trafford (real register, both rendering paths) and synthetic estates of 2,000 and
20,000 sites: HTML bytes, seconds to build in Python, and milliseconds from navigation
start to the map being ready (the runtime's ``readyAt``), median of the runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd

import estates.maps as maps
from tests.browser.assets import chromium_browser, goto_map, open_map
from tests.browser.frames import (
    TRAFFORD_CSV,
    TRAFFORD_WARDS,
    read_boundaries,
    synthetic_sites,
    trafford_sites,
)
from tests.conftest import SHARED_DATA


def _synthetic(n: int) -> Callable[[], maps.EstatesMap]:
    frame: gpd.GeoDataFrame = synthetic_sites(n)
    return lambda: maps.sites_map(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    trafford = trafford_sites(SHARED_DATA / TRAFFORD_CSV)
    wards = read_boundaries(SHARED_DATA / TRAFFORD_WARDS, "ward")
    cases: list[tuple[str, Callable[[], maps.EstatesMap]]] = [
        ("Trafford, Folium markers", lambda: maps.sites_map(trafford, boundaries=wards)),
        (
            "Trafford, fast path",
            lambda: maps.sites_map(trafford, boundaries=wards, fast_threshold=0),
        ),
    ]
    for n in (2_000, 20_000):
        cases.append((f"{n:,} synthetic, fast path", _synthetic(n)))
    cases.append(
        (
            "2,000 synthetic, Folium markers",
            lambda: maps.sites_map(synthetic_sites(2_000), fast_threshold=10_000),
        )
    )
    print(f"{'map':34} {'sites':>7} {'HTML bytes':>11} {'build s':>8} {'ready ms':>9}")
    with tempfile.TemporaryDirectory() as tmp, chromium_browser() as browser:
        for label, build in cases:
            started = time.perf_counter()
            drawn = build()
            path = Path(tmp) / "map.html"
            saved = maps.save_map(drawn, path)
            build_s = time.perf_counter() - started
            times = []
            for _ in range(args.runs):
                with open_map(browser, path) as (page, log):
                    times.append(goto_map(page, path, timeout_ms=180_000))
                    problems = log.problems()
                    if problems:
                        raise SystemExit(f"{label}: {problems}")
            print(
                f"{label:34} {saved['sites_drawn']:>7,} {saved['bytes']:>11,} {build_s:>8.2f} "
                f"{statistics.median(times):>9.0f}"
            )


if __name__ == "__main__":
    main()
