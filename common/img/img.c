/* img.c - PNG decode/encode through libpng, and the cover-and-crop resize.
 *
 * Decoding faces files from outside, so every function that lets libpng
 * near input first closes the limits libpng leaves open (see img.h), and
 * the pixel buffer is budgeted against img_limits_t.max_bytes before it is
 * allocated. libpng reports errors by calling our error function, which
 * records the message and longjmps back. Each setjmp lives in a small
 * static function (*_session) that keeps everything it allocates in a
 * struct reached through a pointer and, when the longjmp lands, returns at
 * once without reading any local: so no local needs to be volatile (none
 * is read after a longjmp), and the caller frees whatever the struct holds. The reason
 * strings are libpng's own messages ("IDAT: CRC error") or ours.
 *
 * libpng only expands and scales (palette -> RGB, 1/2/4 -> 8 bits, tRNS ->
 * alpha, 16 -> 8 bits rounded); compositing over black and the channel
 * conversion are done here on 8-bit values so that the results are exact
 * integer formulas (documented in img.h) rather than libpng's gamma-aware
 * approximations.
 *
 * Encoding targets many small images per second (the sampler writes ~8000
 * 28x28 PNGs/s): no filtering for small images, a fast zlib level by
 * default, output into one growing memory buffer. */
#include "img.h"

#include "afile.h"
#include "base.h"
#include "err.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define IMG_CHUNK_CACHE_MAX 128               /* ancillary chunks libpng keeps */
#define IMG_CHUNK_MALLOC_MAX ((size_t)8 << 20) /* bytes: largest non-IDAT chunk */
#define IMG_SMALL_IMAGE ((size_t)64 << 10)     /* bytes: encode unfiltered below this */
#define IMG_DEFAULT_LEVEL 3                    /* zlib level for compression -1 */

void img_limits_default(img_limits_t *lim) {
    lim->max_width = 16384;
    lim->max_height = 16384;
    lim->max_bytes = (size_t)256 << 20;
}

void img_free(img_t *im) {
    if (!im) return;
    free(im->px);
    memset(im, 0, sizeof *im);
}

/* ---- libpng glue shared by reading and writing ---------------------- */

/* Everything one libpng session needs, reached from the callbacks through
 * png_get_error_ptr / png_get_io_ptr. */
typedef struct {
    jmp_buf jb;
    const uint8_t *data; /* input (reading) */
    size_t n, pos;
    int truncated;       /* the read function ran out of input */
    char err[160];       /* libpng's error message */
    char warn[160];      /* libpng's first warning */
    uint8_t *buf;        /* output (writing); malloc'd */
    size_t len, cap;
} png_io_t;

