// Draws the Plotly figures from their JSON data blocks and adds keyboard
// shortcuts: o = OK, g = Use gold, n / right arrow = next, p / left arrow =
// previous (not while typing in a form field).
(function () {
  "use strict";
  function draw() {
    document.querySelectorAll('script[type="application/json"][id^="fig-"]').forEach(function (block) {
      var target = document.getElementById("plot-" + block.id.slice(4));
      if (!target || typeof Plotly === "undefined") return;
      var fig = JSON.parse(block.textContent);
      Plotly.newPlot(target, fig.data, fig.layout, {responsive: true, displaylogo: false}).then(function () {
        target.setAttribute("data-rendered", "1");
      });
    });
  }
  function click(id) {
    var el = document.getElementById(id);
    if (el) el.click();
  }
  document.addEventListener("keydown", function (ev) {
    var tag = (ev.target && ev.target.tagName) || "";
    if (/^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(tag) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "o") click("btn-ok");
    else if (ev.key === "g") click("btn-gold");
    else if (ev.key === "n" || ev.key === "ArrowRight") click("next");
    else if (ev.key === "p" || ev.key === "ArrowLeft") click("prev");
  });
  var focus = document.getElementById("focus");
  if (focus) focus.addEventListener("change", function () { focus.form.submit(); });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
