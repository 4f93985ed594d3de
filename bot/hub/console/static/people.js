/* People page (admins): list staff, add, change role/team, deactivate/reactivate, reset a
 * password, unlock, and the staff audit log. Everything from the server goes on the page with
 * textContent or form values, never as HTML. State-changing calls carry the session's CSRF
 * token (from /console/api/me) in X-CSRF-Token. A generated password is shown in one box
 * until the admin hides it; it is kept nowhere else.
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

  function call(path, body) {
    var init = { method: body ? "POST" : "GET", credentials: "same-origin",
                 headers: { "Accept": "application/json" } };
    if (body) {
      init.headers["X-CSRF-Token"] = (me && me.csrf_token) || "";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (resp) {
      if (resp.status === 401) { window.location.href = "/console/login"; throw new Error(""); }
      if (resp.status === 204) return null;
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (!resp.ok) throw new Error(data.message || "No se ha podido hacer (" + resp.status + ").");
        return data;
      });
    });
  }

  function say(text, bad) {
    var node = $("msg");
    node.textContent = text;
    node.className = bad ? "error" : "ok";
  }

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

  function staffRow(u) {
    var tr = el("tr");
    tr.dataset.username = u.username;
    tr.className = (u.active ? "" : "inactive") + (u.locked ? " locked" : "");

    var name = el("td", u.username, "mono");
    if (me && u.username === me.username) name.appendChild(el("span", " (tú)", "muted"));
    tr.appendChild(name);

    var role = el("select");
    role.className = "f-role";
    role.setAttribute("aria-label", "Rol de " + u.username);
    Object.keys(ROLES).forEach(function (key) {
      var opt = el("option", ROLES[key]);
      opt.value = key;
      opt.selected = key === u.role;
      role.appendChild(opt);
    });
    var tdRole = el("td");
    tdRole.appendChild(role);
    tr.appendChild(tdRole);

    var team = el("input");
    team.className = "f-team";
    team.maxLength = 32;
    team.value = u.team;
    team.setAttribute("aria-label", "Equipo de " + u.username);
    var tdTeam = el("td");
    tdTeam.appendChild(team);
    tr.appendChild(tdTeam);

    tr.appendChild(el("td", stateText(u), "state"));
    tr.appendChild(el("td", when(u.last_login_at), "last-login"));

    var actions = el("td", null, "actions");
    actions.appendChild(button("Guardar", "act-save", function () {
      save(u, role.value, team.value);
    }));
    if (u.active) {
      actions.appendChild(button("Desactivar", "act-deactivate", function () {
        deactivate(u);
      }, true));
    } else {
      actions.appendChild(button("Reactivar", "act-reactivate", function () { reactivate(u); }));
    }
    actions.appendChild(button("Contraseña nueva", "act-reset", function () { reset(u); }));
    if (u.locked || u.failed_logins) {
      actions.appendChild(button("Desbloquear", "act-unlock", function () { unlock(u); }));
    }
    tr.appendChild(actions);
    return tr;
  }

  function loadStaff() {
    return call("/console/api/staff").then(function (rows) {
      var body = $("staff").querySelector("tbody");
      while (body.firstChild) body.removeChild(body.firstChild);
      rows.forEach(function (u) { body.appendChild(staffRow(u)); });
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

  function reload() {
    return Promise.all([loadStaff(), loadAudit()]);
  }

  function path(u, action) {
    return "/console/api/staff/" + encodeURIComponent(u.username) + "/" + action;
  }

  function done(text) {
    return function () { say(text); return reload(); };
  }

  function fail(err) {
    if (err.message) say(err.message, true);
    return reload().catch(function () { return null; });
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
      return reload();
    }).catch(fail);
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

  call("/console/api/me").then(function (data) {
    me = data;
    $("me").textContent = me.username + " · admin";
    return reload();
  }).then(function () {
    document.body.dataset.ready = "1";
  }).catch(function (err) { if (err.message) say(err.message, true); });
})();
