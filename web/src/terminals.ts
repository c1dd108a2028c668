// The terminal panel: one xterm.js view per terminal the worker runs. Terminals belong to the
// worker; the panel attaches to each (scrollback first, then live output) on every connection.
//
// Output is written with xterm.js's write callback counting what is not yet on screen; past a high
// watermark the panel asks the worker to pause that terminal and resumes it once xterm.js has caught
// up, so a command flooding output never freezes the page.

import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import type { Rpc } from "./connection";
import { ErrorCode, type TerminalInfo } from "./protocol";
import { RpcClosedError, RpcError } from "./rpc";
import { adoptInlineStyles } from "./csp-styles";
import { contextMenu, h } from "./dom";
import { messageOf } from "./editor";

/** Characters written to xterm.js but not yet processed: pause above HIGH, resume below LOW. */
export const HIGH_WATER = 256 * 1024;
export const LOW_WATER = 32 * 1024;

class TerminalView {
  readonly term: Terminal;
  readonly fit = new FitAddon();
  readonly element: HTMLElement;
  readonly tab: HTMLElement;
  unwritten = 0;
  paused = false;
  alive = true;
  attached = false;
  fittedOnce = false;
  /** Bumped by every attach: write callbacks for a screen since rebuilt are ignored. */
  private generation = 0;
  private dropStyles: () => void;

  constructor(
    readonly id: string,
    private readonly panel: TerminalPanel,
  ) {
    this.element = h("div", { class: "terminal-view", "data-terminal-id": id });
    this.element.hidden = true;
    this.term = new Terminal({
      cursorBlink: true,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Liberation Mono", monospace',
      fontSize: panel.fontSize,
      scrollback: 10_000,
      allowProposedApi: false,
      theme: terminalTheme(),
    });
    this.term.loadAddon(this.fit);
    this.dropStyles = adoptInlineStyles(this.element);
    this.term.open(this.element);
    this.term.onData((data) => this.input(data));
    this.term.onBinary((data) => this.input(data));
    this.term.onTitleChange((title) => this.panel.setTitle(id, title));
    this.term.attachCustomKeyEventHandler((e) => this.key(e));
    this.element.addEventListener("contextmenu", (e) => {
      e.preventDefault();
      this.menu(e.clientX, e.clientY);
    });
    this.element.addEventListener("mousedown", () => panel.activate(id, false), true);
    const label = h("span", { class: "tab-label", text: "terminal" });
    const close = h("button", { class: "tab-close", title: "Kill terminal", "aria-label": "Kill terminal" });
    this.tab = h("div", { class: "tab", role: "tab", "data-terminal-id": id }, label, close);
    this.tab.addEventListener("click", (e) => {
      if ((e.target as HTMLElement).closest(".tab-close")) void panel.kill(id);
      else panel.activate(id);
    });
  }

  /** Copy and paste as people expect: Ctrl+Shift+C / Ctrl+Shift+V; Ctrl+C copies a selection and
   * interrupts only when nothing is selected. Returning false keeps the key from the shell. */
  private key(e: KeyboardEvent): boolean {
    if (e.type !== "keydown" || !e.ctrlKey || e.altKey || e.metaKey) return true;
    const k = e.key.toLowerCase();
    if (e.shiftKey && k === "c") {
      e.preventDefault();
      this.copy();
      return false;
    }
    if (e.shiftKey && k === "v") {
      e.preventDefault();
      void this.pasteFromClipboard();
      return false;
    }
    if (!e.shiftKey && k === "c" && this.term.hasSelection()) {
      e.preventDefault();
      this.copy();
      this.term.clearSelection();
      return false;
    }
    return true;
  }

  copy(): void {
    const text = this.term.getSelection();
    if (!text) return;
    copyText(text).catch(() => this.panel.notify("The browser refused to copy (it allows that only over HTTPS or on this machine)."));
  }

  async pasteFromClipboard(): Promise<void> {
    try {
      const text = await navigator.clipboard.readText();
      if (text) this.term.paste(text);
    } catch {
      this.panel.notify("The browser refused to read the clipboard: paste with your browser's Paste (Ctrl+V / Cmd+V) instead.");
    }
    this.term.focus();
  }

  private menu(x: number, y: number): void {
    contextMenu(x, y, [
      { label: "Copy", shortcut: "Ctrl+Shift+C", run: () => this.copy() },
      { label: "Paste", shortcut: "Ctrl+Shift+V", run: () => void this.pasteFromClipboard() },
      { label: "Select All", run: () => this.term.selectAll() },
      { label: "Clear", run: () => this.term.clear() },
      { label: "Split Terminal", shortcut: "Ctrl+Shift+5", run: () => void this.panel.split(this.id) },
      { label: "New Terminal", shortcut: "Ctrl+Shift+`", run: () => void this.panel.create() },
      { label: "Kill Terminal", run: () => void this.panel.kill(this.id) },
    ]);
  }

