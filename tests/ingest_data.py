"""Shared fixtures for the ingest tests: the real files loaded once per session and backend.

Import the fixtures into a test module (``from tests.ingest_data import real_estate``).
The real-data estate holds, in this order: the Greater Manchester postcode lookup, the
ERIC 2019/20 site file (loaded twice: the second load must change nothing), the
Trafford asset register (twice), the national TopoJSON districts and then the
generalised Greater Manchester districts. Tests must only read from it.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

import estates
from estates.ingest import (
    LoadReport,
    load_boundaries,
    load_council,
    load_eric,
    load_postcodes,
)
from tests import pg_cluster
from tests.conftest import shared_file

ERIC = "eric_site_2019_20/ERIC_201920_SiteData_for_R.csv"
TRAFFORD = "trafford_council_assets/trafford_land_and_building_assets.csv"
GM_POSTCODES = "gm_postcodes_boundaries/ukpostcodes.csv"
GM_LADS = "gm_postcodes_boundaries/GM_LADS.geojson"
TOPO_LAD = "boundaries_england/topo_lad.json"
_created = itertools.count()
GM_TRUSTS = ("R0A", "RM3", "RWJ", "RMC", "RMP", "RRF", "RW6", "RXV", "RT2")


@dataclass
class RealEstate:
    """An estate with the real files loaded, and the reports of each load."""

    estate: estates.Estate
    reports: dict[str, LoadReport] = field(default_factory=dict)


def _url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "gpkg":
        return str(tmp_path_factory.mktemp("real") / "real.gpkg")
    admin = request.getfixturevalue("postgis_admin_url")
    return pg_cluster.create_database(admin, f"estates_real_{os.getpid()}_{next(_created)}")


_LOADED: dict[str, RealEstate] = {}


@pytest.fixture(
    scope="session", params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)]
)
def real_estate(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> RealEstate:
    """The real files loaded once per backend for the whole session (read-only for tests).

    pytest may set a parametrized session fixture up more than once when test order
    switches backends, so the loaded estates are cached: the files load once per backend.
    """
    backend = str(request.param)
    if backend in _LOADED:
        return _LOADED[backend]
    paths = {
        k: shared_file(v)
        for k, v in [
            ("eric", ERIC),
            ("trafford", TRAFFORD),
            ("postcodes", GM_POSTCODES),
            ("gm_lads", GM_LADS),
            ("topo", TOPO_LAD),
        ]
    }
    estate = estates.connect(_url(request, tmp_path_factory))
    real = RealEstate(estate)
    real.reports["postcodes"] = load_postcodes(estate, paths["postcodes"])
    real.reports["eric"] = load_eric(estate, paths["eric"])
    real.reports["eric_again"] = load_eric(estate, paths["eric"])
    real.reports["trafford"] = load_council(estate, paths["trafford"])
    real.reports["trafford_again"] = load_council(estate, paths["trafford"])
    real.reports["topo"] = load_boundaries(estate, paths["topo"], kind="lad")
    real.reports["gm_lads"] = load_boundaries(estate, paths["gm_lads"], kind="lad")
    _LOADED[backend] = real
    request.session.config.add_cleanup(estate.close)
    return real


def snapshot(estate: estates.Estate) -> dict[str, tuple[int, str]]:
    """Row count and a content checksum of every table in the database (ours and the
    GeoPackage's own catalog and R-trees), to prove a failed load changed nothing."""
    out: dict[str, tuple[int, str]] = {}
    with estate.engine.connect() as connection:
        names = inspect(connection).get_table_names()
        for name in sorted(names):
            if name in ("spatial_ref_sys",):
                continue
            rows = connection.execute(text(f'SELECT * FROM "{name}"')).fetchall()
            digest = hashlib.sha256()
            for row in sorted(repr(tuple(r)) for r in rows):
                digest.update(row.encode())
            out[name] = (len(rows), digest.hexdigest())
    return out


def real_lookup_subset(folder: Path, postcodes: list[str]) -> Path:
    """A small lookup holding only the given postcodes' rows of the real GM file (same format)."""
    wanted = set(postcodes)
    source = shared_file(GM_POSTCODES)
    with open(source, encoding="utf-8", newline="") as handle:
        lines = handle.readlines()
    kept = [lines[0], *(line for line in lines[1:] if line.split(",")[1] in wanted)]
    path = folder / "gm_postcodes_subset.csv"
    path.write_text("".join(kept), encoding="utf-8")
    return path


def write_text(path: Path, content: str, encoding: str = "utf-8") -> Path:
    path.write_text(content, encoding=encoding, newline="")
    return path


def as_dict(report: LoadReport) -> dict[str, Any]:
    return report.as_dict()
