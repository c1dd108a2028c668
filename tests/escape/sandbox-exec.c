/* SPDX-License-Identifier: MIT */
/* Test driver: run a program inside the embedded-mode sandbox of one account, the way helios-launcher
 * starts a worker (plan before fork, sandbox_enter() in the child, exec), and exit with its status.
 *
 *   sandbox-exec --user NAME [--hide DIR]... [--writable DIR]... [--no-outbound-network] -- PROGRAM
 * [ARGUMENT]...
 *
 * Run as root. The program gets a small fixed environment (HOME, USER, LOGNAME, PATH, LANG, and
 * HELIOS_CREDENTIALS_FD as the launcher gives a worker) and the caller's standard descriptors. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "policy.h"
#include "sandbox.h"

int main(int argc, char **argv)
{
        static const struct option options[] = {
            {"user", required_argument, NULL, 'u'},
            {"hide", required_argument, NULL, 'H'},
            {"writable", required_argument, NULL, 'w'},
            {"no-outbound-network", no_argument, NULL, 'N'},
            {},
        };
        const char *user = NULL;
        const char **hide = NULL, **writable = NULL;
        size_t n_hide = 0, n_writable = 0;
        bool outbound = true;
        SandboxPlan *plan = NULL;
        int opt, r, status;
        pid_t pid;

        while ((opt = getopt_long(argc, argv, "+u:H:w:N", options, NULL)) >= 0) {
                switch (opt) {
                case 'u':
                        user = optarg;
                        break;
                case 'H': {
                        const char **h = realloc(hide, (n_hide + 1) * sizeof(char *));
                        if (!h)
                                return 125;
                        hide = h;
                        hide[n_hide++] = optarg;
                        break;
                }
                case 'w': {
                        const char **w = realloc(writable, (n_writable + 1) * sizeof(char *));
                        if (!w)
                                return 125;
                        writable = w;
                        writable[n_writable++] = optarg;
                        break;
                }
                case 'N':
                        outbound = false;
                        break;
                default:
                        return 125;
                }
        }
        if (!user || optind >= argc) {
                fprintf(stderr, "Usage: sandbox-exec --user NAME [--hide DIR]... [--writable DIR]... "
                                "[--no-outbound-network] -- "
                                "PROGRAM [ARGUMENT]...\n");
                return 125;
        }

        r = sandbox_plan_new(&(SandboxParams){.user = user,
                                              .hide = hide,
                                              .n_hide = n_hide,
                                              .writable = writable,
                                              .n_writable = n_writable,
                                              .outbound_network = outbound,
                                              .pass_credentials = true},
                             &plan);
        free(hide);
        free(writable);
        if (r < 0) {
                fprintf(stderr, "sandbox-exec: cannot plan the sandbox of %s: %s\n", user, strerror(-r));
                return 125;
        }

        char home[PATH_MAX + 8], user_env[256], logname_env[256];
        snprintf(home, sizeof(home), "HOME=%s", sandbox_plan_home(plan));
        snprintf(user_env, sizeof(user_env), "USER=%s", user);
        snprintf(logname_env, sizeof(logname_env), "LOGNAME=%s", user);
        char *envp[] = {
            home,           user_env,
            logname_env,    "PATH=/usr/local/bin:/usr/bin:/bin",
            "LANG=C.UTF-8", POLICY_CREDENTIALS_FD_ENV "=" POLICY_CREDENTIALS_FD_STR,
            NULL,
        };

        fflush(NULL);
        pid = fork();
        if (pid < 0) {
                perror("sandbox-exec: fork");
                return 125;
        }
        if (pid == 0) {
                r = sandbox_enter(plan);
                if (r < 0) {
                        /* Test code: stdio is good enough in a single-threaded child. */
                        dprintf(STDERR_FILENO, "sandbox-exec: cannot enter the sandbox: %s\n", strerror(-r));
                        _exit(126);
                }
                execve(argv[optind], argv + optind, envp);
                dprintf(STDERR_FILENO, "sandbox-exec: cannot run %s: %s\n", argv[optind], strerror(errno));
                _exit(127);
        }
        sandbox_plan_free(plan);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        perror("sandbox-exec: waitpid");
                        return 125;
                }
        if (WIFSIGNALED(status))
                return 128 + WTERMSIG(status);
        return WEXITSTATUS(status);
}
