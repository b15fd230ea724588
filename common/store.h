/* store.h - the dataset store: Examples and DatasetInfo in an LMDB
 * environment, laid out as proto/dataset.proto describes.
 *
 * Writers (gambar-ingest) add examples in large transactions; the map
 * grows on MDB_MAP_FULL (abort the transaction, mdb_env_set_mapsize with
 * no transaction open, retry) instead of failing. Readers (augment, eval,
 * train) open read-only and may be many processes at once. store_open
 * runs mdb_reader_check so slots of killed readers are freed. An
 * environment is never used across fork(): open it in the process that
 * uses it. All mdb_* calls are confined to store.c.
 */
#ifndef GB_STORE_H
#define GB_STORE_H

#include "dataset.pb-c.h"
#include "digest.h"

#include <stddef.h>
#include <stdint.h>

typedef struct store store_t;

#define STORE_RDONLY 1
#define STORE_CREATE 2

/* Open the dataset at path (a folder; created with STORE_CREATE).
 * Returns 0 and *out, or an errno / GB_EDB / GB_EVERSION with the reason
 * logged naming path. */
int store_open(const char *path, int flags, store_t **out);
void store_close(store_t **s);

/* Number of Examples (from DatasetInfo; 0 for a new store). */
uint64_t store_count(const store_t *s);

/* The DatasetInfo as last committed (or as staged by the writer). NULL
 * for a new store with nothing committed. Borrowed: valid until the next
 * store_* call that changes the store, or store_close. */
const Gambar__DatasetInfo *store_info(const store_t *s);

/* Read Example i into *out (caller frees with
 * gambar__example__free_unpacked(*out, NULL)). Returns 0, GB_ENOTFOUND,
 * GB_ECORRUPT (undecodable value). */
int store_get(store_t *s, uint64_t i, Gambar__Example **out);

/* Zero-copy read of Example i's pixels: *px points into the memory map
 * and stays valid until store_close (read-only stores only). Also returns
 * the label. Returns 0 or as store_get. */
int store_get_pixels(store_t *s, uint64_t i, const uint8_t **px, size_t *npx, int32_t *label);

/* Index of the Example whose source SHA-256 is sha, or GB_ENOTFOUND. */
int store_find_sha(store_t *s, const uint8_t sha[DIGEST_LEN], uint64_t *index);

/* WRITER API. Start staging a batch; examples added are invisible to
 * readers until store_commit. store_add assigns ex->index = count and
 * appends; class names must already be registered with store_set_classes
 * (labels index into them). The first store_add (or a committed info)
 * fixes height/width/channels; an Example of another shape is
 * GB_EMISMATCH. store_commit writes the Examples and the updated
 * DatasetInfo (count, digest, license counts, ...) in one transaction.
 * Returns 0, or an errno (ENOSPC: disk full) / GB_EDB; on failure the
 * staged batch is dropped and the store is as before the batch. */
int store_set_classes(store_t *s, const char *const *names, size_t n);
int store_add(store_t *s, Gambar__Example *ex);
int store_commit(store_t *s, const char *source_desc, uint64_t optouts, uint64_t duplicates);

/* Recompute the digest over every stored Example and compare it with
 * DatasetInfo.digest. Returns 0 or GB_ECORRUPT. */
int store_verify(store_t *s);

#endif