static void on_png_error(png_structp png, png_const_charp msg) {
    png_io_t *io = png_get_error_ptr(png);
    snprintf(io->err, sizeof io->err, "%s", msg ? msg : "unknown libpng error");
    longjmp(io->jb, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg) {
    png_io_t *io = png_get_error_ptr(png);
    if (!io->warn[0]) snprintf(io->warn, sizeof io->warn, "%s", msg ? msg : "");
    log_debug("libpng: %s", msg ? msg : "");
}

static void on_png_read(png_structp png, png_bytep dst, size_t len) {
    png_io_t *io = png_get_io_ptr(png);
    if (len > io->n - io->pos) {
        io->truncated = 1;
        png_error(png, "truncated: the data ends inside the PNG");
    }
    memcpy(dst, io->data + io->pos, len);
    io->pos += len;
}

static void on_png_write(png_structp png, png_bytep src, size_t len) {
    png_io_t *io = png_get_io_ptr(png);
    if (len > io->cap - io->len) {
        size_t cap = io->cap ? io->cap : 4096;
        while (cap - io->len < len) cap *= 2;
        io->buf = xrealloc(io->buf, cap);
        io->cap = cap;
    }
    memcpy(io->buf + io->len, src, len);
    io->len += len;
}

static void on_png_flush(png_structp png) { UNUSED(png); }

static int contains(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

/* Map a failed libpng session to a return code and a reason. */
static int png_failure(const png_io_t *io, char *reason, size_t reason_len) {
    const char *e = io->err;
    int limit_warned = contains(io->warn, "exceeds user limit") || contains(io->warn, "too large");
    int rc = GB_ECORRUPT;
    if (io->truncated) rc = GB_ECORRUPT;
    else if (contains(e, "too large") || contains(e, "exceeds") || contains(e, "memory") ||
             (contains(e, "IHDR") && limit_warned))
        rc = GB_ETOOBIG;
    if (reason && reason_len) {
        if (contains(e, "Invalid IHDR") && io->warn[0])
            snprintf(reason, reason_len, "%s: %s", e, io->warn);
        else
            snprintf(reason, reason_len, "%s", e);
    }
    return rc;
}

/* Apply the limits of img.h to a fresh read struct. */
static void set_read_limits(png_structp png, const img_limits_t *lim) {
    png_set_user_limits(png, lim->max_width, lim->max_height);
    png_set_chunk_cache_max(png, IMG_CHUNK_CACHE_MAX);
    png_set_chunk_malloc_max(png, IMG_CHUNK_MALLOC_MAX);
    /* A bad CRC in any chunk, ancillary too, makes the file corrupt. */
    png_set_crc_action(png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
    /* Benign errors (a text over the chunk cache, a zTXt that inflates
     * past the chunk limit) drop that chunk with a warning. */
    png_set_benign_errors(png, 1);
}

static void resolve_limits(const img_limits_t *lim, img_limits_t *out) {
    img_limits_default(out);
    if (!lim) return;
    if (lim->max_width) out->max_width = lim->max_width;
    if (lim->max_height) out->max_height = lim->max_height;
    if (lim->max_bytes) out->max_bytes = lim->max_bytes;
}

/* Check the 8-byte signature: 0 when it matches, else the error code. */
static int check_signature(const void *data, size_t n, char *reason, size_t reason_len) {
    static const uint8_t sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
    if (n >= 8 && memcmp(data, sig, 8) == 0) return 0;
    if (n > 0 && n < 8 && memcmp(data, sig, n) == 0) {
        if (reason && reason_len) snprintf(reason, reason_len, "truncated: %zu bytes of PNG signature", n);
        return GB_ECORRUPT;
    }
    if (reason && reason_len)
        snprintf(reason, reason_len, "%s", n ? "not a PNG file (bad signature)" : "empty input");
    return GB_EFORMAT;
}

/* ---- decoding ------------------------------------------------------- */

static uint32_t get_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}


typedef struct {
    png_io_t io;
    png_structp png;
    png_infop info;
    img_limits_t lim;
    int want;           /* 0, 1 or 3 */
    uint8_t *work;      /* libpng's output rows (malloc'd) */
    uint8_t **rows;     /* row pointers into work (interlaced only) */
    img_t out;          /* result being built */
    char budget[160];   /* why the budget refused the image */
} png_dec_t;

/* Convert one row of w pixels with ch 8-bit channels (gray, gray+alpha,
 * RGB, RGBA) to oc channels: alpha composited over black, then
 * gray->RGB copy or RGB->gray BT.601 luma. */
static void convert_row(const uint8_t *src, uint32_t w, int ch, uint8_t *dst, int oc) {
    for (uint32_t x = 0; x < w; x++, src += ch, dst += oc) {
        unsigned r, g, b;
        if (ch <= 2) {
            r = g = b = src[0];
            if (ch == 2) r = g = b = (src[0] * (unsigned)src[1] + 127) / 255;
        } else {
            r = src[0], g = src[1], b = src[2];
            if (ch == 4) {
                unsigned a = src[3];
                r = (r * a + 127) / 255;
                g = (g * a + 127) / 255;
                b = (b * a + 127) / 255;
            }
        }
        if (oc == 1) {
            dst[0] = (uint8_t)(ch <= 2 ? r : (299 * r + 587 * g + 114 * b + 500) / 1000);
        } else {
            dst[0] = (uint8_t)r, dst[1] = (uint8_t)g, dst[2] = (uint8_t)b;
        }
    }
}

/* The libpng part of img_decode_png. Returns 0, 1 (libpng error: see
 * d->io) or 2 (over the budget: see d->budget). Whatever must survive a
 * longjmp is in *d; the locals are dead once it lands. */
static int decode_session(png_dec_t *d) {
    if (setjmp(d->io.jb)) return 1;
    png_structp png = d->png;
    png_infop info = d->info;
    png_set_read_fn(png, &d->io, on_png_read);
    set_read_limits(png, &d->lim);
    /* Pixels only: ancillary chunks (text, colour profiles, ...) are
     * skipped unread apart from their CRC; PLTE and tRNS are still used. */
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    png_read_info(png, info);

    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    int interlaced = png_get_interlace_type(png, info) != PNG_INTERLACE_NONE;
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (depth == 16) png_set_scale_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    size_t rowbytes = png_get_rowbytes(png, info);
    int ch = png_get_channels(png, info);
    int oc = d->want ? d->want : (ch <= 2 ? 1 : 3);
    /* Budget: the result, plus libpng's rows (all of them when
     * interlaced, since Adam7 passes revisit every row). Sizes are
     * computed in 64 bits: w, h < 2^31 and rowbytes < 2^34, so nothing
     * overflows before the comparison. */
    uint64_t out_bytes = (uint64_t)w * h * (uint64_t)oc;
    uint64_t work_bytes = interlaced ? (uint64_t)rowbytes * h + (uint64_t)h * sizeof(uint8_t *) : rowbytes;
    uint64_t total = out_bytes + work_bytes;
    if (total > d->lim.max_bytes || total > SIZE_MAX / 2) {
        snprintf(d->budget, sizeof d->budget,
                 "image of %u x %u pixels needs %llu bytes to decode, over the budget of %zu",
                 (unsigned)w, (unsigned)h, (unsigned long long)total, d->lim.max_bytes);
        return 2;
    }
    d->out.w = w, d->out.h = h, d->out.c = (uint32_t)oc;
    d->out.px = xmalloc((size_t)out_bytes);
    d->work = xmalloc(interlaced ? rowbytes * h : rowbytes);
    if (interlaced) {
        d->rows = xmalloc(h * sizeof *d->rows);
        for (png_uint_32 y = 0; y < h; y++) d->rows[y] = d->work + y * rowbytes;
        png_read_image(png, d->rows);
        for (png_uint_32 y = 0; y < h; y++)
            convert_row(d->rows[y], w, ch, d->out.px + (size_t)y * w * oc, oc);
    } else {
        for (png_uint_32 y = 0; y < h; y++) {
            png_read_row(png, d->work, NULL);
            convert_row(d->work, w, ch, d->out.px + (size_t)y * w * oc, oc);
        }
    }
    /* Read to IEND so that a cut or damaged tail is noticed. */
    png_read_end(png, NULL);
    return 0;
}

/* ---- fast path: 8-bit gray or RGB, not interlaced -------------------
 *
 * For the common small 8-bit gray/RGB file, libpng's per-call setup and its
 * row-at-a-time inflate (rows under 258 bytes never reach zlib's fast
 * loop) cost several times the decoding itself. This path walks the chunks
 * itself, inflates all IDAT data in one go straight into the result
 * buffer and undoes the row filters in place. It only ever accepts a file
 * libpng accepts, with the same pixels: it takes nothing on trust and
 * gives up (returns -1, and img_decode_png runs libpng, which then
 * decides, with its own error or warning) on anything off the plain
 * road: another colour type or depth, interlacing, a limit or budget
 * exceeded, any CRC mismatch, a chunk other than IHDR / IDAT / IEND / the
 * ancillary chunks libpng skips unread (set_read_limits and
 * png_set_keep_unknown_chunks(NEVER) in decode_session), IDAT chunks not
 * in one run, a zlib stream that is bad, short, long, ends before the
 * last IDAT byte or fails its Adler-32 check, a filter type over 4, or a
 * chunk over IMG_CHUNK_MALLOC_MAX. So errors and their messages always
 * come from libpng, and the fast path changes only the speed. Its memory
 * is the result plus one filter byte per row, held to the same budget. */

#define IMG_FAST_MAX_RAW ((size_t)8 << 20) /* bytes: filtered image inflated at once */
/* Spare output room past the image: zlib's fast loop only runs while 258
 * bytes of output room are left, so without it the last 258 bytes (a
 * third of a 28x28 image) go through the slow byte-wise loop. A stream
 * that writes into the spare room is too long: left to libpng. */
#define IMG_FAST_SLACK 258

/* Ancillary chunks png_set_keep_unknown_chunks(.., NEVER, NULL, -1) makes
 * libpng skip (reading them only for the CRC) in every libpng 1.6. */
static int fast_skippable(const uint8_t *t) {
    static const char names[][5] = {"tEXt", "zTXt", "iTXt", "gAMA", "cHRM", "sRGB", "iCCP",
                                    "pHYs", "tIME", "bKGD", "sBIT"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        if (memcmp(t, names[i], 4) == 0) return 1;
    return 0;
}

/* Undo the PNG row filters of h rows of rb bytes (bpp bytes per pixel),
 * each stored after its filter-type byte, in place: row y ends up at
 * buf + y * rb. Row y's output starts y + 1 bytes before its input, so
 * writing byte i only overwrites input already read. Returns 0, or -1 for
 * a filter type over 4. */
static int fast_unfilter(uint8_t *buf, size_t rb, uint32_t h, size_t bpp) {
    for (uint32_t y = 0; y < h; y++) {
        const uint8_t *src = buf + (size_t)y * (rb + 1);
        int f = *src++;
        uint8_t *dst = buf + (size_t)y * rb;
        const uint8_t *up = y ? dst - rb : NULL;
        size_t i;
        switch (f) {
        case 0:
            memmove(dst, src, rb);
            break;
        case 1:
            for (i = 0; i < bpp && i < rb; i++) dst[i] = src[i];
            for (; i < rb; i++) dst[i] = (uint8_t)(src[i] + dst[i - bpp]);
            break;
        case 2:
            if (!up) memmove(dst, src, rb);
            else for (i = 0; i < rb; i++) dst[i] = (uint8_t)(src[i] + up[i]);
            break;
        case 3:
            if (!up) {
                for (i = 0; i < bpp && i < rb; i++) dst[i] = src[i];
                for (; i < rb; i++) dst[i] = (uint8_t)(src[i] + (dst[i - bpp] >> 1));
            } else {
                for (i = 0; i < bpp && i < rb; i++) dst[i] = (uint8_t)(src[i] + (up[i] >> 1));
                for (; i < rb; i++) dst[i] = (uint8_t)(src[i] + ((dst[i - bpp] + up[i]) >> 1));
            }
            break;
        case 4:
            if (!up) { /* Paeth with no row above predicts the left byte */
                for (i = 0; i < bpp && i < rb; i++) dst[i] = src[i];
                for (; i < rb; i++) dst[i] = (uint8_t)(src[i] + dst[i - bpp]);
            } else {
                for (i = 0; i < bpp && i < rb; i++) dst[i] = (uint8_t)(src[i] + up[i]);
                for (; i < rb; i++) {
                    int a = dst[i - bpp], b = up[i], c = up[i - bpp];
                    int pa = abs(b - c), pb = abs(a - c), pc = abs(a + b - 2 * c);
                    int pred = (pa <= pb && pa <= pc) ? a : pb <= pc ? b : c;
                    dst[i] = (uint8_t)(src[i] + pred);
                }
            }
            break;
        default:
            return -1;
        }
    }
    return 0;
}

/* The fast path (see above) for data[0..n) whose signature was checked.
 * Returns 0 with *out filled, or -1 to leave the file to libpng. */
static int fast_decode(const uint8_t *p, size_t n, int want, const img_limits_t *lim, img_t *out) {
    if (n < 8 + 25 + 12 || get_be32(p + 8) != 13 || memcmp(p + 12, "IHDR", 4) != 0) return -1;
    const uint8_t *ih = p + 16;
    uint32_t w = get_be32(ih), h = get_be32(ih + 4);
    int color = ih[9];
    if (ih[8] != 8 || (color != PNG_COLOR_TYPE_GRAY && color != PNG_COLOR_TYPE_RGB)) return -1;
    if (ih[10] || ih[11] || ih[12]) return -1; /* compression, filter method, interlace */
    if (w == 0 || h == 0 || w > lim->max_width || h > lim->max_height || w > PNG_UINT_31_MAX ||
        h > PNG_UINT_31_MAX)
        return -1;
    if ((uint32_t)crc32(0, p + 12, 17) != get_be32(p + 29)) return -1;
    size_t ch = color == PNG_COLOR_TYPE_GRAY ? 1 : 3, oc = want ? (size_t)want : ch;
    if (w > IMG_FAST_MAX_RAW || (size_t)w * ch + 1 > IMG_FAST_MAX_RAW / h) return -1;
    size_t rb = (size_t)w * ch, raw = (rb + 1) * h, out_bytes = (size_t)w * h * oc;
    size_t need = (oc == ch ? raw : raw + out_bytes) + IMG_FAST_SLACK;
    if (need > lim->max_bytes || out_bytes + rb > lim->max_bytes) return -1;

    uint8_t *buf = NULL, *px = NULL;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    int zinit = 0, zdone = 0, state = 0; /* state: 0 before IDAT, 1 in the IDATs, 2 after */
    size_t pos = 33;
    for (;;) {
        if (n - pos < 12) goto fail;
        uint32_t len = get_be32(p + pos);
        const uint8_t *t = p + pos + 4;
        if (len > IMG_CHUNK_MALLOC_MAX || len > n - pos - 12) goto fail;
        if ((uint32_t)crc32(0, t, len + 4) != get_be32(t + 4 + len)) goto fail;
        if (memcmp(t, "IDAT", 4) == 0) {
            if (state == 2) goto fail;
            if (state == 0) {
                state = 1;
                buf = xmalloc(raw + IMG_FAST_SLACK);
                if (inflateInit(&zs) != Z_OK) goto fail;
                zinit = 1;
                zs.next_out = buf;
                zs.avail_out = (uInt)(raw + IMG_FAST_SLACK);
            }
            if (zdone) {
                if (len) goto fail; /* data after the end of the stream */
            } else if (len) {
                zs.next_in = (Bytef *)(uintptr_t)(t + 4);
                zs.avail_in = len;
                int r = inflate(&zs, Z_FINISH);
                if (r == Z_STREAM_END) {
                    if (zs.avail_in) goto fail;
                    zdone = 1;
                } else if (r != Z_OK && r != Z_BUF_ERROR) {
                    goto fail;
                } else if (zs.avail_in) {
                    goto fail; /* output full before the input ran out */
                }
            }
        } else {
            if (state == 1) state = 2;
            if (memcmp(t, "IEND", 4) == 0) {
                if (len || state != 2) goto fail;
                break;
            }
            if (!fast_skippable(t)) goto fail;
        }
        pos += 12 + (size_t)len;
    }
    if (!zdone || zs.total_out != raw || fast_unfilter(buf, rb, h, ch) != 0) goto fail;
    inflateEnd(&zs);
    if (oc == ch) {
        px = buf;
    } else {
        px = xmalloc(out_bytes);
        for (uint32_t y = 0; y < h; y++)
            convert_row(buf + (size_t)y * rb, w, (int)ch, px + (size_t)y * w * oc, (int)oc);
        free(buf);
    }
    out->w = w, out->h = h, out->c = (uint32_t)oc, out->px = px;
    return 0;
fail:
    if (zinit) inflateEnd(&zs);
    free(buf);
    return -1;
}

int img_decode_png(const void *data, size_t n, int want_channels, const img_limits_t *lim,
                   img_t *out, char *reason, size_t reason_len) {
    ASSERT(want_channels == 0 || want_channels == 1 || want_channels == 3);
    memset(out, 0, sizeof *out);
    if (reason && reason_len) reason[0] = '\0';
    int rc = check_signature(data, n, reason, reason_len);
    if (rc) return rc;
    img_limits_t l;
    resolve_limits(lim, &l);
    if (fast_decode(data, n, want_channels, &l, out) == 0) return 0;

    png_dec_t *d = xcalloc(1, sizeof *d);
    d->lim = l;
    d->want = want_channels;
    d->io.data = data;
    d->io.n = n;
    d->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &d->io, on_png_error, on_png_warning);
    if (!d->png) ASSERT(!"png_create_read_struct failed");
    d->info = png_create_info_struct(d->png);
    if (!d->info) ASSERT(!"png_create_info_struct failed");

    int s = decode_session(d);
    if (s == 0) {
        *out = d->out;
        d->out.px = NULL;
    } else if (s == 1) {
        rc = png_failure(&d->io, reason, reason_len);
    } else {
        rc = GB_ETOOBIG;
        if (reason && reason_len) snprintf(reason, reason_len, "%s", d->budget);
    }
    png_destroy_read_struct(&d->png, &d->info, NULL);
    free(d->out.px);
    free(d->work);
    free(d->rows);
    free(d);
    return rc;
}

/* Read a whole file into memory, refusing more than cap bytes. */
static int slurp(const char *path, size_t cap, uint8_t **buf, size_t *len, char *reason,
                 size_t reason_len) {
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (reason && reason_len) snprintf(reason, reason_len, "cannot open: %s", strerror(e));
        return e;
    }
    int rc = 0;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = errno;
        if (reason && reason_len) snprintf(reason, reason_len, "cannot stat: %s", strerror(rc));
        goto done;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > cap) {
        rc = GB_ETOOBIG;
        if (reason && reason_len)
            snprintf(reason, reason_len, "file of %lld bytes is over the %zu-byte limit",
                     (long long)st.st_size, cap);
        goto done;
    }
    size_t want = (size_t)st.st_size, got = 0;
    uint8_t *b = xmalloc(want);
    while (got < want) {
        ssize_t r = read(fd, b + got, want - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = errno;
            if (reason && reason_len) snprintf(reason, reason_len, "cannot read: %s", strerror(rc));
            free(b);
            goto done;
        }
        if (r == 0) break; /* shrank while reading: decode what is there */
        got += (size_t)r;
    }
    *buf = b;
    *len = got;
done:
    close(fd);
    return rc;
}

