/* pngmem.c - libpng output into memory (see pngmem.h). */
#include "pngmem.h"

#include "base.h"

#include <string.h>

static void pngmem_write(png_structp png, png_bytep p, size_t n) {
    pngmem_t *m = png_get_io_ptr(png);
    if (m->len + n > m->cap) {
        m->cap = (m->len + n) * 2;
        m->buf = xrealloc(m->buf, m->cap);
    }
    memcpy(m->buf + m->len, p, n);
    m->len += n;
}

static void pngmem_flush(png_structp png) { (void)png; }

void pngmem_use(png_structp png, pngmem_t *m) { png_set_write_fn(png, m, pngmem_write, pngmem_flush); }
