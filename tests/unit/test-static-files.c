/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <seccomp.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "static-files.h"

static char dir[64];

static void put(const char *rel, const char *content)
{
        char path[256];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, rel);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(content, f);
        fclose(f);
}

static int setup(void **state)
{
        char path[256];

        strcpy(dir, "/tmp/helios-test-static-XXXXXX");
        if (!mkdtemp(dir))
                return -1;
        snprintf(path, sizeof(path), "%s/web", dir);
        mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/web/assets", dir);
        mkdir(path, 0755);
        put("secret.txt", "TOP SECRET");
        put("web/index.html", "<p>hi</p>");
        put("web/index.html.gz", "GZ");
        put("web/assets/app-Ab3_x-9Z.js", "js");
        put("web/assets/logo.png", "png");
        put("web/assets/plain-name.css", "css");
        put("web/.hidden", "no");
        snprintf(path, sizeof(path), "%s/web/escape.txt", dir);
        if (symlink("../secret.txt", path) < 0)
                return -1;
        snprintf(path, sizeof(path), "%s/web/assets/passwd", dir);
        if (symlink("/etc/passwd", path) < 0)
                return -1;
        snprintf(path, sizeof(path), "%s/web/inside.html", dir);
        return symlink("index.html", path);
}

static int teardown(void **state)
{
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        return system(cmd) == 0 ? 0 : -1;
}

static WebRoot *open_root(void)
{
        char path[256];
        WebRoot *w;

        snprintf(path, sizeof(path), "%s/web", dir);
        assert_int_equal(web_root_open(path, &w), 0);
        return w;
}

static void test_lookup(void **state)
{
        WebRoot *w = open_root();
        StaticFile f;

        assert_int_equal(web_root_lookup(w, "/", false, &f), 0);
        assert_string_equal(f.content_type, "text/html; charset=utf-8");
        assert_string_equal(f.cache_control, "no-cache");
        assert_true(f.vary);
        assert_false(f.gzip);
        assert_int_equal(f.size, 9);
        close(f.fd);

        assert_int_equal(web_root_lookup(w, "/index.html", true, &f), 0);
        assert_true(f.gzip);
        assert_int_equal(f.size, 2);
        assert_non_null(strstr(f.etag, "-gz"));
        close(f.fd);

        assert_int_equal(web_root_lookup(w, "/assets/app-Ab3_x-9Z.js", true, &f), 0);
        assert_string_equal(f.content_type, "text/javascript; charset=utf-8");
        assert_string_equal(f.cache_control, "public, max-age=31536000, immutable");
        assert_false(f.vary);
        close(f.fd);

        assert_int_equal(web_root_lookup(w, "/assets/plain-name.css", false, &f), 0);
        assert_string_equal(f.cache_control, "no-cache"); /* not hashed */
        close(f.fd);
        assert_int_equal(web_root_lookup(w, "/assets/logo.png", false, &f), 0);
        assert_string_equal(f.content_type, "image/png");
        close(f.fd);

        /* A symlink that stays inside is followed. */
        assert_int_equal(web_root_lookup(w, "/inside.html", false, &f), 0);
        close(f.fd);
        web_root_free(w);
}

static void test_no_way_out(void **state)
{
        static const char *const refused[] = {"/../secret.txt", "/assets/../../secret.txt",
                                              "/./index.html",  "/.hidden",
                                              "//index.html",   "/assets/",
                                              "/a\\b",          "/x\x01y",
                                              "relative"};
        static const char *const absent[] = {"/escape.txt", "/assets/passwd", "/nope", "/assets"};
        WebRoot *w = open_root();
        StaticFile f;

        for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
                assert_int_equal(web_root_lookup(w, refused[i], false, &f), -EINVAL);
        for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
                assert_int_equal(web_root_lookup(w, absent[i], false, &f), -ENOENT);
        web_root_free(w);
}

/* The same answers when the kernel (or a seccomp filter) has no openat2(): the fallback walks the path
 * a component at a time and follows no symlink. Checked in a child, which the filter then confines. */
static void test_without_openat2(void **state)
{
        pid_t pid = fork();
        int status;

        assert_true(pid >= 0);
        if (pid == 0) {
                scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
                WebRoot *w;
                StaticFile f;
                char path[256];
                int bad = 0;

                if (!ctx || seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(openat2), 0) < 0 ||
                    seccomp_load(ctx) < 0)
                        _exit(2);
                snprintf(path, sizeof(path), "%s/web", dir);
                if (web_root_open(path, &w) < 0)
                        _exit(3);
                bad |= web_root_lookup(w, "/", false, &f) != 0 || f.size != 9;
                bad |= web_root_lookup(w, "/assets/app-Ab3_x-9Z.js", false, &f) != 0;
                bad |= web_root_lookup(w, "/escape.txt", false, &f) != -ENOENT;
                bad |= web_root_lookup(w, "/assets/passwd", false, &f) != -ENOENT;
                bad |=
                    web_root_lookup(w, "/inside.html", false, &f) != -ENOENT; /* no symlinks at all here */
                bad |= web_root_lookup(w, "/assets", false, &f) != -ENOENT;
                bad |= web_root_lookup(w, "/../secret.txt", false, &f) != -EINVAL;
                _exit(bad);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_accept_encoding(void **state)
{
        assert_true(accept_encoding_has_gzip("gzip"));
        assert_true(accept_encoding_has_gzip("br, gzip;q=0.8, deflate"));
        assert_true(accept_encoding_has_gzip("GZIP"));
        assert_true(accept_encoding_has_gzip("*"));
        assert_false(accept_encoding_has_gzip("gzip;q=0"));
        assert_false(accept_encoding_has_gzip("gzip; q=0.000, br"));
        assert_false(accept_encoding_has_gzip("br, deflate"));
        assert_false(accept_encoding_has_gzip("xgzip"));
        assert_false(accept_encoding_has_gzip(""));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_lookup),
            cmocka_unit_test(test_no_way_out),
            cmocka_unit_test(test_accept_encoding),
            cmocka_unit_test(test_without_openat2),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
