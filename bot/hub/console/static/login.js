/* Console login: JSON POST with the page's own origin; the session cookie is HttpOnly. */
(function () {
  "use strict";
  var form = document.getElementById("login-form");
  var error = document.getElementById("login-error");
  var submit = document.getElementById("login-submit");
  var GENERIC = "Usuario o contraseña incorrectos.";

  function showError(text) {
    error.textContent = text;
    error.hidden = false;
  }

  if (new URLSearchParams(location.search).has("error")) showError(GENERIC);

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var username = form.elements.username.value.trim();
    var password = form.elements.password.value;
    if (!username || !password) {
      showError("Escribe tu usuario y tu contraseña.");
      return;
    }
    submit.disabled = true;
    error.hidden = true;
    fetch("/console/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify({ username: username, password: password })
    }).then(function (resp) {
      if (resp.status === 204) {
        location.assign("/console");
        return null;
      }
      return resp.json().catch(function () { return {}; }).then(function (data) {
        showError((data && data.message) || GENERIC);
        form.elements.password.value = "";
        form.elements.password.focus();
      });
    }).catch(function () {
      showError("No se pudo conectar con el servidor. Inténtalo de nuevo.");
    }).finally(function () {
      submit.disabled = false;
    });
  });
})();
