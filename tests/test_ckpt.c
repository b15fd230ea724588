/* test_ckpt.c - checkpoint files: roundtrip of every field, crash safety
 * (SQLite-style I/O error loop), torn/corrupt/foreign files, pruning.
 *
 * The I/O error loop saves checkpoint A, then retries saving B with the
 * 1st, 2nd, 3rd ... injectable I/O call failing until a save completes;
 * after every failed attempt the folder must hold exactly A (no temp
 * files) and ckpt_find_latest must return A, bit for bit. */
#include "base.h"
#include "afile.h"
#include "ckpt.h"
#include "digest.h"
#include "err.h"
#include "log.h"
#include "model.h"
#include "modelck.h"
#include "rng.h"
#include "test.h"

#define LLVMFuzzerTestOneInput fuzz_ckpt_one
#include "fuzz/fuzz_ckpt.c"
#undef LLVMFuzzerTestOneInput

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

/* ----------------------------------------------------------- helpers */

static char *mkdir_fresh(const char *name) {
    static char buf[8][600];
    static int slot;
    char *p = buf[slot++ % 8];
    snprintf(p, 600, "%s/%s", test_tmpdir(), name);
    mkdir(p, 0755);
    return p;
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    ASSERT(f);
    if (n) ASSERT(fwrite(data, 1, n, f) == n);
    ASSERT(fclose(f) == 0);
}

static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ASSERT(f);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = xmalloc((size_t)sz + 1);
    ASSERT(fread(b, 1, (size_t)sz, f) == (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return b;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(a, b);
}

/* Names in dir except . and .., sorted, joined by spaces. */
static void list_dir(const char *dir, char *out, size_t len) {
    DIR *d = opendir(dir);
    ASSERT(d);
    char names[64][128];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 64) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(names[n++], 128, "%.127s", de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, 128, cmp_name);
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        strncat(out, i ? " " : "", len - strlen(out) - 1);
        strncat(out, names[i], len - strlen(out) - 1);
    }
}

/* Run fn with stderr captured into buf (so tests can check messages). */
static void capture_stderr(void (*fn)(void *), void *arg, char *buf, size_t len) {
    char path[600];
    snprintf(path, sizeof path, "%s/stderr.txt", test_tmpdir());
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    size_t n;
    uint8_t *b = read_file(path, &n);
    n = GB_MIN(n, len - 1);
    memcpy(buf, b, n);
    buf[n] = 0;
    free(b);
    fputs(buf, stderr); /* keep it in the test log too */
}

/* A checkpoint with every field set; tensor values depend on `salt`.
 * big_floats > 0 adds a tensor of that many floats (to make saves span
 * several write calls). */
static ckpt_builder_t *make_ckpt(uint64_t step, float salt, size_t big_floats) {
    ckpt_builder_t *b = ckpt_builder_new();
    Gambar__Checkpoint *ck = ckpt_builder_msg(b);
    Gambar__ModelDesc *m = ck->model;
    m->family = ckpt_builder_strdup(b, "dcgan28");
    m->height = 28;
    m->width = 28;
    m->channels = 1;
    m->g_mult = 64;
    m->d_mult = 32;
    m->z_dim = 100;
    m->conditional = true;
    m->num_classes = 3;
    ckpt_add_class_name(b, "T-shirt/top");
    ckpt_add_class_name(b, "Trouser");
    ckpt_add_class_name(b, "Pullover");
    m->embed_dim = 50;
    m->loss = ckpt_builder_strdup(b, "hinge");

    Gambar__TrainState *s = ck->state;
    s->step = step;
    s->epoch = 7;
    s->batches_seen = step + 3;
    s->images_seen = (step + 3) * 64;
    s->adam_g->t = step;
    s->adam_g->lr = 2e-4f;
    s->adam_g->beta1 = 0.5f;
    s->adam_g->beta2 = 0.999f;
    s->adam_g->eps = 1e-8f;
    s->adam_d->t = step + 1;
    s->adam_d->lr = 1e-4f;
    s->adam_d->beta1 = 0.0f;
    s->adam_d->beta2 = 0.9f;
    s->adam_d->eps = 1e-7f;
    s->ema_decay = 0.999f;
    s->seed = 12345;
    uint64_t w1[4] = {1, 2, 3, UINT64_MAX}, w2[4] = {0xdeadbeef, 0, 42, 1ull << 63};
    ckpt_add_rng(b, "train", w1);
    ckpt_add_rng(b, "labels", w2);
    s->next_batch_seq = step * 2 + 1;
    s->wall_time_trained = 1234.5;
    s->threads = 2;

    uint8_t dd[32], pd[32];
    for (int i = 0; i < 32; i++) dd[i] = (uint8_t)i, pd[i] = (uint8_t)(255 - i);
    ck->dataset_digest = ckpt_builder_bytes(b, dd, 32);
    ck->parent_digest = ckpt_builder_bytes(b, pd, 32);
    ck->command_line = ckpt_builder_strdup(b, "gambar-train --seed 12345 --steps 1000");
    ck->software_version = ckpt_builder_strdup(b, "gambar 0.1.0");
    ck->created_unix = 1764000000;
    ckpt_set_note(b, "run", "fashion-1");
    ckpt_set_note(b, "comment", "first");
    ckpt_set_note(b, "comment", "replaced");

    float w[2 * 3 * 4 * 4];
    for (size_t i = 0; i < ARRAY_LEN(w); i++) w[i] = salt + (float)i * 0.25f - 3.0f;
    int64_t wshape[4] = {2, 3, 4, 4};
    CHECK(ckpt_add_tensor(b, "G.net_0.weight", wshape, 4, w) == 0);
    float rm[3] = {salt, -1e-30f, 3e38f};
    int64_t rshape[1] = {3};
    CHECK(ckpt_add_tensor(b, "G.net_1.running_mean", rshape, 1, rm) == 0);
    float scalar = 0.125f;
    CHECK(ckpt_add_tensor(b, "D.scale", NULL, 0, &scalar) == 0);
    int64_t eshape[2] = {0, 5};
    CHECK(ckpt_add_tensor(b, "EMA.G.empty", eshape, 2, NULL) == 0);
    if (big_floats) {
        float *big = xmalloc(big_floats * sizeof *big);
        for (size_t i = 0; i < big_floats; i++) big[i] = (float)i * salt;
        int64_t bshape[1] = {(int64_t)big_floats};
        CHECK(ckpt_add_tensor(b, "OPT.G.m.net_0.weight", bshape, 1, big) == 0);
        free(big);
    }
    return b;
}

/* Save a checkpoint of step into dir (keep all). */
static void save_step(const char *dir, uint64_t step, int keep, uint8_t digest[32]) {
    ckpt_builder_t *b = make_ckpt(step, (float)step, 0);
    char path[1024];
    CHECK(ckpt_save(dir, ckpt_builder_msg(b), keep, path, sizeof path, digest) == 0);
    ckpt_builder_destroy(&b);
}

/* Step of the latest valid checkpoint in dir, or -1 (rc in *rc). */
static long long latest_step(const char *dir, int *rc_out) {
    Gambar__Checkpoint *ck = NULL;
    char path[1024];
    int rc = ckpt_find_latest(dir, path, sizeof path, &ck, NULL);
    if (rc_out) *rc_out = rc;
    if (rc != 0) return -1;
    long long s = (long long)ck->state->step;
    ckpt_free(&ck);
    return s;
}

