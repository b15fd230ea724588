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
 * logged naming path. A read-only open of a folder without data.mdb is
 * ENOENT ("no dataset at PATH"). A store_t is used by one thread at a
 * time, except that the readers' store_get_pixels may be called from
 * several threads at once (it takes an internal lock). */
int store_open(const char *path, int flags, store_t **out);

/* As store_open, with the initial map size in bytes for a writer (0 = the
 * default 64 MiB, or the size the file already has if larger). Tests use
 * a tiny value to exercise map growth. */
int store_open_map(const char *path, int flags, size_t map_bytes, store_t **out);

/* Close and free; a writer's uncommitted batch is dropped. Accepts NULL
 * and *s == NULL; sets *s to NULL. A writer syncs the database first:
 * returns 0, or the error of that final sync (logged; the committed
 * transactions may not be durable), which a writer must not ignore. */
int store_close(store_t **s);

/* Writer: examples staged by store_add and not yet committed, and the
 * bytes they take (the caller commits when this gets large). */
uint64_t store_staged(const store_t *s);
size_t store_staged_bytes(const store_t *s);

/* Current size of the memory map in bytes (grows on MDB_MAP_FULL). */
size_t store_map_size(const store_t *s);

/* Number of committed Examples (from DatasetInfo; 0 for a new store).
 * A writer's staged examples are not included (see store_staged). */
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

/* Drop the memory map's pages from this process's resident set: they
 * stay in the page cache and fault back in on the next read, and pointers
 * from store_get_pixels stay valid. A reader scanning a whole dataset once
 * (gambar-train --db) calls it every few thousand examples so its peak RSS
 * does not grow with the dataset. Either mode; nothing for a map it cannot
 * find. */
void store_release_pages(store_t *s);

/* Index of the Example whose source SHA-256 is sha, or GB_ENOTFOUND.
 * For a writer this includes the staged (uncommitted) examples; a writer
 * answers most "not found" from an in-memory Bloom filter built on first
 * use (about 1.5 bytes per example). */
int store_find_sha(store_t *s, const uint8_t sha[DIGEST_LEN], uint64_t *index);

/* Writer: hint that about n more examples will be added (sizes the Bloom
 * filter of store_find_sha). Optional. */
void store_expect(store_t *s, uint64_t n);

/* WRITER API. Start staging a batch; examples added are invisible to
 * readers until store_commit. store_add assigns ex->index = count and
 * appends; class names must already be registered with store_set_classes
 * (labels index into them). The first store_add (or a committed info)
 * fixes height/width/channels; an Example of another shape is
 * GB_EMISMATCH. store_commit writes the Examples and the updated
 * DatasetInfo (count, digest, license counts, ...) in one transaction.
 * Returns 0, or an errno (ENOSPC: disk full) / GB_EDB; on failure the
 * staged batch is dropped and the store is as before the batch.
 *
 * store_set_classes: on a store that already has class names they must be
 * the same list (GB_EMISMATCH otherwise). store_add copies what it needs
 * (ex stays the caller's); it checks shape, channels (1 or 3), the label
 * range and that source_sha256 has 32 bytes (GB_EMISMATCH / GB_EFORMAT);
 * label_name is filled from the class list. store_commit: optouts and
 * duplicates are added to DatasetInfo's counters; source_desc (may be
 * NULL) is appended to DatasetInfo.source unless already there. A commit
 * with nothing staged still updates the counters and the info. */
int store_set_classes(store_t *s, const char *const *names, size_t n);
int store_add(store_t *s, Gambar__Example *ex);
int store_commit(store_t *s, const char *source_desc, uint64_t optouts, uint64_t duplicates);

/* As store_commit, but the transaction is written and synced by a
 * background thread while the caller stages the next batch; returns at
 * once (0), or the error of the previous background commit. At most one
 * batch is in flight: the next store_commit_async / store_commit /
 * store_flush / store_verify / store_close waits for it first. When a
 * background commit fails, that next call returns its error (an errno
 * such as ENOSPC, GB_EDB, GB_EMISMATCH), everything staged since is
 * dropped, earlier commits stay intact, and the error sticks. store_count
 * and store_info describe committed data only; read store_info after a
 * store_flush (its answer is rebuilt by the thread). */
int store_commit_async(store_t *s, const char *source_desc, uint64_t optouts, uint64_t duplicates);
/* Wait for the commit in flight, if any. Returns 0 or its error. */
int store_flush(store_t *s);

/* Recompute the digest over every stored Example and compare it with
 * DatasetInfo.digest. Returns 0 or GB_ECORRUPT. */
int store_verify(store_t *s);

#endif
