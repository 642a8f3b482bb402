// LEDwatch desk: live SLA countdowns. Each .countdown holds the time left when the page
// was rendered (data-remaining-ms, from the collector's own clock, so a skewed PC clock
// does not matter); this only subtracts the time since. Paused tickets stay frozen.
// Without JS the server-rendered text stays. Same wording as views.fmt_duration.
(function () {
  "use strict";
  var t0 = performance.now();
  var SOON_MS = 5 * 60 * 1000;

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function duration(ms) {
    var s = Math.floor(Math.abs(ms) / 1000);
    if (s < 3600) { return Math.floor(s / 60) + " min " + pad(s % 60) + " s"; }
    if (s < 48 * 3600) { return Math.floor(s / 3600) + " h " + pad(Math.floor(s % 3600 / 60)) + " min"; }
    return Math.floor(s / 86400) + " d " + pad(Math.floor(s % 86400 / 3600)) + " h";
  }

  function tick() {
    var gone = performance.now() - t0;
    var els = document.querySelectorAll(".countdown[data-remaining-ms]");
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      if (el.getAttribute("data-paused") === "true") { continue; }
      var left = Number(el.getAttribute("data-remaining-ms")) - gone;
      el.textContent = (left < 0 ? "overdue " : "in ") + duration(left);
      el.classList.toggle("overdue", left < 0);
      el.classList.toggle("soon", left >= 0 && left < SOON_MS);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    window.setInterval(tick, 1000);
  });
})();
