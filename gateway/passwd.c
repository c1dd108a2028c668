/* SPDX-License-Identifier: MIT */
#include "passwd.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "conf-file.h"
#include "config.h"
#include "log.h"
#include "macro.h"
#include "users-file.h"
#include "worker-settings.h"

#define PASSWORD_MAX 1024u

static void help(void)
{
        printf("Usage: helios-gateway passwd [OPTIONS] USER\n\n"
               "Set USER's password in the users file of the 'file' login method, adding USER if needed.\n"
               "The password is asked for twice on a terminal, or read as one line from standard input.\n\n"
               "  -h --help              Show this help\n"
               "  -f --users-file FILE   The users file (default: users_file from the configuration,\n"
               "                         else %s)\n"
               "  -c --config FILE       The configuration to take users_file from (default %s)\n"
               "     --delete            Remove USER instead\n",
               GATEWAY_DEFAULT_USERS_FILE, GATEWAY_DEFAULT_CONFIG);
}

static int find_users_file(const char *path, unsigned line, const char *key, const char *value,
                           void *userdata)
{
        char **ret = userdata;

        if (!streq(key, "users_file"))
                return 0;
        free(*ret);
        *ret = strdup(value);
        return *ret ? 0 : -ENOMEM;
}

/* One line from fd, without its LF; echo off when it is a terminal. */
static int read_password(const char *prompt, char *buf, size_t size)
{
        struct termios old, quiet;
        bool tty = isatty(STDIN_FILENO);
        size_t n = 0;
        int r = 0;

        if (tty) {
                fprintf(stderr, "%s", prompt);
                fflush(stderr);
                if (tcgetattr(STDIN_FILENO, &old) < 0)
                        return negative_errno();
                quiet = old;
                quiet.c_lflag &= ~(tcflag_t)ECHO;
                if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) < 0)
                        return negative_errno();
        }
        for (;;) {
                char c;
                ssize_t k = read(STDIN_FILENO, &c, 1);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = negative_errno();
                        break;
                }
                if (k == 0 || c == '\n')
                        break;
                if (n + 1 >= size) {
                        r = -E2BIG;
                        break;
                }
                buf[n++] = c;
        }
        buf[n] = '\0';
        if (n > 0 && buf[n - 1] == '\r')
                buf[--n] = '\0';
        if (tty) {
                (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
                fputc('\n', stderr);
        }
        return r;
}

int passwd_run(int argc, char **argv)
{
        static const struct option options[] = {
            {"help", no_argument, NULL, 'h'},
            {"users-file", required_argument, NULL, 'f'},
            {"config", required_argument, NULL, 'c'},
            {"delete", no_argument, NULL, 'd'},
            {},
        };
        _cleanup_free_ char *users_file = NULL;
        const char *config = NULL, *user;
        char pw[PASSWORD_MAX + 1], again[PASSWORD_MAX + 1];
        bool delete = false;
        int opt, r;

        optind = 0;
        while ((opt = getopt_long(argc, argv, "hf:c:", options, NULL)) >= 0) {
                switch (opt) {
                case 'h':
                        help();
                        return 0;
                case 'f':
                        free(users_file);
                        users_file = strdup(optarg);
                        if (!users_file)
                                return log_oom();
                        break;
                case 'c':
                        config = optarg;
                        break;
                case 'd':
                        delete = true;
                        break;
                default:
                        return -EINVAL;
                }
        }
        if (optind != argc - 1) {
                log_error("Expected one user name. See 'helios-gateway passwd --help'.");
                return -EINVAL;
        }
        user = argv[optind];
        if (!user_name_is_valid(user)) {
                log_error(
                    "Invalid user name '%s': letters, digits, '.', '_' and '-', up to %u, not starting "
                    "with '.' or '-'.",
                    user, USER_NAME_MAX);
                return -EINVAL;
        }
        if (!users_file) {
                r = conf_file_parse_section(config ? config : GATEWAY_DEFAULT_CONFIG, NULL,
                                            HELIOS_CONF_SECTIONS, find_users_file, &users_file);
                if (r < 0 && (r != -ENOENT || config))
                        return log_error_errno(r, "Cannot read %s: %m",
                                               config ? config : GATEWAY_DEFAULT_CONFIG);
                if (!users_file && !(users_file = strdup(GATEWAY_DEFAULT_USERS_FILE)))
                        return log_oom();
        }

        if (delete) {
                r = users_file_update(users_file, user, NULL);
                if (r == -ENOENT)
                        return log_error_errno(r, "No user '%s' in %s.", user, users_file);
                if (r < 0)
                        return log_error_errno(r, "Cannot update %s: %m", users_file);
                fprintf(stderr, "Removed %s from %s.\n", user, users_file);
                return 0;
        }

        r = read_password("Password: ", pw, sizeof(pw));
        if (r >= 0 && isatty(STDIN_FILENO)) {
                r = read_password("Again: ", again, sizeof(again));
                if (r >= 0 && !streq(pw, again)) {
                        log_error("The passwords differ.");
                        r = -EINVAL;
                }
                explicit_bzero(again, sizeof(again));
        }
        if (r >= 0 && pw[0] == '\0') {
                log_error("Empty password refused.");
                r = -EINVAL;
        }
        if (r >= 0) {
                r = users_file_update(users_file, user, pw);
                if (r < 0)
                        log_error_errno(r, "Cannot update %s: %m", users_file);
                else
                        fprintf(stderr, "Password of %s set in %s.\n", user, users_file);
        } else if (r == -E2BIG)
                log_error("Password longer than %u bytes.", PASSWORD_MAX);
        explicit_bzero(pw, sizeof(pw));
        return r;
}
