/* pbmsg.c - protobuf-c unpacking through a capped allocator (see pbmsg.h). */
#include "pbmsg.h"

#include "base.h"
#include "err.h"

#include <stdlib.h>

typedef struct {
    ProtobufCAllocator alloc; /* must be first: passed to protobuf-c */
    size_t used, cap;
} cap_alloc_t;

static void *cap_alloc(void *data, size_t size) {
    cap_alloc_t *a = data;
    if (size > a->cap || a->used > a->cap - size) return NULL;
    size_t *p = malloc(size + sizeof(size_t) * 2);
    if (!p) return NULL;
    a->used += size;
    p[0] = size;
    return p + 2; /* keep 16-byte alignment */
}

static void cap_free(void *data, void *ptr) {
    cap_alloc_t *a = data;
    if (!ptr) return;
    size_t *p = (size_t *)ptr - 2;
    a->used -= p[0];
    free(p);
}

void pbmsg_destroy(pbmsg_t **m) {
    if (!m || !*m) return;
    cap_alloc_t *a = (*m)->priv_;
    if ((*m)->msg) protobuf_c_message_free_unpacked((*m)->msg, &a->alloc);
    free(a);
    free(*m);
    *m = NULL;
}

int pbmsg_decode(const ProtobufCMessageDescriptor *desc, const void *payload, size_t n,
                 size_t max_bytes, pbmsg_t **out) {
    *out = NULL;
    if (n > max_bytes) return GB_ETOOBIG;
    cap_alloc_t *a = xcalloc(1, sizeof *a);
    a->alloc.alloc = cap_alloc;
    a->alloc.free = cap_free;
    a->alloc.allocator_data = a;
    /* decoded size can exceed wire size (repeated fields, structs); allow
     * a fixed overhead on top of the payload budget. */
    a->cap = max_bytes + (max_bytes >> 1) + 65536;
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &a->alloc, n, payload);
    if (!m) {
        free(a);
        return GB_EFORMAT;
    }
    pbmsg_t *w = xcalloc(1, sizeof *w);
    w->desc = desc;
    w->msg = m;
    w->priv_ = a;
    *out = w;
    return 0;
}
