"""A seeded national-scale estate in the real published formats, for benchmarks.

Positions are drawn around the real GP practice locations in ``../shared/data`` (so sites
fall where England's people and services are), floor areas from the real ERIC 2019/20
distribution, and the files use the real layouts: an ERIC 2019/20 site CSV (the real
header, thousands separators, ``Not Applicable``, pooled ``OTHER REPORTABLE SITES`` rows),
LGTC council registers in a mix of coordinate conventions (LGA schema with WGS84 GeoX/GeoY,
LGA schema in British National Grid, a home-made Easting/Northing variant with a title
line), a GP-style point layer and an ONSPD-style postcode lookup. Same seed, same files.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pyproj import Transformer

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ERIC_FILE = "eric_site_2019_20/ERIC_201920_SiteData_for_R.csv"
GP_FILE = "nhs_tu_asset_mapping/gp_practices_geo.csv"
LAD_FILE = "boundaries_england/topo_lad.json"

LGA_HEADER = [
    "OrganisationLabel", "OrganisationURI", "EffectiveDate", "UPRN", "AssetCode", "PropertyName",
    "StreetNumber", "StreetName", "PostTown", "PostCode", "CoordinateReferenceSystem", "GeoX",
    "GeoY", "TenureType", "TenureDetail", "OtherDetail", "HoldingType", "BuildingSize",
    "LandArea", "EnergyRating",
]  # fmt: skip
VARIANT_HEADER = ["Asset Ref", "Property Name", "Address", "Post Code", "Easting", "Northing",
                  "Unique Property Reference Number", "Tenure", "Occupancy", "GIA (sq m)"]  # fmt: skip
ONSPD_HEADER = ["pcd", "pcd2", "pcds", "dointr", "doterm", "oslaua", "osward", "usertype", "oseast1m",
                "osnrth1m", "osgrdind", "ctry", "rgn", "lsoa21", "msoa21", "icb", "lat", "long"]  # fmt: skip
_LETTERS = np.array(list("ABDEFGHJLNPQRSTUWXYZ"))
_TO_BNG = Transformer.from_crs(4326, 27700, always_xy=True)
_TO_WGS = Transformer.from_crs(27700, 4326, always_xy=True)


@dataclass(frozen=True)
class Scale:
    """How big an estate: ``sites`` in all, and the postcode lookup size."""

    sites: int
    postcodes: int = 2_600_000

    @property
    def eric_sites(self) -> int:
        return max(50, self.sites // 50)

    @property
    def point_sites(self) -> int:
        return max(50, self.sites // 10)

    @property
    def council_sites(self) -> int:
        return self.sites - self.eric_sites - self.point_sites


@dataclass(frozen=True)
class GeneratedEstate:
    folder: Path
    eric: Path
    councils: list[Path]
    points: Path
    postcodes: Path
    districts: Path
    scale: Scale


def _anchors() -> np.ndarray:
    """Real GP practice locations in BNG metres: where public services are."""
    gp = pd.read_csv(SHARED_DATA / GP_FILE, usecols=["LAT", "LON"]).dropna()
    x, y = _TO_BNG.transform(gp["LON"].to_numpy(), gp["LAT"].to_numpy())
    return np.column_stack([x, y])


def _positions(rng: np.random.Generator, anchors: np.ndarray, n: int, spread: float) -> np.ndarray:
    pick = rng.integers(0, len(anchors), n)
    return anchors[pick] + rng.normal(0.0, spread, size=(n, 2))


def _postcodes(n: int, offset: int = 0) -> list[str]:
    """``n`` distinct, well-formed synthetic postcodes (outward AA9[9], inward 9AA)."""
    i = np.arange(offset, offset + n, dtype=np.int64)
    unit = i % 400
    sector = (i // 400) % 10
    district = (i // 4000) % 99 + 1
    area = i // (4000 * 99)
    a1 = _LETTERS[area % 20]
    a2 = _LETTERS[(area // 20) % 20]
    u1 = _LETTERS[unit // 20]
    u2 = _LETTERS[unit % 20]
    return [
        f"{p}{q}{d} {s}{x}{y}"
        for p, q, d, s, x, y in zip(a1, a2, district, sector, u1, u2, strict=True)
    ]


def _thousands(values: np.ndarray) -> list[str]:
    return [f"{v:,.0f}" for v in values]


def generate(folder: Path, scale: Scale, seed: int = 20261124) -> GeneratedEstate:
    """Write the estate's source files into ``folder`` and say where they are."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    anchors = _anchors()

    # Postcode lookup (ONSPD layout): the sites below reuse some of these postcodes.
    pc_xy = _positions(rng, anchors, scale.postcodes, 2_000.0)
    pc_codes = _postcodes(scale.postcodes)
    lon, lat = _TO_WGS.transform(pc_xy[:, 0], pc_xy[:, 1])
    postcodes = folder / "onspd.csv"
    frame = pd.DataFrame(
        {
            "pcd": [c[:-4].ljust(4) + c[-3:] for c in pc_codes],  # 7-character form
            "pcd2": [c[:-4].ljust(4) + " " + c[-3:] for c in pc_codes],  # 8-character form
            "pcds": pc_codes,
            "dointr": "198001",
            "doterm": np.where(rng.random(scale.postcodes) < 0.1, "201506", ""),
            "oslaua": "E08000009",
            "osward": "E05000820",
            "usertype": "0",
            "oseast1m": np.round(pc_xy[:, 0]).astype(np.int64),
            "osnrth1m": np.round(pc_xy[:, 1]).astype(np.int64),
            "osgrdind": "1",
            "ctry": "E92000001",
            "rgn": "E12000002",
            "lsoa21": "E01006000",
            "msoa21": "E02001000",
            "icb": "E54000057",
            "lat": np.round(lat, 6),
            "long": np.round(lon, 6),
        }
    )
    frame.to_csv(postcodes, index=False, columns=ONSPD_HEADER)

    gia_pool = pd.read_csv(
        SHARED_DATA / ERIC_FILE, usecols=["Gross internal floor area (m²)"], thousands=","
    )
    gia_values = pd.to_numeric(gia_pool.iloc[:, 0], errors="coerce").dropna().to_numpy()
    gia_values = gia_values[gia_values > 0]

    eric = folder / "eric_site_2019_20.csv"
    _write_eric(eric, rng, anchors, gia_values, pc_codes, pc_xy, scale.eric_sites)

    councils = []
    per_council = math.ceil(scale.council_sites / 3)
    written = 0
    for k, convention in enumerate(("wgs84", "bng", "variant")):
        n = min(per_council, scale.council_sites - written)
        written += n
        path = folder / f"council_{k + 1}_{convention}.csv"
        _write_council(path, rng, anchors, pc_codes, pc_xy, n, convention, k + 1)
        councils.append(path)

    points = folder / "gp_style_points.csv"
    xy = _positions(rng, anchors, scale.point_sites, 500.0)
    plon, plat = _TO_WGS.transform(xy[:, 0], xy[:, 1])
    pd.DataFrame(
        {
            "": np.arange(1, scale.point_sites + 1),
            "ODS_Code": [f"Z{i:05d}" for i in range(scale.point_sites)],
            "Role": "GP PRACTICE",
            "Name": [f"PRACTICE {i}" for i in range(scale.point_sites)],
            "geo_match": "PostCode",
            "LAT": np.round(plat, 7),
            "LON": np.round(plon, 7),
        }
    ).to_csv(points, index=False, quoting=csv.QUOTE_NONNUMERIC)
    return GeneratedEstate(folder, eric, councils, points, postcodes, SHARED_DATA / LAD_FILE, scale)


