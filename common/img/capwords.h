/* capwords.h - the words of the synthetic captions, written and read back
 * by the same tables.
 *
 * tests/tools/fashion_captions (scripts/fashion-captions.sh) describes an
 * image with its class and three attribute words; gambar-eval reads a
 * caption back into (class, attribute terciles) to check a generated
 * image against it. Both use this module, so a word cannot mean one
 * thing when written and another when checked.
 *
 * Attributes (attr.h measures, one tercile each against per-class cut
 * points of the training set): brightness (dark / mid-tone / light),
 * width (narrow / medium-width / wide), fill (outlined / no word /
 * filled), three synonyms per word (capw_word). Classes: the dataset's
 * own class names and, for the ten Fashion-MNIST classes, the synonyms
 * the captions use ("boot", "pair of pants", ...).
 *
 * Reading (capw_parse): the caption is lowered and cut into tokens (runs
 * of letters, digits, '-' and '\''; anything else separates), then read
 * left to right, the longest class phrase first ("open shoe" is a sandal,
 * "open" alone means outlined). A caption naming two different classes
 * names none (cls = -1); an attribute stated twice with different
 * terciles is not stated (ter = -1).
 *
 * Thresholds: the per-class tercile cut points (capw_thresholds), written
 * into the captions file's '#' header (capw_thresholds_write) and read
 * back from it (capw_thresholds_read). */
#ifndef GB_CAPWORDS_H
#define GB_CAPWORDS_H

#include "attr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CAPW_NATTR 3 /* brightness, width, fill: the attribute index everywhere */
#define CAPW_NSYN 3  /* synonyms per word */
#define CAPW_FASHION_K 10

/* "brightness", "width", "fill" */
const char *capw_attr_name(int attr);
/* The word of attribute attr (0..2) for tercile ter (0..2), synonym syn
 * (0..2): "" when that tercile has no word (fill's middle). */
const char *capw_word(int attr, int ter, int syn);
/* The attribute's measure: brightness, width (mean row span) or fill. */
double capw_measure(const attr_t *a, int attr);
/* Fashion-MNIST class c (0..9): its dataset name ("Ankle boot") and its
 * synonym s (0..2) as the captions say it ("short boot"). */
const char *capw_fashion_class(int c);
const char *capw_fashion_syn(int c, int s);

/* ---- reading captions -------------------------------------------------- */
typedef struct capw_lex capw_lex_t;

/* A lexicon for a dataset whose classes are names[0..K) (K >= 0; a NULL
 * or empty name is skipped): each name as a phrase, plus the Fashion-MNIST
 * synonyms of the names that are Fashion-MNIST classes (case-insensitive).
 * Never NULL; free with capw_lex_free (NULL-safe). Copies what it needs. */
capw_lex_t *capw_lex_new(const char *const *names, int K);
void capw_lex_free(capw_lex_t *lx);

typedef struct {
    int cls;             /* class named (0..K-1), -1 none or several */
    int ter[CAPW_NATTR]; /* tercile stated, -1 none (or contradictory) */
    int syn[CAPW_NATTR]; /* which synonym stated it (for capw_swap) */
    size_t pos[CAPW_NATTR], len[CAPW_NATTR]; /* its bytes in the caption */
} capw_parse_t;

/* Read caption (NUL-terminated; NULL = "") into *p. Pure. */
void capw_parse(const capw_lex_t *lx, const char *caption, capw_parse_t *p);

/* caption with its attribute word of attr (as parsed into p) replaced by
 * the same synonym's word of tercile ter: "a dark, wide boot" -> "a light,
 * wide boot". Nothing else changes (not even "a"/"an"), so the two texts
 * differ in that one word. Returns 0 and out (NUL-terminated), or -1 when
 * the caption states no such attribute, tercile ter has no word, or out
 * (cap bytes) is too small. */
int capw_swap(const char *caption, const capw_parse_t *p, int attr, int ter, char *out, size_t cap);

/* ---- thresholds ---------------------------------------------------------- */
typedef struct {
    double t[CAPW_NATTR][2]; /* tercile cut points t1 <= t2 per attribute */
    uint64_t n;              /* images of the class they come from (0: none, all cut points 0) */
} capw_thr_t;

/* Per-class cut points: for each class k in 0..K-1 and attribute, the
 * 1/3 and 2/3 quantiles (attr_quantile) of capw_measure over the images
 * i with labels[i] == k (other labels ignored). th has K entries. */
void capw_thresholds(const attr_t *a, const int32_t *labels, size_t n, int K, capw_thr_t *th);

/* The tercile (0..2) of measure v of attribute attr against th. */
int capw_tercile(const capw_thr_t *th, int attr, double v);

/* The header block of a captions file: "# thresholds: ..." then one
 * '#' line per class "# NAME | b1 b2 | w1 w2 | f1 f2" (%.17g: read back
 * exactly). Returns ferror(f). */
int capw_thresholds_write(FILE *f, const char *const *names, int K, const capw_thr_t *th);

/* Read the cut points of classes names[0..K) from the '#' header of the
 * captions file at path (only the lines before the first non-'#' line
 * are read; class names compared case-insensitively). Returns 0, errno
 * (cannot open; reason in err), or GB_EFORMAT with err naming what is
 * missing (no "# thresholds:" line, a class without a line, a bad
 * number). */
int capw_thresholds_read(const char *path, const char *const *names, int K, capw_thr_t *th, char *err,
                         size_t errlen);

#endif
