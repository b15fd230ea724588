/* test_capwords.c - common/img/capwords: reading the synthetic captions'
 * words back (class, attribute terciles), swapping one attribute word, and
 * the per-class thresholds written to and read from a captions header. */
#include "capwords.h"
#include "err.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const FM[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

static capw_parse_t parse(const capw_lex_t *lx, const char *s) {
    capw_parse_t p;
    capw_parse(lx, s, &p);
    return p;
}

/* one caption: class, brightness, width, fill terciles (-1 = none) */
static int is(const capw_lex_t *lx, const char *s, int c, int b, int w, int f) {
    capw_parse_t p = parse(lx, s);
    if (p.cls == c && p.ter[0] == b && p.ter[1] == w && p.ter[2] == f) return 1;
    fprintf(stderr, "  \"%s\": cls %d b %d w %d f %d, want %d %d %d %d\n", s, p.cls, p.ter[0], p.ter[1], p.ter[2],
            c, b, w, f);
    return 0;
}

static void t_parse_phrasings(void) {
    capw_lex_t *lx = capw_lex_new(FM, 10);
    /* the six phrasings of tests/tools/fashion_captions.c */
    CHECK(is(lx, "a dark, wide ankle boot", 9, 0, 2, -1));
    CHECK(is(lx, "short boot, broad, solid and dim", 9, 0, 2, 2));
    CHECK(is(lx, "an average-width boot in a dim tone", 9, 0, 1, -1));
    CHECK(is(lx, "a hollow deep-toned short boot", 9, 0, -1, 0));
    CHECK(is(lx, "photo of a bright sweater that is average-width", 2, 2, 1, -1));
    CHECK(is(lx, "a slim, full, grey pair of pants", 1, 1, 0, 2));
    CHECK(is(lx, "a light sweater, medium-width cut", 2, 2, 1, -1));
    /* longest phrase first: "open shoe" is a sandal, "open" alone outlined */
    CHECK(is(lx, "an open dark open shoe", 5, 0, -1, 0));
    CHECK(is(lx, "a wide open shoe in a pale tone", 5, 2, 2, -1));
    /* t-shirt is one token, not "shirt"; two-word shirts and shoes */
    CHECK(is(lx, "a t-shirt", 0, -1, -1, -1));
    CHECK(is(lx, "a button-up shirt", 6, -1, -1, -1));
    CHECK(is(lx, "a running shoe", 7, -1, -1, -1));
    CHECK(is(lx, "Shirt", 6, -1, -1, -1));
    /* the dataset's own names count, case does not */
    CHECK(is(lx, "A DARK Ankle Boot", 9, 0, -1, -1));
    CHECK(is(lx, "t-shirt/top, Thin", 0, -1, 0, -1));
    /* contradictions state nothing; unknown words are ignored */
    CHECK(is(lx, "a dark light coat", 4, -1, -1, -1));
    CHECK(is(lx, "a coat and a dress", -1, -1, -1, -1));
    CHECK(is(lx, "a dark dim coat", 4, 0, -1, -1)); /* two synonyms agree */
    CHECK(is(lx, "zorblax qwop", -1, -1, -1, -1));
    CHECK(is(lx, "", -1, -1, -1, -1));
    capw_parse_t p;
    capw_parse(lx, NULL, &p);
    CHECK(p.cls == -1 && p.ter[0] == -1);
    capw_lex_free(lx);
    /* another dataset: its names, no Fashion synonyms */
    const char *const other[3] = {"cat", "Big dog", NULL};
    lx = capw_lex_new(other, 3);
    CHECK(is(lx, "a dark cat", 0, 0, -1, -1));
    CHECK(is(lx, "a wide big dog", 1, -1, 2, -1));
    CHECK(is(lx, "a dog", -1, -1, -1, -1));
    CHECK(is(lx, "a boot", -1, -1, -1, -1));
    capw_lex_free(lx);
    capw_lex_free(NULL);
}

static void t_swap(void) {
    capw_lex_t *lx = capw_lex_new(FM, 10);
    char out[128];
    const char *s = "a dark, wide ankle boot";
    capw_parse_t p = parse(lx, s);
    CHECK(capw_swap(s, &p, 0, 2, out, sizeof out) == 0 && strcmp(out, "a light, wide ankle boot") == 0);
    CHECK(capw_swap(s, &p, 1, 0, out, sizeof out) == 0 && strcmp(out, "a dark, narrow ankle boot") == 0);
    CHECK(capw_swap(s, &p, 0, 1, out, sizeof out) == 0 && strcmp(out, "a mid-tone, wide ankle boot") == 0);
    CHECK(capw_swap(s, &p, 2, 2, out, sizeof out) == -1); /* no fill word */
    CHECK(capw_swap(s, &p, 0, 2, out, 10) == -1);         /* too small */
    /* the same synonym: dim -> pale, hollow -> solid; fill's middle has no word */
    s = "a hollow dim coat";
    p = parse(lx, s);
    CHECK(capw_swap(s, &p, 0, 2, out, sizeof out) == 0 && strcmp(out, "a hollow pale coat") == 0);
    CHECK(capw_swap(s, &p, 2, 2, out, sizeof out) == 0 && strcmp(out, "a solid dim coat") == 0);
    CHECK(capw_swap(s, &p, 2, 1, out, sizeof out) == -1);
    /* the swapped caption (out is still the last success) reads back with
     * the new tercile, the rest equal */
    capw_parse_t q = parse(lx, out);
    CHECK(strcmp(out, "a solid dim coat") == 0 && q.cls == 4 && q.ter[2] == 2 && q.ter[0] == 0);
    s = "A DARK COAT";
    p = parse(lx, s);
    CHECK(capw_swap(s, &p, 0, 2, out, sizeof out) == 0 && strcmp(out, "A light COAT") == 0);
    capw_lex_free(lx);
}

