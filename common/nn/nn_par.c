/* nn_par.c - a tiny fixed pool of helper threads for the nn layer passes
 * (see nn_par.h).
 *
 * One job at a time: the caller stores (fn, ctx, nparts), then publishes
 * the job by bumping one atomic word that holds the generation and the
 * number of helpers taking part; each helper runs its part and counts
 * par_pending down. A training step hands off a few hundred jobs, many
 * of them a few microseconds long, so a condition-variable hand-off each
 * way (tens of microseconds: a futex wake and a reschedule) cost a large
 * share of the step at 2 threads. So both sides spin first: a helper
 * watches the job word, and the caller watches par_pending, for up to
 * PAR_SPIN_NS, and only then sleep on a condition variable. Sleeping is
 * announced in par_sleepers / par_waiting before the last check, and the
 * other side reads that counter after its own store (both sequentially
 * consistent, Dekker-style), so a wake-up is never lost and the mutex is
 * only touched when somebody sleeps. The spin is bounded in time, so an
 * idle process (a sampler between requests) goes back to sleep within
 * PAR_SPIN_NS of its last job. The pool only grows; helpers beyond the
 * current thread count take no part in jobs. */
#include "base.h"
#include "nn_par.h"

#include <pthread.h>

#define NN_PAR_MAX 64
#define PAR_SPIN_NS 50000 /* spin this long before sleeping (either side) */
#define PAR_HBITS 7       /* low bits of the job word: helpers taking part (<= NN_PAR_MAX) */

static pthread_mutex_t par_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t par_busy = PTHREAD_MUTEX_INITIALIZER; /* one dispatch at a time */
static pthread_cond_t par_go = PTHREAD_COND_INITIALIZER;
static pthread_cond_t par_done = PTHREAD_COND_INITIALIZER;
static int par_started;      /* helper threads created */
static int par_active;       /* helpers taking part (threads - 1) */
static uint64_t par_job;     /* atomic: generation << PAR_HBITS | helpers of that job */
static int par_pending;      /* atomic: helpers still running the current job */
static int par_sleepers;     /* atomic: helpers asleep (or about to be) on par_go */
static int par_waiting;      /* atomic: the caller is asleep (or about to be) on par_done */
static int par_nparts;       /* parts of the current job */
static int par_parts = 1;    /* threads asked for: every job's part count */
static nn_par_fn par_fn;
static void *par_ctx;
static pthread_t par_th[NN_PAR_MAX];
static uint64_t par_job0[NN_PAR_MAX]; /* par_job when helper i was created */
static __thread int par_in_part;      /* this thread is running a part of a job */
static __thread int par_helper;       /* this thread is one of the pool's helpers */

static inline void par_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Whether a spin that began at *t0 (0: not read yet) has lasted
 * PAR_SPIN_NS; called once per spin, it reads the clock every 64th. */
static int par_spin_over(unsigned i, double *t0) {
    if (i & 63) return 0;
    double t = gb_now();
    if (*t0 == 0) *t0 = t;
    return t - *t0 > PAR_SPIN_NS * 1e-9;
}

/* Spin until *word differs from `old` (returns 1) or PAR_SPIN_NS passed
 * (returns 0). */
static int par_spin_u64(const uint64_t *word, uint64_t old) {
    double t0 = 0;
    for (unsigned i = 1; !par_spin_over(i, &t0); i++) {
        if (__atomic_load_n(word, __ATOMIC_ACQUIRE) != old) return 1;
        par_relax();
    }
    return 0;
}

/* The same until *word is 0. */
static int par_spin_zero(const int *word) {
    double t0 = 0;
    for (unsigned i = 1; !par_spin_over(i, &t0); i++) {
        if (__atomic_load_n(word, __ATOMIC_ACQUIRE) == 0) return 1;
        par_relax();
    }
    return 0;
}

static void *par_main(void *arg) {
    int idx = (int)(intptr_t)arg; /* helper idx runs part idx + 1 */
    par_helper = 1;
    /* Start from the job word at creation, not the current one: a job
     * published before this thread first looked is still ours. */
    pthread_mutex_lock(&par_mu);
    uint64_t seen = par_job0[idx];
    pthread_mutex_unlock(&par_mu);
    for (;;) {
        if (!par_spin_u64(&par_job, seen)) {
            pthread_mutex_lock(&par_mu);
            __atomic_add_fetch(&par_sleepers, 1, __ATOMIC_SEQ_CST);
            while (__atomic_load_n(&par_job, __ATOMIC_SEQ_CST) == seen) pthread_cond_wait(&par_go, &par_mu);
            __atomic_sub_fetch(&par_sleepers, 1, __ATOMIC_SEQ_CST);
            pthread_mutex_unlock(&par_mu);
        }
        /* Jobs come one at a time and the caller waits for this helper
         * when it takes part, so the word moved by exactly one job for a
         * helper that takes part; a helper left out may have missed some,
         * which is harmless: the helper count comes from the same word. */
        seen = __atomic_load_n(&par_job, __ATOMIC_ACQUIRE);
        int helpers = (int)(seen & ((1u << PAR_HBITS) - 1));
        if (idx >= helpers) continue; /* not part of this job */
        par_in_part = 1;
        par_fn(par_ctx, idx + 1, par_nparts);
        par_in_part = 0;
        if (__atomic_sub_fetch(&par_pending, 1, __ATOMIC_SEQ_CST) == 0 &&
            __atomic_load_n(&par_waiting, __ATOMIC_SEQ_CST)) {
            pthread_mutex_lock(&par_mu);
            pthread_cond_signal(&par_done);
            pthread_mutex_unlock(&par_mu);
        }
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
    par_started = par_active = par_pending = par_sleepers = par_waiting = 0; /* par_parts stays: same bits */
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
        par_job0[par_started] = __atomic_load_n(&par_job, __ATOMIC_RELAXED);
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
    par_fn = fn;
    par_ctx = ctx;
    par_nparts = nparts;
    __atomic_store_n(&par_pending, helpers, __ATOMIC_RELAXED);
    uint64_t job = ((__atomic_load_n(&par_job, __ATOMIC_RELAXED) >> PAR_HBITS) + 1) << PAR_HBITS | (uint64_t)helpers;
    __atomic_store_n(&par_job, job, __ATOMIC_SEQ_CST); /* publishes the fields above */
    if (__atomic_load_n(&par_sleepers, __ATOMIC_SEQ_CST) > 0) {
        pthread_mutex_lock(&par_mu);
        pthread_cond_broadcast(&par_go);
        pthread_mutex_unlock(&par_mu);
    }
    par_run_here(fn, ctx, 0, 1, nparts);
    par_run_here(fn, ctx, helpers + 1, nparts, nparts); /* parts of helpers that failed to start */
    if (!par_spin_zero(&par_pending)) {
        pthread_mutex_lock(&par_mu);
        __atomic_store_n(&par_waiting, 1, __ATOMIC_SEQ_CST);
        while (__atomic_load_n(&par_pending, __ATOMIC_SEQ_CST) > 0) pthread_cond_wait(&par_done, &par_mu);
        __atomic_store_n(&par_waiting, 0, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&par_mu);
    }
    pthread_mutex_unlock(&par_busy);
}

void nn_par_run_sized(size_t work, nn_par_fn fn, void *ctx) {
    if (work < NN_PAR_MIN_WORK) fn(ctx, 0, 1);
    else nn_par_run(fn, ctx);
}
