"""Putting an element's rendered output on the page as it is, not as a new template.

Branca's ``MacroElement.render`` wraps each macro's output in ``Element(text)``, and
``Element.__init__`` compiles that text as a Jinja2 template, which the page then
renders a second time. That costs twice:

- time: Jinja2's lexer scans the whole text, and here the text is megabytes (the
  site payload, the cluster hulls' GeoJSON): about 3 s of a national map went there;
- safety: the text holds values from source files, and a ``{{``, ``{%`` or ``{#`` in
  them would be read as template code (and evaluated, outside any sandbox).

Elements built on :class:`RawMacroElement` (the runtime, the GeoJSON layers, and the
marker, icon, popup and tooltip classes here for the Folium path, where a 1,000-site
map otherwise compiles 5,000 templates) render their macros once and place the result
with :class:`RawHTML`. The Folium elements still used unchanged (cluster, layer groups,
layer control) only ever receive text passed through
:func:`estates.maps._escape.html_text`, which turns a ``{`` that could open a tag into
an entity.
"""

from __future__ import annotations

from typing import Any

import folium
from branca.element import Element, Figure, MacroElement

PARTS = ("header", "html", "script")


class RawHTML(Element):
    """Markup that is already rendered: written to the page unchanged."""

    def __init__(self, text: str) -> None:
        super().__init__()  # no template argument: nothing is compiled
        self._name = "RawHTML"
        self.text = text

    def render(self, **kwargs: Any) -> str:
        return self.text


class RawMacroElement(MacroElement):
    """A ``MacroElement`` whose macros' output reaches the page as :class:`RawHTML`.

    Put it after the Folium class in the bases (``class X(folium.GeoJson,
    RawMacroElement)``): the Folium class's own ``render`` still runs first and its
    ``super().render()`` lands here.
    """

    def render(self, **kwargs: Any) -> str:
        """Add each macro's output to the figure's parts as :class:`RawHTML`."""
        figure = self.get_root()
        if not isinstance(figure, Figure):
            raise TypeError(f"{type(self).__name__} can only render inside a Figure (a map)")
        macros = self._template.module.__dict__
        this = self.template_subject()
        for part in PARTS:
            macro = macros.get(part)
            if macro is not None:
                getattr(figure, part).add_child(
                    RawHTML(str(macro(this, kwargs))), name=self.get_name()
                )
        for child in self._children.values():
            child.render(**kwargs)
        return ""  # the output is in the figure, as with MacroElement

    def template_subject(self) -> Any:
        """What the template sees as ``this``: the element itself, unless a subclass says."""
        return self


class RawDivIcon(folium.DivIcon, RawMacroElement):
    """``folium.DivIcon``, placed as it is."""


class RawTooltip(folium.Tooltip, RawMacroElement):
    """``folium.Tooltip``, placed as it is."""


class _RawSetIcon(folium.Marker.SetIcon, RawMacroElement):
    """Folium's ``marker.setIcon(icon)`` statement, placed as it is."""


class RawMarker(folium.Marker, RawMacroElement):
    """``folium.Marker``, placed as it is (and so is the statement that sets its icon)."""

    SetIcon = _RawSetIcon

    def render(self, **kwargs: Any) -> str:
        super().render()  # Folium's: checks the location, adds the set-icon statement
        return ""


class RawPopup(folium.Popup):
    """``folium.Popup``, placed as it is (Folium's own ``render`` wraps it in a template)."""

    def render(self, **kwargs: Any) -> str:
        for child in self._children.values():
            child.render(**kwargs)
        figure = self.get_root()
        if not isinstance(figure, Figure):
            raise TypeError("a popup can only render inside a Figure (a map)")
        figure.script.add_child(
            RawHTML(self._template.render(this=self, kwargs=kwargs)), name=self.get_name()
        )
        return ""