/* Write a file with a correct header for payload[0..n) and version v. */
static void write_raw_ckpt(const char *path, const void *payload, size_t n, uint32_t version) {
    uint8_t *buf = xcalloc(1, 64 + n);
    memcpy(buf, "GAMBARCK", 8);
    for (int i = 0; i < 4; i++) buf[8 + i] = (uint8_t)(version >> (8 * i));
    buf[12] = 64;
    for (int i = 0; i < 8; i++) buf[16 + i] = (uint8_t)((uint64_t)n >> (8 * i));
    digest_sha256(payload, n, buf + 24);
    if (n) memcpy(buf + 64, payload, n);
    write_file(path, buf, 64 + n);
    free(buf);
}

/* ------------------------------------------------------------- tests */

static void roundtrip_every_field(void) {
    const char *dir = mkdir_fresh("roundtrip");
    ckpt_builder_t *b = make_ckpt(42, 1.5f, 1000);
    char path[1024];
    uint8_t d_save[32], d_load[32], d_file[32];
    CHECK(ckpt_save(dir, ckpt_builder_msg(b), 3, path, sizeof path, d_save) == 0);
    char want[1024];
    snprintf(want, sizeof want, "%s/ckpt-0000000042.gck", dir);
    CHECKF(strcmp(path, want) == 0, "path %s", path);

    Gambar__Checkpoint *ck = NULL;
    CHECK(ckpt_load(path, &ck, d_load) == 0);
    CHECK(ckpt_file_digest(path, d_file) == 0);
    CHECK(memcmp(d_save, d_load, 32) == 0);
    CHECK(memcmp(d_save, d_file, 32) == 0);
    if (!ck) {
        ckpt_builder_destroy(&b);
        return;
    }
    /* Exact equality of the encodings proves every field survived; the
     * spot checks below prove the accessors read them. */
    const Gambar__Checkpoint *orig = ckpt_builder_msg(b);
    size_t n1 = protobuf_c_message_get_packed_size(&orig->base);
    size_t n2 = protobuf_c_message_get_packed_size(&ck->base);
    CHECK(n1 == n2);
    uint8_t *p1 = xmalloc(n1), *p2 = xmalloc(n2);
    protobuf_c_message_pack(&orig->base, p1);
    protobuf_c_message_pack(&ck->base, p2);
    CHECK(n1 == n2 && memcmp(p1, p2, n1) == 0);
    free(p1);
    free(p2);

    const Gambar__ModelDesc *m = ck->model;
    CHECK(!strcmp(m->family, "dcgan28") && m->height == 28 && m->width == 28 && m->channels == 1);
    CHECK(m->g_mult == 64 && m->d_mult == 32 && m->z_dim == 100 && m->conditional);
    CHECK(m->num_classes == 3 && m->n_class_names == 3 && !strcmp(m->class_names[0], "T-shirt/top"));
    CHECK(!strcmp(m->class_names[2], "Pullover") && m->embed_dim == 50 && !strcmp(m->loss, "hinge"));
    const Gambar__TrainState *s = ck->state;
    CHECK(s->step == 42 && s->epoch == 7 && s->batches_seen == 45 && s->images_seen == 45 * 64);
    CHECK(s->adam_g->t == 42 && s->adam_g->lr == 2e-4f && s->adam_g->beta1 == 0.5f);
    CHECK(s->adam_g->beta2 == 0.999f && s->adam_g->eps == 1e-8f);
    CHECK(s->adam_d->t == 43 && s->adam_d->lr == 1e-4f && s->adam_d->beta1 == 0.0f);
    CHECK(s->adam_d->beta2 == 0.9f && s->adam_d->eps == 1e-7f);
    CHECK(s->ema_decay == 0.999f && s->seed == 12345 && s->next_batch_seq == 85);
    CHECK(s->wall_time_trained == 1234.5 && s->threads == 2);
    uint64_t w[4];
    CHECK(ckpt_get_rng(ck, "train", w) == 0 && w[0] == 1 && w[3] == UINT64_MAX);
    CHECK(ckpt_get_rng(ck, "labels", w) == 0 && w[0] == 0xdeadbeef && w[3] == 1ull << 63);
    CHECK(ckpt_get_rng(ck, "nope", w) == GB_ENOTFOUND);
    CHECK(ck->dataset_digest.len == 32 && ck->dataset_digest.data[5] == 5);
    CHECK(ck->parent_digest.len == 32 && ck->parent_digest.data[0] == 255);
    CHECK(!strcmp(ck->command_line, "gambar-train --seed 12345 --steps 1000"));
    CHECK(!strcmp(ck->software_version, "gambar 0.1.0") && ck->created_unix == 1764000000);
    CHECK(ckpt_note(ck, "run") && !strcmp(ckpt_note(ck, "run"), "fashion-1"));
    CHECK(ckpt_note(ck, "comment") && !strcmp(ckpt_note(ck, "comment"), "replaced"));
    CHECK(ck->n_notes == 2 && ckpt_note(ck, "missing") == NULL);

    CHECK(ck->n_tensors == 5);
    float wt[96];
    int64_t shp[4] = {2, 3, 4, 4};
    CHECK(ckpt_get_tensor(ck, "G.net_0.weight", shp, 4, wt) == 0);
    bool same = true;
    for (int i = 0; i < 96; i++) same &= wt[i] == 1.5f + (float)i * 0.25f - 3.0f;
    CHECK(same);
    int64_t bad[4] = {2, 3, 4, 5};
    CHECK(ckpt_get_tensor(ck, "G.net_0.weight", bad, 4, wt) == GB_EMISMATCH);
    CHECK(ckpt_get_tensor(ck, "G.net_0.weight", shp, 3, wt) == GB_EMISMATCH);
    CHECK(ckpt_get_tensor(ck, "G.missing", shp, 4, wt) == GB_ENOTFOUND);
    float rm[3];
    int64_t rs[1] = {3};
    CHECK(ckpt_get_tensor(ck, "G.net_1.running_mean", rs, 1, rm) == 0);
    CHECK(rm[0] == 1.5f && rm[1] == -1e-30f && rm[2] == 3e38f);
    float sc = 0;
    CHECK(ckpt_get_tensor(ck, "D.scale", NULL, 0, &sc) == 0 && sc == 0.125f);
    const Gambar__Tensor *t = ckpt_tensor(ck, "EMA.G.empty");
    CHECK(t && ckpt_tensor_numel(t) == 0 && t->n_shape == 2 && t->data.len == 0);
    t = ckpt_tensor(ck, "OPT.G.m.net_0.weight");
    CHECK(t && ckpt_tensor_numel(t) == 1000);
    ckpt_free(&ck);
    CHECK(ck == NULL);
    ckpt_free(&ck); /* NULL is fine */

    /* load with out == NULL only verifies */
    CHECK(ckpt_load(path, NULL, NULL) == 0);
    /* duplicate tensor names are refused by the builder */
    float x = 1;
    CHECK(ckpt_add_tensor(b, "D.scale", NULL, 0, &x) == GB_EMISMATCH);
    ckpt_builder_destroy(&b);
    CHECK(b == NULL);
    ckpt_builder_destroy(&b);
}

