/*
 * Postventa chat widget: one tag on any page,
 *   <script src="https://hub.example/widget.js" data-lang="es" data-open="true" defer></script>
 * Plain JavaScript, no dependencies, no build step. Speaks the /ws protocol described in
 * docs/widget-protocol.md. Everything that comes from the hub is rendered as text
 * (textContent / createTextNode), never as HTML.
 */
(function () {
  "use strict";

  if (window.PostventaWidget) return; // loaded twice: keep the first one

  // --- where we come from -----------------------------------------------------------------

  var script = document.currentScript;
  if (!script) {
    var all = document.querySelectorAll("script[src]");
    for (var s = all.length - 1; s >= 0; s--) {
      if (/\/widget\.js(\?|#|$)/.test(all[s].getAttribute("src") || "")) {
        script = all[s];
        break;
      }
    }
  }
  var scriptUrl = new URL((script && script.src) || "/widget.js", window.location.href);
  var HUB = scriptUrl.origin;
  var WS_URL = (scriptUrl.protocol === "https:" ? "wss://" : "ws://") + scriptUrl.host + "/ws";
  var CSS_URL = new URL("widget.css", scriptUrl).href;
  var attr = function (name) {
    return script ? script.getAttribute(name) : null;
  };

  // --- texts of the widget itself (what the hub says comes from the hub) --------------------

  var STRINGS = {
    es: {
      title: "Atención al cliente",
      subtitle: "Asistente virtual",
      openChat: "Abrir el chat de atención al cliente",
      closeChat: "Cerrar el chat",
      dialog: "Chat de atención al cliente",
      log: "Conversación",
      inputLabel: "Tu mensaje",
      placeholder: "Escribe tu mensaje…",
      send: "Enviar",
      attach: "Adjuntar una foto",
      language: "Idioma de la conversación",
      langEs: "Español",
      langEn: "Inglés (English)",
      menu: "Más opciones",
      telegram: "Continuar en Telegram",
      telegramOpened: "Te hemos abierto Telegram. Si no se ha abierto, usa este enlace: ",
      telegramFailed: "Ahora mismo no podemos enlazar con Telegram. Inténtalo de nuevo más tarde.",
      connecting: "Conectando…",
      reconnecting: "Reconectando… Puedes seguir escribiendo: lo enviaremos al volver.",
      offline: "Sin conexión a internet. Reconectando en cuanto vuelva…",
      typing: "Escribiendo una respuesta…",
      you: "Tú",
      bot: "Asistente virtual",
      agent: "Agente (persona del equipo)",
      system: "Aviso",
      pending: "Pendiente de envío",
      failed: "No se ha podido enviar",
      photoSent: "📷 Foto enviada",
      uploading: "Enviando la foto…",
      tooLarge: "La foto es demasiado grande. Prueba con una de menos de 5 MB.",
      wrongType: "Ese archivo no parece una foto. Puedes enviar imágenes JPEG, PNG o WebP.",
      tooMany: "Ya has enviado el máximo de fotos para esta conversación.",
      uploadFailed: "No hemos podido subir la foto. Inténtalo de nuevo en un momento.",
      noConversation: "Escribe un mensaje antes de enviar una foto.",
      photoNotExpected: "Ahora no hace falta ninguna foto. Si la necesitamos, te la pediremos.",
      photoTooFast: "Vas un poco rápido. Espera unos segundos y vuelve a enviar la foto.",
      storageFull: "Ahora no podemos guardar fotos. Puedes seguir sin ella o enviarla más tarde.",
      slowDown: "Vas un poco rápido: enviaremos tu mensaje en un momento.",
      unavailable: "Ahora mismo tenemos un problema técnico. Tu mensaje se ha guardado.",
      rejected: "No hemos podido procesar ese mensaje.",
    },
    en: {
      title: "Customer support",
      subtitle: "Virtual assistant",
      openChat: "Open the customer support chat",
      closeChat: "Close the chat",
      dialog: "Customer support chat",
      log: "Conversation",
      inputLabel: "Your message",
      placeholder: "Type your message…",
      send: "Send",
      attach: "Attach a photo",
      language: "Conversation language",
      langEs: "Spanish (Español)",
      langEn: "English",
      menu: "More options",
      telegram: "Continue on Telegram",
      telegramOpened: "We opened Telegram for you. If it did not open, use this link: ",
      telegramFailed: "We can't link to Telegram right now. Please try again later.",
      connecting: "Connecting…",
      reconnecting: "Reconnecting… You can keep typing: we'll send it when we're back.",
      offline: "No internet connection. Reconnecting as soon as it's back…",
      typing: "Typing a reply…",
      you: "You",
      bot: "Virtual assistant",
      agent: "Agent (a person from our team)",
      system: "Notice",
      pending: "Waiting to be sent",
      failed: "Could not be sent",
      photoSent: "📷 Photo sent",
      uploading: "Sending the photo…",
      tooLarge: "That photo is too large. Please try one under 5 MB.",
      wrongType: "That file doesn't look like a photo. You can send JPEG, PNG or WebP images.",
      tooMany: "You've already sent the maximum number of photos for this conversation.",
      uploadFailed: "We couldn't upload the photo. Please try again in a moment.",
      noConversation: "Please write a message before sending a photo.",
      photoNotExpected: "We don't need a photo right now. If we do, we'll ask you for one.",
      photoTooFast: "You're going a little fast. Wait a few seconds and send the photo again.",
      storageFull: "We can't store photos right now. You can carry on without it or send it later.",
      slowDown: "You're going a little fast: we'll send your message in a moment.",
      unavailable: "We're having a technical problem right now. Your message has been saved.",
      rejected: "We couldn't process that message.",
    },
  };
  var LANGS = ["es", "en"];
  var PHOTO_TYPES = ["image/jpeg", "image/png", "image/webp"];
  var SENDER_RE = /^[A-Za-z0-9_-]{16,128}$/;
  var KEY_SENDER = "pv.sender";
  var KEY_OUTBOX = "pv.outbox";
  var KEY_LANG = "pv.lang";
  var KEY_OPEN = "pv.open";

  // --- storage that survives disabled localStorage ----------------------------------------

  var memory = {};
  function storeGet(key, session) {
    try {
      var v = (session ? window.sessionStorage : window.localStorage).getItem(key);
      return v === null ? memory[key] || null : v;
    } catch (e) {
      return memory[key] || null;
    }
  }
  function storeSet(key, value, session) {
    memory[key] = value;
    try {
      (session ? window.sessionStorage : window.localStorage).setItem(key, value);
    } catch (e) {
      /* private mode or quota: the in-memory copy still works for this page */
    }
  }

  function uuid() {
    var c = window.crypto || window.msCrypto;
    if (c && typeof c.randomUUID === "function") return c.randomUUID();
    var b = new Uint8Array(16);
    if (c && c.getRandomValues) {
      c.getRandomValues(b);
    } else {
      for (var i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) {
      return (x + 0x100).toString(16).slice(1);
    }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" +
      h.slice(16, 20) + "-" + h.slice(20);
  }

  var sender = storeGet(KEY_SENDER);
  if (!sender || !SENDER_RE.test(sender)) {
    sender = uuid();
    storeSet(KEY_SENDER, sender);
  }

  function loadOutbox() {
    try {
      var raw = JSON.parse(storeGet(KEY_OUTBOX) || "[]");
      return Array.isArray(raw) ? raw.filter(function (m) {
        return m && typeof m.id === "string" && typeof m.text === "string" &&
          (!m.sender || m.sender === sender);
      }) : [];
    } catch (e) {
      return [];
    }
  }
  var outbox = loadOutbox(); // [{id, text, label, sender}], oldest first
  function saveOutbox() {
    storeSet(KEY_OUTBOX, JSON.stringify(outbox));
  }
  function inOutbox(id) {
    for (var i = 0; i < outbox.length; i++) if (outbox[i].id === id) return outbox[i];
    return null;
  }

  // --- language ------------------------------------------------------------------------------

  function normLang(value) {
    var l = String(value || "").trim().toLowerCase().slice(0, 2);
    return LANGS.indexOf(l) >= 0 ? l : null;
  }
  var lang = normLang(storeGet(KEY_LANG)) || normLang(attr("data-lang")) ||
    normLang(document.documentElement.getAttribute("lang")) ||
    normLang(navigator.language) || "es";
  function t(key) {
    return (STRINGS[lang] && STRINGS[lang][key]) || STRINGS.es[key] || key;
  }
  function locale() {
    var nav = String(navigator.language || "");
    return normLang(nav) === lang && /^[A-Za-z]{2}([-_][A-Za-z0-9]{2,8})?$/.test(nav) ? nav : lang;
  }

  // --- DOM helpers ---------------------------------------------------------------------------

  var SVG_NS = "http://www.w3.org/2000/svg";
  function el(tag, cls, props) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (props) {
      for (var k in props) {
        if (k === "text") node.textContent = props[k];
        else node.setAttribute(k, props[k]);
      }
    }
    return node;
  }
  function icon(paths) {
    var svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.setAttribute("class", "pv-icon");
    paths.forEach(function (d) {
      var p = document.createElementNS(SVG_NS, "path");
      p.setAttribute("d", d);
      svg.appendChild(p);
    });
    return svg;
  }
  // i18n: element text and/or attributes follow the current language
  function tr(node, key, attrName) {
    if (attrName) node.setAttribute("data-pv-i18n-" + attrName, key);
    else node.setAttribute("data-pv-i18n", key);
    return node;
  }

  var ICON_CHAT = ["M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 " +
    "2-2zm3 6.5a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01z"];
  var ICON_CLOSE = ["M6.4 5 5 6.4 10.6 12 5 17.6 6.4 19l5.6-5.6 5.6 5.6 1.4-1.4-5.6-5.6L19 " +
    "6.4 17.6 5 12 10.6z"];
  var ICON_SEND = ["M3.4 20.4 21 12 3.4 3.6 3.4 10.1 15 12 3.4 13.9z"];
  var ICON_CLIP = ["M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5.5a3 3 0 0 1 6 0V15a1.5 1.5 0 0 1-3 0V6.5H9" +
    "V15a3 3 0 0 0 6 0V5.5a4.5 4.5 0 0 0-9 0v11a6 6 0 0 0 12 0v-10z"];
  var ICON_MORE = ["M12 8a2 2 0 1 0 0-4 2 2 0 0 0 0 4zm0 2a2 2 0 1 0 0 4 2 2 0 0 0 0-4zm0 " +
    "6a2 2 0 1 0 0 4 2 2 0 0 0 0-4z"];

  // --- the widget's DOM ----------------------------------------------------------------------

  var root = el("div", "pv-root");
  root.style.display = "none"; // until widget.css is in (no unstyled flash on the host page)

  var bubble = el("button", "pv-bubble", {
    type: "button", "aria-expanded": "false", "aria-controls": "pv-panel",
  });
  tr(bubble, "openChat", "aria-label");
  bubble.appendChild(icon(ICON_CHAT));
  var bubbleClose = icon(ICON_CLOSE);
  bubbleClose.setAttribute("class", "pv-icon pv-icon-close");
  bubble.appendChild(bubbleClose);
  var unreadDot = el("span", "pv-unread", { "aria-hidden": "true" });
  bubble.appendChild(unreadDot);

  var panel = el("div", "pv-panel", { id: "pv-panel", role: "dialog" });
  tr(panel, "dialog", "aria-label");
  panel.hidden = true;

  var header = el("div", "pv-header");
  var heading = el("div", "pv-heading");
  var titles = el("div", "pv-titles");
  titles.appendChild(tr(el("div", "pv-title", { id: "pv-title" }), "title"));
  titles.appendChild(tr(el("div", "pv-subtitle"), "subtitle"));
  heading.appendChild(titles);

  var tools = el("div", "pv-tools");
  var langGroup = tr(el("div", "pv-lang", { role: "group" }), "language", "aria-label");
  var langButtons = {};
  LANGS.forEach(function (l) {
    var b = el("button", "pv-lang-btn", { type: "button", "data-lang": l, lang: l,
      text: l.toUpperCase() });
    tr(b, l === "es" ? "langEs" : "langEn", "aria-label");
    b.addEventListener("click", function () {
      setLanguage(l, true);
    });
    langButtons[l] = b;
    langGroup.appendChild(b);
  });

  var menuWrap = el("div", "pv-menu-wrap");
  var menuBtn = el("button", "pv-icon-btn pv-menu-btn", {
    type: "button", "aria-haspopup": "true", "aria-expanded": "false", "aria-controls": "pv-menu",
  });
  tr(menuBtn, "menu", "aria-label");
  menuBtn.appendChild(icon(ICON_MORE));
  var menu = el("div", "pv-menu", { id: "pv-menu", role: "menu" });
  menu.hidden = true;
  var telegramItem = tr(el("button", "pv-menu-item pv-telegram", {
    type: "button", role: "menuitem",
  }), "telegram");
  menu.appendChild(telegramItem);
  menuWrap.appendChild(menuBtn);
  menuWrap.appendChild(menu);
  menuWrap.hidden = true; // only when the hub has a Telegram bot

  var closeBtn = el("button", "pv-icon-btn pv-close", { type: "button" });
  tr(closeBtn, "closeChat", "aria-label");
  closeBtn.appendChild(icon(ICON_CLOSE));
  tools.appendChild(langGroup);
  tools.appendChild(menuWrap);
  tools.appendChild(closeBtn);
  header.appendChild(heading);
  header.appendChild(tools);

  var status = el("div", "pv-status", { role: "status", "aria-live": "polite" });
  status.hidden = true;

  var log = el("div", "pv-log", {
    role: "log", "aria-live": "polite", "aria-relevant": "additions", tabindex: "0",
  });
  tr(log, "log", "aria-label");

  var typing = el("div", "pv-typing", { "aria-live": "polite" });
  var typingDots = el("span", "pv-dots", { "aria-hidden": "true" });
  for (var d = 0; d < 3; d++) typingDots.appendChild(el("span", "pv-dot"));
  var typingText = el("span", "pv-sr");
  typing.appendChild(typingDots);
  typing.appendChild(typingText);
  typing.hidden = true;

  var form = el("form", "pv-composer", { novalidate: "" });
  var attachBtn = el("button", "pv-icon-btn pv-attach", { type: "button" });
  tr(attachBtn, "attach", "aria-label");
  tr(attachBtn, "attach", "title");
  attachBtn.appendChild(icon(ICON_CLIP));
  attachBtn.hidden = true;
  var fileInput = el("input", "pv-file", {
    type: "file", accept: PHOTO_TYPES.join(","), tabindex: "-1", "aria-hidden": "true",
  });
  fileInput.hidden = true;
  var inputLabel = tr(el("label", "pv-sr", { for: "pv-input" }), "inputLabel");
  var input = el("textarea", "pv-input", { id: "pv-input", rows: "1", autocomplete: "off" });
  tr(input, "placeholder", "placeholder");
  var sendBtn = el("button", "pv-send", { type: "submit" });
  tr(sendBtn, "send", "aria-label");
  tr(sendBtn, "send", "title");
  sendBtn.appendChild(icon(ICON_SEND));
  form.appendChild(attachBtn);
  form.appendChild(fileInput);
  form.appendChild(inputLabel);
  form.appendChild(input);
  form.appendChild(sendBtn);

  panel.appendChild(header);
  panel.appendChild(status);
  panel.appendChild(log);
  panel.appendChild(typing);
  panel.appendChild(form);
  root.appendChild(panel);
  root.appendChild(bubble);

  function applyLanguage() {
    root.setAttribute("lang", lang);
    var nodes = root.querySelectorAll("*");
    for (var i = 0; i < nodes.length; i++) {
      var n = nodes[i];
      var names = n.getAttributeNames ? n.getAttributeNames() : [];
      for (var j = 0; j < names.length; j++) {
        var name = names[j];
        if (name === "data-pv-i18n") n.textContent = t(n.getAttribute(name));
        else if (name.indexOf("data-pv-i18n-") === 0) {
          n.setAttribute(name.slice(13), t(n.getAttribute(name)));
        }
      }
    }
    LANGS.forEach(function (l) {
      langButtons[l].setAttribute("aria-pressed", l === lang ? "true" : "false");
    });
    typingText.textContent = typing.hidden ? "" : t("typing");
    renderStatus();
  }

  // --- conversation state and rendering ------------------------------------------------------

  var rendered = Object.create(null); // server id -> element
  var renderedClient = Object.create(null); // client id -> element (customer bubbles)
  var lastBotButtons = []; // button payload -> title, of recent bot messages (labels for history)

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }

  var URL_RE = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;
  function appendText(container, text) {
    // Text only; http(s) links become real links, built from their text, never from HTML.
    var value = String(text == null ? "" : text);
    var last = 0;
    value.replace(URL_RE, function (match, offset) {
      if (offset > last) container.appendChild(document.createTextNode(value.slice(last, offset)));
      var a = el("a", "pv-link", { href: match, target: "_blank", rel: "noopener noreferrer" });
      a.textContent = match;
      container.appendChild(a);
      last = offset + match.length;
      return match;
    });
    if (last < value.length) container.appendChild(document.createTextNode(value.slice(last)));
  }

  function disableChips() {
    var chips = log.querySelectorAll(".pv-chip:not([disabled])");
    for (var i = 0; i < chips.length; i++) {
      chips[i].disabled = true;
      chips[i].setAttribute("aria-disabled", "true");
    }
  }

  function customerLabel(text) {
    if (/^\/inform\{\s*"photo_id"/.test(text)) return t("photoSent");
    if (text.charAt(0) === "/") {
      for (var i = lastBotButtons.length - 1; i >= 0; i--) {
        if (lastBotButtons[i].payload === text) return lastBotButtons[i].title;
      }
    }
    return text;
  }

  function makeRow(kind) {
    var row = el("div", "pv-row pv-row-" + kind);
    var who = el("span", "pv-who");
    tr(who, { customer: "you", bot: "bot", agent: "agent", system: "system" }[kind] || "bot");
    who.textContent = t(who.getAttribute("data-pv-i18n"));
    if (kind !== "agent") who.classList.add("pv-sr");
    row.appendChild(who);
    return row;
  }

  function renderItem(item, opts) {
    opts = opts || {};
    var from = ["customer", "bot", "agent", "system"].indexOf(item.from) >= 0 ? item.from : "bot";
    if (item.id && rendered[item.id]) return rendered[item.id];
    if (from === "customer" && item.client_id && renderedClient[item.client_id]) {
      var existing = renderedClient[item.client_id];
      if (item.id) {
        existing.setAttribute("data-id", item.id);
        rendered[item.id] = existing;
      }
      return existing;
    }
    var row = makeRow(from);
    var msg = el("div", "pv-msg pv-msg-" + from);
    if (from === "customer") {
      appendText(msg, opts.label || customerLabel(String(item.text || "")));
    } else {
      appendText(msg, item.text);
    }
    row.appendChild(msg);
    if (item.id) {
      row.setAttribute("data-id", item.id);
      rendered[item.id] = row;
    }
    if (item.client_id) {
      row.setAttribute("data-client-id", item.client_id);
      if (from === "customer") renderedClient[item.client_id] = row;
    }
    if ((from === "bot" || from === "agent") && Array.isArray(item.buttons) &&
        item.buttons.length) {
      var chips = el("div", "pv-chips", { role: "group" });
      item.buttons.forEach(function (b) {
        if (!b) return;
        var title = String(b.title || b.payload || "");
        var payload = String(b.payload || b.title || "");
        lastBotButtons.push({ title: title, payload: payload });
        var chip = el("button", "pv-chip", { type: "button" });
        chip.textContent = title;
        chip.addEventListener("click", function () {
          if (chip.disabled) return;
          sendText(payload, title);
        });
        chips.appendChild(chip);
      });
      if (lastBotButtons.length > 200) lastBotButtons = lastBotButtons.slice(-100);
      row.appendChild(chips);
    }
    if (item.expects) row.setAttribute("data-expects", String(item.expects));
    if (opts.pending) row.classList.add("pv-pending");
    log.appendChild(row);
    return row;
  }

  function notice(text) {
    var row = makeRow("system");
    row.classList.add("pv-notice");
    var msg = el("div", "pv-msg pv-msg-system");
    appendText(msg, text);
    row.appendChild(msg);
    log.appendChild(row);
    scrollDown();
    return row;
  }

  function noticeWithLink(text, url) {
    var row = notice(text);
    var msg = row.querySelector(".pv-msg");
    var a = el("a", "pv-link", { href: url, target: "_blank", rel: "noopener noreferrer" });
    a.textContent = url;
    msg.appendChild(a);
    return row;
  }

  function markPending(id, state) {
    var row = renderedClient[id];
    if (!row) return;
    row.classList.toggle("pv-pending", state === "pending");
    row.classList.toggle("pv-failed", state === "failed");
    var mark = row.querySelector(".pv-state");
    if (state === "pending" || state === "failed") {
      if (!mark) {
        mark = el("span", "pv-state");
        row.appendChild(mark);
      }
      tr(mark, state === "failed" ? "failed" : "pending");
      mark.textContent = t(state === "failed" ? "failed" : "pending");
    } else if (mark) {
      mark.parentNode.removeChild(mark);
    }
  }

  // Only the chips of the newest bot turn stay active; the attach button follows it too.
  function refreshAffordances() {
    var rows = log.querySelectorAll(".pv-row");
    var lastBot = null;
    for (var i = rows.length - 1; i >= 0; i--) {
      if (rows[i].classList.contains("pv-notice")) continue;
      if (rows[i].classList.contains("pv-row-customer")) break;
      if (rows[i].classList.contains("pv-row-bot") || rows[i].classList.contains("pv-row-agent")) {
        lastBot = lastBot || rows[i];
      }
    }
    attachBtn.hidden = !(lastBot && lastBot.getAttribute("data-expects") === "photo");
  }

  function appendBatch(items) {
    if (!items.length) return;
    var fresh = items.filter(function (it) {
      return it && !(it.id && rendered[it.id]) &&
        !(it.from === "customer" && it.client_id && renderedClient[it.client_id]);
    });
    if (!fresh.length) return;
    disableChips();
    fresh.forEach(function (it) {
      renderItem(it);
    });
    refreshAffordances();
    scrollDown();
    if (panel.hidden) bubble.classList.add("pv-has-unread");
  }

  function replaceHistory(history) {
    log.setAttribute("aria-busy", "true");
    while (log.firstChild) log.removeChild(log.firstChild);
    rendered = Object.create(null);
    renderedClient = Object.create(null);
    lastBotButtons = [];
    history.forEach(function (it) {
      if (it && typeof it === "object") renderItem(it);
    });
    // chips only on the bot messages after the customer's last message
    var rows = log.querySelectorAll(".pv-row");
    var customerSeen = -1;
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].classList.contains("pv-row-customer")) customerSeen = i;
    }
    for (var j = 0; j <= customerSeen; j++) {
      var chips = rows[j].querySelectorAll(".pv-chip");
      for (var k = 0; k < chips.length; k++) {
        chips[k].disabled = true;
        chips[k].setAttribute("aria-disabled", "true");
      }
    }
    // what is still waiting to be sent is shown after the history, once
    outbox.forEach(function (m) {
      if (!renderedClient[m.id]) {
        disableChips();
        renderItem({ from: "customer", text: m.text, client_id: m.id },
          { label: m.label, pending: true });
        markPending(m.id, "pending");
      }
    });
    refreshAffordances();
    log.removeAttribute("aria-busy");
    scrollDown();
  }

  // --- connection ----------------------------------------------------------------------------

  var ws = null;
  var ready = false; // welcome received on the current socket
  var everConnected = false;
  var attempt = 0;
  var reconnectTimer = null;
  var statusTimer = null;
  var pendingLanguage = null;
  var rateNoticeShown = false;
  var ackTimers = Object.create(null);
  var lastTypingSent = 0;
  var telegramBot = null;
  var hasConversation = false; // a hand-over link needs a conversation to continue

  function refreshMenu() {
    // "Continue on Telegram" only when the hub has a bot and there is something to continue
    menuWrap.hidden = !(telegramBot && hasConversation);
    if (menuWrap.hidden) closeMenu(false);
  }

  function renderStatus() {
    var show = !ready && (everConnected || status.getAttribute("data-show") === "1");
    var key = navigator.onLine === false ? "offline" : (everConnected ? "reconnecting" : "connecting");
    status.textContent = show ? t(key) : "";
    status.hidden = !show;
    root.classList.toggle("pv-disconnected", show);
  }

  function setReady(value) {
    ready = value;
    clearTimeout(statusTimer);
    if (!value && !everConnected) {
      // the first connection gets a moment before "Connecting…" shows
      statusTimer = setTimeout(function () {
        status.setAttribute("data-show", "1");
        renderStatus();
      }, 800);
    }
    renderStatus();
  }

  function sendFrame(frame) {
    if (!ws || ws.readyState !== 1) return false;
    try {
      ws.send(JSON.stringify(frame));
      return true;
    } catch (e) {
      return false;
    }
  }

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (ws && (ws.readyState === 0 || ws.readyState === 1)) return;
    var sock;
    try {
      sock = new WebSocket(WS_URL);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    ws = sock;
    sock.onopen = function () {
      if (sock !== ws) return;
      sock.send(JSON.stringify({ type: "hello", sender: sender, locale: locale() }));
    };
    sock.onmessage = function (ev) {
      if (sock !== ws) return;
      var frame;
      try {
        frame = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (frame && typeof frame === "object") handleFrame(frame);
    };
    sock.onclose = function () {
      if (sock !== ws) return;
      ws = null;
      setReady(false);
      setTyping(false);
      scheduleReconnect();
    };
    sock.onerror = function () {
      /* a close event follows */
    };
  }

  function scheduleReconnect() {
    if (reconnectTimer) return;
    var base = Math.min(8000, 500 * Math.pow(2, attempt));
    attempt = Math.min(attempt + 1, 10);
    var delay = base * (0.75 + Math.random() * 0.5);
    reconnectTimer = setTimeout(function () {
      reconnectTimer = null;
      connect();
    }, delay);
  }

  function reconnectNow() {
    attempt = 0;
    if (ws && ws.readyState === 1 && ready) return;
    if (ws && ws.readyState === 0) return;
    connect();
  }

  function drop() {
    // the socket is gone (or silently dead): close it; onclose reconnects
    if (ws) {
      try {
        ws.close();
      } catch (e) {
        /* already closed */
      }
    }
  }

  // Messages go out in order. After a rate_limited, nothing more is sent until the pause is
  // over; then the outbox goes again, oldest first (the hub answers frames in order).
  var inflight = Object.create(null); // ids sent on the current socket, waiting for ack / rate_limited
  var pausedUntil = 0;
  var pauseTimer = null;

  function transmit(m) {
    if (!ready || inflight[m.id]) return;
    var wait = pausedUntil - Date.now();
    if (wait > 0) {
      if (!pauseTimer) {
        pauseTimer = setTimeout(function () {
          pauseTimer = null;
          flushOutbox();
        }, wait);
      }
      return;
    }
    if (sendFrame({ type: "message", id: m.id, sender: sender, text: m.text })) {
      inflight[m.id] = true;
      clearTimeout(ackTimers[m.id]);
      // no ack in time: the socket is probably dead although it looks open
      ackTimers[m.id] = setTimeout(function () {
        if (inOutbox(m.id) && ready) drop();
      }, 30000);
    }
  }

  function flushOutbox() {
    outbox.slice().forEach(transmit);
  }

  function forget(id) {
    outbox = outbox.filter(function (m) {
      return m.id !== id;
    });
    saveOutbox();
    clearTimeout(ackTimers[id]);
    delete ackTimers[id];
    delete inflight[id];
    if (!outbox.length) rateNoticeShown = false; // the next slow-down gets its notice again
  }

  function setTyping(on) {
    typing.hidden = !on;
    typingText.textContent = on ? t("typing") : "";
    if (on) scrollDown();
  }

  function setLanguage(value, fromUser) {
    var l = normLang(value);
    if (!l) return;
    var changed = l !== lang;
    lang = l;
    if (fromUser) {
      storeSet(KEY_LANG, l);
      if (!(ready && sendFrame({ type: "language", sender: sender, language: l }))) {
        pendingLanguage = l;
      }
    }
    if (changed || fromUser) applyLanguage();
  }

  function handleFrame(f) {
    switch (f.type) {
      case "welcome": {
        var history = Array.isArray(f.history) ? f.history : [];
        everConnected = true;
        attempt = 0;
        inflight = Object.create(null);
        pausedUntil = 0;
        setReady(true);
        telegramBot = f.telegram || null;
        if (history.length) hasConversation = true;
        refreshMenu();
        // an existing conversation has its language; a new one keeps the page's / the choice
        if (normLang(f.language) && history.length && !pendingLanguage) {
          setLanguage(f.language, false);
        }
        replaceHistory(history);
        if (pendingLanguage) {
          var pl = pendingLanguage;
          pendingLanguage = null;
          sendFrame({ type: "language", sender: sender, language: pl });
        }
        flushOutbox();
        break;
      }
      case "ack": {
        if (typeof f.id !== "string") break;
        hasConversation = true;
        refreshMenu();
        forget(f.id);
        markPending(f.id, "sent");
        break;
      }
      case "rate_limited": {
        // not accepted: it stays in the outbox and goes again after the pause
        if (f.text && !rateNoticeShown) {
          rateNoticeShown = true;
          notice(String(f.text));
        }
        if (typeof f.id === "string") {
          delete inflight[f.id];
          clearTimeout(ackTimers[f.id]);
        }
        var wait = Math.max(0.2, Math.min(60, Number(f.retry_after) || 1)) * 1000;
        pausedUntil = Math.max(pausedUntil, Date.now() + wait);
        clearTimeout(pauseTimer);
        pauseTimer = setTimeout(function () {
          pauseTimer = null;
          flushOutbox();
        }, pausedUntil - Date.now());
        break;
      }
      case "typing":
        setTyping(!!f.on);
        break;
      case "messages": {
        setTyping(false);
        var items = Array.isArray(f.messages) ? f.messages : [];
        if (typeof f.reply_to === "string" && inOutbox(f.reply_to)) {
          // the answer implies the message was stored
          forget(f.reply_to);
          markPending(f.reply_to, "sent");
        }
        appendBatch(items);
        break;
      }
      case "language":
        setLanguage(f.language, false);
        break;
      case "error": {
        var code = String(f.code || "");
        var id = typeof f.id === "string" ? f.id : null;
        if (code === "bad_sender") {
          // our id is not acceptable: start over with a fresh one
          sender = uuid();
          storeSet(KEY_SENDER, sender);
          outbox.forEach(function (x) {
            x.sender = sender;
          });
          saveOutbox();
          drop();
        } else if ((code === "bad_frame" || code === "foreign_session") && id && inOutbox(id)) {
          forget(id); // resending it would be refused again
          markPending(id, "failed");
          notice(f.text ? String(f.text) : t("rejected"));
        } else if (code === "unavailable") {
          setTyping(false);
          notice(f.text ? String(f.text) : t("unavailable"));
        }
        break;
      }
      default:
        break;
    }
  }

  // --- customer actions ----------------------------------------------------------------------

  function sendText(text, label) {
    var value = String(text);
    if (!value.trim()) return;
    var m = { id: "c-" + uuid(), text: value, sender: sender };
    if (label && label !== value) m.label = String(label);
    outbox.push(m);
    saveOutbox();
    disableChips();
    renderItem({ from: "customer", text: value, client_id: m.id },
      { label: m.label || value, pending: !ready });
    if (!ready) markPending(m.id, "pending");
    refreshAffordances();
    scrollDown();
    transmit(m);
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var value = input.value;
    if (!value.trim()) {
      input.focus();
      return;
    }
    input.value = "";
    autosize();
    sendText(value);
    input.focus();
  });

  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
      ev.preventDefault();
      if (typeof form.requestSubmit === "function") form.requestSubmit();
      else form.dispatchEvent(new Event("submit", { cancelable: true }));
    }
  });

  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 140) + "px";
  }
  input.addEventListener("input", function () {
    autosize();
    var now = Date.now();
    if (ready && input.value.trim() && now - lastTypingSent > 4000) {
      lastTypingSent = now;
      sendFrame({ type: "typing", sender: sender });
    }
  });

  attachBtn.addEventListener("click", function () {
    fileInput.value = "";
    fileInput.click();
  });

  fileInput.addEventListener("change", function () {
    var file = fileInput.files && fileInput.files[0];
    if (file) upload(file);
  });

  function upload(file) {
    var type = String(file.type || "").toLowerCase();
    if (PHOTO_TYPES.indexOf(type) < 0) {
      notice(t("wrongType"));
      return;
    }
    var cid = "u-" + uuid();
    // the chips stay usable until the photo is accepted (a refused one changes nothing)
    var photoRow = renderItem({ from: "customer", text: "", client_id: cid },
      { label: t("photoSent") });
    markPending(cid, "pending");
    scrollDown();
    var pendingNotice = tr(notice(t("uploading")).querySelector(".pv-msg"), "uploading");
    attachBtn.disabled = true;
    setTyping(true);
    var done = function () {
      attachBtn.disabled = false;
      setTyping(false);
      var row = pendingNotice.parentNode;
      if (row && row.parentNode) row.parentNode.removeChild(row);
    };
    fetch(HUB + "/api/uploads?sender=" + encodeURIComponent(sender), {
      method: "POST", body: file, headers: { "Content-Type": type }, credentials: "omit",
    }).then(function (resp) {
      if (!resp.ok) {
        // 429 is either the rate limit ("rate_limited") or the photos-per-conversation cap
        return resp.json().catch(function () {
          return {};
        }).then(function (body) {
          var key = { 413: "tooLarge", 415: "wrongType", 422: "wrongType", 429: "tooMany",
            404: "noConversation", 409: "photoNotExpected", 507: "storageFull" }[resp.status];
          if (resp.status === 429 && body && body.error === "rate_limited") key = "photoTooFast";
          var err = new Error(key || "uploadFailed");
          err.key = key || "uploadFailed";
          throw err;
        });
      }
      return resp.json();
    }).then(function (body) {
      done();
      markPending(cid, "sent");
      var items = (body && Array.isArray(body.messages) ? body.messages : []).map(function (x) {
        var copy = {};
        for (var k in x) copy[k] = x[k];
        copy.from = copy.from || "bot";
        return copy;
      });
      disableChips();
      appendBatch(items);
    }).catch(function (err) {
      done();
      if (photoRow.parentNode) photoRow.parentNode.removeChild(photoRow);
      delete renderedClient[cid];
      notice(t(err && err.key ? err.key : "uploadFailed"));
    });
  }

  // --- Telegram hand-over --------------------------------------------------------------------

  function openMenu() {
    menu.hidden = false;
    menuBtn.setAttribute("aria-expanded", "true");
    telegramItem.focus();
  }
  function closeMenu(focusButton) {
    if (menu.hidden) return;
    menu.hidden = true;
    menuBtn.setAttribute("aria-expanded", "false");
    if (focusButton) menuBtn.focus();
  }
  menuBtn.addEventListener("click", function () {
    if (menu.hidden) openMenu();
    else closeMenu(true);
  });
  document.addEventListener("click", function (ev) {
    if (!menu.hidden && !menuWrap.contains(ev.target)) closeMenu(false);
  });

  telegramItem.addEventListener("click", function () {
    closeMenu(true);
    fetch(HUB + "/api/telegram-link", {
      method: "POST", headers: { "Content-Type": "application/json" }, credentials: "omit",
      body: JSON.stringify({ sender: sender }),
    }).then(function (resp) {
      if (!resp.ok) throw new Error(String(resp.status));
      return resp.json();
    }).then(function (body) {
      var url = body && typeof body.url === "string" ? body.url : "";
      if (!/^https:\/\//i.test(url)) throw new Error("bad url");
      window.open(url, "_blank", "noopener,noreferrer");
      noticeWithLink(t("telegramOpened"), url);
    }).catch(function () {
      notice(t("telegramFailed"));
    });
  });

  // --- open / close, keyboard ----------------------------------------------------------------

  function isOpen() {
    return !panel.hidden;
  }
  function open(focus) {
    if (!isOpen()) {
      panel.hidden = false;
      root.classList.add("pv-open");
      bubble.setAttribute("aria-expanded", "true");
      tr(bubble, "closeChat", "aria-label");
      bubble.setAttribute("aria-label", t("closeChat"));
      bubble.classList.remove("pv-has-unread");
      storeSet(KEY_OPEN, "1", true);
      scrollDown();
    }
    if (focus !== false) input.focus();
  }
  function close(focusBubble) {
    if (!isOpen()) return;
    closeMenu(false);
    panel.hidden = true;
    root.classList.remove("pv-open");
    bubble.setAttribute("aria-expanded", "false");
    tr(bubble, "openChat", "aria-label");
    bubble.setAttribute("aria-label", t("openChat"));
    storeSet(KEY_OPEN, "0", true);
    if (focusBubble !== false) bubble.focus();
  }
  bubble.addEventListener("click", function () {
    if (isOpen()) close(true);
    else open(true);
  });
  closeBtn.addEventListener("click", function () {
    close(true);
  });
  root.addEventListener("keydown", function (ev) {
    if (ev.key !== "Escape" && ev.key !== "Esc") return;
    if (!menu.hidden) {
      ev.stopPropagation();
      closeMenu(true);
      return;
    }
    if (isOpen()) {
      ev.stopPropagation();
      close(true);
    }
  });

  window.addEventListener("online", function () {
    renderStatus();
    reconnectNow();
  });
  window.addEventListener("offline", function () {
    renderStatus();
    drop();
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && !ready) reconnectNow();
  });

  // --- start ---------------------------------------------------------------------------------

  function mount() {
    if (!document.querySelector('link[data-pv-css="1"]')) {
      var link = el("link", null, { rel: "stylesheet", href: CSS_URL, "data-pv-css": "1" });
      var show = function () {
        root.style.display = "";
      };
      link.addEventListener("load", show);
      link.addEventListener("error", show);
      setTimeout(show, 3000);
      (document.head || document.documentElement).appendChild(link);
    } else {
      root.style.display = "";
    }
    document.body.appendChild(root);
    applyLanguage();
    autosize();
    var startOpen = (attr("data-open") || "").toLowerCase() === "true" ||
      storeGet(KEY_OPEN, true) === "1";
    if (startOpen) {
      var active = document.activeElement;
      open(!active || active === document.body || active === document.documentElement);
    }
    setReady(false);
    connect();
  }

  window.PostventaWidget = {
    open: function () {
      open(true);
    },
    close: function () {
      close(true);
    },
    setLanguage: function (l) {
      setLanguage(l, true);
    },
    get sender() {
      return sender;
    },
    get language() {
      return lang;
    },
    get connected() {
      return ready;
    },
    get _ws() {
      return ws;
    },
    _drop: drop,
    get _outbox() {
      return outbox.slice();
    },
  };

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
