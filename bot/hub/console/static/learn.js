/* Learning inbox: groups of customer messages the bot could not answer, and per group
 * "add as examples of entry…", "new entry…" or "dismiss". Everything from the server goes on
 * the page with textContent (customers' words are never HTML). Calls go through ConsoleApi
 * (console-api.js), which puts the session's CSRF token on state-changing ones.
 */
(function () {
  "use strict";

  var REASONS = {
    fallback: "no entendido",
    no_answer: "sin información",
    not_helped: "no le ayudó",
    handoff: "pidió una persona tras la respuesta"
  };

  function $(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  var call = ConsoleApi.call;

  function say(text, bad) {
    $("status").textContent = text;
    $("status").className = bad ? "error" : "";
  }

  function renderTrend(rows) {
    var body = $("trend").querySelector("tbody");
    while (body.firstChild) body.removeChild(body.firstChild);
    rows.forEach(function (r) {
      var tr = el("tr");
      [r.week, r.messages, r.unanswered,
       r.rate === null ? "n/a" : (r.rate * 100).toFixed(1) + " %", r.fixed].forEach(function (v) {
        tr.appendChild(el("td", null, v));
      });
      body.appendChild(tr);
    });
  }

  function renderEntries(entries) {
    var list = $("entries");
    while (list.firstChild) list.removeChild(list.firstChild);
    entries.forEach(function (e) {
      var opt = document.createElement("option");
      opt.value = e.id;
      opt.label = e.title_es || e.title_en || e.id;
      list.appendChild(opt);
    });
  }

  function action(path, body, done) {
    return call(path, body).then(function (data) {
      say(done(data));
      return load();
    }).catch(function (err) { say(err.message, true); });
  }

  function renderGroup(g) {
    var li = el("li", "group card");
    li.dataset.key = g.key;
    var head = el("p", "sub");
    head.appendChild(el("strong", null, g.count + " × "));
    head.appendChild(document.createTextNode(
      (g.language === "en" ? "inglés" : "español") + " · última " +
      g.newest.replace("T", " ").slice(0, 16) + " · " +
      Object.keys(g.reasons).map(function (k) {
        return (REASONS[k] || k) + " (" + g.reasons[k] + ")";
      }).join(", ")));
    li.appendChild(head);
    var texts = el("ul", "texts");
    g.texts.forEach(function (t) { texts.appendChild(el("li", "learn-text", t)); });
    li.appendChild(texts);
    if (g.conversations.length) {
      var convs = el("p", "sub", "Conversaciones: ");
      g.conversations.forEach(function (cid) {
        var a = el("a", null, "#" + cid);
        a.href = "/console#c" + cid;
        convs.appendChild(a);
        convs.appendChild(document.createTextNode(" "));
      });
      li.appendChild(convs);
    }
    var form = el("form", "learn-actions");
    var target = el("input");
    target.setAttribute("list", "entries");
    target.placeholder = "id de la entrada (p. ej. return-policy)";
    target.setAttribute("aria-label", "Entrada");
    target.className = "learn-target";
    target.value = g.faq_ids[0] || "";
    var add = el("button", "btn btn-primary learn-add", "Añadir como preguntas de ejemplo");
    add.type = "submit";
    var create = el("button", "btn learn-new", "Crear entrada nueva");
    create.type = "button";
    var drop = el("button", "btn btn-danger learn-dismiss", "Descartar");
    drop.type = "button";
    form.appendChild(target);
    form.appendChild(add);
    form.appendChild(create);
    form.appendChild(drop);
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      action("/console/api/learn/add-example", { item_ids: g.item_ids, faq_id: target.value.trim() },
        function (d) {
          return d.added.length + " pregunta(s) añadidas a «" + d.faq_id + "» y publicadas.";
        });
    });
    create.addEventListener("click", function () {
      var id = target.value.trim();
      call("/console/api/learn/new-entry", { item_ids: g.item_ids, faq_id: id })
        .then(function (d) { window.location.href = "/console/kb#" + encodeURIComponent(d.faq_id); })
        .catch(function (err) { say(err.message, true); });
    });
    drop.addEventListener("click", function () {
      action("/console/api/learn/dismiss", { item_ids: g.item_ids }, function (d) {
        return d.items + " mensaje(s) descartados.";
      });
    });
    li.appendChild(form);
    return li;
  }

  function load() {
    return call("/console/api/learn").then(function (data) {
      renderTrend(data.trend);
      renderEntries(data.entries);
      var list = $("groups");
      while (list.firstChild) list.removeChild(list.firstChild);
      data.groups.forEach(function (g) { list.appendChild(renderGroup(g)); });
      $("g-count").textContent = String(data.groups.length);
      $("empty").hidden = data.groups.length > 0;
      document.body.dataset.ready = "1";
    });
  }

  ConsoleApi.me().then(function () {
    return load();
  }).catch(function (err) { say(err.message, true); });
})();
