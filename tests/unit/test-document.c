/* SPDX-License-Identifier: MIT */
/* Document: UTF-16 addressed edits on UTF-8 text, all or nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "document.h"
#include "utf8.h"

#define EMOJI "\xF0\x9F\x98\x80" /* U+1F600, a surrogate pair in UTF-16 */
#define ACUTE "\xCC\x81"         /* U+0301 COMBINING ACUTE ACCENT */

static DocChange ch(uint64_t from, uint64_t to, const char *insert)
{
        return (DocChange){from, to, insert, strlen(insert)};
}

static Document *doc(const char *s)
{
        Document *d = NULL;

        assert_int_equal(doc_new(s, strlen(s), &d), 0);
        return d;
}

static int edit(Document *d, const DocChange *c, size_t n, size_t *ret_failed)
{
        int r = doc_edit(d, c, n, SIZE_MAX / 4, SIZE_MAX, NULL, ret_failed);
        if (r >= 0)
                doc_commit(d);
        return r;
}

static void test_new_rejects_bad_text(void **state)
{
        Document *d = NULL;

        assert_int_equal(doc_new("a\xC0\x80", 3, &d), -EINVAL); /* overlong NUL */
        assert_int_equal(doc_new("a\0b", 3, &d), -EINVAL);
        assert_int_equal(doc_new("\xED\xA0\x80", 3, &d), -EINVAL); /* a surrogate in UTF-8 */
        assert_null(d);
        assert_int_equal(doc_new("", 0, &d), 0);
        assert_int_equal(doc_size(d), 0);
        assert_int_equal(doc_length16(d), 0);
        assert_string_equal(doc_text(d), "");
        doc_free(d);
}

static void test_ascii(void **state)
{
        Document *d = doc("hello world");
        DocChange c[] = {ch(0, 5, "goodbye")};

        assert_int_equal(doc_length16(d), 11);
        assert_int_equal(edit(d, c, 1, NULL), 0);
        assert_string_equal(doc_text(d), "goodbye world");
        c[0] = ch(13, 13, "!");
        assert_int_equal(edit(d, c, 1, NULL), 0);
        c[0] = ch(7, 8, "");
        assert_int_equal(edit(d, c, 1, NULL), 0);
        assert_string_equal(doc_text(d), "goodbyeworld!");
        assert_int_equal(doc_length16(d), 13);
        doc_free(d);
}

static void test_astral(void **state)
{
        /* "a😀b": a=0, 😀 = units 1 and 2, b=3. */
        Document *d = doc("a" EMOJI "b");
        DocChange c[1];
        size_t failed = 99;

        assert_int_equal(doc_length16(d), 4);
        assert_int_equal(doc_size(d), 6);

        c[0] = ch(2, 2, "x"); /* between the halves */
        assert_int_equal(edit(d, c, 1, &failed), -EILSEQ);
        assert_int_equal(failed, 0);
        c[0] = ch(1, 2, ""); /* half the pair */
        assert_int_equal(edit(d, c, 1, NULL), -EILSEQ);
        c[0] = ch(2, 3, "");
        assert_int_equal(edit(d, c, 1, NULL), -EILSEQ);
        assert_string_equal(doc_text(d), "a" EMOJI "b");

        c[0] = ch(3, 3, "<"); /* after the pair */
        assert_int_equal(edit(d, c, 1, NULL), 0);
        c[0] = ch(1, 1, ">"); /* before it */
        assert_int_equal(edit(d, c, 1, NULL), 0);
        assert_string_equal(doc_text(d), "a>" EMOJI "<b");
        assert_int_equal(doc_length16(d), 6);

        c[0] = ch(2, 4, EMOJI EMOJI); /* replace the pair with two */
        assert_int_equal(edit(d, c, 1, NULL), 0);
        assert_string_equal(doc_text(d), "a>" EMOJI EMOJI "<b");
        assert_int_equal(doc_length16(d), 8);
        c[0] = ch(5, 5, "x"); /* inside the second pair, walking back from the gap */
        assert_int_equal(edit(d, c, 1, NULL), -EILSEQ);
        c[0] = ch(3, 3, "x"); /* inside the first pair, walking back */
        assert_int_equal(edit(d, c, 1, NULL), -EILSEQ);
        c[0] = ch(0, 8, "");
        assert_int_equal(edit(d, c, 1, NULL), 0);
        assert_string_equal(doc_text(d), "");
        assert_int_equal(doc_length16(d), 0);
        doc_free(d);
}

