// The Helios page: log in, then mirror the user's worker (open files, unsaved edits, terminals).

import "@xterm/xterm/css/xterm.css";
import "./app.css";

import { checkSession, login, logout, type LoginKind } from "./auth";
import { Connection, type LinkStatus, type Rpc } from "./connection";
import { EditorArea } from "./editor";
import { FileTree } from "./tree";
import { TerminalPanel } from "./terminals";
import type { WorkspaceState } from "./protocol";
import { byId } from "./dom";
import { adoptInlineStyles } from "./csp-styles";

function showLogin(kind: LoginKind, message = ""): void {
  byId("workbench").hidden = true;
  byId("login").hidden = false;
  const token = kind === "token";
  byId("user-row").hidden = token;
  byId("password-row").hidden = token;
  byId("token-row").hidden = !token;
  byId("login-hint").textContent = token
    ? "Paste the token printed by helios-gateway, or open the URL it printed."
    : "Log in with your user name and password.";
  byId("login-error").textContent = message;
  const first = byId<HTMLInputElement>(token ? "login-token" : byId<HTMLInputElement>("login-user").value ? "login-password" : "login-user");
  first.focus();
}

function setupLoginForm(onLoggedIn: (user: string) => void): void {
  const form = byId<HTMLFormElement>("login-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const submit = byId<HTMLButtonElement>("login-submit");
    const token = !byId("token-row").hidden;
    submit.disabled = true;
    byId("login-error").textContent = "";
    const result = await login(
      token
        ? { token: byId<HTMLInputElement>("login-token").value.trim() }
        : { user: byId<HTMLInputElement>("login-user").value, password: byId<HTMLInputElement>("login-password").value },
    );
    submit.disabled = false;
    byId<HTMLInputElement>("login-password").value = "";
    byId<HTMLInputElement>("login-token").value = "";
    if (result.ok) onLoggedIn(result.user);
    else showLogin(token ? "token" : "password", result.message);
  });
}

/** Drag handles between the explorer and the editor, and the editor and the panel. */
function setupSashes(): void {
  const sidebar = byId("sidebar");
  const panel = byId("panel");
  const drag = (sash: HTMLElement, move: (e: PointerEvent) => void) => {
    sash.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      sash.setPointerCapture(e.pointerId);
      sash.classList.add("dragging");
      const onMove = (m: PointerEvent) => move(m);
      const onUp = () => {
        sash.classList.remove("dragging");
        sash.removeEventListener("pointermove", onMove);
        sash.removeEventListener("pointerup", onUp);
      };
      sash.addEventListener("pointermove", onMove);
      sash.addEventListener("pointerup", onUp);
    });
  };
  drag(byId("sidebar-sash"), (e) => {
    sidebar.style.width = `${Math.max(120, Math.min(window.innerWidth - 200, e.clientX))}px`;
  });
  drag(byId("panel-sash"), (e) => {
    panel.style.height = `${Math.max(80, Math.min(window.innerHeight - 120, window.innerHeight - e.clientY - 22))}px`;
  });
}

class App {
  private readonly editor: EditorArea;
  private readonly tree: FileTree;
  private readonly terminals: TerminalPanel;
  private readonly connection: Connection;
  private rebuilding = false;
  private lateState: WorkspaceState | null = null;
  private messageTimer: ReturnType<typeof setTimeout> | undefined;
  private workerNote = "";

