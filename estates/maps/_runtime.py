"""The small browser runtime every estates map carries.

It runs once, after Folium has created the map, the marker cluster, one sub-group per
site layer and the layer control. It:

- fills the site sub-groups from the data payload on the fast path (:mod:`._fast`);
- adds the visible sub-groups to the cluster in one batch (chunked, so the page stays
  responsive) and marks the map ready when the last batch is clustered;
- adds the "flagged sites only" filter, the site-name search box, the data attribution
  lines and the legend, title and figures panels as Leaflet controls;
- exposes ``window.estatesMap`` (site count from Python, plus functions that count
  and find the real Leaflet marker objects) for tests and for people who script maps.

Data never reaches ``innerHTML`` here: popups, tooltips and search tips built in the
browser use ``textContent``. The only markup inserted is our own symbol SVG and
numbers.
"""

from __future__ import annotations

from typing import Any

from branca.element import Element
from folium.elements import JSCSSMixin
from folium.plugins import Search
from folium.template import Template

from estates.maps._escape import script_json
from estates.maps._render import RawMacroElement

RUNTIME_JS = r"""
function estatesRuntime(map, cluster, control, layers, config) {
  "use strict";
  var em = window.estatesMap = {
    kind: config.kind, siteCount: config.siteCount, fastPath: !!config.data,
    ready: false, readyAt: null, map: map, cluster: cluster, groups: [], flagFilterOn: false,
    timings: {start: performance.now()}
  };
  map.getContainer().setAttribute("data-estates-site-count", String(config.siteCount));
  if (config.bounds) {
    // no animation: a zoom still in flight would undo a view set right after load
    map.fitBounds(config.bounds, {maxZoom: config.unclusteredZoom, padding: [20, 20], animate: false});
  }
  config.groups.forEach(function (g, i) {
    em.groups.push({key: g.key, label: g.label, show: g.show, layer: layers[i], hidden: []});
  });

  function text(tag, value, className) {
    var el = document.createElement(tag);
    if (className) { el.className = className; }
    el.textContent = value;
    return el;
  }

  // -- cluster bubbles: count, and a black diamond with the number of flagged sites --
  if (cluster) {
    cluster.options.iconCreateFunction = function (c) {
      var markers = c.getAllChildMarkers(), flagged = 0;
      for (var k = 0; k < markers.length; k++) { if (markers[k].options.flagged) { flagged++; } }
      var n = markers.length, size = n < 100 ? 34 : (n < 1000 ? 40 : 48);
      var html = "<div class=\"estates-cluster-" + size + "\">" + n +
        (flagged ? "<b><span>" + flagged + "</span></b>" : "") + "</div>";
      return L.divIcon({html: html, className: "estates-cluster", iconSize: L.point(size + 4, size + 4)});
    };
  }

  // -- fast path: one packed payload, markers made here, popups built from data on demand --
  var makeMarkers = function (d) {
    var icons = d.symbols.map(function (s) {
      return L.divIcon({html: s.svg, className: "estates-marker", iconSize: [s.size, s.size],
                        iconAnchor: [s.size / 2, s.size / 2], popupAnchor: [0, -s.size / 2]});
    });
    // a text column: every value, or a dictionary with a code per site (no codes: one value)
    var textAt = function (c) {
      if (c.values) { return function (i) { return c.values[i]; }; }
      if (!c.codes) { return function () { return c.dict[0]; }; }
      return function (i) { return c.dict[c.codes[i]]; };
    };
    var rows = d.rows.map(function (r) { return {label: r.label, at: textAt(r)}; });
    var flagColumns = d.flags === null ? null : d.flags.map(function (f) {
      return {label: textAt(f.label), status: f.status, sentence: textAt(f.sentence)};
    });
    var buildPopup = function (i) {
      var root = document.createElement("div");
      root.className = "estates-popup";
      root.setAttribute("data-site-id", String(d.id[i]));
      root.appendChild(text("h4", d.title[i]));
      var table = document.createElement("table");
      rows.forEach(function (row) {
        var tr = table.insertRow();
        tr.appendChild(text("th", row.label));
        tr.appendChild(text("td", row.at(i)));
      });
      root.appendChild(table);
      if (flagColumns === null) {
        root.appendChild(text("p", "Flags: " + d.notAssessed, "estates-flags-none"));
        return root;
      }
      var ul = document.createElement("ul");
      // flagged lines first, then passes, then not assessable (the order of d.flagStatuses)
      d.flagStatuses.forEach(function (status, s) {
        flagColumns.forEach(function (f) {
          if (f.status[i] !== s) { return; }
          var li = document.createElement("li"), sentence = f.sentence(i);
          li.className = "estates-flag-" + status;
          li.appendChild(text("b", f.label(i)));
          li.appendChild(document.createTextNode(
            " (" + d.flagStatusLabels[s].toLowerCase() + ")" + (sentence ? ": " + sentence : "")));
          ul.appendChild(li);
        });
      });
      root.appendChild(ul.childNodes.length ? ul :
        text("p", "Flags: none applicable", "estates-flags-none"));
      return root;
    };
    var popupFor = function (k) { return function () { return buildPopup(k); }; };
    var perGroup = em.groups.map(function () { return []; });
    for (var i = 0; i < d.id.length; i++) {
      var marker = L.marker([d.lat[i] / d.scale, d.lon[i] / d.scale], {
        icon: icons[d.symbol[i]], title: d.title[i], alt: d.title[i], siteId: d.id[i],
        searchName: d.search[i], flagged: d.flagged[i] === 1
      });
      marker.bindPopup(popupFor(i), {maxWidth: 400, minWidth: 240, autoPanPaddingTopLeft: config.popupPanPadding});
      perGroup[d.group[i]].push(marker);
    }
    em.groups.forEach(function (g, k) {
      perGroup[k].forEach(function (m) { g.layer.addLayer(m); });  // not on the map yet: no clustering work
    });
    em.timings.markers = performance.now();
  };
  // integer columns: fixed-width base-64 digits (estates.maps._fast.pack_ints)
  var digitValue = new Int32Array(128);
  for (var dk = 0; dk < config.intDigits.length; dk++) { digitValue[config.intDigits.charCodeAt(dk)] = dk; }
  var ints = function (c) {
    var s = c.ints, w = c.width, n = s.length / w, p = 0;
    var out = (c.offset >= -2147483648 && c.offset + Math.pow(64, w) <= 2147483647) ?
      new Int32Array(n) : new Float64Array(n);
    for (var i = 0; i < n; i++) {
      var v = 0;
      for (var j = 0; j < w; j++) { v = v * 64 + digitValue[s.charCodeAt(p++)]; }
      out[i] = v + c.offset;
    }
    return out;
  };
  var inflateInts = function (v) {
    if (v === null || typeof v !== "object") { return v; }
    if (Array.isArray(v)) {
      if (v.length && v[0] !== null && typeof v[0] === "object") {
        for (var a = 0; a < v.length; a++) { v[a] = inflateInts(v[a]); }
      }
      return v;
    }
    if (typeof v.ints === "string") { return ints(v); }
    Object.keys(v).forEach(function (key) { v[key] = inflateInts(v[key]); });
    return v;
  };
  var unpack = function (element) {
    // gzip + base64: a fifth of the size of the JSON; the browser inflates it natively
    var binary = atob(element.textContent.trim());
    var bytes = new Uint8Array(binary.length);
    for (var k = 0; k < binary.length; k++) { bytes[k] = binary.charCodeAt(k); }
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text().then(function (json) {
      em.timings.inflated = performance.now();
      var d = inflateInts(JSON.parse(json));
      em.timings.parsed = performance.now();
      return d;
    });
  };

  // -- show the visible groups in one clustered batch each; ready when all are clustered --
  var markReady = function () {
    if (!em.ready) {
      em.ready = true;
      em.readyAt = performance.now();
      map.getContainer().setAttribute("data-estates-ready", "true");
    }
  };
  var showGroups = function () {
    var shown = em.groups.filter(function (g) { return g.show; });
    var pending = shown.length;
    if (cluster) {
      cluster.options.chunkedLoading = true;
      cluster.options.chunkProgress = function (done, total) {
        if (done >= total && !em.ready) { pending -= 1; if (pending <= 0) { markReady(); } }
      };
    }
    if (pending === 0 || !cluster) { markReady(); }
    shown.forEach(function (g) { map.addLayer(g.layer); });
  };
  if (config.data) {
    if (typeof DecompressionStream === "undefined") {
      em.error = "This browser cannot unpack the map data: open the map in a current Chrome, Edge, Firefox or Safari.";
      var note = document.getElementById(config.titleId);
      if (note) { note.appendChild(text("div", em.error)); }
      throw new Error(em.error);
    }
    unpack(document.getElementById(config.data)).then(function (d) {
      makeMarkers(d);
      showGroups();
    });
  } else {
    showGroups();
  }

  // -- counting and finding real Leaflet markers --
  em.markers = function () {
    var out = [];
    em.groups.forEach(function (g) {
      g.layer.eachLayer(function (m) { if (m instanceof L.Marker) { out.push(m); } });
      g.hidden.forEach(function (m) { out.push(m); });
    });
    return out;
  };
  em.countMarkers = function () { return em.markers().length; };
  em.countMarkersOnLayers = function () {
    var n = 0;
    em.groups.forEach(function (g) {
      g.layer.eachLayer(function (m) { if (m instanceof L.Marker) { n++; } });
    });
    return n;
  };
  em.markerIds = function () { return em.markers().map(function (m) { return m.options.siteId; }); };
  em.findMarker = function (id) {
    for (var k = 0; k < em.groups.length; k++) {
      var g = em.groups[k], found = null;
      g.layer.eachLayer(function (m) { if (m.options.siteId === id) { found = m; } });
      if (found) { return {marker: found, group: g, hidden: false}; }
      for (var j = 0; j < g.hidden.length; j++) {
        if (g.hidden[j].options.siteId === id) { return {marker: g.hidden[j], group: g, hidden: true}; }
      }
    }
    return null;
  };
  em.openSite = function (id) {
    return new Promise(function (resolve, reject) {
      var found = em.findMarker(id);
      if (!found) { reject(new Error("no marker for site " + id)); return; }
      if (found.hidden && em.flagFilter) { map.removeLayer(em.flagFilter); }
      if (!map.hasLayer(found.group.layer)) { map.addLayer(found.group.layer); }
      var marker = found.marker, tries = 0, done = false;
      var open = function () {
        if (done) { return; }
        done = true;
        if (!marker.isPopupOpen()) {
          // a click runs Folium's lazy popup filler, then opens the popup
          marker.fire("click", {latlng: marker.getLatLng()});
          if (!marker.isPopupOpen()) { marker.openPopup(); }
        }
        resolve(marker);
      };
      var waitForIcon = function () {
        if (marker._icon) { open(); return; }
        if (++tries > 200) { reject(new Error("site " + id + " did not appear on the map")); return; }
        setTimeout(waitForIcon, 50);
      };
      var go = function () {
        if (cluster && !cluster.hasLayer(marker)) {
          if (++tries > 200) { reject(new Error("site " + id + " never reached the map")); return; }
          setTimeout(go, 50);
          return;
        }
        tries = 0;
        // from this zoom every site has its own icon (no bubbles)
        map.setView(marker.getLatLng(), Math.max(map.getZoom(), config.unclusteredZoom), {animate: false});
        waitForIcon();
      };
      go();
    });
  };

  // -- "flagged sites only": an overlay that hides the others while it is ticked --
  if (config.flagFilter && control) {
    var filter = em.flagFilter = L.layerGroup();
    var apply = function (on) {
      em.flagFilterOn = on;
      em.groups.forEach(function (g) {
        var onMap = map.hasLayer(g.layer);
        if (onMap) { map.removeLayer(g.layer); }
        if (on) {
          g.layer.eachLayer(function (m) { if (!m.options.flagged) { g.hidden.push(m); } });
          g.hidden.forEach(function (m) { g.layer.removeLayer(m); });
        } else {
          g.hidden.forEach(function (m) { g.layer.addLayer(m); });
          g.hidden = [];
        }
        if (onMap) { map.addLayer(g.layer); }
      });
    };
    map.on("overlayadd", function (e) { if (e.layer === filter) { apply(true); } });
    map.on("overlayremove", function (e) { if (e.layer === filter) { apply(false); } });
    control.addOverlay(filter, config.flagFilter);
  }

  // -- search by site name (tips built with textContent) --
  if (config.search && cluster && L.Control.Search && config.siteCount > 0) {
    em.search = new L.Control.Search({
      layer: cluster, propertyName: "searchName", initial: false, marker: false, collapsed: false,
      textPlaceholder: "Search site name", textErr: "No site of that name is shown",
      tooltipLimit: 25, position: "topleft",
      buildTip: function (label) { var li = L.DomUtil.create("li", ""); li.textContent = label; return li; },
      moveToLocation: function (latlng) { if (latlng.layer) { em.openSite(latlng.layer.options.siteId); } }
    });
    map.addControl(em.search);
  }

  // -- data attribution lines (escaped in Python) --
  if (map.attributionControl) {
    config.attribution.forEach(function (line) { map.attributionControl.addAttribution(line); });
  }

  // -- legend, title and figures panels: static HTML moved into Leaflet controls --
  config.controls.forEach(function (c) {
    var el = document.getElementById(c.id);
    if (!el) { return; }
    var ctl = L.control({position: c.position});
    ctl.onAdd = function () {
      el.style.display = "";
      L.DomEvent.disableClickPropagation(el);
      L.DomEvent.disableScrollPropagation(el);
      return el;
    };
    ctl.addTo(map);
  });
}
"""


