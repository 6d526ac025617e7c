// The Face swap page's own parts (the pickers and the upload are create.js's): the face number and
// the reference photo show only for the choice that uses them, and the consent box, which the
// browser will not let the form go without, says why when it stops the form.
"use strict";

(() => {
  const form = document.getElementById("swap-form");
  if (!form) {
    return;
  }
  const extras = { index: document.getElementById("index-field"), reference: document.getElementById("reference-field") };
  const showChoice = () => {
    const chosen = form.elements.which.value;
    for (const [mode, field] of Object.entries(extras)) {
      field.hidden = mode !== chosen;
    }
  };
  for (const radio of form.querySelectorAll("input[name=which]")) {
    radio.addEventListener("change", showChoice);
  }
  showChoice();

  const consent = document.getElementById("consent");
  const consentError = document.getElementById("consent-error");
  consent.addEventListener("invalid", () => {
    consentError.textContent = "Tick the box to confirm that you have the right to use both faces.";
    consentError.hidden = false;
  });
  consent.addEventListener("change", () => {
    if (consent.checked) {
      consentError.hidden = true;
      consentError.textContent = "";
    }
  });
})();
