// Drift monitor page: clicking a point of a time-series chart opens that run's report.
"use strict";

(() => {
  function bind() {
    const box = document.getElementById("series");
    if (!box) return;
    const ids = JSON.parse(box.dataset.results || "[]");
    const charts = box.querySelectorAll(".chart");
    let tries = 0;
    const wait = () => {
      // app.js draws the charts once plotly.js has loaded; .on appears with the plot.
      const ready = Array.from(charts).filter((el) => typeof el.on === "function" && !el.dataset.bound);
      ready.forEach((el) => {
        el.dataset.bound = "1";
        el.on("plotly_click", (ev) => {
          const point = ev && ev.points && ev.points[0];
          if (!point || ids[point.pointIndex] === undefined) return;
          const url = new URL(window.location.href);
          url.searchParams.set("result", ids[point.pointIndex]);
          url.hash = "report";
          window.location.href = url.toString();
        });
      });
      if (box.querySelectorAll(".chart[data-bound]").length < charts.length && ++tries < 100) {
        setTimeout(wait, 100);
      }
    };
    wait();
  }
  document.addEventListener("DOMContentLoaded", bind);
})();