int img_read_png(const char *path, int want_channels, const img_limits_t *lim, img_t *out,
                 char *reason, size_t reason_len) {
    memset(out, 0, sizeof *out);
    img_limits_t l;
    resolve_limits(lim, &l);
    /* A PNG is rarely larger than its pixels; allow 16-bit RGBA stored
     * uncompressed (8 bytes per 3 decoded) plus room for chunks. */
    size_t cap = l.max_bytes > SIZE_MAX / 3 - (16 << 20) ? SIZE_MAX : l.max_bytes * 3 + (16 << 20);
    uint8_t *buf;
    size_t len;
    int rc = slurp(path, cap, &buf, &len, reason, reason_len);
    if (rc) return rc;
    rc = img_decode_png(buf, len, want_channels, &l, out, reason, reason_len);
    free(buf);
    return rc;
}

/* ---- text chunks ---------------------------------------------------- */

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* Append a chunk (type + data, with length and CRC) to buf at *len. */
static void put_chunk(uint8_t *buf, size_t *len, const char *type, const uint8_t *data, uint32_t n) {
    uint8_t *p = buf + *len;
    put_be32(p, n);
    memcpy(p + 4, type, 4);
    if (n) memcpy(p + 8, data, n);
    put_be32(p + 8 + n, (uint32_t)crc32(0, p + 4, 4 + n));
    *len += 12 + (size_t)n;
}