static void test_combining_marks(void **state)
{
        /* "é" as e + U+0301: two code units, and each one addressable (offsets are code units, not
         * grapheme clusters, exactly as in the browser). */
        Document *d = doc("caf"
                          "e" ACUTE "!");
        DocChange c[1];

        assert_int_equal(doc_length16(d), 6);
        c[0] = ch(4, 5, ""); /* drop the accent only */
        assert_int_equal(edit(d, c, 1, NULL), 0);
        assert_string_equal(doc_text(d), "cafe!");
        c[0] = ch(4, 4, ACUTE ACUTE);
        assert_int_equal(edit(d, c, 1, NULL), 0);
        assert_string_equal(doc_text(d), "cafe" ACUTE ACUTE "!");
        c[0] = ch(5, 6, "\xE2\x82\xAC"); /* a 3-byte character for the second accent */
        assert_int_equal(edit(d, c, 1, NULL), 0);
        assert_string_equal(doc_text(d), "cafe" ACUTE "\xE2\x82\xAC!");
        assert_int_equal(doc_length16(d), 7);
        doc_free(d);
}

static void test_sequential_changes(void **state)
{
        Document *d = doc("hello");
        /* Each change applies to the text the previous one left. */
        DocChange c[] = {ch(0, 0, "X"), ch(6, 6, "Y"), ch(1, 6, "")};

        assert_int_equal(edit(d, c, 3, NULL), 0);
        assert_string_equal(doc_text(d), "XY");
        doc_free(d);

        /* The same edit in descending order (what a client applying from the end sends). */
        d = doc("one two three");
        DocChange desc[] = {ch(8, 13, "3"), ch(4, 7, "2"), ch(0, 3, "1")};
        assert_int_equal(edit(d, desc, 3, NULL), 0);
        assert_string_equal(doc_text(d), "1 2 3");
        doc_free(d);
}

static void test_all_or_nothing(void **state)
{
        Document *d = doc("a" EMOJI "bc");
        size_t failed = 99;
        DocChange bad_range[] = {ch(0, 0, "AAAA"), ch(1, 2, EMOJI), ch(100, 100, "x")};
        DocChange bad_order[] = {ch(0, 1, "z"), ch(3, 2, "")};
        DocChange bad_pair[] = {ch(5, 5, "tail"), ch(0, 0, EMOJI), ch(4, 4, "x")};
        DocChange bad_text[] = {ch(0, 0, "ok"), {1, 1, "\xFF", 1}};
        DocChange nul[] = {{0, 0, "a\0b", 3}};

        assert_int_equal(edit(d, bad_range, 3, &failed), -ERANGE);
        assert_int_equal(failed, 2);
        assert_string_equal(doc_text(d), "a" EMOJI "bc");
        assert_int_equal(edit(d, bad_order, 2, &failed), -ERANGE);
        assert_int_equal(failed, 1);
        /* After "tail" and a leading emoji, offset 4 is inside the original emoji. */
        assert_int_equal(edit(d, bad_pair, 3, &failed), -EILSEQ);
        assert_int_equal(failed, 2);
        assert_int_equal(edit(d, bad_text, 2, &failed), -EILSEQ);
        assert_int_equal(failed, 1);
        assert_int_equal(edit(d, nul, 1, &failed), -EILSEQ);
        assert_string_equal(doc_text(d), "a" EMOJI "bc");
        assert_int_equal(doc_length16(d), 5);
        doc_free(d);
}