/* Short writes (as a signal or a nearly full device may cause) are
 * resumed: the file is complete and loads. */
static void short_writes_resumed(void) {
    const char *dir = mkdir_fresh("short_writes");
    ckpt_builder_t *b = make_ckpt(5, 0.5f, 300000);
    uint8_t ds[32], dl[32];
    char path[1024];
    afile_test_short_writes(1);
    afile_test_fail_at(0);
    int rc = ckpt_save(dir, ckpt_builder_msg(b), 0, path, sizeof path, ds);
    int calls = afile_test_io_calls();
    afile_test_short_writes(0);
    CHECK(rc == 0);
    CHECKF(calls > 12, "only %d I/O calls: writes were not split", calls);
    Gambar__Checkpoint *ck = NULL;
    CHECK(ckpt_load(path, &ck, dl) == 0 && ck && memcmp(ds, dl, 32) == 0);
    if (ck) CHECK(ckpt_tensor_numel(ckpt_tensor(ck, "OPT.G.m.net_0.weight")) == 300000);
    ckpt_free(&ck);
    ckpt_builder_destroy(&b);
}

/* A real (not injected) write failure: with RLIMIT_FSIZE below the file
 * size, write(2) fails with EFBIG part-way, as on a full disk. Run in a
 * child so the limit does not leak into other tests. */
static void real_write_failure(void) {
    const char *dir = mkdir_fresh("efbig");
    uint8_t dA[32], d[32];
    save_step(dir, 1, 0, dA);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {1500000, 1500000};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(10);
        ckpt_builder_t *b = make_ckpt(2, 1.0f, 1000000); /* 4 MB */
        int rc = ckpt_save(dir, ckpt_builder_msg(b), 1, NULL, 0, NULL);
        ckpt_builder_destroy(&b);
        _exit(rc == EFBIG ? 0 : 11);
    }
    int status;
    waitpid(pid, &status, 0);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    char listing[4096], path[1024];
    list_dir(dir, listing, sizeof listing);
    CHECKF(!strcmp(listing, "ckpt-0000000001.gck"), "folder holds: %s", listing);
    CHECK(ckpt_find_latest(dir, path, sizeof path, NULL, d) == 0 && memcmp(d, dA, 32) == 0);
}

/* Arrays grow past their first allocation: 300 tensors, 40 class names,
 * 20 notes, 20 generators all survive, found by name. */
static void many_entries_roundtrip(void) {
    const char *dir = mkdir_fresh("many");
    ckpt_builder_t *b = ckpt_builder_new();
    Gambar__Checkpoint *ck = ckpt_builder_msg(b);
    ck->state->step = 1;
    char name[64];
    for (int i = 0; i < 300; i++) {
        float v[2] = {(float)i, (float)-i};
        int64_t shape[1] = {2};
        snprintf(name, sizeof name, "G.layer_%d.weight", i);
        CHECK(ckpt_add_tensor(b, name, shape, 1, v) == 0);
    }
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "class %d", i);
        ckpt_add_class_name(b, name);
    }
    for (int i = 0; i < 20; i++) {
        char val[32];
        snprintf(name, sizeof name, "key%d", i);
        snprintf(val, sizeof val, "value%d", i);
        ckpt_set_note(b, name, val);
        uint64_t w[4] = {(uint64_t)i, 1, 2, 3};
        snprintf(name, sizeof name, "rng%d", i);
        ckpt_add_rng(b, name, w);
    }
    uint64_t w5[4] = {55, 5, 5, 5};
    ckpt_add_rng(b, "rng5", w5); /* replaces */
    char path[1024];
    CHECK(ckpt_save(dir, ck, 0, path, sizeof path, NULL) == 0);
    ckpt_builder_destroy(&b);
    Gambar__Checkpoint *l = NULL;
    CHECK(ckpt_load(path, &l, NULL) == 0);
    if (!l) return;
    CHECK(l->n_tensors == 300 && l->model->n_class_names == 40 && l->n_notes == 20);
    CHECK(l->state->n_rngs == 20);
    bool ok = true;
    for (int i = 0; i < 300; i++) {
        float v[2];
        int64_t shape[1] = {2};
        snprintf(name, sizeof name, "G.layer_%d.weight", i);
        ok &= ckpt_get_tensor(l, name, shape, 1, v) == 0 && v[0] == (float)i && v[1] == (float)-i;
    }
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "class %d", i);
        ok &= !strcmp(l->model->class_names[i], name);
    }
    for (int i = 0; i < 20; i++) {
        char val[32];
        uint64_t w[4];
        snprintf(name, sizeof name, "key%d", i);
        snprintf(val, sizeof val, "value%d", i);
        ok &= ckpt_note(l, name) && !strcmp(ckpt_note(l, name), val);
        snprintf(name, sizeof name, "rng%d", i);
        ok &= ckpt_get_rng(l, name, w) == 0 && w[0] == (i == 5 ? 55u : (uint64_t)i);
    }
    CHECK(ok);
    ckpt_free(&l);
}

static void find_latest_empty_and_missing(void) {
    const char *dir = mkdir_fresh("empty");
    int rc;
    CHECK(latest_step(dir, &rc) == -1 && rc == GB_ENOTFOUND);
    char missing[700];
    snprintf(missing, sizeof missing, "%s/does-not-exist", dir);
    CHECK(latest_step(missing, &rc) == -1 && rc == GB_ENOTFOUND);
    CHECK(ckpt_load(missing, NULL, NULL) == ENOENT);
    /* ckpt_save creates a missing folder (one level) */
    uint8_t d[32];
    save_step(missing, 9, 0, d);
    CHECK(latest_step(missing, &rc) == 9 && rc == 0);
}

