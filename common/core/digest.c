/* digest.c - SHA-256 through OpenSSL's EVP interface (see digest.h). */
#include "digest.h"

#include "base.h"
#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

struct digest_ctx { EVP_MD_CTX *md; };

digest_ctx_t *digest_new(void) {
    digest_ctx_t *c = xmalloc(sizeof *c);
    c->md = EVP_MD_CTX_new();
    ASSERT_ALLOC(c->md);
    ASSERT_ALLOC(EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) == 1);
    return c;
}

void digest_update(digest_ctx_t *ctx, const void *data, size_t n) {
    if (n) ASSERT_ALLOC(EVP_DigestUpdate(ctx->md, data, n) == 1);
}

void digest_final(digest_ctx_t **ctx, uint8_t out[DIGEST_LEN]) {
    unsigned int len = 0;
    ASSERT_ALLOC(EVP_DigestFinal_ex((*ctx)->md, out, &len) == 1 && len == DIGEST_LEN);
    EVP_MD_CTX_free((*ctx)->md);
    free(*ctx);
    *ctx = NULL;
}

void digest_sha256(const void *data, size_t n, uint8_t out[DIGEST_LEN]) {
    unsigned int len = 0;
    ASSERT_ALLOC(EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) == 1);
}

int digest_file(const char *path, uint8_t out[DIGEST_LEN]) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    digest_ctx_t *c = digest_new();
    uint8_t buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            digest_final(&c, out);
            return e;
        }
        if (n == 0) break;
        digest_update(c, buf, (size_t)n);
    }
    close(fd);
    digest_final(&c, out);
    return 0;
}

void digest_hex(const uint8_t *bytes, size_t n, char *hex) {
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = d[bytes[i] >> 4];
        hex[2 * i + 1] = d[bytes[i] & 15];
    }
    hex[2 * n] = 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int digest_unhex(const char *hex, uint8_t *bytes, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int a = hexval(hex[2 * i]);
        if (a < 0) return GB_EFORMAT;
        int b = hexval(hex[2 * i + 1]);
        if (b < 0) return GB_EFORMAT;
        bytes[i] = (uint8_t)(a << 4 | b);
    }
    return 0;
}

uint64_t digest_u64(const uint8_t d[DIGEST_LEN]) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | d[i];
    return v;
}
