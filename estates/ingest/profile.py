"""Mapping profiles: how one publisher's home-made register maps onto the LGA schema.

A profile is a small TOML or YAML file, so a council's quirks are data, not code::

    organisation = "Example Borough Council"  # when the file has no organisation column
    encoding = "cp1252"            # optional; detected otherwise (UTF-8, BOM, Windows-1252)
    header_row = 3                 # optional; 1-based line of the header row
    coordinates = "bng"            # optional: bng | lonlat | an EPSG code such as "EPSG:3857"
    land_area_unit = "ha"          # ha (default) | m2 | acres
    building_size_unit = "m2"      # m2 (default) | sqft

    [columns]                      # canonical field = the file's header text
    asset_id = "Property Ref"
    name = "Site"
    x = "X (Easting)"
    y = "Y (Northing)"

    [occupancy]                    # the file's occupancy text = vacant | occupied | let | ...
    "Surplus - awaiting disposal" = "vacant"

Unknown keys are refused by name, so a typo cannot silently do nothing.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from estates.errors import ConfigurationError

#: Canonical fields a profile's ``[columns]`` may map.
COLUMN_FIELDS = (
    "organisation",
    "asset_id",
    "uprn",
    "name",
    "address",
    "street_number",
    "street_name",
    "town",
    "postcode",
    "crs",
    "x",
    "y",
    "easting",
    "northing",
    "longitude",
    "latitude",
    "tenure",
    "tenure_detail",
    "site_type",
    "holding_type",
    "building_size",
    "land_area",
    "category",
)
_TOP_KEYS = (
    "organisation",
    "encoding",
    "header_row",
    "coordinates",
    "land_area_unit",
    "building_size_unit",
    "columns",
    "occupancy",
)
LAND_UNITS = {"ha": 1.0, "m2": 1e-4, "acres": 0.40468564224}
BUILDING_UNITS = {"m2": 1.0, "sqft": 0.09290304}


@dataclass(frozen=True)
class Profile:
    """A parsed mapping profile (every field optional)."""

    path: str | None = None
    organisation: str | None = None
    encoding: str | None = None
    header_row: int | None = None
    coordinates: str | None = None
    land_area_unit: str | None = None
    building_size_unit: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    occupancy: dict[str, str] = field(default_factory=dict)


def load_profile(path: str | os.PathLike[str] | None) -> Profile:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) profile; None gives an empty one."""
    if path is None:
        return Profile()
    p = Path(path)
    if not p.is_file():
        raise ConfigurationError(f"profile {p}: no such file")
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        elif p.suffix.lower() == ".toml":
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        else:
            raise ConfigurationError(f"profile {p}: use a .toml, .yaml or .yml file")
    except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError) as error:
        first = str(error).strip().splitlines()[0]
        raise ConfigurationError(f"profile {p}: cannot be parsed: {first}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"profile {p}: expected a table of settings at the top level")
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        raise ConfigurationError(
            f"profile {p}: unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(_TOP_KEYS)}"
        )
    columns = _table(p, data, "columns")
    bad = sorted(set(columns) - set(COLUMN_FIELDS))
    if bad:
        raise ConfigurationError(
            f"profile {p}: unknown field(s) in [columns]: {', '.join(bad)}; "
            f"allowed: {', '.join(COLUMN_FIELDS)}"
        )
    occupancy = _table(p, data, "occupancy")
    header_row = data.get("header_row")
    if header_row is not None and (not isinstance(header_row, int) or header_row < 1):
        raise ConfigurationError(f"profile {p}: header_row must be a line number from 1")
    for key, allowed in (("land_area_unit", LAND_UNITS), ("building_size_unit", BUILDING_UNITS)):
        if data.get(key) is not None and data[key] not in allowed:
            raise ConfigurationError(
                f"profile {p}: {key} = {data[key]!r}; allowed: {', '.join(allowed)}"
            )
    return Profile(
        path=os.fspath(p),
        organisation=_text(p, data, "organisation"),
        encoding=_text(p, data, "encoding"),
        header_row=header_row,
        coordinates=_text(p, data, "coordinates"),
        land_area_unit=data.get("land_area_unit"),
        building_size_unit=data.get("building_size_unit"),
        columns=columns,
        occupancy={k.strip().lower(): v for k, v in occupancy.items()},
    )


def _text(p: Path, data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(f"profile {p}: {key} must be text")
    return value


def _table(p: Path, data: dict[str, Any], key: str) -> dict[str, str]:
    value = data.get(key) or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigurationError(f"profile {p}: [{key}] must map names to text")
    return dict(value)