/* Latin-1 (or, when utf8, UTF-8 already) to a malloc'd UTF-8 string. */
static char *to_utf8(const char *s, int utf8) {
    if (utf8) return xstrdup(s);
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) n += *p < 0x80 ? 1 : 2;
    char *o = xmalloc(n + 1), *q = o;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x80) {
            *q++ = (char)*p;
        } else {
            *q++ = (char)(0xC0 | *p >> 6);
            *q++ = (char)(0x80 | (*p & 0x3F));
        }
    }
    *q = '\0';
    return o;
}

typedef struct {
    png_io_t io;
    png_structp png;
    png_infop info;
    img_text_t *texts;
    int ntexts;
    uint8_t row[1];
} png_txt_t;

/* The libpng part of img_read_texts: read the stand-in stream in d->io.
 * Returns 0 or 1 (libpng error). State that outlives a longjmp is in *d. */
static int texts_session(png_txt_t *d) {
    if (setjmp(d->io.jb)) return 1;
    png_structp png = d->png;
    png_set_read_fn(png, &d->io, on_png_read);
    img_limits_t lim;
    img_limits_default(&lim);
    set_read_limits(png, &lim);
    png_read_info(png, d->info);
    png_read_row(png, d->row, NULL);
    png_read_end(png, d->info);
    png_textp t = NULL;
    int nt = png_get_text(png, d->info, &t, NULL);
    d->texts = xcalloc((size_t)(nt > 0 ? nt : 1), sizeof *d->texts);
    for (int i = 0; i < nt; i++) {
        int utf8 = t[i].compression >= PNG_ITXT_COMPRESSION_NONE;
        d->texts[i].key = to_utf8(t[i].key, 0);
        d->texts[i].text = to_utf8(t[i].text ? t[i].text : "", utf8);
        d->ntexts = i + 1;
    }
    return 0;
}

