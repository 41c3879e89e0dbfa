// The one place that talks HTTP. Every call returns parsed JSON or throws ApiError
// carrying the service's error shape (status, code, message and any extra fields).

export class ApiError extends Error {
  constructor(status, code, message, detail) {
    super(message);
    this.status = status;
    this.code = code;
    this.detail = detail || {};
  }
}

let csrfToken = "";

export function setCsrf(token) {
  if (token) csrfToken = token;
}

function cookieCsrf() {
  const m = document.cookie.match(/(?:^|;\s*)(?:va_csrf|csrf_token|csrftoken)=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

async function parseError(resp) {
  let body = null;
  try {
    body = await resp.json();
  } catch {
    body = null;
  }
  // Accept {"error": {code, message, ...}} and FastAPI's {"detail": ...}.
  const err = body && (body.error || body.detail || body);
  if (err && typeof err === "object" && !Array.isArray(err)) {
    return new ApiError(resp.status, err.code || String(resp.status), err.message || resp.statusText, err);
  }
  const text = typeof err === "string" ? err : Array.isArray(err) ? err.map((e) => e.msg || e).join("; ") : resp.statusText;
  return new ApiError(resp.status, String(resp.status), text || `HTTP ${resp.status}`, { raw: body });
}

export async function request(method, path, { json, body, headers = {}, query } = {}) {
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
    }
    const qs = params.toString();
    if (qs) url += (url.includes("?") ? "&" : "?") + qs;
  }
  const h = { Accept: "application/json", ...headers };
  if (method !== "GET" && method !== "HEAD") {
    const token = csrfToken || cookieCsrf();
    if (token) h["X-CSRF-Token"] = token;
  }
  let payload = body;
  if (json !== undefined) {
    h["Content-Type"] = "application/json";
    payload = JSON.stringify(json);
  }
  let resp;
  try {
    resp = await fetch(url, { method, headers: h, body: payload, credentials: "same-origin" });
  } catch (e) {
    throw new ApiError(0, "network", `The service cannot be reached (${e.message}). Check that it is running.`);
  }
  if (!resp.ok) throw await parseError(resp);
  if (resp.status === 204) return null;
  const type = resp.headers.get("Content-Type") || "";
  return type.includes("json") ? resp.json() : resp.text();
}

const enc = encodeURIComponent;

export const api = {
  login: (name, password) => request("POST", "/api/login", { json: { name, password } }),
  logout: () => request("POST", "/api/logout"),
  me: () => request("GET", "/api/me"),
  health: () => request("GET", "/api/health"),
  labels: () => request("GET", "/api/labels"),
  createLabel: (body) => request("POST", "/api/labels", { json: body }),
  label: (name) => request("GET", `/api/labels/${enc(name)}`),
  changeLabel: (name, body) => request("PATCH", `/api/labels/${enc(name)}`, { json: body }),
  videos: () => request("GET", "/api/videos"),
  search: (query) => request("GET", "/api/search", { query }),
  shot: (id) => request("GET", `/api/shots/${enc(id)}`),
  annotate: (label, shotId, value, { source, expectedVersion } = {}) =>
    request("PUT", `/api/labels/${enc(label)}/annotations/${enc(shotId)}`, {
      json: { value, source: source || "", expected_version: expectedVersion },
    }),
  unannotate: (label, shotId, { expectedVersion } = {}) =>
    request("DELETE", `/api/labels/${enc(label)}/annotations/${enc(shotId)}`, {
      query: { expected_version: expectedVersion },
    }),
  events: (label, query) => request("GET", `/api/labels/${enc(label)}/events`, { query }),
  undoEvent: (label, eventId) => request("POST", `/api/labels/${enc(label)}/events/${eventId}/undo`),
  agreement: (label) => request("GET", `/api/labels/${enc(label)}/agreement`),
  annotations: (label, query) => request("GET", `/api/labels/${enc(label)}/annotations`, { query }),
  disagreements: (label) => request("GET", `/api/labels/${enc(label)}/disagreements`),
  // wait=false: the service answers 202 with a job at once; the page polls it for progress.
  build: (label) => request("POST", `/api/labels/${enc(label)}/build`, { query: { wait: "false" } }),
  job: (id) => request("GET", `/api/jobs/${enc(id)}`),
  feed: (label, feed, version) =>
    request("GET", `/api/labels/${enc(label)}/feeds/${enc(feed)}`, { query: { version } }),
  sample: (label, size) => request("GET", `/api/labels/${enc(label)}/sample`, { query: { size } }),
  versions: (label) => request("GET", `/api/labels/${enc(label)}/versions`),
  publish: (label, n) => request("POST", `/api/labels/${enc(label)}/versions/${n}/publish`),
  importCsv: (label, text) =>
    request("POST", `/api/labels/${enc(label)}/import`, { body: text, headers: { "Content-Type": "text/csv" } }),
  exportUrl: (label, format) => `/api/labels/${enc(label)}/export.${format}`,
  videoUrl: (shot) => `/api/shots/${enc(shot.shot_id)}/video#t=${fmtT(shot.start_s)},${fmtT(shot.end_s)}`,
  thumbUrl: (shotId) => `/api/shots/${enc(shotId)}/thumbnail`,
};

function fmtT(t) {
  return Number(t || 0).toFixed(3);
}
