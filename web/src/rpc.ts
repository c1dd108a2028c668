// A small JSON-RPC 2.0 client over any message transport (one JSON text per message).
//
// Every request gets its own promise, settled by the answer with its id, by a timeout, or by the
// transport going away. Notifications are dispatched to handlers typed by method name. The method
// and notification maps are type parameters, so the same client serves any protocol:
//
//   interface Methods { "sum": { params: { a: number; b: number }; result: number } }
//   interface Notes { "tick": { n: number } }
//   const rpc = new RpcClient<Methods, Notes>();
//   rpc.attach((text) => socket.send(text));      // then feed it every message: rpc.receive(text)
//   const three = await rpc.call("sum", { a: 1, b: 2 });
//   rpc.on("tick", ({ n }) => console.log(n));

export type MethodMap = Record<string, { params: unknown; result: unknown }>;
export type NotificationMap = Record<string, unknown>;

/** An error answer from the peer: JSON-RPC's code, message and data. */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
    readonly method?: string,
  ) {
    super(message);
    this.name = "RpcError";
  }
}

/** No answer within the request's time limit. The request may still be carried out by the peer. */
export class RpcTimeoutError extends Error {
  constructor(readonly method: string, readonly timeoutMs: number) {
    super(`${method}: no answer within ${timeoutMs} ms`);
    this.name = "RpcTimeoutError";
  }
}

/** The transport closed (or was never open) before the answer came. */
export class RpcClosedError extends Error {
  constructor(readonly method: string) {
    super(`${method}: connection closed`);
    this.name = "RpcClosedError";
  }
}

export interface CallOptions {
  /** Milliseconds to wait for the answer; 0 waits for as long as the connection lasts. */
  timeoutMs?: number;
}

interface Pending {
  method: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

type Handler<T> = (params: T) => void;

export class RpcClient<M extends MethodMap, N extends NotificationMap> {
  private send: ((text: string) => void) | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly handlers = new Map<string, Set<Handler<never>>>();
  private readonly anyHandlers = new Set<(method: string, params: unknown) => void>();

  /** Default time limit for calls that do not give their own. */
  constructor(public defaultTimeoutMs = 30_000) {}

  /** Start sending through `send` (a fresh connection). */
  attach(send: (text: string) => void): void {
    this.send = send;
  }

  /** The connection is gone: every outstanding call fails with RpcClosedError. */
  detach(): void {
    this.send = null;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      clearTimeout(p.timer);
      p.reject(new RpcClosedError(p.method));
    }
  }

  get connected(): boolean {
    return this.send !== null;
  }

  get outstanding(): number {
    return this.pending.size;
  }

  call<K extends keyof M & string>(method: K, params: M[K]["params"], options: CallOptions = {}): Promise<M[K]["result"]> {
    return new Promise<M[K]["result"]>((resolve, reject) => {
      if (!this.send) {
        reject(new RpcClosedError(method));
        return;
      }
      const id = this.nextId++;
      const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
      const entry: Pending = { method, resolve: resolve as (v: unknown) => void, reject, timer: undefined };
      if (timeoutMs > 0) {
        entry.timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new RpcTimeoutError(method, timeoutMs));
        }, timeoutMs);
      }
      this.pending.set(id, entry);
      try {
        this.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
      } catch (error) {
        clearTimeout(entry.timer);
        this.pending.delete(id);
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  /** Send a notification: no answer, no promise. Dropped if not connected. */
  notify<K extends keyof M & string>(method: K, params: M[K]["params"]): boolean {
    if (!this.send) return false;
    this.send(JSON.stringify({ jsonrpc: "2.0", method, params }));
    return true;
  }

  /** Handle the notification `method`; returns a function that removes the handler. */
  on<K extends keyof N & string>(method: K, handler: Handler<N[K]>): () => void {
    let set = this.handlers.get(method);
    if (!set) this.handlers.set(method, (set = new Set()));
    set.add(handler as Handler<never>);
    return () => set.delete(handler as Handler<never>);
  }

  /** Handle every notification, known or not (logging, tests). */
  onAny(handler: (method: string, params: unknown) => void): () => void {
    this.anyHandlers.add(handler);
    return () => this.anyHandlers.delete(handler);
  }

  /** Feed one message received from the peer. Returns false if it was not valid JSON-RPC. */
  receive(text: string): boolean {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      return false;
    }
    const messages = Array.isArray(message) ? message : [message];
    let ok = true;
    for (const m of messages) ok = this.dispatch(m) && ok;
    return ok;
  }

  private dispatch(m: unknown): boolean {
    if (typeof m !== "object" || m === null) return false;
    const msg = m as { id?: unknown; method?: unknown; params?: unknown; result?: unknown; error?: unknown };
    if (typeof msg.method === "string") {
      if (msg.id !== undefined) return false; // a request to us: this client serves none
      this.emit(msg.method, msg.params);
      return true;
    }
    if (typeof msg.id !== "number") return false;
    const p = this.pending.get(msg.id);
    if (!p) return false; // timed out already, or not ours
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.error !== undefined) {
      const e = (msg.error ?? {}) as { code?: unknown; message?: unknown; data?: unknown };
      p.reject(
        new RpcError(
          typeof e.code === "number" ? e.code : -32603,
          `${p.method}: ${typeof e.message === "string" ? e.message : "error"}`,
          e.data,
          p.method,
        ),
      );
    } else {
      p.resolve(msg.result);
    }
    return true;
  }

  private emit(method: string, params: unknown): void {
    for (const h of this.anyHandlers) h(method, params);
    const set = this.handlers.get(method);
    if (!set) return;
    for (const h of [...set]) {
      try {
        (h as Handler<unknown>)(params);
      } catch (error) {
        console.error(`Handler for ${method} failed`, error);
      }
    }
  }
}
