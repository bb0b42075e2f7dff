"""Analysis settings: one typed, documented object read from TOML.

Defaults live in ``estates/analysis/defaults.toml`` (package data, commented with the
published targets they come from). A user file overrides any subset of them; a key the
defaults do not have is an error naming the key, so a typo never falls back silently.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from estates.errors import ConfigurationError

#: TOML section -> key -> dataclass field name.
_LAYOUT: dict[str, dict[str, str]] = {
    "flags": {
        "underused_space_max_pct": "underused_space_max_pct",
        "peer_quantile": "peer_quantile",
        "min_peer_group": "min_peer_group",
        "peer_scope": "peer_scope",
        "not_functionally_suitable_max_pct": "not_functionally_suitable_max_pct",
        "surplus_land_min_ha": "surplus_land_min_ha",
    },
    "pooling": {
        "max_distance_m": "max_distance_m",
        "release_flags": "release_flags",
        "protected_site_types": "protected_site_types",
        "protected_sectors": "protected_sectors",
        "protected_source_keys": "protected_source_keys",
        "receiving_capacity_share": "receiving_capacity_share",
        "receiving_cost_gbp_per_m2": "receiving_cost_gbp_per_m2",
        "compatible_sectors": "compatible_sectors",
        "use_groups": "use_groups",
        "group_receivers": "group_receivers",
    },
    "receipts": {
        "gbp_per_ha": "receipt_gbp_per_ha",
        "gbp_per_m2": "receipt_gbp_per_m2",
        "freehold_only": "receipt_freehold_only",
    },
    "access": {"threshold_m": "access_threshold_m"},
    "solver": {"time_limit_s": "time_limit_s", "mip_rel_gap": "mip_rel_gap"},
    "sensitivity": {
        "underused_space_max_pct": "sweep_underused_space_max_pct",
        "peer_quantile": "sweep_peer_quantile",
        "not_functionally_suitable_max_pct": "sweep_not_functionally_suitable_max_pct",
        "surplus_land_min_ha": "sweep_surplus_land_min_ha",
    },
}
_MAPPING_FIELDS = {"compatible_sectors", "use_groups", "group_receivers"}
DEFAULT_GROUP = "general"


@dataclass(frozen=True)
class AnalysisSettings:
    """Every threshold and assumption of the analysis (see ``defaults.toml`` for why).

    Build it with :func:`load_settings` (defaults from ``defaults.toml``, overridden by a
    user file); :meth:`replace` makes a variant, e.g. for the sensitivity sweep.
    """

    # flags
    underused_space_max_pct: float
    peer_quantile: float
    min_peer_group: int
    peer_scope: str
    not_functionally_suitable_max_pct: float
    surplus_land_min_ha: float
    # pooling
    max_distance_m: float
    release_flags: tuple[str, ...]
    protected_site_types: tuple[str, ...]
    protected_sectors: tuple[str, ...]
    protected_source_keys: tuple[str, ...]
    receiving_capacity_share: float
    receiving_cost_gbp_per_m2: float
    compatible_sectors: Mapping[str, tuple[str, ...]]
    use_groups: Mapping[str, str]
    group_receivers: Mapping[str, tuple[str, ...]]
    # receipts
    receipt_gbp_per_ha: float
    receipt_gbp_per_m2: float
    receipt_freehold_only: bool
    # access
    access_threshold_m: float
    # solver
    time_limit_s: float
    mip_rel_gap: float
    # sensitivity sweeps
    sweep_underused_space_max_pct: tuple[float, ...]
    sweep_peer_quantile: tuple[float, ...]
    sweep_not_functionally_suitable_max_pct: tuple[float, ...]
    sweep_surplus_land_min_ha: tuple[float, ...]
    source: str = field(default="defaults.toml", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values, stored with every run as its parameters."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
            elif isinstance(value, Mapping):
                out[key] = {
                    k: list(v) if isinstance(v, tuple) else v for k, v in sorted(value.items())
                }
        return out

    def replace(self, **changes: Any) -> AnalysisSettings:
        """A copy with some fields changed (used by the sensitivity sweep)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        unknown = set(changes) - set(values)
        if unknown:
            raise ConfigurationError(
                f"unknown analysis setting(s) {sorted(unknown)}; known: {sorted(values)}"
            )
        values.update(changes)
        return AnalysisSettings(**values)

    def use_group(self, site_type: object) -> str:
        """The use group of a site type (``general`` when not listed)."""
        if not isinstance(site_type, str):
            return DEFAULT_GROUP
        return self.use_groups.get(site_type, DEFAULT_GROUP)

    def receipt_assumptions(self) -> str:
        """The receipt assumptions as one sentence, printed with every receipt figure."""
        tenure = "freehold sites only" if self.receipt_freehold_only else "every tenure"
        return (
            f"indicative receipts assume GBP {self.receipt_gbp_per_ha:,.0f} per hectare of land, "
            f"or GBP {self.receipt_gbp_per_m2:,.0f} per m2 of GIA where the land area is unknown, "
            f"for {tenure}; replace with local valuations"
        )


