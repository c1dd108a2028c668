// The Helios page: log in, then mirror the user's worker (open files, unsaved edits, terminals).

import "@xterm/xterm/css/xterm.css";
import "./app.css";

import { checkSession, login, logout, type LoginKind } from "./auth";
import { Connection, type LinkStatus, type Rpc } from "./connection";
import { EditorArea } from "./editor";
import { FileTree } from "./tree";
import { TerminalPanel } from "./terminals";
import type { WorkspaceState } from "./protocol";
import { byId, dirname } from "./dom";
import { Settings } from "./settings";
import { showPalette, type Command } from "./palette";
import { Ports } from "./ports";
import { Uploads, download } from "./upload";
import { adoptInlineStyles } from "./csp-styles";
import { RecentFiles, SearchPanel, showQuickOpen } from "./search";

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
  private readonly settings: Settings;
  private readonly ports: Ports;
  private readonly uploads: Uploads;
  private readonly search: SearchPanel;
  private readonly recent: RecentFiles;
  private projectRoot: string | null = null;
  private uploadDir: string | null = null;
  private rebuilding = false;
  private lateState: WorkspaceState | null = null;
  private messageTimer: ReturnType<typeof setTimeout> | undefined;
  private workerNote = "";

  constructor(private readonly user: string) {
    this.settings = new Settings((message, kind) => this.notify(message, kind));
    this.ports = new Ports((message, kind) => this.notify(message, kind));
    this.uploads = new Uploads(byId("uploads"), (message, kind) => this.notify(message, kind), (path) => this.tree.changed(path));
    this.editor = new EditorArea(byId("editor-tabs"), byId("conflict-banner"), byId("editor-host"), byId("editor-placeholder"), {
      onCursor: ({ path, line, col, language, encoding, indent }) => {
        byId("indent").textContent = indent;
        byId("cursor").textContent = path ? `Ln ${line}, Col ${col}` : "";
        byId("language").textContent = language;
        byId("encoding").textContent = encoding;
      },
      onActiveChange: (path) => {
        this.tree.setActive(path);
        if (path) this.recent.add(path);
        document.title = path ? `${path.slice(path.lastIndexOf("/") + 1)} — Helios` : "Helios";
      },
      notify: (message, kind) => this.notify(message, kind),
      created: (path) => this.tree.changed(path),
    });
    this.tree = new FileTree(byId("tree"), byId("tree-title"), {
      openFile: (path) => {
        this.showExplorer(false, true);
        void this.editor.open(path);
      },
      deleted: (path) => this.editor.deleted(path),
      notify: (message, kind) => this.notify(message, kind),
      expandedFolders: () => this.settings.values.expandedFolders,
      upload: (dir, files) => this.uploads.add(dir, files),
      chooseUpload: (dir) => this.chooseUpload(dir),
      download: (path) => void this.download(path),
      downloadZip: (path) => void this.uploads.downloadZip(path),
      setExpandedFolders: (paths) => {
        this.settings.values.expandedFolders = paths;
        void this.settings.set({ expandedFolders: paths });
      },
    });
    this.recent = new RecentFiles(`helios.recentFiles.${user}`);
    this.search = new SearchPanel(byId("sidebar"), {
      rpc: () => (this.connection.rpc.connected ? this.connection.rpc : null),
      root: () => this.projectRoot,
      reveal: (path, line, column, length) => {
        this.showExplorer(false, true);
        void this.editor.reveal(path, line, column, length);
      },
      showExplorer: () => this.showSidebarView("explorer"),
    });
    this.terminals = new TerminalPanel(byId("panel"), byId("terminal-tabs"), byId("terminal-host"), (m) => this.notify(m, "error"));
    this.connection = new Connection({
      onOpen: (rpc) => {
        this.uploads.rpc = rpc;
        this.ports.attach(rpc);
        return this.rebuild(rpc);
      },
      onClose: () => {
        this.uploads.rpc = null;
        this.ports.detach();
        this.search.detach();
        this.settings.detach();
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
    this.settings.onChange((s) => {
      this.editor.applySettings(s);
      this.terminals.applySettings(s.fontSize);
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
      // The settings first: the explorer re-expands the folders they name.
      await this.settings.attach(rpc);
      let state = await rpc.call("workspace:state", {});
      if (!state.root) state = await rpc.call("project:load", { root: info.roots[0] ?? info.home });
      this.projectRoot = state.root ?? info.home;
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
    if (state.root) this.projectRoot = state.root;
    this.editor.mirror(state.openFiles);
    this.terminals.mirror(state.terminals);
  }

  private listen(rpc: Rpc): void {
    rpc.on("state:updated", (state) => this.mirror(state));
    rpc.on("settings:changed", ({ settings }) => this.settings.take(settings));
    rpc.on("file:edited", ({ path, version, changes, encoding }) => this.editor.remoteEdit(path, version, changes, encoding));
    rpc.on("file:renamed", ({ path, oldPath }) => this.editor.bufferRenamed(oldPath, path));
    rpc.on("file:changed_on_disk", ({ path, oldPath }) => {
      this.tree.changed(path, oldPath);
      this.editor.changedOnDisk(path, oldPath);
    });
    rpc.on("terminal:data_out", ({ terminalId, data }) => this.terminals.dataOut(terminalId, data));
    rpc.on("terminal:exit", ({ terminalId, exitCode, signal }) => this.terminals.exit(terminalId, exitCode, signal));
    rpc.on("search:results", ({ searchId, matches }) => this.search.take(searchId, matches));
    rpc.on("search:done", (done) => this.search.done(done));
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
      case "unavailable":
        link.textContent = status.message;
        link.dataset.code = String(status.code);
        link.title = "";
        break;
    }
    byId("retry").hidden = status.kind !== "unavailable" && status.kind !== "refused";
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
    byId("retry").addEventListener("click", () => {
      this.showStatus({ kind: "connecting" });
      this.connection.retryNow();
    });
    byId("logout").addEventListener("click", async () => {
      this.connection.stop();
      await logout();
      location.reload();
    });
    byId("toggle-panel").addEventListener("click", () => this.togglePanel());
    byId("hide-panel").addEventListener("click", () => this.togglePanel(false));
    byId("new-terminal").addEventListener("click", () => void this.terminals.create());
    byId("toggle-explorer").addEventListener("click", () => this.showExplorer());
    byId("upload").addEventListener("click", () => this.chooseUpload(this.tree.targetDir()));
    byId<HTMLInputElement>("upload-input").addEventListener("change", () => {
      const input = byId<HTMLInputElement>("upload-input");
      if (input.files?.length && this.uploadDir) this.uploads.add(this.uploadDir, input.files);
      input.value = "";
    });
    // A file dropped on the editor is uploaded beside the open file, never pasted into it.
    const host = byId("editor-host");
    host.addEventListener("dragover", (e) => {
      if (e.dataTransfer && [...e.dataTransfer.types].includes("Files")) {
        e.preventDefault();
        e.stopPropagation();
      }
    }, true);
    host.addEventListener("drop", (e) => {
      if (!e.dataTransfer || ![...e.dataTransfer.types].includes("Files")) return;
      e.preventDefault();
      e.stopPropagation();
      const active = this.editor.activePath;
      const dir = active ? dirname(active) : this.tree.targetDir();
      if (dir && e.dataTransfer.files.length) this.uploads.add(dir, e.dataTransfer.files);
    }, true);
    byId("settings").addEventListener("click", () => this.settings.show());
    byId("open-palette").addEventListener("click", () => showPalette(this.commands()));
    byId("open-ports").addEventListener("click", () => void this.ports.show());
    byId("split-terminal").addEventListener("click", () => void this.terminals.split());
    byId("new-file").addEventListener("click", () => void this.tree.newEntry(this.tree.targetDir(), false));
    byId("new-folder").addEventListener("click", () => void this.tree.newEntry(this.tree.targetDir(), true));
    // Capture phase: the shortcuts work wherever the focus is, the terminal included.
    window.addEventListener(
      "keydown",
      (e) => {
        const mod = e.ctrlKey || e.metaKey;
        // Keys a shell or tmux uses themselves (Ctrl+B, Alt+N, Alt+Z) stay the terminal's.
        const inTerminal = !!(e.target as HTMLElement | null)?.closest?.(".terminal-view");
        if (mod && !e.altKey && !e.shiftKey && e.key.toLowerCase() === "s") {
          e.preventDefault();
          e.stopPropagation();
          void this.editor.save();
        } else if ((mod && e.shiftKey && !e.altKey && e.code === "KeyP") || (e.key === "F1" && !mod && !e.altKey)) {
          e.preventDefault();
          e.stopPropagation();
          showPalette(this.commands());
        } else if (mod && e.shiftKey && !e.altKey && e.code === "KeyF") {
          e.preventDefault();
          e.stopPropagation();
          this.showSidebarView("search");
        } else if (mod && e.shiftKey && !e.altKey && e.code === "KeyE") {
          e.preventDefault();
          e.stopPropagation();
          this.showSidebarView("explorer");
        } else if (mod && !e.shiftKey && !e.altKey && e.code === "KeyP" && !inTerminal) {
          // In a terminal Ctrl+P stays the shell's (previous command).
          e.preventDefault();
          e.stopPropagation();
          this.quickOpen();
        } else if (mod && !e.shiftKey && !e.altKey && e.code === "KeyB" && !inTerminal) {
          e.preventDefault();
          e.stopPropagation();
          this.showExplorer();
        } else if (mod && !e.shiftKey && !e.altKey && e.code === "Comma") {
          e.preventDefault();
          e.stopPropagation();
          this.settings.show();
        } else if (e.altKey && !mod && !e.shiftKey && e.code === "KeyZ" && !inTerminal) {
          e.preventDefault();
          e.stopPropagation();
          void this.settings.set({ wordWrap: !this.settings.values.wordWrap });
        } else if (e.ctrlKey && e.shiftKey && !e.altKey && e.code === "Digit5") {
          e.preventDefault();
          e.stopPropagation();
          void this.terminals.split();
        } else if (e.altKey && !e.ctrlKey && !e.metaKey && e.code === "KeyN" && !inTerminal) {
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

  private chooseUpload(dir: string | null): void {
    if (!dir) return;
    this.uploadDir = dir;
    byId<HTMLInputElement>("upload-input").click();
  }

  private async download(path: string): Promise<void> {
    const rpc = this.connection.rpc;
    try {
      await download(rpc, path);
    } catch (error) {
      this.notify(`Cannot download ${path}: ${error instanceof Error ? error.message : String(error)}`, "error");
    }
  }

  /** Every command of the page, for the palette: the README's table of shortcuts says the same. */
  private commands(): Command[] {
    const selected = () => this.tree.selected() ?? this.editor.activePath;
    const theme = (t: "dark" | "light" | "high-contrast") => () => void this.settings.set({ theme: t });
    return [
      { id: "save", label: "File: Save", shortcut: "Ctrl+S", run: () => void this.editor.save() },
      { id: "new-file", label: "File: New File", shortcut: "Alt+N", run: () => void this.tree.newEntry(this.tree.targetDir(), false) },
      { id: "new-folder", label: "File: New Folder", shortcut: "Alt+Shift+N", run: () => void this.tree.newEntry(this.tree.targetDir(), true) },
      { id: "rename", label: "File: Rename", shortcut: "F2 (explorer)", run: () => { const p = selected(); if (p) void this.tree.rename(p); } },
      { id: "delete", label: "File: Delete", shortcut: "Delete (explorer)", run: () => { const p = selected(); if (p) void this.tree.remove(p); } },
      { id: "upload", label: "File: Upload Files…", run: () => this.chooseUpload(this.tree.targetDir()) },
      { id: "download", label: "File: Download", run: () => { const p = selected(); if (p) void this.download(p); } },
      { id: "close", label: "File: Close Editor", run: () => { const p = this.editor.activePath; if (p) void this.editor.close(p); } },
      { id: "quick-open", label: "Go: Go to File… (Quick Open)", shortcut: "Ctrl+P", run: () => this.quickOpen() },
      { id: "search", label: "Search: Find in Files", shortcut: "Ctrl+Shift+F", run: () => this.showSidebarView("search") },
      { id: "explorer", label: "View: Explorer", shortcut: "Ctrl+Shift+E", run: () => this.showSidebarView("explorer") },
      { id: "find", label: "Edit: Find", shortcut: "Ctrl+F", run: () => this.editor.command("find") },
      { id: "replace", label: "Edit: Replace", shortcut: "Ctrl+H", run: () => this.editor.command("replace") },
      { id: "goto", label: "Go: Go to Line", shortcut: "Ctrl+G", run: () => this.editor.command("goto") },
      { id: "preview", label: "View: Toggle Preview Beside (Markdown, SVG)", shortcut: "Ctrl+Shift+V (editor)", run: () => this.editor.togglePreview() },
      { id: "toggle-terminal", label: "Terminal: Show or Hide", shortcut: "Ctrl+`", run: () => this.togglePanel() },
      { id: "new-terminal", label: "Terminal: New Terminal", shortcut: "Ctrl+Shift+`", run: () => void this.terminals.create() },
      { id: "split-terminal", label: "Terminal: Split Terminal", shortcut: "Ctrl+Shift+5", run: () => void this.terminals.split() },
      { id: "ports", label: "Ports: Show Listening Ports and Previews", run: () => void this.ports.show() },
      { id: "toggle-explorer", label: "View: Show or Hide the Explorer", shortcut: "Ctrl+B", run: () => this.showExplorer() },
      { id: "word-wrap", label: "View: Toggle Word Wrap", shortcut: "Alt+Z", run: () => void this.settings.set({ wordWrap: !this.settings.values.wordWrap }) },
      { id: "theme-dark", label: "Preferences: Dark Theme", run: theme("dark") },
      { id: "theme-light", label: "Preferences: Light Theme", run: theme("light") },
      { id: "theme-high-contrast", label: "Preferences: High Contrast Theme", run: theme("high-contrast") },
      { id: "font-bigger", label: "Preferences: Larger Font", run: () => void this.settings.set({ fontSize: Math.min(32, this.settings.values.fontSize + 1) }) },
      { id: "font-smaller", label: "Preferences: Smaller Font", run: () => void this.settings.set({ fontSize: Math.max(8, this.settings.values.fontSize - 1) }) },
      { id: "settings", label: "Preferences: Settings", shortcut: "Ctrl+,", run: () => this.settings.show() },
      { id: "palette", label: "Show All Commands", shortcut: "Ctrl+Shift+P / F1", run: () => showPalette(this.commands()) },
      { id: "logout", label: "Log Out", run: () => byId("logout").click() },
    ];
  }

  /** The explorer: beside the editor on wide screens, over it on narrow ones (closed after a file
   * is opened there). */
  private showExplorer(show?: boolean, onlyNarrow = false): void {
    const workbench = byId("workbench");
    const narrow = window.matchMedia("(max-width: 700px)").matches;
    if (onlyNarrow && !narrow) return;
    if (narrow) {
      const open = show ?? !workbench.classList.contains("explorer-open");
      workbench.classList.toggle("explorer-open", open);
      if (open) byId("tree").focus();
    } else {
      const hidden = show === undefined ? !workbench.classList.contains("explorer-hidden") : !show;
      workbench.classList.toggle("explorer-hidden", hidden);
    }
  }

  /** The side bar shows the explorer or the search panel (brought into view on narrow screens). */
  private showSidebarView(view: "explorer" | "search"): void {
    this.showExplorer(true);
    if (view === "search") {
      // The selected text of the editor, if it is on one line, is what to look for.
      const selection = this.editor.view.state.selection.main;
      const text = this.editor.activePath ? this.editor.view.state.sliceDoc(selection.from, selection.to) : "";
      this.search.show(text && !text.includes("\n") && text.length <= 200 ? text : undefined);
    } else {
      this.search.hide();
      byId("tree").focus();
    }
  }

  private quickOpen(): void {
    const active = this.editor.activePath;
    showQuickOpen({
      rpc: this.connection.rpc.connected ? this.connection.rpc : null,
      root: this.projectRoot,
      recent: this.recent.list().filter((p) => p !== active),
      open: (path) => {
        this.showExplorer(false, true);
        void this.editor.open(path);
      },
    });
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
