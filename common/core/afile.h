/* afile.h - atomic file replacement, the one way gambar writes a file that
 * readers must see whole or not at all (reports, JSON summaries, PNGs,
 * plans): the bytes go to a temporary file in the same folder
 * (".NAME.tmp.XXXXXX"), which is flushed, fsync'ed, closed, renamed over
 * NAME, and then the folder is fsync'ed so the rename itself survives a
 * crash. After a failure the temporary file is removed and NAME is
 * untouched (or, when only the folder fsync failed, already replaced:
 * the call still fails, so the caller may retry). Failed fsyncs are never
 * retried (after one, Linux may have dropped the dirty pages).
 *
 * Errors are returned as errno values and logged once, naming the path
 * and the operation that failed.
 *
 *   afile_t *a;
 *   if ((rc = afile_open(path, &a))) return rc;
 *   fprintf(afile_stream(a), ...);              // or afile_write
 *   return afile_commit(&a);                     // or afile_abort(&a)
 */
#ifndef GB_AFILE_H
#define GB_AFILE_H

#include <stddef.h>
#include <stdio.h>

typedef struct afile afile_t;

/* Start replacing path: create its temporary file (mode 0644). Returns 0
 * and *out, or an errno (ENAMETOOLONG, EACCES, ENOENT for a missing
 * folder...), logged. */
int afile_open(const char *path, afile_t **out);

/* The stream to write into (borrowed: valid until commit/abort; do not
 * fclose it). Write errors are caught by afile_commit. */
FILE *afile_stream(afile_t *a);

/* Append n bytes. Returns 0 or an errno (the commit will fail too). */
int afile_write(afile_t *a, const void *data, size_t n);

/* Publish: flush, fsync, close, rename over the path, fsync the folder.
 * Returns 0 or an errno, logged with the path. *a is freed and set to
 * NULL either way. */
int afile_commit(afile_t **a);

/* Give up: close and remove the temporary file; the path is untouched.
 * *a is freed and set to NULL; NULL and *a == NULL are fine. */
void afile_abort(afile_t **a);

/* Replace path with the n bytes at data (afile_open + write + commit). */
int afile_write_all(const char *path, const void *data, size_t n);

#endif
