/* prov.h - provenance of generated images: what goes into a PNG's text
 * chunks, how it is read back, and the latent-vector contract.
 *
 * Every image gambar-sample writes says it is AI-generated and how to make
 * it again. The record is a list of key/value strings stored as iTXt
 * chunks (img_encode_png), so any PNG tool can read it:
 *
 *   DigitalSourceType    the IPTC code PROV_DIGITAL_SOURCE_TYPE
 *   XML:com.adobe.xmp    an XMP packet with Iptc4xmpExt:DigitalSourceType
 *                        (same code), xmp:CreatorTool and xmp:CreateDate
 *   Software             "gambar-sample 0.1.0"
 *   gambar:*             the gambar keys (PROV_KEY_* below; the man page
 *                        gambar-sample(1) lists their meaning)
 *
 * The evaluator and the dashboard read the same record with
 * prov_read_file / prov_from_png and print it with prov_print.
 *
 * LATENT CONTRACT "gambar-z1" (part of the provenance: an image records
 * its seed and z method, and regenerating it depends on this staying put):
 *   z = prov_latent_z1(seed, Z, truncation):
 *     rng_seed(&r, seed); rng_normal_fill(&r, z, Z);
 *     if truncation > 0: for i = 0..Z-1 in order, while |z[i]| > truncation,
 *       z[i] = rng_normal(&r)   (the same stream, continued)
 *   i.e. truncation resamples out-of-range components, it never clips. */
#ifndef GB_PROV_H
#define GB_PROV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "img.h"

#define PROV_DIGITAL_SOURCE_TYPE "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
#define PROV_Z_METHOD "gambar-z1"     /* the latent contract above */
#define PROV_VERSION "1"              /* version of the gambar:* key set */
#define PROV_MAX_KEYS 64              /* keys one record can hold */
#define PROV_MIN_TRUNCATION 0.05      /* smaller truncation would loop for long */

/* Standard keys. */
#define PROV_KEY_DST "DigitalSourceType"
#define PROV_KEY_XMP "XML:com.adobe.xmp"
#define PROV_KEY_SOFTWARE "Software"

/* A provenance record: ordered key/value strings, both owned. */
typedef struct {
    int n;
    char *key[PROV_MAX_KEYS];
    char *val[PROV_MAX_KEYS];
} prov_t;

/* Empty record (no allocation). */
void prov_init(prov_t *p);
/* Free every string; p is empty afterwards. NULL-safe. */
void prov_free(prov_t *p);
/* Deep copy src into dst (dst must be empty or freed). */
void prov_copy(prov_t *dst, const prov_t *src);

/* Set key to the printf-formatted value (replacing an existing value of
 * that key, else appending). Returns 0, or GB_ETOOBIG when the record
 * already holds PROV_MAX_KEYS keys. */
int prov_set(prov_t *p, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The value of key, or NULL. Borrowed from p. */
const char *prov_get(const prov_t *p, const char *key);
/* Parse the value of key as an unsigned/signed integer or a double.
 * Return 0, GB_ENOTFOUND (absent) or GB_EFORMAT (not a number). */
int prov_get_u64(const prov_t *p, const char *key, uint64_t *out);
int prov_get_int(const prov_t *p, const char *key, long long *out);
int prov_get_double(const prov_t *p, const char *key, double *out);

/* Build the PNG text chunks for p: DigitalSourceType and the XMP packet
 * first (created from p's "gambar:created" and "Software" values), then
 * every key of p in order. *texts (malloc'd array of *ntexts entries)
 * points into p and into *xmp (malloc'd); free both with free() after
 * encoding, while p is still alive. */
void prov_to_texts(const prov_t *p, img_text_t **texts, int *ntexts, char **xmp);

/* Read the record from the text chunks of a PNG held in memory: every
 * tEXt/zTXt/iTXt chunk except the XMP packet becomes a key. Returns 0, an
 * img_read_texts error (GB_EFORMAT not a PNG, GB_ECORRUPT), or
 * GB_ENOTFOUND when the PNG has no gambar provenance (no
 * "gambar:provenance_version" key); *out is filled even then (free it). */
int prov_from_png(const void *data, size_t n, prov_t *out);
/* The same for a file; errno values for I/O. */
int prov_read_file(const char *path, prov_t *out);

/* Print p: format 0 = "key: value" lines (long values such as gambar:z
 * abbreviated), 1 = one JSON object (every value a string, full). */
void prov_print(FILE *f, const prov_t *p, int json);


/* The "gambar-z1" latent (see above) into z[0..Z). truncation <= 0 means
 * none; otherwise it must be >= PROV_MIN_TRUNCATION (caller checks). */
void prov_latent_z1(uint64_t seed, int Z, double truncation, float *z);

/* Explicit latents: n floats as 8 lowercase hex digits each (the IEEE-754
 * bits, most significant first). hex needs 8n+1 bytes. */
void prov_z_to_hex(const float *z, int n, char *hex);
/* Parse exactly n floats. Returns 0 or GB_EFORMAT (wrong length, not hex,
 * or a non-finite value). */
int prov_z_from_hex(const char *hex, int n, float *z);

/* Current UTC time as ISO 8601 "YYYY-MM-DDTHH:MM:SSZ" into buf (>= 21). */
void prov_now_iso8601(char *buf, size_t len);

#endif
