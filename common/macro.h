/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f)         __attribute__((cleanup(f)))
#define _printf_(a, b)       __attribute__((format(printf, a, b)))
#define _noreturn_           __attribute__((noreturn))
#define _pure_               __attribute__((pure))
#define _likely_(x)          __builtin_expect(!!(x), 1)
#define _unlikely_(x)        __builtin_expect(!!(x), 0)
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* <sys/param.h> (pulled in by uv.h) has unsafe versions that evaluate twice. */
#undef MIN
#undef MAX
#define MIN(a, b)                   \
        ({                          \
                typeof(a) _a = (a); \
                typeof(b) _b = (b); \
                _a < _b ? _a : _b;  \
        })
#define MAX(a, b)                   \
        ({                          \
                typeof(a) _a = (a); \
                typeof(b) _b = (b); \
                _a > _b ? _a : _b;  \
        })

/* Hand ownership out of a cleanup-managed variable. */
#define TAKE_PTR(p)                 \
        ({                          \
                typeof(p) _p = (p); \
                (p) = NULL;         \
                _p;                 \
        })
#define TAKE_FD(fd)             \
        ({                      \
                int _fd = (fd); \
                (fd) = -1;      \
                _fd;            \
        })

static inline void freep(void *p)
{
        free(*(void **)p);
}

static inline int safe_close(int fd)
{
        if (fd >= 0) {
                int saved = errno;
                (void)close(fd);
                errno = saved;
        }
        return -1;
}

static inline void closep(int *fd)
{
        safe_close(*fd);
}

#define _cleanup_free_  _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func) \
        static inline void func##p(type *p)     \
        {                                       \
                if (*p)                         \
                        func(*p);               \
        }

/* errno as a negative return value; never 0, so a failing call always reads as a failure. */
static inline int negative_errno(void)
{
        return errno > 0 ? -errno : -EIO;
}

static inline const char *strna(const char *s)
{
        return s ? s : "n/a";
}

static inline bool streq_ptr(const char *a, const char *b)
{
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

#define streq(a, b) (strcmp((a), (b)) == 0)
