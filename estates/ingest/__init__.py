"""Loaders: real public estate files, as published, into the estate database.

Each loader reads and checks the whole file first, then writes it in one load batch
(all or nothing), and returns a :class:`LoadReport`. See README "Loading real data".

- :func:`load_eric`: NHS Digital ERIC site-level CSV (2016/17 on).
- :func:`load_council`: council land and building asset registers (LGTC 2015);
  :func:`load_councils` loads several, reading the next while one is written.
- :func:`load_points`: any other public sites as points (CSV, GeoJSON, GeoPackage, shapefile).
- :func:`load_postcodes`: postcode lookups (ONSPD, Code-Point Open, postcode/lat/long).
- :func:`load_boundaries`: footprint polygons; :func:`build_icb_footprints` dissolves
  districts into ICBs from a lookup.
- :func:`load_sources`: many files of any of these kinds in one call, each read in a
  second process while the one before it is written.
"""

from estates.ingest.boundaries import build_icb_footprints, load_boundaries
from estates.ingest.council import load_council, load_councils
from estates.ingest.eric import load_eric
from estates.ingest.points import load_points
from estates.ingest.postcodes import load_postcodes
from estates.ingest.profile import Profile, load_profile
from estates.ingest.report import LoadReport
from estates.ingest.sources import Source, load_sources

__all__ = [
    "LoadReport",
    "Profile",
    "Source",
    "build_icb_footprints",
    "load_boundaries",
    "load_council",
    "load_councils",
    "load_eric",
    "load_points",
    "load_postcodes",
    "load_profile",
    "load_sources",
]
