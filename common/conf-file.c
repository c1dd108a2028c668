/* SPDX-License-Identifier: MIT */
#include "conf-file.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "log.h"
#include "macro.h"

static char *strip(char *s)
{
        char *e;

        while (*s && isspace((unsigned char)*s))
                s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1]))
                *--e = '\0';
        return s;
}

static void fclosep(FILE **f)
{
        if (*f)
                (void)fclose(*f);
}

int conf_file_parse_stream(FILE *f, const char *path, ConfFileCallback cb, void *userdata)
{
        _cleanup_free_ char *buf = NULL;
        size_t cap = 0;
        unsigned n = 0;
        ssize_t len;
        int r;

        while ((len = getline(&buf, &cap, f)) >= 0) {
                char *key, *value, *eq;

                n++;
                if ((size_t)len > CONF_FILE_LINE_MAX) {
                        log_error("%s:%u: line longer than %u bytes.", path, n, CONF_FILE_LINE_MAX);
                        return -EINVAL;
                }
                if (memchr(buf, '\0', (size_t)len)) {
                        log_error("%s:%u: NUL byte in line.", path, n);
                        return -EINVAL;
                }
                key = strip(buf);
                if (*key == '\0' || *key == '#' || *key == ';')
                        continue;
                eq = strchr(key, '=');
                if (!eq) {
                        log_error("%s:%u: expected 'key = value'.", path, n);
                        return -EINVAL;
                }
                *eq = '\0';
                value = strip(eq + 1);
                key = strip(key);
                if (*key == '\0') {
                        log_error("%s:%u: missing key before '='.", path, n);
                        return -EINVAL;
                }
                r = cb(path, n, key, value, userdata);
                if (r < 0)
                        return r;
        }
        if (ferror(f))
                return -EIO;
        return 0;
}

int conf_file_parse(const char *path, ConfFileCallback cb, void *userdata)
{
        _cleanup_(fclosep) FILE *f = fopen(path, "re");

        if (!f)
                return negative_errno();
        return conf_file_parse_stream(f, path, cb, userdata);
}
