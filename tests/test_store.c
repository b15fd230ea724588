/* test_store.c - the LMDB dataset store: add/commit/reopen, the digest
 * chain, sha lookup, map growth from a tiny map, read-only open errors,
 * tamper detection, a failed commit (file size limit) keeping earlier
 * commits, and the single-writer guard. */
#include "base.h"
#include "digest.h"
#include "err.h"
#include "store.h"
#include "test.h"

#include <errno.h>
#include <lmdb.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

static const char *const CLASSES[] = {"cat", "dog", "bird"};

static char *tpath(const char *name) {
    static char buf[8][600];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 600, "%s/%s", test_tmpdir(), name);
    return p;
}

/* A deterministic example i of shape h x w x c. */
typedef struct {
    Gambar__Example ex;
    uint8_t px[64 * 64 * 3];
    uint8_t sha[DIGEST_LEN];
    char uri[64];
} mk_t;

static void mk(mk_t *m, uint64_t i, uint32_t h, uint32_t w, uint32_t c, int32_t label, const char *lic) {
    gambar__example__init(&m->ex);
    size_t n = (size_t)h * w * c;
    for (size_t j = 0; j < n; j++) m->px[j] = (uint8_t)(i * 31 + j * 7);
    uint8_t seed[16];
    memcpy(seed, &i, 8);
    memcpy(seed + 8, "examples", 8);
    digest_sha256(seed, sizeof seed, m->sha);
    snprintf(m->uri, sizeof m->uri, "file:///x/%llu.png", (unsigned long long)i);
    m->ex.height = h;
    m->ex.width = w;
    m->ex.channels = c;
    m->ex.pixels.data = m->px;
    m->ex.pixels.len = n;
    m->ex.label = label;
    m->ex.source_uri = m->uri;
    m->ex.source_sha256.data = m->sha;
    m->ex.source_sha256.len = DIGEST_LEN;
    m->ex.license = (char *)lic;
}

/* The chain of proto/dataset.proto, computed independently. */
static void chain(uint8_t d[DIGEST_LEN], const mk_t *m) {
    digest_ctx_t *c = digest_new();
    uint8_t hp[DIGEST_LEN];
    digest_sha256(m->ex.pixels.data, m->ex.pixels.len, hp);
    uint8_t lb[4] = {(uint8_t)m->ex.label, (uint8_t)((uint32_t)m->ex.label >> 8),
                     (uint8_t)((uint32_t)m->ex.label >> 16), (uint8_t)((uint32_t)m->ex.label >> 24)};
    digest_update(c, d, DIGEST_LEN);
    digest_update(c, m->sha, DIGEST_LEN);
    digest_update(c, hp, DIGEST_LEN);
    digest_update(c, lb, 4);
    digest_final(&c, d);
}

