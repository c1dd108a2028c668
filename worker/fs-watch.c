/* SPDX-License-Identifier: MIT */
#include "fs-watch.h"

#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>

#include "log.h"
#include "macro.h"
#include "utf8.h"

/* How long changes gather before they are handed out: long enough that an append (modify + close)
 * or an editor's save (write temp, rename) is one change, short enough to feel immediate. */
#define FLUSH_DELAY_MS 30
/* Changes held at once; a burst beyond this is handed out early rather than dropped. */
#define MAX_PENDING 4096
/* Each change is known by at most two paths; keep the table at most half full. */
#define MAP_SLOTS (4 * MAX_PENDING)
/* Directories scanned per loop iteration, and the time allowed for them, so a large tree does not
 * stall the loop. */
#define SCAN_BATCH     64
#define SCAN_BUDGET_NS (5 * 1000 * 1000)
/* How far back an IN_MOVED_TO looks for its IN_MOVED_FROM: the kernel queues the two back to back. */
#define MOVE_LOOKBACK 16
/* inotify reads per wakeup before yielding to the rest of the loop. */
#define READS_PER_WAKEUP 16

#define WATCH_MASK                                                                                      \
        (IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | \
         IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)

typedef struct Watch {
        int wd;
        char *path;
} Watch;

typedef struct Change {
        FsChangeKind kind; /* _FS_CHANGE_KIND_INVALID: cancelled out (created, then deleted) */
        char *path;
        char *old_path;  /* FS_CHANGE_MOVED */
        uint32_t cookie; /* an IN_MOVED_FROM still waiting for its IN_MOVED_TO (kind DELETED) */
        bool is_dir;
        bool temporary; /* moved from a temporary name: reported only as what it becomes */
} Change;

/* path → index of the newest change that names it. Keys point into the changes. */
typedef struct Slot {
        const char *key;
        uint32_t index;
} Slot;

typedef struct ScanItem {
        char *path;
        bool report; /* report what the directory holds as created */
} ScanItem;

struct FsWatch {
        uv_loop_t *loop;
        const FsRoots *roots;
        const WorkerConfig *config;
        const FsWatchOps *ops;
        void *userdata;

        int fd;
        bool use_proc; /* watch through /proc/self/fd, so the path a watch is added by cannot be raced */
        uv_poll_t poll;
        uv_timer_t timer;
        uv_idle_t idle;
        unsigned open_handles;
        bool closing;
        void (*done)(void *userdata);
        void *done_userdata;

        char *root;
        char *state_dir; /* physical path of the worker's own state directory: never reported */
        int root_wd;
        bool limit_reported;
        unsigned generation; /* bumped by every fs_watch_set_root() */

        Watch *watches; /* sorted by wd */
        size_t n_watches, cap_watches;

        Change *changes;
        size_t n_changes, cap_changes;
        Slot *slots;

        ScanItem *scan; /* FIFO: [scan_head, n_scan) */
        size_t scan_head, n_scan, cap_scan;

