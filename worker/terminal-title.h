/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Longest title kept, in bytes; longer ones are cut at a character boundary. */
#define TITLE_MAX 256u

typedef enum TitleState {
        TITLE_GROUND,
        TITLE_ESC,
        TITLE_OSC_NUMBER,
        TITLE_OSC_TEXT,
        TITLE_OSC_OTHER,
        TITLE_OSC_TEXT_ESC,
        TITLE_OSC_OTHER_ESC,
        _TITLE_STATE_MAX,
} TitleState;

/* Follows the window title a program sets with OSC 0 or OSC 2 ("ESC ] 0 ; text BEL", or ST instead
 * of BEL) through a terminal's output, across reads. Only as much of ECMA-48 as that needs. */
typedef struct TitleTracker {
        TitleState state;
        unsigned number;
        size_t pending_len;
        char pending[TITLE_MAX];
        bool has_title;
        char title[TITLE_MAX + 1]; /* valid UTF-8, NUL-terminated */
} TitleTracker;

/* Feed valid UTF-8 output; true if the title changed. Zero-initialized means no title yet. */
bool title_feed(TitleTracker *t, const char *s, size_t n);
