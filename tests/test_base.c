/* test_base.c - rng, digest, err, wire basics. */
#include "afile.h"
#include "base.h"
#include "digest.h"
#include "err.h"
#include "json.h"
#include "rng.h"
#include "stream.pb-c.h"
#include "test.h"
#include "wire.h"

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <math.h>
#include <zmq.h>

static void rng_reproducible(void) {
    rng_t a, b;
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    for (int i = 0; i < 1000; i++) CHECK(rng_u64(&a) == rng_u64(&b));
    rng_derive(&a, 1, 2, 3, 4, 5);
    rng_derive(&b, 1, 2, 3, 4, 6);
    CHECK(rng_u64(&a) != rng_u64(&b));
}

static void rng_normal_moments(void) {
    rng_t r;
    rng_seed(&r, 7);
    double s = 0, s2 = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        double x = rng_normal(&r);
        s += x;
        s2 += x * x;
    }
    CHECK(fabs(s / n) < 0.01);
    CHECK(fabs(s2 / n - 1.0) < 0.02);
    uint64_t cnt[10] = {0};
    for (int i = 0; i < 100000; i++) cnt[rng_below(&r, 10)]++;
    for (int i = 0; i < 10; i++) CHECK(cnt[i] > 9500 && cnt[i] < 10500);
}

static void sha256_known(void) {
    uint8_t d[32];
    char hex[65];
    digest_sha256("abc", 3, d);
    digest_hex(d, 32, hex);
    CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    uint8_t back[32];
    CHECK(digest_unhex(hex, back, 32) == 0 && memcmp(back, d, 32) == 0);
    CHECK(digest_unhex("zz", back, 1) == GB_EFORMAT);
}

static void wire_roundtrip_and_garbage(void) {
    void *ctx = zmq_ctx_new();
    void *pull = NULL, *push = NULL;
    CHECK(wire_open(ctx, ZMQ_PULL, "inproc://t", 1, 1 << 20, 10, &pull) == 0);
    CHECK(wire_open(ctx, ZMQ_PUSH, "inproc://t", 0, 1 << 20, 10, &push) == 0);
    Gambar__EndOfStream eos = GAMBAR__END_OF_STREAM__INIT;
    eos.producer = "test";
    eos.batches_sent = 12;
    const ProtobufCMessageDescriptor *acc[] = {&gambar__end_of_stream__descriptor};
    wire_stats_t st = {0};
    /* garbage: one frame, wrong type, undecodable payload, three frames */
    zmq_send(push, "x", 1, 0);
    wire_send_raw(push, "gambar.Nope", "", 0, 0);
    wire_send_raw(push, "gambar.EndOfStream", "\xff\xff\xff", 3, 0);
    zmq_send(push, "a", 1, ZMQ_SNDMORE);
    zmq_send(push, "b", 1, ZMQ_SNDMORE);
    zmq_send(push, "c", 1, 0);
    CHECK(wire_send(push, &eos.base, 0) == 0);
    wire_msg_t *m = NULL;
    int got = 0, bad = 0;
    for (int i = 0; i < 10 && !got; i++) {
        int rc = wire_recv(pull, acc, 1, 1024, 1000, &m, &st);
        if (rc == GB_EPEER) bad++;
        else if (rc == 0) got = 1;
        else break;
    }
    CHECK(got);
    CHECK(bad == 4);
    CHECK(wire_stats_dropped(&st) == 4);
    CHECK(st.bad_frames == 2 && st.bad_type == 1 && st.bad_payload == 1);
    if (m) {
        Gambar__EndOfStream *e = (Gambar__EndOfStream *)m->msg;
        CHECK(strcmp(e->producer, "test") == 0 && e->batches_sent == 12);
    }
    wire_msg_destroy(&m);
    CHECK(m == NULL);
    CHECK(wire_recv(pull, acc, 1, 1024, 10, &m, &st) == EAGAIN);
    wire_close(&push);
    wire_close(&pull);
    zmq_ctx_term(ctx);
}

static void pbmsg_decode_cap(void) {
    /* a Batch claiming a huge bytes field must be refused by the allocator cap */
    Gambar__Batch b = GAMBAR__BATCH__INIT;
    static uint8_t data[100000];
    b.data.data = data;
    b.data.len = sizeof data;
    size_t n = protobuf_c_message_get_packed_size(&b.base);
    uint8_t *buf = malloc(n);
    protobuf_c_message_pack(&b.base, buf);
    wire_msg_t *m = NULL;
    CHECK(pbmsg_decode(&gambar__batch__descriptor, buf, n, 1000, &m) == GB_ETOOBIG);
    CHECK(pbmsg_decode(&gambar__batch__descriptor, buf, n, 1 << 20, &m) == 0);
    wire_msg_destroy(&m);
    free(buf);
}

