/* SPDX-License-Identifier: MIT */
#include "file-util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"

int write_string_file(const char *path, const char *text, int flags)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | flags);
        size_t len = strlen(text);
        ssize_t n;

        if (fd < 0)
                return negative_errno();
        n = write(fd, text, len);
        if (n < 0)
                return negative_errno();
        return (size_t)n == len ? 0 : -EIO;
}