static void add_commit_reopen(void) {
    const char *p = tpath("basic");
    store_t *s = NULL;
    CHECK(store_open(p, STORE_CREATE, &s) == 0);
    if (!s) return;
    CHECK(store_count(s) == 0 && store_info(s) == NULL);
    CHECK(store_set_classes(s, CLASSES, 3) == 0);
    mk_t m;
    uint8_t d[DIGEST_LEN] = {0};
    for (uint64_t i = 0; i < 150; i++) {
        mk(&m, i, 8, 6, 1, (int32_t)(i % 4) - 1, i % 2 ? "CC-BY-4.0" : "");
        CHECK(store_add(s, &m.ex) == 0);
        CHECK(m.ex.index == i);
        chain(d, &m);
        if (i == 99) {
            CHECK(store_staged(s) == 100);
            CHECK(store_commit(s, "test source", 2, 1) == 0);
            CHECK(store_count(s) == 100 && store_staged(s) == 0);
        }
    }
    CHECK(store_count(s) == 100); /* staged ones not counted */
    CHECK(store_commit(s, "test source", 1, 0) == 0);
    CHECK(store_count(s) == 150);
    store_close(&s);
    CHECK(s == NULL);

    CHECK(store_open(p, STORE_RDONLY, &s) == 0);
    if (!s) return;
    const Gambar__DatasetInfo *in = store_info(s);
    CHECK(in && in->count == 150 && in->height == 8 && in->width == 6 && in->channels == 1);
    CHECK(in && in->optout_count == 3 && in->duplicate_count == 1);
    CHECK(in && strcmp(in->source, "test source") == 0);
    CHECK(in && in->n_class_names == 3 && strcmp(in->class_names[1], "dog") == 0);
    CHECK(in && in->n_class_counts == 3 && in->class_counts[0] + in->class_counts[1] + in->class_counts[2] ==
                                               150 - in->unlabelled_count);
    CHECK(in && in->unlabelled_count == 38 && in->class_counts[0] == 38 && in->class_counts[2] == 37);
    CHECK(in && in->n_licenses == 2);
    CHECK(in && in->digest.len == 32 && memcmp(in->digest.data, d, 32) == 0);
    Gambar__Example *ex = NULL;
    CHECK(store_get(s, 77, &ex) == 0);
    mk(&m, 77, 8, 6, 1, 0, "");
    CHECK(ex && ex->index == 77 && ex->pixels.len == 48 && memcmp(ex->pixels.data, m.px, 48) == 0);
    CHECK(ex && ex->label == 0 && strcmp(ex->label_name, "cat") == 0);
    CHECK(ex && strcmp(ex->source_uri, "file:///x/77.png") == 0 && strcmp(ex->license, "CC-BY-4.0") == 0);
    if (ex) gambar__example__free_unpacked(ex, NULL);
    const uint8_t *px;
    size_t npx;
    int32_t label;
    CHECK(store_get_pixels(s, 80, &px, &npx, &label) == 0);
    mk(&m, 80, 8, 6, 1, 0, "");
    CHECK(npx == 48 && memcmp(px, m.px, 48) == 0 && label == -1);
    CHECK(store_get_pixels(s, 150, &px, &npx, &label) == GB_ENOTFOUND);
    CHECK(store_get(s, 1000, &ex) == GB_ENOTFOUND);
    CHECK(store_verify(s) == 0);
    store_close(&s);

    /* A second writer run appends and continues the chain. */
    CHECK(store_open(p, 0, &s) == 0);
    if (!s) return;
    CHECK(store_count(s) == 150);
    CHECK(store_set_classes(s, CLASSES, 3) == 0);
    const char *const other[] = {"cat", "dog"};
    CHECK(store_set_classes(s, other, 2) == GB_EMISMATCH);
    mk(&m, 150, 8, 6, 1, 2, "");
    CHECK(store_add(s, &m.ex) == 0 && m.ex.index == 150);
    chain(d, &m);
    CHECK(store_commit(s, "second", 0, 0) == 0);
    in = store_info(s);
    CHECK(in && in->count == 151 && memcmp(in->digest.data, d, 32) == 0);
    CHECK(in && strcmp(in->source, "test source; second") == 0);
    CHECK(store_verify(s) == 0);
    store_close(&s);
}

static void bad_examples(void) {
    store_t *s = NULL;
    CHECK(store_open(tpath("bad"), STORE_CREATE, &s) == 0);
    if (!s) return;
    CHECK(store_set_classes(s, CLASSES, 3) == 0);
    mk_t m;
    mk(&m, 0, 4, 4, 3, 0, "");
    CHECK(store_add(s, &m.ex) == 0);
    mk(&m, 1, 4, 5, 3, 0, "");
    CHECK(store_add(s, &m.ex) == GB_EMISMATCH); /* other shape */
    mk(&m, 2, 4, 4, 2, 0, "");
    CHECK(store_add(s, &m.ex) == GB_EMISMATCH); /* 2 channels */
    mk(&m, 3, 4, 4, 3, 3, "");
    CHECK(store_add(s, &m.ex) == GB_EMISMATCH); /* label out of range */
    mk(&m, 4, 4, 4, 3, 0, "");
    m.ex.pixels.len--;
    CHECK(store_add(s, &m.ex) == GB_EMISMATCH);
    mk(&m, 5, 4, 4, 3, 0, "");
    m.ex.source_sha256.len = 31;
    CHECK(store_add(s, &m.ex) == GB_EFORMAT);
    CHECK(store_staged(s) == 1);
    CHECK(store_commit(s, NULL, 0, 0) == 0 && store_count(s) == 1);
    store_close(&s);
}

