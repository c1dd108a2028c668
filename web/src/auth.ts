// Logging in and out against the gateway. Credentials travel in the Authorization header of
// POST /login (Bearer for the token, Basic for a user name and password), never in a body or URL.

export type LoginKind = "token" | "password";

export type SessionCheck = { loggedIn: true; user: string } | { loggedIn: false; login: LoginKind };

function url(path: string): string {
  return new URL(path, location.href).href;
}

export async function checkSession(): Promise<SessionCheck> {
  const r = await fetch(url("api/session"), { credentials: "same-origin", cache: "no-store" });
  const body = (await r.json().catch(() => ({}))) as { user?: string; login?: string };
  if (r.ok && typeof body.user === "string") return { loggedIn: true, user: body.user };
  return { loggedIn: false, login: body.login === "password" ? "password" : "token" };
}

function basic(user: string, password: string): string {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return `Basic ${btoa(binary)}`;
}

export type LoginResult = { ok: true; user: string } | { ok: false; message: string };

export async function login(credentials: { token: string } | { user: string; password: string }): Promise<LoginResult> {
  const authorization = "token" in credentials ? `Bearer ${credentials.token}` : basic(credentials.user, credentials.password);
  let r: Response;
  try {
    r = await fetch(url("login"), {
      method: "POST",
      credentials: "same-origin",
      cache: "no-store",
      headers: { Authorization: authorization },
    });
  } catch {
    return { ok: false, message: "Cannot reach the server." };
  }
  const body = (await r.json().catch(() => ({}))) as { user?: string; error?: string };
  if (r.ok && typeof body.user === "string") return { ok: true, user: body.user };
  if (r.status === 401) return { ok: false, message: "token" in credentials ? "Wrong token." : "Wrong user name or password." };
  if (r.status === 429) {
    const wait = r.headers.get("Retry-After");
    return { ok: false, message: `Too many failed attempts; try again${wait ? ` in ${wait} s` : " later"}.` };
  }
  return { ok: false, message: body.error ? `Login failed: ${body.error}.` : `Login failed (HTTP ${r.status}).` };
}

export async function logout(): Promise<void> {
  await fetch(url("logout"), { method: "POST", credentials: "same-origin", cache: "no-store" }).catch(() => undefined);
}