def _defaults_text() -> str:
    return resources.files("estates.analysis").joinpath("defaults.toml").read_text("utf-8")


def _parse(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"{where}: not valid TOML ({error}); fix the syntax") from None


def _check_keys(data: Mapping[str, Any], where: str) -> None:
    for section, values in data.items():
        if section not in _LAYOUT:
            raise ConfigurationError(
                f"{where}: unknown section [{section}]; known sections: {sorted(_LAYOUT)}"
            )
        if not isinstance(values, Mapping):
            raise ConfigurationError(f"{where}: [{section}] must be a table of settings")
        for key in values:
            if key not in _LAYOUT[section]:
                raise ConfigurationError(
                    f"{where}: unknown setting {key!r} in [{section}]; "
                    f"known: {sorted(_LAYOUT[section])}"
                )


def _number(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{where}: {name} must be a number, found {value!r}")
    return float(value)


def _strings(value: Any, name: str, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"{where}: {name} must be a list of strings, found {value!r}")
    return tuple(value)


def _numbers(value: Any, name: str, where: str) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigurationError(f"{where}: {name} must be a non-empty list of numbers")
    return tuple(_number(v, name, where) for v in value)


def _convert(name: str, value: Any, where: str) -> Any:
    if name in ("peer_scope",):
        if value not in ("database", "footprint"):
            raise ConfigurationError(
                f"{where}: peer_scope must be 'database' or 'footprint', found {value!r}"
            )
        return value
    if name == "min_peer_group":
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ConfigurationError(
                f"{where}: min_peer_group must be an integer >= 2, found {value!r}"
            )
        return value
    if name == "receipt_freehold_only":
        if not isinstance(value, bool):
            raise ConfigurationError(f"{where}: freehold_only must be true or false")
        return value
    if name in ("release_flags", "protected_site_types", "protected_sectors"):
        return _strings(value, name, where)
    if name == "protected_source_keys":
        return _strings(value, name, where)
    if name.startswith("sweep_"):
        return _numbers(value, name, where)
    if name == "use_groups":
        if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
            raise ConfigurationError(f"{where}: [pooling.use_groups] maps site types to names")
        return dict(value)
    if name in ("compatible_sectors", "group_receivers"):
        if not isinstance(value, Mapping):
            raise ConfigurationError(f"{where}: [pooling.{name}] must be a table of lists")
        return {k: _strings(v, f"{name}.{k}", where) for k, v in value.items()}
    return _number(value, name, where)


def _validate(settings: AnalysisSettings, where: str) -> None:
    from estates.analysis.flags import FLAG_NAMES

    checks = [
        (0 < settings.peer_quantile < 1, "peer_quantile must be between 0 and 1 (e.g. 0.75)"),
        (settings.max_distance_m > 0, "max_distance_m must be positive"),
        (settings.access_threshold_m > 0, "[access] threshold_m must be positive"),
        (settings.time_limit_s > 0, "[solver] time_limit_s must be positive"),
        (0 <= settings.mip_rel_gap < 1, "[solver] mip_rel_gap must be in [0, 1)"),
        (
            0 < settings.receiving_capacity_share <= 1,
            "receiving_capacity_share must be in (0, 1]",
        ),
        (settings.receiving_cost_gbp_per_m2 >= 0, "receiving_cost_gbp_per_m2 must be >= 0"),
        (all(0 < q < 1 for q in settings.sweep_peer_quantile), "swept quantiles must be in (0,1)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigurationError(f"{where}: {message}")
    unknown = [f for f in settings.release_flags if f not in FLAG_NAMES]
    if unknown:
        raise ConfigurationError(
            f"{where}: release_flags has unknown flag(s) {unknown}; known: {list(FLAG_NAMES)}"
        )


def load_settings(path: str | Path | None = None) -> AnalysisSettings:
    """Read analysis settings: ``defaults.toml`` overridden by the TOML file at ``path``.

    Raises
    ------
    ConfigurationError
        The file is not TOML, has a key the defaults do not have, or a value of the
        wrong kind; the message names the file, the key and the fix.
    """
    data = _parse(_defaults_text(), "defaults.toml")
    where = "defaults.toml"
    if path is not None:
        where = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigurationError(
                f"settings file {path} does not exist; copy estates/analysis/defaults.toml "
                "and edit it"
            ) from None
        user = _parse(text, where)
        _check_keys(user, where)
        for section, table in user.items():
            merged = data.setdefault(section, {})
            for key, value in table.items():
                if _LAYOUT[section][key] in _MAPPING_FIELDS and isinstance(value, Mapping):
                    merged[key] = {**merged.get(key, {}), **value}
                else:
                    merged[key] = value
    _check_keys(data, where)
    converted: dict[str, Any] = {}
    for section, keys in _LAYOUT.items():
        for key, name in keys.items():
            if key not in data.get(section, {}):
                raise ConfigurationError(f"{where}: [{section}] {key} is missing")
            converted[name] = _convert(name, data[section][key], where)
    settings = AnalysisSettings(**converted, source=where)
    _validate(settings, where)
    return settings
