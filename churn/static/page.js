// The scoring page (churn/templates/index.html): checks the form with the API's rules, sends it to
// `predict?explain=true` and shows the answer: the probability, the main reasons as a small chart, the
// changes that would lower it and the warnings (docs/explanations.md). A file rather than inline script,
// with its data in the page's <script type="application/json" id="page-data">: the Content-Security-Policy
// allows nothing inline.
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
  // The API's rule for numbers, as text: ASCII digits with at most one decimal point, nothing else.
  const DECIMAL = /^(?:\d+(?:\.\d*)?|\.\d+)$/;
  // How many contributions the chart shows each way.
  const REASONS_EACH_WAY = 4;
  const MINUS = "\u2212";

  const form = $("customer"), button = $("score"), result = $("result"), errorBox = $("error");
  const keyField = $("apikey");
  $("threshold-mark").style.left = DATA.threshold * 100 + "%";

  // The key typed on either page in this tab (static/api-key.js).
  const { stored: storedKey, store: storeKey } = window.churnApiKey;

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
    for (const id of ["reasons", "what-if", "what-if-empty"]) $(id).hidden = true;
    for (const id of ["reasons-up", "reasons-down", "what-if-list"]) $(id).replaceChildren();
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

  // A field's label without its unit: "Monthly charges", not "Monthly charges ($)".
  function shortLabel(name) {
    return labelOf(name).replace(/\s*\([^)]*\)$/, "");
  }

  // A value as the form shows it: a list's option text ("Two year", "No"), a number with separators.
  function valueText(name, value) {
    const el = form.elements.namedItem(name);
    if (el && el.tagName === "SELECT") {
      const option = [...el.options].find((o) => o.value === String(value));
      if (option) return option.textContent.trim();
    }
    if (typeof value === "number") return format(value);
    return String(value).replace(/_/g, " ");
  }

  function element(tag, props = {}, children = []) {
    const el = Object.assign(document.createElement(tag), props);
    el.append(...children);
    return el;
  }

  function signed(number, digits) {
    const text = Math.abs(number).toFixed(digits);
    return (number < 0 ? MINUS : "+") + text;
  }

  // A log-odds contribution as what it does to the odds: "odds ×1.43", "odds ÷6.9"; two decimals for
  // small effects, so that −0.03 does not read as "÷1.0", no effect at all, and no giant numbers for
  // values far outside the training data.
  function oddsEffect(contribution) {
    const factor = Math.exp(Math.abs(contribution));
    const text = factor < 2 ? factor.toFixed(2)
      : factor < 10 ? factor.toFixed(1)
      : factor < 1000 ? format(Math.round(factor))
      : "1,000+";
    return "odds " + (contribution < 0 ? "\u00f7" : "\u00d7") + text;
  }

  // The API's warning with a label for the field it starts with: "Monthly charges 7985 is 67.3x ...".
  function warningText(warning) {
    const message = String(warning.message || "");
    const field = String(warning.field || "");
    if (field && message.startsWith(field + " ")) return shortLabel(field) + message.slice(field.length);
    return message;
  }

  // The API's warnings, and the page's own out-of-range ones for the fields the API did not warn about:
  // each once, in the API's words when it has them. An API without warnings leaves only the page's.
  function showWarnings(apiWarnings) {
    const box = $("warnings");
    box.replaceChildren();
    const items = [];
    const covered = new Set();
    for (const warning of apiWarnings) {
      if (!warning || typeof warning.message !== "string") continue;
      if (warning.kind === "out_of_range") covered.add(warning.field);
      items.push({ field: warning.field, kind: warning.kind, text: warningText(warning) });
    }
    for (const name of DATA.numerical) {
      const text = updateWarning(name);
      if (!text || covered.has(name)) continue;
      items.push({ field: name, kind: "out_of_range", text: labelOf(name) + " is " + text });
    }
    if (!items.length) return;
    box.append(element("p", { textContent: "Check the values: the model has not seen customers like this." }));
    const list = element("ul");
    for (const item of items) {
      const li = element("li", { textContent: item.text });
      li.dataset.field = item.field || "";
      li.dataset.kind = item.kind || "";
      list.append(li);
    }
    box.append(list);
    box.hidden = false;
  }

  function reasonItem(entry, scale) {
    const bar = element("span", { className: "bar" });
    // Never thinner than a sliver, so a small reason still shows a bar.
    bar.style.width = Math.max(2, (Math.abs(entry.contribution) / scale) * 100) + "%";
    const li = element("li", {}, [
      element("span", {
        className: "reason",
        textContent: shortLabel(entry.feature) + " = " + valueText(entry.feature, entry.value),
      }),
      element("span", { className: "track" }, [bar]),
      element("span", { className: "amount" }, [
        element("b", { textContent: signed(entry.contribution, 2) }),
        " ",
        element("small", { textContent: oddsEffect(entry.contribution) }),
      ]),
    ]);
    li.querySelector(".track").setAttribute("aria-hidden", "true");
    li.dataset.feature = entry.feature;
    li.dataset.contribution = String(entry.contribution);
    return li;
  }

  // The largest contributions each way, as bars on one scale; the API sorts them by size.
  function showReasons(explanation) {
    const contributions = explanation && Array.isArray(explanation.contributions)
      ? explanation.contributions.filter((c) => c && typeof c.contribution === "number")
      : [];
    if (!contributions.length) return;
    const up = contributions.filter((c) => c.contribution > 0).slice(0, REASONS_EACH_WAY);
    const down = contributions.filter((c) => c.contribution < 0).slice(0, REASONS_EACH_WAY);
    const scale = Math.max(...[...up, ...down].map((c) => Math.abs(c.contribution)), 1e-9);
    for (const [id, entries] of [["reasons-up", up], ["reasons-down", down]]) {
      const list = $(id);
      for (const entry of entries) list.append(reasonItem(entry, scale));
      if (!entries.length) list.append(element("li", { className: "none", textContent: "None" }));
    }
    $("reasons").hidden = false;
  }

  function probabilityText(probability) {
    return probability.toFixed(3);
  }

  function changeText(change) {
    const points = Math.abs(change * 100);
    return points < 0.05 ? "less than 0.1 points lower" : points.toFixed(1) + " points lower";
  }

  // The changes that would lower the probability, best first as the API orders them.
  function showWhatIf(whatIf, probability) {
    if (!Array.isArray(whatIf)) return;
    const list = $("what-if-list");
    const changes = whatIf.filter((c) => c && typeof c.churn_probability === "number");
    for (const change of changes) {
      const li = element("li", {}, [
        element("span", {
          className: "change",
          textContent: shortLabel(change.field) + ": " + valueText(change.field, change.from) + " \u2192 " +
            valueText(change.field, change.to),
        }),
        " ",
        element("span", {
          className: "probabilities",
          textContent: probabilityText(probability) + " \u2192 " + probabilityText(change.churn_probability),
        }),
        " ",
        element("small", { textContent: "(" + changeText(change.churn_probability - probability) + ")" }),
      ]);
      li.dataset.field = change.field;
      li.dataset.to = String(change.to);
      li.dataset.probability = String(change.churn_probability);
      list.append(li);
    }
    list.hidden = !changes.length;
    $("what-if-empty").hidden = changes.length > 0;
    $("what-if").hidden = false;
  }

  function showResult(data) {
    const churn = data.churn === true;
    $("probability").textContent = (data.churn_probability * 100).toFixed(1) + "%";
    $("bar").style.width = Math.min(100, Math.max(0, data.churn_probability * 100)) + "%";
    $("verdict").textContent = churn
      ? "Likely to churn (at or above the " + DATA.threshold_text + " threshold)"
      : "Not likely to churn (below the " + DATA.threshold_text + " threshold)";
    result.classList.toggle("churn", churn);
    showWarnings(Array.isArray(data.warnings) ? data.warnings : []);
    showReasons(data.explanation);
    showWhatIf(data.what_if, data.churn_probability);
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
        response = await fetch("predict?explain=true", { method: "POST", headers, body: JSON.stringify(body) });
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
