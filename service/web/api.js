// Calls to pixpool's own API: the API key, error bodies turned into
// sentences, Server-Timing parsed, and job events read over fetch (an
// EventSource cannot send the Authorization header).

let apiKey = sessionStorage.getItem("pixpool-api-key") || "";
const keyListeners = [];

// The key for /v1 calls ("" when none). Kept in sessionStorage: this tab only.
export function setApiKey(key) {
  apiKey = key;
  if (key) sessionStorage.setItem("pixpool-api-key", key);
  else sessionStorage.removeItem("pixpool-api-key");
}

// fn() is called when a call is refused for want of a (valid) key.
export function onKeyNeeded(fn) {
  keyListeners.push(fn);
}

// An API failure with what the user needs: status, code, the server's message.
export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }

  // One readable sentence, e.g. "400 invalid_ops: op 'blur': argument ...".
  describe() {
    let text = this.status ? `${this.status} ${this.code}: ${this.message}` : this.message;
    if (this.code === "unauthorized") text += " Enter an API key above.";
    if (this.retryAfter) text += ` Try again in ${this.retryAfter} s.`;
    return text;
  }
}

// fetch() with the key; a non-2xx answer becomes an ApiError built from the
// server's {"error":{"code","message"}} body (or the status text).
export async function apiFetch(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (apiKey) headers.set("Authorization", `Bearer ${apiKey}`);
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (e) {
    throw new ApiError(0, "network", `The server could not be reached (${e.message}).`);
  }
  if (response.ok) return response;
  let code = "http_error";
  let message = response.statusText || "request failed";
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch (e) {
    // not JSON: keep the status text
  }
  if (code === "unauthorized") keyListeners.forEach((fn) => fn());
  throw new ApiError(response.status, code, message, response.headers.get("Retry-After"));
}

export async function apiJson(path, options = {}) {
  return (await apiFetch(path, options)).json();
}

// Server-Timing: "queue;dur=0.1, decode;dur=2.3, ..." -> [{name, ms}].
export function parseServerTiming(header) {
  if (!header) return [];
  return header.split(",").map((part) => {
    const [name, ...params] = part.trim().split(";");
    const dur = params.map((p) => p.trim()).find((p) => p.startsWith("dur="));
    return { name: name.trim(), ms: dur ? Number(dur.slice(4)) : 0 };
  }).filter((t) => t.name);
}

// Reads a job's SSE stream (/v1/jobs/{id}/events) and calls onEvent(type,
// data) for each event until `done`. A dropped stream is resumed from the
// last event id (Last-Event-ID), up to 5 times in a row. `signal` aborts.
export async function followJobEvents(jobId, onEvent, signal) {
  let lastId = "";
  let failures = 0;
  for (;;) {
    const headers = { Accept: "text/event-stream" };
    if (lastId) headers["Last-Event-ID"] = lastId;
    try {
      const response = await apiFetch(`/v1/jobs/${encodeURIComponent(jobId)}/events`, { headers, signal });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = parseEventBlock(block);
          if (event.id) lastId = event.id;
          if (!event.data) continue;
          failures = 0;
          onEvent(event.type, JSON.parse(event.data));
          if (event.type === "done") {
            reader.cancel().catch(() => {});
            return;
          }
        }
      }
    } catch (e) {
      if (signal && signal.aborted) throw e;
      if (e instanceof ApiError && e.status >= 400 && e.status < 500) throw e;
    }
    failures += 1;
    if (failures > 5) throw new ApiError(0, "stream", "The job's event stream kept dropping.");
    await new Promise((resolve) => setTimeout(resolve, 500 * failures));
  }
}

function parseEventBlock(block) {
  const event = { type: "message", data: "", id: "" };
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event.type = value;
    else if (field === "data") event.data += (event.data ? "\n" : "") + value;
    else if (field === "id") event.id = value;
  }
  return event;
}

// A query string from the defined, non-empty entries of `params`.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}
