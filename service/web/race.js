// "Race the backends": the same images as two jobs (POST /v1/jobs), one
// per backend, each with a progress bar fed by its SSE stream; then the
// outcome as charts of images/s and per-image latency.

import { apiFetch, apiJson, followJobEvents, query } from "./api.js";
import { generateTestImages } from "./test_images.js";

const BACKENDS = ["tbb", "process"];
const COLORS = { tbb: "#2f7de1", process: "#e0663a" };

export class Race {
  constructor(el, playground) {
    this.el = el;
    this.playground = playground;
    this.charts = [];
    this.running = false;
    el.start.addEventListener("click", () => this.run());
  }

  async images() {
    if (this.el.source.value === "generated") return generateTestImages(6, 1280, 720);
    return this.playground.files.map((f) => ({ name: f.name, blob: f }));
  }

  async run() {
    if (this.running) return;
    const originals = await this.images();
    if (!originals.length) {
      this.el.status.textContent = "Choose images under \"Try it\" first, or race generated test images.";
      return;
    }
    const copies = Math.max(1, Math.min(50, Number(this.el.copies.value) || 1));
    const images = [];
    for (let c = 0; c < copies; c++) images.push(...originals);
    this.running = true;
    this.el.start.disabled = true;
    this.el.outcome.hidden = true;
    this.el.verdict.textContent = "";
    for (const b of BACKENDS) this.lane(b, 0, images.length, "waiting");
    const options = { ...this.playground.options() };
    delete options.backend;
    this.el.status.textContent = `Racing ${images.length} images…`;
    try {
      let outcomes;
      if (this.el.mode.value === "together") {
        outcomes = await Promise.all(BACKENDS.map((b) => this.runJob(b, images, options)));
      } else {
        outcomes = [];
        for (const b of BACKENDS) outcomes.push(await this.runJob(b, images, options));
      }
      this.showOutcome(outcomes);
      this.el.status.textContent = "Finished.";
    } catch (e) {
      this.el.status.textContent = `The race stopped: ${e.describe ? e.describe() : e.message}`;
    } finally {
      this.running = false;
      this.el.start.disabled = false;
    }
  }

  lane(backend, done, total, note) {
    const bar = this.el.progress[backend];
    bar.max = Math.max(total, 1);
    bar.value = done;
    this.el.counts[backend].textContent = note ? `${done}/${total} ${note}` : `${done}/${total}`;
  }

  // One job on `backend`; resolves to its outcome once its `done` event came.
  async runJob(backend, images, options) {
    const form = new FormData();
    images.forEach((img) => form.append("image", img.blob, img.name));
    const job = await apiJson(`/v1/jobs${query({ ...options, backend })}`, { method: "POST", body: form });
    let done = 0;
    let totals = null;
    this.lane(backend, 0, job.total, "running");
    await followJobEvents(job.id, (type, data) => {
      if (type === "item") this.lane(backend, ++done, job.total);
      if (type === "done") {
        totals = data;
        this.lane(backend, data.done, data.total, data.failed ? `(${data.failed} failed)` : "done");
      }
    });
    const record = await apiJson(`/v1/jobs/${encodeURIComponent(job.id)}`);
    const latencies = record.items.filter((i) => i.state === "succeeded")
      .map((i) => i.timings_ms.total).sort((a, b) => a - b);
    return { backend, totals, latencies };
  }

  showOutcome(outcomes) {
    this.charts.forEach((c) => c.destroy());
    this.el.outcome.hidden = false;
    const labels = outcomes.map((o) => o.backend);
    const colors = outcomes.map((o) => COLORS[o.backend]);
    const rate = outcomes.map((o) => round(o.totals.images_per_s));
    this.charts = [
      new window.Chart(this.el.chart, {
        type: "bar",
        data: { labels, datasets: [{ label: "images/s", data: rate, backgroundColor: colors }] },
        options: chartOptions("Images per second (higher is better)"),
      }),
      new window.Chart(this.el.latencyChart, {
        type: "bar",
        data: {
          labels: ["p50", "p95", "max"],
          datasets: outcomes.map((o) => ({
            label: o.backend,
            backgroundColor: COLORS[o.backend],
            data: [percentile(o.latencies, 50), percentile(o.latencies, 95), percentile(o.latencies, 100)],
          })),
        },
        options: chartOptions("Per-image latency in ms (lower is better)"),
      }),
    ];
    const [a, b] = [...outcomes].sort((x, y) => y.totals.images_per_s - x.totals.images_per_s);
    const ratio = b.totals.images_per_s > 0 ? a.totals.images_per_s / b.totals.images_per_s : Infinity;
    this.el.verdict.textContent = `${a.backend} won: ${round(a.totals.images_per_s)} images/s against ` +
      `${round(b.totals.images_per_s)} (${Number.isFinite(ratio) ? ratio.toFixed(2) : "∞"}×) on ` +
      `${a.totals.total} images.`;
  }
}

function chartOptions(title) {
  return {
    responsive: true,
    maintainAspectRatio: false,
    animation: false,
    plugins: { title: { display: true, text: title } },
    scales: { y: { beginAtZero: true } },
  };
}

function percentile(sorted, p) {
  if (!sorted.length) return 0;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return round(sorted[Math.max(0, i)]);
}

function round(x) {
  return Math.round(x * 100) / 100;
}
