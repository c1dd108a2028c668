/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <syslog.h>

#include "macro.h"

/* Where log lines go. Journal when stderr is connected to journald (JOURNAL_STREAM), else stderr. */
void log_setup(const char *ident);
void log_set_max_level(int level);
int log_get_max_level(void);
/* Parse "debug", "info", "notice", "warning", "err" or a number 0..7. */
int log_level_from_string(const char *s);

/* Logs and returns -abs(error) (or 0 if error is 0), so callers can `return log_error_errno(r, ...)`.
 * The message may use %m for strerror(error). Optional structured fields follow as
 * "KEY=value" strings in extra (NULL-terminated), journal only. */
int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *const *extra, const char *format, ...) _printf_(7, 8);

#define log_full_errno(level, error, ...)                                                   \
        ({                                                                                  \
                int _l = (level), _e = (error);                                             \
                (log_get_max_level() >= _l)                                                 \
                    ? log_internal(_l, _e, __FILE__, __LINE__, __func__, NULL, __VA_ARGS__) \
                    : -abs(_e);                                                             \
        })

/* Like log_full_errno() with structured journal fields: fields is a NULL-terminated array of "KEY=value"
 * strings (KEY in upper case, as journald requires). On stderr only the message is written. */
#define log_struct_errno(level, error, fields, ...)                                             \
        ({                                                                                      \
                int _l = (level), _e = (error);                                                 \
                (log_get_max_level() >= _l)                                                     \
                    ? log_internal(_l, _e, __FILE__, __LINE__, __func__, (fields), __VA_ARGS__) \
                    : -abs(_e);                                                                 \
        })
#define log_struct(level, fields, ...) log_struct_errno(level, 0, fields, __VA_ARGS__)

#define log_debug_errno(error, ...)   log_full_errno(LOG_DEBUG, error, __VA_ARGS__)
#define log_info_errno(error, ...)    log_full_errno(LOG_INFO, error, __VA_ARGS__)
#define log_notice_errno(error, ...)  log_full_errno(LOG_NOTICE, error, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, error, __VA_ARGS__)
#define log_error_errno(error, ...)   log_full_errno(LOG_ERR, error, __VA_ARGS__)

#define log_debug(...)   log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...)    log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...)  log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...)   log_full_errno(LOG_ERR, 0, __VA_ARGS__)

/* Out-of-memory is logged without allocating. */
int log_oom_internal(const char *file, int line, const char *func);
#define log_oom() log_oom_internal(__FILE__, __LINE__, __func__)

/* The symbolic name of an errno value ("ENOENT"), or NULL if unknown. */
const char *errno_name(int error);
