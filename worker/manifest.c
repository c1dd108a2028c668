/* SPDX-License-Identifier: MIT */
#include "manifest.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "json.h"
#include "log.h"
#include "strv.h"

typedef enum ManifestLevel {
        LEVEL_SYSTEM, /* shipped with Helios or a package: PREFIX/lib/helios/services */
        LEVEL_ADMIN,  /* /etc/helios/services */
        LEVEL_USER,   /* $XDG_CONFIG_HOME/helios/services */
} ManifestLevel;

typedef struct Service {
        Manifests *owner;
        char *name;
        ManifestLevel level;
        char **argv; /* NULL-terminated */
        char **topics;
        size_t n_topics;
        char *replaces;
        const char *const *events; /* the replaced built-in's notifications, which it may publish */
        bool registered;

        uv_process_t proc;
        bool proc_open;
        uv_pipe_t err;
        bool err_open;
        char err_buf[4096];
        size_t err_len;
        uv_timer_t backoff;
        bool backoff_open;
        int child_fd; /* the service's end of the socket pair until it is spawned; -1 else */
        uint64_t starts[MANIFEST_MAX_STARTS]; /* loop times (ms) of the last starts */
        size_t n_starts;
} Service;

struct Manifests {
        uv_loop_t *loop;
        Bus *bus;
        const WorkerConfig *config;
        ManifestAdoptFn adopt;
        void *userdata;
        Service *services[MANIFEST_MAX_SERVICES];
        size_t n_services;
        bool stopping;
};

static Service *service_free(Service *s)
{
        if (!s)
                return NULL;
        free(s->name);
        strv_free(s->argv);
        for (size_t i = 0; i < s->n_topics; i++)
                free(s->topics[i]);
        free(s->topics);
        free(s->replaces);
        safe_close(s->child_fd);
        free(s);
        return NULL;
}

static bool name_valid(const char *name, size_t n)
{
        if (n == 0 || n > 64 || name[0] == '.')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!(name[i] >= 'a' && name[i] <= 'z') && !(name[i] >= 'A' && name[i] <= 'Z') &&
                    !(name[i] >= '0' && name[i] <= '9') && !strchr("-_.", name[i]))
                        return false;
        return true;
}

static int read_small_file(int dirfd, const char *name, char **ret, size_t *ret_len)
{
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        _cleanup_free_ char *buf = malloc(MANIFEST_MAX_SIZE + 1);
        size_t len = 0;

        if (fd < 0)
                return -errno;
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, buf + len, MANIFEST_MAX_SIZE + 1 - len);
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                len += (size_t)n;
                if (len > MANIFEST_MAX_SIZE)
                        return -EFBIG;
        }
        buf[len] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

/* Parse one manifest; -EINVAL (with *ret_reason) for one that is not as docs/services.md says. */
static int service_parse(const char *text, size_t len, Service *s, const char **ret_reason)
{
        _cleanup_json_ cJSON *m = json_parse(text, len);
        const cJSON *exec = NULL, *topics = NULL, *replaces = NULL, *i;
        const JsonField fields[] = {
            {"exec", JSON_FIELD_ANY, true, &exec},
            {"topics", JSON_FIELD_ANY, true, &topics},
            {"replaces", JSON_FIELD_ANY, false, &replaces},
        };
        size_t n = 0;
        int r;

        if (!cJSON_IsObject(m))
                return *ret_reason = "not a JSON object", -EINVAL;
        r = json_dispatch(m, fields, ELEMENTSOF(fields), ret_reason);
        if (r < 0)
                return r;
        if (!cJSON_IsArray(exec) || cJSON_GetArraySize(exec) < 1 ||
            (size_t)cJSON_GetArraySize(exec) > MANIFEST_MAX_ARGS)
                return *ret_reason = "'exec' must be an array of 1 to 64 strings", -EINVAL;
        s->argv = calloc((size_t)cJSON_GetArraySize(exec) + 1, sizeof(char *));
        if (!s->argv)
                return -ENOMEM;
        cJSON_ArrayForEach(i, exec)
        {
                if (!cJSON_IsString(i) || (n == 0 && i->valuestring[0] != '/'))
                        return *ret_reason = "'exec' must be strings, the first an absolute path", -EINVAL;
                if (!(s->argv[n++] = strdup(i->valuestring)))
                        return -ENOMEM;
        }
        if (!cJSON_IsArray(topics) || cJSON_GetArraySize(topics) < 1 ||
            (size_t)cJSON_GetArraySize(topics) > BUS_MAX_TOPICS_PER_SERVICE)
                return *ret_reason = "'topics' must be an array of 1 to 64 topics", -EINVAL;
        s->topics = calloc((size_t)cJSON_GetArraySize(topics), sizeof(char *));
        if (!s->topics)
                return -ENOMEM;
        cJSON_ArrayForEach(i, topics)
        {
                if (!cJSON_IsString(i) || !bus_topic_valid(i->valuestring))
                        return *ret_reason =
                                   "a topic is a method name with a ':', or a prefix of one ending in '*'",
                               -EINVAL;
                if (!(s->topics[s->n_topics++] = strdup(i->valuestring)))
                        return -ENOMEM;
        }
        if (replaces) {
                if (!cJSON_IsString(replaces))
                        return *ret_reason = "'replaces' must be the name of a built-in service", -EINVAL;
                if (!(s->replaces = strdup(replaces->valuestring)))
                        return -ENOMEM;
        }
        return 0;
}

