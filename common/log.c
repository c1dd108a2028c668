/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

static int max_level = LOG_INFO;
static bool to_journal;
static const char *log_ident = "helios";

/* journald tells a service that its stderr is connected to it by JOURNAL_STREAM=dev:ino. */
static bool stderr_is_journal(void)
{
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return st.st_dev == (dev_t)dev && st.st_ino == (ino_t)ino;
}

void log_setup(const char *ident)
{
        const char *e;

        if (ident)
                log_ident = ident;
        to_journal = stderr_is_journal();
        e = getenv("HELIOS_LOG_LEVEL");
        if (e) {
                int l = log_level_from_string(e);
                if (l >= 0)
                        max_level = l;
        }
}

void log_set_max_level(int level)
{
        max_level = level;
}

int log_get_max_level(void)
{
        return max_level;
}

int log_level_from_string(const char *s)
{
        static const char *const names[] = {"emerg",   "alert",  "crit", "err",
                                            "warning", "notice", "info", "debug"};

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(s, names[i]))
                        return (int)i;
        if (streq(s, "error"))
                return LOG_ERR;
        if (streq(s, "warn"))
                return LOG_WARNING;
        if (s[0] >= '0' && s[0] <= '7' && s[1] == '\0')
                return s[0] - '0';
        return -EINVAL;
}

const char *errno_name(int error)
{
        return strerrorname_np(abs(error));
}

int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *const *extra, const char *format, ...)
{
        char msg[2048];
        va_list ap;
        int saved = errno;

        error = abs(error);
        /* %m in the format expands to strerror(errno): point it at the error being logged. */
        errno = error;
        va_start(ap, format);
        (void)vsnprintf(msg, sizeof(msg), format, ap);
        va_end(ap);

        if (to_journal) {
                char code_line[32], prio[32], err[32];
                struct iovec iov[16];
                size_t n = 0;
                char *m = NULL;

                if (asprintf(&m, "MESSAGE=%s", msg) < 0)
                        m = NULL;
                (void)snprintf(prio, sizeof(prio), "PRIORITY=%d", level);
                (void)snprintf(code_line, sizeof(code_line), "CODE_LINE=%d", line);
                iov[n++] = (struct iovec){m ? m : (char *)"MESSAGE=(out of memory)", m ? strlen(m) : 23};
                iov[n++] = (struct iovec){prio, strlen(prio)};
                iov[n++] = (struct iovec){code_line, strlen(code_line)};
                if (error > 0) {
                        (void)snprintf(err, sizeof(err), "ERRNO=%d", error);
                        iov[n++] = (struct iovec){err, strlen(err)};
                }
                for (size_t i = 0; extra && extra[i] && n < ELEMENTSOF(iov); i++)
                        iov[n++] = (struct iovec){(char *)extra[i], strlen(extra[i])};
                (void)sd_journal_sendv(iov, (int)n);
                free(m);
        } else
                (void)fprintf(stderr, "%s[%d]: %s\n", log_ident, (int)getpid(), msg);

        (void)file;
        (void)func;
        errno = saved;
        return -error;
}

int log_oom_internal(const char *file, int line, const char *func)
{
        return log_internal(LOG_ERR, ENOMEM, file, line, func, NULL, "Out of memory.");
}