        char buffer[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
};

static void scan_run(FsWatch *w, unsigned max_dirs, uint64_t budget_ns);

const char *fs_change_kind_to_string(FsChangeKind k)
{
        static const char *const names[_FS_CHANGE_KIND_MAX] = {
            [FS_CHANGE_CREATED] = "created",
            [FS_CHANGE_MODIFIED] = "modified",
            [FS_CHANGE_DELETED] = "deleted",
            [FS_CHANGE_MOVED] = "moved",
        };

        return k >= 0 && k < _FS_CHANGE_KIND_MAX ? names[k] : NULL;
}

/* A directory not watched: one with an excluded name, or the worker's own state directory, whose
 * journal changes with every keystroke and is nobody's business but the workspace's. */
static bool excluded(const FsWatch *w, const char *path, const char *name)
{
        for (size_t i = 0; i < w->config->n_watch_exclude; i++)
                if (streq(w->config->watch_exclude[i], name))
                        return true;
        return w->state_dir && streq(path, w->state_dir);
}

/* The path with its prefix old replaced by new, if path is old or lies below it. */
static char *path_rebase(const char *path, const char *old, const char *new)
{
        size_t n = strlen(old);
        char *p;

        if (!path_is_below_or_same(path, old))
                return NULL;
        if (asprintf(&p, "%s%s", new, path + (streq(old, "/") ? n - 1 : n)) < 0)
                return NULL;
        return p;
}

/* --- The watch table: wd → directory path ------------------------------------------------------ */

static size_t watch_lower_bound(const FsWatch *w, int wd)
{
        size_t lo = 0, hi = w->n_watches;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (w->watches[mid].wd < wd)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static Watch *watch_find(FsWatch *w, int wd)
{
        size_t i = watch_lower_bound(w, wd);

        return i < w->n_watches && w->watches[i].wd == wd ? &w->watches[i] : NULL;
}

static int watch_insert(FsWatch *w, int wd, const char *path)
{
        size_t i = watch_lower_bound(w, wd);
        char *p;

        if (w->n_watches == w->cap_watches) {
                size_t cap = w->cap_watches ? w->cap_watches * 2 : 64;
                Watch *n = realloc(w->watches, cap * sizeof(Watch));
                if (!n)
                        return -ENOMEM;
                w->watches = n;
                w->cap_watches = cap;
        }
        p = strdup(path);
        if (!p)
                return -ENOMEM;
        /* The kernel hands out wds in increasing order, so this is nearly always an append. */
        memmove(w->watches + i + 1, w->watches + i, (w->n_watches - i) * sizeof(Watch));
        w->watches[i] = (Watch){wd, p};
        w->n_watches++;
        return 0;
}

static void watch_remove(FsWatch *w, int wd)
{
        size_t i = watch_lower_bound(w, wd);

        if (i >= w->n_watches || w->watches[i].wd != wd)
                return;
        free(w->watches[i].path);
        memmove(w->watches + i, w->watches + i + 1, (w->n_watches - i - 1) * sizeof(Watch));
        w->n_watches--;
}

/* Forget the watches on path and below; the kernel drops them too (and says so with IN_IGNORED,
 * which then finds nothing). */
static void watch_remove_subtree(FsWatch *w, const char *path)
{
        size_t j = 0;

        for (size_t i = 0; i < w->n_watches; i++) {
                Watch *x = &w->watches[i];
                if (path_is_below_or_same(x->path, path)) {
                        (void)inotify_rm_watch(w->fd, x->wd);
                        if (x->wd == w->root_wd)
                                w->root_wd = -1;
                        free(x->path);
                } else
                        w->watches[j++] = *x;
        }
        w->n_watches = j;
}

static void watch_rename_subtree(FsWatch *w, const char *old, const char *new)
{
        for (size_t i = 0; i < w->n_watches; i++) {
                char *p = path_rebase(w->watches[i].path, old, new);
                if (p) {
                        free(w->watches[i].path);
                        w->watches[i].path = p;
                }
        }
        for (size_t i = w->scan_head; i < w->n_scan; i++) {
                char *p = path_rebase(w->scan[i].path, old, new);
                if (p) {
                        free(w->scan[i].path);
                        w->scan[i].path = p;
                }
        }
}

static void watch_drop_all(FsWatch *w)
{
        for (size_t i = 0; i < w->n_watches; i++) {
                (void)inotify_rm_watch(w->fd, w->watches[i].wd);
                free(w->watches[i].path);
        }
        w->n_watches = 0;
        w->root_wd = -1;
}

static void limit_reached(FsWatch *w, const char *path, int error, const char *message, uint64_t limit)
{
        if (w->limit_reported)
                return;
        w->limit_reported = true;
        w->ops->error(path, error, message, limit, w->userdata);
}

static uint64_t read_proc_limit(const char *name)
{
        char p[128];
        unsigned long long v = 0;
        FILE *f;

        (void)snprintf(p, sizeof(p), "/proc/sys/fs/inotify/%s", name);
        f = fopen(p, "re");
        if (!f)
                return 0;
        if (fscanf(f, "%llu", &v) != 1)
                v = 0;
        (void)fclose(f);
        return v;
}

/* Watch the directory open at dir_fd, known as path. Returns 1 if it is newly (or still) watched under
 * this path, so its subdirectories should be scanned; 0 if the same directory is already watched under
 * another path (a bind mount looping back), -errno if it cannot be watched. */
static int watch_add(FsWatch *w, int dir_fd, const char *path)
{
        char proc[64];
        Watch *x;
        int wd, r;

        if (w->n_watches >= w->config->max_watches) {
                char msg[160];
                (void)snprintf(msg, sizeof(msg),
                               "Helios watches at most %u directories (--max-watches); changes below %s and "
                               "other directories are not reported",
                               w->config->max_watches, path);
                limit_reached(w, path, -ENOSPC, msg, w->config->max_watches);
                return -ENOSPC;
        }

        if (w->use_proc) {
                (void)snprintf(proc, sizeof(proc), "/proc/self/fd/%d", dir_fd);
                wd = inotify_add_watch(w->fd, proc, WATCH_MASK);
        } else
                /* Without /proc, the path resolved just now is the best available; IN_DONT_FOLLOW and
                 * IN_ONLYDIR at least refuse a final symlink or a file swapped in since. */
                wd = inotify_add_watch(w->fd, path, WATCH_MASK | IN_DONT_FOLLOW);
        if (wd < 0) {
                r = negative_errno();
                if (r == -ENOSPC) {
                        uint64_t limit = read_proc_limit("max_user_watches");
                        char msg[200];
                        (void)snprintf(
                            msg, sizeof(msg),
                            "The kernel refused another inotify watch (fs.inotify.max_user_watches = "
                            "%llu); changes below %s and other directories are not reported",
                            (unsigned long long)limit, path);
                        limit_reached(w, path, r, msg, limit);
                } else
                        log_debug_errno(r, "Cannot watch %s, ignoring: %m", path);
                return r;
        }

        x = watch_find(w, wd);
        if (x)
                return streq(x->path, path) ? 1 : 0;
        r = watch_insert(w, wd, path);
        if (r < 0) {
                (void)inotify_rm_watch(w->fd, wd);
                return r;
        }
        if (w->root && streq(path, w->root))
                w->root_wd = wd;
        return 1;
}

/* --- Pending changes --------------------------------------------------------------------------- */

static uint64_t hash_path(const char *s)
{
        uint64_t h = UINT64_C(14695981039346656037);

        for (; *s; s++)
                h = (h ^ (uint8_t)*s) * UINT64_C(1099511628211);
        return h;
}

static Slot *map_slot(FsWatch *w, const char *key)
{
        size_t i = hash_path(key) & (MAP_SLOTS - 1);

        /* At most MAX_PENDING changes with two keys each fill half the table, so the probe ends at an
         * empty slot or at the key. */
        while (w->slots[i].key && !streq(w->slots[i].key, key))
                i = (i + 1) & (MAP_SLOTS - 1);
        return &w->slots[i];
}

static void map_set(FsWatch *w, const char *key, uint32_t index)
{
        Slot *s = map_slot(w, key);

        s->key = key;
        s->index = index;
}

static Change *map_get(FsWatch *w, const char *key)
{
        Slot *s = map_slot(w, key);

        return s->key ? &w->changes[s->index] : NULL;
}

static void changes_free(Change *c, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(c[i].path);
                free(c[i].old_path);
        }
        free(c);
}

static void flush(FsWatch *w)
{
        Change *c = w->changes;
        size_t n = w->n_changes;
        unsigned generation = w->generation;

        /* Hand the batch out detached: a callback may change the root, which resets the pending state. */
        w->changes = NULL;
        w->n_changes = w->cap_changes = 0;
        memset(w->slots, 0, MAP_SLOTS * sizeof(Slot));
        uv_timer_stop(&w->timer);

        for (size_t i = 0; i < n; i++) {
                if (c[i].kind == _FS_CHANGE_KIND_INVALID)
                        continue;
                if (c[i].cookie != 0 && c[i].is_dir && !w->closing && w->generation == generation)
                        /* Moved out of the tree: its watches would report under a path that is gone. */
                        watch_remove_subtree(w, c[i].path);
                if (!w->closing)
                        w->ops->change(c[i].kind, c[i].path, c[i].old_path, w->userdata);
        }
        changes_free(c, n);
}

static void on_timer(uv_timer_t *t)
{
        flush(container_of(t, FsWatch, timer));
}

static FsChangeKind merge(FsChangeKind prev, FsChangeKind next)
{
        if (prev == _FS_CHANGE_KIND_INVALID)
                return next;
        switch (next) {
        case FS_CHANGE_CREATED:
                /* Deleted and created again: replaced, which is a modification to anyone reading it. */
                return prev == FS_CHANGE_CREATED ? FS_CHANGE_CREATED : FS_CHANGE_MODIFIED;
        case FS_CHANGE_MODIFIED:
                return prev == FS_CHANGE_CREATED ? FS_CHANGE_CREATED : FS_CHANGE_MODIFIED;
        case FS_CHANGE_DELETED:
                return prev == FS_CHANGE_CREATED ? _FS_CHANGE_KIND_INVALID : FS_CHANGE_DELETED;
        default:
                return next;
        }
}

static Change *change_append(FsWatch *w, FsChangeKind kind, const char *path, bool is_dir)
{
        Change *c;
        char *p;

        if (w->n_changes >= MAX_PENDING)
                flush(w);
        if (w->n_changes == w->cap_changes) {
                size_t cap = w->cap_changes ? w->cap_changes * 2 : 32;
                Change *n = realloc(w->changes, cap * sizeof(Change));
                if (!n)
                        return NULL;
                w->changes = n;
                w->cap_changes = cap;
        }
        p = strdup(path);
        if (!p)
                return NULL;
        c = &w->changes[w->n_changes];
        *c = (Change){.kind = kind, .path = p, .is_dir = is_dir};
        map_set(w, c->path, (uint32_t)w->n_changes);
        w->n_changes++;
        if (!uv_is_active((uv_handle_t *)&w->timer))
                (void)uv_timer_start(&w->timer, on_timer, FLUSH_DELAY_MS, 0);
        return c;
}

static void change_add(FsWatch *w, FsChangeKind kind, const char *path, bool is_dir)
{
        Change *c = map_get(w, path);

        /* Merge into the newest change of this path, unless that is (half of) a move: what happened
         * after a move is news of its own. */
        if (c && c->kind != FS_CHANGE_MOVED && c->cookie == 0) {
                c->kind = merge(c->kind, kind);
                c->is_dir = is_dir;
                return;
        }
        if (!change_append(w, kind, path, is_dir))
                log_oom();
}

static void scan_enqueue(FsWatch *w, const char *path, bool report);

static void move_from(FsWatch *w, const char *path, uint32_t cookie, bool is_dir, bool temporary)
{
        /* Held as a deletion until its partner turns up; one of a temporary file is no news alone. */
        Change *c = change_append(w, temporary ? _FS_CHANGE_KIND_INVALID : FS_CHANGE_DELETED, path, is_dir);

        if (!c) {
                log_oom();
                return;
        }
        c->cookie = cookie;
        c->temporary = temporary;
}

static void move_to(FsWatch *w, const char *path, uint32_t cookie, bool is_dir, bool temporary)
{
        size_t stop = w->n_changes > MOVE_LOOKBACK ? w->n_changes - MOVE_LOOKBACK : 0;

        for (size_t i = w->n_changes; cookie != 0 && i-- > stop;) {
                Change *c = &w->changes[i];
                char *p;

                if (c->cookie != cookie)
                        continue;
                c->cookie = 0;
                if (temporary)
                        /* Renamed to a temporary name: gone, as far as anyone can tell. */
                        return;
                if (c->temporary) {
                        /* A temporary file renamed over path: path was written. */
                        change_add(w, FS_CHANGE_MODIFIED, path, is_dir);
                        return;
                }
                p = strdup(path);
                if (!p) {
                        log_oom();
                        return;
                }
                c->kind = FS_CHANGE_MOVED;
                c->old_path = c->path;
                c->path = p;
                map_set(w, c->path, (uint32_t)i);
                if (is_dir)
                        watch_rename_subtree(w, c->old_path, c->path);
                return;
        }
        if (temporary)
                return;
        /* Moved in from outside the tree (or from a directory not watched). */
        change_add(w, FS_CHANGE_CREATED, path, is_dir);
        if (is_dir)
                scan_enqueue(w, path, true);
}

/* --- Scanning ---------------------------------------------------------------------------------- */

static void on_idle(uv_idle_t *h)
{
        FsWatch *w = container_of(h, FsWatch, idle);

        scan_run(w, SCAN_BATCH, SCAN_BUDGET_NS);
}

static void scan_enqueue(FsWatch *w, const char *path, bool report)
{
        char *p;

        /* Only the current tree: a batch handed out meanwhile may have led to a new root. */
        if (w->closing || !w->root || !path_is_below_or_same(path, w->root))
                return;
        /* Never more directories queued than could be watched. */
        if (w->n_scan - w->scan_head >= w->config->max_watches) {
                char msg[160];
                (void)snprintf(msg, sizeof(msg),
                               "Helios watches at most %u directories (--max-watches); changes below %s and "
                               "other directories are not reported",
                               w->config->max_watches, path);
                limit_reached(w, path, -ENOSPC, msg, w->config->max_watches);
                return;
        }
        if (w->n_scan == w->cap_scan) {
                if (w->scan_head > 0) {
                        memmove(w->scan, w->scan + w->scan_head,
                                (w->n_scan - w->scan_head) * sizeof(ScanItem));
                        w->n_scan -= w->scan_head;
                        w->scan_head = 0;
                }
                if (w->n_scan == w->cap_scan) {
                        size_t cap = w->cap_scan ? w->cap_scan * 2 : 64;
                        ScanItem *n = realloc(w->scan, cap * sizeof(ScanItem));
                        if (!n) {
                                log_oom();
                                return;
                        }
                        w->scan = n;
                        w->cap_scan = cap;
                }
        }
        p = strdup(path);
        if (!p) {
                log_oom();
                return;
        }
        w->scan[w->n_scan++] = (ScanItem){p, report};
        if (!w->closing && !uv_is_active((uv_handle_t *)&w->idle))
                (void)uv_idle_start(&w->idle, on_idle);
}

static void scan_clear(FsWatch *w)
{
        for (size_t i = w->scan_head; i < w->n_scan; i++)
                free(w->scan[i].path);
        w->scan_head = w->n_scan = 0;
        if (!w->closing)
                (void)uv_idle_stop(&w->idle);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

static void scan_dir(FsWatch *w, const char *path, bool report)
{
        _cleanup_(fs_location_done) FsLocation loc = FS_LOCATION_NULL;
        _cleanup_(closedirp) DIR *d = NULL;
        unsigned generation = w->generation;
        int fd, r;
        bool descend;

        /* Resolved beneath the roots like any client path: the tree may change under us. */
        r = fs_chase(w->roots, path, FS_CHASE_NOFOLLOW, &loc);
        if (r < 0) {
                log_debug_errno(r, "Cannot scan %s, ignoring: %m", path);
                return;
        }
        fd = fs_location_open(&loc, O_RDONLY | O_DIRECTORY, 0);
        if (fd < 0) {
                log_debug_errno(fd, "Cannot open %s, ignoring: %m", path);
                return;
        }
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                log_oom();
                return;
        }

        /* Watch first, then list: whatever appears after this is an event, whatever was there before
         * is in the listing. Both at once coalesce. */
        r = watch_add(w, dirfd(d), path);
        descend = r > 0;
        if (r <= 0 && !report)
                return;

        for (;;) {
                struct dirent *de;
                _cleanup_free_ char *child = NULL;
                bool is_dir;

                errno = 0;
                de = readdir(d);
                if (!de)
                        break;
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (!utf8_is_valid(de->d_name, strlen(de->d_name)))
                        continue; /* cannot be named in JSON */
                is_dir = de->d_type == DT_DIR;
                if (de->d_type == DT_UNKNOWN) {
                        struct stat st;
                        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                                continue;
                        is_dir = S_ISDIR(st.st_mode);
                }
                if (w->ops->is_temporary && w->ops->is_temporary(de->d_name)) {
                        if (w->ops->temporary_found)
                                w->ops->temporary_found(dirfd(d), de->d_name, w->userdata);
                        continue;
                }
                child = path_join(path, de->d_name);
                if (!child || strlen(child) >= PATH_MAX)
                        continue;
                if (is_dir && excluded(w, child, de->d_name))
                        continue;
                if (report) {
                        change_add(w, FS_CHANGE_CREATED, child, is_dir);
                        /* Handing out a full batch may have led to a new root being set. */
                        if (w->generation != generation || w->closing)
                                return;
                }
                if (is_dir && descend)
                        scan_enqueue(w, child, report);
        }
}

static void scan_run(FsWatch *w, unsigned max_dirs, uint64_t budget_ns)
{
        uint64_t start = uv_hrtime();

        for (unsigned i = 0; i < max_dirs && w->scan_head < w->n_scan; i++) {
                ScanItem it = w->scan[w->scan_head++];

                scan_dir(w, it.path, it.report);
                free(it.path);
                if (uv_hrtime() - start > budget_ns)
                        break;
        }
        if (w->scan_head == w->n_scan && w->n_scan > 0) {
                scan_clear(w);
                log_debug("Watching %zu directories below %s.", w->n_watches, strna(w->root));
        }
}

/* --- Events ------------------------------------------------------------------------------------ */

static void root_gone(FsWatch *w)
{
        _cleanup_free_ char *root = strdup(w->root);

        log_debug("Watched tree %s was removed or moved.", w->root);
        watch_drop_all(w);
        scan_clear(w);
        if (root)
                change_add(w, FS_CHANGE_DELETED, root, true);
}

/* Writes to a file opened with O_TMPFILE, which has no name yet, are reported on its directory under
 * the name "#<inode>" (the worker's own atomic writes make them). Such a name does not exist; a file
 * somebody named so does, and is reported as any other. */
static bool unnamed_file_event(const struct inotify_event *ev, const char *path)
{
        struct stat st;
        size_t n = strlen(ev->name);

        if (n < 2 || ev->name[0] != '#' || strspn(ev->name + 1, "0123456789") != n - 1 ||
            (ev->mask & (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)))
                return false;
        return fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT;
}

static void handle_event(FsWatch *w, const struct inotify_event *ev)
{
        char path[PATH_MAX + NAME_MAX + 2];
        bool is_dir = ev->mask & IN_ISDIR, temporary;
        Watch *x;
        int n;

        if (ev->mask & IN_Q_OVERFLOW) {
                uint64_t limit = read_proc_limit("max_queued_events");
                char msg[200];

                if (!w->root)
                        return;
                (void)snprintf(
                    msg, sizeof(msg),
                    "The kernel dropped file change events (fs.inotify.max_queued_events = %llu); "
                    "some changes were not reported",
                    (unsigned long long)limit);
                w->ops->error(w->root, -EOVERFLOW, msg, limit, w->userdata);
                /* Directories created meanwhile may have gone unseen: look again. Watched ones keep
                 * their watch; nothing is reported for what is found. */
                scan_enqueue(w, w->root, false);
                return;
        }

        x = watch_find(w, ev->wd);
        if (!x)
                return; /* a watch dropped since (or of a previous root) */
        if (ev->mask & IN_IGNORED) {
                if (ev->wd == w->root_wd)
                        w->root_wd = -1;
                watch_remove(w, ev->wd);
                return;
        }
        if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) {
                /* A subdirectory's removal or move is reported by its parent's watch. */
                if (ev->wd == w->root_wd)
                        root_gone(w);
                return;
        }
        if (ev->len == 0 || !ev->name[0])
                return;
        if (!utf8_is_valid(ev->name, strlen(ev->name)))
                return;
        n = snprintf(path, sizeof(path), "%s%s%s", x->path, streq(x->path, "/") ? "" : "/", ev->name);
        if (n < 0 || (size_t)n >= PATH_MAX)
                return;
        if (is_dir && excluded(w, path, ev->name))
                return;

