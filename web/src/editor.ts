// The editor area: one tab per buffer the worker has open, CodeMirror for the text, the dirty
// marker, saving, and the choice offered when a file changes on disk under unsaved edits.

import { Annotation, ChangeSet, Compartment, EditorState, Transaction, type Extension } from "@codemirror/state";
import {
  EditorView, crosshairCursor, drawSelection, dropCursor, highlightActiveLine, highlightActiveLineGutter,
  highlightSpecialChars, keymap, lineNumbers, rectangularSelection,
} from "@codemirror/view";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import {
  bracketMatching, defaultHighlightStyle, foldGutter, foldKeymap, indentOnInput, indentUnit, syntaxHighlighting,
} from "@codemirror/language";
import { gotoLine, highlightSelectionMatches, openSearchPanel, searchKeymap } from "@codemirror/search";
import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap } from "@codemirror/autocomplete";
import { MergeView } from "@codemirror/merge";

import { DocSync, LINE_SEPARATOR, textOf } from "./sync";
import { ErrorCode, type Encoding, type OpenFileState, type OpenedFile } from "./protocol";
import { RpcClosedError, RpcError } from "./rpc";
import type { Rpc } from "./connection";
import { ask, basename, h } from "./dom";
import { languageFor } from "./languages";
import { describeIndent, detectIndent } from "./indent";
import { hasSidePreview, imageElement, imageType, renderPreview } from "./preview";
import { editorLook } from "./theme";
import { DEFAULT_SETTINGS, type SettingsValues } from "./settings";

const remoteEdit = Annotation.define<boolean>();

/** Every special character CodeMirror marks, except CR: a CRLF file shows as text, not as dots. */
const SPECIAL_CHARS =
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u00ad\u061c\u200b\u200e\u200f\u2028\u2029\u202d\u202e\u2066\u2067\u2069\ufeff\ufff9-\ufffc]/g;

export interface EditorEvents {
  /** The active file or the cursor moved (status line). */
  onCursor: (info: { path: string | null; line: number; col: number; language: string; encoding: string; indent: string }) => void;
  onActiveChange: (path: string | null) => void;
  notify: (message: string, kind?: "info" | "error") => void;
  /** A file was written where none was (a deleted file saved again): the explorer lists it. */
  created: (path: string) => void;
}

class Tab {
  state: EditorState | null = null; // when not shown; the view holds it while active
  serverDirty = false;
  diskChanged = false;
  encoding: Encoding = "utf-8";
  binarySize = 0;
  loaded = false;
  /** The indent unit detected when the file was opened ("\t" or spaces). */
  indent = "    ";
  /** An image's bytes (base64), for its preview. */
  imageData = "";
  /** The rendered preview beside the source is shown (Markdown, SVG). */
  preview = false;
  /** Deleted from disk through the explorer while open: the buffer is all that is left. */
  deleted = false;
  readonly sync: DocSync;
  readonly element: HTMLElement;

  constructor(
    public path: string,
    private readonly area: EditorArea,
  ) {
    this.sync = new DocSync(path, 0, {
      text: () => this.text(),
      applyRemote: (changes) => this.applyRemote(changes),
      problem: (message) => area.events.notify(`${basename(this.path)}: ${message}`, "error"),
      changed: () => area.renderTab(this),
    });
    const label = h("span", { class: "tab-label", text: basename(path) });
    const close = h("button", { class: "tab-close", title: "Close", "aria-label": `Close ${basename(path)}` });
    this.element = h("div", { class: "tab", role: "tab", title: path, "data-path": path }, label, close);
    this.element.addEventListener("mousedown", (e) => {
      if (e.button === 1) {
        e.preventDefault();
        void area.close(this.path);
      }
    });
    this.element.addEventListener("click", (e) => {
      if ((e.target as HTMLElement).closest(".tab-close")) void area.close(this.path);
      else area.activate(this.path);
    });
  }

