/* SPDX-License-Identifier: MIT */
/* What helios-launcher does with PAM for a login, and nothing else: authenticate USER against the
 * PAM service with the password on standard input, then check the account. The systemd tests run it
 * with helios-launcher.service's own sandbox, to show that PAM works under it.
 *
 * Usage: pam-check SERVICE USER < PASSWORD-LINE
 * Exit status: 0 accepted, 1 refused (wrong password, unknown or expired account), 2 PAM could not
 * check (what a sandbox that is too tight causes). The PAM result is printed either way. */
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int conversation(int n, const struct pam_message **msg, struct pam_response **ret, void *userdata)
{
        struct pam_response *r = calloc((size_t)n, sizeof(*r));

        if (!r)
                return PAM_BUF_ERR;
        for (int i = 0; i < n; i++) {
                /* The only question worth answering is the password; anything else is shown. */
                if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF) {
                        r[i].resp = strdup(userdata);
                        if (!r[i].resp) {
                                for (int j = 0; j < i; j++)
                                        free(r[j].resp);
                                free(r);
                                return PAM_BUF_ERR;
                        }
                } else if (msg[i]->msg)
                        fprintf(stderr, "pam: %s\n", msg[i]->msg);
        }
        *ret = r;
        return PAM_SUCCESS;
}

int main(int argc, char **argv)
{
        char password[1024];
        pam_handle_t *pamh = NULL;
        int r;

        if (argc != 3) {
                fprintf(stderr, "Usage: pam-check SERVICE USER < PASSWORD\n");
                return 2;
        }
        if (!fgets(password, sizeof(password), stdin))
                password[0] = '\0';
        password[strcspn(password, "\n")] = '\0';

        struct pam_conv conv = {conversation, password};
        r = pam_start(argv[1], argv[2], &conv, &pamh);
        if (r != PAM_SUCCESS) {
                fprintf(stderr, "pam_start: %d\n", r);
                return 2;
        }
        r = pam_authenticate(pamh, PAM_DISALLOW_NULL_AUTHTOK);
        if (r == PAM_SUCCESS)
                r = pam_acct_mgmt(pamh, PAM_DISALLOW_NULL_AUTHTOK);
        printf("%s\n", r == PAM_SUCCESS ? "accepted" : pam_strerror(pamh, r));
        (void)pam_end(pamh, r);

        switch (r) {
        case PAM_SUCCESS:
                return 0;
        case PAM_AUTH_ERR:
        case PAM_USER_UNKNOWN:
        case PAM_ACCT_EXPIRED:
        case PAM_NEW_AUTHTOK_REQD:
        case PAM_PERM_DENIED:
        case PAM_MAXTRIES:
                return 1;
        default:
                return 2;
        }
}
