/* sipantau: the desk's page. No inline script anywhere (the CSP forbids it). */
(function () {
  "use strict";

  // A form with data-confirm asks first.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form && form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  // A select with data-autosubmit sends its form on change.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  // A print button prints the page.
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });

  // The overview's panels, kept live by Server-Sent Events.
  var panels = document.getElementById("panels");
  var state = document.getElementById("live-state");
  if (!panels || !panels.dataset.liveSrc || !window.EventSource) { return; }
  function show(key) {
    if (state) { state.textContent = state.dataset[key] || ""; state.dataset.state = key; }
  }
  var source = new EventSource(panels.dataset.liveSrc);
  source.addEventListener("open", function () { show("live"); });
  source.addEventListener("error", function () { show("lost"); });
  source.addEventListener("panels", function (event) {
    var data = JSON.parse(event.data);
    var doc = new DOMParser().parseFromString(data.html, "text/html");
    var fresh = doc.body.firstElementChild;
    if (fresh) { panels.replaceChildren(fresh); }
    panels.dataset.seq = event.lastEventId;
    panels.dataset.changes = String(data.changes || 0);
    show("live");
  });
})();
