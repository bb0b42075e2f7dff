"""The one place where text from source files is made safe for HTML and JavaScript.

Every string that came from a source file (site names, addresses, organisations,
boundary names, flag sentences quoting them) reaches the page through one of these
functions, never by string formatting:

- :func:`html_text` for text placed in HTML. Besides ``& < > " '`` it also turns the
  characters that are special inside a JavaScript template literal (`` ` ``, ``$``,
  ``\\``) into entities, because Folium copies popup and tooltip HTML into template
  literals (``$(`...`)``), and a ``{`` that could open a Jinja2 tag (before ``{``,
  ``%`` or ``#``), because Branca reads the rendered output of Folium's elements as a
  template once more (see :mod:`estates.maps._render`). An entity is harmless in HTML
  and inert in JavaScript.
- :func:`script_json` for data embedded in a ``<script>`` block: JSON with ``<``,
  ``>``, ``&``, the two JavaScript line separators and a ``{`` before ``{ % #`` as
  ``\\u`` escapes, so no value can close the script element, start markup or open a
  Jinja2 tag. Browser code then puts that data on the
  page with ``textContent``, never ``innerHTML``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_HTML_ENTITIES = {
    ord("&"): "&amp;",
    ord("<"): "&lt;",
    ord(">"): "&gt;",
    ord('"'): "&quot;",
    ord("'"): "&#x27;",
    ord("`"): "&#x60;",
    ord("$"): "&#x24;",
    ord("\\"): "&#x5C;",
}

#: a "{" that would start a Jinja2 tag ({{ {% {#), also at the end (text is concatenated)
_TEMPLATE_OPEN = re.compile(r"\{(?=[{%#]|$)")

_TEMPLATE_IN_JSON = re.compile(r"\{(?=[{%#])")

#: Characters JSON may hold that must not reach a ``<script>`` block as they are.
_SCRIPT_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def plain(value: Any) -> str:
    """A display string for a cell: missing values (None, NaN, NA) become ``""``."""
    if value is None:
        return ""
    try:
        if value != value:  # NaN, pd.NA raises TypeError below
            return ""
    except (TypeError, ValueError):
        return ""
    return str(value)


def html_text(value: Any) -> str:
    """Escape ``value`` for HTML text or attribute values (and Folium's template literals).

    Examples
    --------
    >>> html_text('<img src=x onerror="window.__pwned=1">')
    '&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;'
    >>> html_text("`${alert(1)}`")
    '&#x60;&#x24;{alert(1)}&#x60;'
    >>> html_text("{{ 7*7 }}")
    '&#x7B;{ 7*7 }}'
    """
    text = plain(value).translate(_HTML_ENTITIES)
    return _TEMPLATE_OPEN.sub("&#x7B;", text) if "{" in text else text


def json_ready(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def script_json(value: Any) -> str:
    """JSON that is safe inside ``<script>`` (either as a JS literal or as ``application/json``).

    NaN and infinities become ``null`` (JSON has neither).

    Examples
    --------
    >>> script_json({"name": "</script><b>"})
    '{"name":"\\\\u003c/script\\\\u003e\\\\u003cb\\\\u003e"}'
    """
    try:  # nearly always: nothing to replace, so no walk over every coordinate in Python
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError):  # NaN or infinity somewhere, or keys that are not text
        text = json.dumps(json_ready(value), ensure_ascii=False, separators=(",", ":"))
    for character, escaped in _SCRIPT_ESCAPES:  # 15x quicker than str.translate on MBs
        text = text.replace(character, escaped)
    # JSON's own braces are followed by '"' or '}', so this only meets braces in strings
    return _TEMPLATE_IN_JSON.sub(r"\\u007b", text) if "{" in text else text
