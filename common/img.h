/* img.h - 8-bit images in memory, PNG decode/encode through libpng, resize.
 *
 * Every PNG flavour (1/2/4/8/16-bit, gray, gray+alpha, palette, RGB, RGBA,
 * tRNS, Adam7 interlaced) is normalised on decode to 8-bit gray (1
 * channel) or 8-bit RGB (3 channels); alpha is composited over black...
 * (precisely: dropped after premultiplying onto a black background).
 *
 * Decoding faces untrusted files, so the limits libpng leaves open are set
 * before anything is allocated: width and height (img_limits_t, default
 * 16384 x 16384), the number of ancillary chunks kept (png_set_chunk_cache_max)
 * and the size of one chunk (png_set_chunk_malloc_max), and a budget for
 * the decoded image (rows x bytes-per-row) checked against max_bytes
 * before the pixel buffer is allocated. libpng reports errors by longjmp;
 * that is confined to img.c, whose locals changed after setjmp are
 * volatile. Errors come back as return codes with a reason string.
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

typedef struct {
    uint32_t max_width;   /* default 16384 */
    uint32_t max_height;  /* default 16384 */
    size_t max_bytes;     /* decoded 8-bit pixels budget, default 256 MiB */
} img_limits_t;

/* Fill the defaults above. */
void img_limits_default(img_limits_t *lim);

/* Release im->px and zero the struct. */
void img_free(img_t *im);

/* Decode a PNG held in memory. want_channels: 1 or 3 to convert (RGB->gray
 * uses ITU-R BT.601 luma weights 0.299/0.587/0.114; gray->RGB copies), 0
 * to keep the file's own (gray for gray/gray+alpha, RGB otherwise).
 * Returns 0 and fills *out (caller owns), or:
 *   GB_EFORMAT  not a PNG (bad signature)
 *   GB_ECORRUPT truncated data, CRC error, bad zlib stream, bad chunk
 *   GB_ETOOBIG  over a limit in lim (NULL = defaults)
 * On error, when reason is not NULL, a human reason (e.g. "CRC error in
 * IDAT") is written to reason[0..reason_len). */
int img_decode_png(const void *data, size_t n, int want_channels, const img_limits_t *lim,
                   img_t *out, char *reason, size_t reason_len);

/* Read and decode a PNG file (same contract; errno values for I/O). */
int img_read_png(const char *path, int want_channels, const img_limits_t *lim, img_t *out,
                 char *reason, size_t reason_len);

/* A text chunk to embed: key (1-79 Latin-1 chars), UTF-8 text (stored as
 * iTXt, uncompressed). */
typedef struct { const char *key; const char *text; } img_text_t;

/* Encode im as an 8-bit gray or RGB PNG with the given text chunks.
 * compression: zlib level 0..9 (-1 = libpng default). On success returns
 * 0 and *buf (malloc'd, caller frees) with *len bytes. */
int img_encode_png(const img_t *im, const img_text_t *texts, int ntexts, int compression,
                   uint8_t **buf, size_t *len);

/* Encode and write atomically (temporary file in the same folder, fsync,
 * rename). Returns 0 or an errno. */
int img_write_png(const char *path, const img_t *im, const img_text_t *texts, int ntexts,
                  int compression);

/* Read the text chunks (tEXt, zTXt, iTXt) of a PNG in memory without
 * decoding pixels. *texts is an array of *ntexts entries whose key and text
 * are malloc'd strings; free with img_texts_free. Returns 0 or as
 * img_decode_png. */
int img_read_texts(const void *data, size_t n, img_text_t **texts, int *ntexts);
void img_texts_free(img_text_t *texts, int ntexts);

/* Resize src to cover w x h keeping the aspect ratio (area averaging when
 * shrinking, bilinear when enlarging), then centre-crop to exactly w x h.
 * dst->px is allocated (w*h*src->c bytes). */
void img_resize_crop(const img_t *src, uint32_t w, uint32_t h, img_t *dst);

#endif