/* The SQLite-style I/O error loop. */
static void io_error_loop(void) {
    const char *dir = mkdir_fresh("ioerr");
    uint8_t dA[32], dB[32], d[32];
    char pathA[1024], pathB[1024], path[1024], listing[4096];
    ckpt_builder_t *a = make_ckpt(100, 1.0f, 0);
    CHECK(ckpt_save(dir, ckpt_builder_msg(a), 0, pathA, sizeof pathA, dA) == 0);
    ckpt_builder_destroy(&a);
    size_t nA;
    uint8_t *bytesA = read_file(pathA, &nA);

    /* B spans several write calls (CKPT_WRITE_CHUNK bytes each). */
    ckpt_builder_t *b = make_ckpt(200, 2.0f, 600000);
    int k, failures = 0;
    for (k = 1; k < 100; k++) {
        afile_test_fail_at(k);
        int rc = ckpt_save(dir, ckpt_builder_msg(b), 0, pathB, sizeof pathB, dB);
        int calls = afile_test_io_calls();
        afile_test_fail_at(0);
        Gambar__Checkpoint *ck = NULL;
        int lrc = ckpt_find_latest(dir, path, sizeof path, &ck, d);
        list_dir(dir, listing, sizeof listing);
        if (rc == 0) {
            CHECKF(calls < k, "save succeeded although call %d of %d failed", k, calls);
            CHECK(lrc == 0 && ck && ck->state->step == 200);
            CHECK(memcmp(d, dB, 32) == 0);
            CHECKF(!strcmp(listing, "ckpt-0000000100.gck ckpt-0000000200.gck"), "listing: %s",
                   listing);
            ckpt_free(&ck);
            break;
        }
        failures++;
        CHECKF(rc > 0, "k=%d: rc %d should be an errno", k, rc);
        CHECKF(rc == EIO, "k=%d: rc %d (%s)", k, rc, err_str(rc));
        CHECKF(lrc == 0 && ck && ck->state->step == 100, "k=%d: latest rc %d", k, lrc);
        CHECKF(memcmp(d, dA, 32) == 0, "k=%d: latest is not A bit for bit", k);
        CHECKF(!strcmp(listing, "ckpt-0000000100.gck"), "k=%d: folder holds: %s", k, listing);
        ckpt_free(&ck);
        size_t n;
        uint8_t *now = read_file(pathA, &n);
        CHECKF(n == nA && memcmp(now, bytesA, n) == 0, "k=%d: A changed", k);
        free(now);
    }
    /* open, the writes, fsync, close, rename, open dir, fsync dir */
    size_t nB;
    uint8_t *bytesB = read_file(pathB, &nB);
    int writes = (int)((nB + CKPT_WRITE_CHUNK - 1) / CKPT_WRITE_CHUNK);
    CHECKF(writes >= 3, "B spans %d write calls", writes);
    CHECKF(failures == 6 + writes, "%d injected failures before success, %d writes", failures, writes);
    free(bytesB);
    printf("# io_error_loop: %d failing saves, success at k=%d\n", failures, k);
    ckpt_builder_destroy(&b);
    free(bytesA);
}

/* Truncating the newest file at many lengths: it is skipped with a
 * warning naming it, and find_latest falls back to the older one. */
typedef struct {
    const char *dir;
    long long step;
    int rc;
} find_arg_t;

static void find_cb(void *p) {
    find_arg_t *a = p;
    a->step = latest_step(a->dir, &a->rc);
}

static void truncated_newest_falls_back(void) {
    const char *dir = mkdir_fresh("trunc");
    uint8_t d1[32], d2[32];
    save_step(dir, 1, 0, d1);
    save_step(dir, 2, 0, d2);
    char p2[700];
    snprintf(p2, sizeof p2, "%s/ckpt-0000000002.gck", dir);
    size_t n;
    uint8_t *full = read_file(p2, &n);
    size_t lens[] = {0, 1, 7, 8, 12, 40, 63, 64, 65, 100, n / 2, n - 1};
    for (size_t i = 0; i < ARRAY_LEN(lens); i++) {
        write_file(p2, full, lens[i]);
        CHECKF(ckpt_load(p2, NULL, NULL) == GB_ECORRUPT, "len %zu", lens[i]);
        char err[4096];
        find_arg_t a = {dir, 0, 0};
        capture_stderr(find_cb, &a, err, sizeof err);
        CHECKF(a.rc == 0 && a.step == 1, "len %zu: step %lld rc %d", lens[i], a.step, a.rc);
        CHECKF(strstr(err, p2) != NULL, "len %zu: no message naming the file: %s", lens[i], err);
        CHECKF(strstr(err, "truncated") != NULL, "len %zu: reason missing: %s", lens[i], err);
    }
    /* trailing bytes after the payload are corruption too */
    uint8_t *longer = xcalloc(1, n + 3);
    memcpy(longer, full, n);
    write_file(p2, longer, n + 3);
    CHECK(ckpt_load(p2, NULL, NULL) == GB_ECORRUPT);
    CHECK(latest_step(dir, NULL) == 1);
    free(longer);
    /* restored, it is the latest again */
    write_file(p2, full, n);
    CHECK(latest_step(dir, NULL) == 2);
    free(full);
}

static void flipped_bytes_are_corrupt(void) {
    const char *dir = mkdir_fresh("flip");
    uint8_t d1[32], d2[32];
    save_step(dir, 1, 0, d1);
    save_step(dir, 2, 0, d2);
    char p2[700];
    snprintf(p2, sizeof p2, "%s/ckpt-0000000002.gck", dir);
    size_t n;
    uint8_t *full = read_file(p2, &n);
    /* SHA field, payload start, middle, last byte; and the length field */
    size_t pos[] = {24, 55, 64, 65, n / 2, n - 1};
    for (size_t i = 0; i < ARRAY_LEN(pos); i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            full[pos[i]] ^= (uint8_t)(1u << bit);
            write_file(p2, full, n);
            full[pos[i]] ^= (uint8_t)(1u << bit);
            CHECKF(ckpt_load(p2, NULL, NULL) == GB_ECORRUPT, "pos %zu bit %d", pos[i], bit);
            CHECK(latest_step(dir, NULL) == 1);
        }
    }
    full[16] ^= 1; /* payload length off by one */
    write_file(p2, full, n);
    full[16] ^= 1;
    CHECK(ckpt_load(p2, NULL, NULL) == GB_ECORRUPT);
    /* reserved bytes are ignored */
    full[60] = 0x5a;
    write_file(p2, full, n);
    CHECK(ckpt_load(p2, NULL, NULL) == 0);
    free(full);
}

static void wrong_magic_and_version(void) {
    const char *dir = mkdir_fresh("magic");
    uint8_t d1[32], d2[32];
    save_step(dir, 1, 0, d1);
    save_step(dir, 2, 0, d2);
    char p2[700];
    snprintf(p2, sizeof p2, "%s/ckpt-0000000002.gck", dir);
    size_t n;
    uint8_t *full = read_file(p2, &n);

    full[0] = 'X';
    write_file(p2, full, n);
    CHECK(ckpt_load(p2, NULL, NULL) == GB_EFORMAT);
    CHECK(latest_step(dir, NULL) == 1);
    write_file(p2, full, 5); /* short and not a magic prefix */
    CHECK(ckpt_load(p2, NULL, NULL) == GB_EFORMAT);
    full[0] = 'G';

    full[8] = 2; /* version 2 */
    write_file(p2, full, n);
    CHECK(ckpt_load(p2, NULL, NULL) == GB_EVERSION);
    CHECK(latest_step(dir, NULL) == 1);
    full[8] = 0; /* version 0 */
    write_file(p2, full, n);
    CHECK(ckpt_load(p2, NULL, NULL) == GB_EVERSION);
    full[8] = 1;
    full[11] = 1; /* version 2^24+1 */
    write_file(p2, full, n);
    CHECK(ckpt_load(p2, NULL, NULL) == GB_EVERSION);
    full[11] = 0;

    full[12] = 32; /* header size below 64 */
    write_file(p2, full, n);
    CHECK(ckpt_load(p2, NULL, NULL) == GB_EFORMAT);
    full[12] = 0;
    full[14] = 1; /* header size 65536 */
    write_file(p2, full, n);
    CHECK(ckpt_load(p2, NULL, NULL) == GB_EFORMAT);
    full[14] = 0;
    full[12] = 64;
    write_file(p2, full, n);
    CHECK(ckpt_load(p2, NULL, NULL) == 0);

    /* A longer header (a future extension in version 1's frame): readers
     * skip to the payload, and the digest covers the whole file. */
    size_t plen = n - 64;
    uint8_t *ext = xcalloc(1, n + 16);
    memcpy(ext, full, 64);
    ext[12] = 80;
    memcpy(ext + 80, full + 64, plen);
    write_file(p2, ext, n + 16);
    uint8_t dl[32], df[32];
    Gambar__Checkpoint *ck = NULL;
    CHECK(ckpt_load(p2, &ck, dl) == 0 && ck && ck->state->step == 2);
    CHECK(ckpt_file_digest(p2, df) == 0 && memcmp(dl, df, 32) == 0);
    ckpt_free(&ck);
    free(ext);
    free(full);
}

