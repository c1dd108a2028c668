/* SPDX-License-Identifier: MIT */
/* The settings service: the page's preferences (theme, font size, tab width, word wrap) and the
 * folders expanded in its explorer, held by the worker like the rest of the user's state, so that
 * every page of the user shows the same and a reload or a new browser finds them again.
 *
 * settings:get answers them; settings:set takes some of them, checks every one, keeps them in
 * STATE_DIR/settings.json (a temporary file renamed over it) and tells every connection with
 * settings:changed. Known keys only, each with its type and range, the whole at most
 * SETTINGS_MAX_BYTES: a page cannot make the worker store anything else. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus.h"
#include "json.h"
#include "jsonrpc.h"
#include "log.h"
#include "macro.h"
#include "service.h"

#define SETTINGS_FILE          "settings.json"
#define SETTINGS_MAX_BYTES     (64u * 1024u)
#define MAX_EXPANDED_FOLDERS   512u
#define MAX_FOLDER_PATH        4096u
#define EVENT_SETTINGS_CHANGED "settings:changed"

static const char *const themes[] = {"dark", "light", "high-contrast"};

typedef struct Settings {
        Bus *bus;
        char *dir;
        cJSON *current; /* every key, defaults filled in */
} Settings;

static cJSON *settings_defaults(void)
{
        _cleanup_json_ cJSON *s = cJSON_CreateObject();

        if (!s || !cJSON_AddStringToObject(s, "theme", "dark") ||
            !cJSON_AddNumberToObject(s, "fontSize", 13) || !cJSON_AddNumberToObject(s, "tabWidth", 4) ||
            !cJSON_AddBoolToObject(s, "wordWrap", false) || !cJSON_AddArrayToObject(s, "expandedFolders"))
                return NULL;
        return TAKE_PTR(s);
}

/* Check one member; NULL if it is acceptable, else why not. */
static const char *check_member(const cJSON *item)
{
        const char *key = item->string;
        uint64_t n;

        if (streq(key, "theme")) {
                if (!cJSON_IsString(item))
                        return "theme must be a string";
                for (size_t i = 0; i < ELEMENTSOF(themes); i++)
                        if (streq(item->valuestring, themes[i]))
                                return NULL;
                return "theme must be dark, light or high-contrast";
        }
        if (streq(key, "fontSize"))
                return json_get_uint(item, 32, &n) && n >= 8 ? NULL
                                                             : "fontSize must be an integer from 8 to 32";
        if (streq(key, "tabWidth"))
                return json_get_uint(item, 16, &n) && n >= 1 ? NULL
                                                             : "tabWidth must be an integer from 1 to 16";
        if (streq(key, "wordWrap"))
                return cJSON_IsBool(item) ? NULL : "wordWrap must be true or false";
        if (streq(key, "expandedFolders")) {
                const cJSON *p;
                if (!cJSON_IsArray(item))
                        return "expandedFolders must be an array of paths";
                if ((unsigned)cJSON_GetArraySize(item) > MAX_EXPANDED_FOLDERS)
                        return "expandedFolders holds at most 512 paths";
                cJSON_ArrayForEach(p, item)
                {
                        if (!cJSON_IsString(p) || p->valuestring[0] != '/' ||
                            strlen(p->valuestring) > MAX_FOLDER_PATH)
                                return "expandedFolders must hold absolute paths of at most 4096 bytes";
                }
                return NULL;
        }
        return "unknown setting";
}

/* A copy of base with every member of changes put in; -EINVAL with *ret_reason if one is not
 * acceptable, -E2BIG if the result is too large. */
static int settings_merge(const cJSON *base, const cJSON *changes, cJSON **ret, const char **ret_reason,
                          const char **ret_key)
{
        _cleanup_json_ cJSON *merged = cJSON_Duplicate(base, true);
        _cleanup_free_ char *text = NULL;
        const cJSON *item;
        size_t len;

        if (!merged)
                return -ENOMEM;
        cJSON_ArrayForEach(item, changes)
        {
                const char *reason = check_member(item);
                cJSON *copy;
                if (reason) {
                        *ret_reason = reason;
                        *ret_key = item->string;
                        return -EINVAL;
                }
                copy = cJSON_Duplicate(item, true);
                if (!copy || !cJSON_ReplaceItemInObjectCaseSensitive(merged, item->string, copy)) {
                        cJSON_Delete(copy);
                        return -ENOMEM;
                }
        }
        text = json_print(merged, &len);
        if (!text)
                return -ENOMEM;
        if (len > SETTINGS_MAX_BYTES)
                return -E2BIG;
        *ret = TAKE_PTR(merged);
        return 0;
}

/* Written whole to a temporary file and renamed over the old one: a crash leaves one or the other. */
static int settings_store(Settings *s)
{
        _cleanup_free_ char *text = NULL, *tmp = NULL, *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t len;
        ssize_t n;

        text = json_print(s->current, &len);
        if (!text || asprintf(&tmp, "%s/." SETTINGS_FILE ".tmp", s->dir) < 0 ||
            asprintf(&path, "%s/" SETTINGS_FILE, s->dir) < 0)
                return -ENOMEM;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0)
                return -errno;
        n = write(fd, text, len);
        if (n < 0)
                return -errno;
        if ((size_t)n != len)
                return -EIO;
        if (rename(tmp, path) < 0)
                return -errno;
        return 0;
}

