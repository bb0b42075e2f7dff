"""Real data as canonical site frames for the analysis tests, built with plain pandas.

The analysis functions take the canonical site frame; these builders read the shared
files directly (not through the loaders), so the pure-function tests do not depend on
ingest, and the independent computations in the tests read the same raw columns.
"""

from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from tests.conftest import shared_file

ERIC_2019 = "eric_site_2019_20/ERIC_201920_SiteData_for_R.csv"
TRAFFORD_ASSETS = "trafford_council_assets/trafford_land_and_building_assets.csv"
GM_POSTCODES = "gm_postcodes_boundaries/ukpostcodes.csv"

#: ERIC 2019/20 estates and facilities running-cost columns, as the ERIC loader documents
#: them: capital charges (depreciation, PDC, interest on capital), indirect accommodation
#: subsidies and backlog excluded; the PFI columns of every section included.
ERIC_RUNNING_COST_PREFIXES = (
    "Leases and rent (£)",
    "Rates (£)",
    "Other Estates and Facilities finance costs (£)",
    "Estates and property maintenance (£)",
    "Grounds and gardens maintenance (£)",
    "Electro Bio Medical Equipment maintenance (£)",
    "Other Hard FM (Estates) costs (£)",
    "Other Soft FM (Hotel Services) costs (£)",
    "Management (Hard and Soft FM) costs (£)",
    "PFI Contractor (SPV) costs (£)",
    "PFI Management (Trust) costs (£)",
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


def eric_raw() -> pd.DataFrame:
    """The ERIC 2019/20 CSV as published, every cell a string."""
    return pd.read_csv(shared_file(ERIC_2019), dtype=str, keep_default_na=False)


def eric_number(raw: pd.DataFrame, column: str) -> pd.Series:
    """'292,119' -> 292119.0; 'Not Applicable' and '' -> NaN."""
    text = raw[column].str.replace(",", "", regex=False).str.strip()
    return pd.to_numeric(text.where(~text.isin(["Not Applicable", ""])), errors="coerce")


def eric_running_cost(raw: pd.DataFrame) -> pd.Series:
    columns = [
        c
        for c in raw.columns
        if any(
            c == p or re.fullmatch(re.escape(p) + r"\.\d+", c) for p in ERIC_RUNNING_COST_PREFIXES
        )
    ]
    values = pd.concat([eric_number(raw, c) for c in columns], axis=1)
    return values.sum(axis=1, min_count=1)


def postcode_points() -> pd.DataFrame:
    table = pd.read_csv(shared_file(GM_POSTCODES), dtype={"postcode": str})
    table["key"] = table["postcode"].str.replace(" ", "", regex=False).str.upper()
    return table.drop_duplicates("key").set_index("key")


def eric_sites() -> gpd.GeoDataFrame:
    """ERIC 2019/20 as canonical site rows with measures (GM postcodes located, EPSG:27700)."""
    raw = eric_raw()
    ors = (raw["Site Name"].str.upper() == "OTHER REPORTABLE SITES") | (
        raw["Site Type"].str.upper() == "OTHER REPORTABLE SITE"
    )
    postcode = raw["Post Code"].str.split().str.join(" ")
    pc = postcode_points()
    key = postcode.str.replace(" ", "", regex=False).str.upper()
    lat = key.map(pc["latitude"])
    lon = key.map(pc["longitude"])
    points = gpd.GeoSeries.from_xy(lon, lat, crs="EPSG:4326").to_crs("EPSG:27700")
    located = lat.notna() & ~ors
    geometry = points.where(located, None)
    frame = pd.DataFrame(
        {
            "site_id": np.arange(1, len(raw) + 1),
            "organisation_code": raw["Trust Code"],
            "organisation_name": raw["Trust Name"],
            "sector": "nhs",
            "source_key": "eric:" + raw["Site Code"],
            "name": raw["Site Name"],
            "postcode": postcode,
            "site_type": raw["Site Type"],
            "tenure": raw["Tenure"].replace("", None),
            "occupancy": None,
            "gia_m2": eric_number(raw, "Gross internal floor area (m²)"),
            "land_ha": eric_number(raw, "Land area owned (Hectares)"),
            "non_geographic": ors,
            "located_by": np.where(located, "postcode", "none"),
            "period": "2019/20",
            "empty_pct": eric_number(raw, "Floor area - empty (%)"),
            "underused_pct": eric_number(raw, "Floor area - under used (%)"),
            "unutilised_pct": np.nan,
            "not_functionally_suitable_pct": eric_number(
                raw, "Not functionally suitable - occupied floor area (%)"
            ),
            "occupied_pct": eric_number(raw, "NHS estate occupied floor area (%)"),
            "occupied_floor_area_m2": np.nan,
            "backlog_high_gbp": eric_number(raw, "Cost to eradicate high risk backlog (£)"),
            "backlog_significant_gbp": eric_number(
                raw, "Cost to eradicate significant risk backlog (£)"
            ),
            "backlog_moderate_gbp": eric_number(raw, "Cost to eradicate moderate risk backlog (£)"),
            "backlog_low_gbp": eric_number(raw, "Cost to eradicate low risk backlog (£)"),
            "running_cost_gbp": eric_running_cost(raw),
            "energy_cost_gbp": np.nan,
            "land_not_delivering_ha": eric_number(
                raw, "Land area not delivering services (Hectares)"
            ),
        }
    )
    return gpd.GeoDataFrame(frame, geometry=geometry.values, crs="EPSG:27700")


def trafford_sites(start_id: int = 100_000) -> gpd.GeoDataFrame:
    """Trafford's asset register as canonical rows: lon/lat, swapped row fixed, else postcode."""
    raw = pd.read_csv(
        shared_file(TRAFFORD_ASSETS), dtype=str, keep_default_na=False, encoding="utf-8-sig"
    )
    x = pd.to_numeric(raw["GeoX"], errors="coerce")
    y = pd.to_numeric(raw["GeoY"], errors="coerce")
    swapped = (x > 40) & (y < 10)
    lon = x.where(~swapped, y)
    lat = y.where(~swapped, x)
    pc = postcode_points()
    key = raw["PostCode"].str.replace(" ", "", regex=False).str.upper()
    from_pc = lon.isna() & key.isin(pc.index)
    lon = lon.where(~from_pc, key.map(pc["longitude"]))
    lat = lat.where(~from_pc, key.map(pc["latitude"]))
    points = gpd.GeoSeries.from_xy(lon, lat, crs="EPSG:4326").to_crs("EPSG:27700")
    geometry = points.where(lon.notna(), None)
    frame = pd.DataFrame(
        {
            "site_id": np.arange(start_id, start_id + len(raw)),
            "organisation_code": "E08000009",
            "organisation_name": "Trafford Council",
            "sector": "council",
            "source_key": "lgtc:trafford:" + raw["AssetCode"],
            "name": raw["PropertyName"],
            "postcode": raw["PostCode"],
            "site_type": raw["OtherDetail"].replace("", None),
            "tenure": raw["TenureType"].replace("", None),
            "holding_type": raw["HoldingType"],
            "occupancy": raw["TenureDetail"].str.lower().replace("", None),
            "gia_m2": pd.to_numeric(raw["BuildingSize"], errors="coerce"),
            "land_ha": pd.to_numeric(raw["LandArea"], errors="coerce"),
            "non_geographic": False,
            "located_by": np.where(
                from_pc, "postcode", np.where(lon.notna(), "source_coordinates", "none")
            ),
        }
    )
    return gpd.GeoDataFrame(frame, geometry=geometry.values, crs="EPSG:27700")


def gp_sites(start_id: int = 200_000) -> gpd.GeoDataFrame:
    """GP practices with coordinates, one organisation ("gp-practices"), sector nhs."""
    raw = pd.read_csv(
        shared_file("nhs_tu_asset_mapping/gp_practices_geo.csv"), dtype={"ODS_Code": str}
    )
    raw = raw[raw["LAT"].notna() & raw["LON"].notna()].reset_index(drop=True)
    points = gpd.GeoSeries.from_xy(raw["LON"], raw["LAT"], crs="EPSG:4326").to_crs("EPSG:27700")
    frame = pd.DataFrame(
        {
            "site_id": np.arange(start_id, start_id + len(raw)),
            "organisation_code": "gp-practices",
            "organisation_name": "GP practices",
            "sector": "nhs",
            "source_key": "gp:" + raw["ODS_Code"],
            "name": raw["Name"],
            "site_type": "GP practice",
            "non_geographic": False,
            "located_by": "source_coordinates",
        }
    )
    return gpd.GeoDataFrame(frame, geometry=points.values, crs="EPSG:27700")


def boundary(relative: str) -> gpd.GeoDataFrame:
    return gpd.read_file(shared_file(relative)).to_crs("EPSG:27700")


def within(sites: gpd.GeoDataFrame, polygons: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    area = shapely.union_all(np.asarray(polygons.geometry.values))
    keep = np.asarray(
        shapely.contains(area, np.asarray(sites.geometry.values, dtype=object)), dtype=bool
    )
    return sites[keep].copy()