static void keep_prunes_old(void) {
    const char *dir = mkdir_fresh("prune");
    uint8_t d[32];
    char listing[4096];
    for (uint64_t s = 1; s <= 6; s++) save_step(dir, s, 3, d);
    list_dir(dir, listing, sizeof listing);
    CHECKF(!strcmp(listing, "ckpt-0000000004.gck ckpt-0000000005.gck ckpt-0000000006.gck"), "%s",
           listing);
    /* keep counts valid files only: a torn newer file does not use a slot */
    char torn[700];
    snprintf(torn, sizeof torn, "%s/ckpt-0000000008.gck", dir);
    write_file(torn, "GAMBARCK", 8);
    save_step(dir, 7, 2, d);
    list_dir(dir, listing, sizeof listing);
    CHECKF(!strcmp(listing, "ckpt-0000000006.gck ckpt-0000000007.gck ckpt-0000000008.gck"), "%s",
           listing);
    CHECK(latest_step(dir, NULL) == 7);
    /* the file just written is never pruned, even when older */
    save_step(dir, 3, 1, d);
    list_dir(dir, listing, sizeof listing);
    CHECKF(!strcmp(listing, "ckpt-0000000003.gck ckpt-0000000007.gck ckpt-0000000008.gck"), "%s",
           listing);
    /* keep <= 0 keeps everything */
    save_step(dir, 9, 0, d);
    list_dir(dir, listing, sizeof listing);
    CHECKF(!strcmp(listing,
                   "ckpt-0000000003.gck ckpt-0000000007.gck ckpt-0000000008.gck ckpt-0000000009.gck"),
           "%s", listing);
    /* same step again replaces the file */
    ckpt_builder_t *b = make_ckpt(9, 99.0f, 0);
    uint8_t d9[32], dl[32];
    char path[1024];
    CHECK(ckpt_save(dir, ckpt_builder_msg(b), 0, path, sizeof path, d9) == 0);
    ckpt_builder_destroy(&b);
    CHECK(ckpt_find_latest(dir, path, sizeof path, NULL, dl) == 0 && memcmp(d9, dl, 32) == 0);
    /* other files are not touched */
    char other[700];
    snprintf(other, sizeof other, "%s/notes.txt", dir);
    write_file(other, "hi", 2);
    save_step(dir, 10, 1, d);
    list_dir(dir, listing, sizeof listing);
    CHECKF(!strcmp(listing, "ckpt-0000000010.gck notes.txt"), "%s", listing);
}

static void stale_temp_files_removed(void) {
    const char *dir = mkdir_fresh("stale");
    char p[700], listing[4096];
    /* pid 999999999 is above any pid_max, so its writer is certainly gone */
    snprintf(p, sizeof p, "%s/.ckpt-0000000005.999999999.tmp", dir);
    write_file(p, "partial", 7);
    /* our own pid's temp is left alone (a save may be running) */
    snprintf(p, sizeof p, "%s/.ckpt-0000000005.%ld.tmp", dir, (long)getpid());
    write_file(p, "partial", 7);
    uint8_t d[32];
    save_step(dir, 6, 0, d);
    list_dir(dir, listing, sizeof listing);
    char want[200];
    snprintf(want, sizeof want, ".ckpt-0000000005.%ld.tmp ckpt-0000000006.gck", (long)getpid());
    CHECKF(!strcmp(listing, want), "%s", listing);
    unlink(p);
}

/* Garbage, foreign and crafted files under checkpoint names never crash
 * the reader; each gets a GB_E* code and the valid one is still found. */
