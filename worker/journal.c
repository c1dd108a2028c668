/* SPDX-License-Identifier: MIT */
#include "journal.h"

#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "buf.h"
#include "json.h"
#include "log.h"
#include "macro.h"

#define SNAP_MAGIC "HLSNAP01"
/* A snapshot of a file in another encoding than UTF-8: its name follows the tag. */
#define SNAP_MAGIC_CHARSET "HLSNAP02"
#define LOG_MAGIC          "HLLOG001"
#define MAGIC_LEN          8u
#define STATE_FILE         "state.json"
#define TMP_SUFFIX         ".tmp"
/* Every record: u32 length of the body, u32 CRC-32C of the body, then the body, which starts with
 * its type. Integers are little-endian. */
#define REC_HEADER 8u
#define REC_SNAPSHOT \
        'S' /* u64 version, u32 len + path, u32 len + tag, [u32 len + charset,] u64 len + text */
#define REC_EDIT        'E' /* u64 base version, u32 n, n × (u64 from, u64 to, u32 len + insert) */
#define REC_TAG         'T' /* u64 version, u32 len + tag */
#define EDIT_CHANGE_MIN 20u /* bytes of an edit record per change, insert not counted */

/* fsync at most this long after a write: the window in which a power loss can take edits. */
#define SYNC_DELAY_MS 1000
/* A log is compacted once it is larger than its document, but never below this: rewriting a small
 * document every few keystrokes would cost more than the log it saves. */
#define LOG_MIN (64u * 1024u)
/* ... or once replaying it would walk and move more than this many times that size. */
#define REPLAY_FACTOR  4u
#define MAX_TAG        1024u
#define MAX_STATE_FILE (16u * 1024u * 1024u)
#define NAME_PROBES    64u
#define ID_LEN         16u /* hex digits of the 64-bit hash that names a buffer's files */

/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), one byte at a time. */
static const uint32_t crc32c_table[256] = {
    0x00000000u, 0xf26b8303u, 0xe13b70f7u, 0x1350f3f4u, 0xc79a971fu, 0x35f1141cu, 0x26a1e7e8u, 0xd4ca64ebu,
    0x8ad958cfu, 0x78b2dbccu, 0x6be22838u, 0x9989ab3bu, 0x4d43cfd0u, 0xbf284cd3u, 0xac78bf27u, 0x5e133c24u,
    0x105ec76fu, 0xe235446cu, 0xf165b798u, 0x030e349bu, 0xd7c45070u, 0x25afd373u, 0x36ff2087u, 0xc494a384u,
    0x9a879fa0u, 0x68ec1ca3u, 0x7bbcef57u, 0x89d76c54u, 0x5d1d08bfu, 0xaf768bbcu, 0xbc267848u, 0x4e4dfb4bu,
    0x20bd8edeu, 0xd2d60dddu, 0xc186fe29u, 0x33ed7d2au, 0xe72719c1u, 0x154c9ac2u, 0x061c6936u, 0xf477ea35u,
    0xaa64d611u, 0x580f5512u, 0x4b5fa6e6u, 0xb93425e5u, 0x6dfe410eu, 0x9f95c20du, 0x8cc531f9u, 0x7eaeb2fau,
    0x30e349b1u, 0xc288cab2u, 0xd1d83946u, 0x23b3ba45u, 0xf779deaeu, 0x05125dadu, 0x1642ae59u, 0xe4292d5au,
    0xba3a117eu, 0x4851927du, 0x5b016189u, 0xa96ae28au, 0x7da08661u, 0x8fcb0562u, 0x9c9bf696u, 0x6ef07595u,
    0x417b1dbcu, 0xb3109ebfu, 0xa0406d4bu, 0x522bee48u, 0x86e18aa3u, 0x748a09a0u, 0x67dafa54u, 0x95b17957u,
    0xcba24573u, 0x39c9c670u, 0x2a993584u, 0xd8f2b687u, 0x0c38d26cu, 0xfe53516fu, 0xed03a29bu, 0x1f682198u,
    0x5125dad3u, 0xa34e59d0u, 0xb01eaa24u, 0x42752927u, 0x96bf4dccu, 0x64d4cecfu, 0x77843d3bu, 0x85efbe38u,
    0xdbfc821cu, 0x2997011fu, 0x3ac7f2ebu, 0xc8ac71e8u, 0x1c661503u, 0xee0d9600u, 0xfd5d65f4u, 0x0f36e6f7u,
    0x61c69362u, 0x93ad1061u, 0x80fde395u, 0x72966096u, 0xa65c047du, 0x5437877eu, 0x4767748au, 0xb50cf789u,
    0xeb1fcbadu, 0x197448aeu, 0x0a24bb5au, 0xf84f3859u, 0x2c855cb2u, 0xdeeedfb1u, 0xcdbe2c45u, 0x3fd5af46u,
    0x7198540du, 0x83f3d70eu, 0x90a324fau, 0x62c8a7f9u, 0xb602c312u, 0x44694011u, 0x5739b3e5u, 0xa55230e6u,
    0xfb410cc2u, 0x092a8fc1u, 0x1a7a7c35u, 0xe811ff36u, 0x3cdb9bddu, 0xceb018deu, 0xdde0eb2au, 0x2f8b6829u,
    0x82f63b78u, 0x709db87bu, 0x63cd4b8fu, 0x91a6c88cu, 0x456cac67u, 0xb7072f64u, 0xa457dc90u, 0x563c5f93u,
    0x082f63b7u, 0xfa44e0b4u, 0xe9141340u, 0x1b7f9043u, 0xcfb5f4a8u, 0x3dde77abu, 0x2e8e845fu, 0xdce5075cu,
    0x92a8fc17u, 0x60c37f14u, 0x73938ce0u, 0x81f80fe3u, 0x55326b08u, 0xa759e80bu, 0xb4091bffu, 0x466298fcu,
    0x1871a4d8u, 0xea1a27dbu, 0xf94ad42fu, 0x0b21572cu, 0xdfeb33c7u, 0x2d80b0c4u, 0x3ed04330u, 0xccbbc033u,
    0xa24bb5a6u, 0x502036a5u, 0x4370c551u, 0xb11b4652u, 0x65d122b9u, 0x97baa1bau, 0x84ea524eu, 0x7681d14du,
    0x2892ed69u, 0xdaf96e6au, 0xc9a99d9eu, 0x3bc21e9du, 0xef087a76u, 0x1d63f975u, 0x0e330a81u, 0xfc588982u,
    0xb21572c9u, 0x407ef1cau, 0x532e023eu, 0xa145813du, 0x758fe5d6u, 0x87e466d5u, 0x94b49521u, 0x66df1622u,
    0x38cc2a06u, 0xcaa7a905u, 0xd9f75af1u, 0x2b9cd9f2u, 0xff56bd19u, 0x0d3d3e1au, 0x1e6dcdeeu, 0xec064eedu,
    0xc38d26c4u, 0x31e6a5c7u, 0x22b65633u, 0xd0ddd530u, 0x0417b1dbu, 0xf67c32d8u, 0xe52cc12cu, 0x1747422fu,
    0x49547e0bu, 0xbb3ffd08u, 0xa86f0efcu, 0x5a048dffu, 0x8ecee914u, 0x7ca56a17u, 0x6ff599e3u, 0x9d9e1ae0u,
    0xd3d3e1abu, 0x21b862a8u, 0x32e8915cu, 0xc083125fu, 0x144976b4u, 0xe622f5b7u, 0xf5720643u, 0x07198540u,
    0x590ab964u, 0xab613a67u, 0xb831c993u, 0x4a5a4a90u, 0x9e902e7bu, 0x6cfbad78u, 0x7fab5e8cu, 0x8dc0dd8fu,
    0xe330a81au, 0x115b2b19u, 0x020bd8edu, 0xf0605beeu, 0x24aa3f05u, 0xd6c1bc06u, 0xc5914ff2u, 0x37faccf1u,
    0x69e9f0d5u, 0x9b8273d6u, 0x88d28022u, 0x7ab90321u, 0xae7367cau, 0x5c18e4c9u, 0x4f48173du, 0xbd23943eu,
    0xf36e6f75u, 0x0105ec76u, 0x12551f82u, 0xe03e9c81u, 0x34f4f86au, 0xc69f7b69u, 0xd5cf889du, 0x27a40b9eu,
    0x79b737bau, 0x8bdcb4b9u, 0x988c474du, 0x6ae7c44eu, 0xbe2da0a5u, 0x4c4623a6u, 0x5f16d052u, 0xad7d5351u,
};

