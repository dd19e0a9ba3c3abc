// The monitoring page (churn/templates/monitoring.html): fetches drift and performance from the service
// with the API key, or reads them from the page itself in a standalone report, and draws them with Chart.js.
// A file rather than inline script, with its data in <script type="application/json" id="monitoring-data">:
// the Content-Security-Policy allows nothing inline.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const DATA = JSON.parse($("monitoring-data").textContent);
  const STATUS_COLOURS = { stable: "#1b7f4b", watch: "#d99a00", act: "#c0392b" };
  const REFERENCE_COLOUR = "#8a94a6", CURRENT_COLOUR = "#2f5bea";
  // Probability bands from green (stays) to red (leaves).
  const BANDS = ["#1a9850", "#66bd63", "#a6d96a", "#d9ef8b", "#ffffbf", "#fee08b", "#fdae61", "#f46d43", "#d73027", "#a50026"];
  const MOST_DRIFTED = 3;
  const charts = new Map();
  const percent = (share) => (share * 100).toFixed(1) + "%";
  const figure = (value) => (value === null || value === undefined ? "n/a" : value.toFixed(3));

  function draw(canvas, config) {
    charts.get(canvas)?.destroy();
    config.options = { responsive: true, maintainAspectRatio: false, animation: false, ...config.options };
    charts.set(canvas, new Chart(canvas, config));
  }

  function show(id, text) {
    const element = $(id);
    element.textContent = text || "";
    element.hidden = !text;
  }

  function drawDrift(drift) {
    const section = $("drift");
    section.setAttribute("aria-busy", "false");
    show("drift-quiet", drift.message);
    $("drift-figures").hidden = Boolean(drift.message);
    if (drift.message) {
      $("drift-summary").textContent = "";
      return;
    }
    const { watch, act } = drift.thresholds;
    const all = [...drift.features, drift.probability];
    const acting = all.filter((item) => item.status === "act").length;
    const watching = all.filter((item) => item.status === "watch").length;
    $("drift-summary").textContent =
      `${drift.rows.toLocaleString("en")} predictions, ${drift.first_logged_at.slice(0, 16).replace("T", " ")} to ` +
      `${drift.last_logged_at.slice(0, 16).replace("T", " ")} UTC: ${acting} to act on, ${watching} to watch.`;
    $("psi-legend").textContent =
      `Green: stable (PSI below ${watch}). Amber: watch (${watch} to ${act}). Red: act (above ${act}).`;
    section.dataset.state = acting ? "act" : watching ? "watch" : "stable";

    const sorted = [...all].sort((a, b) => b.psi - a.psi);
    draw($("psi-chart"), {
      type: "bar",
      data: {
        labels: sorted.map((item) => item.name),
        datasets: [{ label: "PSI", data: sorted.map((item) => item.psi),
                     backgroundColor: sorted.map((item) => STATUS_COLOURS[item.status]) }],
      },
      options: { indexAxis: "y", plugins: { legend: { display: false } },
                 scales: { x: { title: { display: true, text: "PSI" } }, y: { ticks: { autoSkip: false } } } },
    });

    const rows = sorted.map((item) => {
      const row = document.createElement("tr");
      row.dataset.feature = item.name;
      for (const [text, status] of [[item.name], [figure(item.psi)], [item.status, true], [percent(item.unseen_share)]]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        if (status) cell.className = "status-" + item.status;
        row.append(cell);
      }
      return row;
    });
    $("psi-table").tBodies[0].replaceChildren(...rows);

    const boxes = sorted.slice(0, MOST_DRIFTED).map((item) => {
      const box = document.createElement("div");
      const title = document.createElement("h4");
      title.textContent = `${item.name}: PSI ${figure(item.psi)}`;
      const holder = document.createElement("div");
      holder.className = "chart";
      const canvas = document.createElement("canvas");
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", `${item.name}: training and current shares`);
      holder.append(canvas);
      box.append(title, holder);
      return { box, canvas, item };
    });
    for (const old of $("histograms").querySelectorAll("canvas")) charts.get(old)?.destroy();
    $("histograms").replaceChildren(...boxes.map(({ box }) => box));
    for (const { canvas, item } of boxes) {
      const labels = [...item.bins, "never seen"];
      draw(canvas, {
        type: "bar",
        data: {
          labels,
          datasets: [
            { label: "Training", data: [...item.reference, 0], backgroundColor: REFERENCE_COLOUR },
            { label: "Now", data: [...item.current, item.unseen_share], backgroundColor: CURRENT_COLOUR },
          ],
        },
        options: { scales: { y: { ticks: { callback: (value) => percent(value) } } } },
      });
    }

    const buckets = drift.timeline.buckets;
    draw($("timeline-chart"), {
      type: "bar",
      data: {
        labels: buckets.map((bucket) => bucket.start),
        datasets: drift.timeline.bins.map((band, index) => ({
          label: band, data: buckets.map((bucket) => bucket.shares[index]), backgroundColor: BANDS[index % BANDS.length],
        })),
      },
      options: {
        scales: { x: { stacked: true, title: { display: true, text: drift.timeline.bucket_days === 7 ? "Week" : "Day" } },
                  y: { stacked: true, max: 1, ticks: { callback: (value) => percent(value) } } },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
      },
    });
  }

  function drawPerformance(performance) {
    $("performance").setAttribute("aria-busy", "false");
    show("performance-quiet", performance.message);
    $("performance-figures").hidden = Boolean(performance.message);
    if (performance.message) {
      $("performance-summary").textContent = "";
      return;
    }
    $("performance-summary").textContent =
      `${performance.labelled.toLocaleString("en")} predictions with an outcome (${performance.churned.toLocaleString("en")} ` +
      `churned): AUC ${figure(performance.auc)}, precision ${figure(performance.precision)}, ` +
      `recall ${figure(performance.recall)} at the decisions made.`;
    const weeks = performance.weeks;
    const line = (label, key, colour) => ({ label, data: weeks.map((week) => week[key]), borderColor: colour,
                                            backgroundColor: colour, spanGaps: true });
    draw($("auc-chart"), {
      type: "line",
      data: { labels: weeks.map((week) => week.start),
              datasets: [line("AUC", "auc", CURRENT_COLOUR), line("Precision", "precision", "#8e44ad"),
                         line("Recall", "recall", "#d35400")] },
      options: { scales: { y: { min: 0, max: 1 } }, plugins: { legend: { position: "bottom" } } },
    });
    draw($("calibration-chart"), {
      type: "scatter",
      data: {
        datasets: [
          { label: "Observed", data: performance.calibration.map((bin) => ({ x: bin.predicted, y: bin.observed })),
            borderColor: CURRENT_COLOUR, backgroundColor: CURRENT_COLOUR, showLine: true },
          { label: "Perfect", data: [{ x: 0, y: 0 }, { x: 1, y: 1 }], borderColor: REFERENCE_COLOUR,
            borderDash: [6, 4], pointRadius: 0, showLine: true },
        ],
      },
      options: {
        scales: { x: { min: 0, max: 1, title: { display: true, text: "Predicted churn rate" } },
                  y: { min: 0, max: 1, title: { display: true, text: "Observed churn rate" } } },
        plugins: { legend: { position: "bottom" } },
      },
    });
  }

  function finished() {
    document.body.dataset.state = "loaded";
  }

  if (DATA.drift) {
    // A standalone report: the figures are in the page.
    drawDrift(DATA.drift);
    drawPerformance(DATA.performance);
    finished();
    return;
  }
  if (DATA.unavailable) {
    show("notice", DATA.unavailable);
    for (const id of ["drift", "performance"]) $(id).hidden = true;
    finished();
    return;
  }

  const form = $("controls"), keyField = $("apikey"), button = $("refresh");

  // The key typed on either page in this tab (static/api-key.js).
  const { stored: storedKey, store: storeKey } = window.churnApiKey;

  async function fetchFigures(path) {
    const key = keyField.value.trim();
    const headers = key ? { Authorization: "Bearer " + key } : {};
    // Relative to the page: works behind a path prefix.
    const response = await fetch(`${path}?${$("window").value}`, { headers });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(body.detail || `The service answered ${response.status}.`);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  async function load() {
    button.disabled = true;
    show("notice", "");
    keyField.removeAttribute("aria-invalid");
    $("apikey-error").textContent = "";
    try {
      const [drift, performance] = await Promise.all([fetchFigures("monitoring/drift"),
                                                      fetchFigures("monitoring/performance")]);
      drawDrift(drift);
      drawPerformance(performance);
    } catch (error) {
      if (error.status === 401) {
        keyField.setAttribute("aria-invalid", "true");
        $("apikey-error").textContent = keyField.value.trim()
          ? "This key was not accepted." : "This service needs an API key: enter it here.";
      }
      show("notice", error.status ? error.message : "Could not reach the service: check the connection and refresh.");
    } finally {
      button.disabled = false;
      finished();
    }
  }

  keyField.value = storedKey();
  keyField.addEventListener("input", () => storeKey(keyField.value.trim()));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  $("window").addEventListener("change", load);
  load();
})();
