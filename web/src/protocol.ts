// The worker's protocol as the page uses it (docs/protocol.md is the reference).

export const ErrorCode = {
  NotFound: -32001,
  Denied: -32002,
  Conflict: -32003,
  TooLarge: -32004,
  Exists: -32005,
  WrongType: -32006,
  NoTerminal: -32010,
  Unsaved: -32020,
} as const;

/** Text is always UTF-8 on the wire; "iso-8859-1" and "windows-1252" name the encoding a text file
 * is saved in. */
export type TextEncoding = "utf-8" | "iso-8859-1" | "windows-1252";
export type Encoding = TextEncoding | "base64";

export interface OpenFileState {
  path: string;
  version: number;
  dirty: boolean;
  diskChanged: boolean;
}

export interface TerminalInfo {
  terminalId: string;
  cols: number;
  rows: number;
  pid: number;
  alive: boolean;
  exitCode?: number | null;
  signal?: number | string | null;
  title?: string;
}

export interface WorkspaceState {
  root: string | null;
  openFiles: OpenFileState[];
  terminals: TerminalInfo[];
}

export interface Change {
  from: number;
  to: number;
  insert: string;
}

export interface OpenedFile {
  path: string;
  content: string;
  encoding: Encoding;
  version: number;
  tag: string;
  dirty: boolean;
  diskChanged?: boolean;
}

export interface DirEntry {
  name: string;
  type: "file" | "dir" | "symlink" | "other";
  size: number;
  mtime: number;
}

export interface WorkerInfo {
  name: string;
  version: string;
  pid: number;
  uid: number;
  home: string;
  stateDir: string;
  roots: string[];
}

type Empty = Record<string, never>;

export interface Methods {
  [method: string]: { params: unknown; result: unknown };
  "worker:info": { params: Empty; result: WorkerInfo };
  "workspace:state": { params: Empty; result: WorkspaceState };
  "project:load": { params: { root: string }; result: WorkspaceState };
  "file:open": { params: { path: string }; result: OpenedFile };
  "file:edit": { params: { path: string; version: number; changes: Change[] }; result: { version: number } };
  "file:save": { params: { path: string; force?: boolean }; result: { version: number; tag: string } };
  "file:revert": { params: { path: string }; result: OpenedFile };
  "file:close": { params: { path: string; discard?: boolean }; result: Empty };
  "fs:read_file": {
    params: { path: string; encoding?: Encoding | "text" };
    result: { path: string; content: string; encoding: Encoding; size: number; mtime: number; tag: string };
  };
  "preview:ports": { params: Empty; result: { ports: Array<{ port: number; ipv4: boolean; ipv6: boolean }>; truncated: boolean } };
  "settings:get": { params: Empty; result: { settings: import("./settings").SettingsValues } };
  "settings:set": {
    params: { settings: Partial<import("./settings").SettingsValues> };
    result: { settings: import("./settings").SettingsValues };
  };
  "fs:upload_begin": { params: { path: string; size: number; overwrite?: boolean }; result: { uploadId: number; path: string } };
  "fs:upload_chunk": { params: { uploadId: number; offset: number; data: string }; result: { received: number } };
  "fs:upload_commit": { params: { uploadId: number }; result: { path: string; size: number } };
  "fs:read_range": {
    params: { path: string; offset: number; length: number };
    result: { path: string; size: number; offset: number; data: string; tag: string };
  };
  "fs:upload_abort": { params: { uploadId: number }; result: Empty };
  "fs:archive_begin": { params: { path: string }; result: { archiveId: number; path: string; name: string } };
  "fs:archive_read": {
    params: { archiveId: number };
    result: { archiveId: number; offset: number; data: string; done: boolean; files: number; skipped: number };
  };
  "fs:archive_cancel": { params: { archiveId: number }; result: Empty };
  "fs:write_file": {
    params: { path: string; content: string; encoding?: Encoding; expectedTag?: string };
    result: { path: string; tag: string; size: number; mtime: number };
  };
  "fs:create_directory": { params: { path: string; recursive?: boolean }; result: { path: string } };
  "fs:rename": { params: { from: string; to: string; overwrite?: boolean }; result: { from: string; to: string } };
  "fs:delete": { params: { path: string; recursive?: boolean }; result: { path: string } };
  "fs:stat": { params: { path: string }; result: { path: string; type: string; size: number; mtime: number } };
  "fs:list_directory": {
    params: { path: string };
    result: { path: string; entries: DirEntry[]; truncated?: boolean; skipped?: number };
  };
  "terminal:create": {
    params: { cols: number; rows: number; cwd?: string; command?: string | string[] };
    result: { terminalId: string };
  };
  "terminal:data_in": { params: { terminalId: string; data: string }; result: Empty };
  "terminal:resize": { params: { terminalId: string; cols: number; rows: number }; result: Empty };
  "terminal:close": { params: { terminalId: string }; result: Empty };
  "terminal:list": { params: Empty; result: { terminals: TerminalInfo[] } };
  "terminal:attach": { params: { terminalId: string }; result: TerminalInfo & { scrollback: string } };
  "terminal:detach": { params: { terminalId: string }; result: Empty };
  "terminal:pause": { params: { terminalId: string }; result: Empty };
  "terminal:resume": { params: { terminalId: string }; result: Empty };
  "search:text": { params: SearchTextParams; result: { searchId: string } };
  "search:cancel": { params: { searchId: string }; result: Empty };
  "search:files": { params: { query: string; maxResults?: number }; result: { files: string[] } };
}

export interface SearchTextParams {
  query: string;
  regex?: boolean;
  caseSensitive?: boolean;
  include?: string[];
  exclude?: string[];
  maxResults?: number;
}

/** One match: `path` below the project's root, `line` 1-based, `column` and `length` in UTF-16 units
 * of the line; `text` is the line, or a window of a long one starting at `textColumn`. */
export interface SearchMatch {
  path: string;
  line: number;
  column: number;
  length?: number;
  text: string;
  textColumn?: number;
}

export interface Notifications {
  [method: string]: unknown;
  "state:updated": WorkspaceState;
  /** `encoding` comes with a whole-buffer replacement from disk (revert, reload). */
  "file:edited": { path: string; version: number; changes: Change[]; encoding?: Encoding };
  "file:renamed": { path: string; oldPath: string; version: number };
  "file:changed_on_disk": { path: string; kind: "created" | "modified" | "deleted" | "moved"; oldPath?: string };
  "settings:changed": { settings: import("./settings").SettingsValues };
  "fs:watch_error": { path: string; errno: string; message: string; limit?: number };
  "terminal:data_out": { terminalId: string; data: string };
  "terminal:exit": { terminalId: string; exitCode: number | null; signal: number | string | null };
  "gateway:worker_lost": Record<string, unknown>;
  "search:results": { searchId: string; matches: SearchMatch[] };
  "search:done": { searchId: string; files: number; matches: number; truncated: boolean; timedOut?: boolean; cancelled?: boolean };
}
