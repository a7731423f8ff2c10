// Evaluations pages: the runs list's A/B compare picker, and expandable outputs.
"use strict";

(() => {
  function comparePicker() {
    const form = document.getElementById("compare-form");
    if (!form) return;
    const button = document.getElementById("compare-button");
    const hint = document.getElementById("compare-hint");
    const hintText = hint ? hint.textContent : "";
    const picked = (name) => form.querySelector(`input[name="${name}"]:checked`);
    function update() {
      form.querySelectorAll("tr").forEach((tr) => tr.classList.remove("picked-a", "picked-b"));
      const a = picked("a"), b = picked("b");
      if (a) a.closest("tr").classList.add("picked-a");
      if (b) b.closest("tr").classList.add("picked-b");
      let problem = "";
      if (!a || !b) problem = "Pick one run as A and one as B.";
      else if (a.value === b.value) problem = "A and B are the same run: pick two different runs.";
      else if (a.closest("tr").dataset.golden !== b.closest("tr").dataset.golden)
        problem = "A and B are runs of different golden sets: pick two runs of the same set.";
      button.disabled = Boolean(problem);
      if (hint) { hint.textContent = problem || hintText; hint.classList.toggle("error", Boolean(problem)); }
    }
    form.addEventListener("change", update);
    update();
  }

  function clips() {
    document.querySelectorAll(".clip").forEach((el) => {
      if (el.scrollHeight > el.clientHeight + 2) el.classList.add("overflows");
      el.addEventListener("click", (ev) => {
        if (ev.target.closest("a")) return;
        el.classList.add("open");
      });
    });
    const all = document.getElementById("expand-all");
    if (all) {
      all.addEventListener("click", () => {
        const table = document.getElementById("case-table");
        if (!table) return;
        const open = table.classList.toggle("expanded");
        table.querySelectorAll(".clip").forEach((el) => el.classList.toggle("open", open));
        all.textContent = open ? "Collapse outputs (e)" : "Expand outputs (e)";
      });
    }
  }

  document.addEventListener("DOMContentLoaded", () => { comparePicker(); clips(); });
})();
