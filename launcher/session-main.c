/* SPDX-License-Identifier: MIT */
/* helios-session: holds one PAM login session of a web login, for helios-launcher.
 *
 *   helios-session SERVICE USER LINE RHOST UTMP WTMP
 *
 * It runs as root, started by the launcher with a clean environment, its standard input the read end
 * of a pipe the launcher keeps and its standard output a pipe to the launcher. It opens the session
 * (pam_start, PAM_RHOST and PAM_TTY, pam_acct_mgmt, pam_setcred, pam_open_session), writes the utmp
 * record of LINE (e.g. "web/3") and its wtmp record, and says "open" with one byte on its standard
 * output. Then it waits: the session lasts until its standard input reaches its end (the launcher
 * closed it, or the launcher is gone) or SIGTERM, SIGINT or SIGHUP comes. It then closes everything in
 * the reverse order and exits 0.
 *
 * A process of its own, because pam_systemd moves the process that opens a session into the session's
 * scope: the launcher must not be that process. It runs nothing as the user: the workspace stays the
 * service it is, outside the session. RHOST "" means unknown: PAM_RHOST is then left unset. */
#include <poll.h>
#include <security/pam_appl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/time.h>
#include <unistd.h>
#include <utmpx.h>

#include "account.h"
#include "launcher-protocol.h"
#include "log.h"
#include "macro.h"
#include "pam-helper.h"
#include "pam-util.h"
#include "user-name.h"

typedef struct Args {
        const char *service, *user, *line, *rhost, *utmp, *wtmp;
} Args;

/* Nothing to ask: a session needs no password, and nobody is there to answer a prompt. */
static int conversation(int n, const struct pam_message **msg, struct pam_response **ret, void *userdata)
{
        struct pam_response *resp;

        if (n <= 0 || n > PAM_MAX_NUM_MSG)
                return PAM_CONV_ERR;
        for (int i = 0; i < n; i++)
                if (msg[i]->msg_style != PAM_ERROR_MSG && msg[i]->msg_style != PAM_TEXT_INFO)
                        return PAM_CONV_ERR;
        resp = calloc((size_t)n, sizeof(struct pam_response));
        if (!resp)
                return PAM_BUF_ERR;
        *ret = resp;
        return PAM_SUCCESS;
}

/* Whether line is "web/N", N a number of one to three digits without leading zeros. */
static bool line_valid(const char *line)
{
        const char *n = line + 4;
        size_t len;

        if (strncmp(line, "web/", 4) != 0)
                return false;
        len = strlen(n);
        if (len < 1 || len > 3 || strspn(n, "0123456789") != len || (n[0] == '0' && len > 1))
                return false;
        return true;
}

/* The record of this session: USER_PROCESS while it is open, DEAD_PROCESS after. ut_id is "w" and the
 * line's number ("w3" for web/3), so that the next session on this line replaces the record and no
 * terminal's is touched: login(1) and sshd take a line's last four characters, "/113" for pts/113,
 * which web/113's would be too.
 *
 * The DEAD_PROCESS record replaces the line's only while that is still this session's: a helper that
 * closes late (its launcher restarted, and the new one gave the line to another login meanwhile) must
 * not end the other login's record in utmp, nor in wtmp, where last(1) would read it as that login's
 * logout. */
static void login_record(const Args *a, short type)
{
        struct utmpx ut = {.ut_type = type, .ut_pid = getpid()};
        struct timeval tv;
        char id[sizeof(ut.ut_id) + 1];
        bool ours = true;

        (void)gettimeofday(&tv, NULL);
        ut.ut_tv.tv_sec = (int32_t)tv.tv_sec;
        ut.ut_tv.tv_usec = (int32_t)tv.tv_usec;
        (void)strncpy(ut.ut_line, a->line, sizeof(ut.ut_line));
        /* Four bytes, not NUL-terminated when full ("w113"). */
        (void)snprintf(id, sizeof(id), "w%s", a->line + 4);
        (void)strncpy(ut.ut_id, id, sizeof(ut.ut_id));
        if (type == USER_PROCESS) {
                (void)strncpy(ut.ut_user, a->user, sizeof(ut.ut_user));
                (void)strncpy(ut.ut_host, a->rhost, sizeof(ut.ut_host));
        }
        if (utmpxname(a->utmp) < 0)
                log_warning_errno(errno, "Cannot use %s, ignoring: %m", a->utmp);
        else {
                setutxent();
                if (type == DEAD_PROCESS) {
                        struct utmpx *cur = getutxid(&ut);
                        ours = !cur || cur->ut_pid == ut.ut_pid;
                }
                if (ours && !pututxline(&ut))
                        log_warning_errno(errno, "Cannot write the record of %s to %s, ignoring: %m",
                                          a->line, a->utmp);
                endutxent();
        }
        if (!ours) {
                log_notice("The line %s has another login now: its records are left alone.", a->line);
                return;
        }
        updwtmpx(a->wtmp, &ut);
}

