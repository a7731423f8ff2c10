// assay dashboard: small, plain JavaScript. Charts come from the plotly.js bundle that
// ships inside the plotly wheel, loaded only on pages that have a chart.
"use strict";

const assay = (() => {
  const csrf = () => document.body.dataset.csrf || "";

  // POST a form-encoded body with the page's CSRF token; returns the Response.
  async function post(url, data) {
    const body = new URLSearchParams(data || {});
    return fetch(url, {
      method: "POST",
      headers: { "X-CSRF-Token": csrf(), "Content-Type": "application/x-www-form-urlencoded" },
      body,
      credentials: "same-origin",
    });
  }

  function loadPlotly() {
    if (window.Plotly) return Promise.resolve(window.Plotly);
    return new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = "/static/vendor/plotly.min.js";
      s.onload = () => resolve(window.Plotly);
      s.onerror = () => reject(new Error("charts unavailable: plotly.min.js did not load"));
      document.head.appendChild(s);
    });
  }

  function drawCharts(root) {
    const charts = (root || document).querySelectorAll(".chart[data-figure]");
    if (!charts.length) return;
    loadPlotly().then((Plotly) => {
      charts.forEach((el) => {
        const fig = JSON.parse(el.dataset.figure);
        const layout = Object.assign(
          { margin: { l: 50, r: 10, t: 30, b: 40 }, font: { size: 11 },
            legend: { orientation: "h", y: -0.2 }, paper_bgcolor: "rgba(0,0,0,0)",
            plot_bgcolor: "rgba(0,0,0,0)" },
          fig.layout || {});
        Plotly.newPlot(el, fig.data, layout, { displaylogo: false, responsive: true,
          modeBarButtonsToRemove: ["select2d", "lasso2d"] });
      });
    }).catch((err) => {
      charts.forEach((el) => { el.textContent = err.message; el.classList.add("muted"); });
    });
  }

  // Keyboard shortcuts: any element with data-key="x" is clicked (or focused, for inputs)
  // when x is pressed outside a text field. Escape leaves a text field.
  function bindKeys() {
    document.addEventListener("keydown", (ev) => {
      if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
      const t = ev.target;
      const typing = t && (t.tagName === "TEXTAREA" || (t.tagName === "INPUT" &&
        !["radio", "checkbox", "button", "submit"].includes(t.type)) || t.isContentEditable);
      if (typing) { if (ev.key === "Escape") t.blur(); return; }
      const el = document.querySelector(`[data-key="${CSS.escape(ev.key)}"]`);
      if (!el) return;
      ev.preventDefault();
      if (el.tagName === "INPUT" && (el.type === "text" || el.type === "search") || el.tagName === "TEXTAREA") el.focus();
      else el.click();
    });
  }

  function bindRows() {
    document.querySelectorAll("tr[data-href]").forEach((tr) => {
      tr.classList.add("clickable");
      tr.addEventListener("click", (ev) => {
        if (ev.target.closest("a, button, input, select, textarea, label")) return;
        window.location.href = tr.dataset.href;
      });
    });
    document.querySelectorAll("form[data-autosubmit] select").forEach((sel) => {
      sel.addEventListener("change", () => sel.form.submit());
    });
    document.querySelectorAll("form[data-confirm]").forEach((form) => {
      form.addEventListener("submit", (ev) => { if (!confirm(form.dataset.confirm)) ev.preventDefault(); });
    });
  }

  document.addEventListener("DOMContentLoaded", () => { drawCharts(); bindKeys(); bindRows(); });
  return { post, drawCharts, csrf };
})();