  constructor(private readonly user: string) {
    this.editor = new EditorArea(byId("editor-tabs"), byId("conflict-banner"), byId("editor-host"), byId("editor-placeholder"), {
      onCursor: ({ path, line, col, language, encoding, indent }) => {
        byId("indent").textContent = indent;
        byId("cursor").textContent = path ? `Ln ${line}, Col ${col}` : "";
        byId("language").textContent = language;
        byId("encoding").textContent = encoding;
      },
      onActiveChange: (path) => {
        this.tree.setActive(path);
        document.title = path ? `${path.slice(path.lastIndexOf("/") + 1)} — Helios` : "Helios";
      },
      notify: (message, kind) => this.notify(message, kind),
      created: (path) => this.tree.changed(path),
    });
    this.tree = new FileTree(byId("tree"), byId("tree-title"), {
      openFile: (path) => void this.editor.open(path),
      renamed: (from, to) => this.editor.renamed(from, to),
      deleted: (path) => this.editor.deleted(path),
      notify: (message, kind) => this.notify(message, kind),
    });
    this.terminals = new TerminalPanel(byId("panel"), byId("terminal-tabs"), byId("terminal-host"), (m) => this.notify(m, "error"));
    this.connection = new Connection({
      onOpen: (rpc) => this.rebuild(rpc),
      onClose: () => {
        this.editor.detach();
        this.tree.detach();
        this.terminals.detach();
      },
      onStatus: (status) => this.showStatus(status),
      onLoggedOut: () => {
        this.editor.detach();
        this.terminals.detach();
        showLogin("token", "Your session has ended; log in again.");
        void checkSession().then((s) => {
          if (!s.loggedIn) showLogin(s.login, "Your session has ended; log in again.");
        });
      },
    });
    this.listen(this.connection.rpc);
    this.setupChrome();
  }

  start(): void {
    byId("login").hidden = true;
    byId("workbench").hidden = false;
    byId("user").textContent = this.user;
    if (sessionStorage.getItem("helios.panel") === "1") byId("panel").hidden = false;
    this.connection.start();
  }

  /** On every (re)connection: the worker's state is the page's state. */
  private async rebuild(rpc: Rpc): Promise<{ workerPid: number }> {
    this.rebuilding = true;
    this.lateState = null;
    try {
      const info = await rpc.call("worker:info", {});
      let state = await rpc.call("workspace:state", {});
      if (!state.root) state = await rpc.call("project:load", { root: info.roots[0] ?? info.home });
      await Promise.all([
        this.tree.attach(rpc, state.root ?? info.home),
        this.editor.attach(rpc, state.openFiles),
        this.terminals.attach(rpc, state.terminals),
      ]);
      this.rebuilding = false;
      if (this.lateState) this.mirror(this.lateState);
      return { workerPid: info.pid };
    } finally {
      this.rebuilding = false;
    }
  }

  private mirror(state: WorkspaceState): void {
    if (this.rebuilding) {
      this.lateState = state;
      return;
    }
    this.editor.mirror(state.openFiles);
    this.terminals.mirror(state.terminals);
  }

  private listen(rpc: Rpc): void {
    rpc.on("state:updated", (state) => this.mirror(state));
    rpc.on("file:edited", ({ path, version, changes }) => this.editor.remoteEdit(path, version, changes));
    rpc.on("file:changed_on_disk", ({ path, oldPath }) => {
      this.tree.changed(path, oldPath);
      this.editor.changedOnDisk(path, oldPath);
    });
    rpc.on("terminal:data_out", ({ terminalId, data }) => this.terminals.dataOut(terminalId, data));
    rpc.on("terminal:exit", ({ terminalId, exitCode, signal }) => this.terminals.exit(terminalId, exitCode, signal));
    rpc.on("fs:watch_error", ({ message }) => this.notify(`File watching is incomplete: ${message}`, "error"));
  }

  private showStatus(status: LinkStatus): void {
    const link = byId("link");
    link.dataset.state = status.kind;
    switch (status.kind) {
      case "connecting":
        link.textContent = "Connecting…";
        break;
      case "connected":
        if (status.workerRestarted) this.workerNote = " · worker restarted";
        link.textContent = `Connected${this.workerNote}`;
        link.dataset.workerRestarted = String(!!this.workerNote);
        if (this.workerNote) {
          setTimeout(() => {
            this.workerNote = "";
            if (link.dataset.state === "connected") link.textContent = "Connected";
            link.dataset.workerRestarted = "false";
          }, 15_000);
        }
        break;
      case "reconnecting": {
        const seconds = Math.max(1, Math.round(status.delayMs / 1000));
        link.textContent = `${status.workerLost ? "Worker lost; r" : "R"}econnecting (attempt ${status.attempt}, in ${seconds} s)…`;
        link.title = "Click to retry now";
        break;
      }
      case "logged-out":
        link.textContent = "Logged out";
        break;
      case "refused":
        link.textContent = `Not connected: ${status.reason}. Close another Helios tab, then click to retry.`;
        link.title = "Click to retry";
        break;
    }
  }

