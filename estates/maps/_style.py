"""What the maps look like: colours, marker symbols, number formats, legend pieces.

Colours come from the Okabe-Ito palette (safe for the common colour-vision
deficiencies), with NHS blue for the NHS. Flag status is carried by the marker's
*shape* as well as its outline, so it survives greyscale printing:

- circle, white outline: assessed, no flag raised;
- diamond, black outline, with the number of flags inside: flagged;
- hollow ring in the sector colour: not assessed (no analysis columns, or nothing
  could be assessed).

All SVG here is built from constants, never from source data, so it can be placed
on the page as markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from estates.maps._escape import html_text

#: sector code -> (label, colour)
SECTORS: dict[str, tuple[str, str]] = {
    "nhs": ("NHS", "#005EB8"),
    "council": ("Council", "#009E73"),
    "central_government": ("Central government", "#CC79A7"),
    "emergency_services": ("Emergency services", "#D55E00"),
    "other": ("Other public bodies", "#E69F00"),
}

#: flag name -> label shown in popups and the legend
FLAGS: dict[str, str] = {
    "underused_space": "Under-used space",
    "vacant": "Vacant",
    "surplus_land": "Surplus land",
    "poor_condition": "Poor condition",
    "high_running_cost": "High running cost",
    "not_functionally_suitable": "Not functionally suitable",
}

#: flag status -> label shown before its sentence (``not_applicable`` is not shown)
FLAG_STATUSES: dict[str, str] = {
    "flagged": "Flagged",
    "not_assessable": "Not assessable",
    "pass": "Passes",
}

#: pooling role -> (label, colour, shape)
ROLES: dict[str, tuple[str, str, str]] = {
    "released": ("Released (closes)", "#C62828", "diamond"),
    "receiving": ("Receiving floor area", "#2E7D32", "circle"),
    "not_released": ("Flagged, not released", "#F9A825", "circle"),
    "protected": ("Protected (never released)", "#1565C0", "ring"),
    "retained": ("Retained", "#8C8C8C", "circle"),
}

FLOW_COLOUR = "#6A1B9A"
CLUSTER_COLOUR = "#4B0082"
NO_DATA_COLOUR = "#d9d9d9"
#: sequential ramps (low -> high) for the two choropleths
SPARE_RAMP = ("#ffffe5", "#fec44f", "#993404")
ACCESS_RAMP = ("#fff7f3", "#fa9fb5", "#7a0177")

NOT_ASSESSED = "not assessed"
NOT_KNOWN = "not known"

DATA_ATTRIBUTION = {
    "ogl": "Contains public sector information licensed under the Open Government Licence v3.0",
    "nhs": "Contains NHS Digital data © NHS Digital",
    "os": "Contains National Statistics and OS data © Crown copyright and database right",
}


def sector_of(value: Any) -> str:
    """A known sector code; anything else (or missing) counts as ``other``."""
    return value if isinstance(value, str) and value in SECTORS else "other"


# -- numbers ------------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        return True


def number(value: Any, decimals: int = 0) -> float | None:
    """``value`` as a float rounded for display, or None when missing or not a number."""
    if _missing(value):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    if math.isinf(result):
        return None
    return round(result, decimals)


def fmt_m2(value: Any) -> str:
    v = number(value)
    return NOT_KNOWN if v is None else f"{v:,.0f} m²"


def fmt_gbp(value: Any) -> str:
    v = number(value)
    return NOT_KNOWN if v is None else f"£{v:,.0f}"


def fmt_gbp_per_m2(value: Any) -> str:
    v = number(value, 2)
    return NOT_KNOWN if v is None else f"£{v:,.2f} per m²"


def fmt_ha(value: Any) -> str:
    v = number(value, 2)
    return NOT_KNOWN if v is None else f"{v:,.2f} ha"


def fmt_m(value: Any) -> str:
    v = number(value)
    if v is None:
        return NOT_KNOWN
    return f"{v / 1000:,.1f} km" if abs(v) >= 1000 else f"{v:,.0f} m"


def fmt_pct(value: Any) -> str:
    v = number(value, 1)
    return NOT_KNOWN if v is None else f"{v:,.1f}%"


# -- marker symbols -------------------------------------------------------------------------


@dataclass(frozen=True)
class Symbol:
    """A marker symbol: SVG markup (constants only) and its pixel size."""

    svg: str
    size: int

    @property
    def anchor(self) -> int:
        return self.size // 2


def _svg(size: int, body: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}" aria-hidden="true">{body}</svg>'
    )


def circle(colour: str, size: int = 16) -> Symbol:
    r = size / 2 - 1.5
    c = size / 2
    return Symbol(
        _svg(
            size,
            f'<circle cx="{c}" cy="{c}" r="{r}" fill="{colour}" stroke="#fff" stroke-width="1.5"/>',
        ),
        size,
    )


def ring(colour: str, size: int = 16) -> Symbol:
    r = size / 2 - 2.5
    c = size / 2
    return Symbol(
        _svg(
            size,
            f'<circle cx="{c}" cy="{c}" r="{r}" fill="#fff" stroke="{colour}" stroke-width="3.5"/>',
        ),
        size,
    )


def diamond(colour: str, label: str = "", size: int = 22) -> Symbol:
    c = size / 2
    m = 1.5
    points = f"{c},{m} {size - m},{c} {c},{size - m} {m},{c}"
    text = ""
    if label:
        text = (
            f'<text x="{c}" y="{c + 3.5}" text-anchor="middle" font-size="10" font-weight="700" '
            f'font-family="Arial,sans-serif" fill="#fff">{html_text(label)}</text>'
        )
    return Symbol(
        _svg(
            size,
            f'<polygon points="{points}" fill="{colour}" stroke="#111" stroke-width="2"/>{text}',
        ),
        size,
    )


def site_symbol(sector: str, status: str, flag_count: int = 0) -> Symbol:
    """The marker for a site of ``sector`` with flag ``status`` (flagged/clear/unassessed)."""
    colour = SECTORS[sector_of(sector)][1]
    if status == "flagged":
        return diamond(colour, str(min(flag_count, 9)) if flag_count > 0 else "")
    if status == "clear":
        return circle(colour)
    return ring(colour)


def role_symbol(role: str) -> Symbol:
    _, colour, shape = ROLES.get(role, ROLES["retained"])
    if shape == "diamond":
        return diamond(colour)
    if shape == "ring":
        return ring(colour, 18)
    return circle(colour, 18 if role == "receiving" else 14)


# -- legend pieces ----------------------------------------------------------------------------


#: a cluster bubble as drawn by the runtime (12 sites, 3 badged), for legends
CLUSTER_SAMPLE = (
    '<span class="estates-cluster" style="display:inline-block;transform:scale(.62);margin:-6px 0">'
    "<div>12<b><span>3</span></b></div></span>"
)


def legend_row(symbol_html: str, label: str) -> str:
    """One legend line: trusted symbol markup and an escaped label."""
    return (
        f'<div class="estates-legend-row"><span class="estates-legend-symbol">{symbol_html}</span>'
        f"<span>{html_text(label)}</span></div>"
    )


def swatch(colour: str, *, border: str = "#555", dashed: bool = False) -> str:
    style = "dashed" if dashed else "solid"
    return (
        f'<span class="estates-swatch" style="background:{colour};'
        f'border:2px {style} {border}"></span>'
    )


def line_swatch(colour: str, width: int) -> str:
    return (
        f'<svg width="28" height="14" aria-hidden="true"><line x1="1" y1="7" x2="27" y2="7" '
        f'stroke="{colour}" stroke-width="{width}" stroke-linecap="round" opacity="0.8"/></svg>'
    )


def ramp(colours: Sequence[str], low: str, high: str, caption: str) -> str:
    """A gradient bar with its two end labels (labels escaped)."""
    gradient = ", ".join(colours)
    return (
        f'<div class="estates-legend-caption">{html_text(caption)}</div>'
        f'<div class="estates-ramp" style="background:linear-gradient(to right, {gradient})"></div>'
        f'<div class="estates-ramp-labels"><span>{html_text(low)}</span>'
        f"<span>{html_text(high)}</span></div>"
    )


def section(title: str, rows: Sequence[str]) -> str:
    return (
        f'<div class="estates-legend-section"><div class="estates-legend-title">'
        f"{html_text(title)}</div>{''.join(rows)}</div>"
    )


CSS = """
.estates-marker { background: none; border: none; }
.estates-marker svg { display: block; }
.estates-cluster { background: none; border: none; }
.estates-cluster div { width: 34px; height: 34px; border-radius: 17px; background: rgba(38,50,56,.85);
  color: #fff; font: 700 12px/34px Arial, sans-serif; text-align: center; border: 2px solid #fff;
  box-shadow: 0 0 0 1px rgba(0,0,0,.35); position: relative; }
