/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* The web app's directory: files are opened beneath its directory fd with openat2(RESOLVE_BENEATH), so
 * no path, symlink or encoding trick reaches anything outside it. Hashed assets (a Vite build's
 * assets/name-HASH.ext) are cached for good, everything else is revalidated; a precompressed NAME.gz
 * is served in place of NAME to clients that accept gzip. */

typedef struct WebRoot WebRoot;

typedef struct StaticFile {
        int fd;
        uint64_t size;
        const char *content_type;
        const char *cache_control;
        bool gzip; /* fd is the .gz representation */
        bool vary; /* a .gz exists: the response depends on Accept-Encoding */
        char etag[80];
} StaticFile;

#define STATIC_PATH_MAX 1024u

int web_root_open(const char *path, WebRoot **ret);
WebRoot *web_root_free(WebRoot *w);

/* Open what a request for path (URL-decoded, starting with '/') serves. -EINVAL for a path that is
 * not acceptable at all (dot segments, hidden names, control characters), -ENOENT when nothing is
 * there to serve. The caller closes ret->fd. */
int web_root_lookup(WebRoot *w, const char *path, bool accept_gzip, StaticFile *ret);

/* Does an Accept-Encoding header value accept gzip (and not with q=0)? */
bool accept_encoding_has_gzip(const char *value);
