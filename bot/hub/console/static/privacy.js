/* Data-rights desk: look a person up, download their export, erase them, read the audit log.
 * Everything from the server is put on the page with textContent. Calls go through ConsoleApi
 * (console-api.js), which puts the session's CSRF token on state-changing ones.
 */
(function () {
  "use strict";

  var ACTIONS = {
    "conversation.view": "Abrió una conversación",
    "privacy.export": "Exportó datos",
    "privacy.erase": "Borró datos",
    "retention.purge": "Retención automática"
  };

  function $(id) { return document.getElementById(id); }

  var call = ConsoleApi.call;

  function say(text, bad) {
    var node = $("result");
    node.textContent = text;
    node.className = bad ? "error" : "";
  }

  function who() { return $("identifier").value.trim(); }

  function loadAudit() {
    return call("/console/api/audit?limit=100").then(function (rows) {
      var body = $("audit").querySelector("tbody");
      while (body.firstChild) body.removeChild(body.firstChild);
      rows.forEach(function (row) {
        var tr = document.createElement("tr");
        [row.at.replace("T", " ").slice(0, 19), row.actor, ACTIONS[row.action] || row.action,
         row.subject || "", JSON.stringify(row.details || {})].forEach(function (value) {
          var td = document.createElement("td");
          td.textContent = value;
          tr.appendChild(td);
        });
        body.appendChild(tr);
      });
    });
  }

  function found(data) {
    say("Encontrado: " + data.customers + " ficha(s) de cliente, " + data.conversations +
        " conversación(es), " + data.cases + " caso(s).");
    $("actions").hidden = false;
  }

  $("find").addEventListener("submit", function (ev) {
    ev.preventDefault();
    $("actions").hidden = true;
    call("/console/api/privacy/lookup", { identifier: who() }).then(found)
      .catch(function (err) { say(err.message, true); });
  });

  $("export").addEventListener("click", function () {
    call("/console/api/privacy/export", { identifier: who() }, { raw: true }).then(function (blob) {
      var link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = "privacy-export.zip";
      document.body.appendChild(link);
      link.click();
      link.remove();
      say("Exportación descargada.");
      return loadAudit();
    }).catch(function (err) { say(err.message, true); });
  });

  $("erase-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    call("/console/api/privacy/erase", { identifier: who(), confirm: $("confirm").value })
      .then(function (data) {
        var e = data.erased;
        say("Borrado: " + e.conversations + " conversación(es), " + e.messages +
            " mensaje(s), " + e.cases + " caso(s) anonimizados, " + e.files + " foto(s).");
        $("actions").hidden = true;
        $("confirm").value = "";
        return loadAudit();
      }).catch(function (err) { say(err.message, true); });
  });

  ConsoleApi.me().then(function () {
    return loadAudit();
  }).catch(function (err) { say(err.message, true); });
})();
