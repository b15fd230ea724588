/* wire.h - typed protobuf-c messages over ZeroMQ sockets.
 *
 * Envelope (see proto/stream.proto): two frames, [type name][payload].
 * This module is the only place that joins zmq_* and protobuf_c_*. It
 * applies the limits ZeroMQ and protobuf-c leave open by default:
 *   - ZMQ_MAXMSGSIZE (per frame) is set on every socket wire_open makes;
 *   - a message with other than two frames is drained and dropped;
 *   - payloads are unpacked with an allocator that refuses to hand out
 *     more than the caller's byte budget for one message;
 *   - ZMQ_LINGER is bounded (default 2000 ms) so closing never hangs.
 * Garbage is counted in wire_stats_t and reported as GB_EPEER; it never
 * aborts the process.
 *
 * A connecting socket has one more failure mode: when the peer breaks the
 * protocol (a frame over ZMQ_MAXMSGSIZE, a bad handshake, a socket type
 * that does not match), libzmq 4.3 drops that connection and never
 * reconnects it, so the stage would wait forever in silence. Sockets that
 * connect to a producer use wire_conn.h instead of wire_open: it watches
 * the socket's monitor, logs such a failure once, and replaces the socket
 * so the next good producer is served.
 *
 * Endpoints: "@tcp://127.0.0.1:5555" binds, ">ipc:///tmp/x" connects
 * (CZMQ's convention); without a prefix the caller's default applies.
 * tcp:// endpoints get CURVE, or are refused, as wire_sec.h says. */
#ifndef GB_WIRE_H
#define GB_WIRE_H

#include "pbmsg.h"

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_MAX_BATCH_BYTES ((size_t)256 << 20) /* default cap for Batch */
#define WIRE_MAX_SMALL_BYTES ((size_t)1 << 20)   /* default cap for others */

typedef struct {
    uint64_t received;      /* messages delivered to the caller */
    uint64_t bad_frames;    /* wrong number of frames */
    uint64_t bad_type;      /* type name not accepted */
    uint64_t bad_payload;   /* payload failed to decode */
    uint64_t too_big;       /* over the byte budget */
} wire_stats_t;

/* Total of the dropped counters. */
uint64_t wire_stats_dropped(const wire_stats_t *st);

/* A received message (see pbmsg.h): msg is the unpacked message whose
 * descriptor is desc. Owned by the caller: release with wire_msg_destroy. */
typedef pbmsg_t wire_msg_t;

static inline void wire_msg_destroy(wire_msg_t **m) { pbmsg_destroy(m); }

/* Create a socket of zmq type (ZMQ_PUSH, ZMQ_PULL, ZMQ_PUB, ...), apply
 * the limits above with max_frame_bytes, set send/receive high-water mark
 * hwm (messages; 0 keeps ZeroMQ's default 1000), and bind or connect it to
 * endpoint ("@"/">" prefix, or default_bind), with wire_sec_apply's
 * CURVE settings (EACCES: the refuse rule forbids it). On success *out is the
 * socket (close with wire_close). Returns 0, or an errno from ZeroMQ with
 * the reason logged naming the endpoint. */
int wire_open(void *ctx, int type, const char *endpoint, int default_bind, size_t max_frame_bytes,
              int hwm, void **out);

/* wire_open, calling hook(sock, arg) on the new socket before any option
 * is set and before it binds or connects (wire_conn attaches its monitor
 * there, so it misses no event). A non-zero return from hook closes the
 * socket and is returned. hook NULL: exactly wire_open. */
int wire_open_hooked(void *ctx, int type, const char *endpoint, int default_bind, size_t max_frame_bytes,
                     int hwm, int (*hook)(void *sock, void *arg), void *arg, void **out);

/* Close a socket (linger already bounded). NULL is fine. */
void wire_close(void **sock);

/* Send msg as [desc->name][packed msg]. flags: 0 or ZMQ_DONTWAIT.
 * Returns 0, EAGAIN (would block with ZMQ_DONTWAIT), GB_EINTR, or an
 * errno. */
int wire_send(void *sock, const ProtobufCMessage *msg, int flags);

/* Send raw frames [type][payload] (for tests that send garbage). */
int wire_send_raw(void *sock, const char *type, const void *payload, size_t n, int flags);

/* Receive one message whose type is one of accepted[0..naccepted).
 * timeout_ms: -1 waits forever, 0 polls. max_bytes caps the payload size
 * and the memory the decoder may use for it.
 * Returns:
 *   0          *out is a message (caller destroys it)
 *   EAGAIN     nothing arrived within the timeout
 *   GB_EINTR   a signal interrupted the wait
 *   GB_EPEER   a malformed message arrived; it was dropped and counted in
 *              *st (and logged at debug level); call again
 *   ETERM or another errno: the socket or context is gone. */
int wire_recv(void *sock, const ProtobufCMessageDescriptor *const *accepted, size_t naccepted,
              size_t max_bytes, int timeout_ms, wire_msg_t **out, wire_stats_t *st);

#endif
