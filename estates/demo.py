"""A small synthetic estate, made by a seeded generator, for the demo and the tests.

The demo must run on a fresh clone with no downloads, so it invents a footprint
("Demoshire": three districts near Manchester, one ICB) and writes its source files in
the formats users really download: an ERIC 2019/20 site CSV (thousands separators, ``Not
Applicable``, fixed-width postcodes, one pooled ``OTHER REPORTABLE SITES`` row per trust),
an LGTC council asset register in the LGA schema (WGS84 ``GeoX``/``GeoY``, some rows
located only by postcode, ``Vacant`` tenure), fire stations as a lon/lat point CSV, a
``postcode,latitude,longitude`` lookup, district and small-area GeoJSON and a
district-to-ICB lookup. The demo then loads them with the real loaders. Same seed, same
files.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from estates.settings import WORKING_CRS

DEMO_SEED = 20261124
ORIGIN = (375_000.0, 390_000.0)  # south-west corner, BNG metres
DISTRICT_SIZE = 8_000.0
SMALL_AREA_SIZE = 2_000.0
ICB_CODE = "E54999999"
ICB_NAME = "NHS Demoshire Integrated Care Board"
DISTRICTS = (("E99000001", "Northam"), ("E99000002", "Midtown"), ("E99000003", "Southby"))
TRUSTS = (
    ("RDM", "DEMOSHIRE HOSPITALS NHS FOUNDATION TRUST", "ACUTE - LARGE"),
    ("RDC", "DEMOSHIRE COMMUNITY HEALTH NHS TRUST", "COMMUNITY"),
)
NHS_SITE_TYPES = (
    "1. General acute hospital",
    "4. Community hospital (with inpatient beds)",
    "7. Support facilities",
    "8. Non inpatient",
)
COUNCIL_NAME = "Demoshire Council"
FIRE_NAME = "Demoshire Fire and Rescue Service"
_TO_WGS = Transformer.from_crs(27700, 4326, always_xy=True)
# Town centres the sites gather around, so co-location has something to find.
_CENTRES = np.array([[4_000.0, 4_000.0], [12_000.0, 3_000.0], [20_000.0, 5_000.0]]) + np.array(
    ORIGIN
)


@dataclass(frozen=True)
class DemoFiles:
    folder: Path
    eric: Path
    council: Path
    fire_stations: Path
    postcodes: Path
    districts: Path
    small_areas: Path
    icb_lookup: Path


def demo_districts() -> gpd.GeoDataFrame:
    """Three 8 km square districts side by side (EPSG:27700)."""
    x0, y0 = ORIGIN
    boxes = [
        shapely.box(x0 + i * DISTRICT_SIZE, y0, x0 + (i + 1) * DISTRICT_SIZE, y0 + DISTRICT_SIZE)
        for i in range(len(DISTRICTS))
    ]
    return gpd.GeoDataFrame(
        {"code": [c for c, _ in DISTRICTS], "name": [n for _, n in DISTRICTS]},
        geometry=[shapely.MultiPolygon([b]) for b in boxes],
        crs=WORKING_CRS,
    )


def _small_areas() -> gpd.GeoDataFrame:
    x0, y0 = ORIGIN
    nx = int(len(DISTRICTS) * DISTRICT_SIZE / SMALL_AREA_SIZE)
    ny = int(DISTRICT_SIZE / SMALL_AREA_SIZE)
    boxes, codes = [], []
    for i in range(nx):
        for j in range(ny):
            boxes.append(
                shapely.box(
                    x0 + i * SMALL_AREA_SIZE,
                    y0 + j * SMALL_AREA_SIZE,
                    x0 + (i + 1) * SMALL_AREA_SIZE,
                    y0 + (j + 1) * SMALL_AREA_SIZE,
                )
            )
            codes.append(f"E01{900000 + i * ny + j:06d}")
    return gpd.GeoDataFrame(
        {"LSOA21CD": codes, "LSOA21NM": [f"Demoshire {c[-3:]}" for c in codes]},
        geometry=boxes,
        crs=WORKING_CRS,
    )


def _positions(rng: np.random.Generator, n: int, spread: float) -> np.ndarray:
    x0, y0 = ORIGIN
    xy = _CENTRES[rng.integers(0, len(_CENTRES), n)] + rng.normal(0.0, spread, size=(n, 2))
    xy[:, 0] = np.clip(xy[:, 0], x0 + 50, x0 + len(DISTRICTS) * DISTRICT_SIZE - 50)
    xy[:, 1] = np.clip(xy[:, 1], y0 + 50, y0 + DISTRICT_SIZE - 50)
    return xy


def _postcode(i: int) -> str:
    letters = "ABDEFGHJLNPQRSTUWXYZ"
    return f"DM{1 + i // 400} {i % 10}{letters[(i // 10) % 20]}{letters[(i // 200) % 20]}"


def _lonlat(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = _TO_WGS.transform(xy[:, 0], xy[:, 1])
    return np.round(lon, 7), np.round(lat, 7)


def _money(value: float) -> str:
    return f"{value:,.0f}"


def write_demo_files(folder: Path, seed: int = DEMO_SEED) -> DemoFiles:
    """Write the demo's source files into ``folder`` (created if needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    # Postcodes: a unit postcode every few hundred metres, the lookup users would download.
    pc_xy = _positions(rng, 600, 1_800.0)
    pc_codes = [_postcode(i) for i in range(len(pc_xy))]
    lon, lat = _lonlat(pc_xy)
    postcodes = folder / "demo_postcodes.csv"
    pd.DataFrame({"postcode": pc_codes, "latitude": lat, "longitude": lon}).to_csv(
        postcodes, index_label="id"
    )

    districts = folder / "demo_districts.geojson"
    frame = demo_districts().rename(columns={"code": "LAD23CD", "name": "LAD23NM"}).to_crs(4326)
    districts.write_text(frame.to_json(drop_id=True))
    small_areas = folder / "demo_lsoa.geojson"
    small_areas.write_text(_small_areas().to_crs(4326).to_json(drop_id=True))
    icb_lookup = folder / "demo_lad_to_icb.csv"
    pd.DataFrame(
        {"LAD23CD": [c for c, _ in DISTRICTS], "ICB23CD": ICB_CODE, "ICB23NM": ICB_NAME}
    ).to_csv(icb_lookup, index=False)

    eric = folder / "ERIC_201920_SiteData_demo.csv"
    _write_eric(eric, rng, pc_codes, pc_xy)
    council = folder / "demoshire_land_and_building_assets.csv"
    _write_council(council, rng, pc_codes)
    fire = folder / "demoshire_fire_stations.csv"
    xy = _positions(rng, 8, 2_500.0)
    flon, flat = _lonlat(xy)
    pd.DataFrame(
        {
            "name": [
                f"{n} Fire Station"
                for n in (
                    "Northam",
                    "Midtown",
                    "Southby",
                    "Riverside",
                    "Hillcrest",
                    "Parkway",
                    "Old Town",
                    "Eastgate",
                )
            ],
            "postcode": [pc_codes[int(i)] for i in rng.integers(0, len(pc_codes), 8)],
            "lon": flon,
            "lat": flat,
        }
    ).to_csv(fire, index=False)
    return DemoFiles(folder, eric, council, fire, postcodes, districts, small_areas, icb_lookup)


