/* err.h - error codes and the exit-status table shared by every stage.
 *
 * Functions that can meet an outside fault return int: 0 is success, a
 * negative value is one of the GB_E* codes below, a positive value is an
 * errno passed through. err_str() names either kind.
 *
 * EXIT STATUS (documented in README.md and every man page; the same for
 * every gambar program):
 *   0   success
 *   1   failure not covered below (internal error, other)
 *   2   usage error: bad option or argument
 *   3   bad data: some input was rejected (ingest still stores the rest)
 *   4   I/O error: a file or database could not be read or written
 *   5   numeric failure: NaN/Inf in training
 *   6   peer error: a socket could not be bound/connected or a peer
 *       misbehaved past recovery
 *   130 interrupted by SIGINT/SIGTERM before the work was done */
#ifndef GB_ERR_H
#define GB_ERR_H

#include <stddef.h>

enum {
    GB_EXIT_OK = 0,
    GB_EXIT_FAIL = 1,
    GB_EXIT_USAGE = 2,
    GB_EXIT_DATA = 3,
    GB_EXIT_IO = 4,
    GB_EXIT_NUMERIC = 5,
    GB_EXIT_PEER = 6,
    GB_EXIT_INTERRUPTED = 130,
};

/* Project error codes: negative, below errno's range of meaning. */
enum {
    GB_OK = 0,
    GB_EFORMAT = -30001,   /* input is not in the expected format */
    GB_ECORRUPT = -30002,  /* checksum/CRC mismatch, truncated data */
    GB_ETOOBIG = -30003,   /* over a configured size limit */
    GB_EVERSION = -30004,  /* unknown format version */
    GB_ENOTFOUND = -30005, /* key or file not found */
    GB_EMISMATCH = -30006, /* shape/model/dataset does not match */
    GB_EPEER = -30007,     /* malformed message from a socket peer */
    GB_EINTR = -30008,     /* interrupted by a signal */
    GB_EDB = -30009,       /* LMDB error (details logged) */
    GB_ENUMERIC = -30010,  /* NaN or Inf */
    GB_EUNSUPPORTED = -30011, /* valid but unsupported input */
};

/* Return a static string naming rc: "GB_ECORRUPT: data is corrupt" or
 * strerror(rc) for positive values. Never NULL. */
const char *err_str(int rc);

/* Map an rc to the exit status of the table above. */
int err_exit_code(int rc);

/* Format the printf-style reason into err[0..errlen) (when err is non-NULL
 * and errlen > 0; always NUL-terminated, truncated if long) and return rc
 * unchanged, so a failing path reads `return gb_errf(err, errlen, GB_EFORMAT,
 * "...", ...);`. Defined in errf.c. */
int gb_errf(char *err, size_t errlen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The reason an I/O call on path (a file or folder) failed with rc, for a
 * message: "disk full: PATH has N bytes free (No space left on device)"
 * when rc is ENOSPC or EDQUOT, or EIO while the file system holding path
 * (or its folder) has under 1 MiB free, as a short write turned into EIO
 * looks; else err_str(rc). Written into buf[0..len); returns buf.
 * Defined in errio.c. */
const char *err_io_str(int rc, const char *path, char *buf, size_t len);

#endif
