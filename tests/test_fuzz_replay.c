/* test_fuzz_replay.c - the libFuzzer harnesses, replayed in the normal build.
 *
 * tests/fuzz/fuzz_png.c and tests/fuzz/fuzz_wire.c are compiled into this
 * program (their entry points renamed) and fed every committed seed
 * (tests/fuzz/seeds/<harness>/) and every regression input
 * (tests/fuzz/regress/<harness>/: inputs that once crashed a harness).
 * A harness checks its invariants with ASSERT, so a regression aborts this
 * program; under SANITIZE=1 the sanitizers watch it as they do in
 * `make fuzz`. Run from the repository root (tests/run.sh does), or set
 * GAMBAR_ROOT.
 *
 *   test_fuzz_replay --write-wire-seeds DIR   write one packed message of
 *       each type into DIR (how tests/fuzz/seeds/fuzz_wire/ was made) */
#include "test.h"

#include "base.h"

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

#define LLVMFuzzerTestOneInput fuzz_png_one
#include "fuzz/fuzz_png.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_wire_one
#include "fuzz/fuzz_wire.c"
#undef LLVMFuzzerTestOneInput

/* Replay every file of root/dir through fn; returns the number of files
 * (-1 when the folder is missing). */
static int replay_dir(const char *dir, int (*fn)(const uint8_t *, size_t)) {
    const char *root = getenv("GAMBAR_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root && *root ? root : ".", dir);
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char f[1400];
        snprintf(f, sizeof f, "%s/%s", path, e->d_name);
        FILE *fp = fopen(f, "rb");
        if (!fp) continue;
        uint8_t *buf = NULL;
        size_t len = 0, cap = 0, r;
        do {
            if (len == cap) buf = xrealloc(buf, cap = cap ? cap * 2 : 4096);
            r = fread(buf + len, 1, cap - len, fp);
            len += r;
        } while (r > 0);
        fclose(fp);
        /* an exact-size heap copy, so that ASan sees any overread */
        uint8_t *exact = xmalloc(len);
        memcpy(exact, buf, len);
        free(buf);
        fn(exact, len);
        free(exact);
        n++;
    }
    closedir(d);
    return n;
}

static void test_png_seeds(void) {
    int n = replay_dir("tests/fuzz/seeds/fuzz_png", fuzz_png_one);
    fprintf(stderr, "fuzz_png: %d seeds replayed\n", n);
    CHECK(n >= 10);
}

static void test_png_regress(void) {
    int n = replay_dir("tests/fuzz/regress/fuzz_png", fuzz_png_one);
    fprintf(stderr, "fuzz_png: %d regression inputs replayed\n", n);
    CHECK(n >= 0);
}

static void test_wire_seeds(void) {
    int n = replay_dir("tests/fuzz/seeds/fuzz_wire", fuzz_wire_one);
    fprintf(stderr, "fuzz_wire: %d seeds replayed\n", n);
    CHECK(n >= 5);
}

static void test_wire_regress(void) {
    int n = replay_dir("tests/fuzz/regress/fuzz_wire", fuzz_wire_one);
    fprintf(stderr, "fuzz_wire: %d regression inputs replayed\n", n);
    CHECK(n >= 0);
}

/* Inputs that are not seeds but must pass: empty, a lone byte, garbage. */
static void test_edge_inputs(void) {
    static const uint8_t one = 0x0a, sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
    uint8_t junk[257];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(i * 37 + 11);
    fuzz_png_one(NULL, 0);
    fuzz_png_one(&one, 1);
    fuzz_png_one(sig, sizeof sig);
    fuzz_png_one(junk, sizeof junk);
    fuzz_wire_one(NULL, 0);
    fuzz_wire_one(&one, 1);
    fuzz_wire_one(junk, sizeof junk);
    CHECK(fuzz_png_one(sig, 7) == 0 && fuzz_wire_one(sig, 8) == 0);
}

static void write_file(const char *dir, const char *name, const ProtobufCMessage *m) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = xmalloc(n);
    protobuf_c_message_pack(m, b);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n) perror(path);
    if (f) fclose(f);
    free(b);
}

