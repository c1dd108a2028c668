// Keeps one editor document and the worker's buffer of the same file in step.
//
// The worker holds the truth: a buffer with a version that goes up by one with every change,
// whoever made it. Local changes are sent as file:edit against the version they were made on, one
// request at a time; changes made meanwhile wait in `pending`. A file:edited from another page that
// lands while ours are unconfirmed was applied by the worker before ours, so ours are rebased over
// it (the worker then refuses the in-flight request as stale, and it is sent again, rebased). When
// anything does not add up (a gap in versions, an error other than a stale version, a reconnect),
// the document is resynchronized from file:open without losing what the user typed.

import { ChangeSet, Text } from "@codemirror/state";
import { RpcClosedError, RpcError } from "./rpc";
import { ErrorCode, type Change } from "./protocol";
import type { Rpc } from "./connection";

/** Line breaks are ordinary characters to the worker: only LF splits lines, so "\r" stays text and
 * every offset is the same UTF-16 offset the worker counts. */
export const LINE_SEPARATOR = "\n";

export function textOf(content: string): Text {
  return Text.of(content.split(LINE_SEPARATOR));
}

/** The worker's change list (each change against the document the previous one left) as a ChangeSet
 * over a document of `length`; null if a range does not fit. */
export function changeSetFromWire(changes: readonly Change[], length: number): ChangeSet | null {
  let set = ChangeSet.empty(length);
  for (const c of changes) {
    if (
      !Number.isInteger(c.from) || !Number.isInteger(c.to) || typeof c.insert !== "string" ||
      c.from < 0 || c.to < c.from || c.to > set.newLength
    )
      return null;
    const step = ChangeSet.of({ from: c.from, to: c.to, insert: textOf(c.insert) }, set.newLength, LINE_SEPARATOR);
    set = set.compose(step);
  }
  return set;
}

/** A ChangeSet as the worker's sequential change list. */
export function changeSetToWire(set: ChangeSet): Change[] {
  const out: Change[] = [];
  set.iterChanges((fromA, toA, fromB, _toB, inserted) => {
    // Changes come in document order; by the time this one applies, everything before fromB is
    // already in its new form, so fromB is where it starts.
    out.push({ from: fromB, to: fromB + (toA - fromA), insert: inserted.sliceString(0, inserted.length, LINE_SEPARATOR) });
  });
  return out;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}
function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/** The smallest single change turning `a` into `b` (common prefix and suffix kept), never splitting
 * a surrogate pair; null if they are equal. */
export function diffStrings(a: string, b: string): Change | null {
  if (a === b) return null;
  const max = Math.min(a.length, b.length);
  let start = 0;
  while (start < max && a.charCodeAt(start) === b.charCodeAt(start)) start++;
  if (start > 0 && isHighSurrogate(a.charCodeAt(start - 1))) start--;
  let end = 0;
  while (end < max - start && a.charCodeAt(a.length - 1 - end) === b.charCodeAt(b.length - 1 - end)) end++;
  if (end > 0 && isLowSurrogate(a.charCodeAt(a.length - end))) end--;
  return { from: start, to: a.length - end, insert: b.slice(start, b.length - end) };
}

export interface SyncHost {
  /** The document as the user sees it now. */
  text(): string;
  /** Apply changes that came from the worker (not to be sent back, not undoable). */
  applyRemote(changes: ChangeSet): void;
  /** Something the user should know (a refused edit). */
  problem(message: string): void;
  /** The sync state changed (unconfirmed changes came or went, version moved). */
  changed(): void;
}

export class DocSync {
  private inflight: ChangeSet | null = null;
  private inflightVersion = 0;
  private pending: ChangeSet | null = null;
  private resyncing: Promise<void> | null = null;
  private editedDuringResync = false;
  private idleWaiters: Array<() => void> = [];
  private rpc: Rpc | null = null;

  constructor(
    public path: string,
    public version: number,
    private readonly host: SyncHost,
  ) {}

  /** True while the user has changes the worker has not confirmed. */
  get unconfirmed(): boolean {
    return this.inflight !== null || this.pending !== null || this.editedDuringResync;
  }

  /** A (new) connection to send through; null while there is none. */
  setRpc(rpc: Rpc | null): void {
    this.rpc = rpc;
  }

  /** The user changed the document. */
  local(changes: ChangeSet): void {
    if (changes.empty) return;
    if (this.resyncing) {
      this.editedDuringResync = true;
    } else {
      this.pending = this.pending ? this.pending.compose(changes) : changes;
      this.send();
    }
    this.host.changed();
  }

