/* SPDX-License-Identifier: MIT */
#pragma once

/* `helios-gateway passwd`: add a user to the users file or change their password (asked for on the
 * terminal, twice, or read as one line from standard input when that is not a terminal), or remove
 * them. Returns 0, or -errno after saying what went wrong. */
int passwd_run(int argc, char **argv);
