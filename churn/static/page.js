// The scoring page (churn/templates/index.html): checks the form with the API's rules, sends it to
// `predict` and shows the answer. A file rather than inline script, with its data in the page's
// <script type="application/json" id="page-data">: the Content-Security-Policy allows nothing inline.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const DATA = JSON.parse($("page-data").textContent);
  const FIELDS = [...Object.keys(DATA.categorical), ...DATA.numerical];
  const BLANK_AS_ZERO = new Set(DATA.blank_as_zero);
  const RANGES = DATA.training_ranges || {};
  // How far outside the training range a value must be to warn: a share of the range's width, so a
  // tenure of 73 months (the data stops at 72) passes quietly but a monthly charge of 7985 does not.
  const RANGE_SLACK = 0.1;
  // Kept for this tab only: never localStorage, never the URL.
  const KEY_STORAGE = "churn-api-key";
  // The API's rule for numbers, as text: ASCII digits with at most one decimal point, nothing else.
  const DECIMAL = /^(?:\d+(?:\.\d*)?|\.\d+)$/;

  const form = $("customer"), button = $("score"), result = $("result"), errorBox = $("error");
  const keyField = $("apikey");
  $("threshold-mark").style.left = DATA.threshold * 100 + "%";

  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || "";
    } catch (error) {
      return "";  // Storage disabled: the key lasts as long as the page.
    }
  }

  function storeKey(key) {
    try {
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch (error) {
      // As above.
    }
  }

  keyField.value = storedKey();

  function setNote(id, text) {
    const note = $(id);
    if (note) note.textContent = text;
  }

  function markInvalid(el, message) {
    el.setAttribute("aria-invalid", "true");
    const note = $(el.id + "-error");
    if (note) note.textContent = note.textContent ? note.textContent + "; " + message : message;
  }

  function clearField(el) {
    el.removeAttribute("aria-invalid");
    setNote(el.id + "-error", "");
  }

  function clearErrors() {
    errorBox.hidden = true;
    errorBox.replaceChildren();
    for (const el of form.querySelectorAll("[aria-invalid]")) clearField(el);
  }

  function reset() {
    clearErrors();
    result.hidden = true;
    result.classList.remove("stale");
    $("stale").hidden = true;
    $("warnings").hidden = true;
    $("warnings").replaceChildren();
    $("probability").textContent = "";
    $("verdict").textContent = "";
  }

  // A number field's value, or why it is not one: {value} or {error}.
  function readNumber(name, text) {
    const trimmed = text.trim();
    if (trimmed === "") {
      return BLANK_AS_ZERO.has(name) ? { value: "" } : { error: "is required" };
    }
    if (DECIMAL.test(trimmed)) {
      const value = Number(trimmed);
      return Number.isFinite(value) ? { value } : { error: "is too large" };
    }
    if (trimmed.includes(",")) {
      return { error: "must be a number without commas: use a dot for decimals (79.85, not 79,85)" };
    }
    if (/^-/.test(trimmed) && DECIMAL.test(trimmed.slice(1))) return { error: "must not be negative" };
    return { error: "must be a number such as 41 or 79.85, not " + JSON.stringify(trimmed) };
  }

  function format(number) {
    return Number(number).toLocaleString("en-US", { maximumFractionDigits: 2 });
  }

  // Why a field's value is far outside what the model was trained on, or "".
  function rangeWarning(name) {
    const range = RANGES[name];
    const el = form.elements.namedItem(name);
    if (!range || !el) return "";
    const read = readNumber(name, el.value);
    if (read.error !== undefined || read.value === "") return "";
    const slack = (range.max - range.min) * RANGE_SLACK;
    if (read.value >= range.min - slack && read.value <= range.max + slack) return "";
    return "far outside the training data (" + format(range.min) + " to " + format(range.max) +
      "): the prediction may be unreliable";
  }

  function updateWarning(name) {
    const text = rangeWarning(name);
    const el = form.elements.namedItem(name);
    setNote(name + "-warning", text);
    if (el) el.classList.toggle("out-of-range", text !== "");
    return text;
  }

  // The customer as the API takes it, with the fields that break its rules marked; null if any do.
  function customer() {
    const body = {};
    let valid = true;
    for (const name of FIELDS) {
      const el = form.elements.namedItem(name);
      if (!el) continue;
      if (el.dataset.type === "int") {
        body[name] = parseInt(el.value, 10);
      } else if (DATA.numerical.includes(name)) {
        const read = readNumber(name, el.value);
        if (read.error !== undefined) {
          markInvalid(el, read.error);
          valid = false;
        } else {
          body[name] = read.value;
        }
      } else {
        body[name] = el.value;
      }
    }
    return valid ? body : null;
  }

  function labelOf(name) {
    const label = form.querySelector('label[for="' + name + '"]');
    return label ? label.firstChild.textContent.trim() : name;
  }

  function showWarnings() {
    const box = $("warnings");
    box.replaceChildren();
    const items = [];
    for (const name of DATA.numerical) {
      const text = updateWarning(name);
      if (text) items.push(labelOf(name) + " is " + text);
    }
    if (!items.length) return;
    box.append(Object.assign(document.createElement("p"), {
      textContent: "Check the values: the model has not seen customers like this.",
    }));
    const list = document.createElement("ul");
    for (const text of items) list.append(Object.assign(document.createElement("li"), { textContent: text }));
    box.append(list);
    box.hidden = false;
  }

  function showResult(data) {
    const churn = data.churn === true;
    $("probability").textContent = (data.churn_probability * 100).toFixed(1) + "%";
    $("bar").style.width = Math.min(100, Math.max(0, data.churn_probability * 100)) + "%";
    $("verdict").textContent = churn
      ? "Likely to churn (at or above the " + DATA.threshold_text + " threshold)"
      : "Not likely to churn (below the " + DATA.threshold_text + " threshold)";
    result.classList.toggle("churn", churn);
    showWarnings();
    result.hidden = false;
  }

  function showError(message, others = []) {
    errorBox.append(Object.assign(document.createElement("p"), { textContent: message }));
    if (others.length) {
      const list = document.createElement("ul");
      for (const text of others) list.append(Object.assign(document.createElement("li"), { textContent: text }));
      errorBox.append(list);
    }
    errorBox.hidden = false;
  }

  function showProblem(response, data) {
    const unplaced = [];
    for (const problem of (data && Array.isArray(data.errors)) ? data.errors : []) {
      const el = problem.field && FIELDS.includes(problem.field) ? form.elements.namedItem(problem.field) : null;
      if (el) markInvalid(el, problem.message);
      else unplaced.push((problem.field ? problem.field + ": " : "") + problem.message);
    }
    const detail = data && typeof data.detail === "string" && data.detail
      ? data.detail
      : "The service answered " + response.status + " " + response.statusText + " without an explanation.";
    showError(detail, unplaced);
  }

  function showUnauthorised() {
    const given = keyField.value.trim() !== "";
    markInvalid(keyField, "This service needs an API key" + (given ? ": the key entered was not accepted." : "."));
    showError(given
      ? "The API key was not accepted: check it and score again."
      : "This service needs an API key: enter it under Access and score again.");
    keyField.focus();
  }

  // Any change to the customer makes a shown result describe someone else.
  function markStale() {
    if (result.hidden) return;
    result.classList.add("stale");
    $("stale").hidden = false;
  }

  // An edited field: its old error no longer applies, its warning is redone, and a shown result is stale.
  // Both events, as a list fires "input" and "change" in browsers but only "change" under some automation.
  function edited(event) {
    const el = event.target;
    clearField(el);
    if (el === keyField) {
      storeKey(keyField.value);
      return;
    }
    if (DATA.numerical.includes(el.name)) updateWarning(el.name);
    markStale();
  }

  form.addEventListener("input", edited);
  form.addEventListener("change", edited);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    reset();
    $("placeholder").hidden = true;
    const body = customer();
    if (body === null) {
      showError("Some values break the service's rules: fix the marked fields and score again.");
      const first = form.querySelector('[aria-invalid="true"]');
      if (first) first.focus();
      return;
    }
    const headers = { "Content-Type": "application/json", "Accept": "application/json" };
    const key = keyField.value.trim();
    if (key) headers.Authorization = "Bearer " + key;
    button.disabled = true;
    button.textContent = "Scoring…";
    try {
      let response;
      try {
        response = await fetch("predict", { method: "POST", headers, body: JSON.stringify(body) });
      } catch (error) {
        showError("Could not reach the prediction service. Check your connection and try again.");
        return;
      }
      const data = await response.json().catch(() => null);
      if (response.ok && data && typeof data.churn_probability === "number") showResult(data);
      else if (response.status === 401) showUnauthorised();
      else showProblem(response, data);
    } finally {
      button.disabled = false;
      button.textContent = "Score customer";
      if (window.matchMedia("(max-width: 760px)").matches) result.parentElement.scrollIntoView({ block: "nearest" });
    }
  });

  for (const name of DATA.numerical) updateWarning(name);
})();