int img_read_texts(const void *data, size_t n, img_text_t **texts, int *ntexts) {
    *texts = NULL;
    *ntexts = 0;
    int rc = check_signature(data, n, NULL, 0);
    if (rc) return rc;
    /* libpng cannot reach the chunks after IDAT without inflating the
     * image, so it is given a stand-in: the signature, a 1x1 gray IHDR,
     * the file's tEXt/zTXt/iTXt chunks in their order, a 1x1 IDAT and
     * IEND. Chunk framing is checked here; the text chunks themselves
     * (CRC, keyword, zlib) by libpng under the usual limits. */
    const uint8_t *p = data;
    uint8_t *s = xmalloc(n + 128);
    size_t sl = 8;
    memcpy(s, p, 8);
    static const uint8_t ihdr[13] = {0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0};
    put_chunk(s, &sl, "IHDR", ihdr, sizeof ihdr);
    size_t pos = 8;
    int seen_end = 0, first = 1;
    while (pos <= n && n - pos >= 12) {
        uint32_t len = get_be32(p + pos);
        const uint8_t *type = p + pos + 4;
        if (len > PNG_UINT_31_MAX || len > n - pos - 12) break;
        if (first && memcmp(type, "IHDR", 4) != 0) break;
        first = 0;
        if (memcmp(type, "IEND", 4) == 0) {
            seen_end = 1;
            break;
        }
        /* (text chunks over libpng's chunk limit would be ignored by it
         * anyway: not copying them keeps this copy small) */
        if ((!memcmp(type, "tEXt", 4) || !memcmp(type, "zTXt", 4) || !memcmp(type, "iTXt", 4)) &&
            len <= IMG_CHUNK_MALLOC_MAX) {
            memcpy(s + sl, p + pos, 12 + (size_t)len);
            sl += 12 + (size_t)len;
        }
        pos += 12 + (size_t)len;
    }
    if (!seen_end) {
        free(s);
        return GB_ECORRUPT;
    }
    uint8_t raw[2] = {0, 0}, z[64];
    uLongf zl = sizeof z;
    if (compress2(z, &zl, raw, sizeof raw, 1) != Z_OK) ASSERT(!"compress2 of 2 bytes failed");
    put_chunk(s, &sl, "IDAT", z, (uint32_t)zl);
    put_chunk(s, &sl, "IEND", NULL, 0);

    png_txt_t *d = xcalloc(1, sizeof *d);
    d->io.data = s;
    d->io.n = sl;
    d->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &d->io, on_png_error, on_png_warning);
    if (!d->png) ASSERT(!"png_create_read_struct failed");
    d->info = png_create_info_struct(d->png);
    if (!d->info) ASSERT(!"png_create_info_struct failed");
    if (texts_session(d) == 0) {
        *texts = d->texts;
        *ntexts = d->ntexts;
    } else {
        rc = png_failure(&d->io, NULL, 0);
        log_debug("img_read_texts: %s", d->io.err);
        img_texts_free(d->texts, d->ntexts);
    }
    png_destroy_read_struct(&d->png, &d->info, NULL);
    free(d);
    free(s);
    return rc;
}

