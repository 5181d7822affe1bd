/* geocsp interactive map (docs/map.md). Works offline: Leaflet is vendored, the outlines and
 * grids come from the geocsp server (/api/...) or are inlined in window.GEOCSP_DATA by
 * `geocsp map --html`. Grids: uint8 codes (255 = no data) or RGBA bytes, base64, row 0 north. */
(function () {
  'use strict';
  var STATIC = window.GEOCSP_DATA || null;
  var $ = function (id) { return document.getElementById(id); };
  var VIRIDIS = ['#440154', '#3b528b', '#21918c', '#5ec962', '#fde725'];
  var MAGMA = ['#000004', '#51127c', '#b73779', '#fc8961', '#fcfdbf'];
  var state = { info: null, species: null, range: null, richness: null, embedding: null,
                records: null, rangeGrid: null, seq: 0 };

  function lut(stops) {
    var rgb = stops.map(function (h) {
      return [1, 3, 5].map(function (i) { return parseInt(h.substr(i, 2), 16); });
    });
    var out = new Uint8Array(255 * 3);
    for (var c = 0; c < 255; c++) {
      var x = c / 254 * (rgb.length - 1), i = Math.min(Math.floor(x), rgb.length - 2), f = x - i;
      for (var k = 0; k < 3; k++) out[c * 3 + k] = Math.round(rgb[i][k] * (1 - f) + rgb[i + 1][k] * f);
    }
    return out;
  }
  var LUT_RANGE = lut(VIRIDIS), LUT_RICH = lut(MAGMA);

  function bytes(b64) {
    var bin = atob(b64), a = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) a[i] = bin.charCodeAt(i);
    return a;
  }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }
  function status(msg) { $('status').textContent = msg || ''; }

  /* ---- data source: the server's JSON endpoints, or the inlined static data ---- */
  function api(path, params) {
    var qs = new URLSearchParams();
    Object.keys(params || {}).forEach(function (k) {
      var v = params[k];
      if (v !== null && v !== undefined && v !== '') qs.set(k, v);
    });
    var q = qs.toString();
    return fetch('api/' + path + (q ? '?' + q : '')).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error(body.error || r.statusText);
        return body;
      });
    });
  }
  function common() {
    var p = {};
    if (!STATIC) {
      p.res = $('res').value;
      if (state.info.has_time) p.date = $('date').value.trim();
    }
    return p;
  }
  var source = {
    info: function () { return STATIC ? Promise.resolve(STATIC.info) : api('info'); },
    outlines: function () { return STATIC ? Promise.resolve(STATIC.outlines) : api('outlines'); },
    grid: function (layer, species) {
      if (!STATIC) return api('grid', Object.assign({ layer: layer, species: species }, common()));
      var g = layer === 'species' ? STATIC.grids[species] : STATIC[layer];
      return g ? Promise.resolve(g) : Promise.reject(new Error('no ' + layer + ' layer in this file'));
    },
    point: function (lon, lat) {
      if (!STATIC) {
        return api('point', Object.assign({ lon: lon.toFixed(5), lat: lat.toFixed(5), k: 5,
                                            species: state.species }, common(), { res: null }));
      }
      return Promise.resolve(staticPoint(lon, lat));
    },
    records: function (species) {
      if (!STATIC) return api('records', { species: species, limit: 5000 });
      var r = STATIC.records, out = { lon: [], lat: [], species: [], total: 0 };
      for (var i = 0; i < r.lon.length; i++) {
        if (species && r.species[i] !== species) continue;
        out.lon.push(r.lon[i]); out.lat.push(r.lat[i]); out.species.push(r.species[i]);
      }
      out.total = out.lon.length;
      return Promise.resolve(out);
    }
  };
  function staticPoint(lon, lat) {
    var t = STATIC.topk, col = Math.floor((lon - t.west) / t.res), row = Math.floor((t.north - lat) / t.res);
    var out = { lon: lon, lat: lat, date: STATIC.info.date, top: [] };
    if (col < 0 || row < 0 || col >= t.w || row >= t.h) { out.outside = true; return out; }
    t._idx = t._idx || new DataView(bytes(t.idx).buffer);
    t._score = t._score || new DataView(bytes(t.score).buffer);
    var cell = row * t.w + col;
    for (var j = 0; j < t.k; j++) {
      var n = cell * t.k + j;
      var idx = t.idx_bytes === 2 ? t._idx.getUint16(2 * n, true) : t._idx.getUint32(4 * n, true);
      out.top.push([STATIC.classes[idx], t._score.getUint16(2 * n, true) / 65535]);
    }
    return out;
  }

  /* ---- drawing ---- */
  function paint(g, table, threshold) {
    var c = document.createElement('canvas');
    c.width = g.w; c.height = g.h;
    var ctx = c.getContext('2d'), img = ctx.createImageData(g.w, g.h), px = img.data;
    if (g.rgba) {
      px.set(bytes(g.rgba));
    } else {
      var codes = g._codes || (g._codes = bytes(g.data)), span = g.vmax - g.vmin;
      var cut = threshold > 0 && span > 0 ? Math.ceil((threshold - g.vmin) / span * 254 - 1e-9) : 0;
      for (var i = 0; i < codes.length; i++) {
        var code = codes[i];
        if (code === 255 || code < cut) continue;
        px[4 * i] = table[3 * code]; px[4 * i + 1] = table[3 * code + 1];
        px[4 * i + 2] = table[3 * code + 2]; px[4 * i + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    return c.toDataURL('image/png');
  }
  function overlay(old, g, table, threshold, pane) {
    if (old) map.removeLayer(old);
    var bounds = [[g.south, g.west], [g.north, g.east]];
    return L.imageOverlay(paint(g, table, threshold), bounds,
                          { opacity: +$('opacity').value, pane: pane, interactive: false }).addTo(map);
  }
  function legend(g) {
    var box = $('legend');
    box.textContent = '';
    if (!g) return;
    var c = document.createElement('canvas');
    c.width = 255; c.height = 1;
    var ctx = c.getContext('2d'), img = ctx.createImageData(255, 1);
    for (var i = 0; i < 255; i++) {
      img.data.set([LUT_RANGE[3 * i], LUT_RANGE[3 * i + 1], LUT_RANGE[3 * i + 2], 255], 4 * i);
    }
    ctx.putImageData(img, 0, 0);
    var ticks = document.createElement('div');
    ticks.className = 'ticks';
    ticks.innerHTML = '<span>' + g.vmin.toFixed(2) + '</span><span>' + esc(g.name) +
      '</span><span>' + g.vmax.toFixed(2) + '</span>';
    box.appendChild(c); box.appendChild(ticks);
  }

  function drawRange() {
    var name = state.species, seq = ++state.seq;
    if (!name || !$('layer-range').checked) {
      if (state.range) map.removeLayer(state.range);
      state.range = null; legend(null); $('map').dataset.range = '';
      return Promise.resolve();
    }
    status('loading ' + name + '…');
    return source.grid('species', name).then(function (g) {
      if (seq !== state.seq) return;
      state.rangeGrid = g;
      state.range = overlay(state.range, g, LUT_RANGE, +$('threshold').value, 'ranges');
      legend(g); status('');
      $('map').dataset.range = name;
    }).catch(function (e) { status(e.message); });
  }
  function drawLayer(layer, table, pane) {
    var on = $('layer-' + layer).checked;
    if (state[layer]) { map.removeLayer(state[layer]); state[layer] = null; }
    if (!on) return Promise.resolve();
    status('loading ' + layer + '…');
    return source.grid(layer, null).then(function (g) {
      if (!$('layer-' + layer).checked) return;
      state[layer] = overlay(state[layer], g, table, 0, pane);
      status('');
    }).catch(function (e) { status(e.message); $('layer-' + layer).checked = false; });
  }
  function drawRecords() {
    if (state.records) { map.removeLayer(state.records); state.records = null; }
    if (!$('layer-records').checked) return Promise.resolve();
    return source.records(state.species).then(function (r) {
      var group = L.layerGroup();
      for (var i = 0; i < r.lon.length; i++) {
        L.circleMarker([r.lat[i], r.lon[i]], { radius: 3, weight: 0.6, color: '#fff', fillColor: '#e4572e',
          fillOpacity: 0.9, interactive: false, renderer: pointsRenderer, pane: 'points' }).addTo(group);
      }
      if (state.records) map.removeLayer(state.records);
      state.records = group.addTo(map);
      $('map').dataset.records = String(r.lon.length);
    }).catch(function (e) { status(e.message); });
  }
  function redrawAll() {
    drawRange(); drawLayer('richness', LUT_RICH, 'richness'); drawLayer('embedding', null, 'embedding');
  }

  /* ---- search ---- */
  function select(name) {
    state.species = name;
    $('species-search').value = name;
    $('matches').textContent = '';
    $('selected').textContent = name;
    drawRange(); drawRecords();
  }
  function search() {
    var q = $('species-search').value.trim().toLowerCase(), list = $('matches');
    list.textContent = '';
    if (!q) return;
    var hits = state.info.species.filter(function (s) { return s.toLowerCase().indexOf(q) >= 0; }).slice(0, 20);
    hits.forEach(function (s) {
      var li = document.createElement('li');
      li.textContent = s; li.setAttribute('role', 'option');
      li.addEventListener('click', function () { select(s); });
      list.appendChild(li);
    });
    if (!hits.length) { var li = document.createElement('li'); li.textContent = 'no match'; li.className = 'none'; list.appendChild(li); }
  }

  /* ---- clicks ---- */
  function showPoint(e) {
    var lon = Math.max(-180, Math.min(180, e.latlng.lng)), lat = Math.max(-90, Math.min(90, e.latlng.lat));
    source.point(lon, lat).then(function (p) {
      var head = '<b>' + lon.toFixed(3) + ', ' + lat.toFixed(3) + '</b>' + (p.date ? ' on ' + esc(p.date) : '');
      var rows = p.outside ? '<tr><td>outside the map grid</td></tr>' : p.top.map(function (t, i) {
        return '<tr class="top"><td>' + (i + 1) + '.</td><td>' + esc(t[0]) + '</td><td>' + t[1].toFixed(3) + '</td></tr>';
      }).join('');
      var listed = p.top.some(function (t) { return p.species && t[0] === p.species[0]; });
      if (p.species && !listed) rows += '<tr class="sel"><td>·</td><td>' + esc(p.species[0]) + '</td><td>' + p.species[1].toFixed(3) + '</td></tr>';
      var html = head + '<table>' + rows + '</table>';
      L.popup().setLatLng(e.latlng).setContent(html).openOn(map);
      $('point-info').innerHTML = html;
    }).catch(function (err) { status(err.message); });
  }

  /* ---- start ---- */
  var map = L.map('map', { crs: L.CRS.EPSG4326, zoomSnap: 0.25, minZoom: 0, maxZoom: 14, worldCopyJump: false });
  window.geocspMap = map;
  [['embedding', 300], ['richness', 310], ['ranges', 320], ['lines', 420], ['points', 430]].forEach(function (p) {
    map.createPane(p[0]).style.zIndex = p[1];
  });
  map.getPane('lines').style.pointerEvents = 'none';
  map.getPane('points').style.pointerEvents = 'none';
  var linesRenderer = L.canvas({ pane: 'lines' }), pointsRenderer = L.canvas({ pane: 'points' });

  Promise.all([source.info(), source.outlines()]).then(function (res) {
    var info = res[0], lines = res[1];
    state.info = info;
    $('run-title').textContent = info.run + ' (' + info.kind + ', ' + info.species.length + ' species)';
    document.title = 'geocsp map: ' + info.run;
    var b = info.bbox;
    map.fitBounds([[b[1], b[0]], [b[3], b[2]]]);
    L.polyline(lines.border, { color: '#777', weight: 0.6, interactive: false, renderer: linesRenderer }).addTo(map);
    L.polyline(lines.coast, { color: '#222', weight: 1, interactive: false, renderer: linesRenderer }).addTo(map);
    map.attributionControl.setPrefix('Leaflet');
    map.attributionControl.addAttribution('outlines: Natural Earth (public domain)');
    if (STATIC) {
      $('server-only').style.display = 'none';
      if (info.date) $('static-date').textContent = 'date: ' + info.date;
    } else {
      $('res').value = info.res;
      $('date').style.display = $('date-label').style.display = info.has_time ? '' : 'none';
    }
    if (!info.has_embedding) $('layer-embedding').disabled = true;
    $('attribution').textContent = lines.attribution || '';
    $('species-search').addEventListener('input', search);
    $('species-search').addEventListener('keydown', function (e) {
      if (e.key === 'Enter' && $('matches').firstChild && $('matches').firstChild.className !== 'none') {
        select($('matches').firstChild.textContent);
      }
    });
    $('opacity').addEventListener('input', function () {
      $('opacity-value').textContent = (+this.value).toFixed(2);
      ['range', 'richness', 'embedding'].forEach(function (k) { if (state[k]) state[k].setOpacity(+$('opacity').value); });
    });
    $('threshold').addEventListener('input', function () {
      $('threshold-value').textContent = (+this.value).toFixed(2);
      if (state.range && state.rangeGrid) state.range = overlay(state.range, state.rangeGrid, LUT_RANGE, +this.value, 'ranges');
    });
    $('layer-range').addEventListener('change', drawRange);
    $('layer-richness').addEventListener('change', function () { drawLayer('richness', LUT_RICH, 'richness'); });
    $('layer-embedding').addEventListener('change', function () { drawLayer('embedding', null, 'embedding'); });
    $('layer-records').addEventListener('change', drawRecords);
    $('res').addEventListener('change', redrawAll);
    $('date').addEventListener('change', redrawAll);
    map.on('click', showPoint);
    return drawRecords();
  }).then(function () {
    document.body.dataset.ready = '1';
  }).catch(function (e) { status(e.message); });
})();
