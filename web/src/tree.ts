// The explorer: a lazy tree of the project, each directory listed (fs:list_directory) when first
// expanded and listed again when something in it changes on disk. New file, new folder, rename,
// move (drag) and delete, by context menu and keyboard.

import type { Rpc } from "./connection";
import { ErrorCode, type DirEntry } from "./protocol";
import { RpcError } from "./rpc";
import { ask, askText, basename, contextMenu, dirname, h, type MenuItem } from "./dom";
import { messageOf } from "./editor";

export interface TreeEvents {
  openFile: (path: string) => void;
  /** `from` (a file or a folder) is now `to`: open buffers follow. */
  /** `path` (a file or a folder) was deleted: open buffers say so. */
  deleted: (path: string) => void;
  notify: (message: string, kind?: "info" | "error") => void;
  /** The expanded folders the worker keeps (settings), and a change of them. */
  expandedFolders: () => string[];
  setExpandedFolders: (paths: string[]) => void;
  /** Files from the user's computer dropped on a folder, or chosen for it. */
  upload: (dir: string, files: FileList) => void;
  chooseUpload: (dir: string) => void;
  download: (path: string) => void;
  downloadZip: (path: string) => void;
}

const hasFiles = (e: DragEvent) => !!e.dataTransfer && [...e.dataTransfer.types].includes("Files");

/** A name a user typed for a new entry: one path component, not "." or "..". */
function validName(name: string): string | null {
  if (!name || name === "." || name === "..") return "Give a name.";
  if (name.includes("/")) return "A name cannot contain '/'.";
  if (name.includes("\0")) return "A name cannot contain NUL.";
  return null;
}

interface DirNode {
  path: string;
  element: HTMLElement; // the <li>
  children: HTMLElement; // the nested <ul>
  expanded: boolean;
  loaded: boolean;
  loading: Promise<void> | null;
}


export class FileTree {
  private rpc: Rpc | null = null;
  private root: string | null = null;
  private readonly dirs = new Map<string, DirNode>();
  private activePath: string | null = null;

  constructor(
    private readonly container: HTMLElement,
    private readonly title: HTMLElement,
    private readonly events: TreeEvents,
  ) {
    container.setAttribute("role", "tree");
    container.addEventListener("keydown", (e) => this.onKey(e));
    container.addEventListener("focusin", (e) => {
      const path = (e.target as HTMLElement).dataset?.path;
      if (path) this.lastFocused = path;
    });
    container.addEventListener("contextmenu", (e) => {
      e.preventDefault();
      const row = (e.target as HTMLElement).closest<HTMLElement>(".tree-row");
      row?.focus();
      this.menu(e.clientX, e.clientY, row?.dataset.path ?? this.root);
    });
    // Dropping on the tree's empty space moves into the project's root.
    container.addEventListener("dragover", (e) => {
      if ((this.dragging || hasFiles(e)) && !(e.target as HTMLElement).closest(".tree-row")) e.preventDefault();
    });
    container.addEventListener("drop", (e) => {
      if ((e.target as HTMLElement).closest(".tree-row") || !this.root) return;
      if (hasFiles(e)) {
        e.preventDefault();
        this.events.upload(this.root, e.dataTransfer!.files);
      } else if (this.dragging) {
        e.preventDefault();
        void this.move(this.dragging, this.root);
      }
    });
  }

  private dragging: string | null = null;
  private lastFocused: string | null = null;

  /** The directory a new entry goes into: the focused folder, or the focused file's folder. */
  targetDir(): string | null {
    const path = this.lastFocused;
    if (!path || !this.container.querySelector(`.tree-row[data-path="${CSS.escape(path)}"]`)) return this.root;
    return this.dirs.has(path) ? path : dirname(path);
  }

  /** The entry last focused in the explorer, if it is still shown. */
  selected(): string | null {
    const path = this.lastFocused;
    return path && this.container.querySelector(`.tree-row[data-path="${CSS.escape(path)}"]`) ? path : null;
  }

  private menu(x: number, y: number, path: string | null): void {
    if (!path) return;
    const isDir = this.dirs.has(path);
    const dir = isDir ? path : dirname(path);
    const items: MenuItem[] = [
      { label: "New File…", shortcut: "Alt+N", run: () => void this.newEntry(dir, false) },
      { label: "New Folder…", shortcut: "Alt+Shift+N", run: () => void this.newEntry(dir, true) },
      { label: "Upload Files…", run: () => this.events.chooseUpload(dir) },
    ];
    if (!isDir) items.push({ label: "Download", run: () => this.events.download(path) });
    else items.push({ label: "Download as Zip", run: () => this.events.downloadZip(path) });
    if (path !== this.root) {
      items.push(
        { label: "Rename…", shortcut: "F2", run: () => void this.rename(path) },
        { label: "Delete", shortcut: "Delete", run: () => void this.remove(path) },
      );
    }
    contextMenu(x, y, items);
  }