  /** The worker moved this buffer to `path` (its file was renamed). */
  retarget(path: string): void {
    this.path = path;
    this.sync.path = path;
    this.element.title = path;
    this.element.dataset.path = path;
    (this.element.querySelector(".tab-label") as HTMLElement).textContent = basename(path);
    this.element.querySelector(".tab-close")!.setAttribute("aria-label", `Close ${basename(path)}`);
  }

  get dirty(): boolean {
    return this.serverDirty || this.sync.unconfirmed;
  }

  text(): string {
    const state = this.area.activeTab === this ? this.area.view.state : this.state;
    return state ? state.doc.sliceString(0, state.doc.length, LINE_SEPARATOR) : "";
  }

  applyRemote(changes: ChangeSet): void {
    const spec = { changes, annotations: [remoteEdit.of(true), Transaction.addToHistory.of(false)] };
    if (this.area.activeTab === this) this.area.view.dispatch(spec);
    else if (this.state) this.state = this.state.update(spec).state;
    this.area.bufferChanged(this.path);
  }

  /** Take the worker's buffer as it is (first open, or a reconnect). */
  load(opened: OpenedFile): void {
    this.encoding = opened.encoding;
    this.serverDirty = opened.dirty;
    this.diskChanged = !!opened.diskChanged;
    if (opened.encoding === "base64") {
      this.binarySize = Math.floor((opened.content.length * 3) / 4);
      this.imageData = imageType(this.path) ? opened.content : "";
      this.sync.version = opened.version;
      const state = this.area.createState(this, "");
      if (this.area.activeTab === this) this.area.view.setState(state);
      else this.state = state;
    } else if (!this.loaded) {
      this.sync.version = opened.version;
      const state = this.area.createState(this, opened.content);
      if (this.area.activeTab === this) this.area.view.setState(state);
      else this.state = state;
    } else {
      // Keep the editor (cursor, history) and bring the text in line, user's typing included.
      this.sync.adopt(opened.version, opened.content);
    }
    this.loaded = true;
    this.area.renderTab(this);
  }
}

export class EditorArea {
  readonly view: EditorView;
  readonly events: EditorEvents;
  activeTab: Tab | null = null;
  private readonly tabs = new Map<string, Tab>();
  private readonly opening = new Map<string, Promise<void>>();
  private readonly closing = new Set<string>();
  private rpc: Rpc | null = null;
  private merge: { view: MergeView; overlay: HTMLElement; path: string } | null = null;
  private readonly viewHost: HTMLElement;
  private readonly host: HTMLElement;
  private readonly prefs = new Compartment();
  private readonly previewPane: HTMLElement;
  private previewTimer: ReturnType<typeof setTimeout> | undefined;
  private settings: SettingsValues = DEFAULT_SETTINGS;

  private prefsExtension(): Extension {
    return [EditorState.tabSize.of(this.settings.tabWidth), this.settings.wordWrap ? EditorView.lineWrapping : []];
  }

  /** Tab width and word wrap from the settings, for every open buffer. */
  applySettings(settings: SettingsValues): void {
    if (settings.tabWidth === this.settings.tabWidth && settings.wordWrap === this.settings.wordWrap) {
      this.settings = settings;
      return;
    }
    this.settings = settings;
    const effects = this.prefs.reconfigure(this.prefsExtension());
    for (const tab of this.tabs.values()) if (tab.state) tab.state = tab.state.update({ effects }).state;
    if (this.activeTab) this.view.dispatch({ effects });
  }

  constructor(
    private readonly tabBar: HTMLElement,
    private readonly banner: HTMLElement,
    host: HTMLElement,
    private readonly placeholder: HTMLElement,
    events: EditorEvents,
  ) {
    this.events = events;
    // CodeMirror's own style keeps its element displayed and positioned: show and hide a wrapper.
    this.viewHost = h("div", { class: "editor-view" });
    this.viewHost.hidden = true;
    host.append(this.viewHost);
    this.host = host;
    this.view = new EditorView({ parent: this.viewHost, state: EditorState.create({ doc: "" }) });
    this.previewPane = h("div", { class: "preview-pane", role: "region", "aria-label": "Preview" });
    this.previewPane.hidden = true;
    host.append(this.previewPane);
  }