static void garbage_never_crashes(void) {
    const char *dir = mkdir_fresh("garbage");
    uint8_t d[32];
    save_step(dir, 1, 0, d);
    rng_t r;
    rng_seed(&r, 99);
    char p[700];
    uint8_t *junk = xmalloc(70000);
    for (int i = 0; i < 60; i++) {
        size_t n = (size_t)rng_below(&r, i < 30 ? 100 : 70000);
        for (size_t j = 0; j < n; j++) junk[j] = (uint8_t)rng_u64(&r);
        if (i % 3 == 0 && n >= 8) memcpy(junk, "GAMBARCK", 8); /* right magic */
        if (i % 6 == 0 && n >= 16) junk[8] = 1, junk[9] = junk[10] = junk[11] = 0;
        snprintf(p, sizeof p, "%s/ckpt-%010d.gck", dir, 100 + i);
        write_file(p, junk, n);
        int rc = ckpt_load(p, NULL, NULL);
        CHECKF(rc == GB_EFORMAT || rc == GB_ECORRUPT || rc == GB_EVERSION, "i=%d rc %d", i, rc);
    }
    /* Correct header and SHA around garbage: the decoder refuses it. */
    for (int i = 0; i < 40; i++) {
        size_t n = 1 + (size_t)rng_below(&r, 5000);
        for (size_t j = 0; j < n; j++) junk[j] = (uint8_t)rng_u64(&r);
        snprintf(p, sizeof p, "%s/ckpt-%010d.gck", dir, 200 + i);
        write_raw_ckpt(p, junk, n, 1);
        int rc = ckpt_load(p, NULL, NULL);
        CHECKF(rc == GB_EFORMAT, "crafted %d: rc %d", i, rc);
    }
    /* Valid protobuf, invalid content. */
    Gambar__Checkpoint ck = GAMBAR__CHECKPOINT__INIT;
    Gambar__ModelDesc md = GAMBAR__MODEL_DESC__INIT;
    Gambar__TrainState ts = GAMBAR__TRAIN_STATE__INIT;
    Gambar__AdamState ag = GAMBAR__ADAM_STATE__INIT, ad = GAMBAR__ADAM_STATE__INIT;
    Gambar__Tensor t1 = GAMBAR__TENSOR__INIT, t2 = GAMBAR__TENSOR__INIT;
    Gambar__Tensor *tp[2] = {&t1, &t2};
    int64_t shape[2] = {2, 3};
    uint8_t data[24] = {0};
    t1.name = "G.a";
    t1.n_shape = 2;
    t1.shape = shape;
    t1.data.len = 24;
    t1.data.data = data;
    t2 = t1;
    t2.name = "G.b";
    ck.n_tensors = 2;
    ck.tensors = tp;
    ts.adam_g = &ag;
    ts.adam_d = &ad;
    uint8_t *buf = xmalloc(4096);
    struct {
        const char *what;
        int variant;
    } cases[] = {{"no model", 0},      {"no state", 1},     {"no adam", 2},
                 {"short data", 3},    {"negative dim", 4}, {"duplicate", 5},
                 {"overflowing shape", 6}, {"9 dims", 7},   {"rng 3 words", 8}, {"valid", 9}};
    int64_t huge[3] = {INT64_MAX / 2, 4, 3};
    int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 2, 3};
    uint64_t words[3] = {1, 2, 3};
    Gambar__RngState rs = GAMBAR__RNG_STATE__INIT;
    Gambar__RngState *rsp[1] = {&rs};
    rs.name = "train";
    rs.n_s = 3;
    rs.s = words;
    for (size_t c = 0; c < ARRAY_LEN(cases); c++) {
        ck.model = cases[c].variant == 0 ? NULL : &md;
        ck.state = cases[c].variant == 1 ? NULL : &ts;
        ts.adam_d = cases[c].variant == 2 ? NULL : &ad;
        t2 = t1;
        t2.name = cases[c].variant == 5 ? "G.a" : "G.b";
        if (cases[c].variant == 3) t2.data.len = 20;
        if (cases[c].variant == 4) shape[0] = -2;
        if (cases[c].variant == 6) t2.n_shape = 3, t2.shape = huge;
        if (cases[c].variant == 7) t2.n_shape = 9, t2.shape = nine;
        ts.n_rngs = cases[c].variant == 8 ? 1 : 0;
        ts.rngs = rsp;
        size_t n = protobuf_c_message_pack(&ck.base, buf);
        shape[0] = 2;
        snprintf(p, sizeof p, "%s/ckpt-%010d.gck", dir, 300 + (int)c);
        write_raw_ckpt(p, buf, n, 1);
        int rc = ckpt_load(p, NULL, NULL);
        CHECKF(rc == (cases[c].variant == 9 ? 0 : GB_EFORMAT), "%s: rc %d", cases[c].what, rc);
        if (cases[c].variant == 9) unlink(p);
    }
    free(buf);
    /* Many tiny tensors: decoded structs outgrow the allocator's cap. */
    size_t nt = 300000;
    uint8_t *many = xmalloc(2 * nt);
    for (size_t i = 0; i < nt; i++) many[2 * i] = 0x12, many[2 * i + 1] = 0; /* tensors: {} */
    snprintf(p, sizeof p, "%s/ckpt-%010d.gck", dir, 400);
    write_raw_ckpt(p, many, 2 * nt, 1);
    CHECK(ckpt_load(p, NULL, NULL) == GB_EFORMAT);
    free(many);
    /* A folder and a symlink loop named like checkpoints. */
    snprintf(p, sizeof p, "%s/ckpt-%010d.gck", dir, 500);
    mkdir(p, 0755);
    CHECK(ckpt_load(p, NULL, NULL) == GB_EFORMAT);
    snprintf(p, sizeof p, "%s/ckpt-%010d.gck", dir, 501);
    CHECK(symlink(p, p) == 0);
    CHECK(ckpt_load(p, NULL, NULL) == ELOOP);
    /* A FIFO named like a checkpoint does not hang the reader. */
    snprintf(p, sizeof p, "%s/ckpt-%010d.gck", dir, 502);
    CHECK(mkfifo(p, 0644) == 0);
    CHECK(ckpt_load(p, NULL, NULL) == GB_EFORMAT);
    /* Names that only look similar are ignored. */
    snprintf(p, sizeof p, "%s/ckpt-99999.gck.bak", dir);
    write_file(p, "x", 1);
    snprintf(p, sizeof p, "%s/ckpt-.gck", dir);
    write_file(p, "x", 1);
    snprintf(p, sizeof p, "%s/ckpt-999999999999999999999999.gck", dir); /* overflows u64 */
    write_file(p, "x", 1);
    int rc;
    CHECK(latest_step(dir, &rc) == 1 && rc == 0);
    free(junk);
}


/* Writer child for the process tests: saves steps first, first+1, ...
 * (keep 2, ~2 MB each) until killed or `count` saves are done. */
static pid_t spawn_writer(const char *dir, uint64_t first, int count) {
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid > 0) return pid;
    log_set_level(LOG_ERROR);
    for (int i = 0; i < count; i++) {
        ckpt_builder_t *b = make_ckpt(first + (uint64_t)i, (float)i, 500000);
        if (ckpt_save(dir, ckpt_builder_msg(b), 2, NULL, 0, NULL) != 0) _exit(3);
        ckpt_builder_destroy(&b);
    }
    _exit(0);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Kill a writer with SIGKILL at arbitrary moments: what is left is always
 * a valid latest checkpoint plus at most the dead writer's temp file,
 * which the next save removes. (A killed process keeps the page cache;
 * power loss is covered by the fsync discipline, not by this test.) */
static void killed_writer_leaves_valid_state(void) {
    const char *dir = mkdir_fresh("killed");
    uint8_t d[32];
    save_step(dir, 1, 2, d);
    rng_t r;
    rng_seed(&r, 5);
    uint64_t next = 2;
    int saw_temp = 0;
    for (int round = 0; round < 8; round++) {
        pid_t pid = spawn_writer(dir, next, 1000);
        sleep_ms(5 + (long)rng_below(&r, 60));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status));
        int rc;
        long long step = latest_step(dir, &rc);
        CHECKF(rc == 0 && step >= 1, "round %d: rc %d", round, rc);
        char listing[4096], tmpname[128];
        list_dir(dir, listing, sizeof listing);
        snprintf(tmpname, sizeof tmpname, ".%ld.tmp", (long)pid);
        /* every entry is a checkpoint or the dead writer's temp file */
        char *save = NULL;
        for (char *tok = strtok_r(listing, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
            uint64_t st;
            bool is_ck = sscanf(tok, "ckpt-%" SCNu64 ".gck", &st) == 1;
            bool is_tmp = strncmp(tok, ".ckpt-", 6) == 0 && strstr(tok, tmpname);
            saw_temp += is_tmp;
            CHECKF(is_ck || is_tmp, "round %d: unexpected file %s", round, tok);
        }
        next = (uint64_t)(step > 0 ? step : 1) + 1;
        save_step(dir, next++, 2, d); /* removes the stale temp file */
        list_dir(dir, listing, sizeof listing);
        CHECKF(!strstr(listing, ".tmp"), "round %d: temp file left: %s", round, listing);
    }
    printf("# killed_writer: %d of 8 kills left a temp file behind\n", saw_temp);
}

/* A reader polling find_latest while another process saves and prunes
 * never sees a partial file and never finds nothing. */
static void reader_during_writes(void) {
    const char *dir = mkdir_fresh("concurrent");
    uint8_t d[32];
    save_step(dir, 1, 2, d);
    pid_t pid = spawn_writer(dir, 2, 40);
    int reads = 0, bad = 0, status = 0;
    long long last = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        int rc;
        long long step = latest_step(dir, &rc);
        reads++;
        if (rc != 0 || step < last) bad++;
        if (step > last) last = step;
        if (w == pid) break;
    }
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECKF(bad == 0, "%d of %d reads failed or went backwards", bad, reads);
    CHECK(last == 41);
    printf("# reader_during_writes: %d reads\n", reads);
}

