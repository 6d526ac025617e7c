// Behaviour shared by every page: local times, confirmations, live password matching.
"use strict";

(() => {
  // Times are rendered in UTC by the server; show them in the reader's own time zone.
  const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  for (const node of document.querySelectorAll("time.local-time[datetime]")) {
    const moment = new Date(node.getAttribute("datetime"));
    if (!Number.isNaN(moment.getTime())) {
      node.textContent = format.format(moment);
    }
  }

  // Destructive forms ask first (delete cannot be undone).
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  }

  // Sign-up: say "Passwords don't match" while typing instead of after a round trip.
  const confirm = document.getElementById("confirm");
  const password = document.getElementById("password");
  const mismatch = document.getElementById("confirm-error");
  if (confirm && password && mismatch) {
    const check = (final) => {
      const differs = confirm.value !== "" && confirm.value !== password.value;
      const show = differs && (final || confirm.value.length >= password.value.length);
      mismatch.hidden = !show;
      if (show) {
        mismatch.textContent = "Passwords don't match";
        confirm.setAttribute("aria-invalid", "true");
      } else {
        confirm.removeAttribute("aria-invalid");
      }
      return !differs;
    };
    confirm.addEventListener("input", () => check(false));
    password.addEventListener("input", () => check(false));
    confirm.addEventListener("blur", () => check(true));
    confirm.form.addEventListener("submit", (event) => {
      if (!check(true)) {
        event.preventDefault();
        confirm.focus();
      }
    });
  }
})();