static void write_wire_seeds(const char *dir) {
    uint8_t px[2 * 1 * 2 * 2] = {1, 2, 3, 4, 5, 6, 7, 8};
    int32_t labels[2] = {3, -1};
    uint64_t idx[2] = {7, 9};
    uint8_t dig[32] = {0xAB};
    Gambar__Batch b = GAMBAR__BATCH__INIT;
    b.seq = 5, b.epoch = 1, b.n = 2, b.c = 1, b.h = 2, b.w = 2, b.data.data = px, b.data.len = sizeof px;
    b.labels = labels, b.n_labels = 2, b.indices = idx, b.n_indices = 2;
    b.dataset_digest.data = dig, b.dataset_digest.len = 32, b.seed = 42, b.batches_per_epoch = 10, b.num_classes = 4;
    write_file(dir, "batch.pb", &b.base);
    Gambar__EndOfStream e = GAMBAR__END_OF_STREAM__INIT;
    e.producer = "gambar-augment[1/2]", e.batches_sent = 10, e.reason = "done";
    write_file(dir, "eos.pb", &e.base);
    Gambar__Metric__LabelsEntry le = GAMBAR__METRIC__LABELS_ENTRY__INIT, *lep = &le;
    le.key = "class", le.value = "shirt";
    Gambar__Metric m = GAMBAR__METRIC__INIT;
    m.stage = "train", m.run = "r1", m.name = "loss_d", m.value = 0.69, m.step = 100, m.epoch = 1, m.wall_time = 1.7e9;
    m.labels = &lep, m.n_labels = 1;
    write_file(dir, "metric.pb", &m.base);
    Gambar__CheckpointReady c = GAMBAR__CHECKPOINT_READY__INIT;
    c.path = "/tmp/run/ckpt-100.gbk", c.step = 100, c.digest.data = dig, c.digest.len = 32, c.run = "r1";
    write_file(dir, "ckpt.pb", &c.base);
    Gambar__SampleRequest sr = GAMBAR__SAMPLE_REQUEST__INIT;
    sr.n = 4, sr.seed = 9, sr.class_name = "dress", sr.class_index = -1, sr.truncation = 0.7f, sr.grid = 1;
    write_file(dir, "sample_req.pb", &sr.base);
    ProtobufCBinaryData pngs[1] = {{8, (uint8_t *)"\x89PNG\r\n\x1a\n"}};
    Gambar__SampleReply rp = GAMBAR__SAMPLE_REPLY__INIT;
    rp.ok = 1, rp.png = pngs, rp.n_png = 1, rp.step = 3;
    write_file(dir, "sample_reply.pb", &rp.base);
    Gambar__Heartbeat hb = GAMBAR__HEARTBEAT__INIT;
    hb.stage = "eval", hb.pid = 1234, hb.state = "running";
    write_file(dir, "heartbeat.pb", &hb.base);
    Gambar__Control__ArgsEntry ae = GAMBAR__CONTROL__ARGS_ENTRY__INIT, *aep = &ae;
    ae.key = "step", ae.value = "100";
    Gambar__Control ct = GAMBAR__CONTROL__INIT;
    ct.command = "checkpoint", ct.args = &aep, ct.n_args = 1;
    write_file(dir, "control.pb", &ct.base);
    Gambar__Example ex = GAMBAR__EXAMPLE__INIT;
    ex.index = 42, ex.height = 2, ex.width = 2, ex.channels = 1, ex.pixels.data = px, ex.pixels.len = 4;
    ex.label = 3, ex.label_name = "dress", ex.source_uri = "idx:///data/train#42";
    ex.source_sha256.data = dig, ex.source_sha256.len = 32, ex.license = "MIT";
    write_file(dir, "example.pb", &ex.base);
    char *names[2] = {"shirt", "dress"};
    uint64_t counts[2] = {1, 1};
    Gambar__LicenseCount lc = GAMBAR__LICENSE_COUNT__INIT, *lcp = &lc;
    lc.license = "MIT", lc.count = 2;
    Gambar__DatasetInfo di = GAMBAR__DATASET_INFO__INIT;
    di.format_version = 1, di.count = 2, di.height = 28, di.width = 28, di.channels = 1;
    di.class_names = names, di.n_class_names = 2, di.digest.data = dig, di.digest.len = 32;
    di.licenses = &lcp, di.n_licenses = 1, di.class_counts = counts, di.n_class_counts = 2;
    write_file(dir, "dataset_info.pb", &di.base);
}

int main(int argc, char **argv) {
    if (argc > 2 && !strcmp(argv[1], "--write-wire-seeds")) {
        write_wire_seeds(argv[2]);
        return 0;
    }
    RUN(test_png_seeds);
    RUN(test_png_regress);
    RUN(test_wire_seeds);
    RUN(test_wire_regress);
    RUN(test_edge_inputs);
    return test_done();
}