  /** Markdown and SVG: show or hide the rendered preview beside the source. */
  togglePreview(show?: boolean): void {
    const tab = this.activeTab;
    if (!tab || !hasSidePreview(tab.path)) {
      if (tab) this.events.notify("Only Markdown and SVG files have a preview beside their source.");
      return;
    }
    tab.preview = show ?? !tab.preview;
    this.showPreview();
  }

  private showPreview(): void {
    const tab = this.activeTab;
    const on = !!tab && tab.preview && tab.encoding !== "base64";
    this.host.classList.toggle("with-preview", on);
    this.previewPane.hidden = !on;
    if (!on || !tab) {
      this.previewPane.replaceChildren();
      return;
    }
    this.previewPane.dataset.path = tab.path;
    this.previewPane.replaceChildren(renderPreview(tab.path, tab.text()));
  }

  private schedulePreview(): void {
    if (!this.activeTab?.preview) return;
    clearTimeout(this.previewTimer);
    this.previewTimer = setTimeout(() => this.showPreview(), 150);
  }

  createState(tab: Tab, content: string): EditorState {
    const language = languageFor(tab.path);
    tab.indent = language?.tabs ? "\t" : detectIndent(content, " ".repeat(this.settings.tabWidth));
    const extensions: Extension[] = [
      indentUnit.of(tab.indent), this.prefs.of(this.prefsExtension()),
      EditorState.lineSeparator.of(LINE_SEPARATOR),
      lineNumbers(), highlightActiveLineGutter(), highlightSpecialChars({ specialChars: SPECIAL_CHARS }),
      history(), foldGutter(), drawSelection(), dropCursor(), EditorState.allowMultipleSelections.of(true),
      indentOnInput(), editorLook, syntaxHighlighting(defaultHighlightStyle, { fallback: true }), bracketMatching(),
      closeBrackets(), autocompletion(), rectangularSelection(), crosshairCursor(), highlightActiveLine(),
      highlightSelectionMatches(),
      keymap.of([
        { key: "Mod-s", run: () => (void this.save(tab.path), true), preventDefault: true },
        { key: "Mod-g", run: gotoLine, preventDefault: true },
        { key: "Mod-h", run: (view) => openReplace(view), preventDefault: true },
        { key: "Mod-Shift-v", run: () => (this.togglePreview(), true), preventDefault: true },
        ...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...historyKeymap, ...foldKeymap,
        ...completionKeymap, indentWithTab,
      ]),
      EditorView.updateListener.of((update) => {
        for (const tr of update.transactions)
          if (tr.docChanged && !tr.annotation(remoteEdit)) tab.sync.local(tr.changes);
        if (update.selectionSet || update.docChanged) this.reportCursor();
        if (update.docChanged && this.activeTab === tab) this.schedulePreview();
      }),
      EditorView.contentAttributes.of({ "aria-label": `Editor: ${basename(tab.path)}` }),
    ];
    if (tab.encoding === "base64") extensions.push(EditorState.readOnly.of(true), EditorView.editable.of(false));
    if (language) extensions.push(language.extension());
    return EditorState.create({ doc: textOf(content), extensions });
  }

  get paths(): string[] {
    return [...this.tabs.keys()];
  }

  get activePath(): string | null {
    return this.activeTab?.path ?? null;
  }

  hasUnconfirmed(path: string): boolean {
    return this.tabs.get(path)?.sync.unconfirmed ?? false;
  }

  isDirty(path: string): boolean {
    return this.tabs.get(path)?.dirty ?? false;
  }

