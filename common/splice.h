/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Two connected stream sockets joined into one byte stream, each way, on a libuv loop: the worker's
 * preview tunnel (client <-> a port of the workspace) and the gateway's preview connections (browser <->
 * that tunnel). Each direction holds at most SPLICE_HIGH_WATER bytes (plus one read) before its source is
 * no longer read, so a side that does not read slows the other instead of growing the process. An end of
 * stream is passed on as a shutdown of the other side's writing; the splice closes once both directions
 * have ended, or at once when either side fails. */

typedef struct Splice Splice;

#define SPLICE_HIGH_WATER (256u * 1024u)
#define SPLICE_READ_SIZE  (64u * 1024u)
#define SPLICE_UNLIMITED  UINT64_MAX

/* Both sides are closed; the splice is freed after this returns. */
typedef void (*SpliceClosedFn)(void *userdata);

/* A filter of b's first bytes (an HTTP response head, say) before they reach a. It is given the bytes
 * held so far, at most SPLICE_FILTER_MAX, and returns -errno to end the splice, 0 when it needs more, or
 * n > 0: the first n bytes are dealt with, *ret_out (malloc'ed, *ret_len bytes; NULL for nothing) goes to
 * a in their place, and *ret_done says whether it has finished: what follows then passes as it is. */
#define SPLICE_FILTER_MAX (64u * 1024u)
typedef int (*SpliceFilterFn)(const char *data, size_t len, char **ret_out, size_t *ret_len, bool *ret_done,
                              void *userdata);

/* Join fd_a and fd_b (Unix or TCP stream sockets; both taken, whatever the outcome). a_pending goes to b
 * first. a_limit: bytes of a (a_pending included) passed to b; after that a is still read, and one more
 * byte from it ends the splice (SPLICE_UNLIMITED: no limit). b_filter (NULL: none) sees b's bytes first,
 * with userdata. closed runs once, from the loop, when both are closed, also after a failure here. */
int splice_new(uv_loop_t *loop, int fd_a, int fd_b, const char *a_pending, size_t n_pending,
               uint64_t a_limit, SpliceFilterFn b_filter, SpliceClosedFn closed, void *userdata,
               Splice **ret);
/* Close both sides now; closed still runs. */
void splice_close(Splice *s);
