/* SPDX-License-Identifier: MIT */
#include "conf-file.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
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

/* A header "[name]" naming one of sections: whether its settings are wanted, or -EINVAL. */
static int section_header(const char *path, unsigned n, char *line, const char *section,
                          const char *const *sections)
{
        size_t len = strlen(line);
        char *name;

        if (line[len - 1] != ']') {
                log_error("%s:%u: expected '[section]'.", path, n);
                return -EINVAL;
        }
        line[len - 1] = '\0';
        name = strip(line + 1);
        for (size_t i = 0; sections && sections[i]; i++)
                if (streq(name, sections[i]))
                        return section && streq(name, section);
        log_error("%s:%u: unknown section '[%s]'.", path, n, name);
        return -EINVAL;
}

int conf_file_parse_section_stream(FILE *f, const char *path, const char *section,
                                   const char *const *sections, ConfFileCallback cb, void *userdata)
{
        _cleanup_free_ char *buf = NULL;
        bool wanted = !section;
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
                if (*key == '[') {
                        r = section_header(path, n, key, section, sections);
                        if (r < 0)
                                return r;
                        wanted = r > 0;
                        continue;
                }
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
                if (!wanted)
                        continue;
                r = cb(path, n, key, value, userdata);
                if (r < 0)
                        return r;
        }
        if (ferror(f))
                return -EIO;
        return 0;
}

int conf_file_parse_stream(FILE *f, const char *path, ConfFileCallback cb, void *userdata)
{
        return conf_file_parse_section_stream(f, path, NULL, NULL, cb, userdata);
}

int conf_file_parse_section(const char *path, const char *section, const char *const *sections,
                            ConfFileCallback cb, void *userdata)
{
        _cleanup_(fclosep) FILE *f = fopen(path, "re");

        if (!f)
                return negative_errno();
        return conf_file_parse_section_stream(f, path, section, sections, cb, userdata);
}

int conf_file_parse(const char *path, ConfFileCallback cb, void *userdata)
{
        return conf_file_parse_section(path, NULL, NULL, cb, userdata);
}
