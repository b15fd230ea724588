/* nn_par.c - a tiny fixed pool of helper threads for the nn layer passes
 * that are not GEMMs (see nn_par.h).
 *
 * One job at a time: the caller publishes (fn, ctx, nparts) under a mutex,
 * bumps a generation counter and broadcasts; each helper runs its part and
 * the last one to finish signals back. A dispatch costs two condition
 * variable hand-offs (tens of microseconds), so callers only use it for
 * passes over a whole batch. Helpers sleep on the condition variable
 * between jobs (no spinning that would steal the core from OpenBLAS's own
 * threads). The pool only grows; helpers beyond the current thread count
 * stay asleep. */
#include "base.h"
#include "nn_par.h"

#include <pthread.h>

#define NN_PAR_MAX 64

static pthread_mutex_t par_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t par_busy = PTHREAD_MUTEX_INITIALIZER; /* one dispatch at a time */
static pthread_cond_t par_go = PTHREAD_COND_INITIALIZER;
static pthread_cond_t par_done = PTHREAD_COND_INITIALIZER;
static int par_started;      /* helper threads created */
static int par_active;       /* helpers taking part (threads - 1) */
static uint64_t par_gen;     /* job generation */
static int par_pending;      /* helpers still running the current job */
static int par_nparts;        /* parts of the current job */
static int par_jobhelpers;    /* helpers taking part in the current job */
static int par_parts = 1;     /* threads asked for: every job's part count */
static nn_par_fn par_fn;
static void *par_ctx;
static pthread_t par_th[NN_PAR_MAX];
static uint64_t par_gen0[NN_PAR_MAX]; /* par_gen when helper i was created */
static __thread int par_in_part;      /* this thread is running a part of a job */
static __thread int par_helper;       /* this thread is one of the pool's helpers */

static void *par_main(void *arg) {
    int idx = (int)(intptr_t)arg; /* helper idx runs part idx + 1 */
    par_helper = 1;
    pthread_mutex_lock(&par_mu);
    /* Start from the generation at creation, not the current one: a job
     * published before this thread first took the lock is still ours. */
    uint64_t seen = par_gen0[idx];
    for (;;) {
        while (par_gen == seen) pthread_cond_wait(&par_go, &par_mu);
        seen = par_gen;
        if (idx >= par_jobhelpers) continue; /* not part of this job */
        nn_par_fn fn = par_fn;
        void *ctx = par_ctx;
        int nparts = par_nparts;
        pthread_mutex_unlock(&par_mu);
        par_in_part = 1;
        fn(ctx, idx + 1, nparts);
        par_in_part = 0;
        pthread_mutex_lock(&par_mu);
        if (--par_pending == 0) pthread_cond_signal(&par_done);
    }
    return NULL;
}

/* A forked child has none of the helpers: run every part on its caller
 * until it calls nn_set_threads() again. */
static void par_atfork_child(void) {
    pthread_mutex_init(&par_mu, NULL);
    pthread_mutex_init(&par_busy, NULL);
    pthread_cond_init(&par_go, NULL);
    pthread_cond_init(&par_done, NULL);
    par_started = par_active = par_pending = 0; /* par_parts stays: same bits */
}

static pthread_once_t par_once = PTHREAD_ONCE_INIT;

static void par_register_atfork(void) {
    pthread_atfork(NULL, NULL, par_atfork_child);
}

void nn_par_set_threads(int threads) {
    pthread_once(&par_once, par_register_atfork);
    int want = threads - 1;
    if (want < 0) want = 0;
    if (want > NN_PAR_MAX) want = NN_PAR_MAX;
    pthread_mutex_lock(&par_busy);
    pthread_mutex_lock(&par_mu);
    while (par_started < want) {
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        par_gen0[par_started] = par_gen;
        int rc = pthread_create(&par_th[par_started], &at, par_main, (void *)(intptr_t)par_started);
        pthread_attr_destroy(&at);
        if (rc != 0) break; /* fewer helpers: still correct */
        par_started++;
    }
    par_active = want < par_started ? want : par_started;
    __atomic_store_n(&par_parts, want + 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&par_mu);
    pthread_mutex_unlock(&par_busy);
}

/* Parts lo..hi-1 of nparts on the calling thread, in order. */
static void par_run_here(nn_par_fn fn, void *ctx, int lo, int hi, int nparts) {
    par_in_part = 1;
    for (int p = lo; p < hi; p++) fn(ctx, p, nparts);
    par_in_part = 0;
}

int nn_par_parts(void) {
    return par_in_part ? 1 : __atomic_load_n(&par_parts, __ATOMIC_RELAXED);
}

int nn_par_inside(void) {
    return par_in_part;
}

int nn_par_is_helper(void) {
    return par_helper;
}

void nn_par_run(nn_par_fn fn, void *ctx) {
    if (par_in_part) { /* nested in a part: that part is this job's thread */
        fn(ctx, 0, 1);
        return;
    }
    /* The part count is the thread count asked for, whoever runs the
     * parts: results must not depend on whether the pool was free. */
    int nparts = __atomic_load_n(&par_parts, __ATOMIC_RELAXED);
    if (pthread_mutex_trylock(&par_busy) != 0) { /* another thread is dispatching */
        par_run_here(fn, ctx, 0, nparts, nparts);
        return;
    }
    nparts = par_parts; /* read again under par_busy, which guards its writes */
    int helpers = par_active < nparts - 1 ? par_active : nparts - 1;
    if (helpers == 0) {
        pthread_mutex_unlock(&par_busy);
        par_run_here(fn, ctx, 0, nparts, nparts);
        return;
    }
    pthread_mutex_lock(&par_mu);
    par_fn = fn;
    par_ctx = ctx;
    par_nparts = nparts;
    par_jobhelpers = helpers;
    par_pending = helpers;
    par_gen++;
    pthread_cond_broadcast(&par_go);
    pthread_mutex_unlock(&par_mu);
    par_run_here(fn, ctx, 0, 1, nparts);
    par_run_here(fn, ctx, helpers + 1, nparts, nparts); /* parts of helpers that failed to start */
    pthread_mutex_lock(&par_mu);
    while (par_pending > 0) pthread_cond_wait(&par_done, &par_mu);
    pthread_mutex_unlock(&par_mu);
    pthread_mutex_unlock(&par_busy);
}

void nn_par_run_sized(size_t work, nn_par_fn fn, void *ctx) {
    if (work < NN_PAR_MIN_WORK || par_in_part) fn(ctx, 0, 1);
    else nn_par_run(fn, ctx);
}