        if (unnamed_file_event(ev, path))
                return;
        temporary = w->ops->is_temporary && w->ops->is_temporary(ev->name);
        if (ev->mask & IN_MOVED_FROM)
                move_from(w, path, ev->cookie, is_dir, temporary);
        else if (ev->mask & IN_MOVED_TO)
                move_to(w, path, ev->cookie, is_dir, temporary);
        else if (temporary)
                return;
        else if (ev->mask & IN_CREATE) {
                change_add(w, FS_CHANGE_CREATED, path, is_dir);
                if (is_dir)
                        scan_enqueue(w, path, true);
        } else if (ev->mask & IN_DELETE)
                change_add(w, FS_CHANGE_DELETED, path, is_dir);
        else if ((ev->mask & (IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB)) && !is_dir)
                change_add(w, FS_CHANGE_MODIFIED, path, is_dir);
}

static void on_inotify(uv_poll_t *h, int status, int events)
{
        FsWatch *w = container_of(h, FsWatch, poll);

        if (status < 0) {
                log_debug("inotify poll failed: %s, ignoring.", uv_strerror(status));
                return;
        }
        for (unsigned round = 0; round < READS_PER_WAKEUP && !w->closing; round++) {
                ssize_t n = read(w->fd, w->buffer, sizeof(w->buffer));

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                log_debug_errno(errno, "Reading inotify events failed, ignoring: %m");
                        return;
                }
                for (char *p = w->buffer; p < w->buffer + n;) {
                        const struct inotify_event *ev = (const struct inotify_event *)p;
                        handle_event(w, ev);
                        p += sizeof(struct inotify_event) + ev->len;
                }
        }
}