void img_texts_free(img_text_t *texts, int ntexts) {
    if (!texts) return;
    for (int i = 0; i < ntexts; i++) {
        free((char *)texts[i].key);
        free((char *)texts[i].text);
    }
    free(texts);
}

/* ---- encoding ------------------------------------------------------- */

/* A PNG keyword: 1-79 Latin-1 printable bytes, no leading, trailing or
 * doubled space. */
static int valid_key(const char *k) {
    size_t n = strlen(k);
    if (n < 1 || n > 79 || k[0] == ' ' || k[n - 1] == ' ') return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)k[i];
        if (!((c >= 32 && c <= 126) || c >= 161)) return 0;
        if (c == ' ' && k[i + 1] == ' ') return 0;
    }
    return 1;
}

typedef struct {
    png_io_t io;
    png_structp png;
    png_infop info;
    png_textp pt;
} png_enc_t;

/* The libpng part of img_encode_png. Returns 0 or 1 (libpng error). State
 * that outlives a longjmp is in *d. */
static int encode_session(png_enc_t *d, const img_t *im, const img_text_t *texts, int ntexts,
                          int compression) {
    if (setjmp(d->io.jb)) return 1;
    png_structp png = d->png;
    png_set_write_fn(png, &d->io, on_png_write, on_png_flush);
    size_t rowbytes = (size_t)im->w * im->c;
    png_set_compression_level(png, compression >= 0 ? compression : IMG_DEFAULT_LEVEL);
    /* Filters pay off on large photos; for small images they cost more
     * time than they save bytes. zlib's default memLevel (8) allocates
     * ~200 KiB per stream; freeing that much each time makes malloc give
     * it back to the kernel and fault it in again (brk churn took ~40% of
     * the time for 28x28 images), and a 64 KiB image gains nothing from a
     * hash that large. */
    if (rowbytes * im->h <= IMG_SMALL_IMAGE) png_set_compression_mem_level(png, 6);
    png_set_filter(png, PNG_FILTER_TYPE_BASE,
                   rowbytes * im->h <= IMG_SMALL_IMAGE ? PNG_FILTER_NONE : PNG_FILTER_SUB | PNG_FILTER_UP);
    png_set_IHDR(png, d->info, im->w, im->h, 8, im->c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (ntexts > 0) {
        d->pt = xcalloc((size_t)ntexts, sizeof *d->pt);
        for (int i = 0; i < ntexts; i++) {
            d->pt[i].compression = PNG_ITXT_COMPRESSION_NONE;
            d->pt[i].key = (char *)texts[i].key;
            d->pt[i].text = (char *)texts[i].text;
            d->pt[i].itxt_length = strlen(texts[i].text);
        }
        png_set_text(png, d->info, d->pt, ntexts);
    }
    png_write_info(png, d->info);
    for (uint32_t y = 0; y < im->h; y++) png_write_row(png, im->px + y * rowbytes);
    png_write_end(png, NULL);
    return 0;
}

int img_encode_png(const img_t *im, const img_text_t *texts, int ntexts, int compression,
                   uint8_t **buf, size_t *len) {
    ASSERT(im->c == 1 || im->c == 3);
    ASSERT(im->w >= 1 && im->h >= 1 && im->px);
    ASSERT(compression >= -1 && compression <= 9);
    *buf = NULL;
    *len = 0;
    for (int i = 0; i < ntexts; i++) {
        if (!texts[i].key || !valid_key(texts[i].key) || !texts[i].text) {
            log_error("PNG text key \"%s\" is not a valid keyword (1-79 Latin-1 characters)",
                      texts[i].key ? texts[i].key : "(null)");
            return EINVAL;
        }
    }
    if (im->w > PNG_UINT_31_MAX || im->h > PNG_UINT_31_MAX) return EINVAL;
    png_enc_t *d = xcalloc(1, sizeof *d);
    d->io.cap = (size_t)im->w * im->h * im->c / 2 + 1024;
    for (int i = 0; i < ntexts; i++) d->io.cap += strlen(texts[i].key) + strlen(texts[i].text) + 20;
    d->io.buf = xmalloc(d->io.cap);
    d->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &d->io, on_png_error, on_png_warning);
    if (!d->png) ASSERT(!"png_create_write_struct failed");
    d->info = png_create_info_struct(d->png);
    if (!d->info) ASSERT(!"png_create_info_struct failed");
    int rc = 0;
    errno = 0;
    if (encode_session(d, im, texts, ntexts, compression) == 0) {
        *buf = d->io.buf;
        *len = d->io.len;
        d->io.buf = NULL;
    } else {
        /* libpng words an allocation failure as it likes ("too many text
         * chunks"); malloc's errno tells the real reason */
        rc = errno == ENOMEM ? ENOMEM : EINVAL;
        log_error("PNG encoding failed: %s", rc == ENOMEM ? strerror(ENOMEM) : d->io.err);
    }
    png_destroy_write_struct(&d->png, &d->info);
    free(d->io.buf);
    free(d->pt);
    free(d);
    return rc;
}

