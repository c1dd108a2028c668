// The page's one WebSocket to its worker (through the gateway's /ws): opened, lost and opened again
// with exponential backoff, each time handing a fresh, connected client to whoever rebuilds the page.

import { RpcClient } from "./rpc";
import type { Methods, Notifications } from "./protocol";

export type Rpc = RpcClient<Methods, Notifications>;

export type LinkStatus =
  | { kind: "connecting" }
  | { kind: "connected"; workerRestarted: boolean }
  | { kind: "reconnecting"; attempt: number; delayMs: number; workerLost: boolean }
  | { kind: "logged-out" }
  | { kind: "refused"; reason: string }
  /** The user can have no workspace now (the gateway's close codes 4010-4017): said, not retried. */
  | { kind: "unavailable"; code: number; message: string };

export interface ConnectionOptions {
  /** Called on every open, before the status says "connected"; the page rebuilds itself here. */
  onOpen: (rpc: Rpc) => Promise<{ workerPid: number }>;
  /** Called when an open connection is lost, before any reconnection attempt. */
  onClose?: () => void;
  onStatus: (status: LinkStatus) => void;
  /** Called when the gateway no longer knows our session. */
  onLoggedOut: () => void;
  url?: string;
  minDelayMs?: number;
  maxDelayMs?: number;
}

/** Close codes: 1008 is the gateway saying the session ended; 1011 that the worker went away; 4008
 * that this user has as many pages open as the gateway allows (not a crash: nothing to retry). */
const CLOSE_POLICY = 1008;
const CLOSE_PAGE_LIMIT = 4008;

/** Why the user can have no workspace (docs/protocol.md), as the page says it. Permanent ones wait for
 * the user's "Try again"; transient ones are retried with backoff, at most MAX_TRANSIENT_RETRIES times
 * in a row. */
const WORKSPACE_CLOSES: Record<number, { message: string; transient: boolean }> = {
  4010: { message: "Your workspace has been disabled by the administrator.", transient: false },
  4011: { message: "Your account is locked or has expired. Ask your administrator.", transient: false },
  4012: { message: "Your home directory is missing. Ask your administrator.", transient: false },
  4013: { message: "Your workspace failed to start. The administrator can see why in the server's log.", transient: false },
  4014: { message: "The server has as many workspaces running as it allows. Try again later.", transient: true },
  4015: { message: "The server is busy.", transient: true },
  4016: { message: "Your workspace took too long to start.", transient: true },
  4017: { message: "This account may not have a workspace.", transient: false },
};
export const MAX_TRANSIENT_RETRIES = 5;

/** What the page says for a close code of the gateway's, or undefined for any other code. */
export function workspaceCloseMessage(code: number): string | undefined {
  return WORKSPACE_CLOSES[code]?.message;
}

export class Connection {
  readonly rpc: Rpc = new RpcClient<Methods, Notifications>(30_000);
  private socket: WebSocket | null = null;
  private attempt = 0;
  private transientFailures = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private workerPid = 0;
  private workerLost = false;
  private readonly minDelay: number;
  private readonly maxDelay: number;

  constructor(private readonly options: ConnectionOptions) {
    this.minDelay = options.minDelayMs ?? 250;
    this.maxDelay = options.maxDelayMs ?? 10_000;
    this.rpc.on("gateway:worker_lost", () => {
      this.workerLost = true;
    });
    window.addEventListener("online", () => this.retryNow());
  }

  start(): void {
    this.stopped = false;
    this.options.onStatus({ kind: "connecting" });
    this.open();
  }

  /** Close for good (logout). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const s = this.socket;
    this.socket = null;
    this.rpc.detach();
    if (s) s.close(1000);
  }

  /** Skip the rest of the backoff wait (or try again after a refusal). */
  retryNow(): void {
    if (this.stopped || this.socket) return;
    clearTimeout(this.retryTimer);
    this.transientFailures = 0;
    this.retryTimer = undefined;
    this.open();
  }

  get isOpen(): boolean {
    return this.socket?.readyState === WebSocket.OPEN && this.rpc.connected;
  }

  private open(): void {
    this.retryTimer = undefined;
    const url = this.options.url ?? new URL("ws", location.href).href.replace(/^http/, "ws");
    const socket = new WebSocket(url);
    this.socket = socket;
    let opened = false;

    socket.onopen = async () => {
      opened = true;
      this.rpc.attach((text) => socket.send(text));
      try {
        const { workerPid } = await this.options.onOpen(this.rpc);
        if (this.socket !== socket) return;
        const restarted = this.workerPid !== 0 && workerPid !== this.workerPid;
        this.workerPid = workerPid;
        this.workerLost = false;
        this.attempt = 0;
        this.transientFailures = 0;
        this.options.onStatus({ kind: "connected", workerRestarted: restarted });
      } catch (error) {
        // The rebuild failed (the link dropped half-way, or the worker refused): start over.
        console.warn("Rebuilding from the worker failed", error);
        if (this.socket === socket) socket.close(4000, "rebuild failed");
      }
    };
    socket.onmessage = (event) => {
      if (typeof event.data === "string") this.rpc.receive(event.data);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.rpc.detach();
      if (opened) this.options.onClose?.();
      if (this.stopped) return;
      if (event.code === CLOSE_POLICY) {
        this.loggedOut();
        return;
      }
      if (event.code === CLOSE_PAGE_LIMIT) {
        // A limit, not a failure: reconnecting would only be refused again. The page says why and waits
        // for the user to close another tab and click to retry.
        this.options.onStatus({ kind: "refused", reason: event.reason || "too many pages open" });
        return;
      }
      const why = WORKSPACE_CLOSES[event.code];
      if (why && (!why.transient || ++this.transientFailures > MAX_TRANSIENT_RETRIES)) {
        // Retrying would meet the same answer: the page says why and waits for "Try again".
        this.transientFailures = 0;
        this.options.onStatus({ kind: "unavailable", code: event.code, message: why.message });
        return;
      }
      // A refused upgrade shows up as a close before open: ask whether the session still stands.
      void this.scheduleRetry(!opened);
    };
  }

  private async scheduleRetry(checkSession: boolean): Promise<void> {
    if (checkSession || this.attempt > 2) {
      try {
        const r = await fetch(new URL("api/session", location.href), { credentials: "same-origin" });
        if (r.status === 401) {
          this.loggedOut();
          return;
        }
      } catch {
        // Network down: keep retrying.
      }
    }
    if (this.stopped) return;
    const base = Math.min(this.maxDelay, this.minDelay * 2 ** this.attempt);
    const delayMs = Math.round(base / 2 + (Math.random() * base) / 2);
    this.attempt++;
    this.options.onStatus({ kind: "reconnecting", attempt: this.attempt, delayMs, workerLost: this.workerLost });
    this.retryTimer = setTimeout(() => this.open(), delayMs);
  }

  private loggedOut(): void {
    this.stopped = true;
    this.options.onStatus({ kind: "logged-out" });
    this.options.onLoggedOut();
  }
}
