// The live panel: /v1/backends every 2 s into three line charts (throughput,
// latency percentiles, queue depth and busy workers per backend), the last
// 5 minutes of them. Polling pauses while the tab is hidden or on request.
// The figures are those of the replica that answered each poll (named under
// the charts).

import { apiFetch } from "./api.js";

const PERIOD_MS = 2000;
const POINTS = 150;  // 5 minutes
const COLORS = { tbb: "#2f7de1", process: "#e0663a" };
const DASH = { p50: [], p95: [6, 3], p99: [2, 3], queue: [], busy: [6, 3] };

export class LivePanel {
  constructor(el) {
    this.el = el;
    this.paused = false;
    this.timer = null;
    this.charts = null;
    el.toggle.addEventListener("click", () => {
      this.paused = !this.paused;
      el.toggle.setAttribute("aria-pressed", String(this.paused));
      el.toggle.textContent = this.paused ? "Resume" : "Pause";
      if (!this.paused) this.poll();
    });
    document.addEventListener("visibilitychange", () => { if (!document.hidden) this.poll(); });
  }

  start() {
    this.poll();
  }

  schedule() {
    clearTimeout(this.timer);
    if (!this.paused && !document.hidden) this.timer = setTimeout(() => this.poll(), PERIOD_MS);
  }

  async poll() {
    clearTimeout(this.timer);
    if (this.paused) return;
    try {
      const response = await apiFetch("/v1/backends");
      this.add(await response.json());
      // /v1/backends is one replica's view: through a load balancer,
      // successive samples may come from different replicas.
      const replica = response.headers.get("X-Pixpool-Replica");
      this.el.status.textContent = replica ? `Replica ${replica}.` : "";
    } catch (e) {
      this.el.status.textContent = e.describe ? e.describe() : String(e);
    }
    this.schedule();
  }

  makeCharts(names) {
    const line = (canvas, series) => new window.Chart(canvas, {
      type: "line",
      data: {
        labels: [],
        datasets: series.map(([backend, key, label]) => ({
          label, data: [], borderColor: COLORS[backend] || "#888", backgroundColor: COLORS[backend] || "#888",
          borderDash: DASH[key] || [], pointRadius: 0, borderWidth: 2, tension: 0.2,
          backend, key,
        })),
      },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        interaction: { mode: "index", intersect: false },
        scales: { x: { ticks: { maxTicksLimit: 6 } }, y: { beginAtZero: true } },
        plugins: { legend: { labels: { boxWidth: 12 } } },
      },
    });
    const each = (keys, label) => names.flatMap((b) => keys.map((k) => [b, k, label(b, k)]));
    return [
      line(this.el.throughput, each(["rate"], (b) => b)),
      line(this.el.latency, each(["p50", "p95", "p99"], (b, k) => `${b} ${k}`)),
      line(this.el.load, each(["queue", "busy"], (b, k) => `${b} ${k === "queue" ? "queued" : "busy"}`)),
    ];
  }

  add(backends) {
    const names = Object.keys(backends).sort();
    if (!this.charts) this.charts = this.makeCharts(names);
    const label = new Date().toLocaleTimeString([], { hour12: false });
    const value = (b, key) => {
      const s = backends[b];
      if (!s) return null;
      const recent = s.recent || {};
      const latency = recent.latency_ms || {};
      switch (key) {
        case "rate": return recent.images_per_s;
        case "p50": case "p95": case "p99": return latency[key];
        case "queue": return s.queue_depth;
        case "busy": return s.busy;
        default: return null;
      }
    };
    for (const chart of this.charts) {
      chart.data.labels.push(label);
      if (chart.data.labels.length > POINTS) chart.data.labels.shift();
      for (const ds of chart.data.datasets) {
        ds.data.push(value(ds.backend, ds.key));
        if (ds.data.length > POINTS) ds.data.shift();
      }
      chart.update("none");
    }
  }
}
