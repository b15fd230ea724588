/* pngmem.h - libpng writes into a growing memory buffer: the one write
 * callback the PNG tests (test_img.c, test_img_fast.c) use to make
 * hand-crafted PNG files in memory. */
#ifndef GB_PNGMEM_H
#define GB_PNGMEM_H

#include <png.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *buf;    /* the bytes written so far; owned, free() it */
    size_t len, cap; /* bytes used, bytes allocated */
} pngmem_t;

/* Make png (a write struct) append everything it writes to m (zeroed by
 * the caller, or holding earlier output to append to). Flush is a no-op.
 * Out of memory aborts (xrealloc). */
void pngmem_use(png_structp png, pngmem_t *m);

#endif
