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
