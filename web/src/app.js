// The Helios test page: log in, then talk JSON-RPC to the worker over /ws. Enough to prove the whole
// path; the real frontend replaces it.

const $ = (id) => document.getElementById(id);

let socket = null;
let nextId = 1;
let retryDelay = 500;
const pending = new Map();

function show(section) {
  $("login").hidden = section !== "login";
  $("app").hidden = section !== "app";
  $("logout").hidden = section !== "app";
}

function log(direction, text) {
  const line = `${new Date().toLocaleTimeString()} ${direction} ${text}\n`;
  const pre = $("log");
  pre.textContent += line;
  if (pre.textContent.length > 200000) pre.textContent = pre.textContent.slice(-100000);
  pre.scrollTop = pre.scrollHeight;
}

function setLinkState(text, cls) {
  const el = $("link-state");
  el.textContent = text;
  el.className = `state ${cls || ""}`;
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  return { status: response.status, body, headers: response.headers };
}

// UTF-8 text as base64, for an Authorization header.
function base64(text) {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

// Credentials go in the Authorization header of a bodiless POST, never in a URL or a form body.
async function login(fields) {
  const authorization = fields.token !== undefined
    ? `Bearer ${fields.token}`
    : `Basic ${base64(`${fields.user}:${fields.password}`)}`;
  const { status, body, headers } = await api("/login", { method: "POST", headers: { Authorization: authorization } });
  if (status === 200) {
    $("login-error").textContent = "";
    await start();
    return;
  }
  let message = (body && body.error) || `login failed (${status})`;
  if (status === 429 && headers.get("Retry-After")) message += ` (${headers.get("Retry-After")} s)`;
  $("login-error").textContent = message;
}

function call(method, params = {}) {
  return new Promise((resolve, reject) => {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      reject(new Error("not connected"));
      return;
    }
    const id = `p${nextId++}`;
    pending.set(id, { resolve, reject });
    const text = JSON.stringify({ jsonrpc: "2.0", id, method, params });
    log("→", text);
    socket.send(text);
  });
}

function onMessage(text) {
  log("←", text.length > 4000 ? `${text.slice(0, 4000)}… (${text.length} bytes)` : text);
  let message;
  try { message = JSON.parse(text); } catch { return; }
  const messages = Array.isArray(message) ? message : [message];
  for (const m of messages) {
    if (m && m.id !== undefined && pending.has(m.id)) {
      const { resolve, reject } = pending.get(m.id);
      pending.delete(m.id);
      if (m.error) reject(Object.assign(new Error(m.error.message), { code: m.error.code }));
      else resolve(m.result);
    } else if (m && m.method === "gateway:worker_lost") {
      setLinkState("worker lost; reconnecting", "down");
    }
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(`${scheme}//${location.host}/ws`);
  setLinkState("connecting");
  socket.onopen = () => {
    retryDelay = 500;
    setLinkState("connected", "up");
    listFiles();
  };
  socket.onmessage = (event) => onMessage(event.data);
  socket.onclose = (event) => {
    for (const { reject } of pending.values()) reject(new Error("connection closed"));
    pending.clear();
    socket = null;
    log("×", `closed ${event.code} ${event.reason}`);
    if (event.code === 1008) {
      // The session is over (logged out elsewhere, revoked or expired).
      show("login");
      setLinkState("logged out", "down");
      return;
    }
    setLinkState(`disconnected (${event.code}); retrying`, "down");
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 10000);
  };
}

async function listFiles() {
  const tbody = $("files").querySelector("tbody");
  const note = $("files-note");
  tbody.replaceChildren();
  note.textContent = "";
  try {
    const result = await call("fs:list_directory", { path: $("dir").value || "." });
    for (const entry of result.entries || []) {
      const row = tbody.insertRow();
      row.insertCell().textContent = entry.name;
      row.insertCell().textContent = entry.type;
      row.insertCell().textContent = entry.size ?? "";
    }
    if (!(result.entries || []).length) note.textContent = "Empty directory.";
  } catch (error) {
    note.textContent = error.code === -32601
      ? "The worker has no file service yet (fs:list_directory: method not found)."
      : `Cannot list: ${error.message}`;
  }
}

async function showSessions() {
  const { status, body } = await api("/api/sessions");
  const tbody = $("sessions").querySelector("tbody");
  tbody.replaceChildren();
  if (status !== 200) return;
  for (const s of body.sessions) {
    const row = tbody.insertRow();
    row.insertCell().textContent = s.current ? `${s.id} (this one)` : s.id;
    row.insertCell().textContent = new Date(s.created).toLocaleString();
    row.insertCell().textContent = new Date(s.lastUsed).toLocaleString();
    const button = document.createElement("button");
    button.textContent = "Revoke";
    button.addEventListener("click", async () => {
      await api(`/api/sessions/revoke?id=${encodeURIComponent(s.id)}`, { method: "POST" });
      if (s.current) show("login");
      showSessions();
    });
    row.insertCell().append(button);
  }
}

async function start() {
  const { status, body } = await api("/api/session");
  if (status !== 200) {
    const token = body && body.login === "token";
    $("user-row").hidden = token;
    $("password-row").hidden = token;
    $("token-row").hidden = !token;
    show("login");
    return;
  }
  $("who").textContent = body.user;
  show("app");
  if (!socket) connect();
  showSessions();
}

function init() {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    const fields = $("token-row").hidden
      ? { user: data.get("user"), password: data.get("password") }
      : { token: data.get("token") };
    login(fields);
  });
  $("logout").addEventListener("click", async () => {
    await api("/logout", { method: "POST" });
    if (socket) socket.close(1000);
    show("login");
  });
  $("info").addEventListener("click", () => call("worker:info").catch((e) => log("!", e.message)));
  $("list").addEventListener("click", listFiles);
  $("send").addEventListener("click", () => {
    const text = $("request").value.trim();
    if (!socket || socket.readyState !== WebSocket.OPEN) { log("!", "not connected"); return; }
    log("→", text);
    socket.send(text);
  });
  $("clear").addEventListener("click", () => { $("log").textContent = ""; });

  // The URL printed at start carries the token in its fragment, which never leaves the browser.
  const match = location.hash.match(/token=([A-Za-z0-9_-]+)/);
  if (match) {
    history.replaceState(null, "", location.pathname);
    login({ token: match[1] });
  } else {
    start();
  }
}

init();
