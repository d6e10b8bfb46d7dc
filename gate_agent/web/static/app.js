// ParkGate operator UI: optional live refresh. Pages work without it (reload to update).
(function () {
  "use strict";
  function refreshPart(el) {
    if (document.hidden) { return; }
    fetch(el.dataset.refresh, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null && html !== el.innerHTML) { el.innerHTML = html; } })
      .catch(function () { /* the next tick tries again */ });
  }
  function refreshFrame(img) {
    if (document.hidden || img.dataset.loading) { return; }
    var next = new Image();
    img.dataset.loading = "1";
    next.onload = next.onerror = function () {
      delete img.dataset.loading;
      if (next.naturalWidth) { img.src = next.src; }
    };
    next.src = img.src.split("?")[0] + "?t=" + Date.now();
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(function (el) {
      setInterval(function () { refreshPart(el); }, Number(el.dataset.every || 1000));
    });
    document.querySelectorAll("img[data-live]").forEach(function (img) {
      setInterval(function () { refreshFrame(img); }, 1000);
    });
  });
})();
