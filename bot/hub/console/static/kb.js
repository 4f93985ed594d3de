/* Knowledge-base editor: list/search entries, edit both languages as a draft, publish,
 * revert, retire, and try a customer question before and after the unsaved edit.
 * Everything from the server (answers typed by admins included) is put on the page with
 * textContent, never as HTML. Calls go through ConsoleApi (console-api.js), which puts the
 * session's CSRF token on state-changing ones; those carry the version the editor loaded: a
 * stale one comes back as 409 with the other person's changes.
 */
(function () {
  "use strict";

  var LANGS = ["es", "en"];
  var LANG_NAME = { es: "español", en: "inglés" };
  var MAX_ANSWER = 4000;
  var FIELDS = {
    "tags": "Etiquetas",
    "es.title": "Título (español)", "es.answer": "Respuesta (español)",
    "es.questions": "Preguntas de ejemplo (español)",
    "en.title": "Título (inglés)", "en.answer": "Respuesta (inglés)",
    "en.questions": "Preguntas de ejemplo (inglés)"
  };
  var STATUS = { published: "Publicada", "new": "Sin publicar", retired: "Retirada" };
  var ACTIONS = {
    create: "Creada (importación)", update: "Actualizada (importación o CLI)",
    restore: "Restaurada", publish: "Publicada", revert: "Revertida", "delete": "Retirada"
  };
  var state = { current: null, version: null };

  function $(id) { return document.getElementById(id); }

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  var call = ConsoleApi.call;

  function say(text, kind) {
    var node = $("msg");
    node.textContent = text || "";
    node.className = "kb-msg" + (kind ? " " + kind : "");
  }

  function when(iso) {
    if (!iso) return "";
    var d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString("es-ES", { dateStyle: "short", timeStyle: "short" });
  }

  function pct(rate) { return rate === null || rate === undefined ? "n/a" : Math.round(rate * 100) + " %"; }

  // --- diff ------------------------------------------------------------------------------

  function renderDiff(node, changes) {
    clear(node);
    if (!changes || !changes.length) {
      node.appendChild(el("p", "Sin cambios de contenido.", "sub"));
      return;
    }
    changes.forEach(function (change) {
      var box = el("div", null, "diff-field");
      box.dataset.field = change.field;
      box.appendChild(el("h4", FIELDS[change.field] || change.field));
      var pre = el("pre");
      change.ops.forEach(function (op) {
        var tag = op[0] === "insert" ? "ins" : op[0] === "delete" ? "del" : "span";
        pre.appendChild(el(tag, op[1]));
      });
      box.appendChild(pre);
      node.appendChild(box);
    });
  }

  // --- list ------------------------------------------------------------------------------

  function badge(text, cls) { return el("span", text, "badge " + cls); }

  function badges(row) {
    var out = [];
    if (row.status === "new") out.push(badge("sin publicar", "badge-new"));
    if (row.status === "retired") out.push(badge("retirada", "badge-retired"));
    if (row.has_draft && row.status !== "new") out.push(badge("borrador", "badge-draft"));
    row.missing.forEach(function (lang) { out.push(badge("falta " + LANG_NAME[lang], "badge-missing")); });
    return out;
  }

  function verdict(search) {
    if (!search) return "";
    if (search.decision === "answer") return "El bot respondería con «" + search.faq_id + "».";
    if (search.decision === "suggest") {
      return "El bot no está seguro y preguntaría «¿Quizás…?» con: " + search.suggestions.join(", ") + ".";
    }
    return "El bot no respondería desde la base de conocimiento (pide reformular u ofrece una persona).";
  }

  function listQuery() {
    var params = new URLSearchParams({ q: $("kb-search").value, lang: $("kb-lang").value,
                                       tag: $("kb-tag").value, filter: $("kb-filter").value });
    return "/console/api/kb/entries?" + params.toString();
  }

  function renderTags(tags) {
    var select = $("kb-tag");
    var chosen = select.value;
    while (select.options.length > 1) select.remove(1);
    tags.forEach(function (tag) {
      var opt = el("option", tag);
      opt.value = tag;
      select.appendChild(opt);
    });
    select.value = tags.indexOf(chosen) >= 0 ? chosen : "";
  }

  function renderList(data) {
    var list = $("kb-list");
    clear(list);
    renderTags(data.tags);
    $("kb-count").textContent = "(" + data.entries.length + ")";
    $("kb-verdict").textContent = verdict(data.search);
    data.entries.forEach(function (row) {
      var li = el("li", null, "kb-item");
      li.dataset.id = row.id;
      if (state.current && state.current.id === row.id) li.className += " selected";
      var btn = el("button");
      btn.type = "button";
      var top = el("span", null, "kb-item-top");
      top.appendChild(el("span", row.id, "mono"));
      badges(row).forEach(function (b) { top.appendChild(b); });
      btn.appendChild(top);
      btn.appendChild(el("span", row.titles.es || row.titles.en || "(sin título)", "kb-item-title"));
      var meta = "mostrada " + row.stats.shown + " · ayudó " + pct(row.stats.helped_rate);
      if (row.score !== undefined) meta += " · puntuación " + row.score.toFixed(3);
      btn.appendChild(el("span", meta, "kb-item-meta"));
      btn.addEventListener("click", function () { openEntry(row.id); });
      li.appendChild(btn);
      list.appendChild(li);
    });
    if (!data.entries.length) list.appendChild(el("li", "Ninguna entrada con estos filtros.", "empty"));
  }

  function loadList() {
    return call(listQuery()).then(renderList).catch(function (err) { say(err.message, "error"); });
  }

  // --- editor ----------------------------------------------------------------------------

  function formEntry() {
    var entry = { tags: $("f-tags").value.split(",").map(function (t) { return t.trim(); })
                        .filter(Boolean) };
    LANGS.forEach(function (lang) {
      entry[lang] = {
        title: $("f-" + lang + "-title").value,
        answer: $("f-" + lang + "-answer").value,
        questions: $("f-" + lang + "-questions").value.split("\n")
          .map(function (q) { return q.trim(); }).filter(Boolean)
      };
    });
    return entry;
  }

  function fillForm(version) {
    $("f-tags").value = version.tags.join(", ");
    LANGS.forEach(function (lang) {
      var block = version.content[lang];
      $("f-" + lang + "-title").value = block.title;
      $("f-" + lang + "-answer").value = block.answer;
      $("f-" + lang + "-questions").value = block.questions.join("\n");
    });
    counters();
  }

  function counters() {
    LANGS.forEach(function (lang) {
      var n = $("f-" + lang + "-answer").value.length;
      var node = $("count-" + lang);
      node.textContent = "(" + n + " / " + MAX_ANSWER + ")";
      node.className = n > MAX_ANSWER ? "over" : "sub";
    });
  }

  function notice(text, kind, changes) {
    $("notice").hidden = !text;
    $("notice").className = "kb-notice" + (kind === "info" ? " info" : "");
    $("notice-text").textContent = text || "";
    $("conflict").hidden = !changes;
    if (changes) renderDiff($("conflict-diff"), changes);
  }

  function renderStats(stats) {
    var dl = $("stats");
    clear(dl);
    [["Mostrada", stats.shown + " veces"],
     ["¿Le ayudó?", "sí " + stats.helped + " · no " + stats.not_helped + " (" + pct(stats.helped_rate) + " sí)"],
     ["Pasaron a una persona después", stats.handoff_after + " (" + pct(stats.handoff_rate) + " de las veces)"]
    ].forEach(function (pair) {
      dl.appendChild(el("dt", pair[0]));
      dl.appendChild(el("dd", pair[1]));
    });
  }

  function renderHistory(history) {
    var list = $("history");
    clear(list);
    history.forEach(function (rev, i) {
      var li = el("li");
      li.dataset.revision = rev.id;
      var head = el("div", null, "row");
      head.appendChild(el("strong", ACTIONS[rev.action] || rev.action));
      head.appendChild(el("span", "versión " + rev.version + " · " + rev.by + " · " + when(rev.at), "sub"));
      rev.missing.forEach(function (lang) { if (!rev.retired) head.appendChild(badge("falta " + LANG_NAME[lang], "badge-missing")); });
      if (i === 0 && state.current.status === "published") head.appendChild(badge("en uso", "badge-new"));
      else if (rev.revertible) {
        var btn = el("button", "Volver a esta versión", "btn btn-revert");
        btn.type = "button";
        btn.addEventListener("click", function () { revert(rev); });
        head.appendChild(btn);
      }
      li.appendChild(head);
      var diff = el("div", null, "diff");
      if (rev.action !== "delete") renderDiff(diff, rev.changes);
      li.appendChild(diff);
      list.appendChild(li);
    });
    if (!history.length) list.appendChild(el("li", "Aún no se ha publicado nunca.", "empty"));
  }

  function render(detail) {
    state.current = detail;
    state.version = detail.version;
    $("placeholder").hidden = true;
    $("editor").hidden = false;
    $("editor").dataset.id = detail.id;
    $("editor").dataset.version = detail.version;
    $("e-id").textContent = detail.id;
    $("e-status").textContent = STATUS[detail.status] +
      (detail.has_draft && detail.status !== "new" ? " · con borrador" : "");
    $("e-status").className = "status status-" + detail.status;
    var missing = $("e-missing");
    clear(missing);
    detail.missing.forEach(function (lang) { missing.appendChild(badge("falta " + LANG_NAME[lang], "badge-missing")); });
    var meta = "versión " + detail.version;
    if (detail.published_at) meta += " · publicada " + when(detail.published_at) + " por " + detail.published_by;
    if (detail.draft_at) meta += " · borrador de " + detail.draft_by + " (" + when(detail.draft_at) + ")";
    $("e-meta").textContent = meta;
    fillForm(detail.working);
    $("btn-discard").disabled = !detail.has_draft || detail.status === "new";
    $("btn-retire").disabled = detail.status === "retired";
    $("btn-publish").textContent = detail.status === "retired" ? "Publicar de nuevo" : "Publicar";
    $("draft-box").hidden = !(detail.has_draft && detail.published);
    renderDiff($("draft-diff"), detail.draft_changes);
    renderStats(detail.stats);
    renderHistory(detail.history);
    Array.prototype.forEach.call(document.querySelectorAll("#kb-list .kb-item"), function (li) {
      li.classList.toggle("selected", li.dataset.id === detail.id);
    });
  }

  function openEntry(id) {
    notice("");
    return call("/console/api/kb/entries/" + encodeURIComponent(id)).then(function (detail) {
      render(detail);
      if (window.location.hash !== "#" + id) window.history.replaceState(null, "", "#" + id);
      clear($("try-before"));
      clear($("try-after"));
    }).catch(function (err) { say(err.message, "error"); });
  }

  function failed(err) {
    if (err.status === 409 && err.data && err.data.error === "conflict") {
      state.conflict = err.data;
      notice(err.message, "error", err.data.changes);
      return;
    }
    notice(err.message, "error");
  }

  function change(action, body, done) {
    if (!state.current) return Promise.resolve();
    body.expected_version = state.version;
    var path = "/console/api/kb/entries/" + encodeURIComponent(state.current.id) + "/" + action;
    return call(path, body).then(function (detail) {
      render(detail);
      notice(done, "info");
      return loadList();
    }).catch(failed);
  }

  function save() {
    change("draft", { entry: formEntry() },
           "Borrador guardado. Los clientes siguen recibiendo la versión publicada.");
  }

  function publish() {
    change("publish", { entry: formEntry() }, "Publicado: el bot responde con esta versión desde el próximo mensaje.");
  }

  function discard() {
    if (!window.confirm("¿Descartar el borrador? Se vuelve a la versión publicada.")) return;
    change("discard", {}, "Borrador descartado.");
  }

  function retire() {
    if (!window.confirm("¿Retirar «" + state.current.id + "»? El bot dejará de usarla al momento (queda en el historial).")) return;
    change("retire", {}, "Entrada retirada: el bot ya no responde con ella.");
  }

  function revert(rev) {
    var text = "¿Publicar otra vez la versión " + rev.version + "?";
    if (state.current.has_draft) text += " El borrador pendiente se descartará.";
    if (!window.confirm(text)) return;
    change("revert", { revision_id: rev.id }, "Versión " + rev.version + " publicada de nuevo.");
  }

  function createEntry(ev) {
    ev.preventDefault();
    var id = $("new-id").value.trim();
    call("/console/api/kb/entries", { id: id, entry: null }).then(function (detail) {
      $("new-id").value = "";
      render(detail);
      notice("Borrador creado: nadie lo ve hasta que lo publiques.", "info");
      window.history.replaceState(null, "", "#" + detail.id);
      return loadList();
    }).catch(function (err) { say(err.message, "error"); });
  }

  // --- try it ----------------------------------------------------------------------------

  function renderResult(node, result, empty) {
    clear(node);
    if (!result) {
      node.appendChild(el("p", empty, "sub"));
      return;
    }
    var text;
    if (result.decision === "answer") text = "Responde con «" + result.faq_id + "»";
    else if (result.decision === "suggest") text = "Pregunta «¿Quizás…?»: " + result.suggestions.join(", ");
    else text = "No responde desde la base (pide reformular u ofrece una persona)";
    var p = el("p", text, "verdict");
    p.dataset.decision = result.decision;
    p.dataset.faqId = result.faq_id || "";
    node.appendChild(p);
    var table = el("table", null, "scores");
    var head = el("tr");
    ["Entrada", "Puntuación", "Semántica", "Léxica"].forEach(function (h) { head.appendChild(el("th", h)); });
    table.appendChild(head);
    result.candidates.forEach(function (c, i) {
      var tr = el("tr", null, i === 0 ? "top" : "");
      [c.faq_id + " · " + c.title, c.score.toFixed(3), c.semantic.toFixed(3), c.lexical.toFixed(3)]
        .forEach(function (v) { tr.appendChild(el("td", v)); });
      table.appendChild(tr);
    });
    node.appendChild(table);
    node.appendChild(el("p", "Responde a partir de " + result.thresholds.answer.toFixed(2) +
      " con " + result.thresholds.margin.toFixed(2) + " de ventaja; sugiere a partir de " +
      result.thresholds.suggest.toFixed(2) + ".", "sub"));
  }

  function tryIt(ev) {
    ev.preventDefault();
    var body = { query: $("try-query").value, lang: $("try-lang").value,
                 faq_id: state.current ? state.current.id : null,
                 entry: state.current ? formEntry() : null };
    $("btn-try").disabled = true;
    call("/console/api/kb/try", body).then(function (data) {
      renderResult($("try-before"), data.before);
      renderResult($("try-after"), data.after, "Abre una entrada para ver el efecto de tus cambios.");
    }).catch(function (err) { say(err.message, "error"); })
      .then(function () { $("btn-try").disabled = false; });
  }

  // --- start -----------------------------------------------------------------------------

  function start() {
    $("kb-search-form").addEventListener("submit", function (ev) { ev.preventDefault(); loadList(); });
    ["kb-tag", "kb-filter", "kb-lang"].forEach(function (id) { $(id).addEventListener("change", loadList); });
    $("new-form").addEventListener("submit", createEntry);
    $("btn-save").addEventListener("click", save);
    $("btn-publish").addEventListener("click", publish);
    $("btn-discard").addEventListener("click", discard);
    $("btn-retire").addEventListener("click", retire);
    $("try-form").addEventListener("submit", tryIt);
    $("f-es-answer").addEventListener("input", counters);
    $("f-en-answer").addEventListener("input", counters);
    $("btn-reload").addEventListener("click", function () {
      if (state.conflict) render(state.conflict.current);
      notice("Cargada la versión actual.", "info");
    });
    $("btn-overwrite").addEventListener("click", function () {
      if (state.conflict) state.version = state.conflict.current.version;
      $("editor").dataset.version = state.version;
      notice("Tus cambios siguen en el formulario: guarda o publica y sustituirán los suyos.", "info");
    });
    ConsoleApi.me().then(function (me) {
      $("me").textContent = me.username + " · " + me.role;
      return loadList();
    }).then(function () {
      var id = decodeURIComponent(window.location.hash.slice(1));
      return id ? openEntry(id) : null;
    }).then(function () {
      document.body.dataset.ready = "1";
    }).catch(function (err) { say(err.message, "error"); });
  }

  start();
})();