static void test_rollback(void **state)
{
        Document *d = doc("0123456789");
        DocChange c[] = {ch(2, 5, "abc" EMOJI), ch(0, 1, ""), ch(9, 10, "")};

        assert_int_equal(doc_edit(d, c, 3, SIZE_MAX, SIZE_MAX, NULL, NULL), 0);
        assert_string_equal(doc_text(d), "1abc" EMOJI "5679");
        doc_rollback(d);
        assert_string_equal(doc_text(d), "0123456789");
        assert_int_equal(doc_length16(d), 10);
        /* A new edit commits an earlier one that was left open. */
        assert_int_equal(doc_edit(d, c, 1, SIZE_MAX, SIZE_MAX, NULL, NULL), 0);
        assert_int_equal(doc_edit(d, c + 1, 1, SIZE_MAX, SIZE_MAX, NULL, NULL), 0);
        doc_rollback(d);
        assert_string_equal(doc_text(d), "01abc" EMOJI "56789");
        doc_free(d);
}

static void test_limits(void **state)
{
        Document *d = doc("12345");
        DocChange grow[] = {ch(5, 5, "67")};
        DocChange shrink[] = {ch(0, 1, "")};
        DocChange swap[] = {ch(0, 2, "ab")};
        size_t cost = 0;

        assert_int_equal(doc_edit(d, grow, 1, 6, SIZE_MAX, NULL, NULL), -EFBIG);
        assert_int_equal(doc_edit(d, grow, 1, 7, SIZE_MAX, &cost, NULL), 0);
        assert_true(cost > 0);
        doc_commit(d);
        /* Shrinking, or staying the same size, is allowed even above the limit. */
        assert_int_equal(doc_edit(d, shrink, 1, 3, SIZE_MAX, NULL, NULL), 0);
        doc_commit(d);
        assert_int_equal(doc_edit(d, swap, 1, 3, SIZE_MAX, NULL, NULL), 0);
        doc_commit(d);
        assert_string_equal(doc_text(d), "ab4567");
        /* The cost bound. */
        assert_int_equal(doc_edit(d, grow, 1, SIZE_MAX, 1, NULL, NULL), -E2BIG);
        assert_string_equal(doc_text(d), "ab4567");
        doc_free(d);
}

static void test_segments_and_equal(void **state)
{
        Document *d = doc("abcdef");
        DocChange c[] = {ch(3, 3, "XY")};
        struct iovec iov[2];
        char out[16] = "";
        size_t n = 0;
        int k;

        assert_int_equal(edit(d, c, 1, NULL), 0);
        /* The gap is in the middle now: two pieces. */
        k = doc_segments(d, iov);
        assert_int_equal(k, 2);
        for (int i = 0; i < k; i++) {
                memcpy(out + n, iov[i].iov_base, iov[i].iov_len);
                n += iov[i].iov_len;
        }
        assert_int_equal(n, 8);
        assert_memory_equal(out, "abcXYdef", 8);
        assert_true(doc_equal(d, "abcXYdef", 8));
        assert_false(doc_equal(d, "abcXYdeg", 8));
        assert_false(doc_equal(d, "abcXYde", 7));
        doc_free(d);
}

/* Reference model: the text as a flat string, changes applied with the common helpers. */
static int ref_apply(Buf *t, const DocChange *c)
{
        size_t a, b;
        Buf out = {};
        int r;

        if (c->from > c->to || c->to > utf16_length(t->data, t->len))
                return -ERANGE;
        if (memchr(c->insert, 0, c->insert_len) || !utf8_is_valid(c->insert, c->insert_len))
                return -EILSEQ;
        r = utf16_to_byte_offset(t->data, t->len, c->from, &a);
        if (r == 0)
                r = utf16_to_byte_offset(t->data, t->len, c->to, &b);
        if (r < 0)
                return r == -EINVAL ? -EILSEQ : r;
        assert_int_equal(buf_append(&out, t->data, a), 0);
        assert_int_equal(buf_append(&out, c->insert, c->insert_len), 0);
        assert_int_equal(buf_append(&out, t->data + b, t->len - b), 0);
        buf_done(t);
        *t = out;
        return 0;
}

