/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "netaddr.h"

static NetAddr addr(const char *s)
{
        NetAddr a;
        assert_int_equal(netaddr_parse(s, strlen(s), &a), 0);
        return a;
}

static NetPrefix prefix(const char *s)
{
        NetPrefix p;
        assert_int_equal(netprefix_parse(s, &p), 0);
        return p;
}

static void test_parse_format(void **state)
{
        char buf[NETADDR_STRLEN];
        NetAddr a;

        a = addr("192.0.2.7");
        netaddr_format(&a, buf);
        assert_string_equal(buf, "192.0.2.7");
        a = addr("[2001:db8::1]");
        netaddr_format(&a, buf);
        assert_string_equal(buf, "2001:db8::1");
        /* One client, one form: IPv4-mapped IPv6 is IPv4. */
        a = addr("::ffff:192.0.2.7");
        assert_int_equal(a.family, AF_INET);
        assert_true(netaddr_equal(&a, &(NetAddr){AF_INET, {192, 0, 2, 7}}));
        assert_int_not_equal(netaddr_parse("192.0.2", 8, &a), 0);
        assert_int_not_equal(netaddr_parse("", 0, &a), 0);
        assert_int_not_equal(netaddr_parse("example.org", 11, &a), 0);
}

static void test_loopback(void **state)
{
        NetAddr a = addr("127.8.9.10"), b = addr("::1"), c = addr("10.0.0.1"), u = {.family = AF_UNIX};

        assert_true(netaddr_is_loopback(&a));
        assert_true(netaddr_is_loopback(&b));
        assert_false(netaddr_is_loopback(&c));
        assert_false(netaddr_is_loopback(&u));
}

static void test_prefixes(void **state)
{
        NetPrefix p = prefix("10.0.0.0/8"), q = prefix("2001:db8::/32"), h = prefix("192.0.2.1"),
                  odd = prefix("192.0.2.128/25"), u = prefix("unix");
        NetAddr in = addr("10.200.3.4"), out = addr("11.0.0.1"), v6 = addr("2001:db8:1::2"),
                unix_peer = {AF_UNIX};

        assert_true(netprefix_contains(&p, &in));
        assert_false(netprefix_contains(&p, &out));
        assert_true(netprefix_contains(&q, &v6));
        assert_false(netprefix_contains(&q, &in));
        assert_true(netprefix_contains(&h, &(NetAddr){AF_INET, {192, 0, 2, 1}}));
        assert_false(netprefix_contains(&h, &(NetAddr){AF_INET, {192, 0, 2, 2}}));
        assert_true(netprefix_contains(&odd, &(NetAddr){AF_INET, {192, 0, 2, 200}}));
        assert_false(netprefix_contains(&odd, &(NetAddr){AF_INET, {192, 0, 2, 100}}));
        assert_true(netprefix_contains(&u, &unix_peer));
        assert_false(netprefix_contains(&u, &in));
        NetPrefix bad;
        assert_int_not_equal(netprefix_parse("10.0.0.0/33", &bad), 0);
        assert_int_not_equal(netprefix_parse("10.0.0.0/", &bad), 0);
        assert_int_not_equal(netprefix_parse("nonsense", &bad), 0);
}

static void expect_client(const char *peer, const char *xff, const NetPrefix *trusted, size_t n,
                          const char *want)
{
        NetAddr p = addr(peer), c = netaddr_client_from_forwarded(&p, xff, trusted, n);
        char buf[NETADDR_STRLEN];

        netaddr_format(&c, buf);
        assert_string_equal(buf, want);
}

static void test_forwarded(void **state)
{
        NetPrefix trusted[] = {prefix("127.0.0.1"), prefix("10.0.0.0/8")};

        /* An untrusted peer's header means nothing. */
        expect_client("198.51.100.1", "1.2.3.4", trusted, 2, "198.51.100.1");
        /* A trusted proxy's: the right-most address that is not itself a trusted proxy. */
        expect_client("127.0.0.1", "203.0.113.5", trusted, 2, "203.0.113.5");
        expect_client("127.0.0.1", "1.1.1.1, 203.0.113.5, 10.1.2.3", trusted, 2, "203.0.113.5");
        /* Spoofed entries to the left of the first untrusted hop are ignored. */
        expect_client("127.0.0.1", "127.0.0.1, 203.0.113.5", trusted, 2, "203.0.113.5");
        /* Garbage stops the walk at the hop that added it. */
        expect_client("127.0.0.1", "203.0.113.5, junk", trusted, 2, "127.0.0.1");
        expect_client("127.0.0.1", "[2001:db8::7]", trusted, 2, "2001:db8::7");
        expect_client("127.0.0.1", NULL, trusted, 2, "127.0.0.1");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse_format),
            cmocka_unit_test(test_loopback),
            cmocka_unit_test(test_prefixes),
            cmocka_unit_test(test_forwarded),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
