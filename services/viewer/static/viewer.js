// Live updates: each page region with data-live listens to server-sent events and, on a
// change, fetches its fragment again and swaps it in, without a reload. The region keeps its
// place; a polite live region tells screen-reader users that the page was updated.
(function () {
  "use strict";
  function start(region) {
    var source = new EventSource(region.dataset.live);
    var pending = false;
    var busy = false;
    function refresh() {
      var active = document.activeElement;
      if (active && region.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) {
        pending = true; // do not pull a field away from someone typing in it
        return;
      }
      if (busy) { pending = true; return; }
      busy = true;
      fetch(region.dataset.fragment, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (response.status === 401) { window.location.href = "/logg-inn"; return null; }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html === null) return;
          var open = Array.prototype.map.call(region.querySelectorAll("details[open]"), function (d) {
            return d.dataset.eventId;
          });
          region.innerHTML = html;
          var status = document.getElementById("status");
          if (status) status.textContent = "Siden er oppdatert med nye hendelser.";
          if (open.length) {
            region.querySelectorAll("details[data-event-id]").forEach(function (d) {
              if (open.indexOf(d.dataset.eventId) >= 0) d.open = true;
            });
          }
        })
        .finally(function () {
          busy = false;
          if (pending) { pending = false; refresh(); }
        });
    }
    source.addEventListener("endring", refresh);
    // The session has ended (idle too long, or expired): reloading leads to the sign-in page,
    // so the patient's data do not stay on an unattended screen.
    source.addEventListener("utlopt", function () { source.close(); window.location.reload(); });
    region.addEventListener("focusout", function () { if (pending) { pending = false; setTimeout(refresh, 0); } });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(start);
  });
})();