  /** A new connection: every tab reloads from the worker, keeping the user's unconfirmed typing. */
  async attach(rpc: Rpc, openFiles: OpenFileState[]): Promise<void> {
    this.rpc = rpc;
    for (const tab of this.tabs.values()) tab.sync.setRpc(rpc);
    const wanted = new Set(openFiles.map((f) => f.path));
    for (const path of [...this.tabs.keys()])
      if (!wanted.has(path) && !this.tabs.get(path)!.sync.unconfirmed) this.drop(path);
    await Promise.all(
      openFiles.map(async (f) => {
        const tab = this.tabs.get(f.path);
        if (tab) {
          try {
            await tab.sync.resync();
          } catch (error) {
            if (error instanceof RpcClosedError) throw error;
            this.events.notify(`Cannot reopen ${basename(f.path)}: ${messageOf(error)}`, "error");
          }
          tab.serverDirty = f.dirty;
          tab.diskChanged = f.diskChanged;
          if (f.diskChanged) void this.checkGone(tab);
          this.renderTab(tab);
        } else {
          await this.load(f.path, false);
        }
      }),
    );
    // Tabs with unconfirmed typing whose buffer the worker no longer has (it was restarted without
    // its journal, or another page closed it): open them again so the typing is not lost.
    for (const tab of this.tabs.values())
      if (!wanted.has(tab.path)) await tab.sync.resync().catch(() => undefined);
    this.updateBanner();
  }

  detach(): void {
    this.rpc = null;
    for (const tab of this.tabs.values()) tab.sync.setRpc(null);
  }

  /** state:updated: mirror the worker's list of open buffers. */
  mirror(openFiles: OpenFileState[]): void {
    const wanted = new Set<string>();
    for (const f of openFiles) {
      wanted.add(f.path);
      const tab = this.tabs.get(f.path);
      if (!tab) {
        if (!this.opening.has(f.path) && !this.closing.has(f.path)) void this.load(f.path, false);
        continue;
      }
      tab.serverDirty = f.dirty;
      if (f.diskChanged && !tab.diskChanged) void this.checkGone(tab);
      tab.diskChanged = f.diskChanged;
      this.renderTab(tab);
    }
    for (const path of [...this.tabs.keys()]) if (!wanted.has(path) && !this.opening.has(path)) this.drop(path);
    this.updateBanner();
  }

  /** file:edited */
  remoteEdit(path: string, version: number, changes: { from: number; to: number; insert: string }[], encoding?: Encoding): void {
    const tab = this.tabs.get(path);
    if (!tab?.loaded) return;
    tab.sync.remote(version, changes);
    // A text file rewritten outside in another encoding (Latin-1 to Windows-1252, say): the status
    // bar follows. Text turning binary or back goes through a reopen, as before.
    if (encoding && encoding !== "base64" && tab.encoding !== "base64" && encoding !== tab.encoding) {
      tab.encoding = encoding;
      if (this.activeTab === tab) this.reportCursor();
    }
  }

  /** Open a file (from the tree) and show it. */
  async open(path: string): Promise<void> {
    if (!this.tabs.has(path)) await this.load(path, true);
    if (this.tabs.has(path)) this.activate(path);
  }

  /** Open a file and select `length` UTF-16 units at line `line` (1-based), column `column`
   * (0-based), scrolled into the middle of the view: a search result. */
  async reveal(path: string, line: number, column: number, length = 0): Promise<void> {
    await this.open(path);
    if (this.activeTab?.path !== path || this.activeTab.encoding === "base64") return;
    const doc = this.view.state.doc;
    const at = doc.line(Math.max(1, Math.min(doc.lines, line)));
    const from = Math.min(at.to, at.from + Math.max(0, column));
    const to = Math.min(at.to, from + Math.max(0, length));
    this.view.dispatch({ selection: { anchor: from, head: to }, effects: EditorView.scrollIntoView(from, { y: "center" }) });
    this.view.focus();
  }

  private load(path: string, activate: boolean): Promise<void> {
    const running = this.opening.get(path);
    if (running) return running;
    const rpc = this.rpc;
    if (!rpc) return Promise.resolve();
    const job = (async () => {
      try {
        const opened = await rpc.call("file:open", { path });
        let tab = this.tabs.get(opened.path);
        if (!tab) {
          tab = new Tab(opened.path, this);
          tab.sync.setRpc(rpc);
          this.tabs.set(opened.path, tab);
          this.tabBar.append(tab.element);
        }
        tab.load(opened);
        const remembered = sessionStorage.getItem("helios.activeFile");
        // Only the user's own action takes the focus; a tab mirrored from another page does not.
        if (activate) this.activate(opened.path);
        else if (!this.activeTab || remembered === opened.path) this.activate(opened.path, false);
      } catch (error) {
        this.events.notify(`Cannot open ${path}: ${messageOf(error)}`, "error");
      } finally {
        this.opening.delete(path);
      }
    })();
    this.opening.set(path, job);
    return job;
  }

