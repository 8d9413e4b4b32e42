// "Try it": images in (dropped, chosen or URLs), each through
// /v1/process with the chosen chain, format, quality and backend; each input
// beside its result, with its Server-Timing stages as a bar and any error
// next to it; results downloadable one by one or as a tar.

import { apiFetch, parseServerTiming, query } from "./api.js";
import { makeTar } from "./tar.js";

const STAGES = ["queue", "download", "decode", "filter", "encode"];
const PARALLEL_REQUESTS = 4;
const TYPE_EXTENSION = { "image/jpeg": "jpg", "image/png": "png", "image/webp": "webp" };

export class Playground {
  constructor(el, chain) {
    this.el = el;
    this.chain = chain;
    this.files = [];    // File objects chosen or dropped
    this.results = [];  // {name, blob} of successful outputs, for the tar
    this.running = false;

    el.fileInput.addEventListener("change", () => this.addFiles(el.fileInput.files));
    el.urlInput.addEventListener("input", () => this.summarize());
    for (const type of ["dragenter", "dragover"]) {
      el.dropZone.addEventListener(type, (e) => { e.preventDefault(); el.dropZone.classList.add("over"); });
    }
    for (const type of ["dragleave", "drop"]) {
      el.dropZone.addEventListener(type, () => el.dropZone.classList.remove("over"));
    }
    el.dropZone.addEventListener("drop", (e) => {
      e.preventDefault();
      this.addFiles(e.dataTransfer.files);
    });
    // The drop zone is the file input's label: Enter and Space open the picker.
    el.dropZone.tabIndex = 0;
    el.dropZone.setAttribute("role", "button");
    el.dropZone.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); el.fileInput.click(); }
    });
    el.quality.addEventListener("input", () => { el.qualityValue.value = el.quality.value; });
    el.processButton.addEventListener("click", () => this.processAll());
    el.downloadAll.addEventListener("click", () => this.downloadAll());
    el.clearButton.addEventListener("click", () => this.clear());
  }

  addFiles(list) {
    for (const f of list) this.files.push(f);
    this.summarize();
  }

  urls() {
    return this.el.urlInput.value.split(/\s+/).map((u) => u.trim()).filter(Boolean);
  }

  summarize() {
    const n = this.files.length;
    const u = this.urls().length;
    const parts = [];
    if (n) parts.push(`${n} file${n === 1 ? "" : "s"}`);
    if (u) parts.push(`${u} URL${u === 1 ? "" : "s"}`);
    this.el.inputSummary.textContent = parts.length ? `${parts.join(" and ")} ready.` : "No images yet.";
  }

  // What the processing routes take besides the image.
  options() {
    const format = this.el.format.value;
    return {
      ops: this.chain.value(),
      format,
      // quality matters to JPEG and WebP only; "same as input" may be either
      quality: format === "png" ? "" : this.el.quality.value,
      backend: this.el.backend.value,
    };
  }

  clear() {
    this.files = [];
    this.results = [];
    this.el.fileInput.value = "";
    this.el.urlInput.value = "";
    this.el.results.replaceChildren();
    this.el.downloadAll.disabled = true;
    this.el.status.textContent = "";
    this.summarize();
  }

  async processAll() {
    if (this.running) return;
    const items = [
      ...this.files.map((file) => ({ name: file.name, file })),
      ...this.urls().map((url) => ({ name: url, url })),
    ];
    if (!items.length) {
      this.el.status.textContent = "Choose or drop an image, or paste a URL, first.";
      return;
    }
    this.running = true;
    this.el.processButton.disabled = true;
    this.results = [];
    this.el.downloadAll.disabled = true;
    this.el.results.replaceChildren();
    const options = this.options();
    const cards = items.map((item) => this.card(item));
    let next = 0;
    let failed = 0;
    const started = performance.now();
    const worker = async () => {
      while (next < items.length) {
        const i = next++;
        this.el.status.textContent = `Processing ${Math.min(next, items.length)} of ${items.length}…`;
        if (!(await this.processOne(items[i], i, cards[i], options))) failed += 1;
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_REQUESTS, items.length) }, worker));
    const seconds = (performance.now() - started) / 1000;
    this.el.status.textContent = `Done: ${items.length - failed} of ${items.length} in ${seconds.toFixed(2)} s` +
      (failed ? `, ${failed} failed (see the messages below).` : ".");
    this.results = this.results.filter(Boolean);  // in input order, failures left out
    this.el.downloadAll.disabled = this.results.length === 0;
    this.el.processButton.disabled = false;
    this.running = false;
  }

  // One request; true when it produced an image (kept as results[index],
  // so the tar follows the inputs' order whatever finishes first). Errors
  // land on the card.
  async processOne(item, index, card, options) {
    try {
      let response;
      if (item.file) {
        response = await apiFetch(`/v1/process${query(options)}`, {
          method: "POST",
          headers: { "Content-Type": item.file.type || "application/octet-stream" },
          body: item.file,
        });
      } else {
        response = await apiFetch(`/v1/process${query({ ...options, url: item.url })}`);
      }
      const blob = await response.blob();
      const name = outputName(item.name, blob.type);
      this.results[index] = { name, blob };
      card.showResult(blob, name, response.headers.get("X-Pixpool-Backend"),
        parseServerTiming(response.headers.get("Server-Timing")));
      return true;
    } catch (e) {
      card.showError(e.describe ? e.describe() : String(e));
      return false;
    }
  }

  card(item) {
    const li = document.createElement("li");
    li.className = "result pending";
    li.dataset.testid = "result-card";
    const title = document.createElement("h4");
    title.textContent = item.name;
    title.title = item.name;
    const pair = document.createElement("div");
    pair.className = "pair";
    const input = document.createElement("figure");
    if (item.file) {
      const img = document.createElement("img");
      img.src = URL.createObjectURL(item.file);
      img.alt = `Input: ${item.name}`;
      input.append(img);
    } else {
      const p = document.createElement("p");
      p.className = "hint";
      p.textContent = "Downloaded by the server";
      input.append(p);
    }
    const inCaption = document.createElement("figcaption");
    inCaption.textContent = "input";
    input.append(inCaption);
    const output = document.createElement("figure");
    const placeholder = document.createElement("div");
    placeholder.className = "spinner";
    placeholder.setAttribute("aria-label", "processing");
    output.append(placeholder);
    pair.append(input, output);
    const footer = document.createElement("div");
    footer.className = "card-footer";
    li.append(title, pair, footer);
    this.el.results.append(li);

    return {
      showResult: (blob, name, backend, timings) => {
        li.className = "result ok";
        const img = document.createElement("img");
        img.src = URL.createObjectURL(blob);
        img.alt = `Result: ${name}`;
        img.className = "output";
        const caption = document.createElement("figcaption");
        caption.textContent = `output${backend ? ` (${backend})` : ""}, ${formatBytes(blob.size)}`;
        output.replaceChildren(img, caption);
        const link = document.createElement("a");
        link.href = img.src;
        link.download = name;
        link.textContent = "Download";
        link.className = "download";
        footer.replaceChildren(timingBar(timings), link);
      },
      showError: (message) => {
        li.className = "result failed";
        const p = document.createElement("p");
        p.className = "error";
        p.setAttribute("role", "alert");
        p.textContent = message;
        output.replaceChildren(p);
      },
    };
  }

  async downloadAll() {
    const files = await Promise.all(this.results.map(async (r) => ({
      name: r.name, bytes: new Uint8Array(await r.blob.arrayBuffer()),
    })));
    const a = document.createElement("a");
    a.href = URL.createObjectURL(makeTar(files));
    a.download = "pixpool-results.tar";
    document.body.append(a);
    a.click();
    a.remove();
  }
}