int img_write_png(const char *path, const img_t *im, const img_text_t *texts, int ntexts,
                  int compression) {
    uint8_t *buf;
    size_t len;
    int rc = img_encode_png(im, texts, ntexts, compression, &buf, &len);
    if (rc) return rc;
    rc = afile_write_all(path, buf, len);
    free(buf);
    return rc;
}

/* ---- resize --------------------------------------------------------- */

/* One output sample along an axis: weights for source samples
 * [start, start + n). */
typedef struct {
    uint32_t start, n;
    size_t woff; /* offset of the weights in the shared array */
} tap_t;

/* Build the taps mapping an axis of sn source samples to dn outputs when
 * the source is scaled by s and the scaled axis is cropped starting at
 * off (in scaled pixels). s < 1: box filter over the exact source interval
 * each output covers (fractional coverage at the ends). s >= 1: bilinear
 * between the two nearest source centres (edges clamp). Returns the
 * weights array (malloc'd). */
static float *make_taps(uint32_t sn, uint32_t dn, double s, double off, tap_t *taps) {
    size_t cap = 0;
    for (uint32_t o = 0; o < dn; o++) cap += s < 1 ? (size_t)(1 / s) + 3 : 2;
    float *wt = xmalloc(cap * sizeof *wt);
    size_t used = 0;
    for (uint32_t o = 0; o < dn; o++) {
        tap_t *t = &taps[o];
        t->woff = used;
        if (s < 1) {
            double a = (off + o) / s, b = (off + o + 1) / s;
            if (a < 0) a = 0;
            if (b > sn) b = sn;
            uint32_t i0 = (uint32_t)a, i1 = (uint32_t)ceil(b);
            if (i1 > sn) i1 = sn;
            if (i1 <= i0) i1 = i0 + 1;
            t->start = i0;
            t->n = i1 - i0;
            ASSERT(used + t->n <= cap);
            double total = b - a;
            for (uint32_t i = i0; i < i1; i++) {
                double lo = GB_MAX(a, (double)i), hi = GB_MIN(b, (double)i + 1);
                wt[used++] = (float)(hi > lo ? (hi - lo) / total : 0);
            }
        } else {
            double u = (off + o + 0.5) / s - 0.5;
            if (u < 0) u = 0;
            if (u > sn - 1) u = sn - 1;
            uint32_t i0 = (uint32_t)u;
            double f = u - i0;
            if (i0 + 1 >= sn) {
                t->start = i0, t->n = 1;
                wt[used++] = 1;
            } else {
                t->start = i0, t->n = 2;
                wt[used++] = (float)(1 - f);
                wt[used++] = (float)f;
            }
        }
    }
    return wt;
}

