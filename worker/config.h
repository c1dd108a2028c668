/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The worker's settings: defaults, overridden by the command line. Read-only once the loop runs. */
typedef struct WorkerConfig {
        char *listen_path; /* --listen; NULL: take fd 3 from systemd */
        char **roots;      /* workspace roots, absolute, no trailing slash; default $HOME */
        size_t n_roots;
        char *state_dir;          /* $XDG_STATE_HOME/helios or ~/.local/state/helios */
        char *home;               /* the user's home directory */
        size_t max_message;       /* bytes per JSON-RPC message, each way */
        uint64_t idle_timeout_ms; /* 0: never exit when idle */
        /* A terminal without input, output or an attached client this long is ended; 0: never. */
        uint64_t terminal_idle_timeout_ms;
        unsigned max_connections;
        unsigned max_terminals;
        uint64_t archive_idle_ms; /* a zip download not read for this long is dropped */
        size_t scrollback;        /* bytes of terminal output kept per terminal */
        char **watch_exclude;     /* directory names not watched for changes */
        size_t n_watch_exclude;
        unsigned max_watches; /* inotify watches per worker */
        size_t high_water;    /* outbound bytes queued on a connection before it counts as congested */
        uid_t *allowed_uids;  /* peers besides the worker's own uid and root */
        size_t n_allowed_uids;
        gid_t *allowed_gids; /* ... and peers whose group is one of these (the gateway's) */
        size_t n_allowed_gids;
        bool seccomp;           /* load policy/'s seccomp filter before serving anything */
        bool namespaces;        /* enter the workspace's namespaces (policy/workspace.c) first */
        bool outbound_network;  /* with them, pasta as the way out */
        int credentials_fd;     /* who answers for peers' credentials in a user namespace; -1: none */
        pid_t outer_pid;        /* this process's pid outside its workspace's PID namespace, or 0 */
        char *services_dirs[3]; /* manifests: system, admin, the user's (worker/manifest.h) */
} WorkerConfig;

#define DEFAULT_MAX_MESSAGE     (16u * 1024u * 1024u)
#define DEFAULT_IDLE_TIMEOUT_MS (10u * 60u * 1000u)
#define DEFAULT_MAX_CONNECTIONS 64u
#define DEFAULT_MAX_TERMINALS   32u
#define DEFAULT_ARCHIVE_IDLE_MS (60u * 1000u)
#define DEFAULT_SCROLLBACK      (1024u * 1024u)
#define DEFAULT_MAX_WATCHES     32768u
#define DEFAULT_HIGH_WATER      (1024u * 1024u)

/* Parse argv into a new config. Returns 0 on success, 1 if --help/--version was handled (exit 0),
 * or -errno after printing the problem. */
int worker_config_parse(int argc, char **argv, WorkerConfig **ret);
WorkerConfig *worker_config_free(WorkerConfig *c);
