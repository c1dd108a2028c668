/* SPDX-License-Identifier: MIT */
#pragma once

#include <uv.h>

/* The file-system service in a process of its own: joined to the worker's bus over in_fd and out_fd
 * (docs/services.md, "The file system out of process"), serving once the worker has described the
 * workspace. */
typedef struct FsRemote FsRemote;

/* Called once when the service stops, whatever the reason (the worker went, fs_remote_stop(), an
 * error); the loop then runs out once the handles have closed. */
typedef void (*FsRemoteStoppedFn)(void *userdata);

/* *ret is set even on failure (then already stopped), for fs_remote_free() after the loop. */
int fs_remote_new(uv_loop_t *loop, int in_fd, int out_fd, FsRemoteStoppedFn stopped, void *userdata,
                  FsRemote **ret);
void fs_remote_stop(FsRemote *f);
/* Why it stopped: 0, or the -errno of the failure. */
int fs_remote_error(const FsRemote *f);
/* Once the loop has no handles left. */
FsRemote *fs_remote_free(FsRemote *f);
