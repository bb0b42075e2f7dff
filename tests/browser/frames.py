"""Site frames for the map tests, built with plain pandas so they need no loader.

``trafford_sites`` reads the real Trafford register (LGA schema): ``GeoX``/``GeoY`` are
longitude/latitude; one row has them swapped (GeoX > 0) and is skipped; rows with no
coordinates are kept, unlocated. ``synthetic_sites`` makes a seeded estate of any size.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

EVIL_NAME = '<img src=x onerror="window.__pwned=1">'
TRAFFORD_CSV = "trafford_council_assets/trafford_land_and_building_assets.csv"
TRAFFORD_WARDS = "trafford_council_assets/boundaries/electoral_ward.geojson"
FLAG_NAMES = (
    "underused_space",
    "vacant",
    "surplus_land",
    "poor_condition",
    "high_running_cost",
    "not_functionally_suitable",
)


def trafford_raw(path: Path) -> pd.DataFrame:
    """The register as text, without the swapped-coordinates row."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    x = pd.to_numeric(raw["GeoX"], errors="coerce")
    return raw.loc[~(x > 0)].reset_index(drop=True)


def trafford_sites(path: Path) -> gpd.GeoDataFrame:
    """The canonical site frame for Trafford, with a ``vacant`` flag from ``TenureDetail``."""
    raw = trafford_raw(path)
    x = pd.to_numeric(raw["GeoX"], errors="coerce")
    y = pd.to_numeric(raw["GeoY"], errors="coerce")
    located = x.notna() & y.notna()
    points = gpd.GeoSeries(gpd.points_from_xy(x, y), crs="EPSG:4326")
    points[~located] = None
    vacant = raw["TenureDetail"].str.strip().str.lower() == "vacant"
    names = raw["PropertyName"]
    frame = pd.DataFrame(
        {
            "site_id": np.arange(1, len(raw) + 1),
            "source_key": "lgtc:trafford:" + raw["AssetCode"],
            "name": names,
            "address": (
                raw["StreetNumber"] + " " + raw["StreetName"] + ", " + raw["PostTown"]
            ).str.strip(" ,"),
            "postcode": raw["PostCode"],
            "organisation_code": "E08000009",
            "organisation_name": "Trafford Council",
            "sector": "council",
            "site_type": raw["OtherDetail"].where(raw["OtherDetail"] != "", raw["HoldingType"]),
            "tenure": raw["TenureType"],
            "occupancy": raw["TenureDetail"],
            "gia_m2": pd.to_numeric(raw["BuildingSize"], errors="coerce"),
            "non_geographic": False,
            "flag_vacant": np.where(vacant, "flagged", "pass"),
            "reason_vacant": np.where(
                vacant,
                "The council register lists " + names + " as vacant.",
                "The council register lists it as " + raw["TenureDetail"] + ".",
            ),
        }
    )
    return gpd.GeoDataFrame(frame, geometry=points.to_crs(27700).values, crs="EPSG:27700")


def synthetic_sites(n: int, *, seed: int = 7, evil_every: int = 0) -> gpd.GeoDataFrame:
    """``n`` located sites around Greater Manchester with analysis columns (seeded).

    With ``evil_every``, every that-many-th site is named :data:`EVIL_NAME`.
    """
    rng = np.random.default_rng(seed)
    x = 383_000 + rng.normal(0, 9_000, n)
    y = 398_000 + rng.normal(0, 9_000, n)
    sectors = rng.choice(
        ["nhs", "council", "central_government", "emergency_services", "other"],
        n,
        p=[0.35, 0.4, 0.1, 0.08, 0.07],
    )
    gia = np.round(rng.lognormal(6.5, 1.1, n), 1)
    spare = np.round(gia * rng.uniform(0, 0.2, n), 1)
    names = np.array([f"Synthetic site {i}" for i in range(n)], dtype=object)
    if evil_every:
        names[::evil_every] = EVIL_NAME
    frame = pd.DataFrame(
        {
            "site_id": np.arange(1, n + 1),
            "source_key": [f"test:{i}" for i in range(n)],
            "name": names,
            "address": [f"{i} Test Street, Manchester" for i in range(n)],
            "postcode": "M1 1AA",
            "organisation_code": [f"ORG{k}" for k in rng.integers(0, 40, n)],
            "organisation_name": [f"Organisation {k}" for k in rng.integers(0, 40, n)],
            "sector": sectors,
            "site_type": rng.choice(["Office", "Clinic", "Depot", "Library", "Hospital"], n),
            "tenure": rng.choice(["Freehold", "Leasehold"], n),
            "occupancy": rng.choice(["occupied", "vacant"], n, p=[0.9, 0.1]),
            "gia_m2": gia,
            "non_geographic": False,
            "spare_m2": spare,
            "running_cost_per_m2": np.round(rng.uniform(40, 400, n), 2),
            "backlog_per_m2": np.round(rng.uniform(0, 300, n), 2),
        }
    )
    for name in FLAG_NAMES:
        status = rng.choice(["flagged", "pass", "not_assessable"], n, p=[0.08, 0.8, 0.12])
        frame[f"flag_{name}"] = status
        frame[f"reason_{name}"] = [
            f"{name.replace('_', ' ').capitalize()} test for site {i}: {s}."
            for i, s in enumerate(status)
        ]
    return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(x, y), crs="EPSG:27700")