static Service *find_service(Manifests *m, const char *name)
{
        for (size_t i = 0; i < m->n_services; i++)
                if (streq(m->services[i]->name, name))
                        return m->services[i];
        return NULL;
}

static void load_dir(Manifests *m, const char *dir, ManifestLevel level)
{
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d;
        struct dirent *de;

        if (dfd < 0) {
                if (errno != ENOENT && errno != ENOTDIR)
                        log_warning_errno(errno, "Cannot read the services in %s: %m", dir);
                return;
        }
        d = fdopendir(dfd);
        if (!d)
                return;
        dfd = -1; /* now the DIR's */
        while ((de = readdir(d))) {
                size_t n = strlen(de->d_name);
                _cleanup_free_ char *text = NULL;
                const char *reason = NULL;
                Service *s, *old;
                size_t len = 0;
                int r;

                if (n <= 5 || !streq(de->d_name + n - 5, ".json"))
                        continue;
                if (!name_valid(de->d_name, n - 5)) {
                        log_warning("Ignoring the service manifest %s/%s: not a valid name.", dir,
                                    de->d_name);
                        continue;
                }
                s = calloc(1, sizeof(Service));
                if (!s || !(s->name = strndup(de->d_name, n - 5))) {
                        free(s);
                        log_oom();
                        break;
                }
                s->owner = m;
                s->level = level;
                s->child_fd = -1;
                r = read_small_file(dirfd(d), de->d_name, &text, &len);
                if (r >= 0)
                        r = service_parse(text, len, s, &reason);
                if (r >= 0 && s->replaces && level == LEVEL_USER)
                        r = -EPERM,
                        reason = "only an administrator's manifest may replace a built-in service";
                if (r < 0) {
                        if (reason)
                                log_warning("Ignoring the service manifest %s/%s: %s.", dir, de->d_name,
                                            reason);
                        else
                                log_warning_errno(r, "Ignoring the service manifest %s/%s: %m", dir,
                                                  de->d_name);
                        service_free(s);
                        continue;
                }
                old = find_service(m, s->name);
                if (old && level == LEVEL_USER) {
                        /* The user's may not replace an administrator's. */
                        log_warning("Ignoring the service manifest %s/%s: a system service has that name.",
                                    dir, de->d_name);
                        service_free(s);
                        continue;
                }
                if (old) {
                        /* /etc overrides /usr/lib for the same name. */
                        for (size_t i = 0; i < m->n_services; i++)
                                if (m->services[i] == old)
                                        m->services[i] = s;
                        service_free(old);
                        continue;
                }
                if (m->n_services >= MANIFEST_MAX_SERVICES) {
                        log_warning("Ignoring the service manifest %s/%s: more than %u services.", dir,
                                    de->d_name, MANIFEST_MAX_SERVICES);
                        service_free(s);
                        continue;
                }
                m->services[m->n_services++] = s;
        }
        closedir(d);
}

int manifests_load(uv_loop_t *loop, Bus *bus, const WorkerConfig *config, ManifestAdoptFn adopt,
                   void *userdata, Manifests **ret)
{
        Manifests *m = calloc(1, sizeof(Manifests));

        if (!m)
                return -ENOMEM;
        *m = (Manifests){.loop = loop, .bus = bus, .config = config, .adopt = adopt, .userdata = userdata};
        load_dir(m, config->services_dirs[LEVEL_SYSTEM], LEVEL_SYSTEM);
        load_dir(m, config->services_dirs[LEVEL_ADMIN], LEVEL_ADMIN);
        if (config->services_dirs[LEVEL_USER])
                load_dir(m, config->services_dirs[LEVEL_USER], LEVEL_USER);
        *ret = m;
        return 0;
}

bool manifests_replace(const Manifests *m, const char *builtin)
{
        for (size_t i = 0; m && i < m->n_services; i++)
                if (m->services[i]->replaces && streq(m->services[i]->replaces, builtin))
                        return true;
        return false;
}

