/* afile.h - atomic file replacement, the one way gambar writes a file that
 * readers must see whole or not at all (reports, JSON summaries, PNGs,
 * plans, checkpoints): the bytes go to a temporary file in the same folder
 * (".NAME.tmp.XXXXXX", or a name the caller picks with afile_open_tmp),
 * which is fsync'ed, closed, renamed over NAME, and then the folder is
 * fsync'ed so the rename itself survives a crash. After a failure the
 * temporary file is removed and NAME is untouched, except when only the
 * folder fsync failed: the rename happened but may not survive a crash,
 * so NAME is withdrawn (unlinked; what it held before is gone too) and
 * the call fails, making what readers see match what the caller was told.
 * Failed fsyncs are never retried (after one, Linux may have dropped the
 * dirty pages): call again to retry from scratch.
 *
 * Two ways to write the bytes: afile_write hands each piece straight to
 * write(2) (short writes resumed; callers that produce many small pieces
 * batch them: ckpt.c streams a checkpoint in 1 MiB chunks), or
 * afile_stream gives a stdio stream for fprintf. Once the stream has been
 * asked for, afile_write goes through it too, so the order is kept.
 *
 * Errors are returned as errno values and logged once, naming the path
 * and the operation that failed.
 *
 *   afile_t *a;
 *   if ((rc = afile_open(path, &a))) return rc;
 *   fprintf(afile_stream(a), ...);              // or afile_write
 *   return afile_commit(&a);                     // or afile_abort(&a)
 *
 * Test hook: afile_test_fail_at makes the k-th I/O call fail with EIO, in
 * the style of SQLite's I/O error tests (works under ASan, unlike an
 * LD_PRELOAD shim, which tests/faultinj is for the stages).
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

/* Like afile_open, but the temporary file is tmp (which must be in
 * path's folder), created or truncated: for a caller that finds and
 * removes its own leftovers by name (ckpt.c's ".ckpt-STEP.PID.tmp" tells
 * whether its writer is still alive). Two writers must not share a tmp. */
int afile_open_tmp(const char *path, const char *tmp, afile_t **out);

/* The stream to write into (borrowed: valid until commit/abort; do not
 * fclose it). Write errors are caught by afile_commit. */
FILE *afile_stream(afile_t *a);

/* Append n bytes. Returns 0 or an errno (logged once; the commit will
 * fail too, with the same errno). */
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

/* ---- test hooks (process-wide; for tests only) ------------------------- */

/* Make the k-th I/O call made by afile after this call (creating the
 * temporary file, each write(2) or stream flush, fsync, close, rename,
 * opening the folder, fsync of the folder) fail with EIO; k <= 0 turns
 * injection off and resets the count. */
void afile_test_fail_at(int k);

/* on != 0: every write(2) made by afile writes only about half of the
 * bytes asked (as a signal or a full device may cause), to prove that
 * short writes are resumed. */
void afile_test_short_writes(int on);

/* Number of injectable I/O calls made since the last afile_test_fail_at. */
int afile_test_io_calls(void);

#endif