/* --- Life cycle -------------------------------------------------------------------------------- */

int fs_watch_new(uv_loop_t *loop, const FsRoots *roots, const WorkerConfig *config, const FsWatchOps *ops,
                 void *userdata, FsWatch **ret)
{
        FsWatch *w;
        int r;

        assert(loop && roots && config && ops && ops->change && ops->error && ret);
        w = calloc(1, sizeof(FsWatch));
        if (!w)
                return -ENOMEM;
        w->slots = calloc(MAP_SLOTS, sizeof(Slot));
        if (!w->slots) {
                free(w);
                return -ENOMEM;
        }
        w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (w->fd < 0) {
                r = negative_errno();
                free(w->slots);
                free(w);
                return r;
        }
        *w = (FsWatch){
            .loop = loop,
            .roots = roots,
            .config = config,
            .ops = ops,
            .userdata = userdata,
            .fd = w->fd,
            .slots = w->slots,
            .root_wd = -1,
            .use_proc = access("/proc/self/fd", F_OK) >= 0,
        };

        /* The timer and the idle handle cannot fail to initialise; the poll handle can. */
        (void)uv_timer_init(loop, &w->timer);
        (void)uv_idle_init(loop, &w->idle);
        w->open_handles = 2;
        r = uv_poll_init(loop, &w->poll, w->fd);
        if (r >= 0) {
                w->open_handles++;
                r = uv_poll_start(&w->poll, UV_READABLE, on_inotify);
        }
        if (r < 0) {
                fs_watch_close(w, NULL, NULL);
                return r;
        }
        *ret = w;
        return 0;
}