  /** New file or folder in `dir`, named in a dialog; a file opens in the editor. */
  async newEntry(dir: string | null = this.targetDir(), folder = false): Promise<void> {
    const rpc = this.rpc;
    if (!rpc || !dir) return;
    const name = await askText(folder ? "New Folder" : "New File");
    if (name === null) return;
    const problem = validName(name);
    if (problem) return this.events.notify(problem, "error");
    const path = dir === "/" ? `/${name}` : `${dir}/${name}`;
    try {
      if (folder) await rpc.call("fs:create_directory", { path });
      else {
        // fs:write_file replaces what is there: make sure nothing is.
        if (await this.exists(rpc, path)) return this.events.notify(`${name} already exists.`, "error");
        await rpc.call("fs:write_file", { path, content: "" });
      }
    } catch (error) {
      return this.events.notify(`Cannot create ${name}: ${messageOf(error)}`, "error");
    }
    await this.refresh(dir, true);
    if (folder) {
      const node = this.dirs.get(path);
      if (node) await this.toggle(node, true);
      this.focusPath(path);
    } else this.events.openFile(path);
  }

  private async exists(rpc: Rpc, path: string): Promise<boolean> {
    try {
      await rpc.call("fs:stat", { path });
      return true;
    } catch (error) {
      if (error instanceof RpcError && error.code === ErrorCode.NotFound) return false;
      throw error;
    }
  }

  async rename(path: string): Promise<void> {
    const rpc = this.rpc;
    if (!rpc || path === this.root) return;
    const old = basename(path);
    const dot = old.lastIndexOf(".");
    const name = await askText(`Rename ${old}`, old, [0, dot > 0 && !this.dirs.has(path) ? dot : old.length]);
    if (name === null || name === old) return;
    const problem = validName(name);
    if (problem) return this.events.notify(problem, "error");
    await this.renameTo(path, `${dirname(path) === "/" ? "" : dirname(path)}/${name}`);
  }

  private async renameTo(from: string, to: string): Promise<void> {
    const rpc = this.rpc;
    if (!rpc || from === to) return;
    try {
      await rpc.call("fs:rename", { from, to });
    } catch (error) {
      const exists = error instanceof RpcError && error.code === ErrorCode.Exists;
      return this.events.notify(exists ? `${basename(to)} already exists.` : `Cannot move ${basename(from)}: ${messageOf(error)}`, "error");
    }
    // The tree keeps a renamed folder's expanded state under its new name.
    const expanded = [...this.remembered()].map((p) => (p === from || p.startsWith(from + "/") ? to + p.slice(from.length) : p));
    this.saveExpanded(expanded);
    this.forget(from);
    await Promise.all([this.refresh(dirname(from)), this.refresh(dirname(to))]);
    this.focusPath(to);
  }

  /** Drag and drop: `from` into the folder `dir`. */
  private async move(from: string, dir: string): Promise<void> {
    this.dragging = null;
    if (dirname(from) === dir || dir === from || dir.startsWith(from + "/")) return;
    await this.renameTo(from, `${dir === "/" ? "" : dir}/${basename(from)}`);
  }

  async remove(path: string): Promise<void> {
    const rpc = this.rpc;
    if (!rpc || path === this.root) return;
    const isDir = this.dirs.has(path);
    const choice = await ask(
      `Delete ${basename(path)}?`,
      isDir ? `The folder ${basename(path)} and everything in it will be deleted. This cannot be undone.` : `${path} will be deleted. This cannot be undone.`,
      [
        { label: "Delete", value: "delete", primary: true },
        { label: "Cancel", value: "cancel" },
      ],
    );
    if (choice !== "delete") return;
    try {
      await rpc.call("fs:delete", { path, recursive: isDir });
    } catch (error) {
      return this.events.notify(`Cannot delete ${basename(path)}: ${messageOf(error)}`, "error");
    }
    this.forget(path);
    await this.refresh(dirname(path));
    this.focusPath(dirname(path));
    this.events.deleted(path);
  }