/* Until the end of standard input, or a signal. */
static void wait_for_end(int sfd)
{
        struct pollfd p[] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
        char buf[256];

        for (;;) {
                if (poll(p, ELEMENTSOF(p), -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return;
                }
                if (p[1].revents)
                        return;
                if (p[0].revents) {
                        /* Bytes are ignored; the end, or an error, ends the session. */
                        ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
                        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                                return;
                }
        }
}

static int session(const Args *a, int sfd)
{
        struct pam_conv conv = {.conv = conversation};
        pam_handle_t *h = NULL;
        const char *step = "start";
        bool creds = false;
        int r, exit_code;

        r = pam_start(a->service, a->user, &conv, &h);
        if (r != PAM_SUCCESS) {
                log_error("PAM: cannot start service %s: %s", a->service, pam_strerror(NULL, r));
                return PAM_HELPER_EXIT_FAILED;
        }
        /* As a remote login: the address for pam_access and logind's RemoteHost, the line as the
         * terminal, which logind shows as TTY and pam_systemd takes as a non-graphical session. */
        if (a->rhost[0])
                r = pam_set_item(h, PAM_RHOST, a->rhost);
        if (r == PAM_SUCCESS)
                r = pam_set_item(h, PAM_TTY, a->line);
        if (r == PAM_SUCCESS) {
                step = "account check";
                r = pam_acct_mgmt(h, 0);
        }
        if (r == PAM_SUCCESS && account_password_locked(a->user))
                /* usermod -L, passwd -l, as the launcher's account check has it: pam_unix's account
                 * management lets such an account by, as it would a login by SSH key. */
                r = PAM_PERM_DENIED;
        if (r == PAM_SUCCESS) {
                step = "credentials";
                r = pam_setcred(h, PAM_ESTABLISH_CRED);
                creds = r == PAM_SUCCESS;
        }
        if (r == PAM_SUCCESS) {
                step = "session";
                r = pam_open_session(h, 0);
        }
        if (r != PAM_SUCCESS) {
                log_full_errno(pam_result_is_denial(r) ? LOG_NOTICE : LOG_ERR, 0,
                               "PAM %s for %s failed (service %s): %s", step, a->user, a->service,
                               pam_strerror(h, r));
                exit_code = pam_result_is_denial(r) ? PAM_HELPER_EXIT_DENIED : PAM_HELPER_EXIT_FAILED;
                if (creds)
                        (void)pam_setcred(h, PAM_DELETE_CRED);
                (void)pam_end(h, r);
                return exit_code;
        }
        login_record(a, USER_PROCESS);
        log_info("Session of %s on %s from %s open.", a->user, a->line, a->rhost[0] ? a->rhost : "-");
        /* The launcher answers the gateway when this byte comes. */
        if (write(STDOUT_FILENO, "o", 1) != 1)
                log_debug_errno(errno, "The launcher is gone before the session opened: %m");
        else
                wait_for_end(sfd);

        login_record(a, DEAD_PROCESS);
        r = pam_setcred(h, PAM_DELETE_CRED);
        if (r != PAM_SUCCESS)
                log_warning("PAM: deleting the credentials of %s failed, ignoring: %s", a->user,
                            pam_strerror(h, r));
        r = pam_close_session(h, 0);
        if (r != PAM_SUCCESS)
                log_warning("PAM: closing the session of %s failed: %s", a->user, pam_strerror(h, r));
        (void)pam_end(h, r);
        log_info("Session of %s on %s closed.", a->user, a->line);
        return r == PAM_SUCCESS ? PAM_HELPER_EXIT_OK : PAM_HELPER_EXIT_FAILED;
}

int main(int argc, char **argv)
{
        sigset_t mask;
        int sfd;

        log_setup("helios-session");
        if (argc != 7) {
                log_error("Usage: helios-session SERVICE USER LINE RHOST UTMP WTMP (started by "
                          "helios-launcher).");
                return PAM_HELPER_EXIT_FAILED;
        }
        Args a = {argv[1], argv[2], argv[3], argv[4], argv[5], argv[6]};
        if (geteuid() != 0 || !user_name_valid(a.user, strlen(a.user)) || !line_valid(a.line) ||
            !launcher_rhost_valid(a.rhost, strlen(a.rhost)) || a.utmp[0] != '/' || a.wtmp[0] != '/') {
                log_error("helios-session: invalid arguments.");
                return PAM_HELPER_EXIT_FAILED;
        }
        /* The signals that end the session are read, not handled: the closing runs in order, never
         * inside a handler. */
        (void)sigemptyset(&mask);
        (void)sigaddset(&mask, SIGTERM);
        (void)sigaddset(&mask, SIGINT);
        (void)sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 || (sfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0) {
                log_error_errno(errno, "helios-session: cannot watch signals: %m");
                return PAM_HELPER_EXIT_FAILED;
        }
        /* A launcher that stops reading must not stop the end of the session. */
        (void)signal(SIGPIPE, SIG_IGN);
        int r = session(&a, sfd);
        safe_close(sfd);
        return r;
}
