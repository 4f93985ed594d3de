/* KPI dashboard: filters → GET /console/api/kpi → tiles and charts, together.
 *
 * Everything from the server goes on the page with textContent (never innerHTML); charts are
 * drawn by Chart.js (vendor/chart.umd.min.js, served by the hub: no CDN). No inline script,
 * no eval (the console's CSP allows scripts from this origin only). A KPI without data is
 * shown as "n/a", never 0; its change against the previous period too.
 * For tests: <body data-loaded="N"> counts finished loads and data-query holds the query of
 * the last one shown; each chart box carries
 * data-summary (its datasets as JSON), each tile data-kpi/data-value.
 */
(function () {
  "use strict";

  var NA = "n/a";
  var nf1 = new Intl.NumberFormat("es-ES", { maximumFractionDigits: 1, minimumFractionDigits: 1 });
  var nf2 = new Intl.NumberFormat("es-ES", { maximumFractionDigits: 2, minimumFractionDigits: 2 });
  var nf0 = new Intl.NumberFormat("es-ES", { maximumFractionDigits: 0 });
  var LABELS = {
    channel: { web: "Web", telegram: "Telegram", api: "API" },
    language: { es: "Español", en: "Inglés" },
    case_type: { warranty: "Garantía", "return": "Devolución", exchange: "Cambio",
                 support: "Soporte" },
    reason: { request_human: "Pidió una persona", complaint: "Queja", fallback: "No entendido",
              not_solved: "No resuelto", verification_failed: "Verificación fallida",
              detractor_followup: "Seguimiento de detractor", "": "Sin motivo" }
  };
  var COLORS = ["#1f5fbf", "#2f9e5b", "#d08a00", "#b3261e", "#7a4fbf", "#0f8a8a", "#8a6d1f",
                "#5f6b7a"];
  var FIELDS = ["since", "until", "group", "channel", "language", "case_type", "team", "agent"];
  var state = { options: null, charts: {}, loads: 0, seq: 0, lastQuery: "" };

  function $(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function getJSON(path) {
    return ConsoleApi.call(path, null, { failure: "No se ha podido cargar" });
  }

  function say(text, bad) {
    var node = $("status");
    node.textContent = text;
    node.className = "dash-status" + (bad ? " error" : "");
  }

  // --- dates (whole UTC days; the API's "until" is exclusive, the form's "hasta" inclusive)

  function shiftDay(iso, days) {
    var p = iso.split("-");
    var d = new Date(Date.UTC(+p[0], +p[1] - 1, +p[2] + days));
    return d.toISOString().slice(0, 10);
  }

  function bucketLabel(key, unit) {
    if (unit === "month") {
      var months = ["ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic"];
      return months[+key.slice(5, 7) - 1] + " " + key.slice(0, 4);
    }
    return (unit === "week" ? "sem. " : "") + key.slice(8, 10) + "/" + key.slice(5, 7);
  }

  // --- formatting ---------------------------------------------------------------------------

  function isNum(v) { return typeof v === "number" && isFinite(v); }
  function pctText(v) { return isNum(v) ? nf1.format(v) + " %" : NA; }
  function minutes(s) { return isNum(s) ? s / 60 : null; }
  function hours(s) { return isNum(s) ? s / 3600 : null; }

  // One tile per KPI: how to read it from a report, show it, and which change is better.
  var TILES = [
    { key: "conversations", label: "Conversaciones", get: function (r) { return r.conversations; },
      fmt: function (v) { return nf0.format(v); }, delta: "count", better: 0,
      note: function (r) {
        return r.demo_conversations ? nf0.format(r.demo_conversations) + " de demostración" : "";
      } },
    { key: "cases", label: "Casos", get: function (r) { return r.cases; },
      fmt: function (v) { return nf0.format(v); }, delta: "count", better: 0 },
    { key: "csat", label: "CSAT (% de 4–5)", get: function (r) { return r.csat_pct; },
      fmt: pctText, delta: "pts", better: 1 },
    { key: "nps", label: "NPS (−100 a +100)", get: function (r) { return r.nps; },
      fmt: function (v) { return nf1.format(v); }, delta: "abs", better: 1 },
    { key: "ces_mean", label: "CES medio (1–7)", get: function (r) { return r.ces.mean; },
      fmt: function (v) { return nf2.format(v); }, delta: "abs2", better: 1,
      note: function (r) { return r.ces.answers ? r.ces.answers + " respuestas" : ""; } },
    { key: "ces_easy", label: "CES fácil (% de 5–7)", get: function (r) { return r.ces.pct_5_to_7; },
      fmt: pctText, delta: "pts", better: 1 },
    { key: "fcr", label: "Resolución al primer contacto", get: function (r) { return r.fcr_pct; },
      fmt: pctText, delta: "pts", better: 1 },
    { key: "containment_confirmed", label: "Contención confirmada",
      get: function (r) { return r.containment_confirmed_pct; }, fmt: pctText, delta: "pts", better: 1,
      note: function () { return "el cliente dijo que se resolvió"; } },
    { key: "containment_assumed", label: "Contención supuesta",
      get: function (r) { return r.containment_assumed_pct; }, fmt: pctText, delta: "pts", better: 1,
      note: function () { return "sin persona ni vuelta en 72 h"; } },
    { key: "escalation", label: "Escalado a una persona", get: function (r) { return r.escalation_rate_pct; },
      fmt: pctText, delta: "pts", better: -1 },
    { key: "abandonment", label: "Abandono", get: function (r) { return r.abandonment_pct; },
      fmt: pctText, delta: "pts", better: -1 },
    { key: "first_response", label: "Primera respuesta (mediana)",
      get: function (r) { return minutes(r.first_response_time.median_s); },
      fmt: function (v) { return nf1.format(v) + " min"; }, delta: "min", better: -1,
      note: function (r) {
        var d = r.first_response_time;
        return d.count ? "p90 " + nf1.format(d.p90_s / 60) + " min · " + d.count + " escalados" : "";
      } },
    { key: "handling", label: "Gestión del agente (mediana)",
      get: function (r) { return minutes(r.handling_time.median_s); },
      fmt: function (v) { return nf1.format(v) + " min"; }, delta: "min", better: -1,
      note: function (r) {
        var d = r.handling_time;
        return d.count ? "p90 " + nf1.format(d.p90_s / 60) + " min" : "";
      } },
    { key: "resolution", label: "Resolución de casos (mediana)",
      get: function (r) { return hours(r.resolution_time_all.median_s); },
      fmt: function (v) { return nf1.format(v) + " h"; }, delta: "h", better: -1,
      note: function (r) {
        var d = r.resolution_time_all;
        return d.count ? "p90 " + nf1.format(d.p90_s / 3600) + " h · " + d.count + " resueltos" : "";
      } },
    { key: "reopen", label: "Casos reabiertos", get: function (r) { return r.reopen_rate_pct; },
      fmt: pctText, delta: "pts", better: -1 },
    { key: "survey_response", label: "Respuesta a la encuesta",
      get: function (r) { return r.survey_response_rate_pct; }, fmt: pctText, delta: "pts", better: 1 },
    { key: "sla_first_response", label: "SLA primera respuesta",
      get: function (r) { return r.sla.first_response_pct; }, fmt: pctText, delta: "pts", better: 1,
      note: function (r) { return "en ≤ " + r.sla.first_response_minutes + " min"; } },
    { key: "sla_resolution", label: "SLA resolución",
      get: function (r) { return r.sla.resolution_pct; }, fmt: pctText, delta: "pts", better: 1,
      note: function (r) { return "en ≤ " + r.sla.resolution_hours + " h"; } },
    { key: "csat_bot", label: "CSAT con el bot", get: function (r) { return r.csat_bot_pct; },
      fmt: pctText, delta: "pts", better: 1 },
    { key: "csat_human", label: "CSAT con una persona", get: function (r) { return r.csat_human_pct; },
      fmt: pctText, delta: "pts", better: 1 }
  ];

  function deltaText(tile, cur, prev) {
    if (!isNum(cur) || !isNum(prev)) return { text: "vs. periodo anterior: " + NA, cls: "" };
    var d = cur - prev;
    var sign = d > 0 ? "+" : d < 0 ? "−" : "±";
    var abs = Math.abs(d);
    var unit = { pts: nf1.format(abs) + " pts", abs: nf1.format(abs), abs2: nf2.format(abs),
                 min: nf1.format(abs) + " min", h: nf1.format(abs) + " h",
                 count: nf0.format(abs) }[tile.delta];
    var cls = "";
    if (d !== 0 && tile.better !== 0) cls = (d > 0) === (tile.better > 0) ? "better" : "worse";
    return { text: "vs. periodo anterior: " + sign + unit, cls: cls };
  }

  function renderTiles(data) {
    var box = $("tiles");
    clear(box);
    TILES.forEach(function (tile) {
      var cur = tile.get(data.current);
      var prev = tile.get(data.previous);
      var node = el("div", "tile");
      node.setAttribute("data-kpi", tile.key);
      node.setAttribute("data-value", isNum(cur) ? String(cur) : NA);
      node.appendChild(el("span", "tile-label", tile.label));
      var value = el("span", "tile-value" + (isNum(cur) ? "" : " na"),
                     isNum(cur) ? tile.fmt(cur) : NA);
      if (!isNum(cur)) value.title = "Sin datos en este periodo";
      node.appendChild(value);
      var delta = deltaText(tile, cur, prev);
      node.appendChild(el("span", "tile-delta " + delta.cls, delta.text));
      var note = tile.note ? tile.note(data.current) : "";
      if (note) node.appendChild(el("span", "tile-note", note));
      box.appendChild(node);
    });
  }

  // --- charts ---------------------------------------------------------------------------------

  function makeChart(id, type, extra) {
    var canvas = $(id);
    var options = {
      responsive: true, maintainAspectRatio: false, animation: false,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
      scales: { y: { beginAtZero: true } }
    };
    Object.keys(extra || {}).forEach(function (k) { options[k] = extra[k]; });
    state.charts[id] = new window.Chart(canvas, { type: type, data: { labels: [], datasets: [] },
                                                  options: options });
  }

  function setChart(id, labels, datasets) {
    var chart = state.charts[id];
    datasets.forEach(function (ds, i) {
      var color = ds.color || COLORS[i % COLORS.length];
      ds.borderColor = color;
      ds.backgroundColor = ds.type === "line" || chart.config.type === "line" ? color : color + "cc";
      ds.spanGaps = false;
      delete ds.color;
    });
    chart.data.labels = labels;
    chart.data.datasets = datasets;
    chart.update();
    var box = chart.canvas.parentNode;
    var any = datasets.some(function (ds) {
      return ds.data.some(function (v) { return isNum(v) && v !== 0; });
    });
    box.classList.toggle("empty", !any);
    box.setAttribute("data-summary", JSON.stringify(datasets.map(function (ds) {
      return { label: ds.label, data: ds.data };
    })));
  }

  function initCharts() {
    var stacked = { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } };
    makeChart("chart-nps", "bar", {
      scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, title: { display: true, text: "respuestas" } },
                nps: { position: "right", min: -100, max: 100, grid: { drawOnChartArea: false },
                       title: { display: true, text: "NPS" } } } });
    makeChart("chart-nps-dist", "bar");
    makeChart("chart-effort-dist", "bar");
    makeChart("chart-ces", "line", {
      scales: { y: { min: 1, max: 7, title: { display: true, text: "CES medio" } },
                pct: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false },
                       title: { display: true, text: "CSAT %" } } } });
    makeChart("chart-containment", "line", { scales: { y: { min: 0, max: 100 } } });
    makeChart("chart-escalation", "bar", stacked);
    makeChart("chart-abandonment", "line", { scales: { y: { min: 0, max: 100 } } });
    makeChart("chart-frt", "line");
    makeChart("chart-resolution", "bar");
    makeChart("chart-resolution-time", "line");
    makeChart("chart-sla", "line", { scales: { y: { min: 0, max: 100 } } });
    makeChart("chart-csat-who", "line", { scales: { y: { min: 0, max: 100 } } });
  }

  function sumRange(dist, from, to) {
    var n = 0;
    for (var v = from; v <= to; v++) n += dist[String(v)] || 0;
    return n;
  }

  function round1(v) { return isNum(v) ? Math.round(v * 10) / 10 : null; }

  function renderCharts(data) {
    var unit = data.group;
    var pts = data.series;
    var labels = pts.map(function (p) { return bucketLabel(p.bucket, unit); });
    function col(get) { return pts.map(function (p) { var v = get(p); return isNum(v) ? v : null; }); }

    setChart("chart-nps", labels, [
      { label: "Promotores (9–10)", data: col(function (p) { return sumRange(p.distributions.nps, 9, 10); }), color: "#2f9e5b" },
      { label: "Pasivos (7–8)", data: col(function (p) { return sumRange(p.distributions.nps, 7, 8); }), color: "#d08a00" },
      { label: "Detractores (0–6)", data: col(function (p) { return sumRange(p.distributions.nps, 0, 6); }), color: "#b3261e" },
      { label: "NPS", type: "line", yAxisID: "nps", order: -1, data: col(function (p) { return p.nps; }), color: "#1f5fbf" }
    ]);
    var dist = data.current.distributions;
    var npsKeys = Object.keys(dist.nps);
    setChart("chart-nps-dist", npsKeys, [
      { label: "Respuestas NPS", data: npsKeys.map(function (k) { return dist.nps[k]; }) }]);
    var effortKeys = ["1", "2", "3", "4", "5", "6", "7"];
    setChart("chart-effort-dist", effortKeys, [
      { label: "CES (1 muy difícil – 7 muy fácil)", data: effortKeys.map(function (k) { return dist.ces[k] || 0; }) },
      { label: "CSAT (1–5)", data: effortKeys.map(function (k) { return k in dist.csat ? dist.csat[k] : null; }) }]);
    setChart("chart-ces", labels, [
      { label: "CES medio", data: col(function (p) { return p.ces.mean; }) },
      { label: "CSAT %", yAxisID: "pct", data: col(function (p) { return p.csat_pct; }) }]);
    setChart("chart-containment", labels, [
      { label: "Confirmada", data: col(function (p) { return p.containment_confirmed_pct; }), color: "#2f9e5b" },
      { label: "Supuesta", data: col(function (p) { return p.containment_assumed_pct; }), color: "#1f5fbf" }]);
    var reasons = {};
    pts.forEach(function (p) { Object.keys(p.escalation_reasons).forEach(function (r) { reasons[r] = 1; }); });
    setChart("chart-escalation", labels, Object.keys(reasons).sort().map(function (r) {
      return { label: LABELS.reason[r] || r,
               data: col(function (p) { return p.escalation_reasons[r] || 0; }) };
    }));
    setChart("chart-abandonment", labels, [
      { label: "Abandono %", data: col(function (p) { return p.abandonment_pct; }), color: "#b3261e" }]);
    setChart("chart-frt", labels, [
      { label: "Mediana", data: col(function (p) { return round1(minutes(p.first_response_time.median_s)); }) },
      { label: "p90", data: col(function (p) { return round1(minutes(p.first_response_time.p90_s)); }) }]);
    var types = Object.keys(data.current.resolution_time);
    setChart("chart-resolution", types.map(function (t) { return LABELS.case_type[t] || t; }), [
      { label: "Mediana (h)", data: types.map(function (t) { return round1(hours(data.current.resolution_time[t].median_s)); }) },
      { label: "p90 (h)", data: types.map(function (t) { return round1(hours(data.current.resolution_time[t].p90_s)); }) }]);
    var allTypes = {};
    pts.forEach(function (p) { Object.keys(p.resolution_time).forEach(function (t) { allTypes[t] = 1; }); });
    setChart("chart-resolution-time", labels, Object.keys(allTypes).sort().map(function (t) {
      return { label: LABELS.case_type[t] || t, data: col(function (p) {
        var d = p.resolution_time[t];
        return d ? round1(hours(d.median_s)) : null;
      }) };
    }));
    var sla = data.current.sla;
    $("sla-caption").textContent = "Cumplimiento de SLA (%): primera respuesta ≤ " +
      sla.first_response_minutes + " min, resolución ≤ " + sla.resolution_hours + " h";
    setChart("chart-sla", labels, [
      { label: "Primera respuesta", data: col(function (p) { return p.sla.first_response_pct; }) },
      { label: "Resolución", data: col(function (p) { return p.sla.resolution_pct; }) }]);
    setChart("chart-csat-who", labels, [
      { label: "Bot", data: col(function (p) { return p.csat_bot_pct; }) },
      { label: "Persona", data: col(function (p) { return p.csat_human_pct; }) }]);
  }

  function renderComments(list) {
    var box = $("comments-box");
    if (!list) { box.hidden = true; return; }
    box.hidden = false;
    var ul = $("comments");
    clear(ul);
    list.forEach(function (c) {
      var li = el("li");
      var scores = [];
      if (c.nps !== null) scores.push("NPS " + c.nps);
      if (c.ces !== null) scores.push("CES " + c.ces);
      if (c.csat !== null) scores.push("CSAT " + c.csat);
      li.appendChild(el("span", "comment-meta", c.at.replace("T", " ").slice(0, 16) + " UTC · " +
        (LABELS.channel[c.channel] || c.channel) + " · " + (LABELS.language[c.language] || c.language) +
        (scores.length ? " · " + scores.join(", ") : "")));
      li.appendChild(el("span", "comment-text", c.comment));
      ul.appendChild(li);
    });
    $("comments-empty").hidden = list.length > 0;
  }

  // --- filters --------------------------------------------------------------------------------

  function fill(select, values, labels) {
    values.forEach(function (v) {
      var value = typeof v === "object" ? String(v.id) : v;
      var text = typeof v === "object" ? v.username + " (" + v.team + ")" : (labels && labels[v]) || v;
      var option = el("option", null, text);
      option.value = value;
      select.appendChild(option);
    });
  }

  function query(form) {
    var params = new URLSearchParams();
    FIELDS.forEach(function (name) {
      var value = form.elements[name].value;
      if (!value) return;
      if (name === "until") value = shiftDay(value, 1);  // inclusive in the form
      params.set(name, value);
    });
    if (state.options && state.options.role !== "admin") params.delete("team");
    return params.toString();
  }

  function exportLinks(qs) {
    var canExport = state.options && state.options.can_export;
    ["conversations", "cases"].forEach(function (kind) {
      var link = $("export-" + kind);
      link.hidden = !canExport;
      link.href = "/console/api/export/" + kind + ".csv?" + qs;
    });
  }

  function load() {
    var form = $("filters");
    var qs = query(form);
    var seq = ++state.seq;
    say("Cargando…");
    return getJSON("/console/api/kpi?" + qs).then(function (data) {
      if (seq !== state.seq) return;  // a newer filter change won
      $("f-since").value = data.period.since;
      $("f-until").value = shiftDay(data.period.until, -1);
      qs = query(form);
      history.replaceState(null, "", "/console/dashboard?" + qs);
      exportLinks(qs);
      renderTiles(data);
      renderCharts(data);
      renderComments(data.comments);
      var units = { day: "día", week: "semana", month: "mes" };
      say("Del " + data.period.since + " al " + shiftDay(data.period.until, -1) +
          " (UTC), por " + units[data.group] + "; comparado con el " + data.period.previous_since +
          " – " + shiftDay(data.period.previous_until, -1) + ". " +
          (data.current.conversations ? "" : "No hay conversaciones con estos filtros: n/a es «sin datos»."));
      state.loads += 1;
      document.body.setAttribute("data-query", qs);
      document.body.setAttribute("data-loaded", String(state.loads));
    }).catch(function (err) {
      if (seq !== state.seq) return;
      say(err.message, true);
      state.loads += 1;
      document.body.setAttribute("data-loaded", String(state.loads));
    });
  }

  function applyUrl(form) {
    var params = new URLSearchParams(window.location.search);
    FIELDS.forEach(function (name) {
      var value = params.get(name);
      if (!value) return;
      if (name === "until") value = shiftDay(value, -1);
      form.elements[name].value = value;
    });
  }

  function start(opts) {
    state.options = opts;
    var form = $("filters");
    $("me").textContent = (opts.role === "admin" ? "admin" : "agente · equipo " + opts.team);
    fill($("f-channel"), opts.channels, LABELS.channel);
    fill($("f-language"), opts.languages, LABELS.language);
    fill($("f-case_type"), opts.case_types, LABELS.case_type);
    fill($("f-team"), opts.teams);
    fill($("f-agent"), opts.agents);
    if (opts.role !== "admin") {
      $("f-team").value = opts.team;
      $("f-team").disabled = true;
    }
    applyUrl(form);
    initCharts();
    form.addEventListener("submit", function (ev) { ev.preventDefault(); load(); });
    form.addEventListener("change", function () { load(); });
    return load();
  }

  if (!window.Chart) {
    say("No se ha podido cargar la librería de gráficos.", true);
    return;
  }
  getJSON("/console/api/kpi/options").then(start).catch(function (err) { say(err.message, true); });
})();