  /** List `dir` again (the worker's own changes raise no file:changed_on_disk). */
  private async refresh(dir: string, expand = false): Promise<void> {
    const node = this.dirs.get(dir);
    if (!node) return;
    if (expand && !node.expanded) await this.toggle(node, true);
    else if (node.expanded || dir === this.root) await this.list(node);
  }

  private focusPath(path: string): void {
    this.container.querySelector<HTMLElement>(`.tree-row[data-path="${CSS.escape(path)}"]`)?.focus();
  }

  /** A new connection: show `root`, re-expanding what was expanded before. */
  async attach(rpc: Rpc, root: string): Promise<void> {
    this.rpc = rpc;
    if (root !== this.root) {
      this.root = root;
      this.dirs.clear();
      this.container.replaceChildren();
      this.title.textContent = basename(root) || root;
      this.title.title = root;
      const ul = h("ul", { class: "tree-children", role: "group" });
      const node: DirNode = { path: root, element: this.container, children: ul, expanded: true, loaded: false, loading: null };
      this.container.append(ul);
      this.dirs.set(root, node);
    }
    const remembered = this.remembered();
    for (const node of this.dirs.values()) node.loaded = false;
    // Parents before children: a child's row exists only once its parent is listed.
    const expanded = [root, ...[...remembered].filter((p) => p.startsWith(root + "/")).sort((a, b) => a.length - b.length)];
    for (const path of expanded) {
      const node = this.dirs.get(path);
      if (node && (node.expanded || path === root)) await this.list(node);
    }
  }

  detach(): void {
    this.rpc = null;
  }

  setActive(path: string | null): void {
    this.activePath = path;
    for (const el of this.container.querySelectorAll(".tree-row.active")) el.classList.remove("active");
    if (!path) return;
    const row = this.container.querySelector(`.tree-row[data-path="${CSS.escape(path)}"]`);
    row?.classList.add("active");
  }

  /** file:changed_on_disk: list the directories concerned again, if they are shown. */
  changed(path: string, oldPath?: string): void {
    for (const p of [path, oldPath]) {
      if (!p) continue;
      const node = this.dirs.get(dirname(p));
      if (node?.expanded && node.loaded) void this.list(node);
    }
  }

  private remembered(): Set<string> {
    return new Set(this.events.expandedFolders());
  }

  private rememberTimer: ReturnType<typeof setTimeout> | undefined;

  /** Tell the worker which folders are expanded (a moment after the last change). */
  private remember(): void {
    clearTimeout(this.rememberTimer);
    this.rememberTimer = setTimeout(() => {
      const expanded = [...this.dirs.values()].filter((d) => d.expanded && d.path !== this.root).map((d) => d.path);
      this.saveExpanded(expanded);
    }, 250);
  }

  /** Within the worker's bounds (512 paths, 64 KiB in all): the shallowest first. */
  private saveExpanded(paths: string[]): void {
    const kept: string[] = [];
    let bytes = 0;
    for (const p of [...paths].sort((a, b) => a.split("/").length - b.split("/").length)) {
      bytes += p.length * 3 + 4;
      if (kept.length >= 512 || bytes > 48 * 1024) break;
      kept.push(p);
    }
    this.events.setExpandedFolders(kept);
  }

  private list(node: DirNode): Promise<void> {
    if (node.loading) return node.loading;
    const rpc = this.rpc;
    if (!rpc) return Promise.resolve();
    node.loading = (async () => {
      try {
        const r = await rpc.call("fs:list_directory", { path: node.path });
        this.render(node, r.entries);
        node.loaded = true;
      } catch (error) {
        node.children.replaceChildren(h("li", { class: "tree-error", text: messageOf(error) }));
      } finally {
        node.loading = null;
      }
    })();
    return node.loading;
  }

