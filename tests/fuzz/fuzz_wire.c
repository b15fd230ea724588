/* fuzz_wire.c - libFuzzer harness for pbmsg_decode.
 *
 * Arbitrary bytes are decoded as every message type of proto/stream.proto
 * and proto/dataset.proto with a small byte budget (64 KiB). A decoded
 * message is then used the way a receiver would: every field is read
 * (strings to their terminator, bytes to their length, repeated fields to
 * their count, nested messages recursively), a few typed fields are read
 * by name, and the message is packed, unpacked again and packed a second
 * time, which must give the same bytes. The round trip is skipped when
 * the message kept unknown fields: protobuf-c accepts field number 0 when
 * its tag is written in two bytes (0x82 0x00) but refuses it in the one
 * byte it packs it back as (regress/fuzz_wire/unknown-field-tag0-overlong);
 * harmless for us, since such fields are never used. Built by `make fuzz`;
 * tests/test_fuzz_replay.c compiles it too (renaming the entry point). */
#include "base.h"
#include "err.h"
#include "wire.h"

#include "dataset.pb-c.h"
#include "stream.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FW_MAX_BYTES ((size_t)64 << 10)

static const ProtobufCMessageDescriptor *const fw_types[] = {
    &gambar__batch__descriptor,          &gambar__end_of_stream__descriptor,
    &gambar__metric__descriptor,         &gambar__checkpoint_ready__descriptor,
    &gambar__sample_request__descriptor, &gambar__sample_reply__descriptor,
    &gambar__heartbeat__descriptor,      &gambar__control__descriptor,
    &gambar__example__descriptor,        &gambar__dataset_info__descriptor,
    &gambar__license_count__descriptor,
};

static volatile uint64_t fw_sink;
static size_t fw_unknown; /* unknown fields seen by fw_touch_message */

static size_t fw_scalar_size(ProtobufCType t) {
    switch (t) {
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    default: return 4;
    }
}

/* Read one value of field f stored at p; returns a number mixing what was
 * read. */
static uint64_t fw_touch_value(const ProtobufCFieldDescriptor *f, const void *p, int depth);

static uint64_t fw_touch_message(const ProtobufCMessage *m, int depth) {
    ASSERT(depth < 100);
    if (!m) return 0;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    ASSERT(d && d->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC);
    uint64_t h = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)m + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
            const char *arr = *(const char *const *)base;
            ASSERT(n == 0 || arr != NULL);
            size_t step = f->type == PROTOBUF_C_TYPE_STRING ? sizeof(char *)
                        : f->type == PROTOBUF_C_TYPE_BYTES  ? sizeof(ProtobufCBinaryData)
                        : f->type == PROTOBUF_C_TYPE_MESSAGE ? sizeof(ProtobufCMessage *)
                                                             : fw_scalar_size(f->type);
            for (size_t k = 0; k < n; k++) h = h * 31 + fw_touch_value(f, arr + k * step, depth);
        } else {
            h = h * 31 + fw_touch_value(f, base, depth);
        }
    }
    fw_unknown += m->n_unknown_fields;
    for (unsigned i = 0; i < m->n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *u = &m->unknown_fields[i];
        for (size_t k = 0; k < u->len; k++) h += u->data[k];
    }
    return h;
}

static uint64_t fw_touch_value(const ProtobufCFieldDescriptor *f, const void *p, int depth) {
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)p;
        return s ? strlen(s) : 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        uint64_t h = b->len;
        ASSERT(b->len == 0 || b->data != NULL);
        for (size_t k = 0; k < b->len; k++) h += b->data[k];
        return h;
    }
    case PROTOBUF_C_TYPE_MESSAGE: return fw_touch_message(*(const ProtobufCMessage *const *)p, depth + 1);
    default: {
        uint64_t v = 0;
        memcpy(&v, p, fw_scalar_size(f->type));
        return v;
    }
    }
}

