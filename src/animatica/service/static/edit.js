// The Edit page: show each slider's value as it moves, and while an edit is being made, follow
// its status and reload when it is over (the server renders the picture and its download link).
"use strict";

(() => {
  for (const slider of document.querySelectorAll("#edit-form input[type=range]")) {
    const output = document.getElementById(`${slider.id}-value`);
    const box = document.getElementById(`set_${slider.id}`);
    slider.addEventListener("input", () => {
      if (output) {
        output.textContent = slider.value;
      }
      if (box) {
        box.checked = true; // moving the eye or mouth slider means changing them
      }
    });
  }

  const card = document.getElementById("edit-job");
  if (!card || card.dataset.final === "true") {
    return;
  }
  const id = card.dataset.jobId;
  const stage = document.getElementById("edit-stage");
  const FINAL = new Set(["succeeded", "failed", "canceled"]);
  let delay = 700;
  const poll = async () => {
    try {
      const response = await fetch(`/jobs/${encodeURIComponent(id)}/status`, {
        headers: { Accept: "application/json" },
        cache: "no-store",
      });
      if (response.status === 401) {
        window.location.assign(`/signin?next=${encodeURIComponent(window.location.pathname + window.location.search)}`);
        return;
      }
      if (response.ok) {
        const job = await response.json();
        if (FINAL.has(job.status)) {
          window.location.reload();
          return;
        }
        if (stage) {
          stage.textContent = `${job.stage_label}…`;
        }
        delay = 700;
      } else {
        delay = Math.min(delay * 2, 10000);
      }
    } catch (error) {
      delay = Math.min(delay * 2, 10000);
    }
    window.setTimeout(poll, delay);
  };
  window.setTimeout(poll, delay);
})();