  private render(node: DirNode, entries: DirEntry[]): void {
    const depth = node.path === this.root ? 0 : Number(node.element.dataset.depth ?? 0) + 1;
    const sorted = [...entries].sort((a, b) => {
      const da = a.type === "dir" ? 0 : 1;
      const db = b.type === "dir" ? 0 : 1;
      return da - db || a.name.localeCompare(b.name, undefined, { numeric: true, sensitivity: "base" });
    });
    const remembered = this.remembered();
    const items: HTMLElement[] = [];
    const seen = new Set<string>();
    for (const entry of sorted) {
      const path = node.path === "/" ? `/${entry.name}` : `${node.path}/${entry.name}`;
      seen.add(path);
      const isDir = entry.type === "dir";
      const existing = isDir ? this.dirs.get(path) : undefined;
      if (existing) {
        items.push(existing.element);
        continue;
      }
      const row = h(
        "div",
        { class: `tree-row ${isDir ? "dir" : "file"}`, "data-path": path, tabindex: "-1", draggable: "true" },
        h("span", { class: "twisty", "aria-hidden": "true" }),
        h("span", { class: "tree-name", text: entry.name }),
      );
      row.style.paddingLeft = `${8 + depth * 12}px`;
      const li = h("li", { role: "treeitem", "data-depth": depth, "aria-label": entry.name }, row);
      if (path === this.activePath) row.classList.add("active");
      this.dragAndDrop(row, path, isDir);
      if (isDir) {
        const children = h("ul", { class: "tree-children", role: "group" });
        children.hidden = true;
        li.append(children);
        li.setAttribute("aria-expanded", "false");
        const dir: DirNode = { path, element: li, children, expanded: false, loaded: false, loading: null };
        this.dirs.set(path, dir);
        row.addEventListener("click", () => void this.toggle(dir));
        if (remembered.has(path)) void this.toggle(dir, true);
      } else {
        row.addEventListener("click", () => this.events.openFile(path));
      }
      items.push(li);
    }
    // Directories that went away take their subtrees with them.
    for (const p of [...this.dirs.keys()])
      if (dirname(p) === node.path && p !== node.path && !seen.has(p)) this.forget(p);
    node.children.replaceChildren(...items);
    if (!items.length) node.children.append(h("li", { class: "tree-empty", text: "(empty)" }));
  }

  private dragAndDrop(row: HTMLElement, path: string, isDir: boolean): void {
    row.addEventListener("dragstart", (e) => {
      this.dragging = path;
      e.dataTransfer?.setData("text/plain", path);
      if (e.dataTransfer) e.dataTransfer.effectAllowed = "move";
    });
    row.addEventListener("dragend", () => {
      this.dragging = null;
    });
    // A file row takes drops for its folder.
    const target = isDir ? path : dirname(path);
    row.addEventListener("dragover", (e) => {
      if (!this.dragging && !hasFiles(e)) return;
      e.preventDefault();
      row.classList.add("drop-target");
    });
    row.addEventListener("dragleave", () => row.classList.remove("drop-target"));
    row.addEventListener("drop", (e) => {
      row.classList.remove("drop-target");
      if (hasFiles(e)) {
        e.preventDefault();
        e.stopPropagation();
        this.events.upload(target, e.dataTransfer!.files);
        return;
      }
      if (!this.dragging) return;
      e.preventDefault();
      e.stopPropagation();
      void this.move(this.dragging, target);
    });
  }

  private forget(path: string): void {
    for (const p of [...this.dirs.keys()]) if (p === path || p.startsWith(path + "/")) this.dirs.delete(p);
  }

  private async toggle(dir: DirNode, expand = !dir.expanded): Promise<void> {
    dir.expanded = expand;
    dir.element.setAttribute("aria-expanded", String(expand));
    dir.element.classList.toggle("expanded", expand);
    dir.children.hidden = !expand;
    this.remember();
    if (expand && !dir.loaded) await this.list(dir);
  }

  private onKey(e: KeyboardEvent): void {
    const rows = [...this.container.querySelectorAll<HTMLElement>(".tree-row")].filter((r) => r.offsetParent !== null);
    const current = document.activeElement as HTMLElement | null;
    const i = current ? rows.indexOf(current) : -1;
    const focus = (j: number) => rows[Math.max(0, Math.min(rows.length - 1, j))]?.focus();
    const dir = current ? this.dirs.get(current.dataset.path ?? "") : undefined;
    switch (e.key) {
      case "ArrowDown":
        focus(i + 1);
        break;
      case "ArrowUp":
        focus(i - 1);
        break;
      case "ArrowRight":
        if (dir && !dir.expanded) void this.toggle(dir, true);
        else focus(i + 1);
        break;
      case "ArrowLeft":
        if (dir?.expanded) void this.toggle(dir, false);
        break;
      case "Enter":
      case " ":
        current?.click();
        break;
      case "F2":
        if (current?.dataset.path) void this.rename(current.dataset.path);
        break;
      case "Delete":
        if (current?.dataset.path) void this.remove(current.dataset.path);
        break;
      default:
        return;
    }
    e.preventDefault();
  }
}