void manifests_grant_events(Manifests *m, const char *builtin, const char *const *events)
{
        for (size_t i = 0; m && i < m->n_services; i++)
                if (m->services[i]->replaces && streq(m->services[i]->replaces, builtin))
                        m->services[i]->events = events;
}

static void on_err_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        Service *s = h->data;

        (void)suggested;
        if (s->err_len == sizeof(s->err_buf)) {
                /* A line longer than the buffer: logged in pieces. */
                log_info("%s: %.*s", s->name, (int)s->err_len, s->err_buf);
                s->err_len = 0;
        }
        *buf = uv_buf_init(s->err_buf + s->err_len, (unsigned)(sizeof(s->err_buf) - s->err_len));
}

static void on_err_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
        Service *s = stream->data;
        char *nl;

        (void)buf;
        if (nread < 0) {
                if (s->err_len > 0)
                        log_info("%s: %.*s", s->name, (int)s->err_len, s->err_buf);
                s->err_len = 0;
                uv_close((uv_handle_t *)&s->err, NULL);
                s->err_open = false;
                return;
        }
        s->err_len += (size_t)nread;
        while ((nl = memchr(s->err_buf, '\n', s->err_len))) {
                size_t n = (size_t)(nl - s->err_buf);
                log_info("%s: %.*s", s->name, (int)n, s->err_buf);
                memmove(s->err_buf, nl + 1, s->err_len - n - 1);
                s->err_len -= n + 1;
        }
}

static void on_proc_closed(uv_handle_t *h)
{
        Service *s = h->data;

        s->proc_open = false;
}

static void on_service_exit(uv_process_t *p, int64_t status, int signo)
{
        Service *s = p->data;

        if (signo)
                log_warning("Service %s (pid %d) was killed by signal %d.", s->name, p->pid, signo);
        else
                log_full_errno(status == 0 ? LOG_INFO : LOG_WARNING, 0,
                               "Service %s (pid %d) exited with status %lld.", s->name, p->pid,
                               (long long)status);
        uv_close((uv_handle_t *)p, on_proc_closed);
}

static void on_backoff(uv_timer_t *t);

/* Spawn the program on the service's end of the socket pair; on failure, closing that end makes the
 * worker's end see the end of the connection, which fails what waits there. */
static void service_spawn(Service *s)
{
        Manifests *m = s->owner;
        uv_stdio_container_t stdio[3];
        uv_process_options_t o = {0};
        int r;

        if (s->proc_open) {
                /* The one before has not been reaped yet: try again shortly. */
                (void)uv_timer_start(&s->backoff, on_backoff, 50, 0);
                return;
        }
        r = uv_pipe_init(m->loop, &s->err, false);
        if (r >= 0) {
                s->err.data = s;
                s->err_open = true;
        }
        stdio[0] = (uv_stdio_container_t){.flags = UV_INHERIT_FD, .data.fd = s->child_fd};
        stdio[1] = stdio[0];
        stdio[2] = s->err_open ? (uv_stdio_container_t){.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE,
                                                        .data.stream = (uv_stream_t *)&s->err}
                               : (uv_stdio_container_t){.flags = UV_INHERIT_FD, .data.fd = STDERR_FILENO};
        o.file = s->argv[0];
        o.args = s->argv;
        o.cwd = m->config->home;
        o.exit_cb = on_service_exit;
        o.stdio = stdio;
        o.stdio_count = 3;
        s->proc.data = s;
        r = uv_spawn(m->loop, &s->proc, &o);
        s->proc_open = true;
        if (r < 0) {
                log_warning("Cannot start the service %s (%s): %s", s->name, s->argv[0], uv_strerror(r));
                uv_close((uv_handle_t *)&s->proc, on_proc_closed);
                if (s->err_open) {
                        uv_close((uv_handle_t *)&s->err, NULL);
                        s->err_open = false;
                }
        } else {
                log_info("Started the service %s (pid %d).", s->name, s->proc.pid);
                if (s->err_open && uv_read_start((uv_stream_t *)&s->err, on_err_alloc, on_err_read) < 0) {
                        uv_close((uv_handle_t *)&s->err, NULL);
                        s->err_open = false;
                }
        }
        s->child_fd = safe_close(s->child_fd);
}

static void on_backoff(uv_timer_t *t)
{
        service_spawn(t->data);
}

