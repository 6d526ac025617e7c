// The "Create a picture" page: a prompt written from a video, the inpainting mask painted over the
// starting picture, and the form sent with that mask as a PNG. The server checks everything again.
"use strict";

(() => {
  const form = document.getElementById("picture-form");
  if (!form) {
    return;
  }
  const errorBox = document.getElementById("picture-error");
  const button = document.getElementById("create-picture");
  const hint = document.getElementById("picture-hint");
  const csrf = form.elements.csrf_token.value;

  const showError = (message) => {
    errorBox.textContent = message;
    errorBox.hidden = !message;
    if (message) {
      errorBox.scrollIntoView({ block: "center", behavior: "smooth" });
    }
  };

  const send = (url, body) => window.Animatica.postForm(url, body, csrf);

  // --- the mask, painted over the starting picture --------------------------------------------
  const initInput = document.getElementById("init_image");
  const stage = document.getElementById("mask-stage");
  const tools = document.getElementById("mask-tools");
  const picture = document.getElementById("mask-picture");
  const canvas = document.getElementById("mask-canvas");
  const brush = document.getElementById("brush");
  const maskFile = document.getElementById("mask");
  const operation = document.getElementById("operation");
  const pen = canvas.getContext("2d");
  let painted = false;
  let drawing = false;
  let pictureUrl = null;

  const showStage = () => {
    const has = initInput.files.length > 0 && operation.value === "inpaint";
    stage.hidden = !has;
    tools.hidden = !has;
  };

  initInput.addEventListener("change", () => {
    if (pictureUrl) {
      URL.revokeObjectURL(pictureUrl);
      pictureUrl = null;
    }
    painted = false;
    const file = initInput.files[0];
    if (!file) {
      showStage();
      return;
    }
    pictureUrl = URL.createObjectURL(file);
    picture.onload = () => {
      canvas.width = picture.naturalWidth;
      canvas.height = picture.naturalHeight;
      pen.clearRect(0, 0, canvas.width, canvas.height);
      showStage();
    };
    picture.src = pictureUrl;
  });
  operation.addEventListener("change", showStage);

  const point = (event) => {
    const box = canvas.getBoundingClientRect();
    return {
      x: ((event.clientX - box.left) * canvas.width) / box.width,
      y: ((event.clientY - box.top) * canvas.height) / box.height,
      scale: canvas.width / box.width,
    };
  };
  const dab = (event) => {
    const { x, y, scale } = point(event);
    pen.fillStyle = "#ff4f8b";
    pen.beginPath();
    pen.arc(x, y, (Number(brush.value) * scale) / 2, 0, 2 * Math.PI);
    pen.fill();
    painted = true;
  };
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true;
    canvas.setPointerCapture(event.pointerId);
    dab(event);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (drawing) {
      dab(event);
    }
  });
  for (const type of ["pointerup", "pointercancel"]) {
    canvas.addEventListener(type, () => {
      drawing = false;
    });
  }
  document.getElementById("mask-clear").addEventListener("click", () => {
    pen.clearRect(0, 0, canvas.width, canvas.height);
    painted = false;
  });

  // White where painted, black elsewhere, at the starting picture's size.
  const maskBlob = () =>
    new Promise((resolve) => {
      const out = document.createElement("canvas");
      out.width = canvas.width;
      out.height = canvas.height;
      const context = out.getContext("2d");
      const strokes = pen.getImageData(0, 0, canvas.width, canvas.height);
      const mask = context.createImageData(canvas.width, canvas.height);
      for (let i = 0; i < strokes.data.length; i += 4) {
        const value = strokes.data[i + 3] > 0 ? 255 : 0;
        mask.data[i] = value;
        mask.data[i + 1] = value;
        mask.data[i + 2] = value;
        mask.data[i + 3] = 255;
      }
      context.putImageData(mask, 0, 0);
      out.toBlob(resolve, "image/png");
    });

  // --- sending the form --------------------------------------------------------------------------
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (button.disabled) {
      return;
    }
    showError("");
    button.disabled = true;
    hint.textContent = "Sending…";
    const body = new FormData(form);
    if (operation.value === "inpaint" && painted && maskFile.files.length === 0) {
      body.set("mask", await maskBlob(), "mask.png");
    }
    for (const [name, value] of Array.from(body.entries())) {
      if (value instanceof File && value.size === 0 && !value.name) {
        body.delete(name); // an empty file input: nothing chosen
      }
    }
    try {
      const { status, data } = await send(form.action, body);
      if (status === 202 && data.url) {
        hint.textContent = "Started: opening your picture…";
        window.location.assign(data.url);
        return;
      }
      showError(data.detail || `The picture could not be started (HTTP ${status}); try again.`);
    } catch (error) {
      showError("The connection was interrupted; check it and try again.");
    }
    button.disabled = false;
    hint.textContent = "";
  });

  // --- a prompt written from the user's video -----------------------------------------------------
  const promptForm = document.getElementById("prompt-form");
  const promptStatus = document.getElementById("prompt-status");
  const promptBox = document.getElementById("prompt");
  promptForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const writer = document.getElementById("write-prompt");
    writer.disabled = true;
    promptStatus.textContent = "Watching your video…";
    try {
      const body = new FormData(promptForm);
      body.set("kind", document.getElementById("size").value); // what the picture is for
      const { status, data } = await send(promptForm.action, body);
      if (status === 200 && typeof data.prompt === "string") {
        promptBox.value = data.prompt;
        promptStatus.textContent = "Done: edit the prompt as you like.";
        promptBox.focus();
      } else {
        promptStatus.textContent = data.detail || `No prompt could be written (HTTP ${status}).`;
      }
    } catch (error) {
      promptStatus.textContent = "The connection was interrupted; try again.";
    }
    writer.disabled = false;
  });
})();