void img_resize_crop(const img_t *src, uint32_t w, uint32_t h, img_t *dst) {
    ASSERT(src->w >= 1 && src->h >= 1 && src->px && (src->c == 1 || src->c == 3));
    ASSERT(w >= 1 && h >= 1);
    uint32_t c = src->c, sw = src->w, sh = src->h;
    double s = GB_MAX((double)w / sw, (double)h / sh);
    /* Crop offsets in scaled pixels: centre the w x h window. */
    double ox = (sw * s - w) / 2, oy = (sh * s - h) / 2;
    if (ox < 0) ox = 0;
    if (oy < 0) oy = 0;
    tap_t *tx = xmalloc(w * sizeof *tx), *ty = xmalloc(h * sizeof *ty);
    float *wx = make_taps(sw, w, s, ox, tx), *wy = make_taps(sh, h, s, oy, ty);
    /* Horizontal pass over the source rows the vertical taps use. */
    uint32_t r0 = ty[0].start, r1 = ty[h - 1].start + ty[h - 1].n;
    float *tmp = xmalloc((size_t)(r1 - r0) * w * c * sizeof *tmp);
    for (uint32_t y = r0; y < r1; y++) {
        const uint8_t *row = src->px + (size_t)y * sw * c;
        float *o = tmp + (size_t)(y - r0) * w * c;
        for (uint32_t x = 0; x < w; x++) {
            const tap_t *t = &tx[x];
            for (uint32_t k = 0; k < c; k++) {
                float acc = 0;
                for (uint32_t i = 0; i < t->n; i++) acc += wx[t->woff + i] * row[(t->start + i) * c + k];
                o[x * c + k] = acc;
            }
        }
    }
    dst->w = w, dst->h = h, dst->c = c;
    dst->px = xmalloc((size_t)w * h * c);
    for (uint32_t y = 0; y < h; y++) {
        const tap_t *t = &ty[y];
        uint8_t *o = dst->px + (size_t)y * w * c;
        for (uint32_t x = 0; x < w * c; x++) {
            float acc = 0;
            for (uint32_t i = 0; i < t->n; i++)
                acc += wy[t->woff + i] * tmp[(size_t)(t->start + i - r0) * w * c + x];
            /* round half up; the weights sum to 1, clamp only guards
             * float error */
            float v = floorf(acc + 0.5f);
            o[x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    free(tmp);
    free(wx);
    free(wy);
    free(tx);
    free(ty);
}
