/* ckpt_tool.c - test and benchmark helper for the checkpoint format.
 *
 *   ckpt_tool write DIR STEP NFLOATS
 *       save a deterministic checkpoint with every field set and one
 *       extra tensor of NFLOATS floats; prints "PATH DIGEST_HEX".
 *   ckpt_tool dump FILE
 *       verify FILE with ckpt_load and print every field, one per line,
 *       in a canonical text form (tests/tools/ckpt_read.py prints the same
 *       form from its own reading of the documented file format, so the
 *       two outputs are diffed to prove the format is readable without
 *       our code).
 *   ckpt_tool poison FILE OUT_DIR TENSOR INDEX [nan|inf]
 *       load FILE, set float INDEX of TENSOR to NaN (or +Inf) and save it
 *       into OUT_DIR under the same step with ckpt_save: a checkpoint
 *       whose checksum is valid but whose weights are not finite (for the
 *       loaders' finiteness check); prints the new path.
 *   ckpt_tool drop-note FILE OUT_DIR KEY
 *       load FILE, rename its note KEY to "x" (as if it had not been
 *       written: a checkpoint from before the note) and save it into
 *       OUT_DIR under the same step; prints the new path.
 *   ckpt_tool bench DIR MB
 *       time ckpt_save and ckpt_load of an MB-megabyte checkpoint (best of
 *       3); prints "bench: NAME VALUE UNIT" lines.
 *   ckpt_tool bench-model DIR [WIDTH]
 *       time the save of the default job's model (dcgan28, width 32,
 *       batch 64, conditional; every tensor touched) as the trainer saves
 *       it (modelck_store + ckpt_save, best of 3) and how much the save
 *       grows the peak RSS: bench: ckpt_save_ms, ckpt_save_rss_growth_mib.
 * Exit: 0 ok, 2 usage, 3 bad file, 4 I/O error. */
#include "base.h"
#include "ckpt.h"
#include "digest.h"
#include "err.h"
#include "log.h"
#include "model.h"
#include "modelck.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>

static _Noreturn void usage(void) {
    fprintf(stderr, "usage: ckpt_tool write DIR STEP NFLOATS | dump FILE | poison FILE OUT_DIR TENSOR INDEX "
                    "[nan|inf] | bench DIR MB | bench-model DIR [WIDTH]\n");
    exit(GB_EXIT_USAGE);
}

static ckpt_builder_t *build(uint64_t step, size_t nfloats) {
    ckpt_builder_t *b = ckpt_builder_new();
    Gambar__Checkpoint *ck = ckpt_builder_msg(b);
    Gambar__ModelDesc *m = ck->model;
    m->family = ckpt_builder_strdup(b, "dcgan32");
    m->height = 32;
    m->width = 32;
    m->channels = 3;
    m->g_mult = 48;
    m->d_mult = 40;
    m->z_dim = 128;
    m->conditional = true;
    m->num_classes = 2;
    ckpt_add_class_name(b, "cat");
    ckpt_add_class_name(b, "dog, big");
    m->embed_dim = 16;
    m->loss = ckpt_builder_strdup(b, "bce");
    Gambar__TrainState *s = ck->state;
    s->step = step;
    s->epoch = 3;
    s->batches_seen = step;
    s->images_seen = step * 64;
    s->adam_g->t = step;
    s->adam_g->lr = 2e-4f;
    s->adam_g->beta1 = 0.5f;
    s->adam_g->beta2 = 0.999f;
    s->adam_g->eps = 1e-8f;
    s->adam_d->t = step;
    s->adam_d->lr = 3e-4f;
    s->adam_d->beta1 = 0.5f;
    s->adam_d->beta2 = 0.99f;
    s->adam_d->eps = 1e-8f;
    s->ema_decay = 0.999f;
    s->seed = 7;
    uint64_t w[4] = {0x0123456789abcdefull, 1, UINT64_MAX, 0};
    ckpt_add_rng(b, "train", w);
    s->next_batch_seq = step + 1;
    s->wall_time_trained = 12.75;
    s->threads = 2;
    uint8_t dd[32];
    digest_sha256("dataset", 7, dd);
    ck->dataset_digest = ckpt_builder_bytes(b, dd, 32);
    ck->command_line = ckpt_builder_strdup(b, "ckpt_tool write");
    ck->software_version = ckpt_builder_strdup(b, "gambar " GAMBAR_VERSION);
    ck->created_unix = -5; /* negative on purpose: int64 varint coding */
    ckpt_set_note(b, "run", "format-test");
    ckpt_set_note(b, "empty", "");
    float small[6] = {0.5f, -1.25f, 3.0f, 1e-20f, -0.0f, 65504.0f};
    int64_t s23[2] = {2, 3};
    ckpt_add_tensor(b, "G.net_0.weight", s23, 2, small);
    ckpt_add_tensor(b, "D.scalar", NULL, 0, small);
    float *big = xmalloc((nfloats ? nfloats : 1) * sizeof *big);
    for (size_t i = 0; i < nfloats; i++) big[i] = (float)(i % 1000) * 0.001f - 0.5f;
    int64_t sb[1] = {(int64_t)nfloats};
    ckpt_add_tensor(b, "OPT.G.m.net_0.weight", sb, 1, big);
    free(big);
    return b;
}