static void t_words(void) {
    CHECK(strcmp(capw_word(0, 0, 0), "dark") == 0 && strcmp(capw_word(2, 1, 0), "") == 0);
    CHECK(strcmp(capw_word(5, 0, 0), "") == 0 && strcmp(capw_attr_name(1), "width") == 0);
    CHECK(strcmp(capw_fashion_class(9), "Ankle boot") == 0 && strcmp(capw_fashion_syn(9, 2), "short boot") == 0);
    attr_t a = {.brightness = 0.1, .width = 0.2, .fill = 0.3};
    CHECK(capw_measure(&a, 0) == 0.1 && capw_measure(&a, 1) == 0.2 && capw_measure(&a, 2) == 0.3);
}

static void t_thresholds(void) {
    /* class 0: brightness 0..8 (terciles 8/3, 16/3), class 1: 100 + i */
    attr_t a[20];
    int32_t lab[20];
    for (int i = 0; i < 20; i++) {
        lab[i] = i < 9 ? 0 : i < 18 ? 1 : 7; /* label 7: not a class of K = 3 */
        double v = i < 9 ? i : 100 + (i - 9);
        a[i] = (attr_t){.brightness = v / 3, .width = v, .fill = 1.0 / (1 + v)};
    }
    capw_thr_t th[3];
    capw_thresholds(a, lab, 20, 3, th);
    CHECK(th[0].n == 9 && th[1].n == 9 && th[2].n == 0);
    CHECKF(fabs(th[0].t[1][0] - 8.0 / 3) < 1e-12 && fabs(th[0].t[1][1] - 16.0 / 3) < 1e-12, "%g %g",
           th[0].t[1][0], th[0].t[1][1]);
    CHECK(fabs(th[1].t[1][0] - (100 + 8.0 / 3)) < 1e-12);
    CHECK(th[2].t[0][0] == 0 && th[2].t[2][1] == 0);
    int cnt[3] = {0};
    for (int i = 0; i < 9; i++) cnt[capw_tercile(&th[0], 1, a[i].width)]++;
    CHECKF(cnt[0] == 3 && cnt[1] == 3 && cnt[2] == 3, "%d/%d/%d", cnt[0], cnt[1], cnt[2]);

    /* written into a captions header and read back exactly */
    char path[] = "/tmp/test_capwords-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    const char *const names[3] = {"Ankle boot", "T-shirt/top", "x"};
    fprintf(f, "# gambar synthetic captions\n");
    CHECK(capw_thresholds_write(f, names, 3, th) == 0);
    fprintf(f, "a dark boot|a boot\n# a later comment | 1 2 | 3 4 | 5 6\n");
    fclose(f);
    capw_thr_t back[3];
    char err[512];
    const char *const upper[3] = {"ANKLE BOOT", "t-shirt/top", "X"};
    CHECKF(capw_thresholds_read(path, upper, 3, back, err, sizeof err) == 0, "%s", err);
    for (int k = 0; k < 3; k++)
        for (int at = 0; at < CAPW_NATTR; at++)
            CHECKF(back[k].t[at][0] == th[k].t[at][0] && back[k].t[at][1] == th[k].t[at][1], "class %d attr %d",
                   k, at);
    /* a class the file does not describe: named */
    const char *const more[4] = {"Ankle boot", "T-shirt/top", "x", "Sandal"};
    capw_thr_t m4[4];
    CHECK(capw_thresholds_read(path, more, 4, m4, err, sizeof err) == GB_EFORMAT);
    CHECKF(strstr(err, "no threshold line for class \"Sandal\"") != NULL, "%s", err);
    /* no header at all */
    f = fopen(path, "w");
    fprintf(f, "# just a comment\na boot\n");
    fclose(f);
    CHECK(capw_thresholds_read(path, names, 3, back, err, sizeof err) == GB_EFORMAT);
    CHECKF(strstr(err, "no \"# thresholds:\" header") != NULL, "%s", err);
    /* a bad number */
    f = fopen(path, "w");
    fprintf(f, "# thresholds: class | brightness t1 t2 | width t1 t2 | fill t1 t2\n# Ankle boot | 0.5 x | 1 2 | 3 4\n");
    fclose(f);
    CHECK(capw_thresholds_read(path, names, 1, back, err, sizeof err) == GB_EFORMAT);
    CHECKF(strstr(err, "line 2") && strstr(err, "brightness"), "%s", err);
    unlink(path);
    CHECK(capw_thresholds_read(path, names, 1, back, err, sizeof err) != 0 && strstr(err, "cannot open"));
}

int main(void) {
    RUN(t_parse_phrasings);
    RUN(t_swap);
    RUN(t_words);
    RUN(t_thresholds);
    return test_done();
}
