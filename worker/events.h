/* SPDX-License-Identifier: MIT */
#pragma once

/* Internal events (published BUS_INTERNAL) by which services learn of each other's state without
 * calling each other. Client-facing notifications are named in DESIGN.md. */

/* workspace → fs (watch the project), terminal (default cwd). {root} */
#define EVENT_PROJECT_LOADED "project:loaded"

/* terminal → workspace (state:updated), server (idle exit, status). {terminals:[{terminalId, cols, rows,
 * pid, alive, exitCode?, signal?}]} — the whole list, every time it changes. */
#define EVENT_TERMINALS_CHANGED "terminal:changed"

/* fs → workspace: a name the fs service itself renamed (fs:rename) or removed (fs:delete), so that
 * open buffers follow. The file watcher does not report the worker's own changes. {from, to, oldTag?,
 * tag?} (the tags of a regular file before and after: a rename changes its ctime) and {path}, the
 * paths as the request named them (normalized). */
#define EVENT_FS_RENAMED "fs:renamed"
#define EVENT_FS_DELETED "fs:deleted"

/* Client-facing events services also consume. */
#define EVENT_STATE_UPDATED        "state:updated"
#define EVENT_FILE_CHANGED_ON_DISK "file:changed_on_disk"
#define EVENT_FILE_EDITED          "file:edited"
#define EVENT_FILE_RENAMED         "file:renamed"
