/* SPDX-License-Identifier: MIT */
#include "unit-starter.h"

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "log.h"
#include "macro.h"

#define SD_DEST  "org.freedesktop.systemd1"
#define SD_PATH  "/org/freedesktop/systemd1"
#define SD_IFACE "org.freedesktop.systemd1.Manager"

struct UnitJob {
        UnitStarter *starter;
        UnitJob *prev, *next;
        char *unit;
        char *props_unit;
        char *job_path;   /* from StartUnit's reply */
        char *early_path; /* a JobRemoved for this unit seen before the reply */
        char *early_result;
        sd_bus_slot *call;
        bool check;         /* unit_starter_check_failing(), not a start (early_result: its Result) */
        uint64_t hold_usec; /* check: how long a limit hit counts */
        uv_timer_t timer;
        UnitJobCallback cb;
        void *userdata;
};

/* Watches one bus connection's descriptor; allocated per connection, freed once closed. */
typedef struct BusWatch {
        uv_poll_t poll;
        UnitStarter *starter;
} BusWatch;

struct UnitStarter {
        uv_loop_t *loop;
        uint64_t timeout_ms;
        sd_bus *bus;
        BusWatch *watch;
        uv_timer_t timer;
        bool stopped;
        UnitJob *jobs;
};

static void bus_update(UnitStarter *u);

static void on_job_timer_closed(uv_handle_t *h)
{
        UnitJob *j = container_of((uv_timer_t *)h, UnitJob, timer);

        free(j->unit);
        free(j->props_unit);
        free(j->job_path);
        free(j->early_path);
        free(j->early_result);
        free(j);
}

/* Unlink and free; the callback is the caller's business. */
static void job_free(UnitJob *j)
{
        UnitStarter *u = j->starter;

        if (j->prev)
                j->prev->next = j->next;
        else
                u->jobs = j->next;
        if (j->next)
                j->next->prev = j->prev;
        j->call = sd_bus_slot_unref(j->call);
        uv_close((uv_handle_t *)&j->timer, on_job_timer_closed);
}

static void job_finish(UnitJob *j, int r)
{
        UnitJobCallback cb = j->cb;
        void *userdata = j->userdata;

        job_free(j);
        if (cb)
                cb(r, userdata);
}

static int job_result(UnitJob *j, const char *result)
{
        if (streq(result, "done")) {
                log_info("Started %s.", j->unit);
                return 0;
        }
        log_error("Starting %s ended with result '%s'.", j->unit, result);
        return -EIO;
}

static void on_job_timeout(uv_timer_t *t)
{
        UnitJob *j = container_of(t, UnitJob, timer);

        log_error("%s %s took more than %llu ms; giving up.", j->check ? "Asking about" : "Starting",
                  j->unit, (unsigned long long)j->starter->timeout_ms);
        job_finish(j, -ETIMEDOUT);
}

static int on_start_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        UnitJob *j = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        const char *path;
        int r;

        j->call = sd_bus_slot_unref(j->call);
        if (e) {
                log_error("StartUnit %s failed: %s: %s", j->unit, e->name, strna(e->message));
                /* A masked unit is the admin's word, not a failure: told apart (ERFKILL, as systemd
                 * itself says it). */
                job_finish(j, sd_bus_error_has_name(e, "org.freedesktop.systemd1.UnitMasked") ? -ERFKILL
                                                                                              : -EIO);
                return 0;
        }
        r = sd_bus_message_read(m, "o", &path);
        if (r < 0) {
                log_error_errno(r, "StartUnit %s: unexpected reply: %m", j->unit);
                job_finish(j, -EIO);
                return 0;
        }
        log_info("Job %s queued for %s.", path, j->unit);
        if (j->early_path && streq(j->early_path, path)) {
                job_finish(j, job_result(j, j->early_result));
                return 0;
        }
        j->job_path = strdup(path);
        if (!j->job_path)
                job_finish(j, -ENOMEM);
        return 0;
}

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        UnitStarter *u = userdata;
        const char *path, *unit, *result;
        uint32_t id;
        int r;

        r = sd_bus_message_read(m, "uoss", &id, &path, &unit, &result);
        if (r < 0) {
                log_warning_errno(r, "Unexpected JobRemoved signal, ignoring: %m");
                return 0;
        }
        for (UnitJob *j = u->jobs; j; j = j->next) {
                if (j->check)
                        continue;
                if (j->job_path && streq(j->job_path, path)) {
                        job_finish(j, job_result(j, result));
                        return 0;
                }
                /* The manager may finish a job before its StartUnit reply is read here. */
                if (!j->job_path && streq(j->unit, unit)) {
                        free(j->early_path);
                        free(j->early_result);
                        j->early_path = strdup(path);
                        j->early_result = strdup(result);
                }
        }
        return 0;
}

