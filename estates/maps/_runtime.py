"""The small browser runtime every estates map carries.

It runs once, after Folium has created the map, the site layers and the layer control.
On the payload paths it unpacks the data (:mod:`._fast`) and then, by the map's
clustering:

- ``markercluster`` (up to the grid threshold): makes one plain marker per site (one
  shared icon per symbol), adds the visible layers' markers to Leaflet.markercluster
  in one chunked batch each and marks the map ready when the last batch is clustered;
- ``grid`` (larger estates): makes no marker per site. Each time the view settles it
  clusters the shown points in and around the view (a coarse bucket index finds
  them; cells of ``gridCellPx`` are merged greedily within ``gridRadiusPx``, biggest
  first) and paints the bubbles and lone sites on one canvas, matching clicks and
  hovers to what it painted; from ``unclusteredZoom`` every site in view is painted
  on its own. Measured in headless Chromium, a thousand DOM markers cost about a
  second a redraw, which is why nothing here is a DOM element per site. The map is
  drawn as soon as the points are unpacked; names, popups and search follow when
  the details are. Layer tick boxes and the flag filter change which points count.

Area layers of more than a thousand features (:data:`._areas.CULL_MIN_FEATURES`) are
filled from their data element once the sites are drawn, and hold only the features
around the view (co-location hulls only from a town's zoom): Leaflet redraws every
path a layer holds on each zoom and pan.

On every path it adds the "flagged sites only" filter, the site-name search box, the
data attribution lines and the legend, title and figures panels as Leaflet controls,
and exposes ``window.estatesMap`` (site count from Python, plus functions that count
and find sites and their markers) for tests and for people who script maps.

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
function estatesRuntime(map, cluster, control, layers, config, areaLayers) {
  "use strict";
  var grid = config.clustering === "grid";
  var em = window.estatesMap = {
    kind: config.kind, siteCount: config.siteCount, fastPath: !!config.points,
    clustering: config.clustering, ready: false, readyAt: null, detailsReady: !config.points,
    map: map, cluster: cluster, grid: null, groups: [], flagFilterOn: false,
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
  // (numbers only: the one place markup is built from data)
  var bubbleIcon = function (n, flagged) {
    n = Math.floor(Number(n)); flagged = Math.floor(Number(flagged));
    var size = n < 100 ? 34 : (n < 1000 ? 40 : 48);
    var html = "<div class=\"estates-cluster-" + size + "\">" + n +
      (flagged ? "<b><span>" + flagged + "</span></b>" : "") + "</div>";
    return L.divIcon({html: html, className: "estates-cluster", iconSize: L.point(size + 4, size + 4)});
  };
  if (cluster) {
    cluster.options.iconCreateFunction = function (c) {
      var markers = c.getAllChildMarkers(), flagged = 0;
      for (var k = 0; k < markers.length; k++) { if (markers[k].options.flagged) { flagged++; } }
      return bubbleIcon(markers.length, flagged);
    };
  }

  // -- the payload (estates.maps._fast): base64 of gzip of a JSON header and columns --
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new Error("estates maps read little-endian columns; this machine is big-endian");
  }
  var bytesOf = function (element) {
    var s = element.textContent.trim();
    if (Uint8Array.fromBase64) { return Uint8Array.fromBase64(s); }
    var binary = atob(s), bytes = new Uint8Array(binary.length);
    for (var k = 0; k < binary.length; k++) { bytes[k] = binary.charCodeAt(k); }
    return bytes;
  };
  var STORED = {u1: Uint8Array, u2: Uint16Array, u4: Uint32Array, f8: Float64Array};
  var intColumn = function (buffer, start, c) {
    var stored = new STORED[c.type](buffer, start + c.offset, c.count);
    var out = new (c.out === "i4" ? Int32Array : Float64Array)(c.count), base = c.base, k;
    if (c.delta !== undefined) {
      var acc = c.delta;
      for (k = 0; k < c.count; k++) { acc += stored[k] + base; out[k] = acc; }
    } else {
      for (k = 0; k < c.count; k++) { out[k] = stored[k] + base; }
    }
    return out;
  };
  // a long list of strings: one string, sliced per entry when asked (decoded on first use)
  function TextColumn(bytes, lengths) { this._bytes = bytes; this._lengths = lengths; this.length = lengths.length; }
  TextColumn.prototype.text = function () {
    if (this._text === undefined) {
      this._text = new TextDecoder("utf-8").decode(this._bytes);
      this._bytes = null;
    }
    return this._text;
  };
  TextColumn.prototype.offsets = function () {
    if (!this._offsets) {
      var n = this.length, o = new Float64Array(n + 1), lengths = this._lengths;
      for (var k = 0; k < n; k++) { o[k + 1] = o[k] + lengths[k]; }
      this._offsets = o;
    }
    return this._offsets;
  };
  TextColumn.prototype.at = function (i) {
    var o = this.offsets();
    return this.text().substring(o[i], o[i + 1]);
  };
  var readColumns = function (buffer) {
    var headerSize = new DataView(buffer).getUint32(0, true);
    var header = JSON.parse(new TextDecoder("utf-8").decode(new Uint8Array(buffer, 4, headerSize)));
    var start = 4 + headerSize + ((8 - (4 + headerSize) % 8) % 8), columns = header.columns;
    var walk = function (v) {
      if (v === null || typeof v !== "object") { return v; }
      if (Array.isArray(v)) { return v.map(walk); }
      if (v.$int !== undefined) { return intColumn(buffer, start, columns[v.$int]); }
      if (v.$text !== undefined) {
        var c = columns[v.$text];
        return new TextColumn(new Uint8Array(buffer, start + c.offset, c.bytes),
                              intColumn(buffer, start, columns[v.lengths]));
      }
      var out = {};
      Object.keys(v).forEach(function (key) { out[key] = walk(v[key]); });
      return out;
    };
    return walk(header.data);
  };
  var unpack = function (id) {
    var stream = new Blob([bytesOf(document.getElementById(id))]).stream()
      .pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).arrayBuffer().then(readColumns);
  };

  // -- popups: built from the details with textContent, when opened --
  // a text column: every value, or a dictionary with a code per site (no codes: one value)
  var textAt = function (c) {
    if (c.values) { return function (i) { return c.values.at(i); }; }
    if (!c.codes) { return function () { return c.dict.at(0); }; }
    return function (i) { return c.dict.at(c.codes[i]); };
  };
  var popupMaker = function (d) {
    var rows = d.rows.map(function (r) { return {label: r.label, at: textAt(r)}; });
    var flagColumns = d.flags === null ? null : d.flags.map(function (f) {
      return {label: textAt(f.label), status: f.status, sentence: textAt(f.sentence)};
    });
    return function (i, siteId) {
      var root = document.createElement("div");
      root.className = "estates-popup";
      root.setAttribute("data-site-id", String(siteId));
      root.appendChild(text("h4", d.title.at(i)));
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
  };
  var popupOptions = {maxWidth: 400, minWidth: 240, autoPanPaddingTopLeft: config.popupPanPadding};
  var symbolIcons = function (p) {
    return p.symbols.map(function (s) {
      return L.divIcon({html: s.svg, className: "estates-marker", iconSize: [s.size, s.size],
                        iconAnchor: [s.size / 2, s.size / 2], popupAnchor: [0, -s.size / 2]});
    });
  };

  // -- markercluster path: a marker per site, clustered by Leaflet.markercluster --
  var makeMarkers = function (d) {
    var icons = symbolIcons(d), buildPopup = popupMaker(d);
    var popupFor = function (k) { return function () { return buildPopup(k, d.id[k]); }; };
    var perGroup = em.groups.map(function () { return []; });
    for (var i = 0; i < d.id.length; i++) {
      var title = d.title.at(i);
      var marker = L.marker([d.lat[i] / d.scale, d.lon[i] / d.scale], {
        icon: icons[d.symbol[i]], title: title, alt: title, siteId: d.id[i],
        searchName: d.search.at(i), flagged: d.flagged[i] === 1
      });
      marker.bindPopup(popupFor(i), popupOptions);
      perGroup[d.group[i]].push(marker);
    }
    em.groups.forEach(function (g, k) {
      perGroup[k].forEach(function (m) { g.layer.addLayer(m); });  // not on the map yet: no clustering work
    });
    em.timings.markers = performance.now();
  };

  // -- show the visible groups in one clustered batch each; ready when all are clustered --
  var markReady = function () {
    if (!em.ready) {
      em.ready = true;
      em.readyAt = performance.now();
      map.getContainer().setAttribute("data-estates-ready", "true");
      setTimeout(loadAreas, 0);
    }
  };

  // -- large area layers: features from their data element once the sites are drawn, and
  //    only those near the view on the map (Leaflet redraws every path it holds) --
  var loadAreas = function () {
    (config.areas || []).forEach(function (a, k) {
      var layer = areaLayers[k], element = document.getElementById(a.id);
      if (!layer || !element) { return; }
      layer.addData(JSON.parse(element.textContent));
      var parts = [];
      layer.eachLayer(function (f) {
        parts.push({layer: f, on: false, box: f.getBounds ? f.getBounds() : L.latLngBounds([f.getLatLng()])});
      });
      parts.forEach(function (part) { layer.removeLayer(part.layer); });
      var update = function () {
        // Leaflet's renderers draw the view and a tenth around it
        var view = map.getBounds().pad(0.1), detail = map.getZoom() >= a.minZoom;
        parts.forEach(function (part) {
          var want = detail && view.intersects(part.box);
          if (want === part.on) { return; }
          part.on = want;
          if (want) { layer.addLayer(part.layer); } else { layer.removeLayer(part.layer); }
        });
      };
      update();
      map.on("moveend", update);
      if (a.show) { map.addLayer(layer); }
    });
    em.timings.areas = performance.now();
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

  // -- grid path: no marker per site. The points in and around the view are clustered
  //    on a pixel grid each time the view settles, and the bubbles and lone sites are
  //    painted on one canvas (thousands of DOM markers cost seconds a redraw) --
  var startGrid = function (p) {
    var n = p.id.length, scale = p.scale, X = new Float64Array(n), Y = new Float64Array(n);
    var maxLat = 85.0511287798, i;
    // Web Mercator, as a fraction of the world (Leaflet's pixels at zoom z are this * 256 * 2^z)
    for (i = 0; i < n; i++) {
      var lat = Math.max(-maxLat, Math.min(maxLat, p.lat[i] / scale)), s = Math.sin(lat * Math.PI / 180);
      X[i] = p.lon[i] / scale / 360 + 0.5;
      Y[i] = 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI);
    }
    // a coarse index: points sorted by bucket of a grid over the world (4,096 buckets a
    // side, about 6 km in England; coarser if the sites span so much that there would be
    // more than 2^18 buckets), so a view reads only the buckets it overlaps
    var minX = 0.5, maxX = 0.5, minY = 0.5, maxY = 0.5;
    for (i = 0; i < n; i++) {
      if (i === 0 || X[i] < minX) { minX = X[i]; } if (i === 0 || X[i] > maxX) { maxX = X[i]; }
      if (i === 0 || Y[i] < minY) { minY = Y[i]; } if (i === 0 || Y[i] > maxY) { maxY = Y[i]; }
    }
    var bside = 4096, bx0, by0, bw, bh;
    for (;;) {
      bx0 = Math.floor(minX * bside); by0 = Math.floor(minY * bside);
      bw = Math.floor(maxX * bside) - bx0 + 1; bh = Math.floor(maxY * bside) - by0 + 1;
      if (bw * bh <= 1 << 18 || bside === 1) { break; }
      bside /= 2;
    }
    var start = new Int32Array(bw * bh + 1), bucket = new Int32Array(n);
    for (i = 0; i < n; i++) {
      bucket[i] = (Math.floor(Y[i] * bside) - by0) * bw + (Math.floor(X[i] * bside) - bx0);
      start[bucket[i] + 1]++;
    }
    for (i = 0; i < bw * bh; i++) { start[i + 1] += start[i]; }
    var fill = start.slice(0, bw * bh), ord = new Int32Array(n);
    var SX = new Float64Array(n), SY = new Float64Array(n), SG = new Int32Array(n), SF = new Uint8Array(n);
    for (i = 0; i < n; i++) {
      var j = fill[bucket[i]]++;
      ord[j] = i; SX[j] = X[i]; SY[j] = Y[i]; SG[j] = p.group[i]; SF[j] = p.flagged[i] === 1 ? 1 : 0;
    }
    bucket = fill = null;
    var toLatLng = function (x, y) {
      return L.latLng((2 * Math.atan(Math.exp(Math.PI * (1 - 2 * y))) - Math.PI / 2) * 180 / Math.PI,
                      (x - 0.5) * 360);
    };
    var siteLatLng = function (k) { return L.latLng(p.lat[k] / scale, p.lon[k] / scale); };
    var radiusPx = config.gridRadiusPx, cellPx = config.gridCellPx, reach = Math.ceil(radiusPx / cellPx);
    var g = em.grid = {redraws: 0, last: null, items: [], hover: null};
    var shownNow = function () {
      var on = new Uint8Array(em.groups.length);
      em.groups.forEach(function (gr, k) { on[k] = map.hasLayer(gr.layer) ? 1 : 0; });
      return {on: on, flaggedOnly: em.flagFilterOn};
    };
    g.visible = function () {
      var s = shownNow();
      return function (k) { return s.on[p.group[k]] === 1 && (!s.flaggedOnly || p.flagged[k] === 1); };
    };
    // every shown point in [x0, x1) x [y0, y1) (world fractions): each(sorted position)
    var scan = function (x0, y0, x1, y1, each) {
      var s = shownNow(), on = s.on, flaggedOnly = s.flaggedOnly;
      var c0 = Math.max(0, Math.floor(x0 * bside) - bx0), c1 = Math.min(bw - 1, Math.floor(x1 * bside) - bx0);
      var r0 = Math.max(0, Math.floor(y0 * bside) - by0), r1 = Math.min(bh - 1, Math.floor(y1 * bside) - by0);
      for (var r = r0; r <= r1 && c0 <= c1; r++) {
        for (var j = start[r * bw + c0], end = start[r * bw + c1 + 1]; j < end; j++) {
          var x = SX[j], y = SY[j];
          if (x < x0 || x >= x1 || y < y0 || y >= y1 || on[SG[j]] !== 1 || (flaggedOnly && !SF[j])) { continue; }
          each(j);
        }
      }
    };
    // clusters of the shown points in the box at `zoom`: greedy, biggest cell first, each
    // taking the cells whose centres lie within radiusPx of its own (as supercluster does
    // with points); cells are fixed in the world, so a pan keeps its clusters
    var clusterBox = function (x0, y0, x1, y1, zoom) {
      var world = 256 * Math.pow(2, zoom), cells = world / cellPx;
      var cx0 = Math.floor(x0 * cells), cy0 = Math.floor(y0 * cells);
      var w = Math.floor(x1 * cells) - cx0 + 1, h = Math.floor(y1 * cells) - cy0 + 1, m = w * h;
      var count = new Int32Array(m), flagged = new Int32Array(m), one = new Int32Array(m);
      var sx = new Float64Array(m), sy = new Float64Array(m), c;
      scan(x0, y0, x1, y1, function (j) {
        c = (Math.floor(SY[j] * cells) - cy0) * w + (Math.floor(SX[j] * cells) - cx0);
        count[c]++; flagged[c] += SF[j]; sx[c] += SX[j]; sy[c] += SY[j]; one[c] = j;
      });
      var order = [];
      for (c = 0; c < m; c++) { if (count[c]) { order.push(c); } }
      order.sort(function (a, b) { return count[b] - count[a] || a - b; });
      var taken = new Uint8Array(m), out = [], limit = radiusPx / world, limit2 = limit * limit;
      order.forEach(function (c) {
        if (taken[c]) { return; }
        taken[c] = 1;
        var col = c % w, row = (c - col) / w, mx = sx[c] / count[c], my = sy[c] / count[c];
        var cl = {count: count[c], flagged: flagged[c], sx: sx[c], sy: sy[c], one: one[c], cells: [c]};
        for (var r = Math.max(0, row - reach); r <= Math.min(h - 1, row + reach); r++) {
          for (var q = Math.max(0, col - reach); q <= Math.min(w - 1, col + reach); q++) {
            var o = r * w + q;
            if (taken[o] || !count[o]) { continue; }
            var dx = sx[o] / count[o] - mx, dy = sy[o] / count[o] - my;
            if (dx * dx + dy * dy > limit2) { continue; }
            taken[o] = 1;
            cl.count += count[o]; cl.flagged += flagged[o]; cl.sx += sx[o]; cl.sy += sy[o];
            cl.cells.push(o);
          }
        }
        cl.x = cl.sx / cl.count; cl.y = cl.sy / cl.count;
        out.push(cl);
      });
      // a bubble zooms to the box of its points (found when it is clicked)
      out.box = function (cl) {
        var want = {}, b = [Infinity, Infinity, -Infinity, -Infinity];
        cl.cells.forEach(function (o) { want[o] = 1; });
        scan(x0, y0, x1, y1, function (j) {
          if (!want[(Math.floor(SY[j] * cells) - cy0) * w + (Math.floor(SX[j] * cells) - cx0)]) { return; }
          b[0] = Math.min(b[0], SX[j]); b[1] = Math.min(b[1], SY[j]);
          b[2] = Math.max(b[2], SX[j]); b[3] = Math.max(b[3], SY[j]);
        });
        return L.latLngBounds(toLatLng(b[0], b[3]), toLatLng(b[2], b[1]));
      };
      return out;
    };

    // -- painting: our symbols (SVG from Python constants) as images, bubbles as in CSS --
    var ratio = Math.max(1, window.devicePixelRatio || 1);
    var images = p.symbols.map(function (sym) {
      var img = new Image(sym.size, sym.size);
      img.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(sym.svg);
      return img;
    });
    var paintBubble = function (ctx, it) {
      var size = it.count < 100 ? 34 : (it.count < 1000 ? 40 : 48), r = size / 2;
      ctx.beginPath(); ctx.arc(it.px, it.py, r, 0, 2 * Math.PI);
      ctx.fillStyle = "rgba(38,50,56,.85)"; ctx.fill();
      ctx.beginPath(); ctx.arc(it.px, it.py, r + 1, 0, 2 * Math.PI);
      ctx.lineWidth = 2; ctx.strokeStyle = "#fff"; ctx.stroke();
      ctx.beginPath(); ctx.arc(it.px, it.py, r + 2.5, 0, 2 * Math.PI);
      ctx.lineWidth = 1; ctx.strokeStyle = "rgba(0,0,0,.35)"; ctx.stroke();
      ctx.fillStyle = "#fff"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
      ctx.font = "700 " + (size === 48 ? 11 : 12) + "px Arial, sans-serif";
      ctx.fillText(String(it.count), it.px, it.py + 0.5);
      if (it.flagged) {
        // the black diamond badge at the top right (CSS: .estates-cluster div b)
        ctx.font = "700 10px Arial, sans-serif";
        var label = String(it.flagged), width = Math.max(16, ctx.measureText(label).width) + 6;
        var bx = it.px - r - 2 + size + 11 - width / 2, by = it.py - r - 2 + 3;
        ctx.save(); ctx.translate(bx, by); ctx.rotate(Math.PI / 4);
        ctx.fillStyle = "#111"; ctx.beginPath();
        if (ctx.roundRect) { ctx.roundRect(-width / 2, -8, width, 16, 2); } else { ctx.rect(-width / 2, -8, width, 16); }
        ctx.fill(); ctx.restore();
        ctx.fillStyle = "#fff"; ctx.fillText(label, bx, by + 0.5);
      }
    };
    var paint = function (ctx) {
      g.items.forEach(function (it) {
        if (it.site !== undefined) {
          var sym = p.symbols[p.symbol[it.site]];
          ctx.drawImage(images[p.symbol[it.site]], it.px - sym.size / 2, it.py - sym.size / 2, sym.size, sym.size);
        } else {
          paintBubble(ctx, it);
        }
      });
    };
    var SiteCanvas = L.Layer.extend({
      options: {pane: "estatesSites", padding: 0.5},
      onAdd: function () {
        this._container = L.DomUtil.create("canvas", "estates-sites");
        if (this._zoomAnimated) { L.DomUtil.addClass(this._container, "leaflet-zoom-animated"); }
        this._ctx = this._container.getContext("2d");
        this.getPane().appendChild(this._container);
        this._update();
      },
      onRemove: function () { L.DomUtil.remove(this._container); },
      getEvents: function () {
        var events = {viewreset: this._reset, zoom: this._onZoom, moveend: this._update};
        if (this._zoomAnimated) { events.zoomanim = this._onAnimZoom; }
        return events;
      },
      _onAnimZoom: function (e) { this._updateTransform(e.center, e.zoom); },
      _onZoom: function () { this._updateTransform(this._map.getCenter(), this._map.getZoom()); },
      _updateTransform: L.Renderer.prototype._updateTransform,
      _reset: function () { this._update(); this._updateTransform(this._center, this._zoom); },
      _update: function () {
        if (this._map._animatingZoom && this._bounds) { return; }
        L.Renderer.prototype._update.call(this);  // the view and padding, in layer pixels
        var b = this._bounds, size = b.getSize(), canvas = this._container;
        L.DomUtil.setPosition(canvas, b.min);
        canvas.width = ratio * size.x; canvas.height = ratio * size.y;
        canvas.style.width = size.x + "px"; canvas.style.height = size.y + "px";
        redraw(b);
        this._ctx.setTransform(ratio, 0, 0, ratio, -ratio * b.min.x, -ratio * b.min.y);
        paint(this._ctx);
        g.last.ms = performance.now() - g.last.started;
      },
      redraw: function () { if (this._map) { this._update(); } }
    });
    var redraw = function (b) {
      var started = performance.now(), zoom = map.getZoom(), world = 256 * Math.pow(2, zoom);
      var origin = map.getPixelOrigin(), items = [], bubbles = 0, sites = 0, clustered = 0;
      var x0 = (b.min.x + origin.x) / world, x1 = (b.max.x + origin.x) / world;
      var y0 = (b.min.y + origin.y) / world, y1 = (b.max.y + origin.y) / world;
      var toPx = function (it, x, y) { it.px = x * world - origin.x; it.py = y * world - origin.y; return it; };
      if (zoom >= config.unclusteredZoom) {
        scan(x0, y0, x1, y1, function (j) { items.push(toPx({site: ord[j]}, SX[j], SY[j])); });
        sites = items.length;
      } else {
        var found = clusterBox(x0, y0, x1, y1, zoom);
        found.forEach(function (cl) {
          if (cl.count === 1) {
            items.push(toPx({site: ord[cl.one]}, SX[cl.one], SY[cl.one]));
            sites++;
          } else {
            items.push(toPx({count: cl.count, flagged: cl.flagged, cluster: cl, found: found}, cl.x, cl.y));
            bubbles++; clustered += cl.count;
          }
        });
      }
      items.sort(function (a, c) { return a.py - c.py; });  // further south on top, as Leaflet does
      g.items = items;
      g.redraws++;
      g.last = {zoom: zoom, bubbles: bubbles, sites: sites, clustered: clustered, started: started,
                clusteredIn: performance.now() - started};
    };
    // the item under a container point (last painted first), or null
    var hit = function (point) {
      var at = map.containerPointToLayerPoint(point);
      for (var k = g.items.length - 1; k >= 0; k--) {
        var it = g.items[k], dx = at.x - it.px, dy = at.y - it.py;
        var r = it.site !== undefined ? p.symbols[p.symbol[it.site]].size / 2 + 1 :
          (it.count < 100 ? 34 : (it.count < 1000 ? 40 : 48)) / 2 + 2;
        if (dx * dx + dy * dy <= r * r) { return it; }
      }
      return null;
    };
    g.hit = hit;
    var openSitePopup = function (k) {
      var size = p.symbols[p.symbol[k]].size;
      var popup = L.popup(L.extend({offset: L.point(0, 7 - size / 2)}, popupOptions)).setLatLng(siteLatLng(k));
      var content = function () {
        if (em.details) { return em.buildPopup(k, p.id[k]); }
        em.whenDetails.then(function () { if (popup.isOpen()) { popup.setContent(content()); } });
        return text("div", "Loading the site's details\u2026", "estates-popup-loading");
      };
      popup.setContent(content()).openOn(map);
      g.popup = {site: k, popup: popup};
      return popup;
    };
    g.openSitePopup = openSitePopup;
    var zoomInto = function (it) {
      // to the box of the sites it holds, at least one level in (as markercluster does)
      var bounds = it.found.box(it.cluster);
      var zoom = map.getBoundsZoom(bounds, false, L.point(40, 40));
      map.setView(bounds.getCenter(), Math.min(Math.max(zoom, map.getZoom() + 1), config.unclusteredZoom));
    };
    // the canvas lets every pointer event through (areas below keep their tooltips);
    // clicks and hovers are matched to what is painted here
    var container = map.getContainer(), down = null, tip = null;
    var onMap = function (target) {
      return (target === container || map.getPane("mapPane").contains(target)) &&
        !map.getPane("popupPane").contains(target) && !map.getPane("tooltipPane").contains(target);
    };
    container.addEventListener("mousedown", function (e) { down = [e.clientX, e.clientY]; }, true);
    container.addEventListener("click", function (e) {
      if (!onMap(e.target) || (down && Math.abs(e.clientX - down[0]) + Math.abs(e.clientY - down[1]) > 4)) { return; }
      var it = hit(map.mouseEventToContainerPoint(e));
      if (!it) { return; }
      e.stopPropagation();
      if (it.site !== undefined) { openSitePopup(it.site); } else { zoomInto(it); }
    }, true);
    container.addEventListener("mousemove", function (e) {
      var it = onMap(e.target) ? hit(map.mouseEventToContainerPoint(e)) : null;
      container.style.cursor = it ? "pointer" : "";
      var site = it && it.site !== undefined && em.details ? it.site : null;
      if (site === g.hover) { return; }
      g.hover = site;
      if (tip) { map.removeLayer(tip); tip = null; }
      if (site !== null) {
        tip = L.tooltip({direction: "top", offset: L.point(0, -p.symbols[p.symbol[site]].size / 2)})
          .setLatLng(siteLatLng(site)).setContent(text("span", em.details.title.at(site)));
        map.addLayer(tip);
      }
    });
    container.addEventListener("mouseleave", function () {
      container.style.cursor = ""; g.hover = null;
      if (tip) { map.removeLayer(tip); tip = null; }
    });

    var pane = map.createPane("estatesSites");
    pane.style.zIndex = 590;  // with the markers, under tooltips and popups
    pane.style.pointerEvents = "none";
    em.groups.forEach(function (gr) { if (gr.show) { map.addLayer(gr.layer); } });
    var canvas = g.canvas = new SiteCanvas();
    g.redraw = function () { canvas.redraw(); };
    g.siteLatLng = siteLatLng;
    // a sector's tick box: its layer is empty, being on the map is what counts
    map.on("overlayadd overlayremove", function (e) {
      if (em.groups.some(function (gr) { return gr.layer === e.layer; })) { canvas.redraw(); }
    });
    return Promise.all(images.map(function (img) { return img.decode(); })).then(function () {
      map.addLayer(canvas);
      em.timings.firstDraw = performance.now();
      markReady();
    });
  };

  // -- details (names, popups, search): after the first drawing on the grid path --
  var detailsArrived;
  em.whenDetails = new Promise(function (resolve) { detailsArrived = resolve; });
  var useDetails = function (d) {
    em.details = d;
    em.buildPopup = popupMaker(d);
    em.detailsReady = true;
    em.timings.details = performance.now();
    map.getContainer().setAttribute("data-estates-details-ready", "true");
    detailsArrived(d);
  };
  var failed = function (error) {
    em.error = "The map data could not be read: " + error;
    var note = document.getElementById(config.titleId);
    if (note) { note.appendChild(text("div", em.error)); }
    throw error;
  };
  if (config.points) {
    if (typeof DecompressionStream === "undefined") {
      em.error = "This browser cannot unpack the map data: open the map in a current Chrome, Edge, Firefox or Safari.";
      var note = document.getElementById(config.titleId);
      if (note) { note.appendChild(text("div", em.error)); }
      throw new Error(em.error);
    }
    var points = unpack(config.points);
    if (grid) {
      points.then(function (p) {
        em.timings.points = performance.now();
        em.points = p;
        return startGrid(p);
      }).then(function () {
        return new Promise(function (resolve) { setTimeout(resolve, 0); });  // let it paint
      }).then(function () { return unpack(config.data); }).then(useDetails).catch(failed);
    } else {
      Promise.all([points, unpack(config.data)]).then(function (parts) {
        em.timings.points = performance.now();
        var d = Object.assign({}, parts[0], parts[1]);
        em.points = parts[0];
        useDetails(parts[1]);
        makeMarkers(d);
        showGroups();
      }).catch(failed);
    }
  } else {
    showGroups();
  }

  // -- counting and finding sites (for tests and for people who script maps) --
  var indexOf = function (id) {
    var ids = em.points.id;
    for (var k = 0; k < ids.length; k++) { if (ids[k] === id) { return k; } }
    return -1;
  };
  // the site's layer shown and the flag filter lifted, so it can be opened; null if unknown
  var revealSite = function (id) {
    var found = em.findMarker(id);
    if (!found) { return null; }
    if (found.hidden && em.flagFilter) { map.removeLayer(em.flagFilter); }
    if (!map.hasLayer(found.group.layer)) { map.addLayer(found.group.layer); }
    return found;
  };
  if (grid) {
    // no marker per site: count the data, and find sites by where they are painted
    em.markers = function () { return []; };
    em.countMarkers = function () { return em.points ? em.points.id.length : 0; };
    em.countMarkersOnLayers = function () {
      if (!em.grid) { return 0; }
      var show = em.grid.visible(), n = 0;
      for (var k = 0; k < em.points.id.length; k++) { if (show(k)) { n++; } }
      return n;
    };
    em.markerIds = function () { return em.points ? Array.from(em.points.id) : []; };
    em.findMarker = function (id) {
      var k = em.points ? indexOf(id) : -1;
      if (k < 0) { return null; }
      return {marker: null, site: k, latlng: em.grid.siteLatLng(k), group: em.groups[em.points.group[k]],
              hidden: em.flagFilterOn && em.points.flagged[k] !== 1};
    };
    // what is painted now, around and in the view (container pixels)
    em.drawnItems = function () {
      return (em.grid ? em.grid.items : []).map(function (it) {
        var at = map.layerPointToContainerPoint(L.point(it.px, it.py));
        return it.site !== undefined ?
          {kind: "site", siteId: em.points.id[it.site], flagged: em.points.flagged[it.site], x: at.x, y: at.y} :
          {kind: "bubble", count: it.count, flagged: it.flagged, x: at.x, y: at.y};
      });
    };
    // where site `id` is painted now (container pixels), or null if it is not
    em.sitePoint = function (id) {
      var found = em.drawnItems().filter(function (it) { return it.siteId === id; });
      return found.length ? {x: found[0].x, y: found[0].y} : null;
    };
    em.openSite = function (id) {
      return new Promise(function (resolve, reject) {
        var found = revealSite(id);
        if (!found) { reject(new Error("no site " + id)); return; }
        // from this zoom every site is painted on its own (no bubbles)
        map.setView(found.latlng, Math.max(map.getZoom(), config.unclusteredZoom), {animate: false});
        resolve(em.grid.openSitePopup(found.site));
      });
    };
  } else {
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
        var found = revealSite(id);
        if (!found) { reject(new Error("no marker for site " + id)); return; }
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
  }
  // what is on the map now: bubbles and site symbols (either clustering)
  em.drawn = function () {
    if (grid) {
      var last = em.grid && em.grid.last;
      return last ? {bubbles: last.bubbles, sites: last.sites, sitesInBubbles: last.clustered} :
        {bubbles: 0, sites: 0, sitesInBubbles: 0};
    }
    var pane = map.getPane("markerPane"), bubbles = pane.querySelectorAll(".estates-cluster");
    var inBubbles = 0;
    for (var k = 0; k < bubbles.length; k++) { inBubbles += parseInt(bubbles[k].firstChild.firstChild.nodeValue, 10); }
    return {bubbles: bubbles.length, sites: pane.querySelectorAll(".estates-marker").length,
            sitesInBubbles: inBubbles};
  };

  // -- "flagged sites only": an overlay that hides the others while it is ticked --
  if (config.flagFilter && control) {
    var filter = em.flagFilter = L.layerGroup();
    var apply = function (on) {
      em.flagFilterOn = on;
      if (grid) {
        if (em.grid) { em.grid.redraw(); }
        return;
      }
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
  var searchOptions = {
    initial: false, marker: false, collapsed: false,
    textPlaceholder: "Search site name", textErr: "No site of that name is shown",
    tooltipLimit: 25, position: "topleft",
    buildTip: function (label) { var li = L.DomUtil.create("li", ""); li.textContent = label; return li; }
  };
  // the sites whose search label holds `typed` (as leaflet-search matches: special
  // characters dropped, any case), among those shown; at most `limit`, in file order
  var findSites = function (typed, limit) {
    var query = typed.replace(/[.*+?^${}()|[\]\\]/g, "").toLowerCase(), found = [];
    if (!query || !em.grid) { return found; }
    var labels = em.details.search, show = em.grid.visible(), k;
    if (labels instanceof TextColumn) {
      if (labels.lower === undefined) {
        var lower = labels.text().toLowerCase();
        labels.lower = lower.length === labels.text().length ? lower : null;  // offsets still hold
      }
      if (labels.lower !== null) {
        var o = labels.offsets(), at = labels.lower.indexOf(query);
        while (at >= 0 && found.length < limit) {
          var lo = 0, hi = labels.length - 1;  // the entry holding position `at`
          while (lo < hi) { var mid = (lo + hi + 1) >> 1; if (o[mid] <= at) { lo = mid; } else { hi = mid - 1; } }
          if (at + query.length <= o[lo + 1]) {
            if (show(lo)) { found.push(lo); }
            at = labels.lower.indexOf(query, o[lo + 1]);
          } else {
            at = labels.lower.indexOf(query, at + 1);
          }
        }
        return found;
      }
    }
    for (k = 0; k < labels.length && found.length < limit; k++) {
      if (show(k) && labels.at(k).toLowerCase().indexOf(query) >= 0) { found.push(k); }
    }
    return found;
  };
  em.findSites = findSites;
  if (config.search && L.Control.Search && config.siteCount > 0) {
    if (grid) {
      searchOptions.sourceData = function (typed, respond) {
        em.whenDetails.then(function () { respond(findSites(typed, searchOptions.tooltipLimit)); });
        return {abort: function () {}};
      };
      searchOptions.formatData = function (found) {
        var records = {};
        found.forEach(function (k) {
          var at = L.latLng(em.points.lat[k] / em.points.scale, em.points.lon[k] / em.points.scale);
          at.siteId = em.points.id[k];
          records[em.details.search.at(k)] = at;
        });
        return records;
      };
      searchOptions.moveToLocation = function (latlng) { em.openSite(latlng.siteId); };
    } else if (cluster) {
      searchOptions.layer = cluster;
      searchOptions.propertyName = "searchName";
      searchOptions.moveToLocation = function (latlng) { if (latlng.layer) { em.openSite(latlng.layer.options.siteId); } };
    }
    if (searchOptions.layer || searchOptions.sourceData) {
      em.search = new L.Control.Search(searchOptions);
      map.addControl(em.search);
    }
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
        areas: list[Element] | None = None,
        css: str,
        body_html: str,
    ) -> None:
        super().__init__()
        self._name = "EstatesRuntime"
        self.map_element = map_element
        self.cluster = cluster
        self.control = control
        self.layers = layers
        self.areas = areas or []
        self.config = config
        self.css = css
        self.body_html = body_html

    def script_js(self) -> str:
        layers = ", ".join(layer.get_name() for layer in self.layers)
        areas = ", ".join(layer.get_name() for layer in self.areas)
        return (
            RUNTIME_JS
            + f"estatesRuntime({self.map_element.get_name()}, "
            + f"{self.cluster.get_name() if self.cluster else 'null'}, "
            + f"{self.control.get_name() if self.control else 'null'}, "
            + f"[{layers}], {script_json(self.config)}, [{areas}]);"
        )
