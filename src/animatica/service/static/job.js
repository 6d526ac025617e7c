// The live job view: follow the job's status (Server-Sent Events, else polling), move the
// progress bar, reload when it is over.
"use strict";

(() => {
  const card = document.getElementById("job");
  if (!card || card.dataset.final === "true") {
    return;
  }
  const id = card.dataset.jobId;
  const bar = document.getElementById("job-progress");
  const percent = document.getElementById("job-percent");
  const stage = document.getElementById("job-stage");
  const eta = document.getElementById("job-eta");
  const badge = document.getElementById("job-status");
  const FINAL = new Set(["succeeded", "failed", "canceled"]);
  const NAMES = { queued: "Queued", running: "Running" };

  const show = (job) => {
    const value = Math.max(0, Math.min(100, Number(job.progress) || 0));
    // Nothing measurable yet (queued, loading): an indeterminate bar says "working" honestly.
    if (value > 0) {
      bar.value = value;
    } else {
      bar.removeAttribute("value");
    }
    bar.textContent = `${Math.round(value)}%`;
    percent.textContent = `${Math.round(value)}%`;
    stage.textContent = job.stage_label;
    eta.textContent = job.eta_text;
    if (badge.dataset.status !== job.status) {
      badge.dataset.status = job.status;
      badge.className = `badge status-${job.status}`;
      badge.textContent = NAMES[job.status] || job.status;
    }
  };

  const update = (job) => {
    if (FINAL.has(job.status)) {
      // The finished page (player, download or error) is rendered by the server.
      window.location.reload();
      return false;
    }
    show(job);
    return true;
  };

  // Polling: where the browser has no EventSource, or once the stream fails.
  const poll = () => window.Animatica.pollJob(id, update, 1000, 500);
  if (!("EventSource" in window)) {
    poll();
    return;
  }
  const stream = new EventSource(`/jobs/${encodeURIComponent(id)}/events`);
  stream.addEventListener("status", (event) => {
    if (!update(JSON.parse(event.data))) {
      stream.close();
    }
  });
  // A failed or ended stream (proxy, time limit, sign-out): polling takes over.
  stream.addEventListener("error", () => {
    stream.close();
    poll();
  });
})();
