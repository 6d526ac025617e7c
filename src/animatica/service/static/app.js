// Behaviour shared by every page: local times, confirmations, live password matching, and the
// helpers the pages' own scripts use to post a form and follow a job (window.Animatica).
"use strict";

window.Animatica = (() => {
  // A signed-out user comes back to where they were after signing in.
  const signIn = () => {
    const here = window.location.pathname + window.location.search;
    window.location.assign(`/signin?next=${encodeURIComponent(here)}`);
  };

  // POST a FormData asking for JSON; { status, data } with data {} when the answer is not JSON.
  const postForm = async (url, body, csrf) => {
    const response = await fetch(url, {
      method: "POST",
      body,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": csrf },
    });
    let data = {};
    try {
      data = await response.json();
    } catch (error) {
      data = {};
    }
    if (response.status === 401) {
      signIn();
    }
    return { status: response.status, data };
  };

  // Poll a job's status every `every` ms (backing off to 10 s while the server does not answer)
  // for as long as onStatus(job) returns true.
  const pollJob = (id, onStatus, every = 1000, first = every) => {
    let delay = first;
    const poll = async () => {
      try {
        const response = await fetch(`/jobs/${encodeURIComponent(id)}/status`, {
          headers: { Accept: "application/json" },
          cache: "no-store",
        });
        if (response.status === 401) {
          signIn();
          return;
        }
        if (response.ok) {
          if (!onStatus(await response.json())) {
            return;
          }
          delay = every;
        } else {
          delay = Math.min(delay * 2, 10000);
        }
      } catch (error) {
        delay = Math.min(delay * 2, 10000);
      }
      window.setTimeout(poll, delay);
    };
    window.setTimeout(poll, delay);
  };

  return { signIn, postForm, pollJob };
})();

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