static void fail_all(UnitStarter *u, int r)
{
        while (u->jobs)
                job_finish(u->jobs, r);
}

static void on_watch_closed(uv_handle_t *h)
{
        free(container_of((uv_poll_t *)h, BusWatch, poll));
}

static void bus_disconnect(UnitStarter *u)
{
        if (u->watch) {
                uv_close((uv_handle_t *)&u->watch->poll, on_watch_closed);
                u->watch = NULL;
        }
        if (!u->stopped)
                (void)uv_timer_stop(&u->timer);
        u->bus = sd_bus_flush_close_unref(u->bus);
}

static void bus_process(UnitStarter *u)
{
        int r;

        if (!u->bus)
                return;
        do
                r = sd_bus_process(u->bus, NULL);
        while (r > 0 && u->bus);
        if (r < 0) {
                /* The connection is gone (dbus restarted, say): pending starts fail, the next start
                 * connects again. */
                log_error_errno(r, "The system bus connection failed: %m");
                bus_disconnect(u);
                fail_all(u, -EIO);
                return;
        }
        bus_update(u);
}

static void on_bus_io(uv_poll_t *p, int status, int events)
{
        BusWatch *w = container_of(p, BusWatch, poll);

        bus_process(w->starter);
}

static void on_bus_timer(uv_timer_t *t)
{
        bus_process(container_of(t, UnitStarter, timer));
}

/* Watch for what the bus connection waits on now: its descriptor's events and its next timeout. */
static void bus_update(UnitStarter *u)
{
        struct timespec ts;
        uint64_t until, now;
        int ev, events = 0;

        if (!u->bus || !u->watch)
                return;
        ev = sd_bus_get_events(u->bus);
        if (ev > 0 && (ev & POLLIN))
                events |= UV_READABLE;
        if (ev > 0 && (ev & POLLOUT))
                events |= UV_WRITABLE;
        (void)uv_poll_start(&u->watch->poll, events, on_bus_io);

        if (sd_bus_get_timeout(u->bus, &until) >= 0 && until != UINT64_MAX) {
                (void)clock_gettime(CLOCK_MONOTONIC, &ts);
                now = (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
                (void)uv_timer_start(&u->timer, on_bus_timer, until > now ? (until - now + 999) / 1000 : 0,
                                     0);
        } else
                (void)uv_timer_stop(&u->timer);
}

static int on_subscribed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        const sd_bus_error *e = sd_bus_message_get_error(m);

        /* Without it no JobRemoved arrives and every start runs into its time limit: say so once. */
        if (e)
                log_error("Subscribing to the service manager failed: %s: %s", e->name, strna(e->message));
        else
                log_info("Subscribed to the service manager's job signals.");
        return 0;
}

static int bus_connect(UnitStarter *u)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        BusWatch *w;
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0)
                return log_error_errno(r, "Cannot connect to the system bus: %m");
        /* JobRemoved tells when a start is over; the manager sends it only to subscribers. */
        r = sd_bus_match_signal_async(bus, NULL, SD_DEST, SD_PATH, SD_IFACE, "JobRemoved", on_job_removed,
                                      NULL, u);
        if (r < 0)
                return log_error_errno(r, "Cannot watch for JobRemoved: %m");
        r = sd_bus_call_method_async(bus, NULL, SD_DEST, SD_PATH, SD_IFACE, "Subscribe", on_subscribed, u,
                                     "");
        if (r < 0)
                return log_error_errno(r, "Cannot subscribe to the service manager: %m");
        w = calloc(1, sizeof(BusWatch));
        if (!w)
                return log_oom();
        w->starter = u;
        r = uv_poll_init(u->loop, &w->poll, sd_bus_get_fd(bus));
        if (r < 0) {
                free(w);
                return log_error_errno(r, "Cannot watch the system bus: %s", uv_strerror(r));
        }
        u->watch = w;
        u->bus = TAKE_PTR(bus);
        log_info("Connected to the system bus.");
        bus_update(u);
        return 0;
}