  notify(message: string, kind: "info" | "error" = "info"): void {
    const el = byId("message");
    el.textContent = message;
    el.dataset.kind = kind;
    clearTimeout(this.messageTimer);
    this.messageTimer = setTimeout(() => {
      el.textContent = "";
    }, kind === "error" ? 12_000 : 4_000);
    if (kind === "error") console.warn(message);
  }

  private setupChrome(): void {
    byId("link").addEventListener("click", () => this.connection.retryNow());
    byId("logout").addEventListener("click", async () => {
      this.connection.stop();
      await logout();
      location.reload();
    });
    byId("toggle-panel").addEventListener("click", () => this.togglePanel());
    byId("hide-panel").addEventListener("click", () => this.togglePanel(false));
    byId("new-terminal").addEventListener("click", () => void this.terminals.create());
    byId("split-terminal").addEventListener("click", () => void this.terminals.split());
    byId("new-file").addEventListener("click", () => void this.tree.newEntry(this.tree.targetDir(), false));
    byId("new-folder").addEventListener("click", () => void this.tree.newEntry(this.tree.targetDir(), true));
    // Capture phase: the shortcuts work wherever the focus is, the terminal included.
    window.addEventListener(
      "keydown",
      (e) => {
        const mod = e.ctrlKey || e.metaKey;
        if (mod && !e.altKey && !e.shiftKey && e.key.toLowerCase() === "s") {
          e.preventDefault();
          e.stopPropagation();
          void this.editor.save();
        } else if (e.ctrlKey && e.shiftKey && !e.altKey && e.code === "Digit5") {
          e.preventDefault();
          e.stopPropagation();
          void this.terminals.split();
        } else if (e.altKey && !e.ctrlKey && !e.metaKey && e.code === "KeyN") {
          e.preventDefault();
          e.stopPropagation();
          void this.tree.newEntry(this.tree.targetDir(), e.shiftKey);
        } else if (e.ctrlKey && !e.altKey && (e.code === "Backquote" || e.key === "`")) {
          e.preventDefault();
          e.stopPropagation();
          if (e.shiftKey) void this.terminals.create();
          else this.togglePanel();
        }
      },
      true,
    );
    window.addEventListener("beforeunload", (e) => {
      // The worker keeps unsaved buffers, but typing it has not confirmed yet would be lost.
      if (this.editor.paths.some((p) => this.editor.hasUnconfirmed(p))) e.preventDefault();
    });
    setupSashes();
  }

  private togglePanel(visible = !this.terminals.visible): void {
    this.terminals.setVisible(visible);
    if (!visible) this.editor.view.focus();
  }
}

async function main(): Promise<void> {
  // CodeMirror keeps its base theme in a <style> element in <head>, which the CSP does not apply.
  adoptInlineStyles(document.head);
  let app: App | null = null;
  const startApp = (user: string) => {
    if (app) {
      // Logged in again after the session ended: start afresh, possibly as someone else.
      location.reload();
      return;
    }
    app = new App(user);
    app.start();
  };
  setupLoginForm(startApp);

  // The URL helios-gateway prints carries the token in its fragment, which never leaves the browser.
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (match) {
    history.replaceState(null, "", location.pathname + location.search);
    const result = await login({ token: decodeURIComponent(match[1]) });
    if (result.ok) {
      startApp(result.user);
      return;
    }
    showLogin("token", result.message);
    return;
  }
  try {
    const session = await checkSession();
    if (session.loggedIn) startApp(session.user);
    else showLogin(session.login);
  } catch {
    showLogin("token", "Cannot reach the server.");
  }
}

void main();
