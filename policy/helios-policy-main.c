/* SPDX-License-Identifier: MIT */
/* Build-time tool: writes the worker unit's sandbox directives from policy/. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "policy.h"

static void help(void)
{
        printf("Usage: helios-policy COMMAND\n\n"
               "The Helios sandbox policy, as systemd directives.\n\n"
               "  --unit-directives   Print the sandbox directives of helios-worker@.service\n"
               "  --pts-unit          Print helios-worker-pts@.service\n"
               "  --unit-template     Copy a unit from standard input to standard output, with the line\n"
               "                      " POLICY_UNIT_PLACEHOLDER " replaced by the directives\n"
               "  --home-dropin HOME  Print the drop-in of helios-worker@USER.service for the home HOME\n"
               "                      (helios-launcher writes it before it starts the unit)\n");
}

int main(int argc, char **argv)
{
        int r;

        if (argc == 3 && streq(argv[1], "--home-dropin")) {
                r = policy_write_home_dropin(stdout, argv[2]);
                if (r >= 0 && fflush(stdout) != 0)
                        r = -EIO;
                if (r < 0) {
                        fprintf(stderr, "helios-policy: %s: %s\n", argv[2], strerror(-r));
                        return EXIT_FAILURE;
                }
                return EXIT_SUCCESS;
        }
        if (argc != 2) {
                help();
                return EXIT_FAILURE;
        }
        if (streq(argv[1], "--help") || streq(argv[1], "-h")) {
                help();
                return EXIT_SUCCESS;
        }
        if (streq(argv[1], "--unit-directives"))
                r = policy_write_unit_directives(stdout);
        else if (streq(argv[1], "--pts-unit"))
                r = policy_write_pts_unit(stdout);
        else if (streq(argv[1], "--unit-template")) {
                r = policy_render_unit_template(stdin, stdout);
                if (r == -ENOENT)
                        fprintf(stderr,
                                "helios-policy: no line " POLICY_UNIT_PLACEHOLDER " in the template\n");
        } else {
                fprintf(stderr, "helios-policy: unknown command '%s'\n", argv[1]);
                return EXIT_FAILURE;
        }
        if (r >= 0 && fflush(stdout) != 0)
                r = -EIO;
        if (r < 0) {
                fprintf(stderr, "helios-policy: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}
