"""Analysis: pure functions on site GeoDataFrames (EPSG:27700); no files, no SQL.

- :func:`site_measures`: spare floor area, occupied floor area, cost and backlog per m2;
- :func:`flag_sites`: explained under-use flags (:data:`FLAG_NAMES`), thresholds from
  :func:`load_settings` (``defaults.toml``);
- :func:`colocate`: cross-organisation co-location clusters;
- :func:`pool_footprint`: one-body pooling scenario (SciPy ``milp``);
- :func:`flag_sensitivity`: how robust each flag is to the thresholds.

:mod:`estates.pipeline` runs them against the database and stores every run.
"""

from estates.analysis.colocation import colocate
from estates.analysis.flags import FLAG_NAMES, flag_sites
from estates.analysis.measures import site_measures
from estates.analysis.pooling import PoolingScenario, pool_footprint
from estates.analysis.sensitivity import flag_sensitivity
from estates.analysis.settings import AnalysisSettings, load_settings

__all__ = [
    "FLAG_NAMES",
    "AnalysisSettings",
    "PoolingScenario",
    "colocate",
    "flag_sensitivity",
    "flag_sites",
    "load_settings",
    "pool_footprint",
    "site_measures",
]
