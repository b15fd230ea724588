/* digest.h - SHA-256 (OpenSSL's libcrypto EVP) and hex helpers.
 *
 * Used for source-file identity (dedup, opt-out), dataset digests,
 * checkpoint digests and provenance. Streaming and one-shot forms. */
#ifndef GB_DIGEST_H
#define GB_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define DIGEST_LEN 32
#define DIGEST_HEX_LEN 64

typedef struct digest_ctx digest_ctx_t;

/* Streaming SHA-256. digest_new never returns NULL. digest_final writes 32
 * bytes to out and destroys the context (sets *ctx to NULL). */
digest_ctx_t *digest_new(void);
void digest_update(digest_ctx_t *ctx, const void *data, size_t n);
void digest_final(digest_ctx_t **ctx, uint8_t out[DIGEST_LEN]);

/* One-shot SHA-256 of data[0..n). */
void digest_sha256(const void *data, size_t n, uint8_t out[DIGEST_LEN]);

/* SHA-256 of a whole file. Returns 0 or an errno. */
int digest_file(const char *path, uint8_t out[DIGEST_LEN]);

/* Lowercase hex of n bytes into hex (2n+1 bytes including the NUL). */
void digest_hex(const uint8_t *bytes, size_t n, char *hex);
/* Parse 2n hex digits into n bytes. Returns 0 or GB_EFORMAT. */
int digest_unhex(const char *hex, uint8_t *bytes, size_t n);

/* First 8 bytes of a digest as a little-endian uint64 (for seeding). */
uint64_t digest_u64(const uint8_t d[DIGEST_LEN]);

#endif