  private input(data: string): void {
    const rpc = this.panel.rpc;
    if (!rpc || !this.alive) return;
    rpc.call("terminal:data_in", { terminalId: this.id, data }).catch((error: unknown) => {
      if (!(error instanceof RpcClosedError)) this.panel.notify(`Terminal input lost: ${messageOf(error)}`);
    });
  }

  /** (Re)attach: the screen is rebuilt from the scrollback, then live output follows. */
  async attach(rpc: Rpc): Promise<TerminalInfo> {
    const generation = ++this.generation;
    this.attached = false;
    const r = await rpc.call("terminal:attach", { terminalId: this.id });
    if (generation !== this.generation) return r;
    this.term.reset();
    this.fittedOnce = false;
    // Replay at the size the output was made for; the panel then fits it to the screen.
    if (r.cols !== this.term.cols || r.rows !== this.term.rows) this.term.resize(r.cols, r.rows);
    this.unwritten = 0;
    this.paused = false;
    this.attached = true;
    this.write(r.scrollback);
    this.alive = r.alive;
    if (!r.alive) this.exited(r.exitCode ?? null, r.signal ?? null);
    return r;
  }

  /** A terminal this page created: attached already, nothing to replay. */
  created(): void {
    this.attached = true;
  }

  write(data: string): void {
    if (!this.attached || !data) return;
    const length = data.length;
    const generation = this.generation;
    this.unwritten += length;
    this.term.write(data, () => {
      if (generation !== this.generation) return;
      this.unwritten -= length;
      if (this.paused && this.unwritten <= LOW_WATER) this.setPaused(false);
    });
    if (!this.paused && this.unwritten > HIGH_WATER) this.setPaused(true);
  }

  private setPaused(paused: boolean): void {
    const rpc = this.panel.rpc;
    this.paused = paused;
    if (!rpc) return;
    rpc.call(paused ? "terminal:pause" : "terminal:resume", { terminalId: this.id }).catch(() => undefined);
  }

  /** Its worker was restarted without it: known to this page only. */
  lost = false;
  /** How it ended, for its tab: "exit 1", "SIGKILL", "worker restarted". */
  ended = "";

  exited(exitCode: number | null, signal: number | string | null, how?: string): void {
    if (this.tab.classList.contains("exited")) return;
    this.alive = false;
    this.tab.classList.add("exited");
    this.ended = how ?? (signal !== null && signal !== undefined ? String(signal) : `exit ${exitCode ?? "?"}`);
    const said = how ?? (signal !== null && signal !== undefined ? `killed by signal ${signal}` : `exited with code ${exitCode ?? "?"}`);
    this.term.write(`\r\n\x1b[2m[${how ? `ended: ${how}` : `process ${said}`}]\x1b[0m\r\n`);
    const again = h("button", { class: "primary", text: "New Terminal", "data-action": "new-terminal" });
    again.addEventListener("click", () => void this.panel.replace(this.id));
    const close = h("button", { text: "Close", "data-action": "close-terminal" });
    close.addEventListener("click", () => void this.panel.kill(this.id));
    this.element.append(
      h("div", { class: "terminal-ended", role: "status" }, h("span", { text: `This terminal ended: ${said}.` }), again, close),
    );
    this.panel.renderTab(this);
  }

  dispose(): void {
    this.generation++;
    this.term.dispose();
    this.dropStyles();
    this.element.remove();
    this.tab.remove();
  }
}

/** xterm.js draws its own colours: take them from the page's theme variables. */
function terminalTheme(): { background: string; foreground: string; cursor: string; selectionBackground: string } {
  const css = getComputedStyle(document.documentElement);
  const v = (name: string, fallback: string) => css.getPropertyValue(name).trim() || fallback;
  return {
    background: v("--cm-bg", "#1e1e1e"),
    foreground: v("--cm-fg", "#d4d4d4"),
    cursor: v("--cm-cursor", "#aeafad"),
    selectionBackground: v("--cm-selection", "#264f78"),
  };
}

export class TerminalPanel {
  rpc: Rpc | null = null;
  fontSize = 13;

