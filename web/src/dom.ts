// Tiny DOM helpers: elements are built in code (no innerHTML), so nothing a file name or a worker
// message contains can ever become markup.

type Attrs = Record<string, string | number | boolean | undefined>;
type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (name === "class") el.className = String(value);
    else if (name === "text") el.textContent = String(value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing from the page`);
  return el as T;
}

export function basename(path: string): string {
  const i = path.replace(/\/+$/, "").lastIndexOf("/");
  return i < 0 ? path : path.slice(i + 1);
}

export function dirname(path: string): string {
  const i = path.replace(/\/+$/, "").lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

/** A modal question with buttons; resolves to the chosen button's value, or null on Escape. */
export function ask<T extends string>(
  title: string,
  message: string,
  buttons: Array<{ label: string; value: T; primary?: boolean }>,
): Promise<T | null> {
  return new Promise((resolve) => {
    const previous = document.activeElement as HTMLElement | null;
    const dialog = h("div", { class: "dialog", role: "alertdialog", "aria-modal": "true", "aria-label": title });
    const overlay = h("div", { class: "overlay" }, dialog);
    const finish = (value: T | null) => {
      overlay.remove();
      previous?.focus();
      resolve(value);
    };
    const row = h("div", { class: "dialog-buttons" });
    for (const b of buttons) {
      const button = h("button", { class: b.primary ? "primary" : "", text: b.label, "data-value": b.value });
      button.addEventListener("click", () => finish(b.value));
      row.append(button);
    }
    dialog.append(h("h2", { text: title }), h("p", { text: message }), row);
    overlay.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        finish(null);
      }
    });
    document.body.append(overlay);
    (row.querySelector("button.primary") as HTMLElement | null ?? row.querySelector("button"))?.focus();
  });
}

/** A modal question with a text field; resolves to the text, or null when cancelled. `select`
 * chooses the part selected at first (a file's name without its extension). */
export function askText(title: string, initial = "", select: [number, number] = [0, initial.length], label = "Name"): Promise<string | null> {
  return new Promise((resolve) => {
    const previous = document.activeElement as HTMLElement | null;
    const input = h("input", { class: "dialog-input", "aria-label": label, spellcheck: "false", autocomplete: "off" });
    input.value = initial;
    const form = h("form", { class: "dialog", role: "dialog", "aria-modal": "true", "aria-label": title });
    const overlay = h("div", { class: "overlay" }, form);
    const finish = (value: string | null) => {
      overlay.remove();
      previous?.focus();
      resolve(value);
    };
    const ok = h("button", { class: "primary", type: "submit", text: "OK", "data-value": "ok" });
    const cancel = h("button", { type: "button", text: "Cancel", "data-value": "cancel" });
    cancel.addEventListener("click", () => finish(null));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      finish(input.value);
    });
    form.append(h("h2", { text: title }), input, h("div", { class: "dialog-buttons" }, ok, cancel));
    overlay.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        finish(null);
      }
    });
    document.body.append(overlay);
    input.focus();
    input.setSelectionRange(select[0], select[1]);
  });
}

export interface MenuItem {
  label: string;
  shortcut?: string;
  run: () => void;
}

/** A context menu at (x, y): arrow keys, Enter, Escape; closes on any click elsewhere. */
export function contextMenu(x: number, y: number, items: MenuItem[]): void {
  document.querySelector(".context-menu")?.remove();
  const previous = document.activeElement as HTMLElement | null;
  const menu = h("div", { class: "context-menu", role: "menu" });
  const close = (refocus = true) => {
    menu.remove();
    window.removeEventListener("pointerdown", outside, true);
    if (refocus) previous?.focus();
  };
  const outside = (e: Event) => {
    if (!menu.contains(e.target as Node)) close(false);
  };
  for (const item of items) {
    const b = h("button", { class: "menu-item", role: "menuitem", "data-label": item.label },
      h("span", { text: item.label }), h("span", { class: "menu-shortcut", text: item.shortcut ?? "" }));
    b.addEventListener("click", () => {
      close();
      item.run();
    });
    menu.append(b);
  }
  menu.addEventListener("keydown", (e) => {
    const buttons = [...menu.querySelectorAll<HTMLElement>("button")];
    const i = buttons.indexOf(document.activeElement as HTMLElement);
    if (e.key === "Escape") close();
    else if (e.key === "ArrowDown") buttons[(i + 1) % buttons.length]?.focus();
    else if (e.key === "ArrowUp") buttons[(i - 1 + buttons.length) % buttons.length]?.focus();
    else return;
    e.preventDefault();
    e.stopPropagation();
  });
  document.body.append(menu);
  const rect = menu.getBoundingClientRect();
  menu.style.left = `${Math.max(0, Math.min(x, window.innerWidth - rect.width))}px`;
  menu.style.top = `${Math.max(0, Math.min(y, window.innerHeight - rect.height))}px`;
  window.addEventListener("pointerdown", outside, true);
  menu.querySelector<HTMLElement>("button")?.focus();
}
