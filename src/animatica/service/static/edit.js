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
  window.Animatica.pollJob(
    id,
    (job) => {
      if (FINAL.has(job.status)) {
        window.location.reload();
        return false;
      }
      if (stage) {
        stage.textContent = `${job.stage_label}…`;
      }
      return true;
    },
    700,
  );
})();