static void find_sha(void) {
    store_t *s = NULL;
    CHECK(store_open(tpath("sha"), STORE_CREATE, &s) == 0);
    if (!s) return;
    mk_t m;
    uint64_t idx = 99;
    for (uint64_t i = 0; i < 3000; i++) {
        mk(&m, i, 4, 4, 1, -1, "");
        CHECK(store_add(s, &m.ex) == 0);
        if (i == 1999) CHECK(store_commit(s, NULL, 0, 0) == 0);
    }
    mk(&m, 2500, 4, 4, 1, -1, "");
    CHECK(store_find_sha(s, m.sha, &idx) == 0 && idx == 2500); /* staged */
    mk(&m, 1234, 4, 4, 1, -1, "");
    CHECK(store_find_sha(s, m.sha, &idx) == 0 && idx == 1234); /* committed */
    mk(&m, 5000, 4, 4, 1, -1, "");
    CHECK(store_find_sha(s, m.sha, &idx) == GB_ENOTFOUND);
    CHECK(store_commit(s, NULL, 0, 0) == 0);
    store_close(&s);
    CHECK(store_open(tpath("sha"), STORE_RDONLY, &s) == 0);
    if (!s) return;
    mk(&m, 2999, 4, 4, 1, -1, "");
    CHECK(store_find_sha(s, m.sha, &idx) == 0 && idx == 2999);
    mk(&m, 3000, 4, 4, 1, -1, "");
    CHECK(store_find_sha(s, m.sha, &idx) == GB_ENOTFOUND);
    store_close(&s);
}

/* The writer's Bloom filter: built from an existing dataset on reopen,
 * kept up to date by store_add, rebuilt bigger when overfull; never a
 * false "not found". */
static void find_sha_bloom(void) {
    const char *p = tpath("bloom");
    store_t *s = NULL;
    mk_t m;
    uint64_t idx = 0;
    CHECK(store_open(p, STORE_CREATE, &s) == 0);
    if (!s) return;
    for (uint64_t i = 0; i < 12000; i++) {
        mk(&m, i, 2, 2, 1, -1, "");
        if (i % 7 == 0) CHECK(store_find_sha(s, m.sha, &idx) == GB_ENOTFOUND);
        CHECK(store_add(s, &m.ex) == 0);
        if (i % 1500 == 1499) CHECK(store_commit(s, NULL, 0, 0) == 0);
    }
    CHECK(store_commit(s, NULL, 0, 0) == 0);
    int missing = 0;
    for (uint64_t i = 0; i < 12000; i++) {
        mk(&m, i, 2, 2, 1, -1, "");
        if (store_find_sha(s, m.sha, &idx) != 0 || idx != i) missing++;
    }
    CHECKF(missing == 0, "%d of 12000 not found", missing);
    store_close(&s);
    CHECK(store_open(p, 0, &s) == 0);
    if (!s) return;
    store_expect(s, 100);
    missing = 0;
    for (uint64_t i = 0; i < 12000; i += 3) {
        mk(&m, i, 2, 2, 1, -1, "");
        if (store_find_sha(s, m.sha, &idx) != 0 || idx != i) missing++;
    }
    CHECKF(missing == 0, "%d not found after reopen", missing);
    int false_found = 0;
    for (uint64_t i = 12000; i < 14000; i++) {
        mk(&m, i, 2, 2, 1, -1, "");
        if (store_find_sha(s, m.sha, &idx) != GB_ENOTFOUND) false_found++;
    }
    CHECK(false_found == 0);
    store_close(&s);
}