static int service_start(void *userdata, ClientId *ret)
{
        Service *s = userdata;
        Manifests *m = s->owner;
        uint64_t now = uv_now(m->loop), delay = 0;
        size_t recent = 0;
        int fds[2], r;

        if (m->stopping)
                return -ESHUTDOWN;
        for (size_t i = 0; i < s->n_starts; i++)
                recent += now - s->starts[i] < 60000;
        if (recent >= MANIFEST_MAX_STARTS) {
                log_warning("Service %s started %u times in a minute; failing its requests for now.",
                            s->name, MANIFEST_MAX_STARTS);
                return -EAGAIN;
        }
        if (recent > 0)
                delay = MIN((uint64_t)MANIFEST_MAX_BACKOFF_MS, (uint64_t)100u << (recent - 1));
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
                return log_warning_errno(errno, "Cannot start the service %s: %m", s->name);
        r = m->adopt(m->userdata, fds[0], ret);
        if (r < 0) {
                safe_close(fds[1]);
                return log_warning_errno(r, "Cannot start the service %s: %m", s->name);
        }
        safe_close(s->child_fd);
        s->child_fd = fds[1];
        if (s->n_starts == MANIFEST_MAX_STARTS) {
                memmove(s->starts, s->starts + 1, (MANIFEST_MAX_STARTS - 1) * sizeof(uint64_t));
                s->n_starts--;
        }
        s->starts[s->n_starts++] = now;
        if (delay == 0)
                service_spawn(s);
        else {
                log_info("Starting the service %s again in %llu ms.", s->name, (unsigned long long)delay);
                (void)uv_timer_start(&s->backoff, on_backoff, delay, 0);
        }
        return 0;
}

void manifests_register(Manifests *m)
{
        for (size_t i = 0; i < m->n_services; i++) {
                Service *s = m->services[i];
                const char *taken = NULL;

                for (size_t t = 0; t < s->n_topics && !taken; t++)
                        if (bus_topic_taken(m->bus, s->topics[t]))
                                taken = s->topics[t];
                if (taken) {
                        log_warning("Not starting the service %s: its topic %s is served already.", s->name,
                                    taken);
                        continue;
                }
                (void)uv_timer_init(m->loop, &s->backoff);
                s->backoff.data = s;
                s->backoff_open = true;
                for (size_t t = 0; t < s->n_topics; t++)
                        if (bus_serve_on_demand(m->bus, s->topics[t], service_start, s) < 0)
                                log_oom();
                for (size_t e = 0; s->events && s->events[e]; e++)
                        if (bus_grant_notification(m->bus, s->events[e], s) < 0)
                                log_oom();
                s->registered = true;
        }
}

static const char *service_state(const Service *s, uint64_t now)
{
        size_t recent = 0;

        for (size_t i = 0; i < s->n_starts; i++)
                recent += now - s->starts[i] < 60000;
        if (s->proc_open && !uv_is_closing((uv_handle_t *)&s->proc))
                return "running";
        if (s->backoff_open && uv_is_active((uv_handle_t *)&s->backoff))
                return "starting";
        return recent >= MANIFEST_MAX_STARTS ? "failing" : "stopped";
}

int manifests_describe(const Manifests *m, cJSON *list)
{
        for (size_t i = 0; m && i < m->n_services; i++) {
                const Service *s = m->services[i];
                const char *state = s->registered ? service_state(s, uv_now(m->loop)) : "refused";
                cJSON *o = cJSON_CreateObject(), *topics = cJSON_AddArrayToObject(o, "topics");

                if (!o || !cJSON_AddItemToArray(list, o) || !topics ||
                    !cJSON_AddStringToObject(o, "name", s->name) ||
                    !cJSON_AddBoolToObject(o, "inProcess", false) ||
                    !cJSON_AddStringToObject(o, "state", state) ||
                    (s->replaces && !cJSON_AddStringToObject(o, "replaces", s->replaces)) ||
                    (streq(state, "running") && !cJSON_AddNumberToObject(o, "pid", s->proc.pid)))
                        return -ENOMEM;
                for (size_t t = 0; t < s->n_topics; t++)
                        if (!cJSON_AddItemToArray(topics, cJSON_CreateString(s->topics[t])))
                                return -ENOMEM;
        }
        return 0;
}

void manifests_stop(Manifests *m)
{
        if (!m)
                return;
        m->stopping = true;
        for (size_t i = 0; i < m->n_services; i++) {
                Service *s = m->services[i];
                if (s->proc_open && !uv_is_closing((uv_handle_t *)&s->proc)) {
                        (void)uv_process_kill(&s->proc, SIGTERM);
                        uv_close((uv_handle_t *)&s->proc, on_proc_closed);
                }
                if (s->err_open) {
                        uv_close((uv_handle_t *)&s->err, NULL);
                        s->err_open = false;
                }
                if (s->backoff_open) {
                        uv_close((uv_handle_t *)&s->backoff, NULL);
                        s->backoff_open = false;
                }
                s->child_fd = safe_close(s->child_fd);
        }
}

Manifests *manifests_free(Manifests *m)
{
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_services; i++)
                service_free(m->services[i]);
        free(m);
        return NULL;
}