int unit_starter_new(uv_loop_t *loop, uint64_t timeout_ms, UnitStarter **ret)
{
        UnitStarter *u;
        int r;

        u = calloc(1, sizeof(UnitStarter));
        if (!u)
                return -ENOMEM;
        u->loop = loop;
        u->timeout_ms = timeout_ms;
        r = uv_timer_init(loop, &u->timer);
        if (r < 0) {
                free(u);
                return r;
        }
        /* Not connected yet is not fatal: each start tries again. */
        (void)bus_connect(u);
        *ret = u;
        return 0;
}

static int call_start(UnitJob *j)
{
        int r;

        log_info("Starting %s.", j->unit);
        r = sd_bus_call_method_async(j->starter->bus, &j->call, SD_DEST, SD_PATH, SD_IFACE, "StartUnit",
                                     on_start_reply, j, "ss", j->unit, "replace");
        if (r < 0)
                return log_error_errno(r, "Cannot ask for %s: %m", j->unit);
        return 0;
}

static int on_properties_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        UnitJob *j = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        int r;

        j->call = sd_bus_slot_unref(j->call);
        if (e) {
                log_error("SetUnitProperties %s failed: %s: %s", j->props_unit, e->name, strna(e->message));
                job_finish(j, -EIO);
                return 0;
        }
        r = call_start(j);
        if (r < 0)
                job_finish(j, r);
        return 0;
}

static int call_set_properties(UnitJob *j, const UnitProperty *props, size_t n)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        UnitStarter *u = j->starter;
        int r;

        r = sd_bus_message_new_method_call(u->bus, &m, SD_DEST, SD_PATH, SD_IFACE, "SetUnitProperties");
        if (r >= 0)
                r = sd_bus_message_append(m, "sb", j->props_unit, 1);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "(sv)");
        for (size_t i = 0; i < n && r >= 0; i++)
                r = sd_bus_message_append(m, "(sv)", props[i].name, "t", props[i].value);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_call_async(u->bus, &j->call, m, on_properties_reply, j, 0);
        if (r < 0)
                return log_error_errno(r, "Cannot set the properties of %s: %m", j->props_unit);
        return 0;
}

/* A job for unit, in the list with its timeout running; job_free() from here on. */
static int job_new(UnitStarter *u, const char *unit, UnitJobCallback cb, void *userdata, UnitJob **ret)
{
        UnitJob *j;
        int r;

        if (!u->bus) {
                r = bus_connect(u);
                if (r < 0)
                        return r;
        }
        j = calloc(1, sizeof(UnitJob));
        if (!j)
                return -ENOMEM;
        j->starter = u;
        j->cb = cb;
        j->userdata = userdata;
        j->unit = strdup(unit);
        r = j->unit ? uv_timer_init(u->loop, &j->timer) : -ENOMEM;
        if (r < 0) {
                free(j->unit);
                free(j);
                return r;
        }
        j->next = u->jobs;
        if (u->jobs)
                u->jobs->prev = j;
        u->jobs = j;
        (void)uv_timer_start(&j->timer, on_job_timeout, u->timeout_ms, 0);
        *ret = j;
        return 0;
}

int unit_starter_start(UnitStarter *u, const char *unit, const char *props_unit, const UnitProperty *props,
                       size_t n, UnitJobCallback cb, void *userdata, UnitJob **ret)
{
        UnitJob *j;
        int r;

        assert(u && unit && cb);
        assert(n <= UNIT_PROPERTIES_MAX && (n == 0 || props_unit));

        r = job_new(u, unit, cb, userdata, &j);
        if (r < 0)
                return r;
        if (n > 0) {
                j->props_unit = strdup(props_unit);
                r = j->props_unit ? call_set_properties(j, props, n) : -ENOMEM;
        } else
                r = call_start(j);
        if (r < 0) {
                job_free(j);
                return r;
        }
        bus_update(u);
        *ret = j;
        return 0;
}

/* ---- whether a unit keeps failing ---- */

