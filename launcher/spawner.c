/* SPDX-License-Identifier: MIT */
#include "spawner.h"

#include <assert.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "account.h"
#include "activator.h"
#include "cgroup.h"
#include "embedded-protocol.h"
#include "launcher-protocol.h"
#include "log.h"
#include "macro.h"
#include "packet.h"
#include "sandbox.h"
#include "strv.h"
#include "user-name.h"

/* Packets waiting for the launcher to read. It reads as it goes; a launcher that stops reading is
 * broken, and the link is ended rather than memory spent. */
#define LINK_OUT_MAX 1024
#define FIELDS_MAX   4

typedef struct UserEntry UserEntry;

/* A user whose worker socket this process serves. */
struct UserEntry {
        Spawner *spawner;
        UserEntry *next;
        char name[LAUNCHER_USER_MAX + 1];
        SandboxPlan *plan;
        Activator *activator;
        char *socket_path;
        char *cgroup_procs; /* the worker's cgroup.procs, NULL without a cgroup */
};

struct Spawner {
        uv_loop_t *loop;
        SpawnerOptions options;
        char *workers_dir;

        int link_fd;
        uv_poll_t link_poll;
        bool link_open;
        PacketQueue out;
        void (*on_done)(void *userdata);
        void *userdata;

        UserEntry *users;
        unsigned n_users;
        CgroupTree *cgroups; /* NULL: none could be had (logged at start) */
        bool stopped;
};

/* ---- the link to the launcher ---- */

static void link_close(Spawner *s, const char *why);
static void on_link_event(uv_poll_t *p, int status, int events);

static void link_update_poll(Spawner *s)
{
        if (!s->link_open)
                return;
        (void)uv_poll_start(&s->link_poll, UV_READABLE | (s->out.first ? UV_WRITABLE : 0), on_link_event);
}

static void link_flush(Spawner *s)
{
        if (packet_queue_flush(&s->out, s->link_fd) < 0)
                link_close(s, "cannot send");
}

static void link_send(Spawner *s, const char *const *fields, size_t n)
{
        if (!s->link_open)
                return;
        if (s->out.n >= LINK_OUT_MAX) {
                link_close(s, "the launcher does not read");
                return;
        }
        if (packet_queue_push(&s->out, fields, n) < 0) {
                link_close(s, "out of memory");
                return;
        }
        link_flush(s);
        link_update_poll(s);
}

static void send_status(Spawner *s)
{
        char users[16], running[16];
        unsigned n = 0;

        for (UserEntry *u = s->users; u; u = u->next)
                n += activator_worker_pid(u->activator) > 0;
        (void)snprintf(users, sizeof(users), "%u", s->n_users);
        (void)snprintf(running, sizeof(running), "%u", n);
        link_send(s, (const char *const[]){EMBEDDED_EVENT_ID, EMBEDDED_OP_STATUS, users, running}, 4);
}

static void reply(Spawner *s, const char *id, const char *status, const char *arg)
{
        link_send(s, (const char *const[]){id, status, arg}, 3);
}

/* ---- users ---- */

static void write_str(const char *s)
{
        ssize_t n = write(STDERR_FILENO, s, strlen(s));
        (void)n;
}

static void child_failed(const UserEntry *u, const char *what, int r)
{
        const char *name = strerrorname_np(-r);

        write_str("helios-embedded: cannot ");
        write_str(what);
        write_str(" of ");
        write_str(u->name);
        write_str(": ");
        write_str(name ? name : "error");
        write_str("\n");
}

/* Between fork and exec: only async-signal-safe calls, so the failure is told without stdio. The
 * cgroup first, while still root: everything the worker starts stays in it. */
static int user_child_setup(void *userdata)
{
        UserEntry *u = userdata;
        int r;

        if (u->cgroup_procs) {
                r = cgroup_join(u->cgroup_procs);
                if (r < 0) {
                        child_failed(u, "join the cgroup", r);
                        return r;
                }
        }
        r = sandbox_enter(u->plan);
        if (r < 0)
                child_failed(u, "enter the sandbox", r);
        return r;
}

/* The sandbox of user's workers, with values (NULL: the defaults). */
static int plan_sandbox(Spawner *s, const char *user, const PolicyValues *values, SandboxPlan **ret)
{
        SandboxParams sp = {
            .user = user,
            .hide = (const char *const[]){s->options.runtime_dir},
            .n_hide = 1,
            .values = values,
            .outbound_network =
                values ? values->v[POLICY_SETTING_OUTBOUND_NETWORK] != 0 : POLICY_OUTBOUND_NETWORK_DEFAULT,
            .pass_credentials = true,
        };

        return sandbox_plan_new(&sp, ret);
}