static void hex(const uint8_t *p, size_t n, char *out) {
    digest_hex(p, n, out);
}

static int dump(const char *path) {
    Gambar__Checkpoint *ck = NULL;
    uint8_t fd[32];
    int rc = ckpt_load(path, &ck, fd);
    if (rc != 0) return rc;
    FILE *f = fopen(path, "rb");
    uint8_t h[64];
    if (!f || fread(h, 1, 64, f) != 64) {
        if (f) fclose(f);
        ckpt_free(&ck);
        return EIO;
    }
    fclose(f);
    char x[2 * 64 + 1];
    uint32_t ver = (uint32_t)h[8] | (uint32_t)h[9] << 8 | (uint32_t)h[10] << 16 | (uint32_t)h[11] << 24;
    uint32_t hs = (uint32_t)h[12] | (uint32_t)h[13] << 8 | (uint32_t)h[14] << 16 | (uint32_t)h[15] << 24;
    uint64_t pl = 0;
    for (int i = 0; i < 8; i++) pl |= (uint64_t)h[16 + i] << (8 * i);
    printf("version %" PRIu32 "\nheader_size %" PRIu32 "\npayload_len %" PRIu64 "\n", ver, hs, pl);
    hex(h + 24, 32, x);
    printf("payload_sha256 %s\n", x);
    hex(fd, 32, x);
    printf("file_sha256 %s\n", x);
    const Gambar__ModelDesc *m = ck->model;
    printf("model.family %s\nmodel.height %" PRIu32 "\nmodel.width %" PRIu32 "\n", m->family,
           m->height, m->width);
    printf("model.channels %" PRIu32 "\nmodel.g_mult %" PRIu32 "\nmodel.d_mult %" PRIu32 "\n",
           m->channels, m->g_mult, m->d_mult);
    printf("model.z_dim %" PRIu32 "\nmodel.conditional %d\nmodel.num_classes %" PRIu32 "\n",
           m->z_dim, m->conditional ? 1 : 0, m->num_classes);
    for (size_t i = 0; i < m->n_class_names; i++) printf("model.class_name %s\n", m->class_names[i]);
    printf("model.embed_dim %" PRIu32 "\nmodel.loss %s\n", m->embed_dim, m->loss);
    if (m->text_dim) printf("model.text_dim %" PRIu32 "\n", m->text_dim);
    if (m->aux_classes) printf("model.aux_classes %" PRIu32 "\n", m->aux_classes);
    const Gambar__TrainState *s = ck->state;
    printf("state.step %" PRIu64 "\nstate.epoch %" PRIu32 "\nstate.batches_seen %" PRIu64 "\n",
           s->step, s->epoch, s->batches_seen);
    printf("state.images_seen %" PRIu64 "\n", s->images_seen);
    const Gambar__AdamState *ad[2] = {s->adam_g, s->adam_d};
    for (int i = 0; i < 2; i++)
        printf("state.adam_%c %" PRIu64 " %.9g %.9g %.9g %.9g\n", i ? 'd' : 'g', ad[i]->t,
               (double)ad[i]->lr, (double)ad[i]->beta1, (double)ad[i]->beta2, (double)ad[i]->eps);
    printf("state.ema_decay %.9g\nstate.seed %" PRIu64 "\n", (double)s->ema_decay, s->seed);
    for (size_t i = 0; i < s->n_rngs; i++)
        printf("state.rng %s %016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %016" PRIx64 "\n",
               s->rngs[i]->name, s->rngs[i]->s[0], s->rngs[i]->s[1], s->rngs[i]->s[2],
               s->rngs[i]->s[3]);
    printf("state.next_batch_seq %" PRIu64 "\nstate.wall_time_trained %.17g\n", s->next_batch_seq,
           s->wall_time_trained);
    printf("state.threads %" PRIu32 "\n", s->threads);
    for (size_t i = 0; i < ck->n_tensors; i++) {
        const Gambar__Tensor *t = ck->tensors[i];
        printf("tensor %s shape", t->name);
        for (size_t k = 0; k < t->n_shape; k++) printf("%s%" PRId64, k ? "x" : " ", t->shape[k]);
        if (!t->n_shape) printf(" scalar");
        uint8_t d[32];
        digest_sha256(t->data.data, t->data.len, d);
        hex(d, 32, x);
        printf(" bytes %zu sha256 %s\n", t->data.len, x);
    }
    hex(ck->dataset_digest.data, ck->dataset_digest.len, x);
    printf("dataset_digest %s\n", ck->dataset_digest.len ? x : "-");
    hex(ck->parent_digest.data, ck->parent_digest.len, x);
    printf("parent_digest %s\n", ck->parent_digest.len ? x : "-");
    printf("command_line %s\nsoftware_version %s\ncreated_unix %" PRId64 "\n", ck->command_line,
           ck->software_version, ck->created_unix);
    for (size_t i = 0; i < ck->n_notes; i++)
        printf("note %s=%s\n", ck->notes[i]->key, ck->notes[i]->value);
    ckpt_free(&ck);
    return 0;
}

