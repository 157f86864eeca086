// The admin API client: the same routes a script calls, authenticated by the session cookie, with the
// session's CSRF token in a header on every change.
const csrf = document.querySelector('meta[name="csrf-token"]')?.getAttribute("content") ?? "";

export class ApiError extends Error {
  constructor(status, body) {
    const err = body && typeof body === "object" && body.error ? body.error : {};
    super(err.message || `The gateway answered HTTP ${status}.`);
    this.status = status;
    this.code = err.code || null;
  }
}

/** "?a=1&b=2" from an object, leaving out empty values. */
export function query(params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

export async function api(method, path, { params, body } = {}) {
  const headers = { accept: "application/json" };
  if (method !== "GET") headers["x-csrf-token"] = csrf;
  if (body !== undefined) headers["content-type"] = "application/json";
  const resp = await fetch(path + query(params), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  if (resp.status === 401) {
    // the session expired (or the admin token changed): sign in again, then come back here
    location.assign(`/console/login?next=${encodeURIComponent(location.pathname)}`);
  }
  const data = (resp.headers.get("content-type") || "").includes("json") ? await resp.json() : null;
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

export const get = (path, params) => api("GET", path, { params });
export const post = (path, body) => api("POST", path, { body });
export const patch = (path, body) => api("PATCH", path, { body });
export const del = (path) => api("DELETE", path);
