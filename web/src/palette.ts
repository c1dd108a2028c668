// The command palette (Ctrl+Shift+P / F1): every command of the page with its shortcut, filtered as
// the user types; Enter runs the chosen one.

import { h } from "./dom";

export interface Command {
  id: string;
  label: string;
  shortcut?: string;
  run: () => void;
}

export function showPalette(commands: Command[]): void {
  document.querySelector(".palette-overlay")?.remove();
  const previous = document.activeElement as HTMLElement | null;
  const input = h("input", { class: "palette-input", "aria-label": "Type a command", placeholder: "Type a command", spellcheck: "false", autocomplete: "off" });
  const list = h("ul", { class: "palette-list", role: "listbox", id: "palette-list" });
  input.setAttribute("aria-controls", "palette-list");
  const dialog = h("div", { class: "dialog palette", role: "dialog", "aria-modal": "true", "aria-label": "Command palette" }, input, list);
  const overlay = h("div", { class: "overlay palette-overlay" }, dialog);
  let shown: Command[] = [];
  let selected = 0;
  const finish = (command?: Command) => {
    overlay.remove();
    previous?.focus();
    command?.run();
  };
  const render = () => {
    const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    shown = commands.filter((c) => words.every((w) => c.label.toLowerCase().includes(w)));
    selected = Math.min(selected, Math.max(0, shown.length - 1));
    list.replaceChildren(
      ...shown.map((c, i) => {
        const item = h("li", { class: "palette-item", role: "option", "aria-selected": String(i === selected), "data-command": c.id },
          h("span", { text: c.label }), h("span", { class: "palette-key", text: c.shortcut ?? "" }));
        item.addEventListener("mousedown", (e) => {
          e.preventDefault();
          finish(c);
        });
        return item;
      }),
    );
    list.querySelector('[aria-selected="true"]')?.scrollIntoView({ block: "nearest" });
  };
  input.addEventListener("input", () => {
    selected = 0;
    render();
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown") selected = Math.min(shown.length - 1, selected + 1);
    else if (e.key === "ArrowUp") selected = Math.max(0, selected - 1);
    else if (e.key === "Enter") return finish(shown[selected]);
    else if (e.key === "Escape") {
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
  render();
  input.focus();
}
