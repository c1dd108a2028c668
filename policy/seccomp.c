/* SPDX-License-Identifier: MIT */
/* The seccomp filter of syscalls.c, built with libseccomp: loaded directly by the worker (--seccomp,
 * under systemd), or compiled to a BPF program that the launcher loads between fork and exec, where
 * nothing may allocate. */
#include <assert.h>
#include <errno.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "macro.h"
#include "policy.h"

static void seccomp_releasep(scmp_filter_ctx *ctx)
{
        if (*ctx)
                seccomp_release(*ctx);
}

static int add_rule(scmp_filter_ctx ctx, const PolicySyscall *s, int nr)
{
        uint32_t action = SCMP_ACT_ERRNO((uint32_t)s->error);
        int r;

        switch (s->match) {
        case POLICY_MATCH_ALWAYS:
                return seccomp_rule_add(ctx, action, nr, 0);
        case POLICY_MATCH_ANY_BIT:
                /* One rule per bit: rules for the same call are alternatives, and a masked
                 * comparison tests all the bits of its mask at once. */
                for (unsigned bit = 0; bit < 64; bit++) {
                        uint64_t m = UINT64_C(1) << bit;

                        if (!(s->value & m))
                                continue;
                        r = seccomp_rule_add(ctx, action, nr, 1,
                                             SCMP_CMP64(s->arg, SCMP_CMP_MASKED_EQ, m, m));
                        if (r < 0)
                                return r;
                }
                return 0;
        case POLICY_MATCH_LOW32:
                return seccomp_rule_add(
                    ctx, action, nr, 1,
                    SCMP_CMP64(s->arg, SCMP_CMP_MASKED_EQ, UINT64_C(0xffffffff), s->value));
        case POLICY_MATCH_NOT_IN:
                for (uint64_t v = 0; v < s->value; v++) {
                        bool allowed = false;

                        for (size_t i = 0; i < s->n_allowed; i++)
                                allowed = allowed || (uint64_t)s->allowed[i].family == v;
                        if (allowed)
                                continue;
                        r = seccomp_rule_add(ctx, action, nr, 1, SCMP_CMP32(s->arg, SCMP_CMP_EQ, v));
                        if (r < 0)
                                return r;
                }
                /* The kernel takes the argument as an int: compared on 32 bits, a negative one is
                 * in this range too. */
                return seccomp_rule_add(ctx, action, nr, 1, SCMP_CMP32(s->arg, SCMP_CMP_GE, s->value));
        case POLICY_MATCH_EQ_BUT_NOT:
                return seccomp_rule_add(ctx, action, nr, 2, SCMP_CMP32(s->arg, SCMP_CMP_EQ, s->value),
                                        SCMP_CMP32(s->arg2, SCMP_CMP_NE, s->value2));
        default:
                return -EINVAL;
        }
}

static int policy_seccomp_new(scmp_filter_ctx *ret)
{
        scmp_filter_ctx ctx _cleanup_(seccomp_releasep) = NULL;
        int r;

        ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx)
                return -ENOMEM;
        /* A call through another architecture's table (int 0x80 on x86-64, say) would dodge every
         * rule, which are numbered for the native one: such a process is killed. */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        if (r < 0)
                return r;
        /* The caller sets no_new_privs itself, as an explicit step of the privilege drop. */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
        if (r < 0)
                return r;

        for (size_t i = 0; i < policy_n_syscalls; i++) {
                const PolicySyscall *s = &policy_syscalls[i];
                int nr = seccomp_syscall_resolve_name(s->name);

                /* Unknown to libseccomp, or not a call of this architecture: nothing to refuse. */
                if (nr == __NR_SCMP_ERROR || nr < 0)
                        continue;
                r = add_rule(ctx, s, nr);
                if (r == -EDOM)
                        continue;
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(ctx);
        return 0;
}

int policy_seccomp_export(struct sock_fprog *ret)
{
        scmp_filter_ctx ctx _cleanup_(seccomp_releasep) = NULL;
        _cleanup_close_ int fd = -1;
        _cleanup_free_ struct sock_filter *filter = NULL;
        struct stat st;
        int r;

        assert(ret);

        r = policy_seccomp_new(&ctx);
        if (r < 0)
                return r;

        /* libseccomp 2.5 exports only to a file descriptor. */
        fd = memfd_create("helios-seccomp", MFD_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        r = seccomp_export_bpf(ctx, fd);
        if (r < 0)
                return r;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) != 0 ||
            st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS)
                return -EBADMSG;

        filter = malloc(st.st_size);
        if (!filter)
                return -ENOMEM;
        for (off_t done = 0; done < st.st_size;) {
                ssize_t n = pread(fd, (char *)filter + done, st.st_size - done, done);
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return -EIO;
                done += n;
        }

        *ret = (struct sock_fprog){
            .len = (unsigned short)(st.st_size / sizeof(struct sock_filter)),
            .filter = TAKE_PTR(filter),
        };
        return 0;
}

int policy_seccomp_apply(void)
{
        scmp_filter_ctx ctx _cleanup_(seccomp_releasep) = NULL;
        int r;

        r = policy_seccomp_new(&ctx);
        if (r < 0)
                return r;
        /* Loading a filter without CAP_SYS_ADMIN requires no_new_privs, and the policy wants it
         * anyway. */
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return negative_errno();
        /* Every thread, not only this one: a helper thread must not be a way around the filter. */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
        if (r < 0)
                return r;
        return seccomp_load(ctx);
}

int policy_seccomp_load_bpf(const struct sock_fprog *prog)
{
        assert(prog);

        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog) < 0)
                return negative_errno();
        return 0;
}
