/* wire_conn.h - a connecting ZeroMQ socket that comes back after a peer
 * broke the protocol.
 *
 * Why: libzmq 4.3.4 treats a frame over ZMQ_MAXMSGSIZE (and a failed
 * handshake: not a ZeroMQ peer, a socket type that does not match, failed
 * authentication) as a protocol error. It drops that connection and a
 * socket that *connected* never reconnects to the endpoint: a stage would
 * wait for messages forever and the next good producer would find no
 * consumer. The monitor tells the two kinds of loss apart: an ordinary
 * disconnect (the peer went away) is followed at once by
 * ZMQ_EVENT_CONNECT_RETRIED, a protocol error by nothing at all (measured:
 * DISCONNECTED alone, no HANDSHAKE_FAILED_* event for an oversized frame).
 *
 * So a DISCONNECTED that no CONNECT_RETRIED, CONNECT_DELAYED or CONNECTED
 * of the same peer follows within WIRE_CONN_GRACE_MS means the connection
 * is gone for good. wire_conn then logs it at warn level once per
 * (endpoint, peer, reason) - repeats go to debug - and replaces the socket:
 * a new one from wire_open_hooked with the parameters given to
 * wire_conn_open, every option given through wire_conn_setopt (the
 * subscriptions too) applied again in order, every endpoint connected
 * again. Messages still queued in the old socket go with it.
 *
 * Use wire_conn_recv instead of wire_recv: it watches the monitor while it
 * waits. A caller with its own zmq_poll loop polls wire_conn_socket(c) and
 * calls wire_conn_check(c) every round (at least every second), taking
 * wire_conn_socket(c) again afterwards: the socket may have changed.
 * One wire_conn is used by one thread, like a ZeroMQ socket. */
#ifndef GB_WIRE_CONN_H
#define GB_WIRE_CONN_H

#include "wire.h"

#include <stddef.h>
#include <stdint.h>

/* How long a DISCONNECTED may stay without a reconnect attempt before the
 * connection counts as dead (libzmq emits CONNECT_RETRIED within the same
 * millisecond; this leaves room for a loaded machine). */
#define WIRE_CONN_GRACE_MS 1000

typedef struct wire_conn wire_conn_t;

/* Open a socket of zmq type (ZMQ_PULL, ZMQ_SUB, ...) on endpoint as
 * wire_open does ("@" binds, ">" connects, else default_bind), with
 * wire_open's limits (max_frame_bytes, hwm). When it connects, it is
 * watched as above; a socket that binds needs no watching (libzmq keeps
 * accepting), and behaves exactly like wire_open's. label names the socket
 * in log lines (e.g. "--in"; copied). Returns 0 with *out set (close with
 * wire_conn_close), or an errno with the reason logged. */
int wire_conn_open(void *ctx, int type, const char *endpoint, int default_bind, size_t max_frame_bytes, int hwm,
                   const char *label, wire_conn_t **out);

/* Connect to one more endpoint (also on every replacement socket).
 * Returns 0 or an errno (logged). */
int wire_conn_connect(wire_conn_t *c, const char *endpoint);

/* zmq_setsockopt now, and again on every replacement socket, in the order
 * given. Returns 0 or an errno. */
int wire_conn_setopt(wire_conn_t *c, int option, const void *val, size_t len);

/* ZMQ_SUBSCRIBE to prefix (a SUB socket), kept like wire_conn_setopt. */
int wire_conn_subscribe(wire_conn_t *c, const char *prefix);

/* The current ZeroMQ socket (for zmq_poll). Valid until the next
 * wire_conn_check, wire_conn_recv or wire_conn_close. */
void *wire_conn_socket(const wire_conn_t *c);

/* Read the monitor's events; if a connection is dead for good, log it and
 * replace the socket. Returns 1 when the socket was replaced, else 0 (a
 * replacement that could not be made is logged and tried again later). */
int wire_conn_check(wire_conn_t *c);

/* wire_recv (same arguments and returns) on the current socket, checking
 * the monitor while it waits (so a dead connection is replaced during a
 * long wait, not after it). */
int wire_conn_recv(wire_conn_t *c, const ProtobufCMessageDescriptor *const *accepted, size_t naccepted,
                   size_t max_bytes, int timeout_ms, wire_msg_t **out, wire_stats_t *st);

/* How many times the socket was replaced so far. */
uint64_t wire_conn_renewals(const wire_conn_t *c);

/* Close the socket and its monitor and free c. NULL is fine. */
void wire_conn_close(wire_conn_t **c);

#endif
