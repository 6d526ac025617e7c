// The Create page: drag-and-drop pickers with previews, early checks, upload with progress.
// The server checks everything again by content; these checks only spare a pointless upload.
// The Face swap page has the same two pickers (same element ids) and uses this script too.
"use strict";

(() => {
  const form = document.getElementById("create-form") || document.getElementById("swap-form");
  if (!form) {
    return;
  }
  const limits = {
    bytes: Number(form.dataset.maxBytes),
    seconds: Number(form.dataset.maxSeconds),
    side: Number(form.dataset.maxSide),
    pixels: Number(form.dataset.maxPixels),
  };
  let credits = Number(form.dataset.credits);
  let uploading = false;
  const button = document.getElementById("generate");
  const hint = document.getElementById("generate-hint");
  const errorBox = document.getElementById("create-error");
  const uploadBox = document.getElementById("upload-box");
  const uploadBar = document.getElementById("upload-progress");
  const uploadLabel = document.getElementById("upload-label");

  const KINDS = {
    image: {
      input: "source_image",
      prefix: "source",
      noun: "picture",
      formats: "JPG, PNG or WebP",
      types: ["image/jpeg", "image/png", "image/webp"],
      extensions: ["jpg", "jpeg", "png", "webp"],
    },
    video: {
      input: "driving_video",
      prefix: "driving",
      noun: "video",
      formats: "MP4, MOV, AVI, WebM or GIF",
      types: ["video/mp4", "video/quicktime", "video/x-msvideo", "video/avi", "video/webm", "image/gif"],
      extensions: ["mp4", "m4v", "mov", "avi", "webm", "gif"],
    },
  };
  // A picture chosen from an earlier job ("Animate this") counts until a file replaces it.
  const chosenJob = form.elements.source_job;
  const ready = { image: Boolean(chosenJob), video: false };

  const megabytes = (bytes) => `${(bytes / (1024 * 1024)).toFixed(bytes < 1024 * 1024 ? 2 : 1)} MB`;

  const showError = (message) => {
    errorBox.textContent = message;
    errorBox.hidden = !message;
    if (message) {
      errorBox.scrollIntoView({ block: "center", behavior: "smooth" });
    }
  };

  const update = () => {
    const both = ready.image && ready.video;
    button.disabled = uploading || !both || credits < 1;
    if (uploading) {
      return;
    }
    if (credits < 1) {
      hint.innerHTML = "";
      hint.append("No credits left — ");
      const link = document.createElement("a");
      link.href = "/pricing";
      link.textContent = "buy credits";
      hint.append(link, " to generate.");
    } else if (!both) {
      const missing = [!ready.image && "a picture", !ready.video && "a video"].filter(Boolean).join(" and ");
      hint.textContent = `Add ${missing} to start. Uses 1 of your ${credits} ${credits === 1 ? "credit" : "credits"}.`;
    } else {
      hint.textContent = `Ready. Generating uses 1 of your ${credits} ${credits === 1 ? "credit" : "credits"}.`;
    }
  };

  const problemWith = (file, kind) => {
    const spec = KINDS[kind];
    const extension = (file.name.split(".").pop() || "").toLowerCase();
    const typeOk = file.type ? spec.types.includes(file.type) : spec.extensions.includes(extension);
    if (!typeOk) {
      return `“${file.name}” is not a ${spec.formats} ${spec.noun}; choose one of those.`;
    }
    if (file.size === 0) {
      return `“${file.name}” is empty; choose the file again.`;
    }
    if (file.size > limits.bytes) {
      return `“${file.name}” is ${megabytes(file.size)}; the limit is ${megabytes(limits.bytes)}. Choose a smaller file.`;
    }
    return null;
  };

  const setUp = (kind) => {
    const spec = KINDS[kind];
    const input = document.getElementById(spec.input);
    const drop = document.getElementById(`${spec.prefix}-drop`);
    const empty = drop.querySelector(".drop-empty");
    const filled = drop.querySelector(".drop-filled");
    const preview = document.getElementById(`${spec.prefix}-preview`);
    const row = document.getElementById(`${spec.prefix}-row`);
    const meta = document.getElementById(`${spec.prefix}-meta`);
    const error = document.getElementById(`${spec.prefix}-error`);
    let objectUrl = null;

    const clearPreview = () => {
      if (objectUrl) {
        URL.revokeObjectURL(objectUrl);
        objectUrl = null;
      }
      preview.removeAttribute("src");
      if (kind === "video") {
        preview.removeAttribute("poster");
        preview.controls = true;
        preview.load();
      }
      filled.hidden = true;
      empty.hidden = false;
      row.hidden = true;
      drop.classList.remove("filled");
    };

    const fail = (message) => {
      ready[kind] = false;
      input.value = "";
      clearPreview();
      error.textContent = message;
      error.hidden = false;
      drop.classList.add("invalid");
      input.setAttribute("aria-invalid", "true");
      update();
    };

    const accept = (file, note) => {
      ready[kind] = true;
      meta.textContent = `${file.name} · ${megabytes(file.size)}${note ? ` · ${note}` : ""}`;
      update();
    };

    const choose = (file) => {
      error.hidden = true;
      error.textContent = "";
      drop.classList.remove("invalid");
      input.removeAttribute("aria-invalid");
      ready[kind] = false;
      if (!file) {
        clearPreview();
        if (kind === "image" && chosenJob) {
          chosenJob.remove(); // the earlier picture's preview is gone too: the choice is over
        }
        update();
        return;
      }
      const problem = problemWith(file, kind);
      if (problem) {
        fail(problem);
        return;
      }
      clearPreview();
      objectUrl = URL.createObjectURL(file);
      empty.hidden = true;
      filled.hidden = false;
      row.hidden = false;
      drop.classList.add("filled");
      meta.textContent = `${file.name} · ${megabytes(file.size)}`;
      if (kind === "image") {
        preview.onload = () => {
          const { naturalWidth: w, naturalHeight: h } = preview;
          if (w * h > limits.pixels) {
            const megapixels = (n) => `${Math.round(n / 1e5) / 10} megapixels`;
            fail(`“${file.name}” is ${w}×${h} (${megapixels(w * h)}); your plan accepts pictures of up to ${megapixels(limits.pixels)}.`);
          } else if (Math.max(w, h) > limits.side) {
            // The server scales it down to the plan's side (and says so on the job): no reason to refuse.
            const scale = limits.side / Math.max(w, h);
            const fitted = `${Math.max(1, Math.round(w * scale))}×${Math.max(1, Math.round(h * scale))}`;
            accept(file, `${w}×${h}, will be scaled down to ${fitted}`);
          } else {
            accept(file, `${w}×${h}`);
          }
        };
        preview.onerror = () => fail(`“${file.name}” could not be read as a picture; choose a ${spec.formats} file.`);
      } else {
        preview.onloadedmetadata = () => {
          const seconds = preview.duration;
          const { videoWidth: w, videoHeight: h } = preview;
          if (Number.isFinite(seconds) && seconds > limits.seconds + 0.05) {
            fail(`“${file.name}” lasts ${seconds.toFixed(1)} s; at most ${limits.seconds} s is allowed, trim the clip.`);
          } else if (Math.max(w, h) > limits.side) {
            fail(`“${file.name}” is ${w}×${h}; your plan allows up to ${limits.side} px per side.`);
          } else {
            accept(file, Number.isFinite(seconds) ? `${seconds.toFixed(1)} s` : "");
          }
        };
        // Some valid containers (AVI, some MOV) do not play in every browser: let the server decide.
        preview.onerror = () => {
          if (file.type === "image/gif" || /\.gif$/i.test(file.name)) {
            // A video element cannot play a GIF, but it shows one as its poster.
            preview.removeAttribute("src");
            preview.controls = false; // nothing to play: the poster is the (animated) picture
            preview.poster = objectUrl;
            accept(file, "GIF");
            return;
          }
          filled.hidden = true;
          empty.hidden = false;
          accept(file, "no preview in this browser");
        };
      }
      preview.src = objectUrl;
    };

    input.addEventListener("change", () => choose(input.files[0]));

    for (const type of ["dragenter", "dragover"]) {
      drop.addEventListener(type, (event) => {
        event.preventDefault();
        drop.classList.add("dragging");
      });
    }
    for (const type of ["dragleave", "dragend"]) {
      drop.addEventListener(type, () => drop.classList.remove("dragging"));
    }
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("dragging");
      const files = event.dataTransfer && event.dataTransfer.files;
      if (!files || files.length === 0) {
        return;
      }
      const transfer = new DataTransfer();
      transfer.items.add(files[0]);
      input.files = transfer.files;
      choose(files[0]);
    });
  };

  setUp("image");
  setUp("video");
  // Files chosen before a reload (some browsers keep them) still need checking.
  for (const kind of Object.keys(KINDS)) {
    const input = document.getElementById(KINDS[kind].input);
    if (input.files.length) {
      input.dispatchEvent(new Event("change"));
    }
  }
  update();

  // Dropping a file anywhere else must not navigate away from the page.
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (event) => event.preventDefault());
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (button.disabled) {
      return;
    }
    showError("");
    uploading = true;
    update();
    uploadBox.hidden = false;
    uploadBar.value = 0;
    uploadLabel.textContent = "Uploading… 0%";
    hint.textContent = "Uploading your files. Please keep this page open.";

    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("Accept", "application/json");
    request.setRequestHeader("X-CSRF-Token", form.elements.csrf_token.value);
    request.upload.addEventListener("progress", (progress) => {
      if (progress.lengthComputable) {
        const value = Math.round((100 * progress.loaded) / progress.total);
        uploadBar.value = value;
        uploadLabel.textContent = `Uploading… ${value}%`;
      }
    });
    request.upload.addEventListener("load", () => {
      uploadBar.value = 100;
      uploadLabel.textContent = "Checking your files…";
    });
    const finish = (message) => {
      uploading = false;
      uploadBox.hidden = true;
      showError(message);
      update();
    };
    request.addEventListener("load", () => {
      let body = {};
      try {
        body = JSON.parse(request.responseText);
      } catch (error) {
        body = {};
      }
      if (request.status === 202 && body.url) {
        uploadLabel.textContent = "Starting…";
        window.location.assign(body.url);
        return;
      }
      if (request.status === 401) {
        window.location.assign(`/signin?next=${encodeURIComponent(window.location.pathname)}`);
        return;
      }
      if (request.status === 402) {
        credits = 0;
      }
      finish(body.detail || `The upload failed (HTTP ${request.status}); try again.`);
    });
    request.addEventListener("error", () => finish("The upload was interrupted; check your connection and try again."));
    request.send(new FormData(form));
  });

  // The hint under the engine list describes the engine chosen now.
  const engine = document.getElementById("engine");
  const engineHint = document.getElementById("engine-hint");
  if (engine && engineHint) {
    engine.addEventListener("change", () => {
      engineHint.textContent = engine.selectedOptions[0]?.dataset.hint || "";
    });
  }

  // LivePortrait's own options show (and are sent) only while that engine is chosen.
  const liveportrait = document.getElementById("liveportrait-options");
  if (engine && liveportrait) {
    const follow = () => {
      const chosen = engine.value === "liveportrait";
      liveportrait.hidden = !chosen;
      liveportrait.disabled = !chosen;
    };
    engine.addEventListener("change", follow);
    follow();
    const strength = document.getElementById("driving_multiplier");
    const strengthValue = document.getElementById("driving_multiplier-value");
    strength?.addEventListener("input", () => {
      strengthValue.textContent = strength.value;
    });
  }
})();