static uint64_t now_usec(void)
{
        struct timespec ts;

        (void)clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

/* A property's value from a Properties.Get reply, as a basic type; 0 or -errno (logged). */
static int read_property(UnitJob *j, sd_bus_message *m, const char *name, char type, void *ret)
{
        const sd_bus_error *e = sd_bus_message_get_error(m);
        char sig[2] = {type, '\0'};
        int r;

        if (e) {
                log_warning("Cannot read %s of %s: %s: %s", name, j->unit, e->name, strna(e->message));
                return -EIO;
        }
        r = sd_bus_message_read(m, "v", sig, ret);
        if (r < 0)
                return log_warning_errno(r, "Cannot read %s of %s: %m", name, j->unit);
        return 0;
}

static int on_check_since(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        UnitJob *j = userdata;
        uint64_t since, now = now_usec();

        j->call = sd_bus_slot_unref(j->call);
        if (read_property(j, m, "InactiveEnterTimestampMonotonic", 't', &since) < 0) {
                job_finish(j, 0);
                return 0;
        }
        if (since == 0 || since > now || now - since >= j->hold_usec) {
                log_info("%s failed (%s) %llu s ago; starting it again.", j->unit, j->early_result,
                         (unsigned long long)((now - since) / 1000000ULL));
                job_finish(j, 0);
                return 0;
        }
        log_error("%s failed (%s) %llu s ago: its service keeps failing to start. Refused until "
                  "'systemctl reset-failed %s', a start of it, or %llu s after the failure.",
                  j->unit, j->early_result, (unsigned long long)((now - since) / 1000000ULL), j->unit,
                  (unsigned long long)(j->hold_usec / 1000000ULL));
        job_finish(j, 1);
        return 0;
}

static int on_check_result(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        UnitJob *j = userdata;
        const char *result;
        int r;

        j->call = sd_bus_slot_unref(j->call);
        if (read_property(j, m, "Result", 's', &result) < 0) {
                job_finish(j, 0);
                return 0;
        }
        /* Only systemd's own verdict that the service keeps failing, which fails the socket with it: a
         * crash now and then, or a failure a start has since cleared, is started again as always. */
        if (!streq(result, "service-start-limit-hit") && !streq(result, "trigger-limit-hit")) {
                job_finish(j, 0);
                return 0;
        }
        free(j->early_result);
        j->early_result = strdup(result);
        if (!j->early_result) {
                job_finish(j, 0);
                return 0;
        }
        r = sd_bus_call_method_async(j->starter->bus, &j->call, SD_DEST, j->job_path,
                                     "org.freedesktop.DBus.Properties", "Get", on_check_since, j, "ss",
                                     "org.freedesktop.systemd1.Unit", "InactiveEnterTimestampMonotonic");
        if (r < 0) {
                log_warning_errno(r, "Cannot ask when %s failed: %m", j->unit);
                job_finish(j, 0);
        }
        return 0;
}

int unit_starter_check_failing(UnitStarter *u, const char *unit, uint64_t hold_usec, UnitJobCallback cb,
                               void *userdata, UnitJob **ret)
{
        UnitJob *j;
        int r;

        assert(u && unit && cb && ret);

        r = job_new(u, unit, cb, userdata, &j);
        if (r < 0)
                return r;
        j->check = true;
        j->hold_usec = hold_usec;
        r = sd_bus_path_encode("/org/freedesktop/systemd1/unit", unit, &j->job_path);
        if (r >= 0)
                r = sd_bus_call_method_async(u->bus, &j->call, SD_DEST, j->job_path,
                                             "org.freedesktop.DBus.Properties", "Get", on_check_result, j,
                                             "ss", "org.freedesktop.systemd1.Socket", "Result");
        if (r < 0) {
                job_free(j);
                return log_error_errno(r, "Cannot ask how %s ended: %m", unit);
        }
        bus_update(u);
        *ret = j;
        return 0;
}

void unit_job_cancel(UnitJob *j)
{
        if (j)
                job_free(j);
}

void unit_starter_stop(UnitStarter *u)
{
        if (!u || u->stopped)
                return;
        while (u->jobs)
                job_free(u->jobs);
        bus_disconnect(u);
        u->stopped = true;
        uv_close((uv_handle_t *)&u->timer, NULL);
}

UnitStarter *unit_starter_free(UnitStarter *u)
{
        if (!u)
                return NULL;
        assert(u->stopped && !u->jobs && !u->bus);
        free(u);
        return NULL;
}
