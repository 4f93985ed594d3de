/* The console pages' one way to call the hub's JSON API (people, privacy, learning, KB editor,
 * dashboard; each page loads this file before its own script).
 *
 * ConsoleApi.call(path, body, options) → Promise:
 *   - no body: GET; a body (even {}): POST with it as JSON and the session's CSRF token in
 *     X-CSRF-Token (the token comes from ConsoleApi.me(), which every page calls first);
 *   - 401: the browser goes to the login page and the promise rejects with an empty message;
 *   - 204: resolves to null; options.raw: resolves to the body as a Blob (Accept:
 *     application/zip); otherwise to the JSON body ({} if it is not JSON);
 *   - another non-2xx: rejects with an Error whose message is the server's "message" (or
 *     options.failure + " (status)." when there is none — "No se ha podido hacer" unless
 *     the page says otherwise), with .status and .data (the JSON body, or {});
 *   - no answer at all: fetch's own error, as is.
 * ConsoleApi.me() → Promise of /console/api/me (who is logged in), and keeps its CSRF token.
 */
(function () {
  "use strict";

  var csrfToken = null;

  function call(path, body, options) {
    var opts = options || {};
    var init = { method: body ? "POST" : "GET", credentials: "same-origin",
                 headers: { "Accept": opts.raw ? "application/zip" : "application/json" } };
    if (body) {
      init.headers["X-CSRF-Token"] = csrfToken || "";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (resp) {
      if (resp.status === 401) {
        window.location.href = "/console/login";
        var gone = new Error("");
        gone.status = 401;
        gone.data = {};
        throw gone;
      }
      if (resp.ok && resp.status === 204) return null;
      if (resp.ok && opts.raw) return resp.blob();
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (!resp.ok) {
          var err = new Error((data && data.message) ||
                              (opts.failure || "No se ha podido hacer") + " (" + resp.status + ").");
          err.status = resp.status;
          err.data = data;
          throw err;
        }
        return data;
      });
    });
  }

  function me() {
    return call("/console/api/me").then(function (data) {
      csrfToken = data.csrf_token;
      return data;
    });
  }

  window.ConsoleApi = Object.freeze({ call: call, me: me });
})();
