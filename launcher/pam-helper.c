/* SPDX-License-Identifier: MIT */
#include "pam-helper.h"

#include <sched.h>
#include <security/pam_appl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "account.h"
#include "launcher-protocol.h"
#include "log.h"
#include "macro.h"
#include "pam-util.h"
#include "user-name.h"

typedef struct Credentials {
        const char *user;
        const char *password;
} Credentials;

static void free_responses(struct pam_response *resp, int n)
{
        for (int i = 0; i < n; i++)
                if (resp[i].resp) {
                        explicit_bzero(resp[i].resp, strlen(resp[i].resp));
                        free(resp[i].resp);
                }
        free(resp);
}

/* Every prompt that hides its echo gets the password, one that shows it gets the user name; messages
 * are not answered. There is nobody to show them to. */
static int conversation(int n, const struct pam_message **msg, struct pam_response **ret, void *userdata)
{
        const Credentials *c = userdata;
        struct pam_response *resp;

        if (n <= 0 || n > PAM_MAX_NUM_MSG)
                return PAM_CONV_ERR;
        resp = calloc((size_t)n, sizeof(struct pam_response));
        if (!resp)
                return PAM_BUF_ERR;
        for (int i = 0; i < n; i++) {
                const char *answer = NULL;

                switch (msg[i]->msg_style) {
                case PAM_PROMPT_ECHO_OFF:
                        answer = c->password;
                        if (!answer) {
                                /* An account check has no password to give. */
                                free_responses(resp, n);
                                return PAM_CONV_ERR;
                        }
                        break;
                case PAM_PROMPT_ECHO_ON:
                        answer = c->user;
                        break;
                case PAM_ERROR_MSG:
                case PAM_TEXT_INFO:
                        continue;
                default:
                        free_responses(resp, n);
                        return PAM_CONV_ERR;
                }
                resp[i].resp = strdup(answer);
                if (!resp[i].resp) {
                        free_responses(resp, n);
                        return PAM_BUF_ERR;
                }
        }
        *ret = resp;
        return PAM_SUCCESS;
}

static int check(const char *service, const Credentials *c)
{
        struct pam_conv conv = {.conv = conversation, .appdata_ptr = (void *)c};
        pam_handle_t *h = NULL;
        const char *step;
        int r;

        r = pam_start(service, c->user, &conv, &h);
        if (r != PAM_SUCCESS) {
                log_error("PAM: cannot start service %s: %s", service, pam_strerror(NULL, r));
                return PAM_HELPER_EXIT_FAILED;
        }
        step = "authentication";
        r = c->password ? pam_authenticate(h, PAM_DISALLOW_NULL_AUTHTOK) : PAM_SUCCESS;
        if (r == PAM_SUCCESS) {
                step = "account check";
                r = pam_acct_mgmt(h, PAM_DISALLOW_NULL_AUTHTOK);
        }
        if (r == PAM_SUCCESS && !c->password && account_password_locked(c->user)) {
                /* usermod -L, passwd -l: no login by password, so no session that came from one. */
                step = "account check";
                r = PAM_PERM_DENIED;
        }
        /* The user name was validated before it came here: safe to log as it is. */
        if (r != PAM_SUCCESS)
                log_full_errno(pam_result_is_denial(r) ? LOG_NOTICE : LOG_ERR, 0,
                               "PAM %s for %s failed (service %s): %s", step, c->user, service,
                               pam_strerror(h, r));
        (void)pam_end(h, r);
        if (r == PAM_SUCCESS)
                return PAM_HELPER_EXIT_OK;
        return pam_result_is_denial(r) ? PAM_HELPER_EXIT_DENIED : PAM_HELPER_EXIT_FAILED;
}

int pam_helper_main(const char *service)
{
        char buf[LAUNCHER_USER_MAX + 1 + LAUNCHER_PASSWORD_MAX + 1 + 1];
        size_t n = 0;
        const char *end;
        Credentials c;
        int r;

        /* Everything up to EOF, and not a byte more than the protocol allows. */
        while (n < sizeof(buf)) {
                ssize_t k = read(STDIN_FILENO, buf + n, sizeof(buf) - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        log_error_errno(errno, "PAM helper: cannot read its input: %m");
                        return PAM_HELPER_EXIT_FAILED;
                }
                if (k == 0)
                        break;
                n += (size_t)k;
        }
        end = n > 0 && n < sizeof(buf) ? memchr(buf, '\0', n) : NULL;
        /* "USER\0" alone: the account without a password. */
        bool account_only = end && end + 1 == buf + n;
        if (!end || buf[n - 1] != '\0' || !user_name_valid(buf, (size_t)(end - buf)) ||
            (!account_only && memchr(end + 1, '\0', n - (size_t)(end + 1 - buf)) != buf + n - 1)) {
                explicit_bzero(buf, sizeof(buf));
                log_error("PAM helper: malformed input.");
                return PAM_HELPER_EXIT_FAILED;
        }
        c = (Credentials){.user = buf, .password = account_only ? NULL : end + 1};

        /* PAM runs as the first process of a PID namespace of its own: when the launcher kills this
         * helper for taking too long, the kernel ends everything a module started in there too, even
         * what escaped into a session of its own (pam_exec does that). Where namespaces are not
         * available the check runs here, and only the process group can be killed. */
        if (unshare(CLONE_NEWPID) < 0) {
                log_debug_errno(errno, "PAM helper: no PID namespace, checking in this process: %m");
                r = check(service, &c);
                explicit_bzero(buf, sizeof(buf));
                return r;
        }
        pid_t pid = fork();
        if (pid < 0) {
                explicit_bzero(buf, sizeof(buf));
                log_error_errno(errno, "PAM helper: cannot fork: %m");
                return PAM_HELPER_EXIT_FAILED;
        }
        if (pid == 0) {
                r = check(service, &c);
                explicit_bzero(buf, sizeof(buf));
                _exit(r);
        }
        explicit_bzero(buf, sizeof(buf));
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        _exit(PAM_HELPER_EXIT_FAILED);
        /* _exit(): this half holds nothing to flush or free, and exit handlers that start threads (a
         * leak checker's) would find them in the namespace of the child, not ours. */
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : PAM_HELPER_EXIT_FAILED);
}