static void map_growth(void) {
    const char *p = tpath("grow");
    store_t *s = NULL;
    CHECK(store_open_map(p, STORE_CREATE, 64 << 10, &s) == 0);
    if (!s) return;
    size_t first = store_map_size(s);
    CHECK(first < (1 << 20));
    mk_t m;
    uint8_t d[DIGEST_LEN] = {0};
    for (uint64_t i = 0; i < 3000; i++) {
        mk(&m, i, 32, 32, 3, -1, "");
        CHECK(store_add(s, &m.ex) == 0);
        chain(d, &m);
        if (i % 1000 == 999) CHECK(store_commit(s, NULL, 0, 0) == 0);
    }
    CHECKF(store_map_size(s) >= 9u << 20, "map %zu", store_map_size(s));
    store_close(&s);
    CHECK(store_open(p, STORE_RDONLY, &s) == 0);
    if (!s) return;
    CHECK(store_count(s) == 3000);
    CHECK(memcmp(store_info(s)->digest.data, d, 32) == 0);
    const uint8_t *px;
    size_t npx;
    int32_t label;
    mk(&m, 2999, 32, 32, 3, -1, "");
    CHECK(store_get_pixels(s, 2999, &px, &npx, &label) == 0 && npx == 3072 && memcmp(px, m.px, npx) == 0);
    CHECK(store_verify(s) == 0);
    store_close(&s);
}

static void missing_path(void) {
    store_t *s = (store_t *)1;
    CHECK(store_open(tpath("does-not-exist"), STORE_RDONLY, &s) == ENOENT && s == NULL);
    CHECK(store_open(test_tmpdir(), STORE_RDONLY, &s) == ENOENT && s == NULL); /* folder, no data.mdb */
    CHECK(store_open(tpath("does-not-exist2"), 0, &s) == ENOENT && s == NULL); /* writer without CREATE */
}

