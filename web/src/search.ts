// Search across files (Ctrl+Shift+F) and quick-open by name (Ctrl+P), both served by the search
// service (search:text, search:files). The search panel takes the explorer's place in the side bar:
// a query with case and regex toggles, include and exclude globs, and the matches as they stream
// in, grouped by file. A new query cancels the running search; so do Escape and the stop button.

import "./search.css";

import type { Rpc } from "./connection";
import { ErrorCode, type SearchMatch, type SearchTextParams } from "./protocol";
import { RpcClosedError, RpcError, RpcTimeoutError } from "./rpc";
import { basename, dirname, h } from "./dom";

/** Matches asked of one search; the service stops there and says the results are truncated. */
export const SEARCH_MAX_RESULTS = 2000;
/** Typing pauses this long before a search starts (Enter starts it at once). */
const SEARCH_DEBOUNCE_MS = 300;
const FILES_DEBOUNCE_MS = 100;
/** The service gives up on a search after 30 s and then says so; silence much longer than that
 * means it is gone. */
const SILENCE_MS = 45_000;
const CALL_TIMEOUT_MS = 20_000;
const RECENT_MAX = 30;
/** Characters of a line kept before the match in a result row. */
const CONTEXT_BEFORE = 24;

const METHOD_NOT_FOUND = -32601;
const INVALID_PARAMS = -32602;

/** What a failed search:* request means to the user. */
export function searchFailure(error: unknown): string {
  if (error instanceof RpcError) {
    const message = error.message.replace(/^search:\w+: /, "");
    const reason = (error.data as { reason?: unknown } | undefined)?.reason;
    if (error.code === ErrorCode.TooLarge) return "Too many searches at once; wait for one to finish.";
    if (error.code === METHOD_NOT_FOUND) return "Search is not available: the search service is not installed on this server.";
    if (error.code === INVALID_PARAMS) {
      const why = typeof reason === "string" ? reason : message;
      return why.charAt(0).toUpperCase() + why.slice(1) + ".";
    }
    if (reason === "service gone") return "The search service stopped; try again.";
    return `Search failed: ${message}${typeof reason === "string" ? ` (${reason})` : ""}.`;
  }
  if (error instanceof RpcTimeoutError) return "The search service did not answer; try again later.";
  if (error instanceof RpcClosedError) return "Not connected to the server.";
  return `Search failed: ${error instanceof Error ? error.message : String(error)}.`;
}

function globs(text: string): string[] {
  return text.split(",").map((g) => g.trim()).filter(Boolean);
}

export interface SearchEvents {
  rpc: () => Rpc | null;
  /** The loaded project's root: result paths are relative to it. */
  root: () => string | null;
  /** Open `path` (absolute) with the match selected. */
  reveal: (path: string, line: number, column: number, length: number) => void;
  /** The side bar shows the explorer again. */
  showExplorer: () => void;
}

type SearchState = "idle" | "running" | "done" | "cancelled" | "error";

interface FileGroup {
  element: HTMLElement; // the <li>
  header: HTMLElement;
  count: HTMLElement;
  list: HTMLElement;
  matches: number;
}

export class SearchPanel {
  readonly element: HTMLElement;
  private readonly query: HTMLInputElement;
  private readonly include: HTMLInputElement;
  private readonly exclude: HTMLInputElement;
  private readonly caseToggle: HTMLButtonElement;
  private readonly regexToggle: HTMLButtonElement;
  private readonly stopButton: HTMLButtonElement;
  private readonly summary: HTMLElement;
  private readonly notice: HTMLElement;
  private readonly results: HTMLElement;
  private readonly groups = new Map<string, FileGroup>();
  private state: SearchState = "idle";
  /** Bumped by every new search: answers for an older one are dropped. */
  private generation = 0;
  private searchId: string | null = null;
  private searchRoot = "";
  private matchCount = 0;
  private debounce: ReturnType<typeof setTimeout> | undefined;
  private silence: ReturnType<typeof setTimeout> | undefined;
  private lastParams = "";