  activate(path: string, focus = true): void {
    const tab = this.tabs.get(path);
    if (!tab || !tab.loaded) return;
    if (this.activeTab !== tab) {
      if (this.activeTab) this.activeTab.state = this.view.state;
      this.activeTab = tab;
      this.view.setState(tab.state ?? this.createState(tab, ""));
      tab.state = null;
      sessionStorage.setItem("helios.activeFile", path);
      for (const t of this.tabs.values()) this.renderTab(t);
      this.events.onActiveChange(path);
    }
    const binary = tab.encoding === "base64";
    this.viewHost.hidden = binary;
    this.placeholder.hidden = !binary;
    const type = imageType(path);
    if (binary && type && tab.imageData) {
      this.placeholder.replaceChildren(
        h("figure", { class: "image-preview" },
          imageElement(type, tab.imageData, basename(path)),
          h("figcaption", { text: `${basename(path)} · ${tab.binarySize} bytes` })),
      );
    } else {
      this.placeholder.textContent = binary
        ? `${basename(path)} is a binary file (${tab.binarySize} bytes) and is not shown.`
        : "";
    }
    this.showPreview();
    this.updateBanner();
    this.reportCursor();
    tab.element.scrollIntoView({ block: "nearest", inline: "nearest" });
    if (!binary && focus) this.view.focus();
  }

  renderTab(tab: Tab): void {
    tab.element.classList.toggle("active", tab === this.activeTab);
    tab.element.setAttribute("aria-selected", String(tab === this.activeTab));
    tab.element.classList.toggle("dirty", tab.dirty);
    tab.element.classList.toggle("disk-changed", tab.diskChanged);
    // Whether the worker has confirmed everything typed here (tests and tools can wait on it).
    tab.element.dataset.synced = String(!tab.sync.unconfirmed);
    const close = tab.element.querySelector(".tab-close") as HTMLElement;
    close.title = tab.dirty ? "Unsaved changes; close" : "Close";
  }

  private drop(path: string): void {
    const tab = this.tabs.get(path);
    if (!tab) return;
    this.tabs.delete(path);
    tab.element.remove();
    if (this.merge?.path === path) this.closeCompare();
    if (this.activeTab === tab) {
      this.activeTab = null;
      const next = [...this.tabs.keys()].pop();
      if (next) this.activate(next, false);
      else {
        this.view.setState(EditorState.create({ doc: "" }));
        this.viewHost.hidden = true;
        this.placeholder.hidden = false;
        this.placeholder.textContent = "Open a file from the explorer.";
        this.showPreview();
        sessionStorage.removeItem("helios.activeFile");
        this.events.onActiveChange(null);
        this.reportCursor();
      }
    }
    this.updateBanner();
  }

  async save(path: string | null = this.activePath, force = false): Promise<boolean> {
    const tab = path ? this.tabs.get(path) : undefined;
    const rpc = this.rpc;
    if (!tab || !path) return false;
    if (!rpc) {
      this.events.notify("Not connected: the file will be saved once the connection is back.", "error");
      return false;
    }
    try {
      await tab.sync.flush();
      await rpc.call("file:save", { path, force });
      this.events.notify(`Saved ${basename(path)}`);
      return true;
    } catch (error) {
      if (error instanceof RpcError && error.code === ErrorCode.Conflict) {
        tab.diskChanged = true;
        this.renderTab(tab);
        this.updateBanner();
        this.events.notify(`${basename(path)} changed on disk: choose which version to keep.`, "error");
      } else {
        this.events.notify(`Cannot save ${basename(path)}: ${messageOf(error)}`, "error");
      }
      return false;
    }
  }

