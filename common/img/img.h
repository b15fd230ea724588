/* img.h - 8-bit images in memory, PNG decode/encode through libpng, resize.
 *
 * Every PNG flavour (1/2/4/8/16-bit, gray, gray+alpha, palette, RGB, RGBA,
 * tRNS, Adam7 interlaced) is normalised on decode to 8-bit gray (1
 * channel) or 8-bit RGB (3 channels); alpha is composited over black
 * (premultiplied, then dropped). img_decode_png gives the exact formulas.
 *
 * Decoding faces untrusted files, so the limits libpng leaves open are set
 * before anything is allocated: width and height (img_limits_t, default
 * 16384 x 16384), the number of ancillary chunks kept (png_set_chunk_cache_max)
 * and the size of one chunk (png_set_chunk_malloc_max), and a budget for
 * the decoded image (rows x bytes-per-row) checked against max_bytes
 * before the pixel buffer is allocated. libpng reports errors by longjmp;
 * that is confined to img.c (each setjmp sits in a small function that
 * keeps its allocations in a struct behind a pointer and reads no local
 * after a longjmp). Errors come back as return codes with a reason string.
 */
#ifndef GB_IMG_H
#define GB_IMG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t w, h;     /* pixels */
    uint32_t c;        /* channels: 1 (gray) or 3 (RGB) */
    uint8_t *px;       /* h*w*c bytes, row-major HWC; owned (free with img_free) */
} img_t;

/* A field left 0 takes its default. */
typedef struct {
    uint32_t max_width;   /* pixels; default 16384 (libpng refuses wider in IHDR) */
    uint32_t max_height;  /* pixels; default 16384 */
    size_t max_bytes;     /* bytes the decoder may allocate for pixels: the
                           * 8-bit result plus libpng's rows after
                           * transforms (every row for Adam7, one row
                           * otherwise); default 256 MiB */
} img_limits_t;

/* Fill the defaults above. */
void img_limits_default(img_limits_t *lim);

/* Release im->px and zero the struct. */
void img_free(img_t *im);

/* Decode a PNG held in memory (data is only read; it is not kept).
 * want_channels: 1 or 3 to convert, 0 to keep the file's own (gray for
 * gray/gray+alpha, RGB for palette/RGB/RGBA).
 * Exact arithmetic, on 8-bit values after expansion:
 *   1/2/4-bit gray  v * 255 / (2^depth - 1)
 *   16-bit          round(v * 255 / 65535)  (libpng's png_set_scale_16)
 *   tRNS            becomes alpha (0 for the transparent colour/index)
 *   alpha a         c' = (c * a + 127) / 255  (over black), then dropped
 *   RGB -> gray     (299 r + 587 g + 114 b + 500) / 1000  (BT.601 luma)
 *   gray -> RGB     copied to the three channels
 * Ancillary chunks (text, colour profiles, ...) are skipped (CRC still
 * checked), so thousands of text chunks or a zTXt bomb cost no memory; a
 * non-IDAT chunk over 8 MiB is ignored as libpng documents.
 * Returns 0 and fills *out (caller owns; img_free), or, with *out zeroed:
 *   GB_EFORMAT  not a PNG (bad signature; empty input)
 *   GB_ECORRUPT truncated anywhere up to IEND, CRC error in any chunk,
 *               bad zlib stream, invalid IHDR/PLTE/... values
 *   GB_ETOOBIG  width/height over lim (libpng's user limits, checked on
 *               IHDR), or the pixels over lim->max_bytes (checked before
 *               anything of the image's size is allocated)
 * lim NULL = defaults. When reason is not NULL a human reason is written
 * to reason[0..reason_len) on error: libpng's message ("IDAT: CRC error",
 * "Invalid IHDR data: Image width exceeds user limit in IHDR") or ours
 * ("image of 8000 x 8000 pixels needs 64008000 bytes to decode, over the
 * budget of 16777216"). */
int img_decode_png(const void *data, size_t n, int want_channels, const img_limits_t *lim,
                   img_t *out, char *reason, size_t reason_len);

/* Read and decode a PNG file (same contract, plus a positive errno for
 * I/O such as ENOENT, and GB_ETOOBIG for a file over 3 * max_bytes +
 * 16 MiB, which no image within the budget needs). */
int img_read_png(const char *path, int want_channels, const img_limits_t *lim, img_t *out,
                 char *reason, size_t reason_len);

/* A text chunk to embed: key (1-79 Latin-1 printable chars, no leading,
 * trailing or doubled space), UTF-8 text (stored as iTXt, uncompressed,
 * before the image data). */
typedef struct { const char *key; const char *text; } img_text_t;

/* Encode im (c 1 or 3, w and h >= 1) as an 8-bit gray or RGB PNG with
 * the given text chunks, non-interlaced. compression: zlib level 0..9,
 * or -1 for gambar's default, 3 (fast; level 6+ rarely saves bytes on
 * small images). Images up to 64 KiB of pixels are written unfiltered
 * with a smaller zlib hash (memLevel 6), larger ones with libpng's
 * choice among the Sub and Up filters. A 28x28 gray image with two
 * short iTXt chunks takes ~40 us (scripts/bench/img.sh). On success returns 0 and *buf
 * (malloc'd, caller frees) with *len bytes; EINVAL for a bad keyword
 * (logged), with *buf NULL. */
int img_encode_png(const img_t *im, const img_text_t *texts, int ntexts, int compression,
                   uint8_t **buf, size_t *len);

/* Encode and write atomically (afile.h: temporary file in the same
 * folder, fsync, mode 0644, rename over path, fsync the folder). Returns 0
 * or an errno (EINVAL as img_encode_png; write errors logged with the
 * path); on error no temporary is left. */
int img_write_png(const char *path, const img_t *im, const img_text_t *texts, int ntexts,
                  int compression);

/* Read the text chunks (tEXt, zTXt, iTXt) of a PNG in memory, wherever
 * they are (before or after the image data), without inflating the
 * pixels. *texts is an array of *ntexts entries in file order whose key
 * and text are malloc'd UTF-8 strings (tEXt/zTXt Latin-1 is converted);
 * free with img_texts_free. Limits, as libpng applies them: at most 126
 * texts are kept (libpng's chunk cache, set to 128; the rest are dropped),
 * and a text chunk over 8 MiB, or a zTXt/compressed iTXt that inflates
 * past 8 MiB, or one libpng finds malformed (bad keyword, bad zlib
 * stream), is dropped; the others are still returned.
 * Returns 0, GB_EFORMAT (signature), GB_ECORRUPT (truncated before IEND,
 * first chunk not IHDR, CRC error in a text chunk). */
int img_read_texts(const void *data, size_t n, img_text_t **texts, int *ntexts);
void img_texts_free(img_text_t *texts, int ntexts);

/* Resize src to cover w x h keeping the aspect ratio, then centre-crop to
 * exactly w x h (w, h >= 1). With scale s = max(w / src->w, h / src->h):
 * s < 1 is an exact box filter (each output pixel averages the source
 * area it covers, edge pixels weighted by their fractional coverage);
 * s >= 1 is bilinear between source pixel centres (edges clamp). The
 * filter is separable; results round half up. dst is overwritten (not
 * freed first): dst->px is allocated (w*h*src->c bytes, caller frees with
 * img_free), dst->c = src->c. */
void img_resize_crop(const img_t *src, uint32_t w, uint32_t h, img_t *dst);

#endif
