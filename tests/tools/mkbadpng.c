/* mkbadpng.c - write deliberately bad PNG files for the ingest tests.
 *
 *   mkbadpng text OUT            a text file (named .png by the caller)
 *   mkbadpng truncated OUT SRC   the first half of the PNG SRC
 *   mkbadpng crc OUT SRC         SRC with its IDAT chunk's stored CRC
 *                                altered (the data itself is intact)
 *   mkbadpng huge OUT            a valid IHDR claiming 100000 x 100000
 *   mkbadpng bomb OUT            a valid 12000 x 12000 RGB PNG of zeros:
 *                                about 420 KB that decode to 412 MiB
 * Exit 0, or 1 with a message. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static int put_chunk(FILE *f, const char *type, const uint8_t *data, uint32_t n) {
    uint8_t b[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    uLong crc = crc32(0, (const Bytef *)type, 4);
    if (n) crc = crc32(crc, data, n);
    uint8_t c[4] = {(uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8), (uint8_t)crc};
    return fwrite(b, 1, 4, f) == 4 && fwrite(type, 1, 4, f) == 4 && (!n || fwrite(data, 1, n, f) == n) &&
                   fwrite(c, 1, 4, f) == 4
               ? 0
               : -1;
}

static void ihdr(uint8_t *d, uint32_t w, uint32_t h, uint8_t color) {
    uint8_t v[13] = {(uint8_t)(w >> 24), (uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w,
                     (uint8_t)(h >> 24), (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h,
                     8, color, 0, 0, 0};
    memcpy(d, v, 13);
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(sz > 0 ? (size_t)sz : 1);
    *n = b ? fread(b, 1, (size_t)sz, f) : 0;
    fclose(f);
    return b;
}

int main(int argc, char **argv) {
    static const uint8_t sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
    if (argc < 3) {
        fprintf(stderr, "usage: mkbadpng text|truncated|crc|huge|bomb OUT [SRC]\n");
        return 2;
    }
    const char *kind = argv[1], *out = argv[2];
    FILE *f = fopen(out, "wb");
    if (!f) { perror(out); return 1; }
    int rc = 0;
    if (strcmp(kind, "text") == 0) {
        fputs("This is a text file, not a PNG image.\n", f);
    } else if (strcmp(kind, "truncated") == 0 || strcmp(kind, "crc") == 0) {
        size_t n = 0;
        uint8_t *b = argc > 3 ? slurp(argv[3], &n) : NULL;
        if (!b || n < 60) { fprintf(stderr, "mkbadpng: cannot read source PNG\n"); return 1; }
        if (kind[0] == 't') {
            n /= 2;
        } else {
            size_t p = 8;
            int done = 0;
            while (p + 12 <= n && !done) {
                uint32_t len = (uint32_t)b[p] << 24 | (uint32_t)b[p + 1] << 16 | (uint32_t)b[p + 2] << 8 | b[p + 3];
                if (memcmp(b + p + 4, "IDAT", 4) == 0 && len > 4) {
                    b[p + 8 + len + 3] ^= 0x55;
                    done = 1;
                }
                p += 12 + len;
            }
            if (!done) { fprintf(stderr, "mkbadpng: no IDAT found\n"); return 1; }
        }
        rc = fwrite(b, 1, n, f) == n ? 0 : 1;
        free(b);
    } else if (strcmp(kind, "huge") == 0) {
        uint8_t h[13], idat[64];
        ihdr(h, 100000, 100000, 0);
        uLongf zn = sizeof idat;
        uint8_t row[2] = {0, 0};
        compress(idat, &zn, row, sizeof row);
        rc = fwrite(sig, 1, 8, f) != 8 || put_chunk(f, "IHDR", h, 13) || put_chunk(f, "IDAT", idat, (uint32_t)zn) ||
             put_chunk(f, "IEND", NULL, 0);
    } else if (strcmp(kind, "bomb") == 0) {
        const uint32_t w = 12000, hgt = 12000;
        uint8_t h[13];
        ihdr(h, w, hgt, 2);
        size_t rowlen = 1 + (size_t)w * 3;
        uint8_t *row = calloc(1, rowlen);
        size_t cap = 1 << 20, zlen = 0;
        uint8_t *z = malloc(cap);
        z_stream s;
        memset(&s, 0, sizeof s);
        deflateInit2(&s, 9, Z_DEFLATED, 15, 8, Z_RLE); /* fast, and zeros compress as well */
        for (uint32_t y = 0; y < hgt; y++) {
            s.next_in = row;
            s.avail_in = (uInt)rowlen;
            int flush = y + 1 == hgt ? Z_FINISH : Z_NO_FLUSH;
            do {
                if (cap - zlen < 65536) z = realloc(z, cap *= 2);
                s.next_out = z + zlen;
                s.avail_out = (uInt)(cap - zlen);
                deflate(&s, flush);
                zlen = cap - s.avail_out;
            } while (s.avail_in || (flush == Z_FINISH && s.avail_out == 0));
        }
        deflateEnd(&s);
        rc = fwrite(sig, 1, 8, f) != 8 || put_chunk(f, "IHDR", h, 13) || put_chunk(f, "IDAT", z, (uint32_t)zlen) ||
             put_chunk(f, "IEND", NULL, 0);
        free(row);
        free(z);
    } else {
        fprintf(stderr, "mkbadpng: unknown kind %s\n", kind);
        rc = 2;
    }
    if (fclose(f) != 0) rc = 1;
    return rc;
}
