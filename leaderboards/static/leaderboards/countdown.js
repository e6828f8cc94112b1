/* Countdowns to a race's end on the class list; reloads the page shortly after a race ends. */
(function () {
  "use strict";
  var clocks = document.querySelectorAll("time.countdown[datetime]");
  if (!clocks.length) return;
  var reloading = false;
  function tick() {
    var now = Date.now();
    clocks.forEach(function (el) {
      var left = Math.max(0, Math.floor((Date.parse(el.getAttribute("datetime")) - now) / 1000));
      el.textContent = Math.floor(left / 60) + ":" + (left % 60 < 10 ? "0" : "") + (left % 60);
      if (left === 0 && el.dataset.reload && !reloading) {
        reloading = true;
        window.setTimeout(function () { window.location.reload(); }, 3000);
      }
    });
  }
  tick();
  window.setInterval(tick, 1000);
})();
