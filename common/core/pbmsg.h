/* pbmsg.h - decode one protobuf-c message under a memory budget.
 *
 * Why: protobuf-c's default allocator will allocate whatever a hostile
 * length prefix asks for. Every byte string that comes from outside
 * (sockets, checkpoint files) is decoded here, through an allocator that
 * refuses to hand out more than a budget derived from the caller's cap.
 * This sits in core because both messaging (msg/wire) and storage
 * (io/ckpt) decode protobuf, and neither layer may include the other. */
#ifndef GB_PBMSG_H
#define GB_PBMSG_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

/* A decoded message. msg points to the unpacked protobuf message whose
 * descriptor is desc. Owned by the caller: release with pbmsg_destroy. */
typedef struct pbmsg {
    const ProtobufCMessageDescriptor *desc;
    ProtobufCMessage *msg;
    void *priv_;
} pbmsg_t;

/* Unpack payload[0..n) as a desc message. Refuses (GB_ETOOBIG) when n >
 * max_bytes; the decoder may use max_bytes * 1.5 + 64 KiB of memory.
 * Returns 0 with *out set, GB_ETOOBIG, or GB_EFORMAT (does not decode or
 * needs more memory than allowed). */
int pbmsg_decode(const ProtobufCMessageDescriptor *desc, const void *payload, size_t n,
                 size_t max_bytes, pbmsg_t **out);

/* Free a message from pbmsg_decode and set *m to NULL. NULL is fine. */
void pbmsg_destroy(pbmsg_t **m);

#endif