def read_boundaries(path: Path, kind: str) -> gpd.GeoDataFrame:
    """A boundary GeoJSON (``area_code``/``area_name``) as the canonical boundary frame."""
    raw = gpd.read_file(path)
    return gpd.GeoDataFrame(
        {"code": raw["area_code"], "name": raw["area_name"], "kind": kind},
        geometry=raw.geometry.values,
        crs=raw.crs,
    ).to_crs(27700)


def synthetic_scenario(n: int = 300, *, seed: int = 11, evil: bool = False) -> SimpleNamespace:
    """A pooling scenario shaped like ``estates.pipeline.run_pooling``'s (seeded)."""
    rng = np.random.default_rng(seed)
    sites = synthetic_sites(n, seed=seed)
    if evil:
        sites.loc[sites.index[0], "name"] = EVIL_NAME
    roles = np.full(n, "retained", dtype=object)
    order = rng.permutation(n)
    released, receiving = order[: n // 15], order[n // 15 : n // 15 + n // 10]
    roles[released] = "released"
    roles[receiving] = "receiving"
    roles[order[n // 15 + n // 10 : n // 15 + n // 10 + 5]] = "protected"
    roles[order[n // 15 + n // 10 + 5 : n // 15 + n // 10 + 12]] = "not_released"
    sites["role"] = roles
    sites["pool_reason"] = [
        {
            "released": "Flagged and its floor area fits in spare space within 2 km.",
            "receiving": "Takes floor area from released sites.",
            "protected": "Acute hospital: never released.",
            "not_released": "Flagged, but no spare space within 2 km can take its floor area.",
        }.get(r, "Not flagged.")
        for r in roles
    ]
    points = sites.geometry.values
    rows = []
    for k, i in enumerate(released):
        j = receiving[k % len(receiving)]
        area = float(sites["gia_m2"].iloc[i])
        rows.append(
            {
                "from_site_id": int(sites["site_id"].iloc[i]),
                "to_site_id": int(sites["site_id"].iloc[j]),
                "floor_area_m2": area,
                "distance_m": float(points[i].distance(points[j])),
                "geometry": shapely.LineString([points[i], points[j]]),
            }
        )
    flows = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:27700")
    cells = []
    x0, y0 = 365_000, 380_000
    for ix in range(6):
        for iy in range(6):
            before = float(rng.uniform(200, 2_000))
            increase = float(max(0.0, rng.normal(150, 250)))
            cells.append(
                {
                    "code": f"E0100{ix}{iy}",
                    "name": EVIL_NAME if evil and ix == iy == 0 else f"Small area {ix}-{iy}",
                    "sector": "nhs",
                    "before_m": before,
                    "after_m": before + increase,
                    "increase_m": increase,
                    "geometry": shapely.box(
                        x0 + ix * 6_000,
                        y0 + iy * 6_000,
                        x0 + (ix + 1) * 6_000,
                        y0 + (iy + 1) * 6_000,
                    ),
                }
            )
    access = gpd.GeoDataFrame(cells, geometry="geometry", crs="EPSG:27700")
    released_rows = sites.iloc[released]
    headline = {
        "floor_area_released_m2": float(released_rows["gia_m2"].sum()),
        "running_cost_saved_gbp": float(
            (released_rows["gia_m2"] * released_rows["running_cost_per_m2"]).sum()
        ),
        "backlog_avoided_gbp": {"high": 1_250_000.0, "significant": 830_000.0},
        "land_released_ha": 3.4,
        "indicative_receipts_gbp": 12_500_000.0,
        "receipt_assumptions": "£1.5m per hectare of released land (assumed)",
        "access": {
            "mean_increase_m": float(access["increase_m"].mean()),
            "worst_increase_m": float(access["increase_m"].max()),
            "areas_beyond_threshold": int((access["increase_m"] > 500).sum()),
            "threshold_m": 500.0,
        },
        "status": "optimal",
        "mip_gap": 0.0,
        "sites_released": len(released),
        "sites_considered": n,
    }
    return SimpleNamespace(sites=sites, flows=flows, access=access, headline=headline)
