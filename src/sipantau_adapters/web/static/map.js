/*
 * The desk's map (sipantau_adapters.web). Plain ES2019, no build step, no inline script:
 * load it after leaflet.js with <script src=".../map.js" defer>.
 *
 * The page provides:
 *   <div id="map" data-src="/map/data.json?region=16.73"
 *        data-labels='{"status": {"silent": "Silent"}, ...}'     (optional, merged over
 *        data-tps-base="/tps/">                                    the Indonesian defaults)
 *   <div id="risk-filter"></div>        (optional: filled with a checkbox per risk level)
 *   <table id="risk-summary"></table>   (optional: filled with the risk table)
 *
 * It fetches data-src (same origin, with credentials: the JSON of
 * sipantau_adapters.web.mapdata.map_data) and draws it with Leaflet without any tile
 * layer: the kecamatan outlines are the background, the TPS circle markers coloured by
 * status (an overlay, on) or by risk level (an overlay, off), a layer control, a legend,
 * a popup per TPS built from DOM nodes. #map gets data-state="loading", then "ready" or
 * "error".
 */
(function () {
  "use strict";

  var STATUSES = ["silent", "reported", "flagged", "counted"];
  var LEVELS = ["low", "medium", "high"];
  var STATUS_COLOURS = {
    silent: "#b0b0b0",
    reported: "#3b78c2",
    flagged: "#d7301f",
    counted: "#1a9850",
  };
  var RISK_COLOURS = { low: "#fee391", medium: "#fb8c3c", high: "#99000d" };

  var DEFAULT_LABELS = {
    status: {
      silent: "Belum lapor",
      reported: "Sudah lapor",
      flagged: "Tally bermasalah",
      counted: "Tally terhitung",
    },
    risk: { low: "Rendah", medium: "Sedang", high: "Tinggi" },
    indicators: {
      keamanan: "Keamanan",
      aksesibilitas: "Aksesibilitas",
      kejadian_lalu: "Kejadian pemilu lalu",
      logistik: "Logistik",
      jaringan: "Jaringan",
    },
    layers: {
      outlines: "Batas kecamatan",
      status: "TPS menurut status",
      risk: "TPS menurut kerawanan",
    },
    legend: { status: "Status TPS", risk: "Kerawanan TPS" },
    filter: { title: "Tampilkan kerawanan" },
    popup: {
      status: "Status",
      risk: "Kerawanan",
      indicators: "Indikator",
      incidents: "Kejadian",
      district: "Kecamatan",
      none: "tidak ada",
      open: "Buka halaman TPS",
    },
    table: {
      level: "Kerawanan",
      stations: "TPS",
      stations_with_incidents: "TPS dengan kejadian",
      share: "% TPS dengan kejadian",
      incidents: "Kejadian",
      flagged: "Tally bermasalah",
      counted: "Tally terhitung",
      silent: "Belum lapor",
      total: "Jumlah",
    },
    unplaced: "TPS tanpa koordinat",
    omitted: "TPS tidak digambar (terlalu banyak): buka peta kota/kabupaten",
    error: "Peta tidak dapat dimuat",
  };

  function merge(base, extra) {
    var out = {};
    Object.keys(base).forEach(function (key) {
      out[key] = base[key];
    });
    if (!extra || typeof extra !== "object") {
      return out;
    }
    Object.keys(extra).forEach(function (key) {
      var value = extra[key];
      if (value && typeof value === "object" && base[key] && typeof base[key] === "object") {
        out[key] = merge(base[key], value);
      } else if (typeof value === "string") {
        out[key] = value;
      }
    });
    return out;
  }

  function readLabels(el) {
    var raw = el.getAttribute("data-labels");
    if (!raw) {
      return DEFAULT_LABELS;
    }
    try {
      return merge(DEFAULT_LABELS, JSON.parse(raw));
    } catch (e) {
      return DEFAULT_LABELS;
    }
  }

  function text(map, key) {
    return Object.prototype.hasOwnProperty.call(map, key) ? map[key] : key;
  }

  function node(tag, className, content) {
    var el = document.createElement(tag);
    if (className) {
      el.className = className;
    }
    if (content !== undefined && content !== null) {
      el.textContent = String(content);
    }
    return el;
  }

  function clear(el) {
    while (el.firstChild) {
      el.removeChild(el.firstChild);
    }
  }

  function number(n, digits) {
    var lang = document.documentElement.lang || "id";
    var opts = digits ? { minimumFractionDigits: digits, maximumFractionDigits: digits } : {};
    try {
      return Number(n).toLocaleString(lang, opts);
    } catch (e) {
      return digits ? Number(n).toFixed(digits) : String(n);
    }
  }

  // -- the popup of a TPS ---------------------------------------------------------------

  function popupContent(props, labels, tpsBase) {
    var box = node("div", "map-popup");
    box.appendChild(node("strong", "map-popup-label", props.label));
    if (props.name) {
      box.appendChild(node("div", "map-popup-name", props.name));
    }
    var list = node("dl", "map-popup-facts");
    function fact(term, value, className) {
      list.appendChild(node("dt", null, term));
      var dd = node("dd", className || null);
      if (value instanceof Node) {
        dd.appendChild(value);
      } else {
        dd.textContent = String(value);
      }
      list.appendChild(dd);
    }
    if (props.district) {
      fact(
        labels.popup.district,
        props.district_name ? props.district_name + " (" + props.district + ")" : props.district
      );
    }
    fact(labels.popup.status, text(labels.status, props.status), "map-status-" + props.status);
    fact(labels.popup.risk, text(labels.risk, props.risk_level), "map-risk-" + props.risk_level);
    var indicators = props.risk_indicators || [];
    if (indicators.length) {
      var ul = node("ul", "map-popup-indicators");
      indicators.forEach(function (name) {
        ul.appendChild(node("li", null, text(labels.indicators, name)));
      });
      fact(labels.popup.indicators, ul);
    } else {
      fact(labels.popup.indicators, labels.popup.none);
    }
    fact(labels.popup.incidents, number(props.incidents || 0));
    box.appendChild(list);
    var link = node("a", "map-popup-link", labels.popup.open);
    link.href = tpsBase + encodeURIComponent(props.code);
    box.appendChild(link);
    return box;
  }

  // -- the legend -----------------------------------------------------------------------

  function legendSection(title, keys, colours, names, counts) {
    var section = node("div", "map-legend-section");
    section.appendChild(node("div", "map-legend-title", title));
    var ul = node("ul", "map-legend-items");
    keys.forEach(function (key) {
      var li = node("li", "map-legend-item");
      var swatch = node("span", "map-swatch");
      swatch.style.backgroundColor = colours[key];
      li.appendChild(swatch);
      li.appendChild(node("span", "map-legend-name", text(names, key)));
      if (counts) {
        li.appendChild(node("span", "map-legend-count", number(counts[key] || 0)));
      }
      ul.appendChild(li);
    });
    section.appendChild(ul);
    return section;
  }

  // -- the risk table -------------------------------------------------------------------

  function fillRiskTable(table, rows, labels) {
    var cols = [
      "stations",
      "stations_with_incidents",
      "share",
      "incidents",
      "flagged",
      "counted",
      "silent",
    ];
    clear(table);
    table.classList.add("map-risk-summary");
    var head = node("thead");
    var tr = node("tr");
    tr.appendChild(node("th", null, labels.table.level));
    cols.forEach(function (col) {
      tr.appendChild(node("th", null, labels.table[col]));
    });
    head.appendChild(tr);
    table.appendChild(head);
    var total = {};
    var body = node("tbody");
    rows.forEach(function (row) {
      var line = node("tr", "map-risk-row-" + row.level);
      line.setAttribute("data-level", row.level);
      var th = node("th", null, text(labels.risk, row.level));
      th.setAttribute("scope", "row");
      line.appendChild(th);
      cols.forEach(function (col) {
        line.appendChild(cell(row, col));
        if (col !== "share") {
          total[col] = (total[col] || 0) + (row[col] || 0);
        }
      });
      body.appendChild(line);
    });
    table.appendChild(body);
    var foot = node("tfoot");
    var sum = node("tr");
    var label = node("th", null, labels.table.total);
    label.setAttribute("scope", "row");
    sum.appendChild(label);
    cols.forEach(function (col) {
      sum.appendChild(cell(total, col));
    });
    foot.appendChild(sum);
    table.appendChild(foot);
  }

  function cell(row, col) {
    if (col === "share") {
      var share = row.stations ? (100 * row.stations_with_incidents) / row.stations : 0;
      var td = node("td", "map-num", number(share, 1));
      td.setAttribute("data-col", "share");
      return td;
    }
    var td = node("td", "map-num", number(row[col] || 0));
    td.setAttribute("data-col", col);
    return td;
  }

  // -- the map --------------------------------------------------------------------------

  function draw(el, data, labels) {
    var tpsBase = el.getAttribute("data-tps-base") || "/tps/";
    clear(el);
    var map = L.map(el, { zoomSnap: 0.25, preferCanvas: false });
    map.createPane("riskPane").style.zIndex = "450";
    map.createPane("statusPane").style.zIndex = "460";

    var outlines = L.geoJSON(data.outlines, {
      interactive: false,
      style: function () {
        return {
          color: "#555",
          weight: 1.5,
          dashArray: "4 3",
          fillColor: "#e8e4d8",
          fillOpacity: 0.55,
        };
      },
      onEachFeature: function (feature, layer) {
        var props = feature.properties || {};
        if ((data.outlines.features || []).length <= 40) {
          layer.bindTooltip(props.name || props.code, {
            permanent: true,
            direction: "center",
            className: "map-district-label",
            interactive: false,
          });
        }
      },
    });

    var statusLayer = L.layerGroup();
    var riskLayer = L.layerGroup();
    var markers = [];
    (data.stations.features || []).forEach(function (feature) {
      var props = feature.properties;
      var lonlat = feature.geometry.coordinates;
      var at = [lonlat[1], lonlat[0]];
      var popup = function () {
        return popupContent(props, labels, tpsBase);
      };
      var byStatus = L.circleMarker(at, {
        pane: "statusPane",
        radius: 6,
        weight: 1,
        color: "#2b2b2b",
        fillColor: STATUS_COLOURS[props.status] || "#000",
        fillOpacity: 0.95,
        className: [
          "map-tps",
          "map-tps-" + props.code,
          "map-status-" + props.status,
          "map-risk-" + props.risk_level,
        ].join(" "),
      }).bindPopup(popup);
      var byRisk = L.circleMarker(at, {
        pane: "riskPane",
        radius: 9,
        weight: 1,
        color: "#2b2b2b",
        fillColor: RISK_COLOURS[props.risk_level] || "#000",
        fillOpacity: 0.9,
        className: "map-tps-risk map-tps-risk-" + props.code + " map-risk-" + props.risk_level,
      }).bindPopup(popup);
      markers.push({ level: props.risk_level, byStatus: byStatus, byRisk: byRisk });
      byStatus.addTo(statusLayer);
      byRisk.addTo(riskLayer);
    });

    outlines.addTo(map);
    statusLayer.addTo(map);
    var base = {};
    base[labels.layers.outlines] = outlines;
    var overlays = {};
    overlays[labels.layers.status] = statusLayer;
    overlays[labels.layers.risk] = riskLayer;
    L.control.layers(base, overlays, { collapsed: false, position: "topright" }).addTo(map);

    var legend = L.control({ position: "bottomright" });
    var sections = {};
    legend.onAdd = function () {
      var box = node("div", "map-legend leaflet-bar");
      sections.status = legendSection(
        labels.legend.status,
        STATUSES,
        STATUS_COLOURS,
        labels.status,
        data.totals
      );
      sections.risk = legendSection(
        labels.legend.risk,
        LEVELS,
        RISK_COLOURS,
        labels.risk,
        riskCounts(data.risk_summary)
      );
      box.appendChild(sections.status);
      box.appendChild(sections.risk);
      if (data.totals && data.totals.unplaced) {
        box.appendChild(
          node("div", "map-legend-unplaced", labels.unplaced + ": " + number(data.totals.unplaced))
        );
      }
      if (data.totals && data.totals.omitted) {
        box.appendChild(
          node("div", "map-legend-omitted", labels.omitted + ": " + number(data.totals.omitted))
        );
      }
      L.DomEvent.disableClickPropagation(box);
      return box;
    };
    legend.addTo(map);
    function showLegend() {
      sections.status.hidden = !map.hasLayer(statusLayer);
      sections.risk.hidden = !map.hasLayer(riskLayer);
    }
    map.on("overlayadd overlayremove", showLegend);
    showLegend();

    var filter = document.getElementById("risk-filter");
    if (filter) {
      fillFilter(filter, markers, statusLayer, riskLayer, data.risk_summary, labels);
    }
    var table = document.getElementById("risk-summary");
    if (table && data.risk_summary) {
      fillRiskTable(table, data.risk_summary, labels);
    }

    if (data.bounds) {
      map.fitBounds(data.bounds, { padding: [16, 16] });
    } else {
      map.setView([-2.5, 118], 5);
    }
    return map;
  }

  function riskCounts(rows) {
    var out = {};
    (rows || []).forEach(function (row) {
      out[row.level] = row.stations;
    });
    return out;
  }

  function fillFilter(box, markers, statusLayer, riskLayer, rows, labels) {
    clear(box);
    box.classList.add("map-risk-filter");
    var fieldset = node("fieldset");
    fieldset.appendChild(node("legend", null, labels.filter.title));
    var counts = riskCounts(rows);
    LEVELS.forEach(function (level) {
      var label = node("label", "map-filter-" + level);
      var input = node("input");
      input.type = "checkbox";
      input.checked = true;
      input.name = "risk";
      input.value = level;
      input.addEventListener("change", function () {
        markers.forEach(function (m) {
          if (m.level !== level) {
            return;
          }
          if (input.checked) {
            statusLayer.addLayer(m.byStatus);
            riskLayer.addLayer(m.byRisk);
          } else {
            statusLayer.removeLayer(m.byStatus);
            riskLayer.removeLayer(m.byRisk);
          }
        });
      });
      var swatch = node("span", "map-swatch");
      swatch.style.backgroundColor = RISK_COLOURS[level];
      label.appendChild(input);
      label.appendChild(swatch);
      label.appendChild(
        node("span", null, text(labels.risk, level) + " (" + number(counts[level] || 0) + ")")
      );
      fieldset.appendChild(label);
    });
    box.appendChild(fieldset);
  }

  function start() {
    var el = document.getElementById("map");
    if (!el || typeof L === "undefined") {
      return;
    }
    var labels = readLabels(el);
    var src = el.getAttribute("data-src");
    el.setAttribute("data-state", "loading");
    fetch(src, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(String(response.status));
        }
        return response.json();
      })
      .then(function (data) {
        draw(el, data, labels);
        el.setAttribute("data-state", "ready");
      })
      .catch(function (error) {
        clear(el);
        el.appendChild(node("p", "map-error", labels.error + " (" + error.message + ")"));
        el.setAttribute("data-state", "error");
      });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
