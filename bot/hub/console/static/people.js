/* People page (admins): list staff, add, change role/team, deactivate/reactivate, reset a
 * password, unlock, and the staff audit log. Everything from the server goes on the page with
 * textContent or form values, never as HTML. Calls go through ConsoleApi (console-api.js),
 * which puts the session's CSRF token on state-changing ones. A generated password is shown
 * in one box until the admin hides it; it is kept nowhere else.
 */
(function () {
  "use strict";

  var me = null;
  var ROLES = { agent: "Agente", admin: "Administrador" };
  var ACTIONS = {
    "staff.add": "Alta",
    "staff.update": "Cambio de rol/equipo",
    "staff.deactivate": "Desactivación",
    "staff.reactivate": "Reactivación",
    "staff.reset_password": "Contraseña nueva",
    "staff.unlock": "Desbloqueo"
  };

  var DETAILS = {
    role: "rol", team: "equipo", password: "contraseña", sessions_ended: "sesiones cerradas",
    unlocked: "desbloqueada", was_locked: "estaba bloqueada", failed_logins: "fallos de acceso"
  };
  var VALUES = { generated: "generada", typed: "escrita", agent: "agente", admin: "administrador",
                 "true": "sí", "false": "no" };

  function $(id) { return document.getElementById(id); }

  function value(v) {
    var text = String(v);
    return Object.prototype.hasOwnProperty.call(VALUES, text) ? VALUES[text] : text;
  }

  // {"role": ["agent", "admin"], "sessions_ended": 1} → "rol: agente → administrador · …"
  function details(obj) {
    return Object.keys(obj || {}).map(function (key) {
      var v = obj[key];
      var shown = Array.isArray(v) ? v.map(value).join(" → ") : value(v);
      var label = Object.prototype.hasOwnProperty.call(DETAILS, key) ? DETAILS[key] : key;
      return label + ": " + shown;
    }).join(" · ");
  }

  var call = ConsoleApi.call;

  function say(text, bad) {
    var node = $("msg");
    node.textContent = text;
    node.className = bad ? "error" : "ok";
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  function when(iso) {
    if (!iso) return "nunca";
    var d = new Date(iso);
    return isNaN(d.getTime()) ? iso : d.toLocaleString("es-ES");
  }

  function roleName(role) { return (ROLES[role] || role).toLowerCase(); }

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  function showSecret(username, password) {
    $("secret-user").textContent = username;
    $("secret").value = password;
    $("secret-box").hidden = false;
    $("secret").focus();
    $("secret").select();
  }

  function hideSecret() {
    $("secret").value = "";
    $("secret-user").textContent = "";
    $("secret-box").hidden = true;
  }

  // --- the staff table ------------------------------------------------------------------

  function stateText(u) {
    var parts = [u.active ? "Activo" : "Desactivado"];
    if (u.locked) parts.push("Bloqueado");
    else if (u.failed_logins) parts.push(plural(u.failed_logins, "fallo", "fallos") + " de acceso");
    if (u.sessions) parts.push(plural(u.sessions, "sesión abierta", "sesiones abiertas"));
    if (u.open_conversations) {
      parts.push(plural(u.open_conversations, "conversación abierta", "conversaciones abiertas"));
    }
    return parts.join(" · ");
  }

  function button(label, cls, handler, danger) {
    var b = el("button", label, "btn " + cls + (danger ? " btn-danger" : ""));
    b.type = "button";
    b.addEventListener("click", handler);
    return b;
  }

  // One row per person, kept across refreshes: a refresh (after any action) updates the rows
  // in place, so a role or team the admin is changing in one row (value, focus, caret)
  // survives an action on another row. A field changed since the last refresh keeps its value
  // until "Guardar" on that row answers (saved or refused): then it shows the server's again.
  var rows = new Map();  // username → {tr, user (as last listed), role, team, state, …}
  var staffSeq = 0;
  var freshRows = new Set();  // rows that show the server's values on the next refresh

  function staffRow(username) {
    var r = { tr: el("tr"), user: null };
    r.tr.dataset.username = username;

    var name = el("td", username, "mono");
    if (me && username === me.username) name.appendChild(el("span", " (tú)", "muted"));
    r.tr.appendChild(name);

    r.role = el("select");
    r.role.className = "f-role";
    r.role.setAttribute("aria-label", "Rol de " + username);
    Object.keys(ROLES).forEach(function (key) {
      var opt = el("option", ROLES[key]);
      opt.value = key;
      r.role.appendChild(opt);
    });
    var tdRole = el("td");
    tdRole.appendChild(r.role);
    r.tr.appendChild(tdRole);

    r.team = el("input");
    r.team.className = "f-team";
    r.team.maxLength = 32;
    r.team.setAttribute("aria-label", "Equipo de " + username);
    var tdTeam = el("td");
    tdTeam.appendChild(r.team);
    r.tr.appendChild(tdTeam);

    r.state = el("td", null, "state");
    r.tr.appendChild(r.state);
    r.lastLogin = el("td", null, "last-login");
    r.tr.appendChild(r.lastLogin);
    r.actions = el("td", null, "actions");
    r.tr.appendChild(r.actions);
    return r;
  }

  // the buttons act on the person as last listed (r.user), with the fields as they are now
  function fillRow(r, u, fresh) {
    var before = r.user;
    r.user = u;
    r.tr.className = (u.active ? "" : "inactive") + (u.locked ? " locked" : "");
    if (fresh || !before || r.role.value === before.role) r.role.value = u.role;
    if (fresh || !before || r.team.value === before.team) r.team.value = u.team;
    r.state.textContent = stateText(u);
    r.lastLogin.textContent = when(u.last_login_at);

    clear(r.actions);
    r.actions.appendChild(button("Guardar", "act-save", function () {
      save(r.user, r.role.value, r.team.value);
    }));
    if (u.active) {
      r.actions.appendChild(button("Desactivar", "act-deactivate", function () {
        deactivate(r.user);
      }, true));
    } else {
      r.actions.appendChild(button("Reactivar", "act-reactivate", function () {
        reactivate(r.user);
      }));
    }
    r.actions.appendChild(button("Contraseña nueva", "act-reset", function () { reset(r.user); }));
    if (u.locked || u.failed_logins) {
      r.actions.appendChild(button("Desbloquear", "act-unlock", function () { unlock(r.user); }));
    }
  }

  function loadStaff(fresh) {
    if (fresh) freshRows.add(fresh);
    var seq = ++staffSeq;
    return call("/console/api/staff").then(function (list) {
      if (seq !== staffSeq) return;  // a later refresh is on its way: it shows the newer list
      var body = $("staff").querySelector("tbody");
      var focused = document.activeElement;
      var caret = focused && focused.tagName === "INPUT" && focused.selectionStart !== null
        ? [focused.selectionStart, focused.selectionEnd] : null;
      var next = new Map();
      list.forEach(function (u) {
        var r = rows.get(u.username) || staffRow(u.username);
        fillRow(r, u, freshRows.has(u.username));
        next.set(u.username, r);
      });
      rows.forEach(function (r, username) {
        if (!next.has(username)) body.removeChild(r.tr);
      });
      // in the server's order, moving only rows that are out of place
      list.forEach(function (u, i) {
        var tr = next.get(u.username).tr;
        if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
      });
      rows = next;
      freshRows.clear();
      if (focused && focused !== document.activeElement && body.contains(focused)) {
        focused.focus();
        if (caret) focused.setSelectionRange(caret[0], caret[1]);
      }
    });
  }

  function loadAudit() {
    return call("/console/api/people/audit?limit=50").then(function (rows) {
      var body = $("audit").querySelector("tbody");
      while (body.firstChild) body.removeChild(body.firstChild);
      rows.forEach(function (row) {
        var tr = el("tr");
        [row.at.replace("T", " ").slice(0, 19), row.actor, ACTIONS[row.action] || row.action,
         (row.subject || "").replace(/^staff:/, ""), details(row.details)]
          .forEach(function (value) { tr.appendChild(el("td", value)); });
        body.appendChild(tr);
      });
    });
  }

  // fresh: the username whose row shows the server's values again (its edit was saved or refused)
  function reload(fresh) {
    return Promise.all([loadStaff(fresh), loadAudit()]);
  }

  function path(u, action) {
    return "/console/api/staff/" + encodeURIComponent(u.username) + "/" + action;
  }

  function done(text) {
    return function () { say(text); return reload(); };
  }

  function fail(err, fresh) {
    if (err.message) say(err.message, true);
    return reload(fresh).catch(function () { return null; });
  }

  // --- actions ----------------------------------------------------------------------------

  function save(u, role, team) {
    var body = {};
    if (role !== u.role) body.role = role;
    if (team.trim().toLowerCase() !== u.team) body.team = team;
    if (!Object.keys(body).length) { say("No hay cambios que guardar para " + u.username + "."); return; }
    call(path(u, "update"), body).then(function (data) {
      var ended = data.sessions_ended ? " Sus sesiones se han cerrado." : "";
      say("Guardado: " + u.username + " es " + roleName(data.user.role) +
          " del equipo " + data.user.team + "." + ended);
      return reload(u.username);
    }).catch(function (err) { return fail(err, u.username); });
  }

  function deactivate(u) {
    if (!window.confirm("¿Desactivar a " + u.username + "? No podrá entrar y sus sesiones " +
                        "abiertas se cierran ahora.")) return;
    call(path(u, "deactivate"), {}).then(function (data) {
      var text = u.username + " desactivado; " +
        plural(data.sessions_ended, "sesión cerrada", "sesiones cerradas") + ".";
      if (data.user.open_conversations) {
        text += " Tiene " + plural(data.user.open_conversations, "conversación abierta",
                                   "conversaciones abiertas") +
          ": transfiérelas desde la bandeja.";
      }
      say(text);
      return reload();
    }).catch(fail);
  }

  function reactivate(u) {
    call(path(u, "reactivate"), {}).then(done(u.username + " puede volver a entrar.")).catch(fail);
  }

  function reset(u) {
    if (!window.confirm("¿Generar una contraseña nueva para " + u.username + "? La actual deja " +
                        "de valer y sus sesiones se cierran.")) return;
    call(path(u, "reset-password"), {}).then(function (data) {
      showSecret(u.username, data.password);
      say("Contraseña nueva para " + u.username + "; " +
          plural(data.sessions_ended, "sesión cerrada", "sesiones cerradas") + ".");
      return reload();
    }).catch(fail);
  }

  function unlock(u) {
    call(path(u, "unlock"), {}).then(done(u.username + " desbloqueado.")).catch(fail);
  }

  function add(ev) {
    ev.preventDefault();
    var body = { username: $("add-username").value, role: $("add-role").value,
                 team: $("add-team").value, password: $("add-password").value || null };
    $("add-submit").disabled = true;
    call("/console/api/staff", body).then(function (data) {
      $("add-username").value = "";
      $("add-password").value = "";
      if (data.password) showSecret(data.user.username, data.password);
      else hideSecret();
      say("Añadido: " + data.user.username + " (" + roleName(data.user.role) +
          ", equipo " + data.user.team + ").");
      return reload();
    }).catch(fail).then(function () { $("add-submit").disabled = false; });
  }

  function copySecret() {
    var field = $("secret");
    field.select();
    var copied = navigator.clipboard && navigator.clipboard.writeText
      ? navigator.clipboard.writeText(field.value) : Promise.reject(new Error("no clipboard"));
    copied.then(function () { say("Contraseña copiada."); })
      .catch(function () { say("Selecciona la contraseña y cópiala a mano (Ctrl+C)."); });
  }

  $("add-form").addEventListener("submit", add);
  $("secret-copy").addEventListener("click", copySecret);
  $("secret-done").addEventListener("click", hideSecret);

  ConsoleApi.me().then(function (data) {
    me = data;
    $("me").textContent = me.username + " · admin";
    return reload();
  }).then(function () {
    document.body.dataset.ready = "1";
  }).catch(function (err) { if (err.message) say(err.message, true); });
})();
