// The Live page: camera frames go up a WebSocket as JPEG, animated frames come back and are drawn.
// At most two camera frames are ever unanswered: a newer camera frame is skipped (and counted)
// rather than queued, so the portrait follows the camera now, not the camera of a second ago,
// when the engine is slower than the camera. Every frame carries its capture time on this page's
// clock and the server echoes it, so the delay shown is measured here, with no clock to sync.
"use strict";

(() => {
  const form = document.getElementById("live-form");
  if (!form) {
    return;
  }
  const $ = (id) => document.getElementById(id);
  const ui = {
    source: $("live-source"),
    preview: $("live-portrait-preview"),
    engine: $("live-engine"),
    engineSpeed: $("live-engine-speed"),
    size: $("live-size"),
    record: $("live-record"),
    mic: $("live-mic"),
    start: $("live-start"),
    stop: $("live-stop"),
    neutral: $("live-neutral"),
    status: $("live-status"),
    error: $("live-error"),
    end: $("live-end"),
    endReason: $("live-end-reason"),
    recording: $("live-recording"),
    camera: $("live-camera"),
    output: $("live-output"),
    fps: $("live-fps"),
    delay: $("live-delay"),
    dropped: $("live-dropped"),
    left: $("live-left"),
  };
  const csrf = form.elements.namedItem("csrf_token").value;
  const maxBytes = Number(form.dataset.maxBytes);

  // live/wire.py, mirrored: byte 0 the type, then little-endian fields, then the payload.
  const VIDEO = 1;
  const AUDIO = 2;
  const UP_HEADER = 13; // type, uint32 seq, float64 captured_ms
  const DOWN_HEADER = 17; // ... and float32 engine_ms
  const AUDIO_HEADER = 9; // type, float64 started_ms
  const MAX_IN_FLIGHT = 2;
  const WINDOW_MS = 1000; // fps and delay are over the last second
  const JPEG_QUALITY = 0.8;
  const AUDIO_TYPE = "audio/webm;codecs=opus";
  const STOP_GRACE_MS = 10000; // how long Stop waits for the server's goodbye before hanging up

  // One clock for every timestamp the page sends: milliseconds, monotonic within the page.
  const clock = () => performance.timeOrigin + performance.now();

  let live = null; // the running session, see start()

  const setState = (state) => {
    form.dataset.state = state;
  };
  setState("idle");

  const showError = (message) => {
    ui.error.textContent = message || "";
    ui.error.hidden = !message;
  };

  const say = (message) => {
    ui.status.textContent = message;
  };

  const portraitChosen = () =>
    (ui.source.files && ui.source.files.length > 0) || form.querySelector('input[name="source_job"]:checked');

  const setFormLocked = (locked) => {
    for (const element of form.querySelectorAll("input, select")) {
      if (element.type !== "hidden") {
        element.disabled = locked || (element === ui.mic && !ui.record.checked);
      }
    }
    ui.start.disabled = locked || Number(form.dataset.secondsLeft) < 1; // today's minutes are spent
    ui.stop.disabled = !locked;
    ui.neutral.disabled = true;
  };

  ui.engine?.addEventListener("change", () => {
    const option = ui.engine.selectedOptions[0];
    ui.engineSpeed.textContent = option ? option.dataset.speed : "";
  });
  ui.record.addEventListener("change", () => {
    ui.mic.disabled = !ui.record.checked;
    if (!ui.record.checked) {
      ui.mic.checked = false;
    }
  });
  // An upload and a chosen History picture exclude each other, so what is sent is what is shown.
  let previewUrl = null;
  const preview = (url) => {
    if (previewUrl) {
      URL.revokeObjectURL(previewUrl);
      previewUrl = null;
    }
    ui.preview.hidden = !url;
    if (url) {
      ui.preview.src = url;
    } else {
      ui.preview.removeAttribute("src");
    }
  };
  ui.source.addEventListener("change", () => {
    if (ui.source.files.length) {
      for (const radio of form.querySelectorAll('input[name="source_job"]')) {
        radio.checked = false;
      }
      preview(URL.createObjectURL(ui.source.files[0]));
      previewUrl = ui.preview.src;
    } else {
      preview(null);
    }
  });
  for (const radio of form.querySelectorAll('input[name="source_job"]')) {
    radio.addEventListener("change", () => {
      ui.source.value = "";
      preview(`/jobs/${encodeURIComponent(radio.value)}/thumbnail`);
    });
  }

  const cameraProblem = (error) => {
    const name = error && error.name;
    if (name === "NotAllowedError" || name === "SecurityError") {
      return "The camera was not allowed. Allow it for this site in the browser's address bar, then press Start again.";
    }
    if (name === "NotFoundError" || name === "OverconstrainedError") {
      return "No camera was found. Connect one and press Start again.";
    }
    if (name === "NotReadableError") {
      return "The camera is in use by another program. Close it there and press Start again.";
    }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      return "This browser cannot share a camera with this page (it needs https or localhost).";
    }
    return "The camera could not be opened.";
  };

  // --- the readout -------------------------------------------------------------------------------

  const median = (values) => {
    const sorted = [...values].sort((a, b) => a - b);
    const middle = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  };

  const clockText = (seconds) => {
    const whole = Math.max(0, Math.floor(seconds));
    return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
  };

  // fps is the number of animated frames shown in the last second, delay their median. An engine
  // slower than a frame a second is judged by its last two frames instead (LivePortrait shows
  // "0.1", not "0"), and a stall shows as a falling rate rather than the last good one frozen.
  const refresh = (session = live) => {
    if (!session) {
      return;
    }
    const now = clock();
    const shown = session.shown;
    while (shown.length > 2 && shown[0].at < now - WINDOW_MS) {
      shown.shift();
    }
    const recent = shown.filter((frame) => frame.at >= now - WINDOW_MS);
    if (shown.length) {
      const last = shown[shown.length - 1].at;
      let fps = 0;
      if (recent.length >= 2 && now - session.firstAt >= WINDOW_MS) {
        fps = (recent.length * 1000) / WINDOW_MS;
      } else if (recent.length >= 2) {
        fps = ((recent.length - 1) * 1000) / Math.max(1, last - recent[0].at); // the first second
      } else if (shown.length >= 2) {
        fps = 1000 / Math.max(last - shown[shown.length - 2].at, now - last, 1);
      }
      ui.fps.textContent = fps.toFixed(1);
      const delays = (recent.length ? recent : shown.slice(-1)).map((frame) => frame.delay);
      ui.delay.textContent = `${Math.round(median(delays))} ms`;
    }
    ui.dropped.textContent = String(session.clientDropped + session.serverDropped);
    if (session.secondsLeft !== null && session.readyAt !== null) {
      ui.left.textContent = clockText(session.secondsLeft - (now - session.readyAt) / 1000);
    }
  };

  // --- frames up ---------------------------------------------------------------------------------

  const toJpeg = (canvas) =>
    new Promise((resolve, reject) => {
      canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("encoding failed"))), "image/jpeg", JPEG_QUALITY);
    });

  const sendFrame = async () => {
    const video = ui.camera;
    if (!live || !live.ready || live.stopping || video.readyState < 2 || !video.videoWidth) {
      return;
    }
    if (live.seq - live.answered >= MAX_IN_FLIGHT) {
      live.clientDropped += 1;
      return;
    }
    live.seq += 1;
    const seq = live.seq;
    // The middle square of the camera picture, scaled to the session's size and mirrored like the
    // preview, so the portrait turns the way the user sees themselves turn.
    const side = Math.min(video.videoWidth, video.videoHeight);
    const sx = (video.videoWidth - side) / 2;
    const sy = (video.videoHeight - side) / 2;
    const context = live.scratch.getContext("2d");
    context.setTransform(-1, 0, 0, 1, live.size, 0);
    context.drawImage(video, sx, sy, side, side, 0, 0, live.size, live.size);
    const captured = clock();
    try {
      const payload = new Uint8Array(await (await toJpeg(live.scratch)).arrayBuffer());
      const message = new Uint8Array(UP_HEADER + payload.length);
      const view = new DataView(message.buffer);
      view.setUint8(0, VIDEO);
      view.setUint32(1, seq, true);
      view.setFloat64(5, captured, true);
      message.set(payload, UP_HEADER);
      if (live && live.socket.readyState === WebSocket.OPEN && !live.stopping) {
        live.socket.send(message.buffer);
      }
    } catch {
      // A frame that could not be encoded is simply not sent; count it so nothing waits for it.
      if (live) {
        live.answered = Math.max(live.answered, seq);
        live.clientDropped += 1;
      }
    }
  };

  const sendAudio = async (blob, startedMs) => {
    if (!live || !blob.size || live.socket.readyState !== WebSocket.OPEN) {
      return;
    }
    const payload = new Uint8Array(await blob.arrayBuffer());
    const message = new Uint8Array(AUDIO_HEADER + payload.length);
    const view = new DataView(message.buffer);
    view.setUint8(0, AUDIO);
    view.setFloat64(1, startedMs, true);
    message.set(payload, AUDIO_HEADER);
    if (live && live.socket.readyState === WebSocket.OPEN) {
      live.socket.send(message.buffer);
    }
  };

  const startMicrophone = () => {
    const tracks = live.stream.getAudioTracks();
    if (!tracks.length) {
      return;
    }
    if (typeof MediaRecorder === "undefined" || !MediaRecorder.isTypeSupported(AUDIO_TYPE)) {
      showError("This browser cannot record the microphone as Opus; the recording will have no sound.");
      return;
    }
    const recorder = new MediaRecorder(new MediaStream(tracks), { mimeType: AUDIO_TYPE });
    const startedMs = clock();
    // Chunks are sent in order: each waits for the one before it to be on its way.
    let sending = Promise.resolve();
    recorder.addEventListener("dataavailable", (event) => {
      sending = sending.then(() => sendAudio(event.data, startedMs));
    });
    live.audioDone = new Promise((resolve) => {
      recorder.addEventListener("stop", () => sending.then(resolve, resolve));
    });
    recorder.start(1000);
    live.recorder = recorder;
  };

  // --- frames down -------------------------------------------------------------------------------

  const showFrame = async (data) => {
    if (data.byteLength <= DOWN_HEADER) {
      return;
    }
    const view = new DataView(data);
    if (view.getUint8(0) !== VIDEO) {
      return;
    }
    const seq = view.getUint32(1, true);
    const captured = view.getFloat64(5, true);
    const session = live;
    session.answered = Math.max(session.answered, seq);
    const bitmap = await createImageBitmap(new Blob([data.slice(DOWN_HEADER)], { type: session.mime }));
    if (live !== session || seq < session.drawn) {
      bitmap.close();
      return; // a newer frame was drawn meanwhile, or the session is over
    }
    session.drawn = seq;
    const canvas = ui.output;
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    const now = clock();
    if (session.firstAt === null) {
      session.firstAt = now;
    }
    session.shown.push({ at: now, delay: now - captured });
    canvas.dataset.frames = String(Number(canvas.dataset.frames) + 1);
  };

  const onText = (text) => {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.type === "ready") {
      live.ready = true;
      live.readyAt = clock();
      if (message.size) {
        live.size = Number(message.size);
      }
      if (message.format) {
        live.mime = message.format === "webp" ? "image/webp" : "image/jpeg";
      }
      live.scratch.width = live.size;
      live.scratch.height = live.size;
      ui.output.width = live.size;
      ui.output.height = live.size;
      ui.neutral.disabled = false;
      setState("live");
      say("Live. Keep your face in the camera's view; Set neutral pose if the portrait looks off.");
      if (live.wantsMic) {
        startMicrophone();
      }
      const rate = live.stream.getVideoTracks()[0]?.getSettings().frameRate || 30;
      live.timer = setInterval(sendFrame, 1000 / Math.min(60, Math.max(5, rate)));
    } else if (message.type === "stats") {
      live.serverDropped = Number(message.dropped) || 0;
      if (typeof message.seconds_left === "number") {
        live.secondsLeft = message.seconds_left;
        live.readyAt = clock();
      }
    } else if (message.type === "error") {
      showError(message.message || "The live session ran into a problem.");
    } else if (message.type === "end") {
      live.endMessage = message;
    }
  };

  // --- the session ---------------------------------------------------------------------------------

  const finish = (fallback) => {
    const session = live;
    if (!session) {
      return;
    }
    live = null; // the readout keeps the last figures
    if (session.secondsLeft !== null && session.readyAt !== null) {
      const left = session.secondsLeft - (clock() - session.readyAt) / 1000;
      form.dataset.secondsLeft = String(Math.max(0, Math.floor(left)));
    }
    clearInterval(session.timer);
    clearInterval(session.ticker);
    clearTimeout(session.hangUp);
    if (session.recorder && session.recorder.state !== "inactive") {
      session.recorder.stop();
    }
    for (const track of session.stream.getTracks()) {
      track.stop();
    }
    ui.camera.srcObject = null;
    if (session.socket.readyState <= WebSocket.OPEN) {
      session.socket.close(1000, "stopped");
    }
    const end = session.endMessage;
    const reason = end ? end.reason : fallback;
    if (reason) {
      ui.endReason.textContent = reason;
      ui.end.hidden = false;
    }
    if (end && end.recording_job) {
      ui.recording.href = `/jobs/${encodeURIComponent(end.recording_job)}`;
      ui.recording.hidden = false;
    }
    setFormLocked(false);
    setState("ended");
    say(end && end.recording_job ? "Stopped. Your recording is being written; it appears in your History." : "Stopped.");
  };

  const createSession = async (size) => {
    const body = new FormData();
    const job = form.querySelector('input[name="source_job"]:checked');
    if (ui.source.files.length) {
      body.append("source", ui.source.files[0]);
    } else if (job) {
      body.append("source_job", job.value);
    }
    body.append("engine", ui.engine ? ui.engine.value : "landmarks");
    body.append("size", String(size));
    body.append("format", "jpeg");
    body.append("record", ui.record.checked ? "true" : "false");
    body.append("microphone", ui.mic.checked ? "true" : "false");
    body.append("csrf_token", csrf);
    const { status, data: answer } = await window.Animatica.postForm("/live/sessions", body, csrf);
    if (status === 401) {
      throw new Error("Your session has ended; sign in again.");
    }
    if (status < 200 || status >= 300 || !answer.ws) {
      throw new Error(answer.detail || `The live session could not start (error ${status}).`);
    }
    return answer;
  };

  const start = async () => {
    showError("");
    ui.end.hidden = true;
    ui.recording.hidden = true;
    if (!portraitChosen()) {
      showError("Choose a portrait first: upload a picture or pick one from your History.");
      return;
    }
    const file = ui.source.files[0];
    if (file && maxBytes && file.size > maxBytes) {
      showError(`That picture is larger than the ${(maxBytes / (1024 * 1024)).toFixed(0)} MB limit.`);
      return;
    }
    const size = Number(ui.size.value);
    const wantsMic = ui.record.checked && ui.mic.checked;
    setFormLocked(true);
    ui.stop.disabled = true;
    setState("starting");
    say("Opening the camera…");
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "user" },
        audio: wantsMic,
      });
    } catch (error) {
      setFormLocked(false);
      setState("idle");
      say("Choose a portrait, then press Start.");
      showError(cameraProblem(error));
      return;
    }
    ui.camera.srcObject = stream;
    ui.camera.play().catch(() => {});
    say("Preparing the portrait…");
    let answer;
    try {
      answer = await createSession(size);
    } catch (error) {
      for (const track of stream.getTracks()) {
        track.stop();
      }
      ui.camera.srcObject = null;
      setFormLocked(false);
      setState("idle");
      say("Choose a portrait, then press Start.");
      showError(error.message);
      return;
    }
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${window.location.host}${answer.ws}`);
    socket.binaryType = "arraybuffer";
    const scratch = document.createElement("canvas");
    scratch.width = answer.size || size;
    scratch.height = answer.size || size;
    ui.output.dataset.frames = "0";
    live = {
      socket,
      stream,
      scratch,
      wantsMic,
      size: Number(answer.size) || size,
      mime: answer.format === "webp" ? "image/webp" : "image/jpeg",
      ready: false,
      stopping: false,
      seq: 0,
      answered: 0,
      drawn: 0,
      clientDropped: 0,
      serverDropped: 0,
      shown: [],
      firstAt: null,
      readyAt: null,
      secondsLeft: typeof answer.seconds_left === "number" ? answer.seconds_left : null,
      recorder: null,
      audioDone: Promise.resolve(),
      endMessage: null,
      timer: null,
      ticker: setInterval(() => refresh(), 250),
      hangUp: null,
    };
    ui.fps.textContent = "–";
    ui.delay.textContent = "–";
    ui.dropped.textContent = "0";
    ui.stop.disabled = false;
    say("Loading the engine…");
    socket.addEventListener("message", (event) => {
      if (!live || live.socket !== socket) {
        return;
      }
      if (typeof event.data === "string") {
        onText(event.data);
      } else {
        showFrame(event.data).catch(() => {});
      }
    });
    socket.addEventListener("close", (event) => {
      if (live && live.socket === socket) {
        finish(live.stopping ? null : event.reason || "The connection to the server was lost.");
      }
    });
    document.querySelector(".live-stage")?.scrollIntoView({ block: "nearest", behavior: "smooth" });
  };

  const stop = async () => {
    const session = live;
    if (!session || session.stopping) {
      return;
    }
    session.stopping = true;
    clearInterval(session.timer);
    ui.stop.disabled = true;
    ui.neutral.disabled = true;
    setState("stopping");
    say("Stopping…");
    if (session.recorder && session.recorder.state !== "inactive") {
      session.recorder.stop(); // flushes the last chunk, which goes up before "stop"
    }
    // The last sound goes up before "stop". The recorder says it has finished within moments; the
    // limit only keeps a broken recorder from holding the page in "Stopping" for ever.
    await Promise.race([session.audioDone, new Promise((resolve) => setTimeout(resolve, 15000))]);
    if (session.socket.readyState === WebSocket.OPEN) {
      session.socket.send(JSON.stringify({ type: "stop" }));
      // The server answers with "end" and closes; a server that does not is hung up on.
      session.hangUp = setTimeout(() => {
        if (live === session) {
          finish(null);
        }
      }, STOP_GRACE_MS);
    } else if (live === session) {
      finish(null);
    }
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!live) {
      start();
    }
  });
  ui.stop.addEventListener("click", stop);
  ui.neutral.addEventListener("click", () => {
    if (live && live.ready && live.socket.readyState === WebSocket.OPEN) {
      live.socket.send(JSON.stringify({ type: "neutral" }));
      say("The next camera frame is the neutral pose.");
    }
  });
  // Leaving the page ends the session at once, so the server frees the engine.
  window.addEventListener("pagehide", () => {
    if (live) {
      live.socket.close(1000, "page closed");
    }
  });
  setFormLocked(false);
})();
