/* SPDX-License-Identifier: MIT */
/* Journal: what comes back after the worker dies, including after a torn last write. */
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "journal.h"
#include "log.h"

typedef struct Fixture {
        char base[64];
        char dir[128];
        uv_loop_t loop;
        Journal *j;
        JournalLimits limits;
} Fixture;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

static int setup(void **state)
{
        Fixture *f = calloc(1, sizeof(Fixture));

        assert_non_null(f);
        strcpy(f->base, "/tmp/helios-test-journal-XXXXXX");
        assert_non_null(mkdtemp(f->base));
        (void)snprintf(f->dir, sizeof(f->dir), "%s/a/b/helios", f->base);
        assert_int_equal(uv_loop_init(&f->loop), 0);
        f->limits = (JournalLimits){
            .max_entries = 16, .max_doc_size = 1024 * 1024, .max_total_size = 4 * 1024 * 1024};
        *state = f;
        return 0;
}

static void close_journal(Fixture *f)
{
        journal_close(f->j);
        f->j = NULL;
        assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
}

static int teardown(void **state)
{
        Fixture *f = *state;

        if (f->j)
                close_journal(f);
        /* Every handle and request has finished. */
        assert_int_equal(uv_loop_close(&f->loop), 0);
        assert_int_equal(nftw(f->base, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
        free(f);
        return 0;
}

static void open_journal(Fixture *f)
{
        assert_int_equal(journal_open(&f->loop, f->dir, &f->limits, &f->j), 0);
}

static void path_in(const Fixture *f, const char *name, char *ret, size_t n)
{
        (void)snprintf(ret, n, "%s/%s", f->dir, name);
}

static Document *doc(const char *s)
{
        Document *d = NULL;

        assert_int_equal(doc_new(s, strlen(s), &d), 0);
        return d;
}

/* Apply one change to doc and journal it as the edit from version v. */
static void edit(JournalEntry *e, Document *d, uint64_t v, uint64_t from, uint64_t to, const char *insert)
{
        DocChange c = {from, to, insert, strlen(insert)};
        size_t cost = 0;

        assert_int_equal(doc_edit(d, &c, 1, SIZE_MAX / 4, SIZE_MAX, &cost, NULL), 0);
        doc_commit(d);
        assert_int_equal(journal_append_edit(e, v, &c, 1, cost, d), 0);
}

/* Close, reopen and load; exactly n documents expected. */
static JournalDoc *reload(Fixture *f, JournalState *st, size_t n)
{
        JournalDoc *docs = NULL;
        size_t got = 99;

        close_journal(f);
        open_journal(f);
        assert_int_equal(journal_load(f->j, st, &docs, &got), 0);
        assert_int_equal(got, n);
        return docs;
}

/* The file name of the one file with this suffix in the journal directory. */
static void find_file(const Fixture *f, const char *suffix, char *ret, size_t n)
{
        char cmd[256];
        FILE *p;

        (void)snprintf(cmd, sizeof(cmd), "ls %s | grep '%s$'", f->dir, suffix);
        p = popen(cmd, "r");
        assert_non_null(p);
        assert_non_null(fgets(ret, (int)n, p));
        ret[strcspn(ret, "\n")] = '\0';
        assert_int_equal(pclose(p), 0);
}

static off_t file_size(const Fixture *f, const char *name)
{
        char p[256];
        struct stat st;

        path_in(f, name, p, sizeof(p));
        if (stat(p, &st) < 0)
                return -1;
        return st.st_size;
}

static void test_open_creates_private_dir_and_locks(void **state)
{
        Fixture *f = *state;
        struct stat st;
        char parent[128];
        Journal *other = NULL;

        open_journal(f);
        assert_int_equal(stat(f->dir, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0700);
        (void)snprintf(parent, sizeof(parent), "%s/a", f->base);
        assert_int_equal(stat(parent, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        /* A second worker on the same state directory is refused. */
        assert_int_equal(journal_open(&f->loop, f->dir, &f->limits, &other), -EBUSY);
        assert_null(other);
        assert_int_equal(journal_open(&f->loop, "relative/dir", &f->limits, &other), -EINVAL);
}

static void test_roundtrip(void **state)
{
        Fixture *f = *state;
        JournalState st = {};
        JournalDoc *docs;
        JournalEntry *e;
        Document *d = doc("hello");
        const char *paths[] = {"/home/u/a.txt", "/home/u/b.txt"};

        open_journal(f);
        assert_int_equal(journal_load(f->j, &st, &docs, &(size_t){0}), 0);
        assert_null(st.root);
        assert_int_equal(st.n_paths, 0);
        journal_docs_free(docs, 0);
        journal_state_done(&st);

        assert_int_equal(journal_write_state(f->j, "/home/u", paths, 2), 0);
        assert_int_equal(journal_add(f->j, "/home/u/a.txt", "tag-1", CHARSET_UTF8, 2, d, &e), 0);
        edit(e, d, 2, 5, 5, " world");
        edit(e, d, 3, 0, 1, "H");
        assert_int_equal(journal_set_tag(e, 4, "tag-2", d), 0);
        edit(e, d, 4, 11, 11, "! \xF0\x9F\x98\x80");
        doc_free(d);

        docs = reload(f, &st, 1);
        assert_string_equal(st.root, "/home/u");
        assert_int_equal(st.n_paths, 2);
        assert_string_equal(st.paths[0], "/home/u/a.txt");
        assert_string_equal(st.paths[1], "/home/u/b.txt");
        assert_string_equal(docs[0].path, "/home/u/a.txt");
        assert_string_equal(docs[0].tag, "tag-2");
        assert_int_equal(docs[0].version, 5);
        assert_string_equal(doc_text(docs[0].doc), "Hello world! \xF0\x9F\x98\x80");
        assert_non_null(docs[0].entry);

        /* The restored entry goes on recording. */
        edit(docs[0].entry, docs[0].doc, 5, 0, 5, "Bye");
        journal_docs_free(docs, 1);
        journal_state_done(&st);
        docs = reload(f, &st, 1);
        assert_int_equal(docs[0].version, 6);
        assert_string_equal(doc_text(docs[0].doc), "Bye world! \xF0\x9F\x98\x80");

        /* Removed: gone from disk, not restored. */
        journal_remove(docs[0].entry);
        journal_docs_free(docs, 1);
        journal_state_done(&st);
        docs = reload(f, &st, 0);
        journal_docs_free(docs, 0);
        journal_state_done(&st);
}

/* A buffer of a file in an 8-bit encoding comes back with it, and keeps it through a compaction. */
static void test_charset_kept(void **state)
{
        Fixture *f = *state;
        JournalState st = {};
        JournalDoc *docs;
        JournalEntry *e;
        Document *d = doc("caf\xc3\xa9");
        char *big;

        open_journal(f);
        assert_int_equal(journal_load(f->j, &st, &docs, &(size_t){0}), 0);
        journal_docs_free(docs, 0);
        journal_state_done(&st);
        assert_int_equal(journal_add(f->j, "/w.txt", "t", CHARSET_CP1252, 2, d, &e), 0);
        edit(e, d, 2, 0, 0, "\xe2\x82\xac");
        doc_free(d);

        docs = reload(f, &st, 1);
        assert_int_equal(docs[0].charset, CHARSET_CP1252);
        assert_string_equal(doc_text(docs[0].doc), "\xe2\x82\xac"
                                                   "caf\xc3\xa9");
        assert_int_equal(journal_set_tag(docs[0].entry, 3, "t2", docs[0].doc), 0);
        /* An insert larger than the log may grow: compacted into a new snapshot. */
        big = malloc(100 * 1024 + 1);
        assert_non_null(big);
        memset(big, 'x', 100 * 1024);
        big[100 * 1024] = '\0';
        edit(docs[0].entry, docs[0].doc, 3, 0, 0, big);
        free(big);
        journal_docs_free(docs, 1);
        journal_state_done(&st);
        docs = reload(f, &st, 1);
        assert_int_equal(docs[0].charset, CHARSET_CP1252);
        assert_string_equal(docs[0].tag, "t2");
        assert_int_equal(docs[0].version, 4);
        assert_int_equal(doc_size(docs[0].doc), 100 * 1024 + 8);
        journal_docs_free(docs, 1);
        journal_state_done(&st);
}

static void test_torn_last_record(void **state)
{
        Fixture *f = *state;
        JournalState st = {};
        JournalDoc *docs;
        JournalEntry *e;
        Document *d = doc("abc");
        char name[64], p[256];
        off_t size;

        open_journal(f);
        assert_int_equal(journal_load(f->j, &st, &docs, &(size_t){0}), 0);
        journal_docs_free(docs, 0);
        assert_int_equal(journal_add(f->j, "/x", "t", CHARSET_UTF8, 1, d, &e), 0);
        edit(e, d, 1, 3, 3, "1");
        edit(e, d, 2, 4, 4, "2");
        edit(e, d, 3, 5, 5, "3");
        doc_free(d);
        close_journal(f);

        /* The worker died in the middle of writing the last record. */
        find_file(f, ".log", name, sizeof(name));
        size = file_size(f, name);
        path_in(f, name, p, sizeof(p));
        assert_int_equal(truncate(p, size - 3), 0);

        docs = reload(f, &st, 1);
        assert_int_equal(docs[0].version, 3);
        assert_string_equal(doc_text(docs[0].doc), "abc12");
        /* The torn bytes are gone, so what is appended next is not hidden behind them. */
        assert_true(file_size(f, name) < size - 3);
        edit(docs[0].entry, docs[0].doc, 3, 0, 0, ">");
        journal_docs_free(docs, 1);
        docs = reload(f, &st, 1);
        assert_int_equal(docs[0].version, 4);
        assert_string_equal(doc_text(docs[0].doc), ">abc12");
        journal_docs_free(docs, 1);
        journal_state_done(&st);
}

static void test_damaged_records(void **state)
{
        Fixture *f = *state;
        JournalState st = {};
        JournalDoc *docs;
        JournalEntry *e;
        Document *d = doc("");
        char name[64], p[256];
        int fd;

        open_journal(f);
        assert_int_equal(journal_add(f->j, "/y", "t", CHARSET_UTF8, 1, d, &e), 0);
        edit(e, d, 1, 0, 0, "first");
        edit(e, d, 2, 5, 5, "second");
        edit(e, d, 3, 11, 11, "third");
        doc_free(d);
        close_journal(f);

        /* Flip a byte inside the second record: it and everything after it are dropped. */
        find_file(f, ".log", name, sizeof(name));
        path_in(f, name, p, sizeof(p));
        fd = open(p, O_RDWR);
        assert_true(fd >= 0);
        /* magic (8) + first record (8 + 1 + 8 + 4 + 8 + 8 + 4 + 5 = 46), then into the second. */
        assert_int_equal(pwrite(fd, "X", 1, 8 + 46 + 20), 1);
        close(fd);
        docs = reload(f, &st, 1);
        assert_int_equal(docs[0].version, 2);
        assert_string_equal(doc_text(docs[0].doc), "first");
        journal_docs_free(docs, 1);

        /* Not even the log's header: the snapshot alone. */
        assert_int_equal(truncate(p, 3), 0);
        docs = reload(f, &st, 1);
        assert_int_equal(docs[0].version, 1);
        assert_string_equal(doc_text(docs[0].doc), "");
        edit(docs[0].entry, docs[0].doc, 1, 0, 0, "again");
        journal_docs_free(docs, 1);
        docs = reload(f, &st, 1);
        assert_int_equal(docs[0].version, 2);
        assert_string_equal(doc_text(docs[0].doc), "again");
        journal_docs_free(docs, 1);

        /* A damaged snapshot leaves nothing usable: it is removed. */
        find_file(f, ".snap", name, sizeof(name));
        path_in(f, name, p, sizeof(p));
        fd = open(p, O_RDWR);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, "\xFF", 1, 20), 1);
        close(fd);
        docs = reload(f, &st, 0);
        assert_int_equal(file_size(f, name), -1);
        journal_docs_free(docs, 0);
        journal_state_done(&st);
}

static void test_lost_log(void **state)
{
        Fixture *f = *state;
        JournalState st = {};
        JournalDoc *docs;
        JournalEntry *e;
        Document *d = doc("base");
        char name[64], p[256];

        open_journal(f);
        assert_int_equal(journal_add(f->j, "/lost", "t", CHARSET_UTF8, 3, d, &e), 0);
        edit(e, d, 3, 4, 4, "+");
        doc_free(d);
        close_journal(f);
        find_file(f, ".log", name, sizeof(name));
        path_in(f, name, p, sizeof(p));
        assert_int_equal(unlink(p), 0);

        /* The snapshot alone, and a new log that records what follows. */
        docs = reload(f, &st, 1);
        assert_int_equal(docs[0].version, 3);
        assert_string_equal(doc_text(docs[0].doc), "base");
        edit(docs[0].entry, docs[0].doc, 3, 0, 0, "re");
        journal_docs_free(docs, 1);
        docs = reload(f, &st, 1);
        assert_int_equal(docs[0].version, 4);
        assert_string_equal(doc_text(docs[0].doc), "rebase");
        journal_docs_free(docs, 1);
        journal_state_done(&st);
}

static void test_compaction(void **state)
{
        Fixture *f = *state;
        JournalState st = {};
        JournalDoc *docs;
        JournalEntry *e;
        Document *d = doc("start:");
        char name[64], p[256], *old_log;
        off_t size;
        uint64_t v = 1;
        FILE *fp;
        size_t n;

        open_journal(f);
        assert_int_equal(journal_add(f->j, "/z", "t", CHARSET_UTF8, v, d, &e), 0);
        find_file(f, ".log", name, sizeof(name));
        /* 200 KiB of typing: the log never grows beyond its document (or its floor) and a record. */
        for (int i = 0; i < 20000; i++, v++) {
                edit(e, d, v, doc_length16(d), doc_length16(d), "0123456789");
                assert_true(file_size(f, name) <= (off_t)MAX(doc_size(d), (size_t)64 * 1024) + 64);
        }
        doc_free(d);
        docs = reload(f, &st, 1);
        assert_int_equal(docs[0].version, v);
        assert_int_equal(doc_size(docs[0].doc), 6 + 200000);

        /* A compaction whose truncation of the log failed (or was cut short by a crash) leaves records
         * the snapshot already has, with new ones appended after them: the old ones are skipped. */
        e = docs[0].entry;
        d = TAKE_PTR(docs[0].doc);
        journal_docs_free(docs, 1);
        edit(e, d, v, 0, 0, "a");
        v++;
        edit(e, d, v, 0, 0, "b");
        v++;
        path_in(f, name, p, sizeof(p));
        size = file_size(f, name);
        old_log = malloc((size_t)size);
        fp = fopen(p, "r");
        assert_non_null(fp);
        assert_int_equal(fread(old_log, 1, (size_t)size, fp), (size_t)size);
        fclose(fp);
        /* An edit whose record alone is bigger than the document it leaves: written as a snapshot. */
        char *big = malloc(70001);
        memset(big, 'q', 70000);
        big[70000] = '\0';
        edit(e, d, v, 0, doc_length16(d), big);
        v++;
        free(big);
        assert_true(file_size(f, name) < 64);
        fp = fopen(p, "w");
        assert_non_null(fp);
        assert_int_equal(fwrite(old_log, 1, (size_t)size, fp), (size_t)size);
        fclose(fp);
        free(old_log);
        edit(e, d, v, 0, 0, "after");
        v++;
        n = doc_size(d);
        docs = reload(f, &st, 1);
        assert_int_equal(docs[0].version, v);
        assert_int_equal(doc_size(docs[0].doc), n);
        assert_true(doc_equal(docs[0].doc, doc_text(d), n));
        doc_free(d);
        journal_docs_free(docs, 1);
        journal_state_done(&st);
}

static void test_failed_append_is_taken_back(void **state)
{
        Fixture *f = *state;
        JournalState st = {};
        JournalDoc *docs;
        JournalEntry *e;
        Document *d = doc("x");
        char name[64], big[4096];
        struct rlimit old, small;
        DocChange c = {1, 1, big, sizeof(big) - 1};
        void (*prev)(int);

        open_journal(f);
        assert_int_equal(journal_add(f->j, "/w", "t", CHARSET_UTF8, 1, d, &e), 0);
        edit(e, d, 1, 1, 1, "y");
        find_file(f, ".log", name, sizeof(name));

        /* A full disk, as far as this process can tell: the record is written in part, then fails. */
        memset(big, 'b', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
        small = old;
        small.rlim_cur = (rlim_t)file_size(f, name) + 100;
        prev = signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
        assert_int_equal(doc_edit(d, &c, 1, SIZE_MAX, SIZE_MAX, NULL, NULL), 0);
        assert_int_equal(journal_append_edit(e, 2, &c, 1, 0, d), -EFBIG);
        doc_rollback(d);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        signal(SIGXFSZ, prev);

        /* The partial record was taken back: later records replay. */
        edit(e, d, 2, 2, 2, "z");
        doc_free(d);
        docs = reload(f, &st, 1);
        assert_int_equal(docs[0].version, 3);
        assert_string_equal(doc_text(docs[0].doc), "xyz");
        journal_docs_free(docs, 1);
        journal_state_done(&st);
}

static void test_state_file(void **state)
{
        Fixture *f = *state;
        JournalState st = {};
        JournalDoc *docs;
        const char *paths[] = {"/r/1", "relative/is/dropped", "/r/2"};
        char p[256];
        FILE *fp;

        open_journal(f);
        assert_int_equal(journal_write_state(f->j, NULL, paths, 3), 0);
        docs = reload(f, &st, 0);
        assert_null(st.root);
        assert_int_equal(st.n_paths, 2);
        assert_string_equal(st.paths[1], "/r/2");
        journal_docs_free(docs, 0);
        journal_state_done(&st);

        /* Damaged: tolerated, and no state. */
        path_in(f, "state.json", p, sizeof(p));
        fp = fopen(p, "w");
        assert_non_null(fp);
        fputs("{\"root\":\"/r\",\"openFi", fp);
        fclose(fp);
        docs = reload(f, &st, 0);
        assert_null(st.root);
        assert_int_equal(st.n_paths, 0);
        journal_docs_free(docs, 0);
        journal_state_done(&st);
}

static void test_stray_files_and_duplicates(void **state)
{
        Fixture *f = *state;
        JournalState st = {};
        JournalDoc *docs;
        JournalEntry *e;
        Document *d = doc("one");
        char name[64], p[256], q[256], cmd[600];

        open_journal(f);
        assert_int_equal(journal_add(f->j, "/dup", "t", CHARSET_UTF8, 1, d, &e), 0);
        edit(e, d, 1, 3, 3, "!");
        doc_free(d);
        close_journal(f);

        /* A leftover temporary file and a log without a snapshot are cleaned up; a second entry for the
         * same path at an older version loses. */
        path_in(f, "state.json.tmp", p, sizeof(p));
        assert_int_equal(close(open(p, O_CREAT | O_WRONLY, 0600)), 0);
        path_in(f, "00000000000000aa.log", q, sizeof(q));
        assert_int_equal(close(open(q, O_CREAT | O_WRONLY, 0600)), 0);
        find_file(f, ".snap", name, sizeof(name));
        (void)snprintf(cmd, sizeof(cmd), "cp %s/%s %s/ffffffffffffffff.snap", f->dir, name, f->dir);
        assert_int_equal(system(cmd), 0);

        docs = reload(f, &st, 1);
        assert_int_equal(docs[0].version, 2);
        assert_string_equal(doc_text(docs[0].doc), "one!");
        assert_int_equal(file_size(f, "state.json.tmp"), -1);
        assert_int_equal(file_size(f, "00000000000000aa.log"), -1);
        assert_int_equal(file_size(f, "ffffffffffffffff.snap"), -1);
        journal_docs_free(docs, 1);
        journal_state_done(&st);
}

static void test_limits(void **state)
{
        Fixture *f = *state;
        JournalState st = {};
        JournalDoc *docs;
        JournalEntry *e;
        char path[32];

        open_journal(f);
        for (int i = 0; i < 3; i++) {
                Document *d = doc(i == 0 ? "a long one, over the limit" : "short");
                (void)snprintf(path, sizeof(path), "/f%d", i);
                assert_int_equal(journal_add(f->j, path, "t", CHARSET_UTF8, 1, d, &e), 0);
                if (i == 0)
                        edit(e, d, 1, 26, 26, "!!!!");
                doc_free(d);
        }

        /* Over the size limit: kept on disk, not restored. */
        f->limits.max_doc_size = 10;
        docs = reload(f, &st, 2);
        journal_docs_free(docs, 2);
        /* Over it only once the log is replayed: the log is not cut short either. */
        f->limits.max_doc_size = 28;
        docs = reload(f, &st, 2);
        journal_docs_free(docs, 2);
        /* Over the count limit. */
        f->limits.max_doc_size = 1024;
        f->limits.max_entries = 1;
        docs = reload(f, &st, 1);
        journal_docs_free(docs, 1);
        /* Over the total. */
        f->limits.max_entries = 16;
        f->limits.max_total_size = 12;
        docs = reload(f, &st, 2);
        journal_docs_free(docs, 2);
        /* Nothing was lost on the way. */
        f->limits.max_total_size = 1024;
        docs = reload(f, &st, 3);
        for (int i = 0; i < 3; i++)
                if (strcmp(docs[i].path, "/f0") == 0) {
                        assert_string_equal(doc_text(docs[i].doc), "a long one, over the limit!!!!");
                        assert_int_equal(docs[i].version, 2);
                }
        journal_docs_free(docs, 3);
        journal_state_done(&st);
}

static void test_background_fsync(void **state)
{
        Fixture *f = *state;
        JournalEntry *e;
        Document *d = doc("s");
        const char *paths[] = {"/s"};
        uint64_t t0;

        open_journal(f);
        assert_int_equal(journal_add(f->j, "/s", "t", CHARSET_UTF8, 1, d, &e), 0);
        assert_int_equal(journal_write_state(f->j, "/", paths, 1), 0);
        edit(e, d, 1, 0, 0, "x");
        doc_free(d);
        /* The loop runs the delayed fsync on the thread pool and then has nothing left to do. */
        t0 = uv_now(&f->loop);
        assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
        uv_update_time(&f->loop);
        assert_true(uv_now(&f->loop) - t0 >= 900);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_open_creates_private_dir_and_locks, setup, teardown),
            cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
            cmocka_unit_test_setup_teardown(test_charset_kept, setup, teardown),
            cmocka_unit_test_setup_teardown(test_torn_last_record, setup, teardown),
            cmocka_unit_test_setup_teardown(test_damaged_records, setup, teardown),
            cmocka_unit_test_setup_teardown(test_lost_log, setup, teardown),
            cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
            cmocka_unit_test_setup_teardown(test_failed_append_is_taken_back, setup, teardown),
            cmocka_unit_test_setup_teardown(test_state_file, setup, teardown),
            cmocka_unit_test_setup_teardown(test_stray_files_and_duplicates, setup, teardown),
            cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
            cmocka_unit_test_setup_teardown(test_background_fsync, setup, teardown),
        };

        log_set_max_level(LOG_ERR); /* the warnings these tests provoke are expected */
        return cmocka_run_group_tests(tests, NULL, NULL);
}
