/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "charset.h"
#include "document.h"

/* The workspace's own database, kept in its private state directory, so that unsaved edits survive a
 * crash of the worker:
 *
 *   state.json     the project root and the list of open files; replaced atomically on each change
 *   <id>.snap      one dirty buffer: path, version, the disk tag its edits are based on, the file's
 *                  encoding (when not UTF-8) and the text (always UTF-8);
 *                  replaced atomically (temporary file + rename)
 *   <id>.log       what happened to that buffer since the snapshot: edit and tag records, each framed
 *                  with its length and a CRC-32C, appended with one write(2)
 *
 * <id> is a hash of the path, never the path itself. Every append is in the kernel before the call
 * returns (it survives kill -9); fsync(2) follows within a second on the thread pool (it survives power
 * loss), and journal_close() does it at once. A log that has grown beyond its document is compacted into
 * a new snapshot. Loading keeps every valid record up to a torn or corrupt one, and drops the rest. */
typedef struct Journal Journal;
typedef struct JournalEntry JournalEntry;

typedef struct JournalLimits {
        size_t max_entries;    /* dirty buffers restored at most */
        size_t max_doc_size;   /* bytes of text per buffer */
        size_t max_total_size; /* bytes of text over all buffers */
} JournalLimits;

/* One buffer as the journal had it. The fields are the caller's to take (set them to NULL); entry
 * stays the journal's and goes on recording that buffer, or is dropped with journal_remove(). */
typedef struct JournalDoc {
        char *path;
        char *tag;
        uint64_t version;
        Charset charset; /* what the file is saved in */
        Document *doc;
        JournalEntry *entry;
} JournalDoc;

typedef struct JournalState {
        char *root; /* NULL: no project loaded */
        char **paths;
        size_t n_paths;
} JournalState;

/* Create dir (mode 0700, parents too), lock it against a second worker (-EBUSY) and open it. */
int journal_open(uv_loop_t *loop, const char *dir, const JournalLimits *limits, Journal **ret);
/* fsync everything now and release the directory. The entries are freed; the Journal itself goes once
 * its timer has closed and fsyncs still running on the thread pool have finished. NULL is a no-op. */
void journal_close(Journal *j);

/* Read state.json and every buffer, replaying logs onto snapshots. Problems with single files are
 * logged and tolerated; only an error that leaves nothing usable is returned. */
int journal_load(Journal *j, JournalState *ret_state, JournalDoc **ret_docs, size_t *ret_n_docs);
void journal_state_done(JournalState *s);
void journal_docs_free(JournalDoc *docs, size_t n);

int journal_write_state(Journal *j, const char *root, const char *const *paths, size_t n_paths);

/* Start recording a buffer that has just become dirty: a snapshot of doc at version, for a file saved in
 * charset. */
int journal_add(Journal *j, const char *path, const char *tag, Charset charset, uint64_t version,
                const Document *doc, JournalEntry **ret);
/* Record an edit that took the buffer from version to version + 1; doc is the text after it. cost is
 * what doc_edit() reported: a log is compacted before replaying it would cost too much. */
int journal_append_edit(JournalEntry *e, uint64_t version, const DocChange *changes, size_t n_changes,
                        size_t cost, const Document *doc);
/* Record that the buffer, at version, is now based on the disk content with this tag. */
int journal_set_tag(JournalEntry *e, uint64_t version, const char *tag, const Document *doc);
/* The buffer, at version with text doc, now has another path (its file was renamed): a new snapshot
 * under that path replaces the snapshot and the log. On failure the entry keeps the old path. */
int journal_set_path(JournalEntry *e, const char *path, uint64_t version, const Document *doc);
/* Forget a buffer (saved, reverted or closed): its files are removed. */
void journal_remove(JournalEntry *e);
