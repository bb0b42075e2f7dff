"""Folium HTML maps: the site map and the pooling scenario map.

Maps only draw: they take GeoDataFrames in EPSG:27700 (reprojecting to EPSG:4326 at
the edge) and never read files or query the database.

Examples
--------
>>> import estates.maps as maps
>>> from estates.demo import demo_sites
>>> m = maps.sites_map(demo_sites().assign(site_id=range(240)))
>>> info = maps.save_map(m, "/tmp/doctest-sites.html")
>>> info["sites_drawn"]
240
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import folium

from estates.maps._fast import (
    DEFAULT_FAST_THRESHOLD,
    DEFAULT_GRID_THRESHOLD,
    FAST_THRESHOLD_ENV,
    GRID_THRESHOLD_ENV,
    resolve_fast_threshold,
    resolve_grid_threshold,
)
from estates.maps._page import EstatesMap, MapInfo
from estates.maps.pooling import pooling_map
from estates.maps.sites import sites_map

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_FAST_THRESHOLD",
    "DEFAULT_GRID_THRESHOLD",
    "FAST_THRESHOLD_ENV",
    "GRID_THRESHOLD_ENV",
    "EstatesMap",
    "MapInfo",
    "pooling_map",
    "resolve_fast_threshold",
    "resolve_grid_threshold",
    "save_map",
    "sites_map",
]


def save_map(m: folium.Map, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Write ``m`` as one self-contained HTML file; return its path, size and what it drew.

    Parent folders are created. The page loads Leaflet and its plugins from CDNs, so
    opening it needs a network (or a local mirror).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    html = m.get_root().render()
    target.write_text(html, encoding="utf-8")
    result: dict[str, Any] = {"path": str(target), "bytes": target.stat().st_size}
    info = getattr(m, "info", None)
    if isinstance(info, MapInfo):
        result.update(info.as_dict())
    log.info("map written to %s (%d bytes)", target, result["bytes"])
    return result
