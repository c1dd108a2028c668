// The user's settings, held by the worker (settings:get / settings:set, settings:changed to every
// page): this page shows them and asks for changes; what the worker answers is what applies.

import type { Rpc } from "./connection";
import { h } from "./dom";
import { RpcError } from "./rpc";
import { messageOf } from "./editor";

export type Theme = "dark" | "light" | "high-contrast";

export interface SettingsValues {
  theme: Theme;
  fontSize: number;
  tabWidth: number;
  wordWrap: boolean;
  expandedFolders: string[];
}

export const DEFAULT_SETTINGS: SettingsValues = { theme: "dark", fontSize: 13, tabWidth: 4, wordWrap: false, expandedFolders: [] };

export class Settings {
  values: SettingsValues = { ...DEFAULT_SETTINGS };
  private rpc: Rpc | null = null;
  private readonly listeners: Array<(s: SettingsValues) => void> = [];

  constructor(private readonly notify: (message: string, kind?: "info" | "error") => void) {}

  onChange(listener: (s: SettingsValues) => void): void {
    this.listeners.push(listener);
  }

  async attach(rpc: Rpc): Promise<void> {
    this.rpc = rpc;
    try {
      const r = await rpc.call("settings:get", {});
      this.take(r.settings);
    } catch (error) {
      // A worker from before settings existed (-32601) keeps the defaults without a word.
      if (!(error instanceof RpcError && error.code === -32601)) this.notify(`Cannot read the settings: ${messageOf(error)}`, "error");
    }
  }

  detach(): void {
    this.rpc = null;
  }

  /** settings:changed, or an answer: the worker's settings are this page's. */
  take(values: SettingsValues): void {
    this.values = { ...DEFAULT_SETTINGS, ...values };
    document.documentElement.dataset.theme = this.values.theme;
    document.documentElement.style.setProperty("--editor-font-size", `${this.values.fontSize}px`);
    for (const l of this.listeners) l(this.values);
  }

  async set(changes: Partial<SettingsValues>): Promise<boolean> {
    const rpc = this.rpc;
    if (!rpc) return false;
    try {
      const r = await rpc.call("settings:set", { settings: changes });
      this.take(r.settings);
      return true;
    } catch (error) {
      this.notify(`Cannot change the settings: ${messageOf(error)}`, "error");
      return false;
    }
  }

  /** The settings dialog: each control applies at once, through the worker. */
  show(): void {
    document.querySelector(".settings-overlay")?.remove();
    const previous = document.activeElement as HTMLElement | null;
    const v = this.values;
    const select = (id: string, options: Array<[string, string]>, value: string) => {
      const el = h("select", { id });
      for (const [val, label] of options) {
        const o = h("option", { value: val, text: label });
        o.selected = val === value;
        el.append(o);
      }
      return el;
    };
    const theme = select("setting-theme", [["dark", "Dark"], ["light", "Light"], ["high-contrast", "High contrast"]], v.theme);
    const fontSize = h("input", { id: "setting-font-size", type: "number", min: 8, max: 32, step: 1 });
    fontSize.value = String(v.fontSize);
    const tabWidth = h("input", { id: "setting-tab-width", type: "number", min: 1, max: 16, step: 1 });
    tabWidth.value = String(v.tabWidth);
    const wrap = h("input", { id: "setting-word-wrap", type: "checkbox" });
    wrap.checked = v.wordWrap;
    theme.addEventListener("change", () => void this.set({ theme: theme.value as Theme }));
    const number = (input: HTMLInputElement, key: "fontSize" | "tabWidth", min: number, max: number) =>
      input.addEventListener("change", () => {
        const n = Math.round(Number(input.value));
        if (Number.isFinite(n) && n >= min && n <= max) void this.set({ [key]: n });
        else input.value = String(this.values[key]);
      });
    number(fontSize, "fontSize", 8, 32);
    number(tabWidth, "tabWidth", 1, 16);
    wrap.addEventListener("change", () => void this.set({ wordWrap: wrap.checked }));
    const close = h("button", { class: "primary", text: "Close", "data-value": "close" });
    const dialog = h(
      "div",
      { class: "dialog", role: "dialog", "aria-modal": "true", "aria-label": "Settings" },
      h("h2", { text: "Settings" }),
      h("div", { class: "settings-form" },
        h("label", { for: "setting-theme", text: "Theme" }), theme,
        h("label", { for: "setting-font-size", text: "Font size" }), fontSize,
        h("label", { for: "setting-tab-width", text: "Tab width" }), tabWidth,
        h("label", { for: "setting-word-wrap", text: "Word wrap" }), wrap),
      h("p", { class: "dialog-note", text: "Kept by your workspace: every page and browser you log in from shows the same." }),
      h("div", { class: "dialog-buttons" }, close),
    );
    const overlay = h("div", { class: "overlay settings-overlay" }, dialog);
    const finish = () => {
      overlay.remove();
      previous?.focus();
    };
    close.addEventListener("click", finish);
    overlay.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        finish();
      }
    });
    document.body.append(overlay);
    theme.focus();
  }
}