/* Flip one pixel byte of example 5 directly in LMDB. */
static void tamper(const char *p) {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    CHECK(mdb_env_create(&env) == 0);
    CHECK(mdb_env_open(env, p, 0, 0644) == 0);
    CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
    CHECK(mdb_dbi_open(txn, NULL, 0, &dbi) == 0);
    MDB_val k = {15, (void *)"ex/000000000005"}, v;
    CHECK(mdb_get(txn, dbi, &k, &v) == 0);
    Gambar__Example *ex = gambar__example__unpack(NULL, v.mv_size, v.mv_data);
    CHECK(ex != NULL);
    if (ex) {
        ex->pixels.data[3] ^= 1;
        size_t n = gambar__example__get_packed_size(ex);
        uint8_t *buf = xmalloc(n);
        gambar__example__pack(ex, buf);
        MDB_val nv = {n, buf};
        CHECK(mdb_put(txn, dbi, &k, &nv, 0) == 0);
        free(buf);
        gambar__example__free_unpacked(ex, NULL);
    }
    CHECK(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
}

static void verify_detects_tamper(void) {
    const char *p = tpath("tamper");
    store_t *s = NULL;
    CHECK(store_open(p, STORE_CREATE, &s) == 0);
    if (!s) return;
    mk_t m;
    for (uint64_t i = 0; i < 20; i++) {
        mk(&m, i, 5, 5, 1, -1, "");
        CHECK(store_add(s, &m.ex) == 0);
    }
    CHECK(store_commit(s, NULL, 0, 0) == 0);
    CHECK(store_verify(s) == 0);
    store_close(&s);
    tamper(p);
    CHECK(store_open(p, STORE_RDONLY, &s) == 0);
    if (!s) return;
    CHECK(store_verify(s) == GB_ECORRUPT);
    store_close(&s);
}

/* In a child limited to the current file size (SIGXFSZ ignored, so writes
 * fail with EFBIG), a large commit fails with a clear error; the parent then
 * finds the first commit intact. */
static void full_disk_keeps_earlier(void) {
    const char *p = tpath("full");
    store_t *s = NULL;
    CHECK(store_open(p, STORE_CREATE, &s) == 0);
    if (!s) return;
    mk_t m;
    for (uint64_t i = 0; i < 50; i++) {
        mk(&m, i, 16, 16, 3, -1, "");
        CHECK(store_add(s, &m.ex) == 0);
    }
    CHECK(store_commit(s, NULL, 0, 0) == 0);
    store_close(&s);
    uint8_t d50[DIGEST_LEN];
    CHECK(store_open(p, STORE_RDONLY, &s) == 0);
    if (!s) return;
    memcpy(d50, store_info(s)->digest.data, 32);
    store_close(&s);

    char dbfile[700];
    snprintf(dbfile, sizeof dbfile, "%s/data.mdb", p);
    FILE *f = fopen(dbfile, "rb");
    CHECK(f != NULL);
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);

    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        store_t *w = NULL;
        if (store_open(p, 0, &w) != 0) _exit(10);
        for (uint64_t i = 50; i < 2050; i++) {
            mk(&m, i, 16, 16, 3, -1, "");
            if (store_add(w, &m.ex) != 0) _exit(11);
        }
        struct rlimit rl = {(rlim_t)size, (rlim_t)size};
        setrlimit(RLIMIT_FSIZE, &rl);
        int rc = store_commit(w, NULL, 0, 0);
        if (rc != EFBIG && rc != ENOSPC) _exit(12);
        if (store_count(w) != 50 || store_staged(w) != 0) _exit(13);
        store_close(&w);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
    CHECK(store_open(p, STORE_RDONLY, &s) == 0);
    if (!s) return;
    CHECK(store_count(s) == 50);
    CHECK(memcmp(store_info(s)->digest.data, d50, 32) == 0);
    CHECK(store_verify(s) == 0);
    store_close(&s);
    /* And the writer can carry on afterwards. */
    CHECK(store_open(p, 0, &s) == 0);
    if (!s) return;
    mk(&m, 50, 16, 16, 3, -1, "");
    CHECK(store_add(s, &m.ex) == 0 && store_commit(s, NULL, 0, 0) == 0 && store_count(s) == 51);
    CHECK(store_verify(s) == 0);
    store_close(&s);
}

static void two_writers_refused(void) {
    const char *p = tpath("two");
    store_t *a = NULL, *b = NULL;
    CHECK(store_open(p, STORE_CREATE, &a) == 0);
    CHECK(store_open(p, 0, &b) == 0);
    if (!a || !b) { store_close(&a); store_close(&b); return; }
    mk_t m;
    mk(&m, 0, 4, 4, 1, -1, "");
    CHECK(store_add(a, &m.ex) == 0 && store_commit(a, NULL, 0, 0) == 0);
    mk(&m, 1, 4, 4, 1, -1, "");
    CHECK(store_add(b, &m.ex) == 0);
    CHECK(store_commit(b, NULL, 0, 0) == GB_EMISMATCH);
    store_close(&a);
    store_close(&b);
    CHECK(store_open(p, STORE_RDONLY, &a) == 0);
    if (!a) return;
    CHECK(store_count(a) == 1 && store_verify(a) == 0);
    store_close(&a);
}

/* Background commits: lookups see the batch in flight, the next commit
 * waits for it, and a failed one is reported by the next call with the
 * staged examples dropped and earlier commits intact. */