class Runtime(JSCSSMixin, RawMacroElement):
    """Adds the runtime, its configuration, the page CSS and static panels to a map.

    Add it to the map *after* the layer control so its script runs last. It brings the
    leaflet-search plugin (the same files Folium's ``Search`` plugin loads). Its output
    (which carries the fast path's payload) is placed as it is (:mod:`._render`).
    """

    default_js = list(Search.default_js)  # noqa: RUF012 (Folium's own attribute)
    default_css = list(Search.default_css)  # noqa: RUF012

    _template = Template(
        """
        {% macro header(this, kwargs) %}
            <style>{{ this.css }}</style>
        {% endmacro %}
        {% macro html(this, kwargs) %}
            {{ this.body_html }}
        {% endmacro %}
        {% macro script(this, kwargs) %}
            {{ this.script_js() }}
        {% endmacro %}
        """
    )

    def __init__(
        self,
        *,
        map_element: Element,
        cluster: Element | None,
        control: Element | None,
        layers: list[Element],
        config: dict[str, Any],
        css: str,
        body_html: str,
    ) -> None:
        super().__init__()
        self._name = "EstatesRuntime"
        self.map_element = map_element
        self.cluster = cluster
        self.control = control
        self.layers = layers
        self.config = config
        self.css = css
        self.body_html = body_html

    def script_js(self) -> str:
        layers = ", ".join(layer.get_name() for layer in self.layers)
        return (
            RUNTIME_JS
            + f"estatesRuntime({self.map_element.get_name()}, "
            + f"{self.cluster.get_name() if self.cluster else 'null'}, "
            + f"{self.control.get_name() if self.control else 'null'}, "
            + f"[{layers}], {script_json(self.config)});"
        )