// The stages of one response as a stacked bar, widths by time, with the
// numbers in a legend and as the bar's accessible name.
function timingBar(timings) {
  const wrap = document.createElement("div");
  wrap.className = "timing";
  wrap.dataset.testid = "timing";
  const stages = STAGES.map((name) => timings.find((t) => t.name === name) || { name, ms: 0 });
  const total = (timings.find((t) => t.name === "total") || {}).ms ||
    stages.reduce((a, s) => a + s.ms, 0);
  const bar = document.createElement("div");
  bar.className = "timing-bar";
  bar.setAttribute("role", "img");
  bar.setAttribute("aria-label",
    `${stages.map((s) => `${s.name} ${s.ms.toFixed(1)} ms`).join(", ")}, total ${total.toFixed(1)} ms`);
  const sum = stages.reduce((a, s) => a + s.ms, 0) || 1;
  for (const s of stages) {
    if (s.ms <= 0) continue;
    const seg = document.createElement("span");
    seg.className = `stage stage-${s.name}`;
    seg.style.width = `${(100 * s.ms) / sum}%`;
    seg.title = `${s.name}: ${s.ms.toFixed(2)} ms`;
    bar.append(seg);
  }
  const legend = document.createElement("p");
  legend.className = "timing-legend";
  legend.textContent = `${stages.filter((s) => s.ms > 0).map((s) => `${s.name} ${s.ms.toFixed(1)}`).join(" · ")}` +
    ` · total ${total.toFixed(1)} ms`;
  wrap.append(bar, legend);
  return wrap;
}

function outputName(input, type) {
  const base = (input.split(/[/?#]/).filter(Boolean).pop() || "image").replace(/\.[^.]*$/, "");
  return `${base}.${TYPE_EXTENSION[type] || "bin"}`;
}

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}
