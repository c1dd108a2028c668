/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* The text of one open file: valid UTF-8 without NUL bytes, addressed in UTF-16 code units (the
 * browser's string unit), kept in a gap buffer so that typing costs what the distance from the last
 * edit costs, not what the document costs.
 *
 * An edit is a transaction: doc_edit() applies a list of changes in order, each against the text the
 * previous one left, all or nothing. A successful doc_edit() stays open until doc_commit() or
 * doc_rollback(), so the caller can make the edit durable first and undo it if that fails. */
typedef struct Document Document;

typedef struct DocChange {
        uint64_t from, to; /* UTF-16 code units */
        const char *insert;
        size_t insert_len; /* bytes */
} DocChange;

/* Copy s[0..n) into a new document. -EINVAL unless it is valid UTF-8 without NUL bytes. */
int doc_new(const char *s, size_t n, Document **ret);
Document *doc_free(Document *d);

size_t doc_size(const Document *d);     /* bytes */
size_t doc_length16(const Document *d); /* UTF-16 code units */

/* The text as one NUL-terminated string (valid until the next change). Moves the gap to the end. */
const char *doc_text(Document *d);
/* The text as (at most) two pieces, without moving anything: for writev(). Returns the count. */
int doc_segments(const Document *d, struct iovec ret[2]);
bool doc_equal(const Document *d, const char *s, size_t n);

/* Apply changes[0..n) in order.
 *   -ERANGE  a change has from > to, or reaches past the end of the text it applies to
 *   -EILSEQ  an offset falls between the halves of a surrogate pair, or an insert is not valid
 *            UTF-8 without NUL
 *   -EFBIG   the text would grow beyond max_size bytes
 *   -E2BIG   the edit would cost more than max_cost bytes of walking and moving (unordered changes
 *            all over a large text): a bound on what one request can make the worker do
 *   -ENOMEM
 * On failure nothing has changed and *ret_failed (if given) is the index of the offending change.
 * On success *ret_cost (if given) is the work done, and the edit waits for doc_commit() or
 * doc_rollback(); another doc_edit() commits the previous one implicitly. */
int doc_edit(Document *d, const DocChange *changes, size_t n, size_t max_size, size_t max_cost,
             size_t *ret_cost, size_t *ret_failed);
void doc_commit(Document *d);
void doc_rollback(Document *d);
