// The page's entry point: finds its elements, wires the chain builder, the
// playground, the race and the live panel, and shows the API key field when
// the server turns a call away for want of one.

import { apiJson, onKeyNeeded, setApiKey } from "./api.js";
import { LivePanel } from "./live.js";
import { OpChain } from "./ops.js";
import { Playground } from "./playground.js";
import { Race } from "./race.js";

const $ = (id) => document.getElementById(id);

const chain = new OpChain($("ops-list"), $("ops-text"));
$("add-blur").addEventListener("click", () => chain.add("blur"));
$("add-contour").addEventListener("click", () => chain.add("contour"));

const playground = new Playground({
  dropZone: $("drop-zone"), fileInput: $("file-input"), urlInput: $("url-input"),
  inputSummary: $("input-summary"), format: $("format"), quality: $("quality"),
  qualityValue: $("quality-value"), backend: $("backend"), processButton: $("process-btn"),
  downloadAll: $("download-all"), clearButton: $("clear-btn"), status: $("process-status"),
  results: $("results"),
}, chain);

new Race({
  source: $("race-source"), copies: $("race-copies"), mode: $("race-mode"), start: $("race-start"),
  status: $("race-status"), verdict: $("race-verdict"), outcome: $("race-outcome"),
  chart: $("race-chart"), latencyChart: $("race-latency-chart"),
  progress: { tbb: $("race-progress-tbb"), process: $("race-progress-process") },
  counts: { tbb: $("race-count-tbb"), process: $("race-count-process") },
}, playground);

const live = new LivePanel({
  throughput: $("live-throughput"), latency: $("live-latency"), load: $("live-load"),
  toggle: $("live-toggle"), status: $("live-status"),
});

// The key field: shown on the first 401, hidden again once a key works.
const keyPanel = $("key-panel");
onKeyNeeded(() => {
  if (keyPanel.hidden) {
    keyPanel.hidden = false;
    $("api-key").focus();
  }
});
$("key-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  setApiKey($("api-key").value.trim());
  try {
    await apiJson("/v1/backends");
    $("key-status").textContent = "Key accepted.";
    keyPanel.hidden = true;
    live.start();
  } catch (err) {
    $("key-status").textContent = err.describe ? err.describe() : String(err);
  }
});

// Offer only the backends this server has.
async function listBackends() {
  try {
    const backends = Object.keys(await apiJson("/v1/backends"));
    for (const option of [...$("backend").options]) {
      if (option.value && !backends.includes(option.value)) option.remove();
    }
  } catch (e) {
    // a 401 has shown the key field; anything else shows up in the live panel
  }
}

function startCharts() {
  if (window.Chart) {
    window.Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    window.Chart.defaults.color = getComputedStyle(document.body).color;
  }
  live.start();
}

listBackends();
startCharts();