/* Replay the fuzz harness's seeds and regression inputs, then a few
 * thousand random mutations of a real payload wrapped in a correct header
 * (so they reach the decoder and the content checks). The harness
 * ASSERTs its invariants; this test checks both outcomes occurred. */
static int replay_dir(const char *rel) {
    const char *root = getenv("GAMBAR_ROOT");
    char dir[1024], f[2048];
    snprintf(dir, sizeof dir, "%s/%s", root && *root ? root : ".", rel);
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        snprintf(f, sizeof f, "%s/%.900s", dir, de->d_name);
        size_t len;
        uint8_t *b = read_file(f, &len);
        uint8_t *exact = xmalloc(len); /* exact size: ASan sees overreads */
        memcpy(exact, b, len);
        fuzz_ckpt_one(exact, len);
        free(exact);
        free(b);
        n++;
    }
    closedir(d);
    return n;
}

static void fuzz_seeds_and_mutations(void) {
    int ns = replay_dir("tests/fuzz/seeds/fuzz_ckpt");
    CHECKF(ns >= 3, "%d seeds (run from the repository root or set GAMBAR_ROOT)", ns);
    CHECK(replay_dir("tests/fuzz/regress/fuzz_ckpt") >= 0);

    ckpt_builder_t *b = make_ckpt(3, 0.25f, 8);
    const Gambar__Checkpoint *ck = ckpt_builder_msg(b);
    size_t n = protobuf_c_message_get_packed_size(&ck->base);
    uint8_t *base = xmalloc(n + 1);
    base[0] = 1; /* wrapped mode */
    protobuf_c_message_pack(&ck->base, base + 1);
    ckpt_builder_destroy(&b);
    rng_t r;
    rng_seed(&r, 2024);
    uint8_t *m = xmalloc(2 * n + 64);
    int loaded = 0, refused = 0;
    log_level_t prev = log_get_level();
    for (int it = 0; it < 3000; it++) {
        size_t len = n + 1;
        memcpy(m, base, len);
        int edits = 1 + (int)rng_below(&r, 4);
        for (int e = 0; e < edits; e++) {
            size_t at = 1 + (size_t)rng_below(&r, len - 1);
            switch (rng_below(&r, 4)) {
            case 0: m[at] ^= (uint8_t)(1u << rng_below(&r, 8)); break;
            case 1: m[at] = (uint8_t)rng_u64(&r); break;
            case 2: len = at; break; /* truncate */
            default: /* insert up to 16 random bytes */
                if (len + 16 <= 2 * n + 64) {
                    size_t k = 1 + (size_t)rng_below(&r, 16);
                    memmove(m + at + k, m + at, len - at);
                    for (size_t j = 0; j < k; j++) m[at + j] = (uint8_t)rng_u64(&r);
                    len += k;
                }
            }
            if (len < 2) break;
        }
        uint8_t *exact = xmalloc(len);
        memcpy(exact, m, len);
        fuzz_ckpt_one(exact, len);
        free(exact);
        /* classify the outcome with a direct load of the same file */
        log_set_level(LOG_QUIET);
        if (ckpt_load(fc_path, NULL, NULL) == 0) loaded++; else refused++;
        log_set_level(prev);
    }
    printf("# fuzz mutations: %d loaded, %d refused\n", loaded, refused);
    CHECK(loaded > 100 && refused > 100);
    free(m);
    free(base);
    unlink(fc_path);
}

/* The file a save wrote before saves were streamed: the whole message
 * packed into one buffer behind the header (kept here as the reference
 * the streamed writer must match byte for byte). */
static uint8_t *one_buffer_file(const Gambar__Checkpoint *ck, size_t *n) {
    size_t plen = protobuf_c_message_get_packed_size(&ck->base);
    uint8_t *buf = xcalloc(1, 64 + plen);
    ASSERT(protobuf_c_message_pack(&ck->base, buf + 64) == plen);
    memcpy(buf, "GAMBARCK", 8);
    buf[8] = 1;
    buf[12] = 64;
    for (int i = 0; i < 8; i++) buf[16 + i] = (uint8_t)((uint64_t)plen >> (8 * i));
    digest_sha256(buf + 64, plen, buf + 24);
    *n = 64 + plen;
    return buf;
}

/* The streamed save writes exactly the bytes of the one-buffer pack: for
 * a message with every field set and a tensor spanning several 1 MiB
 * chunks, for borrowed (ckpt_add_tensor_ref) tensors, and for a real
 * model stored by modelck_store; under short writes too. The file digest
 * returned is the file's. */
static void streamed_bytes_identical(void) {
    const char *dir = mkdir_fresh("identical");
    ckpt_builder_t *b = make_ckpt(42, 0.25f, 700000); /* 2.8 MB: three chunks */
    float *big = xmalloc(333333 * sizeof *big);
    for (int i = 0; i < 333333; i++) big[i] = (float)i * 0.5f - 7;
    int64_t sh[2] = {3, 111111};
    CHECK(ckpt_add_tensor_ref(b, "EMA.G.big", sh, 2, big) == 0);
    int64_t z[1] = {0};
    CHECK(ckpt_add_tensor_ref(b, "EMA.G.none", z, 1, NULL) == 0);
    model_desc_t d;
    model_desc_default(&d, MODEL_DCGAN28);
    d.g_mult = d.d_mult = 8;
    model_t *m = model_new(&d, 4, 3);
    ckpt_builder_t *mb = ckpt_builder_new();
    modelck_store(m, mb);
    ckpt_builder_msg(mb)->state->step = 43;
    ckpt_builder_t *all[2] = {b, mb};
    for (int i = 0; i < 4; i++) {
        const Gambar__Checkpoint *ck = ckpt_builder_msg(all[i % 2]);
        size_t nref, nfile;
        uint8_t *ref = one_buffer_file(ck, &nref), dg[32], dref[32];
        char path[1024];
        afile_test_short_writes(i >= 2);
        CHECK(ckpt_save(dir, ck, 0, path, sizeof path, dg) == 0);
        afile_test_short_writes(0);
        uint8_t *got = read_file(path, &nfile);
        CHECKF(nfile == nref && memcmp(got, ref, nref) == 0, "case %d: %zu bytes written, %zu expected%s", i,
               nfile, nref, nfile == nref ? " (contents differ)" : "");
        digest_sha256(ref, nref, dref);
        CHECK(memcmp(dg, dref, 32) == 0);
        free(got);
        free(ref);
    }
    /* ckpt_write: any name, the same bytes */
    char path[1024];
    snprintf(path, sizeof path, "%s/features.gck", dir);
    CHECK(ckpt_write(path, ckpt_builder_msg(b), NULL) == 0);
    size_t nref, nfile;
    uint8_t *ref = one_buffer_file(ckpt_builder_msg(b), &nref), *got = read_file(path, &nfile);
    CHECK(nfile == nref && memcmp(got, ref, nref) == 0);
    free(got);
    free(ref);
    ckpt_builder_destroy(&mb);
    ckpt_builder_destroy(&b);
    model_free(m);
    free(big);
}