  constructor(
    private readonly sidebar: HTMLElement,
    private readonly events: SearchEvents,
  ) {
    const toggle = (label: string, title: string, cls: string) =>
      h("button", { class: `search-toggle ${cls}`, type: "button", title, "aria-label": title, "aria-pressed": "false", text: label });
    this.query = h("input", { class: "search-input search-query", placeholder: "Search", "aria-label": "Search text in files", spellcheck: "false", autocomplete: "off" });
    this.caseToggle = toggle("Aa", "Match Case (Alt+C)", "search-case");
    this.regexToggle = toggle(".*", "Use Regular Expression (Alt+R)", "search-regex");
    this.include = h("input", { class: "search-input search-include", placeholder: "files to include (e.g. src/**, *.py)", "aria-label": "Files to include", spellcheck: "false", autocomplete: "off" });
    this.exclude = h("input", { class: "search-input search-exclude", placeholder: "files to exclude (e.g. build/**)", "aria-label": "Files to exclude", spellcheck: "false", autocomplete: "off" });
    this.stopButton = h("button", { class: "search-stop", type: "button", title: "Stop Searching (Escape)", "aria-label": "Stop searching", text: "■" });
    this.stopButton.hidden = true;
    const back = h("button", { class: "search-back", type: "button", title: "Explorer (Ctrl+Shift+E)", "aria-label": "Show the explorer", text: "☰" });
    this.summary = h("div", { class: "search-summary", role: "status", "aria-live": "polite", "data-state": "idle" });
    this.notice = h("div", { class: "search-notice", hidden: true });
    this.results = h("ul", { class: "search-results", role: "tree", "aria-label": "Search results", tabindex: "0" });
    this.element = h("div", { class: "search-view", role: "search", hidden: true },
      h("div", { class: "sidebar-header" }, h("span", { text: "Search" }), h("span", { class: "sidebar-actions" }, this.stopButton, back)),
      h("div", { class: "search-form" },
        h("div", { class: "search-row" }, this.query, this.caseToggle, this.regexToggle),
        this.include, this.exclude),
      this.summary, this.notice, this.results);
    sidebar.append(this.element);
    // The explorer's header gets the way here.
    const open = h("button", { class: "search-open", type: "button", title: "Search (Ctrl+Shift+F)", "aria-label": "Search in files", text: "⌕" });
    open.addEventListener("click", () => this.show());
    sidebar.querySelector(".sidebar-actions")?.append(open);

    const schedule = () => {
      clearTimeout(this.debounce);
      this.debounce = setTimeout(() => this.start(), SEARCH_DEBOUNCE_MS);
    };
    for (const input of [this.query, this.include, this.exclude]) {
      input.addEventListener("input", schedule);
      input.addEventListener("keydown", (e) => {
        if (e.key === "Enter") {
          e.preventDefault();
          this.start(true);
        } else if (e.key === "ArrowDown" && input === this.query) {
          e.preventDefault();
          this.focusRow(this.rows()[0]);
        }
      });
    }
    for (const t of [this.caseToggle, this.regexToggle]) {
      t.addEventListener("click", () => {
        t.setAttribute("aria-pressed", String(t.getAttribute("aria-pressed") !== "true"));
        this.start();
      });
    }
    this.stopButton.addEventListener("click", () => this.stop());
    back.addEventListener("click", () => events.showExplorer());
    this.element.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.state === "running") {
        e.preventDefault();
        e.stopPropagation();
        this.stop();
      } else if (e.altKey && !e.ctrlKey && !e.metaKey && (e.code === "KeyC" || e.code === "KeyR")) {
        e.preventDefault();
        (e.code === "KeyC" ? this.caseToggle : this.regexToggle).click();
      }
    });
    this.results.addEventListener("keydown", (e) => this.onKey(e));
    this.results.addEventListener("focus", () => this.focusRow(this.results.querySelector<HTMLElement>(".search-row-item.current") ?? this.rows()[0]));
    this.results.addEventListener("click", (e) => {
      const row = (e.target as HTMLElement).closest<HTMLElement>(".search-row-item");
      if (row) this.activateRow(row);
    });
  }

  get visible(): boolean {
    return !this.element.hidden;
  }

  /** Show the panel (instead of the explorer) with the query selected; `text` replaces the query. */
  show(text?: string): void {
    this.sidebar.classList.add("searching");
    this.element.hidden = false;
    if (text && text !== this.query.value) {
      this.query.value = text;
      this.start(true);
    }
    this.query.focus();
    this.query.select();
  }

  hide(): void {
    this.sidebar.classList.remove("searching");
    this.element.hidden = true;
  }

  /** The connection is gone: a running search will not finish. */
  detach(): void {
    if (this.state === "running") this.fail("The connection was lost; the results are incomplete.");
  }

  /** search:results for this page. */
  take(searchId: string, matches: SearchMatch[]): void {
    if (searchId !== this.searchId || this.state !== "running" || !Array.isArray(matches)) return;
    this.armSilence();
    // Never more rows than asked for, whatever the service sends.
    for (const m of matches.slice(0, SEARCH_MAX_RESULTS - this.matchCount)) this.add(m);
    this.showSummary();
  }

  /** search:done for this page. */
  done(params: { searchId: string; files: number; matches: number; truncated: boolean; timedOut?: boolean; cancelled?: boolean }): void {
    if (params.searchId !== this.searchId || this.state !== "running") return;
    clearTimeout(this.silence);
    this.searchId = null;
    this.setState(params.cancelled ? "cancelled" : "done");
    if (params.timedOut) this.showNotice("The search took too long and was stopped: the results are incomplete.");
    else if (params.truncated) this.showNotice(`Only the first ${this.matchCount} results are shown; narrow the search to see the others.`);
    this.showSummary();
  }

  /** Stop the running search (Escape, the stop button); what was found stays. */
  stop(): void {
    clearTimeout(this.debounce);
    if (this.state !== "running") return;
    this.generation++;
    this.cancelRemote();
    this.setState("cancelled");
    this.showSummary();
  }

  /** Start a search with what the form says, cancelling the one running. Unless `force`, the same
   * search again is not repeated. */
  private start(force = false): void {
    clearTimeout(this.debounce);
    const params: SearchTextParams = {
      query: this.query.value,
      caseSensitive: this.caseToggle.getAttribute("aria-pressed") === "true",
      regex: this.regexToggle.getAttribute("aria-pressed") === "true",
      include: globs(this.include.value),
      exclude: globs(this.exclude.value),
      maxResults: SEARCH_MAX_RESULTS,
    };
    const key = JSON.stringify(params);
    if (!force && key === this.lastParams && this.state !== "error") return;
    this.lastParams = key;
    const generation = ++this.generation;
    if (this.state === "running") this.cancelRemote();
    clearTimeout(this.silence);
    this.searchId = null;
    this.clearResults();
    if (!params.query) {
      this.setState("idle");
      this.summary.textContent = "";
      return;
    }
    const rpc = this.events.rpc();
    const root = this.events.root();
    if (!rpc?.connected || !root) {
      this.fail("Not connected to the server.");
      return;
    }
    this.searchRoot = root;
    this.setState("running");
    this.showSummary();
    rpc.call("search:text", params, { timeoutMs: CALL_TIMEOUT_MS }).then(
      ({ searchId }) => {
        if (generation !== this.generation) {
          // Superseded while it was being started.
          rpc.call("search:cancel", { searchId }).catch(() => undefined);
          return;
        }
        this.searchId = searchId;
        this.armSilence();
      },
      (error: unknown) => {
        if (generation === this.generation) this.fail(searchFailure(error));
      },
    );
  }

  private cancelRemote(): void {
    const id = this.searchId;
    this.searchId = null;
    clearTimeout(this.silence);
    const rpc = this.events.rpc();
    // A search that already ended is not found: nothing to say.
    if (id && rpc?.connected) rpc.call("search:cancel", { searchId: id }).catch(() => undefined);
  }

  private armSilence(): void {
    clearTimeout(this.silence);
    this.silence = setTimeout(() => {
      this.generation++;
      this.searchId = null;
      this.fail("The search service stopped answering; the results are incomplete.");
    }, SILENCE_MS);
  }

  private fail(message: string): void {
    clearTimeout(this.silence);
    this.setState("error");
    this.summary.textContent = message;
  }

  private setState(state: SearchState): void {
    this.state = state;
    this.summary.dataset.state = state;
    this.stopButton.hidden = state !== "running";
    this.element.classList.toggle("running", state === "running");
  }

  private showSummary(): void {
    const files = this.groups.size;
    const counted = this.matchCount === 0
      ? "No results"
      : `${this.matchCount} result${this.matchCount === 1 ? "" : "s"} in ${files} file${files === 1 ? "" : "s"}`;
    this.summary.dataset.matches = String(this.matchCount);
    this.summary.dataset.files = String(files);
    if (this.state === "running") this.summary.textContent = this.matchCount ? `${counted} — searching…` : "Searching…";
    else if (this.state === "cancelled") this.summary.textContent = `${counted} — stopped`;
    else this.summary.textContent = counted;
  }

  private showNotice(text: string): void {
    this.notice.textContent = text;
    this.notice.hidden = false;
  }

  private clearResults(): void {
    this.groups.clear();
    this.matchCount = 0;
    this.results.replaceChildren();
    this.notice.hidden = true;
    this.notice.textContent = "";
  }

  private add(m: SearchMatch): void {
    if (typeof m?.path !== "string" || typeof m.line !== "number" || typeof m.text !== "string") return;
    let group = this.groups.get(m.path);
    if (!group) {
      const count = h("span", { class: "search-count" });
      const dir = dirname(m.path);
      const header = h("div", { class: "search-row-item search-file", role: "treeitem", tabindex: "-1", "aria-expanded": "true", "data-path": m.path, title: m.path },
        h("span", { class: "twisty" }), h("span", { class: "search-file-name", text: basename(m.path) }),
        h("span", { class: "search-file-dir", text: dir === "/" || !m.path.includes("/") ? "" : dir }), count);
      const list = h("ul", { role: "group" });
      const element = h("li", { class: "search-group" }, header, list);
      group = { element, header, count, list, matches: 0 };
      this.groups.set(m.path, group);
      this.results.append(element);
    }
    const column = typeof m.column === "number" ? m.column : 0;
    const length = typeof m.length === "number" ? m.length : 0;
    const start = Math.max(0, Math.min(m.text.length, column - (m.textColumn ?? 0)));
    let before = m.text.slice(0, start).trimStart();
    if (before.length > CONTEXT_BEFORE) before = "…" + before.slice(-CONTEXT_BEFORE);
    const row = h("li", { class: "search-row-item search-match", role: "treeitem", tabindex: "-1", "data-path": m.path, "data-line": m.line, "data-column": column, "data-length": length, title: `${m.path}:${m.line}:${column + 1}` },
      h("span", { class: "search-line", text: String(m.line) }),
      h("span", { class: "search-text" }, before, h("mark", { text: m.text.slice(start, start + length) }), m.text.slice(start + length)));
    group.list.append(row);
    group.matches++;
    group.count.textContent = String(group.matches);
    this.matchCount++;
  }

  /** The rows a user can reach: file headers and the matches of expanded files. */
  private rows(): HTMLElement[] {
    return [...this.results.querySelectorAll<HTMLElement>(".search-row-item")].filter(
      (r) => r.classList.contains("search-file") || r.closest(".search-group")?.querySelector(".search-file")?.getAttribute("aria-expanded") === "true",
    );
  }

  private focusRow(row: HTMLElement | undefined): void {
    if (!row) return;
    this.results.querySelector(".search-row-item.current")?.classList.remove("current");
    row.classList.add("current");
    row.focus();
  }

  private activateRow(row: HTMLElement): void {
    this.focusRow(row);
    if (row.classList.contains("search-file")) {
      row.setAttribute("aria-expanded", String(row.getAttribute("aria-expanded") !== "true"));
      return;
    }
    const path = row.dataset.path!;
    const abs = this.searchRoot === "/" ? `/${path}` : `${this.searchRoot}/${path}`;
    this.events.reveal(abs, Number(row.dataset.line), Number(row.dataset.column), Number(row.dataset.length));
  }

  private onKey(e: KeyboardEvent): void {
    const rows = this.rows();
    const current = document.activeElement as HTMLElement | null;
    const i = current ? rows.indexOf(current) : -1;
    if (e.key === "ArrowDown") this.focusRow(rows[Math.min(rows.length - 1, i + 1)]);
    else if (e.key === "ArrowUp") {
      if (i <= 0) this.query.focus();
      else this.focusRow(rows[i - 1]);
    } else if (e.key === "Home") this.focusRow(rows[0]);
    else if (e.key === "End") this.focusRow(rows[rows.length - 1]);
    else if ((e.key === "ArrowLeft" || e.key === "ArrowRight") && current?.classList.contains("search-file")) {
      current.setAttribute("aria-expanded", String(e.key === "ArrowRight"));
    } else if (e.key === "ArrowLeft" && current?.classList.contains("search-match")) {
      this.focusRow(current.closest(".search-group")?.querySelector<HTMLElement>(".search-file") ?? undefined);
    } else if ((e.key === "Enter" || e.key === " ") && current?.classList.contains("search-row-item")) this.activateRow(current);
    else return;
    e.preventDefault();
  }
}

