/* The agents' console: live inbox (Server-Sent Events), conversation detail, agent actions.
 *
 * Everything that comes from customers or the database is put on the page with textContent
 * (never parsed as HTML): a customer's "<img onerror=…>" is just text here.
 * State-changing calls carry the session's CSRF token in X-CSRF-Token.
 */
(function () {
  "use strict";

  var state = {
    me: null,
    csrf: null,
    queue: [],
    fetchedAt: 0,
    selected: null,
    detail: null,
    seen: new Set(),
    lastConversation: null,
    typingTimers: {},
    events: null,
    queueTimer: null,
    received: [],
    detailTimer: null,
    busy: false
  };

  var REASONS = {
    request_human: "Pide una persona",
    complaint: "Queja",
    fallback: "El bot no entendió",
    not_solved: "No se resolvió",
    verification_failed: "Verificación fallida",
    detractor_followup: "Seguimiento de encuesta"
  };
  var STATUS = {
    bot: "Con el bot",
    waiting_agent: "En espera",
    with_agent: "Atendiendo",
    closed: "Cerrada"
  };
  var CASE_STATUS = {
    open: "Abierto",
    in_progress: "En curso",
    waiting_customer: "Esperando al cliente",
    resolved: "Resuelto",
    closed: "Cerrado"
  };
  var AUTHORS = { customer: "Cliente", bot: "Bot", agent: "Agente", system: "Sistema" };
  var LANGS = { es: "Español", en: "Inglés" };

  function $(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function channelName(channel) {
    if (channel === "telegram") return "Telegram";
    if (channel === "web") return "Web";
    if (channel === "api") return "API";
    return channel ? String(channel) : "—";
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min";
    var hours = Math.floor(minutes / 60);
    return hours + " h " + (minutes % 60) + " min";
  }

  function clock(ts) {
    if (!ts) return "";
    var d = new Date(ts);
    if (isNaN(d.getTime())) return "";
    return d.toLocaleString("es-ES", { day: "2-digit", month: "2-digit",
                                        hour: "2-digit", minute: "2-digit" });
  }

  // --- banner ---------------------------------------------------------------------------

  var bannerTimer = null;

  function banner(text, kind) {
    var box = $("banner");
    $("banner-text").textContent = text;
    box.className = "banner banner-" + (kind || "error");
    box.hidden = false;
    if (bannerTimer) clearTimeout(bannerTimer);
    bannerTimer = kind === "info" ? setTimeout(hideBanner, 6000) : null;
  }

  function hideBanner() { $("banner").hidden = true; }

  // --- API ------------------------------------------------------------------------------

  function ApiError(status, code, message) {
    this.status = status;
    this.code = code;
    this.message = message;
  }

  function api(path, method, body) {
    method = method || "GET";
    var init = { method: method, credentials: "same-origin",
                 headers: { "Accept": "application/json" } };
    if (method !== "GET") {
      init.headers["X-CSRF-Token"] = state.csrf || "";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body || {});
    }
    return fetch(path, init).then(function (resp) {
      if (resp.status === 401) {
        location.assign("/console/login");
        throw new ApiError(401, "unauthenticated", "Tu sesión ha caducado.");
      }
      if (resp.status === 204) return null;
      return resp.json().catch(function () { return null; }).then(function (data) {
        if (!resp.ok) {
          throw new ApiError(resp.status, data && data.error,
                             (data && data.message) || ("Error " + resp.status));
        }
        return data;
      });
    }, function () {
      throw new ApiError(0, "network", "No hay conexión con el servidor.");
    });
  }

  function fail(err) {
    banner(err && err.message ? err.message : "Algo ha fallado.", "error");
    if (err && (err.status === 409 || err.status === 404)) {
      refreshQueue();
      if (state.selected) loadDetail(state.selected);
    }
  }

  // --- inbox ----------------------------------------------------------------------------

  function refreshQueue() {
    return api("/console/api/queue").then(function (rows) {
      state.queue = Array.isArray(rows) ? rows : [];
      state.fetchedAt = Date.now();
      renderQueue();
    }).catch(function (err) {
      if (err.status !== 401) banner(err.message, "error");
    });
  }

  function scheduleQueue() {
    if (state.queueTimer) return;
    state.queueTimer = setTimeout(function () {
      state.queueTimer = null;
      refreshQueue();
    }, 150);
  }

  function waitedSeconds(row) {
    return (row.waiting_seconds || 0) + (Date.now() - state.fetchedAt) / 1000;
  }

  function renderQueue() {
    var list = $("queue");
    clear(list);
    var waiting = 0;
    state.queue.forEach(function (row) {
      var id = row.conversation_id;
      if (row.status === "waiting_agent") waiting += 1;
      var li = el("li", "queue-item status-" + row.status);
      li.dataset.id = String(id);
      li.dataset.status = row.status || "";
      var button = el("button", "queue-btn");
      button.type = "button";
      if (state.selected === id) {
        li.classList.add("selected");
        button.setAttribute("aria-current", "true");
      }
      var top = el("div", "q-top");
      top.appendChild(el("span", "q-name", row.customer_name || "Cliente sin identificar"));
      if (row.reason === "complaint" || (row.priority || 0) >= 2) {
        top.appendChild(el("span", "badge badge-complaint", "Queja"));
      } else if ((row.priority || 0) >= 1) {
        top.appendChild(el("span", "badge badge-priority", "Prioridad"));
      }
      button.appendChild(top);
      var meta = el("div", "q-meta");
      meta.appendChild(el("span", "q-channel chan-" + (row.channel || ""),
                          channelName(row.channel)));
      meta.appendChild(el("span", "q-lang", (row.language || "?").toUpperCase()));
      var wait = el("span", "q-wait");
      wait.dataset.base = String(row.waiting_seconds || 0);
      wait.textContent = (row.status === "waiting_agent" ? "espera " : "desde hace ")
        + duration(waitedSeconds(row));
      meta.appendChild(wait);
      if (row.status === "with_agent") {
        meta.appendChild(el("span", "badge badge-agent", "Atiende " + (row.agent || "—")));
      } else {
        meta.appendChild(el("span", "badge badge-waiting", STATUS[row.status] || row.status));
      }
      button.appendChild(meta);
      var reason = REASONS[row.reason] || row.reason || "";
      if (reason || row.case_number) {
        var info = el("div", "q-info");
        if (reason) info.appendChild(el("span", "q-reason", reason));
        if (row.case_number) info.appendChild(el("span", "q-case mono", row.case_number));
        button.appendChild(info);
      }
      button.appendChild(el("div", "q-preview", row.preview || ""));
      var typing = el("div", "q-typing", "escribiendo…");
      typing.hidden = !state.typingTimers[id];
      button.appendChild(typing);
      button.addEventListener("click", function () { select(id); });
      li.appendChild(button);
      list.appendChild(li);
    });
    $("queue-count").textContent = state.queue.length
      ? "(" + waiting + " en espera · " + state.queue.length + ")" : "";
    $("queue-empty").hidden = state.queue.length > 0;
  }

  function tickWaits() {
    var items = document.querySelectorAll("#queue .queue-item");
    items.forEach(function (li) {
      var row = state.queue.find(function (r) { return String(r.conversation_id) === li.dataset.id; });
      var wait = li.querySelector(".q-wait");
      if (row && wait) {
        wait.textContent = (row.status === "waiting_agent" ? "espera " : "desde hace ")
          + duration(waitedSeconds(row));
      }
    });
  }

  // --- detail ---------------------------------------------------------------------------

  function select(id) {
    state.selected = id;
    renderQueue();
    loadDetail(id);
  }

  function loadDetail(id) {
    return api("/console/api/conversations/" + encodeURIComponent(id)).then(function (data) {
      if (state.selected !== id) return;
      state.detail = data;
      renderDetail();
    }).catch(function (err) {
      if (err.status === 404) {
        state.selected = null;
        state.detail = null;
        $("detail").hidden = true;
        $("placeholder").hidden = false;
      }
      if (err.status !== 401) banner(err.message, "error");
    });
  }

  function scheduleDetail() {
    if (state.detailTimer || !state.selected) return;
    state.detailTimer = setTimeout(function () {
      state.detailTimer = null;
      if (state.selected) loadDetail(state.selected);
    }, 150);
  }

  function handoffCase() {
    var cases = (state.detail && state.detail.cases) || [];
    var summary = (state.detail && state.detail.summary) || {};
    var conv = (state.detail && state.detail.conversation) || {};
    var number = conv.case_number || summary.case_number;
    return cases.find(function (c) { return c.is_handoff_case; })
      || cases.find(function (c) { return number && c.number === number; }) || null;
  }

  function mine(conv) {
    return conv.status === "with_agent" && state.me
      && (conv.agent === state.me.username || state.me.role === "admin");
  }

  function renderDetail() {
    var d = state.detail;
    var conv = d.conversation || {};
    var summary = d.summary || {};
    var customer = summary.customer || {};
    $("placeholder").hidden = true;
    $("detail").hidden = false;
    $("detail").dataset.id = String(conv.conversation_id);
    $("detail").dataset.status = conv.status || "";
    $("d-title").textContent = conv.customer_name || customer.name || "Cliente sin identificar";
    $("d-sub").textContent = "Conversación #" + conv.conversation_id + " · "
      + channelName(conv.channel) + " · " + (LANGS[conv.language] || conv.language || "")
      + (conv.case_number ? " · " + conv.case_number : "");
    var status = $("d-status");
    status.textContent = (STATUS[conv.status] || conv.status)
      + (conv.status === "with_agent" && conv.agent ? " · " + conv.agent : "");
    status.className = "status status-" + conv.status;

    var owned = mine(conv);
    $("btn-claim").hidden = conv.status !== "waiting_agent";
    $("btn-close").hidden = !owned;
    $("reply-form").hidden = !owned;
    $("transfer-form").querySelector("button").disabled = !owned;
    $("transfer-user").disabled = !owned;

    renderSummary(conv, summary);
    renderTranscript(d.transcript || []);
    renderOrders(d.orders || []);
    renderCases(d.cases || []);
    var hc = handoffCase();
    $("case-number").textContent = hc ? hc.number : "(sin caso)";
    $("case-status").disabled = !hc;
    $("btn-status").disabled = !hc;
    $("btn-resolution").disabled = !hc;
    $("btn-note").disabled = !hc;
    if (hc) {
      // a live re-render must not undo a status the agent picked but has not applied yet
      var sel = $("case-status");
      var key = hc.number + ":" + hc.status;
      if (sel.dataset.rendered !== key) {
        sel.value = hc.status;
        sel.dataset.rendered = key;
      }
      if (document.activeElement !== $("resolution-text")) {
        $("resolution-text").value = hc.resolution || "";
      }
    }
  }

  function addRow(dl, label, value) {
    if (value === undefined || value === null || value === "") return;
    dl.appendChild(el("dt", null, label));
    var dd = el("dd");
    if (value instanceof Node) dd.appendChild(value); else dd.textContent = String(value);
    dl.appendChild(dd);
  }

  function renderSummary(conv, summary) {
    var dl = $("summary");
    clear(dl);
    var customer = summary.customer || {};
    addRow(dl, "Cliente", customer.name || conv.customer_name || "Sin identificar");
    addRow(dl, "Verificado", customer.verified ? "Sí" : "No");
    addRow(dl, "Motivo", REASONS[summary.reason || conv.reason] || summary.reason || conv.reason);
    addRow(dl, "Idioma", LANGS[summary.language || conv.language]
                         || summary.language || conv.language);
    addRow(dl, "Canal", channelName(summary.channel || conv.channel));
    addRow(dl, "Pedido", summary.order_number);
    addRow(dl, "Caso", summary.case_number || conv.case_number);
    var intents = Array.isArray(summary.intents) ? summary.intents : [];
    if (intents.length) {
      var chips = el("div", "chips");
      intents.forEach(function (name) { chips.appendChild(el("span", "chip", name)); });
      addRow(dl, "Intenciones", chips);
    }
    var slots = summary.slots && typeof summary.slots === "object" ? summary.slots : {};
    var keys = Object.keys(slots).filter(function (k) {
      return slots[k] !== null && slots[k] !== "" && slots[k] !== undefined;
    });
    if (keys.length) {
      var table = el("ul", "slots");
      keys.forEach(function (k) {
        var v = slots[k];
        var li = el("li");
        li.appendChild(el("span", "slot-key", k));
        li.appendChild(el("span", "slot-value",
                          typeof v === "object" ? JSON.stringify(v) : String(v)));
        table.appendChild(li);
      });
      addRow(dl, "Datos", table);
    }
    var last = Array.isArray(summary.last_messages) ? summary.last_messages : [];
    if (last.length) {
      var ol = el("ol", "last-messages");
      last.forEach(function (m) {
        var li = el("li", "lm lm-" + (m.from || ""));
        li.appendChild(el("span", "lm-from", (AUTHORS[m.from] || m.from || "") + ": "));
        li.appendChild(el("span", "lm-text", m.text || ""));
        ol.appendChild(li);
      });
      addRow(dl, "Últimos mensajes", ol);
    }
  }

  function bubble(item) {
    var from = item.from || item.author || "system";
    var row = el("div", "msg msg-" + from);
    if (item.id) row.dataset.id = String(item.id);
    row.dataset.from = from;
    var meta = el("div", "msg-meta");
    meta.appendChild(el("span", "msg-author",
                        from === "agent" && item.agent ? item.agent : (AUTHORS[from] || from)));
    if (item.channel) meta.appendChild(el("span", "msg-channel", channelName(item.channel)));
    var time = clock(item.ts || item.at);
    if (time) meta.appendChild(el("span", "msg-time", time));
    row.appendChild(meta);
    row.appendChild(el("div", "msg-text", item.text || ""));
    if (Array.isArray(item.buttons) && item.buttons.length) {
      var opts = el("div", "msg-buttons");
      item.buttons.forEach(function (b) {
        opts.appendChild(el("span", "chip", (b && (b.title || b.payload)) || ""));
      });
      row.appendChild(opts);
    }
    return row;
  }

  function renderTranscript(items) {
    var box = $("transcript");
    clear(box);
    state.seen = new Set();
    state.lastConversation = null;
    items.forEach(appendItem);
    box.scrollTop = box.scrollHeight;
  }

  function appendItem(item, conversationId) {
    if (!item) return;
    if (item.id && state.seen.has(item.id)) return;
    if (item.id) state.seen.add(item.id);
    var box = $("transcript");
    var cid = item.conversation_id || conversationId || null;
    if (cid && cid !== state.lastConversation) {
      if (state.lastConversation !== null || cid !== state.selected) {
        box.appendChild(el("div", "conv-sep", "Conversación #" + cid));
      }
      state.lastConversation = cid;
    }
    var near = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    box.appendChild(bubble(item));
    if (near) box.scrollTop = box.scrollHeight;
  }

  function renderOrders(orders) {
    var box = $("orders");
    clear(box);
    if (!orders.length) {
      box.appendChild(el("p", "empty", "Sin pedidos."));
      return;
    }
    orders.forEach(function (o) {
      var card = el("div", "mini");
      var head = el("div", "mini-head");
      head.appendChild(el("span", "mono", o.number || ""));
      head.appendChild(el("span", "muted",
                          o.delivered_at ? "entregado " + o.delivered_at : "sin entregar"));
      card.appendChild(head);
      var ul = el("ul", "lines");
      (o.lines || []).forEach(function (line) {
        ul.appendChild(el("li", null, (line.product || "") +
                          (line.category ? " (" + line.category + ")" : "")));
      });
      card.appendChild(ul);
      box.appendChild(card);
    });
  }

  function renderCases(cases) {
    var box = $("cases");
    clear(box);
    if (!cases.length) {
      box.appendChild(el("p", "empty", "Sin casos."));
      return;
    }
    cases.forEach(function (c) {
      var card = el("div", "mini case" + (c.is_handoff_case ? " case-current" : ""));
      card.dataset.number = c.number || "";
      var head = el("div", "mini-head");
      head.appendChild(el("span", "mono", c.number || ""));
      head.appendChild(el("span", "badge", CASE_STATUS[c.status] || c.status || ""));
      head.appendChild(el("span", "muted", c.type || ""));
      card.appendChild(head);
      if (c.resolution) card.appendChild(el("p", "resolution", "Resolución: " + c.resolution));
      var notes = c.notes || [];
      if (notes.length) {
        var ul = el("ul", "notes");
        notes.forEach(function (n) {
          var li = el("li", "note");
          li.appendChild(el("span", "note-meta", (n.author || "") + " · " + clock(n.at)));
          li.appendChild(el("span", "note-text", n.text || ""));
          ul.appendChild(li);
        });
        card.appendChild(ul);
      }
      box.appendChild(card);
    });
  }

  // --- actions --------------------------------------------------------------------------

  function act(path, body, button) {
    if (!state.selected) return Promise.reject(new ApiError(0, "none", "Nada seleccionado."));
    if (button) button.disabled = true;
    var id = state.selected;
    return api("/console/api/conversations/" + encodeURIComponent(id) + "/" + path, "POST", body)
      .finally(function () { if (button) button.disabled = false; });
  }

  function onClaim() {
    act("claim", {}, $("btn-claim")).then(function () {
      hideBanner();
      refreshQueue();
      return loadDetail(state.selected);
    }).then(function () { $("reply-text").focus(); }).catch(fail);
  }

  function onReply(ev) {
    ev.preventDefault();
    var box = $("reply-text");
    var text = box.value.trim();
    if (!text) return;
    act("reply", { text: text }, $("btn-reply")).then(function (item) {
      box.value = "";
      hideBanner();
      appendItem(item, state.selected);
      var t = $("transcript");
      t.scrollTop = t.scrollHeight;
    }).catch(fail);
  }

  function onNote(ev) {
    ev.preventDefault();
    var box = $("note-text");
    var text = box.value.trim();
    if (!text) return;
    act("note", { text: text }, $("btn-note")).then(function () {
      box.value = "";
      banner("Nota interna guardada.", "info");
      return loadDetail(state.selected);
    }).catch(fail);
  }

  function onStatus() {
    act("status", { status: $("case-status").value }, $("btn-status")).then(function () {
      banner("Estado del caso actualizado.", "info");
      return loadDetail(state.selected);
    }).catch(fail);
  }

  function onResolution(ev) {
    ev.preventDefault();
    var text = $("resolution-text").value.trim();
    if (!text) return;
    act("resolution", { text: text }, $("btn-resolution")).then(function () {
      banner("Resolución guardada.", "info");
      $("resolution-text").blur();
      return loadDetail(state.selected);
    }).catch(fail);
  }

  function onTransfer(ev) {
    ev.preventDefault();
    var username = $("transfer-user").value.trim();
    if (!username) return;
    act("transfer", { username: username }, $("btn-transfer")).then(function (row) {
      $("transfer-user").value = "";
      banner("Conversación transferida a " + ((row && row.agent) || username) + ".", "info");
      refreshQueue();
      return loadDetail(state.selected);
    }).catch(fail);
  }

  function onClose() {
    act("close", {}, $("btn-close")).then(function (row) {
      banner(row && row.survey_sent === false
        ? "Conversación cerrada. No se pudo enviar la encuesta."
        : "Conversación cerrada: el cliente ha recibido la encuesta.", "info");
      refreshQueue();
      return loadDetail(state.selected);
    }).catch(fail);
  }

  function onLogout() {
    api("/console/logout", "POST", {}).catch(function () { return null; }).then(function () {
      location.assign("/console/login");
    });
  }

  // --- live events ----------------------------------------------------------------------

  function setConnected(on) {
    var c = $("conn");
    c.textContent = on ? "En directo" : "Reconectando…";
    c.className = "conn " + (on ? "conn-on" : "conn-off");
    document.body.dataset.live = on ? "1" : "0";
  }

  function showTyping(id) {
    if (state.typingTimers[id]) clearTimeout(state.typingTimers[id]);
    state.typingTimers[id] = setTimeout(function () {
      delete state.typingTimers[id];
      setTyping(id, false);
    }, 6000);
    setTyping(id, true);
  }

  function setTyping(id, on) {
    var li = document.querySelector('#queue .queue-item[data-id="' + String(Number(id)) + '"]');
    if (li) {
      var t = li.querySelector(".q-typing");
      if (t) t.hidden = !on;
    }
    if (state.selected === id) $("typing").hidden = !on;
  }

  function handle(event) {
    if (!event || typeof event !== "object") return;
    state.received.push(event.type);  // what arrived, for diagnosis (last 50 kinds)
    if (state.received.length > 50) state.received.shift();
    var id = event.conversation_id;
    switch (event.type) {
      case "queue":
        scheduleQueue();
        break;
      case "message":
        if (id === state.selected) {
          appendItem(event.item, id);
          if (event.item && (event.item.from || event.item.author) === "customer") {
            if (state.typingTimers[id]) clearTimeout(state.typingTimers[id]);
            delete state.typingTimers[id];
            setTyping(id, false);
          }
        }
        scheduleQueue();
        break;
      case "typing":
        showTyping(id);
        break;
      case "claimed":
      case "closed":
      case "transferred":
        scheduleQueue();
        if (id === state.selected) scheduleDetail();
        break;
      case "logout":
        location.assign("/console/login");
        break;
      default:
        break;
    }
  }

  function connect() {
    if (state.events) state.events.close();
    var source = new EventSource("/console/events");
    state.events = source;
    source.onopen = function () {
      setConnected(true);
      refreshQueue();  // whatever happened while we were away
      if (state.selected) loadDetail(state.selected);
    };
    source.onmessage = function (ev) {
      var data;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      handle(data);
    };
    source.onerror = function () {
      setConnected(false);
      if (source.readyState === EventSource.CLOSED) {
        // the server refused (session gone?) or went away: check, then try again
        api("/console/api/me").then(function () {
          setTimeout(connect, 3000);
        }).catch(function () { setTimeout(connect, 5000); });
      }
    };
  }

  // --- start ----------------------------------------------------------------------------

  function start() {
    $("banner-close").addEventListener("click", hideBanner);
    $("logout").addEventListener("click", onLogout);
    $("btn-claim").addEventListener("click", onClaim);
    $("btn-close").addEventListener("click", onClose);
    $("reply-form").addEventListener("submit", onReply);
    $("reply-text").addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) onReply(ev);
    });
    $("note-form").addEventListener("submit", onNote);
    $("btn-status").addEventListener("click", onStatus);
    $("resolution-form").addEventListener("submit", onResolution);
    $("transfer-form").addEventListener("submit", onTransfer);
    setInterval(tickWaits, 5000);

    api("/console/api/me").then(function (me) {
      state.me = me;
      state.csrf = me.csrf_token;
      $("me").textContent = me.username + " · " + (me.role === "admin" ? "admin" : "agente")
        + " · " + me.team;
      $("kb-link").hidden = me.role !== "admin";
      $("learn-link").hidden = me.role !== "admin";
      $("privacy-link").hidden = me.role !== "admin";
      $("people-link").hidden = me.role !== "admin";
      connect();
      return refreshQueue();
    }).then(function () {
      // "/console#c123" (e.g. from the learning inbox) opens that conversation
      var wanted = /^#c(\d+)$/.exec(window.location.hash);
      if (wanted) select(Number(wanted[1]));
      document.body.dataset.ready = "1";
    }).catch(function (err) {
      if (err.status !== 401) banner(err.message, "error");
    });
  }

  window.PostventaConsole = { state: state, refresh: refreshQueue };
  start();
})();
