// Switchboard dashboard: polls data.json and draws small SVG charts. No libraries, no network beyond this server.
// After each render every chart carries data-points (how many data points it drew) and the body carries
// data-loaded="true", data-updates (renders so far) and data-tickets (tickets started), so a headless browser
// test can check that the charts have data.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var script = document.getElementById("dashboard-script");
  var BASE = (script && script.getAttribute("data-base")) || "";
  var POLL_MS = 3000;
  var COLORS = { blue: "#3867d6", teal: "#20a39e", red: "#d64545", amber: "#e0a100", violet: "#7b5ea7", muted: "#6b7385" };

  function el(name, attrs, text) {
    var node = document.createElementNS(NS, name);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clear(svg) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
  }

  function size(svg) {
    var box = svg.getBoundingClientRect();
    return { w: Math.max(box.width || 0, 360), h: Math.max(box.height || 0, 200) };
  }

  function fmt(v, digits) {
    if (v === null || v === undefined || isNaN(v)) return "–";
    if (Math.abs(v) >= 1000) return (v / 1000).toFixed(1) + "k";
    return Number(v).toFixed(digits === undefined ? 0 : digits);
  }

  function empty(svg, message) {
    clear(svg);
    var s = size(svg);
    svg.appendChild(el("text", { x: s.w / 2, y: s.h / 2, "text-anchor": "middle", class: "muted" }, message));
    svg.setAttribute("data-points", "0");
  }

  // Horizontal bars: items [{label, values: [v1, v2?]}], series [{name, color}].
  function bars(svg, items, series, digits) {
    if (!items.length) return empty(svg, "no data yet");
    clear(svg);
    var top = 18, rowH = 8 + 12 * series.length;
    svg.style.height = Math.max(200, top + items.length * rowH + 6) + "px";  // every row readable
    var s = size(svg), left = 130, right = 56;
    var max = 0;
    items.forEach(function (it) { it.values.forEach(function (v) { if (v > max) max = v; }); });
    max = max || 1;
    var barH = (rowH - 4) / series.length, points = 0;
    series.forEach(function (sr, j) {
      svg.appendChild(el("rect", { x: left + j * 90, y: 2, width: 10, height: 10, fill: sr.color }));
      svg.appendChild(el("text", { x: left + j * 90 + 14, y: 11 }, sr.name));
    });
    items.forEach(function (it, i) {
      var y = top + i * rowH;
      svg.appendChild(el("text", { x: left - 6, y: y + rowH / 2 + 4, "text-anchor": "end" }, it.label));
      it.values.forEach(function (v, j) {
        var w = Math.max(0, (s.w - left - right) * (v || 0) / max);
        var bar = el("rect", { x: left, y: y + j * barH + 1, width: w, height: Math.max(barH - 1, 2),
                               fill: series[j].color, "data-value": v === null ? "" : v });
        svg.appendChild(bar);
        svg.appendChild(el("text", { x: left + w + 4, y: y + j * barH + barH - 1, class: "muted" }, fmt(v, digits)));
        points += 1;
      });
    });
    svg.setAttribute("data-points", String(points));
  }

  // Lines over the timeline: rows [{t, ...}], series [{key, name, color}] (values may be fractions via fn).
  function lines(svg, rows, series, yMax) {
    if (!rows.length) return empty(svg, "no data yet");
    clear(svg);
    var s = size(svg), left = 36, right = 10, top = 18, bottom = 20;
    var max = yMax || 0;
    if (!yMax) rows.forEach(function (r) { series.forEach(function (sr) { max = Math.max(max, sr.value(r) || 0); }); });
    max = max || 1;
    var x = function (i) { return left + (s.w - left - right) * (rows.length === 1 ? 0.5 : i / (rows.length - 1)); };
    var y = function (v) { return s.h - bottom - (s.h - top - bottom) * (v / max); };
    svg.appendChild(el("line", { x1: left, y1: y(0), x2: s.w - right, y2: y(0), class: "axis" }));
    svg.appendChild(el("text", { x: left - 4, y: y(max) + 4, "text-anchor": "end", class: "muted" }, fmt(max, yMax ? 1 : 0)));
    svg.appendChild(el("text", { x: left - 4, y: y(0) + 4, "text-anchor": "end", class: "muted" }, "0"));
    var first = new Date(rows[0].t * 1000), last = new Date(rows[rows.length - 1].t * 1000);
    svg.appendChild(el("text", { x: left, y: s.h - 4, class: "muted" }, first.toLocaleTimeString()));
    svg.appendChild(el("text", { x: s.w - right, y: s.h - 4, "text-anchor": "end", class: "muted" }, last.toLocaleTimeString()));
    var points = 0;
    series.forEach(function (sr, j) {
      var d = rows.map(function (r, i) { return (i ? "L" : "M") + x(i).toFixed(1) + "," + y(sr.value(r) || 0).toFixed(1); });
      svg.appendChild(el("path", { d: d.join(" "), fill: "none", stroke: sr.color, "stroke-width": 2 }));
      rows.forEach(function (r, i) {
        var v = sr.value(r);
        if (v) {
          svg.appendChild(el("circle", { cx: x(i), cy: y(v), r: 2.5, fill: sr.color, "data-value": v }));
          points += 1;
        }
      });
      svg.appendChild(el("rect", { x: left + 8 + j * 110, y: 2, width: 10, height: 10, fill: sr.color }));
      svg.appendChild(el("text", { x: left + 22 + j * 110, y: 11 }, sr.name));
    });
    svg.setAttribute("data-points", String(points));
  }

  function kpis(data) {
    var t = data.tickets, hr = data.hit_rates, c = data.cost;
    var cacheHits = 0, cacheAll = 0;
    Object.keys(hr.cache).forEach(function (k) { cacheHits += hr.cache[k].hits; cacheAll += hr.cache[k].hits + hr.cache[k].misses; });
    var esc = 0;
    Object.keys(t.escalations).forEach(function (k) { esc += t.escalations[k]; });
    var pct = function (v) { return v === null || v === undefined ? "–" : (100 * v).toFixed(1) + " %"; };
    var items = [
      ["Tickets", t.started],
      ["Completed", t.by_status.completed || 0],
      ["Human intervention", pct(t.human_intervention_rate)],
      ["Escalations", esc],
      ["Ticket p50", t.p50_ms === null ? "–" : fmt(t.p50_ms, 0) + " ms"],
      ["Ticket p95", t.p95_ms === null ? "–" : fmt(t.p95_ms, 0) + " ms"],
      ["Cost", "$" + Number(c.total_usd).toFixed(4)],
      ["Cache hit rate", pct(cacheAll ? cacheHits / cacheAll : null)],
      ["KB hit rate", pct(hr.knowledge.rate)],
      ["Alerts firing", data.alerts.firing.length]
    ];
    var box = document.getElementById("kpis");
    box.innerHTML = "";
    items.forEach(function (it) {
      var div = document.createElement("div");
      div.className = "kpi";
      div.setAttribute("data-kpi", it[0]);
      div.innerHTML = '<div class="label"></div><div class="value"></div>';
      div.firstChild.textContent = it[0];
      div.lastChild.textContent = String(it[1]);
      if (it[0] === "Alerts firing" && it[1] > 0) div.lastChild.className = "value firing";
      box.appendChild(div);
    });
  }

  function alerts(data) {
    var box = document.getElementById("alerts");
    var a = data.alerts;
    if (!a.rules.length && !a.recent.length) { box.innerHTML = '<span class="empty">no alert rules loaded yet</span>'; return; }
    var html = "<table><tr><th>rule</th><th>value</th><th>threshold</th><th>state</th></tr>";
    a.rules.forEach(function (r) {
      html += "<tr data-rule='" + r.rule + "'><td>" + r.rule + "</td><td>" + (r.value === null ? "–" : r.value) +
        "</td><td>" + r.threshold + "</td><td class='" + (r.firing ? "firing'>firing" : "ok'>ok") + "</td></tr>";
    });
    html += "</table>";
    if (a.recent.length) {
      html += "<h2 style='margin-top:12px'>Recent</h2><table>";
      a.recent.forEach(function (r) {
        html += "<tr class='alert-record'><td>" + new Date(r.ts * 1000).toLocaleString() + "</td><td class='" +
          (r.state === "firing" ? "firing" : "ok") + "'>" + r.state + "</td><td></td></tr>";
      });
      html += "</table>";
    }
    box.innerHTML = html;
    // Messages as text, never as HTML.
    var cells = box.querySelectorAll("tr.alert-record td:last-child");
    a.recent.forEach(function (r, i) { if (cells[i]) cells[i].textContent = r.message; });
  }

  function render(data) {
    kpis(data);
    var nodes = data.nodes.slice().sort(function (a, b) { return b.calls - a.calls; });
    lines(document.getElementById("chart-executions"), data.timeline, [
      { name: "tickets", color: COLORS.blue, value: function (r) { return r.tickets; } },
      { name: "needed a human", color: COLORS.amber, value: function (r) { return r.human; } },
      { name: "with an error", color: COLORS.red, value: function (r) { return r.errors; } }
    ]);
    bars(document.getElementById("chart-load"), nodes.map(function (n) { return { label: n.node, values: [n.calls] }; }),
      [{ name: "calls", color: COLORS.blue }]);
    bars(document.getElementById("chart-latency"), nodes.map(function (n) { return { label: n.node, values: [n.p50_ms, n.p95_ms] }; }),
      [{ name: "p50 ms", color: COLORS.teal }, { name: "p95 ms", color: COLORS.violet }], 1);
    bars(document.getElementById("chart-errors"), nodes.map(function (n) { return { label: n.node, values: [n.error_rate || 0] }; }),
      [{ name: "errors / call", color: COLORS.red }], 3);
    var byNode = data.cost.by_node, costItems = Object.keys(byNode).map(function (k) { return { label: k, values: [byNode[k]] }; });
    if (!costItems.length) costItems = nodes.map(function (n) { return { label: n.node, values: [0] }; });
    bars(document.getElementById("chart-cost"), costItems, [{ name: "USD", color: COLORS.teal }], 4);
    lines(document.getElementById("chart-human"), data.timeline, [
      { name: "human share", color: COLORS.amber, value: function (r) { return r.tickets ? r.human / r.tickets : 0; } }
    ], 1);
    var conf = (data.confidence.intent || []).map(function (b) { return { label: "≤ " + b.le, values: [b.count] }; });
    bars(document.getElementById("chart-confidence"), conf, [{ name: "tickets", color: COLORS.violet }]);
    alerts(data);
    var body = document.body;
    body.setAttribute("data-loaded", "true");
    body.setAttribute("data-updates", String(Number(body.getAttribute("data-updates") || 0) + 1));
    body.setAttribute("data-tickets", String(data.tickets.started));
    document.getElementById("status").textContent = "updated " + new Date(data.generated_at * 1000).toLocaleTimeString() +
      " · " + data.tickets.started + " tickets";
  }

  function poll() {
    fetch(BASE + "/data.json", { cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(render)
      .catch(function (e) {
        document.getElementById("status").textContent = "cannot load data: " + e.message;
        document.body.setAttribute("data-error", String(e.message));
      })
      .then(function () { setTimeout(poll, POLL_MS); });
  }

  poll();
})();