/* One line with what the worker gets, "key=value" as in sandbox.conf. */
static void log_settings(const char *user, const PolicyValues *values)
{
        char line[512];
        size_t k = 0;

        line[0] = '\0';
        for (size_t i = 0; i < _POLICY_SETTING_MAX && k < sizeof(line); i++) {
                char v[32];
                int n;

                if (policy_value_format((PolicySettingId)i, values->v[i], true, v, sizeof(v)) < 0)
                        continue;
                n = snprintf(line + k, sizeof(line) - k, "%s%s=%s", k ? " " : "", policy_settings[i].key, v);
                if (n < 0)
                        break;
                k += (size_t)n;
        }
        log_info("Starting the worker of %s (%s).", user, line);
}

/* Before each start: the settings as the files say now, a sandbox plan with them (the account too is
 * looked up again), and the worker's cgroup with its bounds. A settings file in error fails the
 * start: a workspace never runs with bounds other than the admin's. */
static int user_before_start(void *userdata)
{
        UserEntry *u = userdata;
        Spawner *s = u->spawner;
        PolicyValues values;
        SandboxPlan *plan;
        int r;

        r = policy_values_load(s->options.config_dir, u->name, &values);
        if (r < 0)
                return log_error_errno(r, "Cannot read the sandbox settings of %s: %m", u->name);
        r = plan_sandbox(s, u->name, &values, &plan);
        if (r < 0)
                return log_error_errno(r, "Cannot prepare the sandbox of %s: %m", u->name);
        if (sandbox_plan_uid(plan) != sandbox_plan_uid(u->plan)) {
                sandbox_plan_free(plan);
                log_error("The account %s changed its uid; not starting its worker.", u->name);
                return -ESTALE;
        }
        sandbox_plan_free(u->plan);
        u->plan = plan;

        free(u->cgroup_procs);
        u->cgroup_procs = NULL;
        if (s->cgroups) {
                r = cgroup_worker_prepare(s->cgroups, u->name, &values, &u->cgroup_procs);
                if (r < 0)
                        return log_error_errno(r, "Cannot set up the cgroup of %s's worker: %m", u->name);
        }
        log_settings(u->name, &values);
        return 0;
}

/* The workspace has stopped: whatever is left of it goes too. */
static void user_after_exit(void *userdata)
{
        UserEntry *u = userdata;

        cgroup_worker_kill(u->spawner->cgroups, u->name);
}

static void on_activator_change(void *userdata)
{
        UserEntry *u = userdata;

        if (!u->spawner->stopped)
                send_status(u->spawner);
}

static UserEntry *user_entry_free(UserEntry *u)
{
        if (!u)
                return NULL;
        activator_free(u->activator);
        sandbox_plan_free(u->plan);
        free(u->socket_path);
        free(u->cgroup_procs);
        free(u);
        return NULL;
}

/* The worker's environment: what the launcher gave this process (a plain PATH, the locale, logging
 * settings), and its account's. */
static int build_worker_env(const struct passwd *pw, char ***ret)
{
        extern char **environ;
        _cleanup_(strv_freep) char **env = NULL;
        size_t n = 0;
        int r = 0;

        for (char **e = environ; e && *e && r >= 0; e++) {
                const char *eq = strchr(*e, '=');
                _cleanup_free_ char *key = eq ? strndup(*e, (size_t)(eq - *e)) : NULL;
                if (!eq)
                        continue;
                r = key ? strv_env_push(&env, &n, key, eq + 1) : -ENOMEM;
        }
        if (r >= 0)
                r = strv_env_push(&env, &n, POLICY_CREDENTIALS_FD_ENV, POLICY_CREDENTIALS_FD_STR);
        if (r >= 0)
                r = strv_env_push(&env, &n, "HOME", pw->pw_dir);
        if (r >= 0)
                r = strv_env_push(&env, &n, "USER", pw->pw_name);
        if (r >= 0)
                r = strv_env_push(&env, &n, "LOGNAME", pw->pw_name);
        if (r >= 0)
                r = strv_env_push(&env, &n, "SHELL",
                                  pw->pw_shell && pw->pw_shell[0] ? pw->pw_shell : "/bin/sh");
        if (r < 0)
                return r;
        *ret = TAKE_PTR(env);
        return 0;
}

