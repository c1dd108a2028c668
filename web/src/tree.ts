// The explorer: a lazy tree of the project, each directory listed (fs:list_directory) when first
// expanded and listed again when something in it changes on disk.

import type { Rpc } from "./connection";
import type { DirEntry } from "./protocol";
import { basename, dirname, h } from "./dom";
import { messageOf } from "./editor";

interface DirNode {
  path: string;
  element: HTMLElement; // the <li>
  children: HTMLElement; // the nested <ul>
  expanded: boolean;
  loaded: boolean;
  loading: Promise<void> | null;
}

const STORAGE_KEY = "helios.expanded";

export class FileTree {
  private rpc: Rpc | null = null;
  private root: string | null = null;
  private readonly dirs = new Map<string, DirNode>();
  private activePath: string | null = null;

  constructor(
    private readonly container: HTMLElement,
    private readonly title: HTMLElement,
    private readonly onOpenFile: (path: string) => void,
  ) {
    container.setAttribute("role", "tree");
    container.addEventListener("keydown", (e) => this.onKey(e));
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
    try {
      return new Set(JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? "[]") as string[]);
    } catch {
      return new Set();
    }
  }

  private remember(): void {
    const expanded = [...this.dirs.values()].filter((d) => d.expanded && d.path !== this.root).map((d) => d.path);
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(expanded));
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
        { class: `tree-row ${isDir ? "dir" : "file"}`, "data-path": path, tabindex: "-1" },
        h("span", { class: "twisty", "aria-hidden": "true" }),
        h("span", { class: "tree-name", text: entry.name }),
      );
      row.style.paddingLeft = `${8 + depth * 12}px`;
      const li = h("li", { role: "treeitem", "data-depth": depth, "aria-label": entry.name }, row);
      if (path === this.activePath) row.classList.add("active");
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
        row.addEventListener("click", () => this.onOpenFile(path));
      }
      items.push(li);
    }
    // Directories that went away take their subtrees with them.
    for (const p of [...this.dirs.keys()])
      if (dirname(p) === node.path && p !== node.path && !seen.has(p)) this.forget(p);
    node.children.replaceChildren(...items);
    if (!items.length) node.children.append(h("li", { class: "tree-empty", text: "(empty)" }));
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
      default:
        return;
    }
    e.preventDefault();
  }
}
