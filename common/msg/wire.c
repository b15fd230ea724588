/* wire.c - the [type][protobuf] envelope over ZeroMQ (see wire.h).
 *
 * Receiving is the part that faces the outside world, so it assumes every
 * frame may be hostile: sizes are capped by the socket and again by the
 * decoder's allocator, frame counts are checked, and every failure is
 * counted and returned, never asserted. */
#include "wire.h"

#include "base.h"
#include "err.h"
#include "log.h"
#include "wire_sec.h"

#include <errno.h>
#include <zmq.h>

uint64_t wire_stats_dropped(const wire_stats_t *st) {
    return st->bad_frames + st->bad_type + st->bad_payload + st->too_big;
}

int wire_open(void *ctx, int type, const char *endpoint, int default_bind, size_t max_frame_bytes,
              int hwm, void **out) {
    return wire_open_hooked(ctx, type, endpoint, default_bind, max_frame_bytes, hwm, NULL, NULL, out);
}

int wire_open_hooked(void *ctx, int type, const char *endpoint, int default_bind, size_t max_frame_bytes,
                     int hwm, int (*hook)(void *sock, void *arg), void *arg, void **out) {
    *out = NULL;
    int bind = default_bind;
    if (endpoint[0] == '@') { bind = 1; endpoint++; }
    else if (endpoint[0] == '>') { bind = 0; endpoint++; }
    void *s = zmq_socket(ctx, type);
    if (!s) {
        int e = zmq_errno();
        log_error("zmq_socket: %s", zmq_strerror(e));
        return e;
    }
    int hrc = hook ? hook(s, arg) : 0;
    if (hrc) {
        zmq_close(s);
        return hrc;
    }
    int64_t maxsz = (int64_t)max_frame_bytes;
    int linger = 2000;
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxsz, sizeof maxsz);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (hwm > 0) {
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    }
    int rc = wire_sec_apply(ctx, s, bind, endpoint);
    if (rc != 0) {
        zmq_close(s);
        return rc;
    }
    rc = bind ? zmq_bind(s, endpoint) : zmq_connect(s, endpoint);
    if (rc != 0) {
        int e = zmq_errno();
        log_error("cannot %s %s: %s", bind ? "bind" : "connect to", endpoint, zmq_strerror(e));
        zmq_close(s);
        return e;
    }
    *out = s;
    return 0;
}

void wire_close(void **sock) {
    if (sock && *sock) {
        zmq_close(*sock);
        *sock = NULL;
    }
}

int wire_send_raw(void *sock, const char *type, const void *payload, size_t n, int flags) {
    for (;;) {
        if (zmq_send(sock, type, strlen(type), ZMQ_SNDMORE | flags) >= 0) break;
        int e = zmq_errno();
        if (e == EINTR) return GB_EINTR;
        return e;
    }
    for (;;) {
        /* The first frame is queued: the second goes with it, so retry
         * EINTR here rather than leave a half message behind. */
        if (zmq_send(sock, payload, n, flags & ~ZMQ_DONTWAIT) >= 0) return 0;
        int e = zmq_errno();
        if (e == EINTR) continue;
        return e;
    }
}

int wire_send(void *sock, const ProtobufCMessage *msg, int flags) {
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t stackbuf[4096];
    uint8_t *buf = n <= sizeof stackbuf ? stackbuf : xmalloc(n);
    protobuf_c_message_pack(msg, buf);
    int rc = wire_send_raw(sock, msg->descriptor->name, buf, n, flags);
    if (buf != stackbuf) free(buf);
    return rc;
}

static void drain(void *sock) {
    int more = 1;
    size_t sz = sizeof more;
    zmq_msg_t f;
    while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, sock, 0) < 0) { zmq_msg_close(&f); break; }
        zmq_msg_close(&f);
    }
}

int wire_recv(void *sock, const ProtobufCMessageDescriptor *const *accepted, size_t naccepted,
              size_t max_bytes, int timeout_ms, wire_msg_t **out, wire_stats_t *st) {
    *out = NULL;
    if (timeout_ms >= 0) {
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        int r = zmq_poll(&it, 1, timeout_ms);
        if (r < 0) {
            int e = zmq_errno();
            return e == EINTR ? GB_EINTR : e;
        }
        if (r == 0) return EAGAIN;
    }
    zmq_msg_t f0, f1;
    zmq_msg_init(&f0);
    if (zmq_msg_recv(&f0, sock, 0) < 0) {
        int e = zmq_errno();
        zmq_msg_close(&f0);
        return e == EINTR ? GB_EINTR : e;
    }
    if (!zmq_msg_more(&f0)) {
        zmq_msg_close(&f0);
        st->bad_frames++;
        log_debug("dropped a message with 1 frame");
        return GB_EPEER;
    }
    char type[128];
    size_t tl = zmq_msg_size(&f0);
    int type_ok = tl < sizeof type;
    if (type_ok) {
        memcpy(type, zmq_msg_data(&f0), tl);
        type[tl] = 0;
    }
    zmq_msg_close(&f0);
    zmq_msg_init(&f1);
    if (zmq_msg_recv(&f1, sock, 0) < 0) {
        int e = zmq_errno();
        zmq_msg_close(&f1);
        return e == EINTR ? GB_EINTR : e;
    }
    if (zmq_msg_more(&f1)) {
        drain(sock);
        zmq_msg_close(&f1);
        st->bad_frames++;
        log_debug("dropped a message with more than 2 frames");
        return GB_EPEER;
    }
    const ProtobufCMessageDescriptor *desc = NULL;
    for (size_t i = 0; type_ok && i < naccepted; i++)
        if (strcmp(accepted[i]->name, type) == 0) desc = accepted[i];
    if (!desc) {
        zmq_msg_close(&f1);
        st->bad_type++;
        log_debug("dropped a message of unexpected type");
        return GB_EPEER;
    }
    int rc = pbmsg_decode(desc, zmq_msg_data(&f1), zmq_msg_size(&f1), max_bytes, out);
    zmq_msg_close(&f1);
    if (rc == GB_ETOOBIG) {
        st->too_big++;
        return GB_EPEER;
    }
    if (rc != 0) {
        st->bad_payload++;
        log_debug("dropped a %s that does not decode", type);
        return GB_EPEER;
    }
    st->received++;
    return 0;
}