static void settings_load(Settings *s)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_json_ cJSON *saved = NULL, *merged = NULL;
        _cleanup_close_ int fd = -EBADF;
        char buf[SETTINGS_MAX_BYTES + 1];
        const char *reason = NULL, *key = NULL;
        ssize_t n;

        if (asprintf(&path, "%s/" SETTINGS_FILE, s->dir) < 0)
                return (void)log_oom();
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0) {
                if (errno != ENOENT)
                        log_warning_errno(errno, "Cannot read %s, using the default settings: %m", path);
                return;
        }
        n = read(fd, buf, sizeof(buf));
        if (n < 0 || (size_t)n > SETTINGS_MAX_BYTES) {
                log_warning("Cannot read %s (unreadable or too large), using the default settings.", path);
                return;
        }
        buf[n] = 0;
        if (json_prescan(buf, (size_t)n, 8, 4 * MAX_EXPANDED_FOLDERS) != JSON_SCAN_OK ||
            !(saved = json_parse(buf, (size_t)n)) || !cJSON_IsObject(saved) ||
            settings_merge(s->current, saved, &merged, &reason, &key) < 0) {
                log_warning("%s is not valid (%s%s%s), using the default settings.", path, key ? key : "",
                            key ? ": " : "", reason ? reason : "not a JSON object of settings");
                return;
        }
        cJSON_Delete(s->current);
        s->current = TAKE_PTR(merged);
}

static void on_settings_get(BusCall *call, const cJSON *params, void *userdata)
{
        Settings *s = userdata;
        cJSON *r = cJSON_CreateObject();
        cJSON *copy = cJSON_Duplicate(s->current, true);

        if (!r || !copy || !cJSON_AddItemToObject(r, "settings", copy)) {
                cJSON_Delete(copy);
                cJSON_Delete(r);
                (void)bus_call_error_oom(call);
                return;
        }
        bus_call_reply(call, r);
}

static void on_settings_set(BusCall *call, const cJSON *params, void *userdata)
{
        Settings *s = userdata;
        const cJSON *changes = NULL;
        const JsonField fields[] = {
            {"settings", JSON_FIELD_OBJECT, true, &changes},
        };
        _cleanup_json_ cJSON *merged = NULL;
        const char *reason = NULL, *key = NULL;
        cJSON *r, *event, *data;
        int k;

        if (bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0)
                return;
        k = settings_merge(s->current, changes, &merged, &reason, &key);
        if (k == -EINVAL) {
                data = cJSON_CreateObject();
                if (data && (!cJSON_AddStringToObject(data, "reason", reason) ||
                             !cJSON_AddStringToObject(data, "setting", key))) {
                        cJSON_Delete(data);
                        data = NULL;
                }
                bus_call_error(call, RPC_INVALID_PARAMS, "Invalid params", data);
                return;
        }
        if (k == -E2BIG) {
                data = cJSON_CreateObject();
                if (data && !cJSON_AddNumberToObject(data, "limit", SETTINGS_MAX_BYTES)) {
                        cJSON_Delete(data);
                        data = NULL;
                }
                bus_call_error(call, RPC_TOO_LARGE, "Settings too large", data);
                return;
        }
        if (k < 0) {
                (void)bus_call_error_oom(call);
                return;
        }
        if (cJSON_Compare(merged, s->current, true)) {
                /* Nothing changed: nothing to write or tell. */
                r = cJSON_CreateObject();
                if (!r || !cJSON_AddItemToObject(r, "settings", TAKE_PTR(merged))) {
                        cJSON_Delete(r);
                        (void)bus_call_error_oom(call);
                        return;
                }
                bus_call_reply(call, r);
                return;
        }

        cJSON *old = s->current;
        s->current = TAKE_PTR(merged);
        k = settings_store(s);
        if (k < 0) {
                /* Not kept, so not taken: the page keeps what it had and says why. */
                cJSON_Delete(s->current);
                s->current = old;
                log_warning_errno(k, "Cannot write the settings into %s: %m", s->dir);
                bus_call_error_errno(call, k, s->dir);
                return;
        }
        cJSON_Delete(old);

        r = cJSON_CreateObject();
        event = cJSON_CreateObject();
        if (!r || !event || !cJSON_AddItemToObject(r, "settings", cJSON_Duplicate(s->current, true)) ||
            !cJSON_AddItemToObject(event, "settings", cJSON_Duplicate(s->current, true))) {
                cJSON_Delete(r);
                cJSON_Delete(event);
                (void)bus_call_error_oom(call);
                return;
        }
        bus_call_reply(call, r);
        bus_publish(s->bus, EVENT_SETTINGS_CHANGED, event, BUS_ALL_CLIENTS, 0);
}

static int settings_start(const ServiceContext *ctx, void **ret)
{
        Settings *s = calloc(1, sizeof(Settings));
        int r;

        if (!s)
                return -ENOMEM;
        s->bus = ctx->bus;
        s->dir = strdup(ctx->config->state_dir);
        s->current = settings_defaults();
        if (!s->dir || !s->current) {
                free(s->dir);
                cJSON_Delete(s->current);
                free(s);
                return -ENOMEM;
        }
        *ret = s;
        /* The workspace service, started before this one, has made the state directory. */
        settings_load(s);
        r = bus_serve(ctx->bus, "settings:get", on_settings_get, s);
        if (r >= 0)
                r = bus_serve(ctx->bus, "settings:set", on_settings_set, s);
        return r;
}

static void settings_stop(void *userdata)
{
        Settings *s = userdata;

        if (!s)
                return;
        cJSON_Delete(s->current);
        free(s->dir);
        free(s);
}

const ServiceType settings_service_type = {
    .name = "settings",
    .start = settings_start,
    .stop = settings_stop,
};