struct JournalEntry {
        Journal *journal;
        char id[ID_LEN + 1];
        char *path;
        char *tag;
        Charset charset;
        uint64_t version; /* the buffer's version after the last record */
        int log_fd;
        int snap_fd;       /* a snapshot written but not fsynced yet, or -1 */
        uint64_t log_size; /* valid bytes in the log */
        uint64_t log_cost; /* what replaying the log would cost, as doc_edit() counts */
        bool log_unsynced;
        bool broken; /* a failed append left bytes that could not be taken back: snapshot next time */
        JournalEntry *prev, *next;
};

struct Journal {
        uv_loop_t *loop;
        JournalLimits limits;
        char *dir;
        int dir_fd; /* also holds the lock */
        uv_timer_t sync_timer;
        JournalEntry *entries;
        int state_fd; /* state.json written but not fsynced yet, or -1 */
        bool dir_unsynced;
        unsigned n_syncing; /* fsyncs running on the thread pool */
        bool closing, timer_closed;
};

typedef struct SyncReq {
        uv_fs_t req;
        Journal *journal;
        int fd;
} SyncReq;

static uint32_t crc32c(uint32_t crc, const void *p, size_t n)
{
        const uint8_t *s = p;

        crc = ~crc;
        while (n-- > 0)
                crc = crc32c_table[(crc ^ *s++) & 0xFFu] ^ (crc >> 8);
        return ~crc;
}

static uint64_t fnv1a64(uint64_t h, const void *p, size_t n)
{
        const uint8_t *s = p;

        for (size_t i = 0; i < n; i++) {
                h ^= s[i];
                h *= UINT64_C(0x100000001b3);
        }
        return h;
}

static int put_u32(Buf *b, uint32_t v)
{
        uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
        return buf_append(b, x, sizeof(x));
}

static int put_u64(Buf *b, uint64_t v)
{
        int r = put_u32(b, (uint32_t)v);
        return r < 0 ? r : put_u32(b, (uint32_t)(v >> 32));
}

static int put_str32(Buf *b, const char *s, size_t n)
{
        int r;

        if (n > UINT32_MAX)
                return -EFBIG;
        r = put_u32(b, (uint32_t)n);
        return r < 0 ? r : buf_append(b, s, n);
}

