// Uploads: files from the user's computer into a folder of the project, in bounded chunks
// (fs:upload_begin / chunk / commit), with a progress bar and a cancel button each. The worker
// names a file only once it is whole, so a cancelled or broken upload leaves nothing.

import type { Rpc } from "./connection";
import { ErrorCode } from "./protocol";
import { RpcError } from "./rpc";
import { ask, basename, h } from "./dom";
import { messageOf } from "./editor";

/** Bytes per chunk: well under the worker's 1 MiB, so each message stays small. */
export const UPLOAD_CHUNK = 512 * 1024;

interface Job {
  file: File;
  path: string;
  row: HTMLElement;
  bar: HTMLProgressElement;
  cancelled: boolean;
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export class Uploads {
  rpc: Rpc | null = null;
  private readonly queue: Job[] = [];
  private running = false;

  constructor(
    private readonly list: HTMLElement,
    private readonly notify: (message: string, kind?: "info" | "error") => void,
    private readonly uploaded: (path: string) => void,
  ) {}

  /** Upload `files` into the folder `dir`, one after the other. */
  add(dir: string, files: Iterable<File>): void {
    for (const file of files) {
      const path = `${dir === "/" ? "" : dir}/${file.name}`;
      const bar = h("progress", { class: "upload-bar", max: Math.max(1, file.size), value: 0 });
      const cancel = h("button", { class: "upload-cancel", title: `Cancel the upload of ${file.name}`, "aria-label": `Cancel ${file.name}`, text: "×" });
      const row = h("li", { class: "upload", "data-path": path }, h("span", { class: "upload-name", text: file.name }), bar, cancel);
      const job: Job = { file, path, row, bar, cancelled: false };
      cancel.addEventListener("click", () => {
        job.cancelled = true;
        row.remove();
        this.updateList();
      });
      this.list.append(row);
      this.queue.push(job);
    }
    this.updateList();
    void this.run();
  }

  private updateList(): void {
    this.list.hidden = !this.list.childElementCount;
  }

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (let job = this.queue.shift(); job; job = this.queue.shift()) {
        if (!job.cancelled) await this.one(job);
        job.row.remove();
        this.updateList();
      }
    } finally {
      this.running = false;
    }
  }

  private async one(job: Job): Promise<void> {
    const rpc = this.rpc;
    if (!rpc) return this.notify(`Not connected: ${job.file.name} was not uploaded.`, "error");
    let uploadId: number;
    try {
      uploadId = await this.begin(rpc, job, false);
    } catch (error) {
      if (!(error instanceof RpcError && error.code === ErrorCode.Exists)) {
        this.notify(`Cannot upload ${job.file.name}: ${messageOf(error)}`, "error");
        return;
      }
      const choice = await ask(`Replace ${job.file.name}?`, `${job.path} exists. Uploading replaces it.`, [
        { label: "Replace", value: "replace", primary: true },
        { label: "Skip", value: "skip" },
      ]);
      if (choice !== "replace" || job.cancelled) return;
      try {
        uploadId = await this.begin(rpc, job, true);
      } catch (again) {
        this.notify(`Cannot upload ${job.file.name}: ${messageOf(again)}`, "error");
        return;
      }
    }
    try {
      for (let offset = 0; offset < job.file.size; offset += UPLOAD_CHUNK) {
        if (job.cancelled) {
          await rpc.call("fs:upload_abort", { uploadId }).catch(() => undefined);
          this.notify(`Upload of ${job.file.name} cancelled.`);
          return;
        }
        const bytes = new Uint8Array(await job.file.slice(offset, offset + UPLOAD_CHUNK).arrayBuffer());
        await rpc.call("fs:upload_chunk", { uploadId, offset, data: toBase64(bytes) });
        job.bar.value = offset + bytes.length;
      }
      if (job.cancelled) {
        await rpc.call("fs:upload_abort", { uploadId }).catch(() => undefined);
        return;
      }
      const done = await rpc.call("fs:upload_commit", { uploadId });
      this.notify(`Uploaded ${basename(done.path)}`);
      this.uploaded(done.path);
    } catch (error) {
      await rpc.call("fs:upload_abort", { uploadId }).catch(() => undefined);
      this.notify(`Upload of ${job.file.name} failed: ${messageOf(error)}`, "error");
    }
  }

  /** Save the folder `path` as a zip file, made by the worker piece by piece as it is read
   * (fs:archive_begin / read); its row shows the bytes so far and cancels it. */
  async downloadZip(path: string): Promise<void> {
    const rpc = this.rpc;
    if (!rpc) return this.notify("Not connected.", "error");
    let begun: { archiveId: number; name: string };
    try {
      begun = await rpc.call("fs:archive_begin", { path });
    } catch (error) {
      return this.notify(`Cannot download ${basename(path)}: ${messageOf(error)}`, "error");
    }
    const bar = h("progress", { class: "upload-bar" });
    const size = h("span", { class: "download-size", text: "0 KB" });
    const cancel = h("button", { class: "upload-cancel", title: `Cancel the download of ${begun.name}`, "aria-label": `Cancel ${begun.name}`, text: "×" });
    const row = h("li", { class: "upload download", "data-path": path }, h("span", { class: "upload-name", text: begun.name }), bar, size, cancel);
    let cancelled = false;
    cancel.addEventListener("click", () => {
      cancelled = true;
    });
    this.list.append(row);
    this.updateList();
    const parts: Uint8Array[] = [];
    let received = 0;
    try {
      for (;;) {
        if (cancelled) {
          await rpc.call("fs:archive_cancel", { archiveId: begun.archiveId }).catch(() => undefined);
          this.notify(`Download of ${begun.name} cancelled.`);
          return;
        }
        const piece = await rpc.call("fs:archive_read", { archiveId: begun.archiveId });
        const raw = atob(piece.data);
        const bytes = new Uint8Array(raw.length);
        for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
        parts.push(bytes);
        received += bytes.length;
        size.textContent = `${Math.ceil(received / 1024).toLocaleString()} KB · ${piece.files} files`;
        if (piece.done) {
          if (piece.skipped) this.notify(`${begun.name}: ${piece.skipped} symbolic links and special files were left out.`);
          break;
        }
      }
      const url = URL.createObjectURL(new Blob(parts as BlobPart[], { type: "application/zip" }));
      const a = h("a", { href: url, download: begun.name });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (error) {
      this.notify(`Download of ${begun.name} failed: ${messageOf(error)}`, "error");
    } finally {
      row.remove();
      this.updateList();
    }
  }

  private async begin(rpc: Rpc, job: Job, overwrite: boolean): Promise<number> {
    const r = await rpc.call("fs:upload_begin", { path: job.path, size: job.file.size, overwrite });
    return r.uploadId;
  }
}

/** Save a file of the project on the user's computer, read in 512 KiB pieces (fs:read_range); a
 * file that changes meanwhile is refused rather than saved as a mix. */
export async function download(rpc: Rpc, path: string): Promise<void> {
  const parts: Uint8Array[] = [];
  let tag: string | null = null;
  for (let offset = 0; ; ) {
    const r = await rpc.call("fs:read_range", { path, offset, length: UPLOAD_CHUNK });
    if (tag !== null && r.tag !== tag) throw new Error("it changed while it was being downloaded; try again");
    tag = r.tag;
    const raw = atob(r.data);
    if (!raw.length) break;
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    parts.push(bytes);
    offset += bytes.length;
    if (offset >= r.size) break;
  }
  const url = URL.createObjectURL(new Blob(parts as BlobPart[], { type: "application/octet-stream" }));
  const a = h("a", { href: url, download: basename(path) });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