static int bench(const char *dir, double mb) {
    size_t nfloats = (size_t)(mb * 1024 * 1024 / 4);
    ckpt_builder_t *b = build(1, nfloats);
    double best_save = 1e9, best_load = 1e9;
    char path[4096];
    int rc = 0;
    for (int i = 0; i < 3 && !rc; i++) {
        double t0 = gb_now();
        rc = ckpt_save(dir, ckpt_builder_msg(b), 1, path, sizeof path, NULL);
        double t1 = gb_now();
        Gambar__Checkpoint *ck = NULL;
        if (!rc) rc = ckpt_load(path, &ck, NULL);
        double t2 = gb_now();
        ckpt_free(&ck);
        best_save = GB_MIN(best_save, t1 - t0);
        best_load = GB_MIN(best_load, t2 - t1);
    }
    ckpt_builder_destroy(&b);
    if (rc) return rc;
    printf("bench: ckpt_save_%.0fMB %.3f s\n", mb, best_save);
    printf("bench: ckpt_load_%.0fMB %.3f s\n", mb, best_load);
    printf("bench: ckpt_save_throughput %.0f MB/s\n", mb / best_save);
    printf("bench: ckpt_load_throughput %.0f MB/s\n", mb / best_load);
    return 0;
}

/* VmHWM of this process in KiB, or -1. */
static long vm_hwm_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kib = atol(line + 6);
    if (f) fclose(f);
    return kib;
}