static void async_commit(void) {
    const char *p = tpath("async");
    store_t *s = NULL;
    mk_t m;
    uint64_t idx = 0;
    uint8_t d[DIGEST_LEN] = {0};
    CHECK(store_open(p, STORE_CREATE, &s) == 0);
    if (!s) return;
    for (uint64_t i = 0; i < 3000; i++) {
        mk(&m, i, 8, 8, 1, -1, "");
        CHECK(store_add(s, &m.ex) == 0 && m.ex.index == i);
        chain(d, &m);
        if (i % 1000 == 999) CHECK(store_commit_async(s, "async", 0, 0) == 0);
        if (i == 1000) {
            mk(&m, 500, 8, 8, 1, -1, "");
            CHECK(store_find_sha(s, m.sha, &idx) == 0 && idx == 500); /* in flight or committed */
        }
    }
    CHECK(store_flush(s) == 0);
    CHECK(store_count(s) == 3000 && store_staged(s) == 0);
    CHECK(memcmp(store_info(s)->digest.data, d, 32) == 0);
    CHECK(store_verify(s) == 0);
    store_close(&s);

    /* Failure in the background (file size limit), in a child process. */
    char dbfile[700];
    snprintf(dbfile, sizeof dbfile, "%s/data.mdb", p);
    FILE *f = fopen(dbfile, "rb");
    CHECK(f != NULL);
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        store_t *w = NULL;
        if (store_open(p, 0, &w) != 0) _exit(10);
        struct rlimit rl = {(rlim_t)size, (rlim_t)size};
        setrlimit(RLIMIT_FSIZE, &rl);
        for (uint64_t i = 3000; i < 6000; i++) {
            mk(&m, i, 8, 8, 1, -1, "");
            if (store_add(w, &m.ex) != 0) _exit(11);
        }
        if (store_commit_async(w, NULL, 0, 0) != 0) _exit(12); /* fails in the background */
        mk(&m, 6000, 8, 8, 1, -1, "");
        if (store_add(w, &m.ex) != 0) _exit(13);
        int rc = store_commit_async(w, NULL, 0, 0);
        if (rc != EFBIG && rc != ENOSPC) _exit(14);
        if (store_staged(w) != 0 || store_count(w) != 3000) _exit(15);
        if (store_flush(w) != rc) _exit(16); /* sticky */
        store_close(&w);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
    CHECK(store_open(p, STORE_RDONLY, &s) == 0);
    if (!s) return;
    CHECK(store_count(s) == 3000 && memcmp(store_info(s)->digest.data, d, 32) == 0);
    CHECK(store_verify(s) == 0);
    store_close(&s);
}

/* A reader's snapshot is the one at open; later readers see new commits. */
static void reader_snapshot(void) {
    const char *p = tpath("snap");
    store_t *w = NULL, *r = NULL, *r2 = NULL;
    CHECK(store_open(p, STORE_CREATE, &w) == 0);
    if (!w) return;
    mk_t m;
    mk(&m, 0, 4, 4, 1, -1, "");
    CHECK(store_add(w, &m.ex) == 0 && store_commit(w, NULL, 0, 0) == 0);
    CHECK(store_open(p, STORE_RDONLY, &r) == 0);
    mk(&m, 1, 4, 4, 1, -1, "");
    CHECK(store_add(w, &m.ex) == 0 && store_commit(w, NULL, 0, 0) == 0);
    CHECK(store_open(p, STORE_RDONLY, &r2) == 0);
    CHECK(r && store_count(r) == 1);
    CHECK(r2 && store_count(r2) == 2);
    const uint8_t *px;
    size_t npx;
    int32_t label;
    CHECK(r2 && store_get_pixels(r2, 1, &px, &npx, &label) == 0 && npx == 16);
    CHECK(store_get_pixels(w, 0, &px, &npx, &label) == EINVAL); /* writer: not zero-copy */
    store_close(&r);
    store_close(&r2);
    store_close(&w);
}

int main(void) {
    RUN(add_commit_reopen);
    RUN(bad_examples);
    RUN(find_sha);
    RUN(find_sha_bloom);
    RUN(map_growth);
    RUN(missing_path);
    RUN(verify_detects_tamper);
    RUN(full_disk_keeps_earlier);
    RUN(two_writers_refused);
    RUN(async_commit);
    RUN(reader_snapshot);
    return test_done();
}
