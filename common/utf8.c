/* SPDX-License-Identifier: MIT */
#include "utf8.h"

#include <errno.h>

int utf8_sequence(const uint8_t *s, size_t n)
{
        uint8_t c = s[0];
        size_t len;
        uint8_t lo = 0x80, hi = 0xBF;

        if (c < 0x80)
                return 1;
        if (c < 0xC2)
                return 0;
        if (c < 0xE0)
                len = 2;
        else if (c < 0xF0) {
                len = 3;
                if (c == 0xE0)
                        lo = 0xA0; /* overlong */
                else if (c == 0xED)
                        hi = 0x9F; /* surrogates */
        } else if (c < 0xF5) {
                len = 4;
                if (c == 0xF0)
                        lo = 0x90; /* overlong */
                else if (c == 0xF4)
                        hi = 0x8F; /* above U+10FFFF */
        } else
                return 0;

        for (size_t i = 1; i < len; i++) {
                if (i >= n)
                        return -1;
                if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xBF))
                        return 0;
        }
        return (int)len;
}

bool utf8_is_valid(const char *str, size_t n)
{
        const uint8_t *s = (const uint8_t *)str;
        size_t i = 0;

        while (i < n) {
                /* Skip ASCII eight bytes at a time: most text is mostly ASCII. */
                while (i + 8 <= n) {
                        uint64_t w;
                        memcpy(&w, s + i, 8);
                        if (w & 0x8080808080808080ULL)
                                break;
                        i += 8;
                }
                if (i >= n)
                        break;
                if (s[i] < 0x80) {
                        i++;
                        continue;
                }
                int l = utf8_sequence(s + i, n - i);
                if (l <= 0)
                        return false;
                i += (size_t)l;
        }
        return true;
}

bool utf8_stream_feed(Utf8Stream *st, const char *str, size_t n, bool final)
{
        const uint8_t *s = (const uint8_t *)str;
        size_t i = 0;

        /* Finish the sequence the last piece ended in, a byte at a time. */
        while (st->carry_len > 0 && i < n) {
                int l;
                st->carry[st->carry_len++] = s[i++];
                l = utf8_sequence(st->carry, st->carry_len);
                if (l == 0)
                        return false;
                if (l > 0)
                        st->carry_len = 0;
        }
        if (i < n) {
                /* Everything up to a sequence cut off by the end of the piece must be valid. */
                size_t tail = n;
                for (size_t k = 1; k <= 3 && k <= n - i; k++) {
                        uint8_t c = s[n - k];
                        if (c >= 0xC0) {
                                if (utf8_sequence(s + n - k, k) < 0)
                                        tail = n - k;
                                break;
                        }
                        if (c < 0x80)
                                break;
                }
                if (!utf8_is_valid(str + i, tail - i))
                        return false;
                memcpy(st->carry, s + tail, n - tail);
                st->carry_len = (uint8_t)(n - tail);
        }
        return !(final && st->carry_len > 0);
}

int utf8_sanitize_append(Buf *out, const char *str, size_t n, bool final, size_t *ret_consumed)
{
        const uint8_t *s = (const uint8_t *)str;
        size_t i = 0, run = 0;
        int r;

        /* Worst case every byte becomes a 3-byte replacement character. */
        r = buf_reserve(out, n * 3);
        if (r < 0)
                return r;

        while (i < n) {
                int l = s[i] < 0x80 ? 1 : utf8_sequence(s + i, n - i);

                if (l > 0) {
                        i += (size_t)l;
                        continue;
                }
                if (l < 0 && !final)
                        break; /* incomplete tail: the caller carries it over */
                memcpy(out->data + out->len, s + run, i - run);
                out->len += i - run;
                memcpy(out->data + out->len, "\xEF\xBF\xBD", 3);
                out->len += 3;
                run = ++i;
        }
        memcpy(out->data + out->len, s + run, i - run);
        out->len += i - run;
        out->data[out->len] = '\0';
        *ret_consumed = i;
        return 0;
}

size_t utf16_length(const char *str, size_t n)
{
        const uint8_t *s = (const uint8_t *)str;
        size_t units = 0;

        /* Every byte that is not a continuation byte starts a code point; 4-byte sequences are
         * surrogate pairs in UTF-16 and count twice. */
        for (size_t i = 0; i < n; i++) {
                uint8_t c = s[i];
                units += (c & 0xC0) != 0x80;
                units += c >= 0xF0;
        }
        return units;
}

int utf16_to_byte_offset(const char *str, size_t n, size_t u16, size_t *ret)
{
        const uint8_t *s = (const uint8_t *)str;
        size_t i = 0, units = 0;

        while (units < u16) {
                if (i >= n)
                        return -ERANGE;
                uint8_t c = s[i];
                if (c < 0x80) {
                        i++;
                        units++;
                } else if (c < 0xE0) {
                        i += 2;
                        units++;
                } else if (c < 0xF0) {
                        i += 3;
                        units++;
                } else {
                        if (units + 1 == u16)
                                return -EINVAL; /* between the two halves of a surrogate pair */
                        i += 4;
                        units += 2;
                }
        }
        if (i > n)
                return -ERANGE;
        *ret = i;
        return 0;
}

int json_escape_append(Buf *out, const char *str, size_t n)
{
        static const char hex[] = "0123456789abcdef";
        const uint8_t *s = (const uint8_t *)str;
        size_t run = 0;
        char *p;
        int r;

        /* Worst case: every byte becomes \u00XX. */
        r = buf_reserve(out, n * 6);
        if (r < 0)
                return r;
        p = out->data + out->len;

        for (size_t i = 0; i < n; i++) {
                uint8_t c = s[i];
                if (_likely_(c >= 0x20 && c != '"' && c != '\\'))
                        continue;
                memcpy(p, s + run, i - run);
                p += i - run;
                run = i + 1;
                *p++ = '\\';
                switch (c) {
                case '"':
                        *p++ = '"';
                        break;
                case '\\':
                        *p++ = '\\';
                        break;
                case '\n':
                        *p++ = 'n';
                        break;
                case '\r':
                        *p++ = 'r';
                        break;
                case '\t':
                        *p++ = 't';
                        break;
                case '\b':
                        *p++ = 'b';
                        break;
                case '\f':
                        *p++ = 'f';
                        break;
                default:
                        *p++ = 'u';
                        *p++ = '0';
                        *p++ = '0';
                        *p++ = hex[c >> 4];
                        *p++ = hex[c & 0xF];
                }
        }
        memcpy(p, s + run, n - run);
        p += n - run;
        *p = '\0';
        out->len = (size_t)(p - out->data);
        return 0;
}
