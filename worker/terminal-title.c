/* SPDX-License-Identifier: MIT */
#include "terminal-title.h"

#include <assert.h>
#include <string.h>

#include "macro.h"
#include "utf8.h"

#define ESC 0x1b
#define BEL 0x07
#define CAN 0x18
#define SUB 0x1a

/* A complete OSC 0/2: make it the title. True if that changed it. */
static bool title_commit(TitleTracker *t)
{
        size_t len = t->pending_len;

        /* The text may have been cut inside a character at TITLE_MAX. */
        while (len > 0 && !utf8_is_valid(t->pending, len))
                len--;
        if (t->has_title && strlen(t->title) == len && memcmp(t->title, t->pending, len) == 0)
                return false;
        memcpy(t->title, t->pending, len);
        t->title[len] = '\0';
        t->has_title = true;
        return true;
}

/* ESC seen: what the next byte starts. */
static TitleState after_esc(unsigned char c)
{
        if (c == ']')
                return TITLE_OSC_NUMBER;
        return c == ESC ? TITLE_ESC : TITLE_GROUND;
}

bool title_feed(TitleTracker *t, const char *s, size_t n)
{
        bool changed = false;

        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];

                switch (t->state) {
                case TITLE_GROUND: {
                        /* Almost all output is here: skip to the next escape at memchr speed. */
                        const char *esc = memchr(s + i, ESC, n - i);
                        if (!esc)
                                return changed;
                        i = (size_t)(esc - s);
                        t->state = TITLE_ESC;
                        break;
                }
                case TITLE_ESC:
                        t->state = after_esc(c);
                        t->number = 0;
                        break;
                case TITLE_OSC_NUMBER:
                        if (c >= '0' && c <= '9')
                                t->number = MIN(t->number * 10 + (unsigned)(c - '0'), 1000u);
                        else if (c == ';' && (t->number == 0 || t->number == 2)) {
                                t->state = TITLE_OSC_TEXT;
                                t->pending_len = 0;
                        } else if (c == BEL || c == CAN || c == SUB)
                                t->state = TITLE_GROUND;
                        else
                                t->state = c == ESC ? TITLE_OSC_OTHER_ESC : TITLE_OSC_OTHER;
                        break;
                case TITLE_OSC_TEXT:
                case TITLE_OSC_OTHER:
                        if (c == BEL) {
                                if (t->state == TITLE_OSC_TEXT)
                                        changed |= title_commit(t);
                                t->state = TITLE_GROUND;
                        } else if (c == ESC)
                                t->state =
                                    t->state == TITLE_OSC_TEXT ? TITLE_OSC_TEXT_ESC : TITLE_OSC_OTHER_ESC;
                        else if (c == CAN || c == SUB)
                                t->state = TITLE_GROUND; /* the sequence is cancelled */
                        else if (t->state == TITLE_OSC_TEXT && c >= 0x20 && c != 0x7f &&
                                 t->pending_len < sizeof(t->pending))
                                t->pending[t->pending_len++] = (char)c;
                        break;
                case TITLE_OSC_TEXT_ESC:
                case TITLE_OSC_OTHER_ESC:
                        /* ESC \ is the string terminator; ESC and anything else starts a new sequence
                         * and abandons this one. */
                        if (c == '\\') {
                                if (t->state == TITLE_OSC_TEXT_ESC)
                                        changed |= title_commit(t);
                                t->state = TITLE_GROUND;
                        } else {
                                t->state = after_esc(c);
                                t->number = 0;
                        }
                        break;
                default:
                        assert(false);
                }
        }
        return changed;
}