/* s through json_str, into buf (NUL-terminated) */
static const char *jstr(const char *s, char *buf, size_t cap) {
    FILE *f = fmemopen(buf, cap, "w");
    json_str(f, s);
    fclose(f);
    return buf;
}

static void json_policy(void) {
    char b[256];
    CHECKF(!strcmp(jstr("a\"b\\c", b, sizeof b), "\"a\\\"b\\\\c\""), "%s", b);
    CHECKF(!strcmp(jstr("\n\r\t\b\f", b, sizeof b), "\"\\n\\r\\t\\b\\f\""), "%s", b);
    CHECKF(!strcmp(jstr("\x01\x1f\x7f", b, sizeof b), "\"\\u0001\\u001f\\u007f\""), "%s", b);
    /* valid UTF-8 is kept: e-acute, euro sign, U+1F600 */
    CHECKF(!strcmp(jstr("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", b, sizeof b),
                   "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""), "%s", b);
    /* invalid: stray continuation, overlong '/', surrogate, cut sequence, 0xff */
    CHECKF(!strcmp(jstr("\x80x\xc0\xafy\xed\xa0\x80z\xe2\x82", b, sizeof b),
                   "\"\\ufffdx\\ufffd\\ufffdy\\ufffd\\ufffd\\ufffdz\\ufffd\\ufffd\""), "%s", b);
    CHECKF(!strcmp(jstr("\xff", b, sizeof b), "\"\\ufffd\""), "%s", b);
    CHECKF(!strcmp(jstr(NULL, b, sizeof b), "\"\""), "%s", b);
    char n[32];
    CHECKF(!strcmp(json_num_fmt(0.1, n), "0.1"), "%s", n);
    CHECKF(!strcmp(json_num_fmt(1e300, n), "1e+300"), "%s", n);
    CHECKF(!strcmp(json_num_fmt(-3, n), "-3"), "%s", n);
    CHECKF(!strcmp(json_num_fmt(NAN, n), "null"), "%s", n);
    CHECKF(!strcmp(json_num_fmt(INFINITY, n), "null") && !strcmp(json_num_fmt(-INFINITY, n), "null"), "%s", n);
    /* every double reads back exactly */
    rng_t r;
    rng_seed(&r, 9);
    int bad = 0;
    for (int i = 0; i < 10000; i++) {
        double v = rng_normal(&r) * pow(10, (double)(int)rng_below(&r, 40) - 20);
        bad += strtod(json_num_fmt(v, n), NULL) != v;
    }
    CHECKF(bad == 0, "%d of 10000 doubles did not round-trip", bad);
}

/* number of entries of dir other than . and .. */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d) closedir(d);
    return n;
}

static void afile_replaces_atomically(void) {
    char dir[600], path[700], buf[64];
    snprintf(dir, sizeof dir, "%s/afile", test_tmpdir());
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(path, sizeof path, "%s/out.json", dir);
    CHECK(afile_write_all(path, "first", 5) == 0);
    /* streaming: the old contents stay until the commit */
    afile_t *a = NULL;
    CHECK(afile_open(path, &a) == 0 && a);
    fprintf(afile_stream(a), "second %d", 2);
    CHECK(afile_write(a, "!", 1) == 0);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = 0;
    if (f) fclose(f);
    CHECKF(!strcmp(buf, "first"), "before commit: %s", buf);
    CHECK(count_entries(dir) == 2); /* the file and its temporary */
    CHECK(afile_commit(&a) == 0 && a == NULL);
    f = fopen(path, "r");
    n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = 0;
    if (f) fclose(f);
    CHECKF(!strcmp(buf, "second 2!"), "after commit: %s", buf);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644);
    CHECK(count_entries(dir) == 1);
    /* abort: nothing changes, no temporary left */
    CHECK(afile_open(path, &a) == 0);
    fputs("third", afile_stream(a));
    afile_abort(&a);
    CHECK(a == NULL && count_entries(dir) == 1);
    CHECK(stat(path, &st) == 0 && st.st_size == 9);
    /* a missing folder: the errno, and nothing made */
    snprintf(path, sizeof path, "%s/no/such/x", dir);
    CHECK(afile_write_all(path, "x", 1) == ENOENT);
    /* a folder in the way: the rename fails, the temporary goes */
    snprintf(path, sizeof path, "%s/sub", dir);
    CHECK(mkdir(path, 0755) == 0);
    CHECK(afile_write_all(path, "x", 1) == EISDIR);
    CHECK(rmdir(path) == 0);
    CHECK(count_entries(dir) == 1);
}

int main(void) {
    RUN(afile_replaces_atomically);
    RUN(json_policy);
    RUN(rng_reproducible);
    RUN(rng_normal_moments);
    RUN(sha256_known);
    RUN(wire_roundtrip_and_garbage);
    RUN(pbmsg_decode_cap);
    return test_done();
}