static int user_entry_new(Spawner *s, const char *user, UserEntry **ret)
{
        _cleanup_free_ char *buf = NULL;
        _cleanup_(strv_freep) char **env = NULL;
        struct passwd pw;
        char allow[48];
        UserEntry *u;
        int r;

        u = calloc(1, sizeof(UserEntry));
        if (!u)
                return -ENOMEM;
        u->spawner = s;
        strcpy(u->name, user);
        r = plan_sandbox(s, user, NULL, &u->plan);
        if (r < 0) {
                log_error_errno(r, "Cannot prepare the sandbox of %s: %m", user);
                goto fail;
        }
        if (asprintf(&u->socket_path, "%s/%s.sock", s->workers_dir, user) < 0) {
                u->socket_path = NULL;
                r = -ENOMEM;
                goto fail;
        }
        r = account_lookup(user, &pw, &buf);
        if (r >= 0)
                r = build_worker_env(&pw, &env);
        if (r < 0)
                goto fail;

        (void)snprintf(allow, sizeof(allow), "--allow-group=%u", (unsigned)s->options.gateway_gid);
        char *argv[] = {(char *)s->options.worker, allow, NULL};
        ActivatorParams ap = {
            .socket_path = u->socket_path,
            .worker_path = s->options.worker,
            .worker_argv = argv,
            .child_setup = user_child_setup,
            .before_start = user_before_start,
            .after_exit = user_after_exit,
            .on_change = on_activator_change,
            .userdata = u,
            .worker_envp = env,
            .shared = true,
            .worker_uid = sandbox_plan_uid(u->plan),
            .socket_gid = s->options.gateway_gid,
            .socket_mode = 0660,
            .output_tag = user,
        };
        r = activator_new(s->loop, &ap, &u->activator);
        if (r < 0)
                goto fail;
        *ret = u;
        return 0;
fail:
        user_entry_free(u);
        return r;
}

/* At the cap, a user whose socket has no worker behind it gives way: the socket goes, and the next
 * request for that user makes it again. */
static void evict_idle_user(Spawner *s)
{
        for (UserEntry **p = &s->users; *p; p = &(*p)->next) {
                UserEntry *u = *p;
                if (activator_worker_pid(u->activator) > 0)
                        continue;
                log_info("Closing the idle worker socket of %s to make room.", u->name);
                *p = u->next;
                s->n_users--;
                activator_stop(u->activator);
                user_entry_free(u);
                return;
        }
}

static void handle_worker(Spawner *s, const char *id, const char *user)
{
        UserEntry *u;
        int r;

        for (u = s->users; u; u = u->next)
                if (streq(u->name, user)) {
                        /* A worker found running at start may have gone since: look again. */
                        activator_recheck(u->activator);
                        if (activator_failing(u->activator)) {
                                /* The gateway asks again when its connection ended unanswered. */
                                log_warning("The worker of %s keeps failing to start.", user);
                                reply(s, id, LAUNCHER_REPLY_ERROR, LAUNCHER_ERROR_FAILED);
                                return;
                        }
                        reply(s, id, LAUNCHER_REPLY_OK, u->socket_path);
                        return;
                }
        if (s->n_users >= s->options.max_users)
                evict_idle_user(s);
        if (s->n_users >= s->options.max_users) {
                log_warning("No room for the worker socket of %s: %u users have one.", user, s->n_users);
                reply(s, id, LAUNCHER_REPLY_ERROR, LAUNCHER_ERROR_FULL);
                return;
        }
        r = user_entry_new(s, user, &u);
        if (r < 0) {
                log_error_errno(r, "Cannot set up the worker socket of %s: %m", user);
                reply(s, id, LAUNCHER_REPLY_ERROR, LAUNCHER_ERROR_FAILED);
                return;
        }
        r = activator_start(u->activator);
        if (r < 0) {
                log_error_errno(r, "Cannot listen on %s for the worker of %s: %m", u->socket_path, user);
                activator_stop(u->activator);
                user_entry_free(u);
                reply(s, id, LAUNCHER_REPLY_ERROR, LAUNCHER_ERROR_FAILED);
                return;
        }
        u->next = s->users;
        s->users = u;
        s->n_users++;
        log_debug("Worker socket of %s ready.", user);
        reply(s, id, LAUNCHER_REPLY_OK, u->socket_path);
        send_status(s);
}

/* ---- packets ---- */

static void handle_packet(Spawner *s, char *buf, size_t n)
{
        char *f[FIELDS_MAX];
        size_t len[FIELDS_MAX];
        int k;

        k = packet_split(buf, n, f, len, FIELDS_MAX);
        /* The launcher checked the name already; it becomes a path and a cgroup here, so again. */
        if (k != 3 || !packet_id_valid(f[0], len[0]) || !streq(f[1], LAUNCHER_OP_WORKER) ||
            !user_name_valid(f[2], len[2])) {
                link_close(s, "malformed request");
                return;
        }
        handle_worker(s, f[0], f[2]);
}

