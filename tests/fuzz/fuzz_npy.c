/* fuzz_npy.c - libFuzzer harness for npy_read (.npy files).
 *
 * The input is written to one temporary file (under TMPDIR) and read back
 * as every dtype npy_read converts to. A successful read must describe a
 * consistent array (count = product of the shape, data present, a known
 * dtype), and a failed one must leave data NULL and a reason in err.
 * Invariants are checked with ASSERT. */
#include "base.h"
#include "npy.h"

#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fn_path[512];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!fn_path[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(fn_path, sizeof fn_path, "%s/fuzz_npy-XXXXXX", t && *t ? t : "/tmp");
        int fd = mkstemp(fn_path);
        ASSERT(fd >= 0);
        close(fd);
    }
    FILE *f = fopen(fn_path, "wb");
    ASSERT(f);
    if (size) ASSERT(fwrite(data, 1, size, f) == size);
    ASSERT(fclose(f) == 0);
    static const npy_dtype_t want[] = {NPY_ANY, NPY_F32, NPY_F64, NPY_I64};
    for (size_t w = 0; w < ARRAY_LEN(want); w++) {
        npy_t a;
        int rc = npy_read(fn_path, want[w], &a);
        if (rc == 0) {
            size_t count = 1;
            ASSERT(a.ndim >= 0 && a.ndim <= NPY_MAXDIM);
            for (int i = 0; i < a.ndim; i++) count *= (size_t)a.shape[i];
            ASSERT(count == a.count && a.data != NULL);
            ASSERT(a.dtype == NPY_F32 || a.dtype == NPY_F64 || a.dtype == NPY_I64);
            ASSERT(want[w] == NPY_ANY || a.dtype == want[w]);
            /* Touch every element (ASan checks the buffer is that big). */
            volatile unsigned char sink = 0;
            size_t bytes = a.count * (a.dtype == NPY_F32 ? 4 : 8);
            for (size_t i = 0; i < bytes; i++) sink ^= ((unsigned char *)a.data)[i];
            (void)sink;
        } else {
            ASSERT(a.data == NULL && a.err[0]);
        }
        npy_free(&a);
    }
    return 0;
}
