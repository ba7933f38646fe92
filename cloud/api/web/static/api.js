// The CareWatch API from the browser: JSON over fetch with the session cookie, the CSRF
// token of the session on every state-changing request, and a trip to the login page when
// the session is gone.

export const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
  }
}

let csrfToken = null;

function detailOf(body) {
  if (body && typeof body === "object" && "detail" in body) {
    const detail = body.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
    }
  }
  return "";
}

/** A same-origin path to go back to after logging in, or null. */
export function safeNext(value) {
  if (typeof value !== "string" || !value.startsWith("/") || value.startsWith("//")) return null;
  if (value.startsWith("/login") || value.includes("\\")) return null;
  return value;
}

export function goToLogin() {
  const here = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(here)}`);
}

export async function request(method, path, { body, query } = {}) {
  const url = new URL(API + path, location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value === undefined || value === null) continue;
    for (const item of Array.isArray(value) ? value : [value]) {
      url.searchParams.append(key, String(item));
    }
  }
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(0, "the server cannot be reached");
  }
  if (response.status === 401 && path !== "/auth/login") {
    goToLogin();
    throw new ApiError(401, "not logged in");
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(response.status, detailOf(data));
  return data;
}

export const get = (path, query) => request("GET", path, { query });
export const post = (path, body) => request("POST", path, { body: body ?? {} });
export const del = (path) => request("DELETE", path);

/** The session: who is logged in, their links, the CSRF token (kept for later requests). */
export async function me() {
  const session = await get("/auth/me");
  csrfToken = session.csrf_token;
  return session;
}

export async function login(username, password) {
  const session = await request("POST", "/auth/login", { body: { username, password } });
  csrfToken = session.csrf_token;
  return session;
}

export async function logout() {
  try {
    await request("POST", "/auth/logout", { body: {} });
  } finally {
    csrfToken = null;
  }
}

export const path = (...parts) => parts.map((p) => "/" + encodeURIComponent(p)).join("");