static void on_link_event(uv_poll_t *p, int status, int events)
{
        Spawner *s = p->data;
        char buf[LAUNCHER_MESSAGE_MAX + 1];

        if (status < 0) {
                link_close(s, uv_strerror(status));
                return;
        }
        if (events & UV_WRITABLE) {
                link_flush(s);
                if (!s->link_open)
                        return;
        }
        if (events & UV_READABLE)
                for (unsigned i = 0; i < 32 && s->link_open; i++) {
                        ssize_t n = recv(s->link_fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0 && errno == EAGAIN)
                                break;
                        if (n <= 0) {
                                link_close(s, n < 0 ? "receive failed" : NULL);
                                return;
                        }
                        if ((size_t)n > LAUNCHER_MESSAGE_MAX) {
                                link_close(s, "packet over the size limit");
                                return;
                        }
                        handle_packet(s, buf, (size_t)n);
                }
        link_update_poll(s);
}

static void on_link_closed(uv_handle_t *h)
{
        Spawner *s = h->data;

        s->link_fd = safe_close(s->link_fd);
        packet_queue_clear(&s->out);
}

/* The launcher has gone (or broke the protocol): nothing more to do here. */
static void link_close(Spawner *s, const char *why)
{
        if (!s->link_open)
                return;
        s->link_open = false;
        if (why)
                log_error("Ending the link to the launcher: %s.", why);
        else
                log_debug("The launcher closed the link.");
        uv_close((uv_handle_t *)&s->link_poll, on_link_closed);
        if (s->on_done)
                s->on_done(s->userdata);
}

/* ---- set-up ---- */

int spawner_new(uv_loop_t *loop, const SpawnerOptions *o, int link_fd, void (*on_done)(void *userdata),
                void *userdata, Spawner **ret)
{
        Spawner *s;

        assert(loop && o && o->runtime_dir && o->worker && link_fd >= 0 && ret);

        s = calloc(1, sizeof(Spawner));
        if (!s)
                return -ENOMEM;
        s->loop = loop;
        s->options = *o;
        s->link_fd = link_fd;
        s->on_done = on_done;
        s->userdata = userdata;
        if (asprintf(&s->workers_dir, "%s/workers", o->runtime_dir) < 0) {
                free(s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

int spawner_start(Spawner *s)
{
        _cleanup_free_ char *why = NULL;
        int r;

        r = cgroup_tree_open(&s->cgroups, &why);
        if (r < 0)
                log_warning_errno(r, "Cannot set up cgroups for the workers, ignoring: %m");
        else if (!s->cgroups)
                log_warning("No cgroup for the workers: %s. Workspaces are bounded by rlimits only, "
                            "and what a workspace leaves running outlives it.",
                            strna(why));
        else if (why)
                log_warning("Workers get cgroups in %s, but %s: those bounds are not enforced in embedded "
                            "mode here.",
                            cgroup_tree_path(s->cgroups), why);
        else
                log_info("Workers get cgroups in %s with memory, task and CPU bounds.",
                         cgroup_tree_path(s->cgroups));

        /* The runtime directory may be crossed by all; workers/ only by the gateway's group, so a user
         * cannot even see who else has a workspace. */
        r = activator_prepare_shared_directory(s->options.runtime_dir, 0755, getegid());
        if (r < 0)
                return log_error_errno(r, "Cannot use %s as the runtime directory: %m",
                                       s->options.runtime_dir);
        r = activator_prepare_shared_directory(s->workers_dir, 0750, s->options.gateway_gid);
        if (r < 0)
                return log_error_errno(r, "Cannot use %s for the worker sockets: %m", s->workers_dir);

        r = uv_poll_init(s->loop, &s->link_poll, s->link_fd);
        if (r < 0)
                return log_error_errno(r, "Cannot watch the link to the launcher: %s", uv_strerror(r));
        s->link_poll.data = s;
        s->link_open = true;
        link_update_poll(s);
        log_debug("Serving the launcher; worker sockets in %s.", s->workers_dir);
        return 0;
}

void spawner_stop(Spawner *s)
{
        if (!s || s->stopped)
                return;
        s->stopped = true;
        s->on_done = NULL;
        link_close(s, NULL);
        for (UserEntry *u = s->users; u; u = u->next)
                activator_stop(u->activator);
}

Spawner *spawner_free(Spawner *s)
{
        if (!s)
                return NULL;
        while (s->users) {
                UserEntry *u = s->users;
                s->users = u->next;
                user_entry_free(u);
        }
        safe_close(s->link_fd);
        cgroup_tree_free(s->cgroups);
        free(s->workers_dir);
        free(s);
        return NULL;
}