/** Recently opened files, most recent first, kept in the browser per user. */
export class RecentFiles {
  constructor(private readonly key: string) {}

  list(): string[] {
    try {
      const v = JSON.parse(localStorage.getItem(this.key) ?? "[]") as unknown;
      return Array.isArray(v) ? v.filter((p): p is string => typeof p === "string").slice(0, RECENT_MAX) : [];
    } catch {
      return [];
    }
  }

  add(path: string): void {
    const list = [path, ...this.list().filter((p) => p !== path)].slice(0, RECENT_MAX);
    try {
      localStorage.setItem(this.key, JSON.stringify(list));
    } catch {
      // storage full or refused: quick-open just has no history
    }
  }
}

export interface QuickOpenOptions {
  rpc: Rpc | null;
  root: string | null;
  recent: string[];
  open: (path: string) => void;
}

/** Quick-open (Ctrl+P): file names matching what is typed, fuzzily, best first; the recently opened
 * files while nothing is typed. */
export function showQuickOpen({ rpc, root, recent, open }: QuickOpenOptions): void {
  document.querySelector(".palette-overlay")?.remove();
  const previous = document.activeElement as HTMLElement | null;
  const input = h("input", { class: "palette-input", "aria-label": "Search files by name", placeholder: "Search files by name", spellcheck: "false", autocomplete: "off" });
  const list = h("ul", { class: "palette-list", role: "listbox", id: "quick-open-list" });
  input.setAttribute("aria-controls", "quick-open-list");
  const note = h("div", { class: "quick-open-note", role: "status", "aria-live": "polite" });
  const dialog = h("div", { class: "dialog palette quick-open", role: "dialog", "aria-modal": "true", "aria-label": "Quick open" }, input, note, list);
  const overlay = h("div", { class: "overlay palette-overlay" }, dialog);
  const prefix = root ? (root.endsWith("/") ? root : root + "/") : null;
  const relative = (abs: string) => (prefix && abs.startsWith(prefix) ? abs.slice(prefix.length) : abs);
  const absolute = (rel: string) => (prefix ? prefix + rel : rel);
  let shown: string[] = []; // absolute paths
  let selected = 0;
  let sequence = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const finish = (path?: string) => {
    clearTimeout(timer);
    sequence++;
    overlay.remove();
    if (path) open(path);
    else previous?.focus();
  };
  const render = () => {
    selected = Math.min(selected, Math.max(0, shown.length - 1));
    list.replaceChildren(
      ...shown.map((path, i) => {
        const rel = relative(path);
        const dir = rel.includes("/") ? dirname(rel) : "";
        const item = h("li", { class: "palette-item quick-open-item", role: "option", "aria-selected": String(i === selected), "data-path": path, title: rel },
          h("span", { class: "quick-open-name", text: basename(rel) }), h("span", { class: "palette-key", text: dir }));
        item.addEventListener("mousedown", (e) => {
          e.preventDefault();
          finish(path);
        });
        return item;
      }),
    );
    list.querySelector('[aria-selected="true"]')?.scrollIntoView({ block: "nearest" });
  };
  const show = (paths: string[], message: string) => {
    shown = paths;
    selected = 0;
    note.textContent = message;
    note.hidden = !message;
    render();
  };
  const lookUp = () => {
    const query = input.value.trim();
    const mine = ++sequence;
    if (!query) {
      show(recent, recent.length ? "Recently opened" : "Type a file name.");
      return;
    }
    if (!rpc?.connected || !prefix) {
      show([], "Not connected to the server.");
      return;
    }
    note.dataset.state = "running";
    rpc.call("search:files", { query, maxResults: 50 }, { timeoutMs: CALL_TIMEOUT_MS }).then(
      ({ files }) => {
        if (mine !== sequence) return;
        delete note.dataset.state;
        const paths = Array.isArray(files) ? files.filter((f): f is string => typeof f === "string").map(absolute) : [];
        show(paths, paths.length ? "" : "No matching files.");
      },
      (error: unknown) => {
        if (mine !== sequence) return;
        note.dataset.state = "error";
        show([], searchFailure(error));
      },
    );
  };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      lookUp();
    }, FILES_DEBOUNCE_MS);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown") selected = Math.min(shown.length - 1, selected + 1);
    else if (e.key === "ArrowUp") selected = Math.max(0, selected - 1);
    else if (e.key === "Enter") {
      e.preventDefault();
      // Typed faster than the debounce: look up what is typed now, then open the best.
      if (timer !== undefined && input.value.trim()) {
        clearTimeout(timer);
        timer = undefined;
        const query = input.value.trim();
        if (!rpc?.connected) return;
        const mine = ++sequence;
        rpc.call("search:files", { query, maxResults: 1 }, { timeoutMs: CALL_TIMEOUT_MS }).then(
          ({ files }) => {
            if (mine === sequence && files?.[0]) finish(absolute(files[0]));
          },
          (error: unknown) => {
            if (mine === sequence) show([], searchFailure(error));
          },
        );
        return;
      }
      if (shown[selected]) finish(shown[selected]);
      return;
    } else if (e.key === "Escape") {
      e.stopPropagation();
      return finish();
    } else return;
    e.preventDefault();
    render();
  });
  overlay.addEventListener("mousedown", (e) => {
    if (e.target === overlay) finish();
  });
  document.body.append(overlay);
  lookUp();
  input.focus();
}