/* ckpt_load parses the tensors itself (their data stay in the payload,
 * so a load holds one copy) and hands the rest to protobuf-c: on payloads
 * mutated byte by byte, behind a header with a correct SHA-256 (so the
 * decoder, not the checksum, meets them), it must agree with protobuf-c
 * decoding the whole payload: what protobuf-c refuses is refused, and a
 * loaded message packs to the same bytes as protobuf-c's. */
static void load_agrees_with_protobuf_c(void) {
    const char *dir = mkdir_fresh("split");
    ckpt_builder_t *b = make_ckpt(3, 0.75f, 40);
    size_t n;
    uint8_t *base = one_buffer_file(ckpt_builder_msg(b), &n);
    ckpt_builder_destroy(&b);
    size_t plen = n - 64;
    uint8_t *m = xmalloc(n + 64);
    char path[700];
    snprintf(path, sizeof path, "%s/ckpt-0000000003.gck", dir);
    rng_t r;
    rng_seed(&r, 11);
    int same_ok = 0, same_refused = 0, validation_only = 0, bad = 0;
    log_level_t prev = log_get_level();
    for (int it = 0; it < 4000; it++) {
        memcpy(m, base, n);
        size_t len = plen;
        int edits = 1 + (int)rng_below(&r, 3);
        for (int e = 0; e < edits && len > 1; e++) {
            size_t at = (size_t)rng_below(&r, len);
            switch (rng_below(&r, 3)) {
            case 0: m[64 + at] ^= (uint8_t)(1u << rng_below(&r, 8)); break;
            case 1: m[64 + at] = (uint8_t)rng_u64(&r); break;
            default: len = at; break;
            }
        }
        for (int i = 0; i < 8; i++) m[16 + i] = (uint8_t)((uint64_t)len >> (8 * i));
        digest_sha256(m + 64, len, m + 24);
        write_file(path, m, 64 + len);
        Gambar__Checkpoint *ck = NULL;
        log_set_level(LOG_QUIET);
        int rc = ckpt_load(path, &ck, NULL);
        log_set_level(prev);
        ProtobufCMessage *ref = protobuf_c_message_unpack(&gambar__checkpoint__descriptor, NULL, len, m + 64);
        if (rc == 0) {
            size_t a = ref ? protobuf_c_message_get_packed_size(ref) : 0;
            size_t c = protobuf_c_message_get_packed_size(&ck->base);
            uint8_t *pa = xmalloc(a + 1), *pc = xmalloc(c + 1);
            if (ref) protobuf_c_message_pack(ref, pa);
            protobuf_c_message_pack(&ck->base, pc);
            if (!ref || a != c || memcmp(pa, pc, a) != 0) {
                if (bad++ < 5) printf("# it %d: loaded, but protobuf-c %s\n", it, ref ? "decodes it differently" : "refuses it");
            } else {
                same_ok++;
            }
            free(pa);
            free(pc);
        } else if (!ref) {
            same_refused++;
        } else {
            /* protobuf-c decodes it: then ckpt_load's content checks must
             * be what refuses it, so its canonical packing is refused too */
            size_t cn;
            uint8_t *canon = one_buffer_file((const Gambar__Checkpoint *)ref, &cn);
            write_file(path, canon, cn);
            log_set_level(LOG_QUIET);
            if (ckpt_load(path, NULL, NULL) == 0 && bad++ < 5) printf("# it %d: refused, but protobuf-c decodes it\n", it);
            log_set_level(prev);
            free(canon);
            validation_only++;
        }
        ckpt_free(&ck);
        if (ref) protobuf_c_message_free_unpacked(ref, NULL);
    }
    printf("# split load vs protobuf-c: %d loaded alike, %d refused alike, %d refused by the content checks\n",
           same_ok, same_refused, validation_only);
    CHECKF(bad == 0, "%d mutations loaded unlike protobuf-c", bad);
    CHECK(same_ok > 100 && same_refused > 100);
    free(m);
    free(base);
}

/* VmHWM of this process in KiB. */
static long vm_hwm_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kib = atol(line + 6);
    if (f) fclose(f);
    return kib;
}

/* Saving a model does not copy it (issue 11: the save used to double the
 * trainer's memory: a copy of every tensor in the message, then the
 * packed file in one buffer). In a child (a fresh peak): a dcgan28 of
 * width 32, every buffer touched, then modelck_store + ckpt_save; the
 * peak may grow by the 1 MiB write chunk and small change, not by a
 * fraction of the file. */
static void save_does_not_copy_the_model(void) {
    const char *dir = mkdir_fresh("rss");
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        model_desc_t d;
        model_desc_default(&d, MODEL_DCGAN28);
        d.g_mult = d.d_mult = 32;
        model_t *m = model_new(&d, 64, 1);
        for (int i = 0; i < model_tensor_count(m); i++) {
            const model_tensor_t *t = model_tensor(m, i);
            memset(t->data, 0, t->n * sizeof(float)); /* resident */
        }
        long before = vm_hwm_kib();
        ckpt_builder_t *b = ckpt_builder_new();
        modelck_store(m, b);
        ckpt_builder_msg(b)->state->step = 1;
        char path[1024];
        if (ckpt_save(dir, ckpt_builder_msg(b), 0, path, sizeof path, NULL) != 0) _exit(10);
        ckpt_builder_destroy(&b);
        long grew = vm_hwm_kib() - before;
        struct stat st;
        stat(path, &st);
        long file_kib = (long)(st.st_size / 1024);
        printf("# save of a %ld KiB checkpoint: peak RSS grew by %ld KiB\n", file_kib, grew);
        fflush(stdout);
        _exit(grew < 3 * 1024 && grew < file_kib / 4 ? 0 : 11);
    }
    int status;
    waitpid(pid, &status, 0);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d (11: the save copied the model)",
           status);
}

static void path_too_long(void) {
    char dir[5000];
    memset(dir, 'a', sizeof dir - 1);
    dir[sizeof dir - 1] = 0;
    ckpt_builder_t *b = make_ckpt(1, 1, 0);
    CHECK(ckpt_save(dir, ckpt_builder_msg(b), 0, NULL, 0, NULL) == ENAMETOOLONG);
    const char *ok = mkdir_fresh("short");
    char small[10];
    CHECK(ckpt_save(ok, ckpt_builder_msg(b), 0, small, sizeof small, NULL) == ENAMETOOLONG);
    ckpt_builder_destroy(&b);
}

int main(void) {
    log_init("test_ckpt");
    RUN(roundtrip_every_field);
    RUN(many_entries_roundtrip);
    RUN(find_latest_empty_and_missing);
    RUN(io_error_loop);
    RUN(short_writes_resumed);
    RUN(real_write_failure);
    RUN(truncated_newest_falls_back);
    RUN(flipped_bytes_are_corrupt);
    RUN(wrong_magic_and_version);
    RUN(keep_prunes_old);
    RUN(stale_temp_files_removed);
    RUN(garbage_never_crashes);
    RUN(killed_writer_leaves_valid_state);
    RUN(reader_during_writes);
    RUN(fuzz_seeds_and_mutations);
    RUN(path_too_long);
    RUN(streamed_bytes_identical);
    RUN(save_does_not_copy_the_model);
    RUN(load_agrees_with_protobuf_c);
    return test_done();
}
