/* SPDX-License-Identifier: MIT */
#pragma once

/* Under systemd the worker unit cannot know its user's home: %h is the service manager's own (root's)
 * and nothing else expands to the home of User=. Before it starts helios-worker@INSTANCE.socket,
 * helios-launcher therefore writes the runtime drop-in
 *
 *     DROPIN_ROOT/helios-worker@INSTANCE.service.d/50-home.conf
 *
 * (DROPIN_ROOT is /run/systemd/system) with the account's home from the password database, made by
 * policy_write_home_dropin(). systemd reads it when it loads the unit, which it does afresh when the
 * socket is first started; a drop-in that changes while the unit is loaded needs `systemctl
 * daemon-reload`, which is logged. The file is replaced atomically and only when its text changes. */

#define WORKER_HOME_DROPIN_ROOT "/run/systemd/system"

/* 0 when the drop-in is in place (already, or written now), 1 when it replaced one that said something
 * else (the home moved), -errno on failure (-EINVAL: a home the policy cannot give, see
 * policy_home_root()). */
int worker_home_dropin_write(const char *dropin_root, const char *instance, const char *user);
