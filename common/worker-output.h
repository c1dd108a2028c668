/* SPDX-License-Identifier: MIT */
#pragma once

#include <uv.h>

/* The standard output and error of a worker, relayed into this process's log line by line, each line
 * tagged with the worker's user. A worker never holds a descriptor of the process that started it: it
 * writes into a pipe of its own, and this end reads it.
 *
 * Everything is bounded: a line is logged cut at WORKER_OUTPUT_MAX_LINE bytes (one over 16 KiB only
 * as a mark that it was there), control characters are
 * replaced, and past WORKER_OUTPUT_LINES lines or WORKER_OUTPUT_BYTES bytes in a second the relay
 * stops reading until the next second, so a worker that writes without end waits on its own pipe and
 * the reader never spends more than that on it or blocks. */

#define WORKER_OUTPUT_MAX_LINE 1024
#define WORKER_OUTPUT_LINES    50
#define WORKER_OUTPUT_BYTES    (16 * 1024)

typedef struct WorkerOutput WorkerOutput;

/* Start relaying the read end fd of a pipe (taken over: closed on failure too). tag: the user name,
 * or NULL. */
int worker_output_new(uv_loop_t *loop, int fd, const char *tag, WorkerOutput **ret);
/* Log what is left of an unfinished line, close the handles; the memory goes once the loop is done
 * with them. NULL is a no-op. */
void worker_output_close(WorkerOutput *o);