def _write_eric(
    path: Path, rng: np.random.Generator, pc_codes: list[str], pc_xy: np.ndarray
) -> None:
    header = [
        "Trust Code", "Trust Name", "Commissioning Region", "Trust Type", "Site Code", "Site Name",
        "Site Type", "Tenure", "Leased", "Post Code", "Leases and rent (£)", "Rates (£)",
        "Estates and property maintenance (£)", "Other Hard FM (Estates) costs (£)",
        "Other Soft FM (Hotel Services) costs (£)", "Gross internal floor area (m²)",
        "NHS estate occupied floor area (%)", "Land area owned (Hectares)",
        "Land area not delivering services (Hectares)",
        "Not functionally suitable - occupied floor area (%)", "Floor area - empty (%)",
        "Floor area - under used (%)", "Cost to eradicate high risk backlog (£)",
        "Cost to eradicate significant risk backlog (£)", "Cost to eradicate moderate risk backlog (£)",
        "Cost to eradicate low risk backlog (£)", "Electricity costs (£)", "Gas costs (£)",
        "Water and sewerage cost (£)", "Cleaning service cost (£)",
    ]  # fmt: skip
    rows: list[list[str]] = []
    for code, name, trust_type in TRUSTS:
        rows.append(
            [code, name, "NORTH WEST COMMISSIONING REGION", trust_type, f"{code}ORS", "OTHER REPORTABLE SITES",
             "8. Non inpatient", "Not Applicable", "Not Applicable", "Not Applicable"]
            + [_money(rng.uniform(1e4, 1e5)) for _ in range(5)]
            + ["1,200", "100", "0", "0", "0", "0", "0"] + ["0"] * 4 + ["10,000", "8,000", "2,000", "5,000"]
        )  # fmt: skip
        for k in range(18):
            site_type = (
                NHS_SITE_TYPES[0]
                if k == 0
                else NHS_SITE_TYPES[int(rng.integers(1, len(NHS_SITE_TYPES)))]
            )
            gia = 60_000.0 if k == 0 else float(np.round(rng.lognormal(7.5, 0.9), 0))
            empty = float(rng.choice([0, 0, 0, 1, 3, 6, 12]))
            under = float(rng.choice([0, 0, 2, 4, 8]))
            pc = pc_codes[int(rng.integers(0, len(pc_codes)))]
            outward, inward = pc.split(" ")
            cost = gia * rng.uniform(40, 160)
            rows.append(
                [
                    code, name, "NORTH WEST COMMISSIONING REGION", trust_type, f"{code}{k + 1:02d}",
                    f"{name.split(' NHS')[0].title()} site {k + 1}", site_type,
                    "1. Freehold", "Not Applicable", f"{outward}{' ' * (1 + k % 3)}{inward}",
                    _money(cost * 0.1), _money(cost * 0.05), _money(cost * 0.3), _money(cost * 0.1), _money(cost * 0.2),
                    _money(gia), f"{100 - empty - under:g}", f"{rng.uniform(0.2, 5):.2f}",
                    f"{rng.choice([0, 0, 0, 0.4, 1.2]):g}", f"{rng.choice([0, 2, 5, 15, 30]):g}",
                    f"{empty:g}", f"{under:g}",
                    _money(gia * rng.uniform(0, 40)), _money(gia * rng.uniform(0, 80)),
                    _money(gia * rng.uniform(0, 100)), _money(gia * rng.uniform(0, 60)),
                    _money(cost * 0.1), _money(cost * 0.08), _money(cost * 0.02), _money(cost * 0.05),
                ]
            )  # fmt: skip
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _write_council(path: Path, rng: np.random.Generator, pc_codes: list[str]) -> None:
    n = 140
    xy = _positions(rng, n, 1_400.0)
    lon, lat = _lonlat(xy)
    kinds = ["Office", "Library", "Community Centre", "Depot", "Youth Centre", "Car Park", "School"]
    located = rng.random(n) < 0.8
    vacant = rng.random(n) < 0.15
    names = [
        f"{rng.choice(['North', 'South', 'East', 'West', 'Old', 'New'])} {rng.choice(kinds)} {i}"
        for i in range(n)
    ]
    # A name straight from a spreadsheet nobody controls: the maps must show it as text.
    names[7] = '<img src=x onerror="window.__pwned=1"> Hall'
    names[11] = '=HYPERLINK("http://example.invalid","Depot")'
    size = np.round(rng.lognormal(6.2, 1.0, n), 1)
    frame = pd.DataFrame(
        {
            "OrganisationLabel": COUNCIL_NAME,
            "OrganisationURI": "https://opendatacommunities.org/id/district-council/demoshire",
            "EffectiveDate": "2025-03-31",
            "UPRN": [str(100_000_000_000 + i) if i % 3 else "" for i in range(n)],
            "AssetCode": [f"DSC{i:04d}" for i in range(n)],
            "PropertyName": names,
            "StreetNumber": "",
            "StreetName": "High Street",
            "PostTown": "Demoshire",
            "PostCode": [pc_codes[int(i)] for i in rng.integers(0, len(pc_codes), n)],
            "CoordinateReferenceSystem": np.where(located, "WGS84", ""),
            "GeoX": np.where(located, lon.astype(str), ""),
            "GeoY": np.where(located, lat.astype(str), ""),
            "TenureType": "Freehold",
            "TenureDetail": np.where(
                vacant, "Vacant", rng.choice(["Owner Occupied", "Leasehold Out"], n)
            ),
            "OtherDetail": "",
            "HoldingType": rng.choice(["Buildings", "Land"], n, p=[0.8, 0.2]),
            "BuildingSize": np.where(rng.random(n) < 0.75, size.astype(str), ""),
            "LandArea": "",
            "EnergyRating": "",
        }
    )
    frame.to_csv(path, index=False)


def demo_sites(seed: int = DEMO_SEED, n_sites: int = 240) -> gpd.GeoDataFrame:
    """Sites of four organisations directly in the canonical site frame (EPSG:27700).

    For tests of storage and analysis that need a frame without going through files.
    """
    rng = np.random.default_rng(seed)
    organisations = [
        (TRUSTS[0][0], TRUSTS[0][1], "nhs"),
        (TRUSTS[1][0], TRUSTS[1][1], "nhs"),
        ("demoshire-council", COUNCIL_NAME, "council"),
        ("demoshire-fire", FIRE_NAME, "emergency_services"),
    ]
    org = rng.choice(len(organisations), size=n_sites, p=[0.25, 0.25, 0.4, 0.1])
    xy = _positions(rng, n_sites, 1_200.0)
    gia = np.round(rng.lognormal(7.0, 1.0, n_sites), 0)
    types = np.where(
        org <= 1,
        rng.choice(list(NHS_SITE_TYPES), n_sites),
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


def manifest(files: DemoFiles) -> str:
    return json.dumps({k: str(v) for k, v in files.__dict__.items()})