static uint32_t le32(const uint8_t *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void set_le32(uint8_t *p, uint32_t v)
{
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
        p[2] = (uint8_t)(v >> 16);
        p[3] = (uint8_t)(v >> 24);
}

/* A bounds-checked cursor over bytes read from disk: nothing there is trusted. */
typedef struct Reader {
        const uint8_t *p;
        size_t n;
} Reader;

static bool get_bytes(Reader *r, size_t n, const uint8_t **ret)
{
        if (r->n < n)
                return false;
        *ret = r->p;
        r->p += n;
        r->n -= n;
        return true;
}

static bool get_u8(Reader *r, uint8_t *ret)
{
        const uint8_t *p;

        if (!get_bytes(r, 1, &p))
                return false;
        *ret = p[0];
        return true;
}

static bool get_u32(Reader *r, uint32_t *ret)
{
        const uint8_t *p;

        if (!get_bytes(r, 4, &p))
                return false;
        *ret = le32(p);
        return true;
}

static bool get_u64(Reader *r, uint64_t *ret)
{
        const uint8_t *p;

        if (!get_bytes(r, 8, &p))
                return false;
        *ret = (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
        return true;
}

/* A length-prefixed string without NUL bytes, at most max bytes long. */
static bool get_str32(Reader *r, size_t max, const char **ret, size_t *ret_len)
{
        const uint8_t *p;
        uint32_t n;

        if (!get_u32(r, &n) || n > max || !get_bytes(r, n, &p) || memchr(p, '\0', n))
                return false;
        *ret = (const char *)p;
        *ret_len = n;
        return true;
}

/* The next record's body. 1: a record; 0: clean end; -EBADMSG: torn (short) or corrupt. */
static int next_record(Reader *r, Reader *ret_body)
{
        uint32_t len, crc;

        if (r->n == 0)
                return 0;
        if (r->n < REC_HEADER)
                return -EBADMSG;
        len = le32(r->p);
        crc = le32(r->p + 4);
        if (len == 0 || len > r->n - REC_HEADER || crc32c(0, r->p + REC_HEADER, len) != crc)
                return -EBADMSG;
        *ret_body = (Reader){r->p + REC_HEADER, len};
        r->p += REC_HEADER + len;
        r->n -= REC_HEADER + len;
        return 1;
}

/* Start a record in b; record_end() fills in its header. */
static int record_begin(Buf *b, char type, size_t *ret_start)
{
        static const uint8_t zero[REC_HEADER];
        int r;

        *ret_start = b->len;
        r = buf_append(b, zero, sizeof(zero));
        return r < 0 ? r : buf_append(b, &type, 1);
}

static int record_end(Buf *b, size_t start)
{
        size_t len = b->len - start - REC_HEADER;
        uint8_t *h = (uint8_t *)b->data + start;

        if (len > UINT32_MAX)
                return -EFBIG;
        set_le32(h, (uint32_t)len);
        set_le32(h + 4, crc32c(0, h + REC_HEADER, len));
        return 0;
}

static int write_all(int fd, const void *p, size_t n)
{
        const char *s = p;

        while (n > 0) {
                ssize_t k = write(fd, s, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                s += k;
                n -= (size_t)k;
        }
        return 0;
}

static int writev_all(int fd, const struct iovec *iov, int n)
{
        struct iovec v[4];
        int i = 0;

        assert(n >= 0 && (size_t)n <= ELEMENTSOF(v));
        memcpy(v, iov, (size_t)n * sizeof(struct iovec));
        while (i < n) {
                ssize_t k = writev(fd, v + i, n - i);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                while (i < n && (size_t)k >= v[i].iov_len) {
                        k -= (ssize_t)v[i].iov_len;
                        i++;
                }
                if (i < n) {
                        v[i].iov_base = (char *)v[i].iov_base + k;
                        v[i].iov_len -= (size_t)k;
                }
        }
        return 0;
}

/* Read at most max bytes of a regular file (NUL-terminated copy); *ret_truncated if there was more. */
static int read_fd(int fd, size_t max, char **ret, size_t *ret_len, bool *ret_truncated)
{
        _cleanup_free_ char *p = NULL;
        struct stat st;
        size_t n = 0, want;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        want = (uint64_t)st.st_size > max ? max : (size_t)st.st_size;
        p = malloc(want + 1);
        if (!p)
                return -ENOMEM;
        while (n < want) {
                ssize_t k = pread(fd, p + n, want - n, (off_t)n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        break;
                n += (size_t)k;
        }
        p[n] = '\0';
        *ret = TAKE_PTR(p);
        *ret_len = n;
        if (ret_truncated)
                *ret_truncated = (uint64_t)st.st_size > max;
        return 0;
}

static int read_file_at(int dir_fd, const char *name, size_t max, char **ret, size_t *ret_len,
                        bool *ret_truncated)
{
        _cleanup_close_ int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);

        if (fd < 0)
                return negative_errno();
        return read_fd(fd, max, ret, ret_len, ret_truncated);
}

static bool file_exists_at(int dir_fd, const char *name)
{
        struct stat st;

        return fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT;
}

static int mkdir_parents(const char *path, mode_t mode)
{
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1;; s++) {
                bool last = *s == '\0';

                if (*s != '/' && !last)
                        continue;
                *s = '\0';
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return negative_errno();
                if (last)
                        return 0;
                *s = '/';
        }
}

static void on_sync_timer(uv_timer_t *t);

/* Arm the fsync timer unless it is armed already: a steady stream of edits is synced once a second,
 * not pushed back forever. */
static void journal_schedule_sync(Journal *j)
{
        if (!j->closing && !uv_is_active((uv_handle_t *)&j->sync_timer))
                (void)uv_timer_start(&j->sync_timer, on_sync_timer, SYNC_DELAY_MS, 0);
}

/* Write a whole file under name via a temporary file and rename(2), so a reader sees the old or the
 * new content, never a mix. With sync_now the data is fsynced before the rename: the file replaces
 * one whose loss would lose edits. Otherwise the still-open file is handed back in *ret_unsynced_fd for
 * the next sync round. */
static int write_atomic(Journal *j, const char *name, const struct iovec *iov, int n_iov, bool sync_now,
                        int *ret_unsynced_fd)
{
        char tmp[NAME_MAX + 1];
        _cleanup_close_ int fd = -1;
        int r;

        if ((size_t)snprintf(tmp, sizeof(tmp), "%s" TMP_SUFFIX, name) >= sizeof(tmp))
                return -ENAMETOOLONG;
        fd = openat(j->dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0)
                return negative_errno();
        r = writev_all(fd, iov, n_iov);
        if (r >= 0 && sync_now && fsync(fd) < 0)
                r = negative_errno();
        if (r >= 0 && renameat(j->dir_fd, tmp, j->dir_fd, name) < 0)
                r = negative_errno();
        if (r < 0) {
                (void)unlinkat(j->dir_fd, tmp, 0);
                return r;
        }
        j->dir_unsynced = true;
        journal_schedule_sync(j);
        if (!sync_now)
                *ret_unsynced_fd = TAKE_FD(fd);
        return 0;
}

static void on_fsync_done(uv_fs_t *req)
{
        SyncReq *s = container_of(req, SyncReq, req);
        Journal *j = s->journal;

        /* An fsync error means the kernel could not write what it had: those edits exist in memory
         * only. Say so loudly; the next write will try again. */
        if (req->result < 0)
                log_error("Failed to fsync the journal in %s: %s", j->dir, uv_strerror((int)req->result));
        uv_fs_req_cleanup(req);
        safe_close(s->fd);
        free(s);
        j->n_syncing--;
        if (j->closing && j->timer_closed && j->n_syncing == 0) {
                free(j->dir);
                free(j);
        }
}

/* fsync fd (which we own) on the thread pool, or here if that cannot be arranged. */
static void sync_fd(Journal *j, int fd)
{
        SyncReq *s = malloc(sizeof(SyncReq));

        if (s) {
                s->journal = j;
                s->fd = fd;
                if (uv_fs_fsync(j->loop, &s->req, fd, on_fsync_done) >= 0) {
                        j->n_syncing++;
                        return;
                }
                free(s);
        }
        if (fsync(fd) < 0)
                log_error_errno(errno, "Failed to fsync the journal in %s: %m", j->dir);
        safe_close(fd);
}

/* The log stays open for appends: fsync a duplicate, which the sync request owns. */
static bool sync_dup(Journal *j, int fd)
{
        int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);

        if (copy < 0)
                return false;
        sync_fd(j, copy);
        return true;
}

static void on_sync_timer(uv_timer_t *t)
{
        Journal *j = t->data;
        bool again = false;

        for (JournalEntry *e = j->entries; e; e = e->next) {
                if (e->snap_fd >= 0)
                        sync_fd(j, TAKE_FD(e->snap_fd));
                if (e->log_unsynced) {
                        if (sync_dup(j, e->log_fd))
                                e->log_unsynced = false;
                        else
                                again = true;
                }
        }
        if (j->state_fd >= 0)
                sync_fd(j, TAKE_FD(j->state_fd));
        if (j->dir_unsynced) {
                if (sync_dup(j, j->dir_fd))
                        j->dir_unsynced = false;
                else
                        again = true;
        }
        if (again) {
                log_warning(
                    "Could not start fsync of the journal in %s (out of file descriptors?), retrying.",
                    j->dir);
                journal_schedule_sync(j);
        }
}

int journal_open(uv_loop_t *loop, const char *dir, const JournalLimits *limits, Journal **ret)
{
        _cleanup_close_ int fd = -1;
        Journal *j;
        int r;

        assert(loop && dir && limits && ret);
        if (dir[0] != '/')
                return -EINVAL;
        r = mkdir_parents(dir, 0700);
        if (r < 0)
                return r;
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        /* One worker per state directory: a second one would interleave its records with ours. */
        if (flock(fd, LOCK_EX | LOCK_NB) < 0)
                return errno == EWOULDBLOCK ? -EBUSY : negative_errno();

        j = calloc(1, sizeof(Journal));
        if (!j)
                return -ENOMEM;
        j->dir = strdup(dir);
        if (!j->dir) {
                free(j);
                return -ENOMEM;
        }
        j->loop = loop;
        j->limits = *limits;
        j->state_fd = -1;
        j->dir_fd = TAKE_FD(fd);
        (void)uv_timer_init(loop, &j->sync_timer);
        j->sync_timer.data = j;
        *ret = j;
        return 0;
}

static void entry_free(JournalEntry *e)
{
        Journal *j;

        if (!e)
                return;
        j = e->journal;
        if (e->prev)
                e->prev->next = e->next;
        else if (j->entries == e)
                j->entries = e->next;
        if (e->next)
                e->next->prev = e->prev;
        safe_close(e->log_fd);
        safe_close(e->snap_fd);
        free(e->path);
        free(e->tag);
        free(e);
}

static void on_timer_closed(uv_handle_t *h)
{
        Journal *j = h->data;

        j->timer_closed = true;
        if (j->n_syncing == 0) {
                free(j->dir);
                free(j);
        }
}

static void fsync_or_warn(Journal *j, int fd)
{
        if (fsync(fd) < 0)
                log_error_errno(errno, "Failed to fsync the journal in %s: %m", j->dir);
}

void journal_close(Journal *j)
{
        if (!j)
                return;
        assert(!j->closing);
        j->closing = true;
        uv_timer_stop(&j->sync_timer);

        /* Whatever the thread pool has not picked up yet is done here and now: after this returns,
         * the worker may exit. */
        while (j->entries) {
                JournalEntry *e = j->entries;
                if (e->snap_fd >= 0)
                        fsync_or_warn(j, e->snap_fd);
                if (e->log_unsynced)
                        fsync_or_warn(j, e->log_fd);
                entry_free(e);
        }
        if (j->state_fd >= 0)
                fsync_or_warn(j, j->state_fd);
        j->state_fd = safe_close(j->state_fd);
        if (j->dir_unsynced)
                fsync_or_warn(j, j->dir_fd);
        j->dir_fd = safe_close(j->dir_fd);
        uv_close((uv_handle_t *)&j->sync_timer, on_timer_closed);
}

static void entry_name(const JournalEntry *e, const char *suffix, char ret[static ID_LEN + 8])
{
        (void)snprintf(ret, ID_LEN + 8, "%s%s", e->id, suffix);
}

/* Snapshot doc at version into <id>.snap. */
static int entry_write_snapshot(JournalEntry *e, uint64_t version, const Document *doc, bool sync_now)
{
        Journal *j = e->journal;
        Buf h = {};
        struct iovec iov[3];
        char name[ID_LEN + 8];
        size_t start, size = doc_size(doc), body;
        uint32_t crc;
        int n, r, fd = -1;

        r = buf_append(&h, e->charset == CHARSET_UTF8 ? SNAP_MAGIC : SNAP_MAGIC_CHARSET, MAGIC_LEN);
        if (r >= 0)
                r = record_begin(&h, REC_SNAPSHOT, &start);
        if (r >= 0)
                r = put_u64(&h, version);
        if (r >= 0)
                r = put_str32(&h, e->path, strlen(e->path));
        if (r >= 0)
                r = put_str32(&h, e->tag, strlen(e->tag));
        if (r >= 0 && e->charset != CHARSET_UTF8)
                r = put_str32(&h, charset_to_string(e->charset), strlen(charset_to_string(e->charset)));
        if (r >= 0)
                r = put_u64(&h, size);
        if (r < 0) {
                buf_done(&h);
                return r;
        }
        body = h.len - start - REC_HEADER;
        if (size > UINT32_MAX - body) {
                buf_done(&h);
                return -EFBIG;
        }
        /* The text goes straight from the document to the file; the CRC covers it as it goes. */
        iov[0] = (struct iovec){h.data, h.len};
        n = doc_segments(doc, iov + 1);
        crc = crc32c(0, h.data + start + REC_HEADER, body);
        for (int i = 1; i <= n; i++)
                crc = crc32c(crc, iov[i].iov_base, iov[i].iov_len);
        set_le32((uint8_t *)h.data + start, (uint32_t)(body + size));
        set_le32((uint8_t *)h.data + start + 4, crc);

        entry_name(e, ".snap", name);
        r = write_atomic(j, name, iov, 1 + n, sync_now, &fd);
        buf_done(&h);
        if (r < 0)
                return r;
        /* A snapshot not yet fsynced is superseded by this one: the rename replaced it. */
        safe_close(e->snap_fd);
        e->snap_fd = fd;
        return 0;
}

/* Replace snapshot + log by a snapshot of doc. The previous snapshot (and with it the log) holds edits
 * that are on disk for good, so the new one is fsynced before it takes that place. */
static int entry_compact(JournalEntry *e, uint64_t version, const Document *doc)
{
        int r = entry_write_snapshot(e, version, doc, true);

        if (r < 0)
                return r;
        e->version = version;
        /* Records left in the log are older than the snapshot and skipped on replay, so a failed
         * truncation costs space, not correctness, unless a torn record sits at the end. */
        if (ftruncate(e->log_fd, MAGIC_LEN) < 0) {
                log_warning_errno(errno, "Failed to truncate the journal log %s/%s.log, ignoring: %m",
                                  e->journal->dir, e->id);
                return 0;
        }
        e->log_size = MAGIC_LEN;
        e->log_cost = 0;
        e->broken = false;
        e->log_unsynced = true;
        return 0;
}

int journal_set_path(JournalEntry *e, const char *path, uint64_t version, const Document *doc)
{
        char *old = e->path;
        int r;

        assert(e && path && doc);
        if (path[0] != '/' || strlen(path) >= PATH_MAX)
                return -EINVAL;
        e->path = strdup(path);
        if (!e->path) {
                e->path = old;
                return -ENOMEM;
        }
        r = entry_compact(e, version, doc);
        if (r < 0) {
                free(e->path);
                e->path = old;
                return r;
        }
        free(old);
        return 0;
}

/* Append one finished record, or compact instead when the log has grown too big. */
static int entry_append(JournalEntry *e, const Buf *rec, size_t cost, uint64_t new_version,
                        const Document *doc)
{
        uint64_t threshold = MAX(doc_size(doc), (size_t)LOG_MIN);
        int r;

        if (e->broken || e->log_size + rec->len > threshold ||
            e->log_cost + cost > REPLAY_FACTOR * threshold)
                return entry_compact(e, new_version, doc);

        r = write_all(e->log_fd, rec->data, rec->len);
        if (r < 0) {
                /* Take the partial record back: a record after a torn one would never be replayed. */
                if (ftruncate(e->log_fd, (off_t)e->log_size) < 0)
                        e->broken = true;
                return r;
        }
        e->log_size += rec->len;
        e->log_cost += cost;
        e->version = new_version;
        e->log_unsynced = true;
        journal_schedule_sync(e->journal);
        return 0;
}

static int entry_new(Journal *j, const char *path, const char *tag, JournalEntry **ret)
{
        JournalEntry *e = calloc(1, sizeof(JournalEntry));

        if (!e)
                return -ENOMEM;
        e->journal = j;
        e->log_fd = e->snap_fd = -1;
        e->path = strdup(path);
        e->tag = strdup(tag);
        if (!e->path || !e->tag) {
                free(e->path);
                free(e->tag);
                free(e);
                return -ENOMEM;
        }
        *ret = e;
        return 0;
}

static void entry_link(Journal *j, JournalEntry *e)
{
        e->next = j->entries;
        if (j->entries)
                j->entries->prev = e;
        j->entries = e;
}

int journal_add(Journal *j, const char *path, const char *tag, Charset charset, uint64_t version,
                const Document *doc, JournalEntry **ret)
{
        JournalEntry *e;
        char name[ID_LEN + 8];
        int r;

        assert(j && path && tag && doc && ret);
        assert(!j->closing);
        if (strlen(tag) > MAX_TAG)
                return -EINVAL;
        r = entry_new(j, path, tag, &e);
        if (r < 0)
                return r;
        e->charset = charset;

        /* The name is a hash of the path; on a collision (or a buffer kept on disk over its limits)
         * the next name is tried. The log is created exclusively, so a name is never shared. */
        r = -EEXIST;
        for (unsigned probe = 0; probe < NAME_PROBES; probe++) {
                uint64_t h = fnv1a64(UINT64_C(0xcbf29ce484222325), path, strlen(path));

                h = fnv1a64(h, &probe, sizeof(probe));
                (void)snprintf(e->id, sizeof(e->id), "%016" PRIx64, h);
                entry_name(e, ".snap", name);
                if (file_exists_at(j->dir_fd, name))
                        continue;
                entry_name(e, ".log", name);
                e->log_fd =
                    openat(j->dir_fd, name,
                           O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
                if (e->log_fd >= 0) {
                        r = 0;
                        break;
                }
                if (errno != EEXIST) {
                        r = negative_errno();
                        break;
                }
        }
        if (r < 0) {
                entry_free(e);
                return r;
        }

        r = write_all(e->log_fd, LOG_MAGIC, MAGIC_LEN);
        /* Nothing on disk depends on this buffer's earlier state (it was clean), so the first snapshot
         * waits for the regular fsync like any append. */
        if (r >= 0)
                r = entry_write_snapshot(e, version, doc, false);
        if (r < 0) {
                entry_name(e, ".log", name);
                (void)unlinkat(j->dir_fd, name, 0);
                entry_free(e);
                return r;
        }
        e->log_size = MAGIC_LEN;
        e->version = version;
        e->log_unsynced = true;
        entry_link(j, e);
        journal_schedule_sync(j);
        *ret = e;
        return 0;
}

int journal_append_edit(JournalEntry *e, uint64_t version, const DocChange *changes, size_t n_changes,
                        size_t cost, const Document *doc)
{
        _cleanup_(buf_done) Buf rec = {};
        size_t start;
        int r;

        assert(e && doc && (changes || n_changes == 0));
        assert(!e->journal->closing);
        if (n_changes > UINT32_MAX)
                return -EFBIG;
        r = record_begin(&rec, REC_EDIT, &start);
        if (r >= 0)
                r = put_u64(&rec, version);
        if (r >= 0)
                r = put_u32(&rec, (uint32_t)n_changes);
        for (size_t i = 0; r >= 0 && i < n_changes; i++) {
                r = put_u64(&rec, changes[i].from);
                if (r >= 0)
                        r = put_u64(&rec, changes[i].to);
                if (r >= 0)
                        r = put_str32(&rec, changes[i].insert, changes[i].insert_len);
        }
        if (r >= 0)
                r = record_end(&rec, start);
        if (r < 0)
                return r;
        return entry_append(e, &rec, cost, version + 1, doc);
}

int journal_set_tag(JournalEntry *e, uint64_t version, const char *tag, const Document *doc)
{
        _cleanup_(buf_done) Buf rec = {};
        char *copy;
        size_t start;
        int r;

        assert(e && tag && doc);
        assert(!e->journal->closing);
        if (strlen(tag) > MAX_TAG)
                return -EINVAL;
        copy = strdup(tag);
        if (!copy)
                return -ENOMEM;
        r = record_begin(&rec, REC_TAG, &start);
        if (r >= 0)
                r = put_u64(&rec, version);
        if (r >= 0)
                r = put_str32(&rec, tag, strlen(tag));
        if (r >= 0)
                r = record_end(&rec, start);
        if (r < 0) {
                free(copy);
                return r;
        }
        /* A compaction instead of the append must already write the new tag. */
        free(e->tag);
        e->tag = copy;
        return entry_append(e, &rec, 0, version, doc);
}

void journal_remove(JournalEntry *e)
{
        Journal *j;
        char name[ID_LEN + 8];

        if (!e)
                return;
        j = e->journal;
        assert(!j->closing);
        /* The snapshot first: a log without one is an orphan that loading discards. */
        entry_name(e, ".snap", name);
        if (unlinkat(j->dir_fd, name, 0) < 0 && errno != ENOENT)
                log_warning_errno(errno, "Failed to remove %s/%s, ignoring: %m", j->dir, name);
        entry_name(e, ".log", name);
        if (unlinkat(j->dir_fd, name, 0) < 0 && errno != ENOENT)
                log_warning_errno(errno, "Failed to remove %s/%s, ignoring: %m", j->dir, name);
        j->dir_unsynced = true;
        journal_schedule_sync(j);
        entry_free(e);
}

int journal_write_state(Journal *j, const char *root, const char *const *paths, size_t n_paths)
{
        _cleanup_json_ cJSON *o = cJSON_CreateObject();
        _cleanup_free_ char *text = NULL;
        cJSON *list;
        size_t len;
        struct iovec iov;
        int fd = -1, r;

        assert(j && (paths || n_paths == 0));
        assert(!j->closing);
        if (!o || !cJSON_AddNumberToObject(o, "version", 1) ||
            !(root ? cJSON_AddStringToObject(o, "root", root) : cJSON_AddNullToObject(o, "root")) ||
            !(list = cJSON_AddArrayToObject(o, "openFiles")))
                return -ENOMEM;
        for (size_t i = 0; i < n_paths; i++) {
                cJSON *s = cJSON_CreateString(paths[i]);
                if (!s || !cJSON_AddItemToArray(list, s)) {
                        cJSON_Delete(s);
                        return -ENOMEM;
                }
        }
        text = json_print(o, &len);
        if (!text)
                return -ENOMEM;
        iov = (struct iovec){text, len};
        r = write_atomic(j, STATE_FILE, &iov, 1, false, &fd);
        if (r < 0)
                return r;
        safe_close(j->state_fd);
        j->state_fd = fd;
        return 0;
}

void journal_state_done(JournalState *s)
{
        if (!s)
                return;
        free(s->root);
        for (size_t i = 0; i < s->n_paths; i++)
                free(s->paths[i]);
        free(s->paths);
        *s = (JournalState){};
}

void journal_docs_free(JournalDoc *docs, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(docs[i].path);
                free(docs[i].tag);
                doc_free(docs[i].doc);
        }
        free(docs);
}

static bool path_ok(const char *s, size_t n)
{
        return n > 0 && n < PATH_MAX && s[0] == '/';
}

static int load_state(Journal *j, JournalState *ret)
{
        _cleanup_free_ char *text = NULL;
        _cleanup_json_ cJSON *o = NULL;
        const cJSON *root, *list, *item;
        JournalState s = {};
        size_t len;
        bool truncated;
        int r;

        r = read_file_at(j->dir_fd, STATE_FILE, MAX_STATE_FILE, &text, &len, &truncated);
        if (r == -ENOENT) {
                *ret = s;
                return 0;
        }
        if (r < 0)
                return log_warning_errno(r, "Failed to read %s/" STATE_FILE ", starting without it: %m",
                                         j->dir);
        o = truncated ? NULL : json_parse(text, len);
        root = cJSON_GetObjectItemCaseSensitive(o, "root");
        list = cJSON_GetObjectItemCaseSensitive(o, "openFiles");
        if (!cJSON_IsObject(o) || !(cJSON_IsNull(root) || cJSON_IsString(root)) || !cJSON_IsArray(list)) {
                log_warning("%s/" STATE_FILE " is damaged, starting without it.", j->dir);
                *ret = s;
                return 0;
        }
        if (cJSON_IsString(root) && path_ok(root->valuestring, strlen(root->valuestring))) {
                s.root = strdup(root->valuestring);
                if (!s.root)
                        return -ENOMEM;
        }
        s.paths = calloc(MIN((size_t)cJSON_GetArraySize(list), j->limits.max_entries) + 1, sizeof(char *));
        if (!s.paths) {
                journal_state_done(&s);
                return -ENOMEM;
        }
        cJSON_ArrayForEach(item, list)
        {
                if (!cJSON_IsString(item) || !path_ok(item->valuestring, strlen(item->valuestring)))
                        continue;
                if (s.n_paths >= j->limits.max_entries) {
                        log_warning("%s/" STATE_FILE
                                    " lists more open files than the limit (%zu), ignoring the rest.",
                                    j->dir, j->limits.max_entries);
                        break;
                }
                s.paths[s.n_paths] = strdup(item->valuestring);
                if (!s.paths[s.n_paths]) {
                        journal_state_done(&s);
                        return -ENOMEM;
                }
                s.n_paths++;
        }
        *ret = s;
        return 0;
}

/* Parse a snapshot file. The returned strings point into text. */
static int parse_snapshot(const char *text, size_t len, uint64_t *ret_version, const char **ret_path,
                          size_t *ret_path_len, const char **ret_tag, size_t *ret_tag_len,
                          Charset *ret_charset, const char **ret_body, size_t *ret_body_len)
{
        Reader r = {(const uint8_t *)text, len}, body;
        const uint8_t *p;
        const char *cs = NULL;
        size_t cs_len = 0;
        char cs_name[32];
        uint64_t n;
        uint8_t type;
        bool has_charset;

        if (!get_bytes(&r, MAGIC_LEN, &p))
                return -EBADMSG;
        if (memcmp(p, SNAP_MAGIC, MAGIC_LEN) == 0)
                has_charset = false;
        else if (memcmp(p, SNAP_MAGIC_CHARSET, MAGIC_LEN) == 0)
                has_charset = true;
        else
                return -EBADMSG;
        if (next_record(&r, &body) != 1 || r.n != 0)
                return -EBADMSG;
        if (!get_u8(&body, &type) || type != REC_SNAPSHOT || !get_u64(&body, ret_version) ||
            !get_str32(&body, PATH_MAX, ret_path, ret_path_len) || !path_ok(*ret_path, *ret_path_len) ||
            !get_str32(&body, MAX_TAG, ret_tag, ret_tag_len) ||
            (has_charset && !get_str32(&body, sizeof(cs_name) - 1, &cs, &cs_len)) || !get_u64(&body, &n) ||
            n != body.n)
                return -EBADMSG;
        *ret_charset = CHARSET_UTF8;
        if (has_charset) {
                memcpy(cs_name, cs, cs_len);
                cs_name[cs_len] = '\0';
                *ret_charset = charset_from_string(cs_name);
                if (*ret_charset < 0 || *ret_charset == CHARSET_UTF8)
                        return -EBADMSG;
        }
        *ret_body = (const char *)body.p;
        *ret_body_len = body.n;
        return 0;
}

/* Apply one log record to doc. 1: applied; 0: older than the snapshot, skipped; -EBADMSG: does not
 * follow. */
static int replay_record(Journal *j, Reader *body, uint64_t snap_version, uint64_t *version, Document *doc,
                         char **tag, uint64_t *cost)
{
        _cleanup_free_ DocChange *changes = NULL;
        uint64_t v;
        uint32_t n;
        uint8_t type;
        size_t c = 0;

        if (!get_u8(body, &type) || !get_u64(body, &v))
                return -EBADMSG;
        if (v < snap_version)
                return 0; /* left behind by a compaction cut short; the snapshot has it */
        if (v != *version)
                return -EBADMSG;

        switch (type) {
        case REC_EDIT:
                if (!get_u32(body, &n) || n == 0 || n > body->n / EDIT_CHANGE_MIN)
                        return -EBADMSG;
                changes = calloc(n, sizeof(DocChange));
                if (!changes)
                        return -ENOMEM;
                for (uint32_t i = 0; i < n; i++) {
                        const uint8_t *p;
                        uint32_t len;
                        if (!get_u64(body, &changes[i].from) || !get_u64(body, &changes[i].to) ||
                            !get_u32(body, &len) || !get_bytes(body, len, &p))
                                return -EBADMSG;
                        changes[i].insert = (const char *)p;
                        changes[i].insert_len = len;
                }
                if (body->n != 0)
                        return -EBADMSG;
                /* Every record passed the same checks when it was written; one that fails them now is
                 * damage, and stops the replay like a bad CRC. */
                /* No size limit here: a text over the limits (lowered since) is kept on disk whole. */
                if (doc_edit(doc, changes, n, SIZE_MAX / 4, SIZE_MAX, &c, NULL) < 0)
                        return -EBADMSG;
                doc_commit(doc);
                *cost += c;
                *version = v + 1;
                return 1;
        case REC_TAG: {
                const char *t;
                size_t len;
                char *copy;
                if (!get_str32(body, MAX_TAG, &t, &len) || body->n != 0)
                        return -EBADMSG;
                copy = strndup(t, len);
                if (!copy)
                        return -ENOMEM;
                free(*tag);
                *tag = copy;
                return 1;
        }
        default:
                return -EBADMSG;
        }
}

DEFINE_TRIVIAL_CLEANUP_FUNC(Document *, doc_free);

/* Load <id>.snap and replay <id>.log onto it. -EFBIG: over the limits (the files stay, for a worker
 * with higher limits); -EBADMSG: nothing usable. total is the text already restored. */
static int load_entry(Journal *j, const char *id, size_t total, JournalDoc *ret)
{
        _cleanup_free_ char *snap = NULL, *log = NULL, *cur_tag = NULL, *path = NULL;
        _cleanup_(doc_freep) Document *doc = NULL;
        _cleanup_close_ int log_fd = -1;
        const char *p, *tag, *text;
        size_t snap_len, log_len, path_len, tag_len, text_len;
        uint64_t snap_version, version, cost = 0, valid = 0;
        char name[ID_LEN + 8];
        bool truncated;
        Charset charset;
        JournalEntry *e;
        Reader rd;
        int r;

        (void)snprintf(name, sizeof(name), "%s.snap", id);
        /* The text plus room for the header, path and tag. */
        r = read_file_at(j->dir_fd, name, j->limits.max_doc_size + PATH_MAX + MAX_TAG + 64, &snap, &snap_len,
                         &truncated);
        if (r < 0)
                return r;
        if (truncated)
                return -EFBIG;
        r = parse_snapshot(snap, snap_len, &snap_version, &p, &path_len, &tag, &tag_len, &charset, &text,
                           &text_len);
        if (r < 0)
                return r;
        if (text_len > j->limits.max_doc_size)
                return -EFBIG;
        r = doc_new(text, text_len, &doc);
        if (r < 0)
                return r == -EINVAL ? -EBADMSG : r;
        path = strndup(p, path_len);
        cur_tag = strndup(tag, tag_len);
        if (!path || !cur_tag)
                return -ENOMEM;

        (void)snprintf(name, sizeof(name), "%s.log", id);
        log_fd =
            openat(j->dir_fd, name, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (log_fd < 0)
                return negative_errno();
        /* A log never grows much beyond its document (see entry_append()); more is damage. */
        r = read_fd(log_fd, MAX(j->limits.max_doc_size, (size_t)LOG_MIN) * 2 + MAX_TAG, &log, &log_len,
                    &truncated);
        if (r < 0)
                return r;

        version = snap_version;
        rd = (Reader){(const uint8_t *)log, log_len};
        if (log_len >= MAGIC_LEN && memcmp(log, LOG_MAGIC, MAGIC_LEN) == 0) {
                valid = MAGIC_LEN;
                rd.p += MAGIC_LEN;
                rd.n -= MAGIC_LEN;
                for (;;) {
                        Reader body;

                        r = next_record(&rd, &body);
                        if (r == 0)
                                break;
                        if (r > 0)
                                r = replay_record(j, &body, snap_version, &version, doc, &cur_tag, &cost);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0)
                                break;
                        valid = log_len - rd.n;
                }
        }
        /* Over the limits (maybe lowered since): not restored, and nothing on disk is touched. A log
         * longer than any this worker writes counts as that too. */
        if (truncated || doc_size(doc) > j->limits.max_doc_size ||
            doc_size(doc) > j->limits.max_total_size - total)
                return -EFBIG;

        if (valid < log_len)
                /* A torn last write (the worker was killed in the middle of it) ends up here. */
                log_warning("Journal log %s/%s.log of %s is torn or damaged after %" PRIu64
                            " bytes: keeping the edits before that, dropping the rest.",
                            j->dir, id, path, valid);
        if (valid < MAGIC_LEN) {
                /* Not even the header (the log is damaged, or was lost): start it afresh. */
                if (ftruncate(log_fd, 0) < 0)
                        return negative_errno();
                r = write_all(log_fd, LOG_MAGIC, MAGIC_LEN);
                if (r < 0)
                        return r;
                valid = MAGIC_LEN;
        } else if (valid < log_len && ftruncate(log_fd, (off_t)valid) < 0)
                return negative_errno();

        r = entry_new(j, path, cur_tag, &e);
        if (r < 0)
                return r;
        memcpy(e->id, id, ID_LEN + 1);
        e->charset = charset;
        e->version = version;
        e->log_fd = TAKE_FD(log_fd);
        e->log_size = valid;
        e->log_cost = cost;
        e->log_unsynced = true;
        entry_link(j, e);

        *ret = (JournalDoc){
            .path = TAKE_PTR(path),
            .tag = TAKE_PTR(cur_tag),
            .version = version,
            .charset = charset,
            .doc = TAKE_PTR(doc),
            .entry = e,
        };
        return 0;
}

static bool is_id_name(const char *name, const char *suffix)
{
        size_t n = strlen(name);

        if (n != ID_LEN + strlen(suffix) || !streq(name + ID_LEN, suffix))
                return false;
        for (size_t i = 0; i < ID_LEN; i++) {
                char c = name[i];
                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
                        return false;
        }
        return true;
}

static int cmp_id(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static void strv_freep(char ***p)
{
        if (!*p)
                return;
        for (char **s = *p; *s; s++)
                free(*s);
        free(*p);
}

/* Names of snapshots in the directory, sorted; stray temporary files and orphan logs are removed. */
static int list_snapshots(Journal *j, char ***ret, size_t *ret_n)
{
        _cleanup_(strv_freep) char **ids = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        DIR *d;
        int fd;

        fd = openat(j->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return negative_errno();
        }
        while ((de = readdir(d))) {
                const char *name = de->d_name;
                size_t len = strlen(name);

                if (len > strlen(TMP_SUFFIX) && streq(name + len - strlen(TMP_SUFFIX), TMP_SUFFIX)) {
                        /* A replacement that never got renamed into place. */
                        (void)unlinkat(j->dir_fd, name, 0);
                        continue;
                }
                if (is_id_name(name, ".log")) {
                        char snap[ID_LEN + 8];
                        (void)snprintf(snap, sizeof(snap), "%.*s.snap", (int)ID_LEN, name);
                        if (!file_exists_at(j->dir_fd, snap))
                                (void)unlinkat(j->dir_fd, name, 0); /* its buffer was dropped */
                        continue;
                }
                if (!is_id_name(name, ".snap"))
                        continue;
                if (n + 2 > cap) {
                        size_t c = cap ? cap * 2 : 16;
                        char **p = reallocarray(ids, c, sizeof(char *));
                        if (!p) {
                                closedir(d);
                                return -ENOMEM;
                        }
                        ids = p;
                        cap = c;
                }
                ids[n] = strndup(name, ID_LEN);
                if (!ids[n]) {
                        closedir(d);
                        return -ENOMEM;
                }
                ids[++n] = NULL;
        }
        closedir(d);
        if (ids)
                qsort(ids, n, sizeof(char *), cmp_id);
        *ret = TAKE_PTR(ids);
        *ret_n = n;
        return 0;
}

static void remove_files(Journal *j, const char *id)
{
        char name[ID_LEN + 8];

        (void)snprintf(name, sizeof(name), "%s.snap", id);
        (void)unlinkat(j->dir_fd, name, 0);
        (void)snprintf(name, sizeof(name), "%s.log", id);
        (void)unlinkat(j->dir_fd, name, 0);
        j->dir_unsynced = true;
}

int journal_load(Journal *j, JournalState *ret_state, JournalDoc **ret_docs, size_t *ret_n_docs)
{
        _cleanup_(journal_state_done) JournalState state = {};
        _cleanup_(strv_freep) char **ids = NULL;
        JournalDoc *docs;
        size_t n_ids = 0, n = 0, total = 0;
        int r;

        assert(j && ret_state && ret_docs && ret_n_docs);
        r = load_state(j, &state);
        if (r < 0)
                return r;
        r = list_snapshots(j, &ids, &n_ids);
        if (r < 0)
                return log_error_errno(r, "Failed to list the journal in %s: %m", j->dir);
        docs = calloc(MAX(j->limits.max_entries, (size_t)1), sizeof(JournalDoc));
        if (!docs)
                return -ENOMEM;

        for (size_t i = 0; i < n_ids; i++) {
                JournalDoc d = {};

                if (n >= j->limits.max_entries) {
                        log_warning("More unsaved buffers in %s than the limit of %zu; %s.snap is kept but "
                                    "not restored.",
                                    j->dir, j->limits.max_entries, ids[i]);
                        continue;
                }
                r = load_entry(j, ids[i], total, &d);
                if (r == -ENOMEM) {
                        journal_docs_free(docs, n);
                        return r;
                }
                if (r == -EFBIG) {
                        log_warning(
                            "Unsaved buffer %s/%s.snap is over the size limits; kept but not restored.",
                            j->dir, ids[i]);
                        continue;
                }
                if (r < 0) {
                        log_warning_errno(r, "Journal snapshot %s/%s.snap is unusable (%m), removing it.",
                                          j->dir, ids[i]);
                        remove_files(j, ids[i]);
                        continue;
                }
                /* Two entries for one path cannot both be right; the later version wins. */
                for (size_t k = 0; k < n; k++) {
                        if (!streq(docs[k].path, d.path))
                                continue;
                        if (d.version > docs[k].version) {
                                JournalDoc t = docs[k];
                                total = total - doc_size(t.doc) + doc_size(d.doc);
                                docs[k] = d;
                                d = t;
                        }
                        log_warning("Two journal entries for %s, dropping version %" PRIu64 ".", d.path,
                                    d.version);
                        journal_remove(d.entry);
                        free(d.path);
                        free(d.tag);
                        doc_free(d.doc);
                        d = (JournalDoc){};
                        break;
                }
                if (!d.entry)
                        continue;
                total += doc_size(d.doc);
                docs[n++] = d;
        }
        journal_schedule_sync(j);

        *ret_state = state;
        state = (JournalState){};
        *ret_docs = docs;
        *ret_n_docs = n;
        return 0;
}
