// Annotate: keyboard-first labelling. Digits/letters choose a label option, Enter
// submits, s skips, u goes back, q releases and stops, c writes a comment, ? shows help.
// Forms post normally (POST/redirect/GET), so the page also works without this script.
"use strict";

(() => {
  const help = document.getElementById("help");
  const labelForm = document.getElementById("label-form");
  const continueForm = document.getElementById("continue-form") || document.getElementById("start-form");
  const hint = document.getElementById("hint");
  let sent = false;

  function toggleHelp(show) {
    if (!help) return;
    help.hidden = show === undefined ? !help.hidden : !show;
  }

  function submit(form, button) {
    if (!form || sent) return;
    if (button && button.id === "submit" && !form.checkValidity()) {
      if (hint) hint.textContent = "Choose a label first (see ? for the keys).";
      form.reportValidity();
      return;
    }
    sent = true;
    document.body.classList.add("sending");
    if (form.requestSubmit) form.requestSubmit(button || undefined); else form.submit();
  }

  function choose(label) {
    const input = label.querySelector("input");
    input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    if (hint) hint.textContent = "";
  }

  function mark() {
    if (!labelForm) return;
    labelForm.querySelectorAll("label.option").forEach((l) => {
      l.classList.toggle("chosen", l.querySelector("input").checked);
    });
  }

  if (labelForm) {
    labelForm.addEventListener("change", mark);
    labelForm.addEventListener("submit", () => { sent = true; document.body.classList.add("sending"); });
    // Reloading a page from the back/forward cache must allow sending again.
    window.addEventListener("pageshow", () => { sent = false; document.body.classList.remove("sending"); });
    mark();
  }

  document.querySelectorAll("[data-help]").forEach((a) => {
    a.addEventListener("click", (ev) => { ev.preventDefault(); toggleHelp(); });
  });
  if (help) help.addEventListener("click", (ev) => { if (ev.target === help) toggleHelp(false); });

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.isComposing) return;
    const t = ev.target;
    const typing = t && (t.tagName === "TEXTAREA" || t.tagName === "SELECT" ||
      (t.tagName === "INPUT" && !["radio", "checkbox", "button", "submit"].includes(t.type)));
    if (typing) {
      if (ev.key === "Escape") { t.blur(); ev.preventDefault(); return; }
      // In the comment box Enter submits and Shift+Enter adds a line; in the name field
      // and number field the browser submits its form by itself.
      if (t.tagName === "TEXTAREA" && ev.key === "Enter" && !ev.shiftKey && labelForm) {
        ev.preventDefault();
        submit(labelForm, document.getElementById("submit"));
      }
      return;
    }
    const key = ev.key;
    if (key === "?") { ev.preventDefault(); toggleHelp(); return; }
    if (key === "Escape") { toggleHelp(false); return; }
    if (help && !help.hidden) return;
    if (ev.target && ev.target.tagName === "A" && key === "Enter") return;
    const lower = key.length === 1 ? key.toLowerCase() : key;
    if (labelForm) {
      const option = [...labelForm.querySelectorAll("label.option")].find(
        (l) => l.dataset.keys.split(" ").includes(lower));
      if (option) { ev.preventDefault(); choose(option); return; }
      if (key === "Enter") { ev.preventDefault(); submit(labelForm, document.getElementById("submit")); return; }
      if (lower === "s") { ev.preventDefault(); submit(labelForm, document.getElementById("skip")); return; }
      if (lower === "c") { ev.preventDefault(); document.getElementById("comment").focus(); return; }
      if (lower === "n") {
        const num = document.getElementById("scale-value");
        if (num) { ev.preventDefault(); num.focus(); }
        return;
      }
      if (lower === "q") { ev.preventDefault(); submit(document.getElementById("release-form")); return; }
    } else if (key === "Enter" && continueForm) {
      ev.preventDefault();
      submit(continueForm);
      return;
    }
    if (lower === "u") {
      const back = document.getElementById("back");
      if (back) { ev.preventDefault(); window.location.href = back.href; }
    }
  });
})();
