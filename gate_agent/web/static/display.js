// ParkGate lane display: keeps the screen current from the agent's event stream.
// EventSource reconnects by itself after a dropped connection; when the agent refused the stream
// (restarting, too many screens) we open a new one after a pause: never faster than once a second.
(function () {
  "use strict";
  var root = document.getElementById("display");
  if (!root || !window.EventSource) { return; }
  var REOPEN_MS = 3000;

  function put(selector, text) {
    var el = root.querySelector(selector);
    el.textContent = text || "";
    return el;
  }

  function render(screen) {
    root.className = "display state-" + screen.state;
    document.documentElement.lang = screen.language;
    put(".headline", screen.headline);
    put(".detail", screen.detail);
    put(".hint", screen.hint);
    put(".offline", screen.offline).hidden = !screen.offline;
    var qr = root.querySelector(".qr");
    qr.innerHTML = screen.qr_svg || "";
    qr.hidden = !screen.qr_svg;
    qr.dataset.url = screen.qr_url || "";
  }

  function connect() {
    var stream = new EventSource(root.dataset.events);
    stream.addEventListener("screen", function (event) {
      root.dataset.connected = "1";
      render(JSON.parse(event.data));
    });
    stream.onerror = function () {
      root.dataset.connected = "0";
      if (stream.readyState === EventSource.CLOSED) {
        stream.close();
        setTimeout(connect, REOPEN_MS);
      }
    };
  }
  connect();
})();