def _write_eric(
    path: Path,
    rng: np.random.Generator,
    anchors: np.ndarray,
    gia_values: np.ndarray,
    pc_codes: list[str],
    pc_xy: np.ndarray,
    n: int,
) -> None:
    with open(SHARED_DATA / ERIC_FILE, encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    index = {name: header.index(name) for name in dict.fromkeys(header)}
    trusts = max(1, n // 6)
    pick = rng.integers(0, len(pc_codes), n)
    gia = rng.choice(gia_values, n)
    rows = []
    for i in range(n):
        trust = i % trusts
        row = ["Not Applicable"] * len(header)
        ors = i < trusts  # one pooled OTHER REPORTABLE SITES row per trust
        row[index["Trust Code"]] = f"T{trust:03d}"
        row[index["Trust Name"]] = f"SYNTHETIC NHS TRUST {trust}"
        row[index["Commissioning Region"]] = "NORTH WEST COMMISSIONING REGION"
        row[index["Trust Type"]] = "ACUTE - LARGE"
        row[index["Site Code"]] = f"T{trust:03d}ORS" if ors else f"T{trust:03d}{i:05d}"
        row[index["Site Name"]] = "OTHER REPORTABLE SITES" if ors else f"SYNTHETIC SITE {i}"
        row[index["Site Type"]] = rng.choice(
            ["1. General acute hospital", "8. Non inpatient", "7. Support facilities"]
        )
        row[index["Tenure"]] = "1. Freehold"
        row[index["Post Code"]] = "" if ors else pc_codes[pick[i]].replace(" ", "   ")
        row[index["Gross internal floor area (m²)"]] = f"{gia[i]:,.0f}"
        row[index["Floor area - empty (%)"]] = f"{rng.choice([0, 0, 0, 1, 3, 6]):d}"
        row[index["Floor area - under used (%)"]] = f"{rng.choice([0, 0, 2, 4]):d}"
        row[index["Land area not delivering services (Hectares)"]] = (
            f"{rng.choice([0, 0, 0, 0.5]):g}"
        )
        row[index["Estates and property maintenance (£)"]] = f"{gia[i] * rng.uniform(20, 60):,.0f}"
        row[index["Cost to eradicate high risk backlog (£)"]] = (
            f"{gia[i] * rng.uniform(0, 30):,.0f}"
        )
        row[index["Cost to eradicate significant risk backlog (£)"]] = (
            f"{gia[i] * rng.uniform(0, 50):,.0f}"
        )
        row[index["Not functionally suitable - occupied floor area (%)"]] = (
            f"{rng.choice([0, 5, 15]):d}"
        )
        rows.append(row)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _write_council(
    path: Path,
    rng: np.random.Generator,
    anchors: np.ndarray,
    pc_codes: list[str],
    pc_xy: np.ndarray,
    n: int,
    convention: str,
    number: int,
) -> None:
    xy = _positions(rng, anchors, n, 1_500.0)
    has_coords = rng.random(n) < 0.7  # the rest are located by postcode
    pick = rng.integers(0, len(pc_codes), n)
    postcode = np.asarray(pc_codes, dtype=object)[pick]
    unknown = rng.random(n) < 0.02
    postcode[unknown] = "ZZ99 9ZZ"
    vacant = rng.random(n) < 0.08
    size = np.round(rng.lognormal(6.0, 1.2, n), 2)
    size_text = np.where(rng.random(n) < 0.3, "", size.astype(str))
    codes = [f"C{number}-{i:07d}" for i in range(n)]
    names = [f"Council asset {i}" for i in range(n)]
    if convention == "variant":
        e = np.where(has_coords, np.round(xy[:, 0]).astype(np.int64).astype(str), "")
        nn = np.where(has_coords, np.round(xy[:, 1]).astype(np.int64).astype(str), "")
        frame = pd.DataFrame(
            {
                "Asset Ref": codes,
                "Property Name": names,
                "Address": "1 High Street",
                "Post Code": postcode,
                "Easting": e,
                "Northing": nn,
                "Unique Property Reference Number": "",
                "Tenure": "Freehold",
                "Occupancy": np.where(vacant, "Vacant", "Occupied"),
                "GIA (sq m)": size_text,
            }
        )
        with open(path, "w", encoding="cp1252", newline="") as handle:
            handle.write(f"Synthetic Borough Council {number} - land and property assets\r\n")
            frame.to_csv(handle, index=False, columns=VARIANT_HEADER, lineterminator="\r\n")
        return
    if convention == "wgs84":
        lon, lat = _TO_WGS.transform(xy[:, 0], xy[:, 1])
        gx = np.where(has_coords, np.round(lon, 7).astype(str), "")
        gy = np.where(has_coords, np.round(lat, 7).astype(str), "")
        crs = "WGS84"
    else:
        gx = np.where(has_coords, np.round(xy[:, 0], 1).astype(str), "")
        gy = np.where(has_coords, np.round(xy[:, 1], 1).astype(str), "")
        crs = "OSGB36"
    frame = pd.DataFrame(
        {
            "OrganisationLabel": f"Synthetic Council {number}",
            "OrganisationURI": f"https://opendatacommunities.org/id/district-council/synthetic-{number}",
            "EffectiveDate": "2025-03-31",
            "UPRN": "",
            "AssetCode": codes,
            "PropertyName": names,
            "StreetNumber": "",
            "StreetName": "High Street",
            "PostTown": "Synthtown",
            "PostCode": postcode,
            "CoordinateReferenceSystem": np.where(has_coords, crs, ""),
            "GeoX": gx,
            "GeoY": gy,
            "TenureType": "Freehold",
            "TenureDetail": np.where(vacant, "Vacant", "Owner Occupied"),
            "OtherDetail": "",
            "HoldingType": "Buildings",
            "BuildingSize": size_text,
            "LandArea": "",
            "EnergyRating": "",
        }
    )
    frame.to_csv(path, index=False, columns=LGA_HEADER)