  /** Discard the buffer's edits and take the file from disk. */
  async revert(path: string): Promise<void> {
    const tab = this.tabs.get(path);
    const rpc = this.rpc;
    if (!tab || !rpc) return;
    try {
      await tab.sync.flush().catch(() => undefined);
      tab.sync.discardUnsent();
      const opened = await rpc.call("file:revert", { path });
      if (opened.version >= tab.sync.version) tab.sync.adopt(opened.version, opened.content);
      tab.serverDirty = false;
      tab.diskChanged = false;
      this.renderTab(tab);
      this.updateBanner();
    } catch (error) {
      this.events.notify(`Cannot reload ${basename(path)}: ${messageOf(error)}`, "error");
    }
  }

  async close(path: string): Promise<void> {
    const tab = this.tabs.get(path);
    const rpc = this.rpc;
    if (!tab) return;
    if (!rpc) {
      this.events.notify("Not connected.", "error");
      return;
    }
    let discard = false;
    if (tab.dirty) {
      const choice = await ask(`Save changes to ${basename(path)}?`, "Your changes will be lost if you don't save them.", [
        { label: "Save", value: "save", primary: true },
        { label: "Don't Save", value: "discard" },
        { label: "Cancel", value: "cancel" },
      ]);
      if (choice === null || choice === "cancel") return;
      if (choice === "save" && !(await this.save(path))) return;
      discard = choice === "discard";
      if (discard) tab.sync.discardUnsent();
    }
    this.closing.add(path);
    try {
      await tab.sync.flush().catch(() => undefined);
      await rpc.call("file:close", { path, discard });
      this.drop(path);
    } catch (error) {
      this.events.notify(`Cannot close ${basename(path)}: ${messageOf(error)}`, "error");
    } finally {
      this.closing.delete(path);
    }
  }

  /** The compare view's right side follows the buffer (edits from other pages, a resync). */
  bufferChanged(path: string): void {
    const merge = this.merge;
    const tab = this.tabs.get(path);
    if (merge?.path === path && tab) replaceDoc(merge.view.b, tab.text());
  }

  /** Editor commands for the palette and the menus: on the active file, if there is one. */
  command(kind: "find" | "replace" | "goto"): void {
    if (!this.activeTab || this.activeTab.encoding === "base64") return;
    this.view.focus();
    if (kind === "find") openSearchPanel(this.view);
    else if (kind === "replace") openReplace(this.view);
    else gotoLine(this.view);
  }

  /** Paths of the open tabs at `path` or below it (a renamed or deleted folder). */
  tabsUnder(path: string): string[] {
    return this.paths.filter((p) => p === path || p.startsWith(path + "/"));
  }

  /** file:renamed: the worker moved the buffer at `oldPath` to `path` (a rename through fs, from this
   * page or another). The tab follows in place: its editor, history and unconfirmed typing stay. */
  bufferRenamed(oldPath: string, path: string): void {
    const tab = this.tabs.get(oldPath);
    if (!tab) return;
    if (this.tabs.has(path)) this.drop(path);
    const entries = [...this.tabs.entries()].map(([p, t]): [string, Tab] => (t === tab ? [path, t] : [p, t]));
    this.tabs.clear();
    for (const [p, t] of entries) this.tabs.set(p, t);
    tab.retarget(path);
    tab.deleted = false;
    tab.element.classList.remove("deleted");
    if (this.merge?.path === oldPath) this.closeCompare();
    if (this.activeTab === tab) {
      sessionStorage.setItem("helios.activeFile", path);
      this.events.onActiveChange(path);
      this.reportCursor();
    }
    this.renderTab(tab);
    this.updateBanner();
  }

  /** The worker flags a buffer whose file changed on disk: if the file is gone, say that instead. */
  private async checkGone(tab: Tab): Promise<void> {
    const rpc = this.rpc;
    if (!rpc) return;
    try {
      await rpc.call("fs:stat", { path: tab.path });
    } catch (error) {
      if (error instanceof RpcError && error.code === ErrorCode.NotFound && this.tabs.get(tab.path) === tab) this.deleted(tab.path);
    }
  }

