"""A small synthetic estate, made by a seeded generator, for the demo and the tests.

The demo must run on a fresh clone with no downloads, so it draws a fictional
footprint ("Demoshire", three districts near Manchester in British National Grid) with
NHS, council and other public sites. Same seed, same data.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

from estates.settings import WORKING_CRS

DEMO_SEED = 20261124
ORIGIN = (375_000.0, 390_000.0)  # south-west corner, BNG metres
DISTRICT_SIZE = 8_000.0


def demo_districts() -> gpd.GeoDataFrame:
    """Three 8 km square districts side by side, with GSS-like codes."""
    x0, y0 = ORIGIN
    boxes = [
        shapely.box(x0 + i * DISTRICT_SIZE, y0, x0 + (i + 1) * DISTRICT_SIZE, y0 + DISTRICT_SIZE)
        for i in range(3)
    ]
    return gpd.GeoDataFrame(
        {
            "code": ["E99000001", "E99000002", "E99000003"],
            "name": ["Northam", "Midtown", "Southby"],
        },
        geometry=[shapely.MultiPolygon([b]) for b in boxes],
        crs=WORKING_CRS,
    )


def demo_sites(seed: int = DEMO_SEED, n_sites: int = 240) -> gpd.GeoDataFrame:
    """Sites of four organisations in the canonical site frame (EPSG:27700)."""
    rng = np.random.default_rng(seed)
    x0, y0 = ORIGIN
    organisations = [
        ("RDM", "DEMOSHIRE HOSPITALS NHS FOUNDATION TRUST", "nhs"),
        ("RDC", "DEMOSHIRE COMMUNITY HEALTH NHS TRUST", "nhs"),
        ("demoshire-council", "Demoshire Council", "council"),
        ("demoshire-fire", "Demoshire Fire and Rescue Service", "emergency_services"),
    ]
    org = rng.choice(len(organisations), size=n_sites, p=[0.25, 0.25, 0.4, 0.1])
    # Clustered around a few town centres, so co-location has something to find.
    centres = np.array(
        [[x0 + 4_000, y0 + 4_000], [x0 + 12_000, y0 + 3_000], [x0 + 20_000, y0 + 5_000]]
    )
    which = rng.integers(0, len(centres), n_sites)
    xy = centres[which] + rng.normal(0, 1_200, size=(n_sites, 2))
    xy[:, 0] = np.clip(xy[:, 0], x0 + 50, x0 + 3 * DISTRICT_SIZE - 50)
    xy[:, 1] = np.clip(xy[:, 1], y0 + 50, y0 + DISTRICT_SIZE - 50)
    gia = np.round(rng.lognormal(7.0, 1.0, n_sites), 0)
    types = np.where(
        org <= 1,
        rng.choice(
            [
                "1. General acute hospital",
                "4. Community hospital (with inpatient beds)",
                "7. Support facilities",
                "8. Non inpatient",
            ],
            n_sites,
        ),
        rng.choice(["Office", "Library", "Community Centre", "Depot", "Fire Station"], n_sites),
    )
    occupancy = np.where((org == 2) & (rng.random(n_sites) < 0.15), "vacant", "occupied")
    return gpd.GeoDataFrame(
        {
            "source_key": [f"demo:{i:04d}" for i in range(n_sites)],
            "organisation_code": [organisations[o][0] for o in org],
            "organisation_name": [organisations[o][1] for o in org],
            "sector": [organisations[o][2] for o in org],
            "name": [f"Demo site {i}" for i in range(n_sites)],
            "site_type": types,
            "occupancy": occupancy,
            "gia_m2": gia,
            "located_by": "source_coordinates",
            "non_geographic": False,
        },
        geometry=shapely.points(xy[:, 0], xy[:, 1]),
        crs=WORKING_CRS,
    )
