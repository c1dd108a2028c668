// Ports: the servers listening in the workspace (preview:ports), each with a link that opens it in a
// new tab on the preview origin. The link is asked of the gateway (POST /api/preview, this page's
// session and origin) when clicked: it holds a ticket good once, for a minute.
import type { Rpc } from "./connection";
import { h } from "./dom";
import { messageOf } from "./editor";

/** Open the preview of port in the tab opened for it (opened at the click, so no popup blocker stops it). */
export async function openPreview(port: number, tab: Window | null): Promise<void> {
  const r = await fetch(new URL(`api/preview?port=${port}`, location.href), {
    method: "POST",
    credentials: "same-origin",
    cache: "no-store",
    headers: { "Content-Length": "0" },
  });
  const body = (await r.json().catch(() => ({}))) as { url?: string; error?: string };
  if (!r.ok || !body.url) {
    tab?.close();
    throw new Error(body.error ?? `HTTP ${r.status}`);
  }
  if (tab) {
    // The previewed page gets no handle on this one.
    tab.opener = null;
    tab.location.replace(body.url);
  } else window.open(body.url, "_blank", "noopener,noreferrer");
}

export class Ports {
  private rpc: Rpc | null = null;

  constructor(private readonly notify: (message: string, kind?: "info" | "error") => void) {}

  attach(rpc: Rpc): void {
    this.rpc = rpc;
  }

  detach(): void {
    this.rpc = null;
  }

  async show(): Promise<void> {
    document.querySelector(".ports-overlay")?.remove();
    const previous = document.activeElement as HTMLElement | null;
    const list = h("ul", { class: "ports-list", "aria-label": "Listening ports" });
    const refresh = h("button", { text: "Refresh", "data-value": "refresh" });
    const close = h("button", { class: "primary", text: "Close", "data-value": "close" });
    const dialog = h(
      "div",
      { class: "dialog ports", role: "dialog", "aria-modal": "true", "aria-label": "Ports" },
      h("h2", { text: "Ports" }),
      h("p", { class: "dialog-note", text: "Servers listening in your workspace. A preview opens in a new tab, apart from Helios." }),
      list,
      h("div", { class: "dialog-buttons" }, refresh, close),
    );
    const overlay = h("div", { class: "overlay ports-overlay" }, dialog);
    const finish = () => {
      overlay.remove();
      previous?.focus();
    };
    const load = async () => {
      const rpc = this.rpc;
      list.replaceChildren(h("li", { class: "ports-empty", text: "Looking…" }));
      if (!rpc) {
        list.replaceChildren(h("li", { class: "ports-empty", text: "Not connected." }));
        return;
      }
      try {
        const r = await rpc.call("preview:ports", {});
        list.replaceChildren(
          ...r.ports.map(({ port }) => {
            const open = h("button", { class: "ports-open", text: "Open Preview", "data-port": String(port) });
            open.addEventListener("click", () => {
              const tab = window.open("about:blank", "_blank");
              openPreview(port, tab).catch((error) => this.notify(`Cannot open the preview of port ${port}: ${messageOf(error)}`, "error"));
            });
            return h("li", { class: "ports-item" }, h("span", { class: "ports-port", text: String(port) }), open);
          }),
        );
        if (!r.ports.length) list.replaceChildren(h("li", { class: "ports-empty", text: "Nothing is listening. Start a server in a terminal (python3 -m http.server 8000, say)." }));
      } catch (error) {
        list.replaceChildren(h("li", { class: "ports-empty", text: `Cannot list the ports: ${messageOf(error)}` }));
      }
    };
    refresh.addEventListener("click", () => void load());
    close.addEventListener("click", finish);
    overlay.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        finish();
      }
    });
    overlay.addEventListener("mousedown", (e) => {
      if (e.target === overlay) finish();
    });
    document.body.append(overlay);
    close.focus();
    await load();
  }
}