  /** The explorer deleted `path`: open buffers at or below it say so (their text is kept). */
  deleted(path: string): void {
    for (const p of this.tabsUnder(path)) {
      const tab = this.tabs.get(p)!;
      tab.deleted = true;
      tab.element.classList.add("deleted");
    }
    this.updateBanner();
  }

  private undelete(path: string): void {
    const tab = this.tabs.get(path);
    if (!tab) return;
    tab.deleted = false;
    tab.element.classList.remove("deleted");
    this.updateBanner();
    this.events.created(path);
  }

  private async closeDiscarding(path: string): Promise<void> {
    const tab = this.tabs.get(path);
    const rpc = this.rpc;
    if (!tab || !rpc) return;
    tab.sync.discardUnsent();
    this.closing.add(path);
    try {
      await tab.sync.flush().catch(() => undefined);
      await rpc.call("file:close", { path, discard: true });
      this.drop(path);
    } catch (error) {
      this.events.notify(`Cannot close ${basename(path)}: ${messageOf(error)}`, "error");
    } finally {
      this.closing.delete(path);
    }
  }

  /** file:changed_on_disk: an open compare view re-reads the disk side, so it is never stale. */
  changedOnDisk(path: string, oldPath?: string): void {
    if (this.merge && (this.merge.path === path || this.merge.path === oldPath)) void this.refreshCompare();
  }

  private async refreshCompare(): Promise<void> {
    const merge = this.merge;
    const rpc = this.rpc;
    if (!merge || !rpc) return;
    const disk = await this.readDisk(merge.path);
    if (this.merge !== merge) return;
    replaceDoc(merge.view.a, disk);
    const tab = this.tabs.get(merge.path);
    if (tab) replaceDoc(merge.view.b, tab.text());
  }

  private async readDisk(path: string): Promise<string> {
    const rpc = this.rpc;
    if (!rpc) return "(not connected)";
    try {
      // In the buffer's own encoding, so that a Latin-1 or Windows-1252 file compares as text too.
      const encoding = this.tabs.get(path)?.encoding;
      const r = await rpc.call("fs:read_file", { path, encoding: encoding && encoding !== "base64" ? encoding : "utf-8" });
      return r.content;
    } catch (error) {
      return error instanceof RpcError && error.code === ErrorCode.NotFound ? "" : `(cannot read: ${messageOf(error)})`;
    }
  }

  /** The bar above the editor when the active file changed on disk under unsaved edits. */
  private updateBanner(): void {
    const tab = this.activeTab;
    const show = !!tab && (tab.diskChanged || tab.deleted);
    this.banner.hidden = !show;
    if (!show || !tab) {
      this.banner.replaceChildren();
      delete this.banner.dataset.path;
      return;
    }
    const kind = tab.deleted ? "deleted" : "changed";
    if (this.banner.dataset.path === tab.path && this.banner.dataset.kind === kind && this.banner.childElementCount) return;
    this.banner.dataset.path = tab.path;
    this.banner.dataset.kind = kind;
    const path = tab.path;
    const button = (label: string, action: string, run: () => void, primary = false) => {
      const b = h("button", { class: primary ? "primary" : "", text: label, "data-action": action });
      b.addEventListener("click", run);
      return b;
    };
    if (tab.deleted) {
      this.banner.replaceChildren(
        h("span", { class: "banner-text", text: `${basename(path)} was deleted from disk; this tab holds the only copy.` }),
        button("Save Again", "save-again", () => void this.save(path, true).then((ok) => ok && this.undelete(path)), true),
        button("Close", "close-deleted", () => void this.closeDiscarding(path)),
      );
      return;
    }
    this.banner.replaceChildren(
      h("span", {
        class: "banner-text",
        text: `${basename(path)} changed on disk, and you have unsaved changes. Keep Mine overwrites the file on disk with your version.`,
      }),
      button("Reload from Disk", "reload", () => void this.revert(path)),
      keepMine(button("Keep Mine (overwrite disk)", "keep", () => void this.save(path, true), true)),
      button("Compare", "compare", () => void this.compare(path)),
    );
  }