static void test_random_against_reference(void **state)
{
        static const char *const pieces[] = {"a", "bc", "\xC3\xA9", "\xE2\x82\xAC", EMOJI, "\n", ACUTE, ""};
        /* Long ASCII runs with other characters between them: walks take both the fast and the slow
         * path, from the start, the gap and the end. */
        static const char start[] = "0123456789abcdefghij" EMOJI "klmnopqrstuvwxyz0123456789" ACUTE
                                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ\xC3\xA9"
                                    "0123456789abcdefghij0123456789";
        Document *d = doc(start);
        Buf ref = {};
        unsigned seed = 12345;

        assert_int_equal(buf_append(&ref, start, strlen(start)), 0);
        for (int round = 0; round < 4000; round++) {
                DocChange c[4];
                char ins[4][32];
                size_t n = 1 + (size_t)(rand_r(&seed) % 4), len16, failed = 99, ref_failed = 99;
                Buf trial = {};
                int r, ref_r = 0;

                len16 = doc_length16(d);
                for (size_t i = 0; i < n; i++) {
                        size_t k = 0;
                        ins[i][0] = '\0';
                        for (int p = rand_r(&seed) % 4; p > 0; p--) {
                                const char *s = pieces[rand_r(&seed) % ELEMENTSOF(pieces)];
                                memcpy(ins[i] + k, s, strlen(s) + 1);
                                k += strlen(s);
                        }
                        uint64_t from = (uint64_t)(rand_r(&seed) % (len16 + 3));
                        uint64_t to = from + (uint64_t)(rand_r(&seed) % 4);
                        c[i] = (DocChange){from, to, ins[i], k};
                }
                /* The reference applies to a copy, so a failure leaves it untouched. */
                assert_int_equal(buf_append(&trial, ref.data, ref.len), 0);
                for (size_t i = 0; i < n && ref_r == 0; i++) {
                        ref_r = ref_apply(&trial, &c[i]);
                        if (ref_r < 0)
                                ref_failed = i;
                }
                r = doc_edit(d, c, n, SIZE_MAX / 4, SIZE_MAX, NULL, &failed);
                assert_int_equal(r, ref_r);
                if (r < 0) {
                        assert_int_equal(failed, ref_failed);
                        buf_done(&trial);
                } else if (rand_r(&seed) % 5 == 0) {
                        doc_rollback(d);
                        buf_done(&trial);
                } else {
                        doc_commit(d);
                        buf_done(&ref);
                        ref = trial;
                }
                assert_true(doc_equal(d, ref.data, ref.len));
                assert_int_equal(doc_length16(d), utf16_length(ref.data, ref.len));
        }
        assert_string_equal(doc_text(d), ref.data);
        buf_done(&ref);
        doc_free(d);
}

/* Typing a long text one keystroke at a time near the end of a large document, then one at the start:
 * the gap makes each keystroke cost the distance from the previous one. */
static void test_typing_cost(void **state)
{
        size_t big = 4u * 1024u * 1024u, cost_sum = 0;
        char *text = malloc(big + 1);
        Document *d;

        assert_non_null(text);
        memset(text, 'x', big);
        text[big] = '\0';
        assert_int_equal(doc_new(text, big, &d), 0);
        free(text);
        for (size_t i = 0; i < 10000; i++) {
                DocChange c = ch(big / 2 + i, big / 2 + i, "y");
                size_t cost = 0;
                assert_int_equal(doc_edit(d, &c, 1, SIZE_MAX, SIZE_MAX, &cost, NULL), 0);
                doc_commit(d);
                if (i > 0)
                        cost_sum += cost;
        }
        /* After the first keystroke has brought the gap there, each costs a few bytes. */
        assert_true(cost_sum < 10000 * 8);
        assert_int_equal(doc_size(d), big + 10000);
        doc_free(d);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_new_rejects_bad_text),
            cmocka_unit_test(test_ascii),
            cmocka_unit_test(test_astral),
            cmocka_unit_test(test_combining_marks),
            cmocka_unit_test(test_sequential_changes),
            cmocka_unit_test(test_all_or_nothing),
            cmocka_unit_test(test_rollback),
            cmocka_unit_test(test_limits),
            cmocka_unit_test(test_segments_and_equal),
            cmocka_unit_test(test_random_against_reference),
            cmocka_unit_test(test_typing_cost),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
