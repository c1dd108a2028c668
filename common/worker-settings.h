/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* The workers' settings an admin gives every user: the [worker] section of /etc/helios/helios.conf
 * (helios.conf(5)), and for one user WORKER_SETTINGS_USER_DIR/USER.conf beside it, which holds the same
 * keys without a section and wins. Every worker reads them itself at its start, as its user: the files
 * are root's (or the reader's own), readable by all and writable by nobody else. helios-gateway
 * --check-config checks the section too. */

#define HELIOS_CONF_PATH "/etc/helios/helios.conf"
/* The sections of helios.conf besides the gateway's settings, which come first. */
#define HELIOS_CONF_SECTIONS     ((const char *const[]){"worker", NULL})
#define WORKER_SETTINGS_SECTION  "worker"
#define WORKER_SETTINGS_USER_DIR "worker.d"

typedef enum WorkerSettingType {
        WORKER_SETTING_DURATION, /* milliseconds; "90s", "10min", "2h", or seconds */
        WORKER_SETTING_SIZE,     /* bytes; K, M, G suffixes */
        WORKER_SETTING_COUNT,
} WorkerSettingType;

typedef enum WorkerSettingId {
        WORKER_SETTING_IDLE_TIMEOUT,
        WORKER_SETTING_TERMINAL_IDLE_TIMEOUT,
        WORKER_SETTING_MAX_TERMINALS,
        WORKER_SETTING_MAX_CONNECTIONS,
        WORKER_SETTING_SCROLLBACK,
        WORKER_SETTING_MAX_WATCHES,
        WORKER_SETTING_HIGH_WATER,
        _WORKER_SETTING_MAX,
        _WORKER_SETTING_INVALID = -1,
} WorkerSettingId;

typedef struct WorkerSetting {
        const char *key;    /* in the file */
        const char *option; /* helios-worker's option of the same meaning, which wins */
        WorkerSettingType type;
        uint64_t min, max;
} WorkerSetting;

extern const WorkerSetting worker_settings[_WORKER_SETTING_MAX];

typedef struct WorkerSettings {
        uint64_t v[_WORKER_SETTING_MAX];
        bool set[_WORKER_SETTING_MAX]; /* given by a file */
} WorkerSettings;

/* Read path's [worker] section, then, for user (NULL: none), USER.conf in WORKER_SETTINGS_USER_DIR beside
 * path. A missing file sets nothing. A file in error (unknown key, invalid value, not root's, writable by
 * anyone else) is logged and fails: -EINVAL or -EPERM. own_ok also accepts files of the reader's own: only
 * for a path the reader's caller named (a test, a developer), never for the admin's file, or a worker
 * running as its user would honour limits that user wrote. */
int worker_settings_load(const char *path, const char *user, bool own_ok, WorkerSettings *ret);