.estates-cluster div.estates-cluster-40 { width: 40px; height: 40px; border-radius: 20px; line-height: 40px; }
.estates-cluster div.estates-cluster-48 { width: 48px; height: 48px; border-radius: 24px; line-height: 48px;
  font-size: 11px; }
.estates-cluster div b { position: absolute; top: -7px; right: -9px; min-width: 16px; height: 16px;
  padding: 0 3px; background: #111; color: #fff; font: 700 10px/16px Arial, sans-serif;
  transform: rotate(45deg); border-radius: 2px; }
.estates-cluster div b span { display: inline-block; transform: rotate(-45deg); }
.estates-popup { font: 13px/1.35 Arial, sans-serif; min-width: 240px; max-width: 380px; }
.estates-popup h4 { font-size: 15px; margin: 0 0 6px 0; font-weight: 700; }
.estates-popup table { border-collapse: collapse; width: 100%; margin-bottom: 4px; }
.estates-popup th { text-align: left; font-weight: 600; padding: 1px 8px 1px 0; vertical-align: top;
  white-space: nowrap; color: #333; }
.estates-popup td { padding: 1px 0; vertical-align: top; }
.estates-popup ul { margin: 4px 0 0 0; padding-left: 16px; }
.estates-popup li { margin-bottom: 3px; }
.estates-flag-flagged { color: #8b0000; }
.estates-flag-pass, .estates-flag-not_assessable { color: #555; font-size: 12px; }
.estates-flags-none { color: #555; margin: 4px 0 0 0; font-style: italic; }
.estates-legend, .estates-panel { background: rgba(255,255,255,.94); padding: 8px 10px;
  border-radius: 5px; box-shadow: 0 1px 5px rgba(0,0,0,.4); font: 12px/1.3 Arial, sans-serif;
  max-width: 300px; max-height: 70vh; overflow-y: auto; }
.estates-legend summary, .estates-panel summary { font-weight: 700; font-size: 13px; cursor: pointer; }
.estates-legend-section { margin-top: 6px; }
.estates-legend-title { font-weight: 700; margin-bottom: 2px; }
.estates-legend-row { display: flex; align-items: center; gap: 6px; margin: 2px 0; }
.estates-legend-symbol { display: inline-flex; width: 28px; justify-content: center; }
.estates-swatch { display: inline-block; width: 18px; height: 12px; }
.estates-ramp { height: 10px; width: 200px; border: 1px solid #999; }
.estates-ramp-labels { display: flex; justify-content: space-between; width: 202px; }
.estates-legend-caption { margin-top: 2px; }
.estates-legend-note { margin-top: 6px; color: #444; }
.estates-title { position: absolute; top: 10px; left: 50%; transform: translateX(-50%); z-index: 1000;
  background: rgba(255,255,255,.94); padding: 6px 14px; border-radius: 5px;
  box-shadow: 0 1px 5px rgba(0,0,0,.4); font: 14px/1.3 Arial, sans-serif; text-align: center;
  pointer-events: none; max-width: 50vw; }
.estates-title b { font-size: 16px; }
.estates-panel table { border-collapse: collapse; }
.estates-panel th { text-align: left; font-weight: 600; padding: 1px 10px 1px 0; vertical-align: top; }
.estates-panel td { text-align: right; padding: 1px 0; vertical-align: top; }
.estates-panel .estates-panel-note { color: #444; font-size: 11px; margin-top: 4px; max-width: 280px; }
.leaflet-control-search .search-tooltip { max-height: 260px; }
.leaflet-control-search .search-input { width: 220px; }
.leaflet-container .leaflet-control-attribution { white-space: normal; max-width: 55vw; }
"""