static int bench_model(const char *dir, int width) {
    model_desc_t d;
    model_desc_default(&d, MODEL_DCGAN28);
    d.g_mult = d.d_mult = width;
    d.conditional = 1;
    d.num_classes = 10;
    d.embed_dim = 10;
    model_t *m = model_new(&d, 64, 1);
    if (!m) return GB_EFORMAT;
    for (int i = 0; i < model_tensor_count(m); i++) { /* resident, as in training */
        const model_tensor_t *t = model_tensor(m, i);
        for (size_t k = 0; k < t->n; k++) t->data[k] = t->data[k] * 1.0f + 0.0f;
    }
    long before = vm_hwm_kib();
    double best = 1e9;
    int rc = 0;
    for (int i = 0; i < 3 && !rc; i++) {
        double t0 = gb_now();
        ckpt_builder_t *b = ckpt_builder_new();
        modelck_store(m, b);
        ckpt_builder_msg(b)->state->step = (uint64_t)i + 1;
        rc = ckpt_save(dir, ckpt_builder_msg(b), 1, NULL, 0, NULL);
        ckpt_builder_destroy(&b);
        best = GB_MIN(best, gb_now() - t0);
    }
    long after = vm_hwm_kib();
    model_free(m);
    if (rc) return rc;
    printf("bench: ckpt_save_ms %.1f ms\n", best * 1e3);
    printf("bench: ckpt_save_rss_growth_mib %.1f MiB\n", (after - before) / 1024.0);
    return 0;
}

static int poison(const char *in, const char *dir, const char *name, size_t idx, const char *what) {
    Gambar__Checkpoint *ck = NULL;
    int rc = ckpt_load(in, &ck, NULL);
    if (rc) return rc;
    const Gambar__Tensor *t = ckpt_tensor(ck, name);
    if (!t || idx >= t->data.len / sizeof(float)) {
        fprintf(stderr, "ckpt_tool: %s: no tensor %s with an element %zu\n", in, name, idx);
        ckpt_free(&ck);
        return GB_ENOTFOUND;
    }
    float v = strcmp(what, "inf") == 0 ? INFINITY : NAN;
    memcpy(t->data.data + idx * sizeof v, &v, sizeof v);
    char path[4096];
    rc = ckpt_save(dir, ck, 0, path, sizeof path, NULL);
    if (!rc) printf("%s\n", path);
    ckpt_free(&ck);
    return rc;
}

static int drop_note(const char *in, const char *dir, const char *key) {
    Gambar__Checkpoint *ck = NULL;
    int rc = ckpt_load(in, &ck, NULL);
    if (rc) return rc;
    size_t i = 0;
    while (i < ck->n_notes && strcmp(ck->notes[i]->key, key)) i++;
    if (i == ck->n_notes) {
        fprintf(stderr, "ckpt_tool: %s: no note %s\n", in, key);
        ckpt_free(&ck);
        return GB_ENOTFOUND;
    }
    strcpy(ck->notes[i]->key, "x"); /* in place: no longer than any key */
    char path[4096];
    rc = ckpt_save(dir, ck, 0, path, sizeof path, NULL);
    if (!rc) printf("%s\n", path);
    ckpt_free(&ck);
    return rc;
}

int main(int argc, char **argv) {
    log_init("ckpt_tool");
    if (argc < 3) usage();
    int rc;
    if (!strcmp(argv[1], "write") && argc == 5) {
        ckpt_builder_t *b = build(strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10));
        char path[4096];
        uint8_t d[32];
        rc = ckpt_save(argv[2], ckpt_builder_msg(b), 0, path, sizeof path, d);
        ckpt_builder_destroy(&b);
        if (!rc) {
            char x[65];
            digest_hex(d, 32, x);
            printf("%s %s\n", path, x);
        }
    } else if (!strcmp(argv[1], "dump") && argc == 3) {
        rc = dump(argv[2]);
    } else if (!strcmp(argv[1], "poison") && (argc == 6 || argc == 7)) {
        rc = poison(argv[2], argv[3], argv[4], strtoull(argv[5], NULL, 10), argc == 7 ? argv[6] : "nan");
    } else if (!strcmp(argv[1], "drop-note") && argc == 5) {
        rc = drop_note(argv[2], argv[3], argv[4]);
    } else if (!strcmp(argv[1], "bench-model") && (argc == 3 || argc == 4)) {
        rc = bench_model(argv[2], argc == 4 ? atoi(argv[3]) : 32);
    } else if (!strcmp(argv[1], "bench") && argc == 4) {
        rc = bench(argv[2], atof(argv[3]));
    } else {
        usage();
    }
    if (rc) fprintf(stderr, "ckpt_tool: %s\n", err_str(rc));
    return rc ? err_exit_code(rc) : 0;
}
