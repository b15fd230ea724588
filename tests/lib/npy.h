/* npy.h - a small reader and writer for NumPy .npy arrays.
 *
 * Enough of the format (NEP 1, versions 1.0/2.0/3.0) for the golden
 * reference tensors and for tools that dump tensors: little-endian
 * float32, float64 and int64, C order, up to NPY_MAXDIM dimensions.
 * Reading converts to the dtype the caller asks for, so a test can load
 * any of them as float32. Everything else (Fortran order, big-endian,
 * object arrays, structured dtypes) is refused with GB_EUNSUPPORTED and a
 * message saying why; a malformed or truncated file gets GB_EFORMAT. */
#ifndef GB_NPY_H
#define GB_NPY_H

#include <stddef.h>
#include <stdint.h>

#define NPY_MAXDIM 8
/* Refuse arrays above this many elements (a corrupt shape must not make
 * us allocate terabytes). */
#define NPY_MAX_COUNT ((size_t)1 << 32)

typedef enum { NPY_ANY = 0, NPY_F32 = 1, NPY_F64 = 2, NPY_I64 = 3 } npy_dtype_t;

typedef struct {
    npy_dtype_t dtype;          /* dtype of data (after any conversion) */
    int ndim;                   /* 0..NPY_MAXDIM; 0 = scalar (count 1) */
    int64_t shape[NPY_MAXDIM];  /* sizes, each >= 0 */
    size_t count;               /* product of shape */
    void *data;                 /* count elements, owned; free with npy_free */
    char err[256];              /* after a failed npy_read: "path: reason" */
} npy_t;

/* Read the array in path into a, converted to want (NPY_ANY keeps the
 * file's dtype; float -> int64 conversion requires integral values).
 * Returns 0, a positive errno when the file cannot be opened or read,
 * GB_EFORMAT for a malformed/truncated file, GB_EUNSUPPORTED for a valid
 * but unsupported one, GB_ETOOBIG above NPY_MAX_COUNT elements. On failure
 * a->data is NULL and a->err names the file and the reason. The caller
 * owns a->data (npy_free). */
int npy_read(const char *path, npy_dtype_t want, npy_t *a);

/* Release a->data (a may be a failed read or zeroed; idempotent). */
void npy_free(npy_t *a);

/* Write count = prod(shape) elements of dtype (F32, F64 or I64) from data
 * to path as .npy version 1.0, atomically (temp file, fsync, rename, fsync
 * of the folder). ndim 0 writes a scalar. Returns 0 or a positive errno;
 * GB_EUNSUPPORTED for a bad dtype or ndim. */
int npy_write(const char *path, npy_dtype_t dtype, const void *data, int ndim, const int64_t *shape);

/* Convenience: write a float32 array. */
int npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape);

#endif
