// Trace page: show a span's details when it is clicked in the waterfall (without a reload
// when its details are in the page), move through spans with j/k, and fill the expected
// answer of a promotion from the trace's output.
"use strict";

(() => {
  const waterfall = document.getElementById("waterfall");
  if (!waterfall) return;
  const rows = Array.from(waterfall.querySelectorAll(".wf-row"));

  function select(spanId, scroll) {
    const detail = document.getElementById(`span-${spanId}`);
    if (!detail) return false; // not rendered (a very large trace): follow the link
    document.querySelectorAll(".span-detail").forEach((el) => { el.hidden = el !== detail; });
    rows.forEach((r) => r.classList.toggle("selected", r.dataset.span === spanId));
    const url = new URL(window.location.href);
    url.searchParams.set("span", spanId);
    url.searchParams.delete("promoted");
    url.hash = "";
    window.history.replaceState(null, "", url);
    if (scroll) detail.scrollIntoView({ block: "nearest", behavior: "smooth" });
    return true;
  }

  rows.forEach((row) => {
    row.addEventListener("click", (ev) => {
      if (ev.ctrlKey || ev.metaKey || ev.shiftKey) return; // open in a new tab as usual
      if (select(row.dataset.span, false)) ev.preventDefault();
    });
  });
  document.querySelectorAll("[data-span-link]").forEach((a) => {
    a.addEventListener("click", (ev) => {
      if (ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
      if (select(a.dataset.spanLink, true)) ev.preventDefault();
    });
  });

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = ev.target;
    if (t && (t.tagName === "TEXTAREA" || t.tagName === "INPUT" || t.tagName === "SELECT")) return;
    if (ev.key !== "j" && ev.key !== "k") return;
    const at = rows.findIndex((r) => r.classList.contains("selected"));
    const next = rows[Math.min(rows.length - 1, Math.max(0, at + (ev.key === "j" ? 1 : -1)))];
    if (!next) return;
    ev.preventDefault();
    if (select(next.dataset.span, false)) next.focus({ preventScroll: false });
    else window.location.href = next.href;
  });

  const copy = document.getElementById("copy-output");
  const expected = document.getElementById("expected");
  if (copy && expected) {
    copy.addEventListener("click", () => { expected.value = copy.dataset.output; expected.focus(); });
  }
})();