int fs_watch_set_root(FsWatch *w, const char *root)
{
        char *p = NULL;

        assert(w && !w->closing);
        if (root) {
                p = strdup(root);
                if (!p)
                        return -ENOMEM;
        }
        watch_drop_all(w);
        changes_free(w->changes, w->n_changes);
        w->changes = NULL;
        w->n_changes = w->cap_changes = 0;
        memset(w->slots, 0, MAP_SLOTS * sizeof(Slot));
        uv_timer_stop(&w->timer);
        scan_clear(w);
        free(w->root);
        w->root = p;
        /* The workspace creates its state directory before any project is loaded; resolve it now so
         * it is compared by the same physical paths the watches use. */
        free(w->state_dir);
        w->state_dir = realpath(w->config->state_dir, NULL);
        w->limit_reported = false;
        w->generation++;

        if (w->root) {
                scan_enqueue(w, w->root, false);
                /* Watch a small project completely before the caller goes on, so a change made right
                 * after loading it is seen; a large one continues from the loop. */
                scan_run(w, 4 * SCAN_BATCH, 4 * SCAN_BUDGET_NS);
        }
        return 0;
}

size_t fs_watch_count(const FsWatch *w)
{
        return w->n_watches;
}

static void on_handle_closed(uv_handle_t *h)
{
        FsWatch *w = h->data;

        if (--w->open_handles > 0)
                return;
        safe_close(w->fd);
        for (size_t i = 0; i < w->n_watches; i++)
                free(w->watches[i].path);
        free(w->watches);
        changes_free(w->changes, w->n_changes);
        free(w->slots);
        for (size_t i = w->scan_head; i < w->n_scan; i++)
                free(w->scan[i].path);
        free(w->scan);
        free(w->root);
        free(w->state_dir);
        if (w->done)
                w->done(w->done_userdata);
        free(w);
}

void fs_watch_close(FsWatch *w, void (*done)(void *userdata), void *userdata)
{
        if (!w || w->closing)
                return;
        w->closing = true;
        w->done = done;
        w->done_userdata = userdata;
        w->timer.data = w->idle.data = w->poll.data = w;
        uv_close((uv_handle_t *)&w->timer, on_handle_closed);
        uv_close((uv_handle_t *)&w->idle, on_handle_closed);
        if (w->open_handles > 2)
                uv_close((uv_handle_t *)&w->poll, on_handle_closed);
}
