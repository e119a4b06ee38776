// The page's calls to the vidconv API: the token as a Bearer header (never in a URL), every
// refusal turned into a sentence a person can act on (never raw JSON).

const TOKEN = "vidconv.token";
const USER = "vidconv.user";

// sessionStorage: the token lives as long as this tab, is not shared with other tabs, and is
// never sent by the browser on its own (so no cross-site request can use it).
export const session = {
  get token() { return sessionStorage.getItem(TOKEN); },
  get user() { return sessionStorage.getItem(USER); },
  set(token, user) {
    sessionStorage.setItem(TOKEN, token);
    sessionStorage.setItem(USER, user);
  },
  clear() {
    sessionStorage.removeItem(TOKEN);
    sessionStorage.removeItem(USER);
  },
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function bytes(n) {
  if (n < 1024) return `${n} bytes`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
}

function sentence(text) {
  const t = String(text || "").trim();
  if (!t) return "";
  const first = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

function seconds(retryAfter) {
  const n = Number.parseInt(retryAfter || "", 10);
  return Number.isFinite(n) && n >= 0 ? n : null;
}

// What to tell a person for an answer with this status; ``what`` says what was being done
// ("login", "signup", "upload", ...) where the same status means different things.
export function explain(status, message, retryAfter, what, limit) {
  const said = sentence(message);
  const wait = seconds(retryAfter);
  switch (status) {
    case 0:
      return "The server could not be reached, or it closed the connection. Check your " +
        "connection and try again.";
    case 400:
      return `The request was refused: ${said}`;
    case 401:
      if (what === "login") return "The user name or the password is wrong.";
      return "Your session has ended. Please log in again.";
    case 404:
      return "That conversion no longer exists.";
    case 409:
      if (what === "signup") return "That user name or email is already taken.";
      return said || "That cannot be done now.";
    case 413:
      return "The file is too large for this server" +
        (limit ? `: it takes files up to ${bytes(limit)}.` : ".");
    case 415:
      return `This server does not take that kind of request: ${said}`;
    case 422:
      return `Please check the form: ${said}`;
    case 429:
      return "Too many attempts. " +
        (wait !== null ? `Try again in ${duration(wait)}.` : "Try again in a while.");
    case 503:
      return "The service is unavailable for a moment" +
        (wait !== null ? `; try again in ${duration(wait)}.` : "; try again soon.");
    default:
      return `Something went wrong on the server (error ${status})` +
        (said ? `: ${said}` : ".");
  }
}

async function failure(response, what, limit) {
  let message = "";
  try {
    const body = await response.json();
    if (body && typeof body.message === "string") message = body.message;
  } catch {
    // not JSON (a proxy's page): the status says enough
  }
  return new ApiError(response.status, explain(response.status, message,
    response.headers.get("Retry-After"), what, limit));
}

async function call(method, path, { json, what, auth = true } = {}) {
  const headers = {};
  if (auth && session.token) headers.Authorization = `Bearer ${session.token}`;
  if (json !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: json === undefined ? undefined : JSON.stringify(json),
      credentials: "same-origin", cache: "no-store",
    });
  } catch {
    throw new ApiError(0, explain(0));
  }
  if (!response.ok) throw await failure(response, what);
  return response;
}

export async function formats() {
  return (await call("GET", "/api/formats", { auth: false })).json();
}

export async function signup(username, email, password1, password2) {
  await call("POST", "/api/auth/signup", {
    json: { username, email, password1, password2 }, what: "signup", auth: false,
  });
}

export async function login(username, password) {
  const body = await (await call("POST", "/api/auth/login", {
    json: { username, password }, what: "login", auth: false,
  })).json();
  session.set(body.token, username);
}

export async function tasks() {
  const body = await (await call("GET", "/api/tasks?max=50&order=1")).json();
  return body.tasks;
}

export async function task(id) {
  return (await call("GET", `/api/tasks/${encodeURIComponent(id)}`)).json();
}

export async function remove(id) {
  await call("DELETE", `/api/tasks/${encodeURIComponent(id)}`);
}

function attachmentName(disposition, fallback) {
  const star = /filename\*=UTF-8''([^;]+)/i.exec(disposition || "");
  if (star) return decodeURIComponent(star[1]);
  const plain = /filename="([^"]+)"/i.exec(disposition || "");
  return plain ? plain[1] : fallback;
}

// The converted file, fetched with the Bearer header into memory and handed to the browser
// as a download: no token ever goes into a URL.
export async function download(id, fallbackName) {
  const response = await call("GET", `/api/download?task_id=${encodeURIComponent(id)}`);
  const blob = await response.blob();
  const name = attachmentName(response.headers.get("Content-Disposition"), fallbackName);
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return name;
}

// POST /api/tasks with the file and the form's fields, through XMLHttpRequest for its upload
// progress. Resolves with the task id.
export function upload(file, fields, onProgress, limit) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [key, value] of Object.entries(fields)) form.append(key, String(value));
    form.append("file", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/tasks");
    xhr.setRequestHeader("Authorization", `Bearer ${session.token}`);
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    xhr.addEventListener("load", () => {
      const body = xhr.response;
      if (xhr.status === 201 && body && body.task_id) {
        resolve(body.task_id);
        return;
      }
      const message = body && typeof body.message === "string" ? body.message : "";
      reject(new ApiError(xhr.status, explain(xhr.status, message,
        xhr.getResponseHeader("Retry-After"), "upload", limit)));
    });
    xhr.addEventListener("error", () => {
      reject(new ApiError(0, "The upload was cut off before the server answered. If the " +
        `file is large, the server may have refused it` +
        (limit ? ` (it takes files up to ${bytes(limit)}).` : ".")));
    });
    xhr.send(form);
  });
}

const FINISHED = new Set(["SUCCESS", "FAILURE", "REVOKED"]);

// Follow a task's events. A browser's EventSource cannot send the Bearer header: the API sets a
// short-lived cookie for this one task's events instead (HttpOnly, so no script can read it).
// ``on.progress(data)``, ``on.state(data)``, ``on.error(message)``. Returns a stop function.
export function follow(id, on) {
  let source = null;
  let stopped = false;
  let retries = 0;
  const path = `/api/tasks/${encodeURIComponent(id)}/events`;

  const stop = () => {
    stopped = true;
    if (source) source.close();
  };

  async function open() {
    try {
      await call("POST", `${path}/session`);
    } catch (error) {
      on.error(error.message);
      return;
    }
    if (stopped) return;
    source = new EventSource(path);
    source.addEventListener("progress", (event) => {
      retries = 0;
      on.progress(JSON.parse(event.data));
    });
    source.addEventListener("state", (event) => {
      retries = 0;
      const data = JSON.parse(event.data);
      on.state(data);
      if (FINISHED.has(data.state)) stop();
    });
    source.addEventListener("error", () => {
      // CONNECTING: the browser resumes by itself (Last-Event-ID). CLOSED: refused (the
      // cookie ran out, the server restarted): ask for a new cookie and open again.
      if (stopped || source.readyState !== EventSource.CLOSED) return;
      retries += 1;
      if (retries > 5) {
        on.error("Lost the connection to the server; the list below shows where it is.");
        return;
      }
      setTimeout(open, 1000 * retries);
    });
  }

  open();
  return stop;
}
