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
// A driver pressed a lane's help button: the alarm on the lanes page also beeps (once the page has
// been clicked: browsers only let a page make sound after a user gesture).
(function () {
  "use strict";
  var audio = null, last = 0;
  function beep() {
    if (!audio || Date.now() - last < 5000) { return; }
    last = Date.now();
    var osc = audio.createOscillator(), gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.value = 0.2;
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.4);
  }
  document.addEventListener("click", function () {
    if (!audio && window.AudioContext) { audio = new AudioContext(); }
  });
  setInterval(function () {
    if (document.querySelector(".alarms .help")) { beep(); }
  }, 1000);
})();
