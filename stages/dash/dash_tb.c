/* dash_tb.c - TensorBoard event files written by gambar-dash.
 *
 * The format is TFRecord framing around serialized tensorboard.Event
 * messages (see proto/tensorboard.proto for the byte layout and CRC). The
 * file is append-only: TensorBoard reads it while it grows and ignores a
 * torn last record, so records are buffered by stdio, flushed by the
 * caller's loop (about once a second) and fsynced on close. One writer
 * (the receive loop), so no lock. CRC-32C uses a byte-wise table, built
 * once: records are small and few. */
#include "dash.h"

#include "err.h"
#include "log.h"
#include "tensorboard.pb-c.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

struct dash_tb {
    FILE *f;
    char path[4096];
    uint8_t *buf;      /* packing buffer, grown as needed */
    size_t cap;
};

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t dash_crc32c(const void *p, size_t n) {
    pthread_once(&crc_once, crc_init);
    const uint8_t *b = p;
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ b[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

uint32_t dash_crc_mask(uint32_t crc) {
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

int dash_png_size(const void *p, size_t n, int *w, int *h, int *channels) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const uint8_t *b = p;
    if (n < 33 || memcmp(b, sig, 8) || memcmp(b + 12, "IHDR", 4)) return GB_EFORMAT;
    uint32_t W = (uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19];
    uint32_t H = (uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23];
    if (W == 0 || H == 0 || W > 0x7fffffff || H > 0x7fffffff) return GB_EFORMAT;
    int ch;
    switch (b[25]) {
    case 0: ch = 1; break;
    case 2: ch = 3; break;
    case 3: ch = 3; break; /* palette: decoded as RGB */
    case 4: ch = 2; break;
    case 6: ch = 4; break;
    default: return GB_EFORMAT;
    }
    *w = (int)W;
    *h = (int)H;
    *channels = ch;
    return 0;
}

static void put_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static int write_event(dash_tb_t *t, const Tensorboard__Event *ev) {
    size_t n = tensorboard__event__get_packed_size(ev);
    if (n > t->cap) {
        t->cap = n + 4096;
        t->buf = xrealloc(t->buf, t->cap);
    }
    tensorboard__event__pack(ev, t->buf);
    uint8_t head[12], tail[4];
    put_le(head, n, 8);
    put_le(head + 8, dash_crc_mask(dash_crc32c(head, 8)), 4);
    put_le(tail, dash_crc_mask(dash_crc32c(t->buf, n)), 4);
    if (fwrite(head, 1, 12, t->f) != 12 || fwrite(t->buf, 1, n, t->f) != n || fwrite(tail, 1, 4, t->f) != 4) {
        int e = errno ? errno : EIO;
        log_error("%s: write failed: %s", t->path, strerror(e));
        return e;
    }
    return 0;
}

/* mkdir -p for dir (mode 0755). Returns 0 or an errno. */
static int mkdirs(const char *dir) {
    char p[4096];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) return ENAMETOOLONG;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) && errno != EEXIST) return errno;
        *s = '/';
    }
    if (mkdir(p, 0755) && errno != EEXIST) return errno;
    struct stat st;
    if (stat(p, &st)) return errno;
    return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

int dash_tb_open(const char *dir, dash_tb_t **out) {
    int rc = mkdirs(dir);
    if (rc) {
        log_error("--tensorboard %s: cannot create the folder: %s", dir, strerror(rc));
        return rc;
    }
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    for (char *c = host; *c; c++)
        if (*c == '/') *c = '_';
    dash_tb_t *t = xcalloc(1, sizeof *t);
    double now = gb_wall();
    snprintf(t->path, sizeof t->path, "%s/events.out.tfevents.%010lld.%s.%d", dir, (long long)now, host,
             (int)getpid());
    t->f = fopen(t->path, "ab");
    if (!t->f) {
        rc = errno;
        log_error("%s: cannot create: %s", t->path, strerror(rc));
        free(t);
        return rc;
    }
    Tensorboard__Event ev = TENSORBOARD__EVENT__INIT;
    ev.wall_time = now;
    ev.what_case = TENSORBOARD__EVENT__WHAT_FILE_VERSION;
    ev.file_version = (char *)"brain.Event:2";
    rc = write_event(t, &ev);
    if (!rc) rc = dash_tb_flush(t, false);
    if (rc) {
        dash_tb_close(&t);
        return rc;
    }
    log_info("TensorBoard events: %s", t->path);
    *out = t;
    return 0;
}

int dash_tb_flush(dash_tb_t *t, bool sync) {
    if (!t) return 0;
    if (fflush(t->f)) {
        int e = errno;
        log_error("%s: write failed: %s", t->path, strerror(e));
        return e;
    }
    if (sync && fsync(fileno(t->f))) {
        int e = errno;
        log_error("%s: fsync failed: %s", t->path, strerror(e));
        return e;
    }
    return 0;
}

void dash_tb_close(dash_tb_t **pt) {
    dash_tb_t *t = *pt;
    if (!t) return;
    dash_tb_flush(t, true);
    if (fclose(t->f)) log_error("%s: close failed: %s", t->path, strerror(errno));
    free(t->buf);
    free(t);
    *pt = NULL;
}

static int summary_event(dash_tb_t *t, int64_t step, double wall, Tensorboard__Summary__Value *v) {
    Tensorboard__Summary__Value *vals[1] = {v};
    Tensorboard__Summary sum = TENSORBOARD__SUMMARY__INIT;
    sum.n_value = 1;
    sum.value = vals;
    Tensorboard__Event ev = TENSORBOARD__EVENT__INIT;
    ev.wall_time = wall;
    ev.step = step;
    ev.what_case = TENSORBOARD__EVENT__WHAT_SUMMARY;
    ev.summary = &sum;
    return write_event(t, &ev);
}

int dash_tb_scalar(dash_tb_t *t, const char *tag, int64_t step, double wall, float value) {
    Tensorboard__Summary__Value v = TENSORBOARD__SUMMARY__VALUE__INIT;
    v.tag = (char *)tag;
    v.value_case = TENSORBOARD__SUMMARY__VALUE__VALUE_SIMPLE_VALUE;
    v.simple_value = value;
    return summary_event(t, step, wall, &v);
}

int dash_tb_image(dash_tb_t *t, const char *tag, int64_t step, double wall, const void *png, size_t n, int w,
                  int h, int channels) {
    Tensorboard__Summary__Image img = TENSORBOARD__SUMMARY__IMAGE__INIT;
    img.height = h;
    img.width = w;
    img.colorspace = channels;
    img.encoded_image_string.data = (uint8_t *)png;
    img.encoded_image_string.len = n;
    Tensorboard__Summary__Value v = TENSORBOARD__SUMMARY__VALUE__INIT;
    v.tag = (char *)tag;
    v.value_case = TENSORBOARD__SUMMARY__VALUE__VALUE_IMAGE;
    v.image = &img;
    return summary_event(t, step, wall, &v);
}