  /** Font size and colours from the settings, for every terminal (each refitted to its new cells). */
  applySettings(fontSize: number): void {
    this.fontSize = fontSize;
    const theme = terminalTheme();
    for (const v of this.views.values()) {
      v.term.options.fontSize = fontSize;
      v.term.options.theme = theme;
      v.fittedOnce = false;
    }
    this.scheduleFit();
  }
  private readonly views = new Map<string, TerminalView>();
  private active: TerminalView | null = null;
  private creating = 0;
  private earlyOutput = new Map<string, string[]>();
  private titles = new Map<string, string>();
  private resizeTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly panel: HTMLElement,
    private readonly tabBar: HTMLElement,
    private readonly host: HTMLElement,
    readonly notify: (message: string) => void,
  ) {
    new ResizeObserver(() => this.scheduleFit()).observe(host);
  }

  get visible(): boolean {
    return !this.panel.hidden;
  }

  setVisible(visible: boolean): void {
    this.panel.hidden = !visible;
    sessionStorage.setItem("helios.panel", visible ? "1" : "0");
    if (visible) {
      this.scheduleFit();
      if (!this.views.size && this.rpc) void this.create();
      else this.active?.term.focus();
    }
  }

  toggle(): void {
    this.setVisible(!this.visible);
  }

  /** A new connection: re-attach every terminal the worker has, with its scrollback. */
  async attach(rpc: Rpc, terminals: TerminalInfo[]): Promise<void> {
    this.rpc = rpc;
    // Terminals the worker no longer has (it was restarted, or they were closed meanwhile) stay
    // as ended tabs that say so, rather than vanishing with what they showed.
    const known = new Set(terminals.map((t) => t.terminalId));
    for (const v of this.views.values())
      if (!known.has(v.id) && v.alive) {
        v.attached = false;
        v.lost = true;
        v.exited(null, null, "its worker was restarted");
      }
    this.mirror(terminals, false);
    await Promise.all(
      [...this.views.values()].filter((v) => known.has(v.id)).map(async (v) => {
        try {
          await v.attach(rpc);
        } catch (error) {
          if (error instanceof RpcClosedError) throw error;
          this.remove(v.id);
        }
      }),
    );
    const remembered = sessionStorage.getItem("helios.activeTerminal");
    if (remembered && this.views.has(remembered)) this.activate(remembered, false);
    else if (!this.active && this.views.size) this.activate([...this.views.keys()][0], false);
    this.scheduleFit();
  }

  detach(): void {
    this.rpc = null;
    for (const v of this.views.values()) v.attached = false;
  }

  /** state:updated: terminals made or closed elsewhere appear and disappear here too. */
  mirror(terminals: TerminalInfo[], attachNew = true): void {
    if (this.creating > 0 && attachNew) return; // settled when the creation answers
    const ids = new Set(terminals.map((t) => t.terminalId));
    for (const t of terminals) {
      if (t.title) this.titles.set(t.terminalId, t.title);
      let v = this.views.get(t.terminalId);
      if (!v) {
        v = this.add(t.terminalId);
        if (attachNew && this.rpc) void v.attach(this.rpc).catch(() => undefined);
      }
      if (!t.alive) v.exited(t.exitCode ?? null, t.signal ?? null);
      this.renderTab(v);
    }
    for (const [id, v] of [...this.views]) if (!ids.has(id) && !v.lost) this.remove(id);
  }

  dataOut(terminalId: string, data: string): void {
    const v = this.views.get(terminalId);
    if (v) v.write(data);
    else if (this.creating > 0) {
      const early = this.earlyOutput.get(terminalId) ?? [];
      early.push(data);
      this.earlyOutput.set(terminalId, early);
    }
  }

  exit(terminalId: string, exitCode: number | null, signal: number | string | null): void {
    this.views.get(terminalId)?.exited(exitCode, signal);
  }

  async create(): Promise<string | null> {
    const rpc = this.rpc;
    if (!rpc) return null;
    if (this.panel.hidden) this.setVisible(true);
    const dims = this.proposeDimensions();
    this.creating++;
    try {
      const { terminalId } = await rpc.call("terminal:create", dims);
      const v = this.views.get(terminalId) ?? this.add(terminalId);
      v.created();
      for (const chunk of this.earlyOutput.get(terminalId) ?? []) v.write(chunk);
      this.earlyOutput.delete(terminalId);
      this.activate(terminalId);
      return terminalId;
    } catch (error) {
      this.notify(`Cannot start a terminal: ${messageOf(error)}`);
      return null;
    } finally {
      this.creating--;
      if (!this.creating) this.earlyOutput.clear();
    }
  }

  async kill(id: string): Promise<void> {
    const v = this.views.get(id);
    const rpc = this.rpc;
    if (v?.lost) return this.remove(id);
    if (!v || !rpc) return;
    try {
      await rpc.call("terminal:close", { terminalId: id });
      this.remove(id);
    } catch (error) {
      // A terminal of a worker that was restarted is known here only.
      if (error instanceof RpcError && error.code === ErrorCode.NoTerminal) this.remove(id);
      else this.notify(`Cannot close the terminal: ${messageOf(error)}`);
    }
  }

  /** An ended terminal's "New Terminal": a fresh one takes its place (and its side of a split). */
  async replace(id: string): Promise<void> {
    const partner = this.partners.get(id);
    await this.kill(id);
    const created = await this.create();
    if (created && partner && this.views.has(partner)) this.pair(partner, created);
    if (created) this.activate(created);
  }

  /** Split: a new terminal beside `id`, both shown at once. */
  async split(id: string | undefined = this.active?.id): Promise<void> {
    if (!id) return void this.create();
    const old = this.partners.get(id);
    if (old) this.unpair(id);
    const created = await this.create();
    if (created) {
      this.pair(id, created);
      this.activate(created);
    }
  }

  private readonly partners = new Map<string, string>();

  private pair(a: string, b: string): void {
    this.partners.set(a, b);
    this.partners.set(b, a);
  }

  private unpair(id: string): void {
    const other = this.partners.get(id);
    this.partners.delete(id);
    if (other) this.partners.delete(other);
  }

  activate(id: string, focus = true): void {
    const v = this.views.get(id);
    if (!v) return;
    this.active = v;
    const partner = this.partners.get(id);
    for (const other of this.views.values()) {
      other.element.hidden = other !== v && other.id !== partner;
      other.element.classList.toggle("focused", other === v);
      other.tab.classList.toggle("active", other === v);
      other.tab.classList.toggle("split", other.id === partner);
      other.tab.setAttribute("aria-selected", String(other === v));
    }
    sessionStorage.setItem("helios.activeTerminal", id);
    this.scheduleFit();
    if (this.visible && focus) v.term.focus();
  }

  setTitle(id: string, title: string): void {
    this.titles.set(id, title);
    const v = this.views.get(id);
    if (v) this.renderTab(v);
  }

  renderTab(v: TerminalView): void {
    const n = [...this.views.keys()].indexOf(v.id) + 1;
    const title = this.titles.get(v.id);
    const label = v.tab.querySelector(".tab-label") as HTMLElement;
    label.textContent = `${n}: ${title || "terminal"}${v.alive ? "" : ` (ended: ${v.ended})`}`;
  }

  private add(id: string): TerminalView {
    const v = new TerminalView(id, this);
    this.views.set(id, v);
    this.host.append(v.element);
    this.tabBar.append(v.tab);
    this.renderTab(v);
    if (!this.active) this.activate(id, false);
    return v;
  }

  private remove(id: string): void {
    const v = this.views.get(id);
    if (!v) return;
    this.views.delete(id);
    this.unpair(id);
    v.dispose();
    if (this.active === v) {
      this.active = null;
      const next = [...this.views.keys()].pop();
      if (next) this.activate(next, false);
    }
    for (const other of this.views.values()) this.renderTab(other);
  }

  private proposeDimensions(): { cols: number; rows: number } {
    const d = this.active?.fit.proposeDimensions();
    if (d && d.cols > 1 && d.rows > 1) return { cols: d.cols, rows: d.rows };
    // No terminal on screen yet: estimate from the panel with a 13px monospace cell.
    const rect = this.host.getBoundingClientRect();
    return {
      cols: Math.max(20, Math.min(1000, Math.floor((rect.width - 16) / 7.8) || 80)),
      rows: Math.max(5, Math.min(1000, Math.floor((rect.height - 8) / 17) || 24)),
    };
  }

  private scheduleFit(): void {
    clearTimeout(this.resizeTimer);
    this.resizeTimer = setTimeout(() => this.fitActive(), 50);
  }

  private fitActive(): void {
    if (this.panel.hidden) return;
    for (const v of this.views.values()) {
      if (v.element.hidden) continue;
      const d = v.fit.proposeDimensions();
      if (!d || !(d.cols > 1 && d.rows > 1)) continue;
      if (d.cols === v.term.cols && d.rows === v.term.rows && v.fittedOnce) continue;
      v.fittedOnce = true;
      v.fit.fit();
      if (this.rpc && v.alive)
        this.rpc.call("terminal:resize", { terminalId: v.id, cols: v.term.cols, rows: v.term.rows }).catch(() => undefined);
    }
  }
}

/** The clipboard API where the browser allows it (HTTPS, or this machine), else the older copy
 * command through a hidden text area. */
async function copyText(text: string): Promise<void> {
  if (navigator.clipboard?.writeText) {
    try {
      await navigator.clipboard.writeText(text);
      return;
    } catch {
      // fall through
    }
  }
  const area = h("textarea", { class: "clipboard-helper", "aria-hidden": "true" });
  area.value = text;
  document.body.append(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  if (!ok) throw new Error("copy refused");
}