  /** Side by side: the file on disk (left) and the buffer (right, editable). */
  async compare(path: string): Promise<void> {
    const tab = this.tabs.get(path);
    const rpc = this.rpc;
    if (!tab || !rpc) return;
    const disk = await this.readDisk(path);
    this.closeCompare();
    this.activate(path);
    const host = h("div", { class: "merge-host" });
    const actions = h("div", { class: "merge-actions" });
    const overlay = h(
      "div",
      { class: "merge-overlay", role: "dialog", "aria-label": `Compare ${basename(path)}` },
      h("div", { class: "merge-header" },
        h("span", { text: `On disk: ${path}` }), h("span", { text: "Your version (unsaved)" })),
      host,
      actions,
    );
    const readOnly = [EditorState.readOnly.of(true), EditorView.editable.of(false), EditorState.lineSeparator.of(LINE_SEPARATOR)];
    const view = new MergeView({
      parent: host,
      a: { doc: textOf(disk), extensions: [...readOnly, lineNumbers(), editorLook] },
      b: { doc: textOf(tab.text()), extensions: [...readOnly, lineNumbers(), editorLook] },
      highlightChanges: true,
      gutter: true,
    });
    const done = (run?: () => Promise<unknown>) => async () => {
      this.closeCompare();
      if (run) await run();
    };
    const button = (label: string, action: string, run: () => void, primary = false) => {
      const b = h("button", { class: primary ? "primary" : "", text: label, "data-action": action });
      b.addEventListener("click", run);
      return b;
    };
    actions.append(
      button("Reload from Disk", "reload", done(() => this.revert(path))),
      keepMine(button("Keep Mine (overwrite disk)", "keep", done(() => this.save(path, true)), true)),
      button("Close", "close", done()),
    );
    overlay.addEventListener("keydown", (e) => {
      if (e.key === "Escape") void done()();
    });
    this.host.append(overlay);
    this.merge = { view, overlay, path };
    (actions.querySelector("button.primary") as HTMLElement).focus();
  }

  private closeCompare(): void {
    if (!this.merge) return;
    this.merge.view.destroy();
    this.merge.overlay.remove();
    this.merge = null;
  }

  private reportCursor(): void {
    const tab = this.activeTab;
    if (!tab) {
      this.events.onCursor({ path: null, line: 0, col: 0, language: "", encoding: "", indent: "" });
      return;
    }
    const state = this.view.state;
    const head = state.selection.main.head;
    const line = state.doc.lineAt(head);
    this.events.onCursor({
      path: tab.path,
      line: line.number,
      col: head - line.from + 1,
      language: languageFor(tab.path)?.name ?? "Plain Text",
      encoding: ENCODING_LABELS[tab.encoding],
      indent: tab.encoding === "base64" ? "" : describeIndent(tab.indent),
    });
  }
}

/** The status bar's name of an encoding. */
const ENCODING_LABELS: Record<Encoding, string> = {
  "utf-8": "UTF-8",
  "iso-8859-1": "ISO-8859-1",
  "windows-1252": "Windows-1252",
  base64: "Binary",
};

export function messageOf(error: unknown): string {
  if (error instanceof RpcError) {
    const data = error.data as { errno?: string } | undefined;
    return data?.errno ? `${error.message} (${data.errno})` : error.message;
  }
  return error instanceof Error ? error.message : String(error);
}

/** Ctrl+H: the search panel with the replace field focused. */
function openReplace(view: EditorView): boolean {
  openSearchPanel(view);
  const field = view.dom.querySelector<HTMLInputElement>(".cm-search input[name=replace]");
  if (field) {
    field.focus();
    field.select();
  }
  return true;
}

function keepMine(button: HTMLButtonElement): HTMLButtonElement {
  button.title = "Save your version over the file on disk, replacing what is there now";
  return button;
}

function replaceDoc(view: EditorView, text: string): void {
  if (view.state.doc.toString() === text) return;
  view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: textOf(text) } });
}