/* A few fields read by name, as the stages do. */
static uint64_t fw_typed(const ProtobufCMessage *m) {
    uint64_t h = 0;
    if (m->descriptor == &gambar__batch__descriptor) {
        const Gambar__Batch *b = (const Gambar__Batch *)m;
        uint64_t want = (uint64_t)b->n * b->c * b->h * b->w * (b->dtype == GAMBAR__DTYPE__DTYPE_F32 ? 4 : 1);
        h = want == b->data.len;
        for (size_t i = 0; i < b->n_labels; i++) h += (uint64_t)b->labels[i];
        for (size_t i = 0; i < b->n_indices; i++) h += b->indices[i];
    } else if (m->descriptor == &gambar__metric__descriptor) {
        const Gambar__Metric *x = (const Gambar__Metric *)m;
        h = strlen(x->name) + strlen(x->stage) + strlen(x->run);
        for (size_t i = 0; i < x->n_labels; i++) h += strlen(x->labels[i]->key) + strlen(x->labels[i]->value);
    } else if (m->descriptor == &gambar__control__descriptor) {
        const Gambar__Control *x = (const Gambar__Control *)m;
        h = strlen(x->command);
        for (size_t i = 0; i < x->n_args; i++) h += strlen(x->args[i]->key) + strlen(x->args[i]->value);
    } else if (m->descriptor == &gambar__sample_reply__descriptor) {
        const Gambar__SampleReply *x = (const Gambar__SampleReply *)m;
        h = strlen(x->error);
        for (size_t i = 0; i < x->n_png; i++) h += x->png[i].len;
    } else if (m->descriptor == &gambar__dataset_info__descriptor) {
        const Gambar__DatasetInfo *x = (const Gambar__DatasetInfo *)m;
        for (size_t i = 0; i < x->n_class_names; i++) h += strlen(x->class_names[i]);
        for (size_t i = 0; i < x->n_licenses; i++) h += strlen(x->licenses[i]->license) + x->licenses[i]->count;
    } else if (m->descriptor == &gambar__example__descriptor) {
        const Gambar__Example *x = (const Gambar__Example *)m;
        h = x->pixels.len + strlen(x->source_uri) + strlen(x->label_name) + x->source_sha256.len;
    }
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (size_t t = 0; t < ARRAY_LEN(fw_types); t++) {
        wire_msg_t *w = NULL;
        int rc = pbmsg_decode(fw_types[t], data, size, FW_MAX_BYTES, &w);
        if (rc != 0) {
            ASSERT(rc == GB_EFORMAT || rc == GB_ETOOBIG);
            ASSERT(w == NULL);
            continue;
        }
        ASSERT(w && w->msg && w->desc == fw_types[t] && w->msg->descriptor == fw_types[t]);
        fw_unknown = 0;
        fw_sink = fw_touch_message(w->msg, 0) + fw_typed(w->msg);
        size_t n1 = protobuf_c_message_get_packed_size(w->msg);
        uint8_t *b1 = xmalloc(n1);
        ASSERT(protobuf_c_message_pack(w->msg, b1) == n1);
        if (fw_unknown) {
            free(b1);
            wire_msg_destroy(&w);
            continue;
        }
        /* pack -> unpack -> pack is stable */
        wire_msg_t *w2 = NULL;
        rc = pbmsg_decode(fw_types[t], b1, n1, n1 * 4 + FW_MAX_BYTES, &w2);
        ASSERT(rc == 0);
        size_t n2 = protobuf_c_message_get_packed_size(w2->msg);
        ASSERT(n2 == n1);
        uint8_t *b2 = xmalloc(n2);
        ASSERT(protobuf_c_message_pack(w2->msg, b2) == n2);
        ASSERT(memcmp(b1, b2, n1) == 0);
        free(b1);
        free(b2);
        wire_msg_destroy(&w2);
        wire_msg_destroy(&w);
        ASSERT(w == NULL);
    }
    return 0;
}