  /** file:edited from the worker. */
  remote(version: number, changes: readonly Change[]): void {
    if (this.resyncing || version <= this.version) return;
    if (version !== this.version + 1) {
      void this.resync();
      return;
    }
    const baseLength = this.inflight?.length ?? this.pending?.length ?? this.host.text().length;
    let theirs = changeSetFromWire(changes, baseLength);
    if (!theirs) {
      void this.resync();
      return;
    }
    if (this.inflight) {
      const ours = this.inflight.map(theirs);
      theirs = theirs.map(this.inflight, true);
      this.inflight = ours;
    }
    if (this.pending) {
      const ours = this.pending.map(theirs);
      theirs = theirs.map(this.pending, true);
      this.pending = ours;
    }
    this.version = version;
    if (!theirs.empty) this.host.applyRemote(theirs);
    this.host.changed();
  }

  /** Resolves once every change made so far is confirmed by the worker. */
  flush(timeoutMs = 15_000): Promise<void> {
    if (!this.unconfirmed && !this.resyncing) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== done);
        reject(new Error("the worker has not confirmed the latest changes"));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.idleWaiters.push(done);
    });
  }

  /** Forget unsent changes: the buffer is about to be replaced (revert) or closed. */
  discardUnsent(): void {
    this.pending = null;
    this.editedDuringResync = false;
    this.host.changed();
  }

  /** Bring the document in line with the worker's buffer, keeping what the user typed: the worker's
   * text is fetched and whatever differs from the user's unconfirmed text is sent as one edit. */
  resync(): Promise<void> {
    if (this.resyncing) return this.resyncing;
    const hadLocal = this.unconfirmed;
    this.inflight = null;
    this.pending = null;
    this.editedDuringResync = hadLocal;
    const run = async () => {
      const rpc = this.rpc;
      if (!rpc) throw new RpcClosedError("file:open");
      const opened = await rpc.call("file:open", { path: this.path });
      this.adopt(opened.version, opened.content);
    };
    this.resyncing = run().finally(() => {
      this.resyncing = null;
      this.send();
      this.host.changed();
    });
    return this.resyncing;
  }

  /** The worker's buffer is `content` at `version` (file:open after a reconnect, or our own revert). */
  adopt(version: number, content: string): void {
    const keepLocal = this.editedDuringResync || this.inflight !== null || this.pending !== null;
    this.editedDuringResync = false;
    this.inflight = null;
    this.pending = null;
    this.version = version;
    const local = this.host.text();
    const change = keepLocal ? diffStrings(content, local) : diffStrings(local, content);
    if (!change) return;
    if (keepLocal) {
      this.pending = changeSetFromWire([change], content.length);
    } else {
      const set = changeSetFromWire([change], local.length);
      if (set) this.host.applyRemote(set);
    }
  }

  private send(): void {
    if (this.inflight || !this.pending || this.resyncing || !this.rpc?.connected) {
      this.checkIdle();
      return;
    }
    const rpc = this.rpc;
    const sent = this.pending;
    const sentPath = this.path;
    this.inflight = sent;
    this.inflightVersion = this.version;
    this.pending = null;
    rpc.call("file:edit", { path: this.path, version: this.version, changes: changeSetToWire(sent) }).then(
      (result) => {
        if (this.inflight === null) return; // a resync took over meanwhile
        this.version = result.version;
        this.inflight = null;
        this.send();
        this.host.changed();
      },
      (error: unknown) => {
        if (this.inflight === null) return;
        if (error instanceof RpcClosedError) return; // the reconnect resynchronizes
        if (this.path !== sentPath) {
          // The buffer moved (its file was renamed) while this was on its way: same version, new name.
          this.pending = this.pending ? this.inflight.compose(this.pending) : this.inflight;
          this.inflight = null;
          this.send();
          return;
        }
        if (error instanceof RpcError && error.code === ErrorCode.Conflict && this.version > this.inflightVersion) {
          // Another page's change got in first and ours is already rebased over it: send it again.
          this.pending = this.pending ? this.inflight.compose(this.pending) : this.inflight;
          this.inflight = null;
          this.send();
          return;
        }
        if (!(error instanceof RpcError && error.code === ErrorCode.Conflict)) {
          // Refused for what it is (a character the file's encoding cannot hold, a limit): sending it
          // again would be refused again, so the worker's text is taken back and the user told.
          this.host.problem(`Edit refused: ${error instanceof Error ? error.message : String(error)}`);
          this.inflight = null;
          this.pending = null;
          this.editedDuringResync = false;
        }
        void this.resync().catch(() => undefined);
      },
    );
  }

  private checkIdle(): void {
    if (this.unconfirmed || this.resyncing) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
