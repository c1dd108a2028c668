/* SPDX-License-Identifier: MIT */
/* The floor for gateway-bench: a bare libwebsockets server on a libuv loop, as plain as it gets, that
 * echoes every text message on the connection it came from. It prints the port it listens on. */
#include <libwebsockets.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct Echo {
        unsigned char *buf; /* LWS_PRE, then the message */
        size_t len, cap;
        bool pending;
} Echo;

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
        Echo *e = user;

        switch (reason) {
        case LWS_CALLBACK_RECEIVE:
                if (lws_is_first_fragment(wsi))
                        e->len = 0;
                if (LWS_PRE + e->len + len > e->cap) {
                        size_t cap = (LWS_PRE + e->len + len) * 2;
                        unsigned char *b = realloc(e->buf, cap);
                        if (!b)
                                return -1;
                        e->buf = b;
                        e->cap = cap;
                }
                memcpy(e->buf + LWS_PRE + e->len, in, len);
                e->len += len;
                if (lws_is_final_fragment(wsi)) {
                        e->pending = true;
                        lws_callback_on_writable(wsi);
                }
                return 0;
        case LWS_CALLBACK_SERVER_WRITEABLE:
                if (e->pending) {
                        e->pending = false;
                        if (lws_write(wsi, e->buf + LWS_PRE, e->len, LWS_WRITE_TEXT) < (int)e->len)
                                return -1;
                }
                return 0;
        case LWS_CALLBACK_CLOSED:
                free(e->buf);
                e->buf = NULL;
                return 0;
        default:
                return lws_callback_http_dummy(wsi, reason, user, in, len);
        }
}

static const struct lws_protocols protocols[] = {
    {"echo", callback, sizeof(Echo), 16384, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static struct lws_context *context;

static void on_signal(uv_signal_t *h, int signum)
{
        uv_signal_stop(h);
        uv_close((uv_handle_t *)h, NULL);
        lws_context_destroy(context);
}

int main(void)
{
        struct lws_context_creation_info info = {0};
        uv_loop_t loop;
        uv_signal_t sig;
        void *loops[1] = {&loop};

        lws_set_log_level(LLL_ERR, NULL);
        uv_loop_init(&loop);
        info.options = LWS_SERVER_OPTION_LIBUV;
        info.foreign_loops = loops;
        info.port = 0;
        info.iface = "127.0.0.1";
        info.protocols = protocols;
        context = lws_create_context(&info);
        if (!context)
                return 1;
        printf("%d\n", lws_get_vhost_listen_port(lws_get_vhost_by_name(context, "default")));
        fflush(stdout);
        uv_signal_init(&loop, &sig);
        uv_signal_start(&sig, on_signal, SIGTERM);
        uv_run(&loop, UV_RUN_DEFAULT);
        lws_context_destroy(context);
        uv_run(&loop, UV_RUN_DEFAULT);
        return uv_loop_close(&loop) == 0 ? 0 : 1;
}
