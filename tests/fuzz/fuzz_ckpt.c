/* fuzz_ckpt.c - libFuzzer harness for ckpt_load (checkpoint files).
 *
 * The first input byte picks the mode; the rest is the data:
 *   even: the data is the whole file, as found on disk;
 *   odd:  the data is a payload, wrapped in a correct version-1 header
 *         (length and SHA-256 filled in) so that mutations reach the
 *         protobuf decoder and the content checks instead of stopping at
 *         the checksum.
 * The bytes are written to one temporary file (under TMPDIR) and loaded.
 * A file that loads is then used the way the trainer and the sampler use
 * one: every tensor is found by name and copied out with its own shape,
 * every random generator and note is looked up, and the digest reported
 * by ckpt_load must equal the whole-file digest. Invariants are checked
 * with ASSERT. tests/test_ckpt.c compiles this file too (renaming the
 * entry point) to replay the seeds and a few thousand mutations in the
 * normal test run. */
#include "base.h"
#include "ckpt.h"
#include "digest.h"
#include "err.h"
#include "log.h"

#include <fcntl.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fc_path[512];

static void fc_write(const uint8_t *p, size_t n, const uint8_t *prefix, size_t np) {
    if (!fc_path[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(fc_path, sizeof fc_path, "%s/fuzz_ckpt-XXXXXX", t && *t ? t : "/tmp");
        int fd = mkstemp(fc_path);
        ASSERT(fd >= 0);
        close(fd);
    }
    FILE *f = fopen(fc_path, "wb");
    ASSERT(f);
    if (np) ASSERT(fwrite(prefix, 1, np, f) == np);
    if (n) ASSERT(fwrite(p, 1, n, f) == n);
    ASSERT(fclose(f) == 0);
}

static volatile uint64_t fc_sink;

/* Use a loaded checkpoint as a consumer would. */
static void fc_use(const Gambar__Checkpoint *ck) {
    uint64_t h = 0;
    ASSERT(ck->model && ck->state && ck->state->adam_g && ck->state->adam_d);
    h += strlen(ck->model->family) + strlen(ck->model->loss) + strlen(ck->command_line);
    for (size_t i = 0; i < ck->model->n_class_names; i++) h += strlen(ck->model->class_names[i]);
    for (size_t i = 0; i < ck->n_tensors; i++) {
        const Gambar__Tensor *t = ck->tensors[i];
        ASSERT(ckpt_tensor(ck, t->name) == t); /* names are unique */
        int64_t n = ckpt_tensor_numel(t);
        ASSERT(n >= 0 && (uint64_t)n * 4 == t->data.len);
        ASSERT(t->n_shape <= CKPT_MAX_DIMS);
        float *buf = xmalloc((size_t)n * sizeof(float) + 1);
        ASSERT(ckpt_get_tensor(ck, t->name, t->shape, (int)t->n_shape, buf) == 0);
        for (int64_t k = 0; k < n; k++) h += (uint64_t)(buf[k] != buf[k]);
        free(buf);
    }
    uint64_t s[4];
    for (size_t i = 0; i < ck->state->n_rngs; i++) {
        ASSERT(ckpt_get_rng(ck, ck->state->rngs[i]->name, s) == 0);
        h += s[0] ^ s[3];
    }
    for (size_t i = 0; i < ck->n_notes; i++) {
        const char *v = ckpt_note(ck, ck->notes[i]->key);
        ASSERT(v != NULL);
        h += strlen(v);
    }
    fc_sink = h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    log_level_t prev = log_get_level();
    log_set_level(LOG_QUIET);
    bool wrap = data[0] & 1;
    data++;
    size--;
    if (wrap) {
        uint8_t h[64] = "GAMBARCK";
        h[8] = 1;
        h[12] = 64;
        for (int i = 0; i < 8; i++) h[16 + i] = (uint8_t)((uint64_t)size >> (8 * i));
        digest_sha256(data, size, h + 24);
        fc_write(data, size, h, sizeof h);
    } else {
        fc_write(data, size, NULL, 0);
    }
    Gambar__Checkpoint *ck = NULL;
    uint8_t d[32], df[32];
    int rc = ckpt_load(fc_path, &ck, d);
    if (rc == 0) {
        ASSERT(ck != NULL);
        ASSERT(ckpt_file_digest(fc_path, df) == 0 && memcmp(d, df, 32) == 0);
        fc_use(ck);
        ckpt_free(&ck);
        ASSERT(ck == NULL);
    } else {
        ASSERT(ck == NULL);
        ASSERT(rc == GB_EFORMAT || rc == GB_ECORRUPT || rc == GB_EVERSION || rc == GB_ETOOBIG);
        if (wrap) ASSERT(rc == GB_EFORMAT); /* header and checksum are right */
    }
    log_set_level(prev);
    return 0;
}
