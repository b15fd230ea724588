/* test_model.c - the model module beyond the golden step: finite-difference
 * gradient checks of the conditional models (both losses, embeddings
 * included), bit-exact determinism, every family's shapes and tensor
 * names, inference, and the rejection of bad descriptions and labels. */
#include "base.h"
#include "err.h"
#include "model.h"
#include "rng.h"
#include "test.h"

#include <math.h>
#include <pthread.h>

/* ---- helpers ------------------------------------------------------------ */

static void fill_normal(float *x, size_t n, uint64_t seed, float scale) {
    rng_t r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = scale * rng_normal(&r);
}

static void fill_images(float *x, size_t n, uint64_t seed) {
    rng_t r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = 2.0f * rng_uniform(&r) - 1.0f;
}

/* A copy of every state tensor (params, buffers, EMA, Adam moments) and
 * the Adam states, to restore the model exactly. */
typedef struct {
    float **data;
    int n;
    adam_t adam[2];
} snap_t;

static int is_state(const model_tensor_t *t) { return t->kind != MODEL_T_GRAD; }

static void snap_take(snap_t *s, model_t *m) {
    s->n = model_tensor_count(m);
    s->data = xcalloc((size_t)s->n, sizeof(float *));
    for (int i = 0; i < s->n; i++) {
        const model_tensor_t *t = model_tensor(m, i);
        if (!is_state(t)) continue;
        s->data[i] = xmalloc(t->n * sizeof(float));
        memcpy(s->data[i], t->data, t->n * sizeof(float));
    }
    s->adam[0] = *model_adam(m, MODEL_G);
    s->adam[1] = *model_adam(m, MODEL_D);
}

static void snap_restore(const snap_t *s, model_t *m) {
    for (int i = 0; i < s->n; i++) {
        const model_tensor_t *t = model_tensor(m, i);
        if (s->data[i]) memcpy(t->data, s->data[i], t->n * sizeof(float));
    }
    *model_adam(m, MODEL_G) = s->adam[0];
    *model_adam(m, MODEL_D) = s->adam[1];
}

static void snap_free(snap_t *s) {
    for (int i = 0; i < s->n; i++) free(s->data[i]);
    free(s->data);
}

static model_desc_t small_desc(model_family_t f, int conditional, model_loss_t loss) {
    model_desc_t d;
    model_desc_default(&d, f);
    d.g_mult = d.d_mult = 4;
    d.z_dim = 6;
    d.loss = loss;
    if (conditional) {
        d.conditional = 1;
        d.num_classes = 3;
        d.embed_dim = 5;
    }
    return d;
}

/* ---- finite differences --------------------------------------------------- */

typedef struct {
    model_t *m;
    const float *real, *z;
    const int32_t *labels, *flabels;
    int N;
} batch_t;

static float step_loss(batch_t *b, int which) {
    model_stats_t st;
    int rc = model_train_step(b->m, b->real, b->labels, b->N, b->z, b->flabels, &st);
    ASSERT(rc == 0);
    return which == MODEL_D ? st.loss_d : st.loss_g;
}

/* Check the analytic gradient of loss_d (net D) or loss_g (net G, with D
 * frozen by lr 0 so the G step sees the same D) against finite differences
 * on a sample of elements of every parameter tensor.
 *
 * ReLU/LeakyReLU units make the loss piecewise smooth with kinks every
 * ~1e-5 in a weight here (thousands of units cross zero), so a plain
 * central difference at any step size float32 can resolve compares the
 * gradient at one point with a slope averaged over kinks. Instead compare
 * two integrals over a window [p-H, p+H]: the secant
 * (L(p+H) - L(p-H)) / 2H against the mean of the analytic gradient at K
 * midpoints of the window. Both see the same kinks, so they agree to a
 * few percent for a correct gradient, and a wrong one (missing path,
 * wrong factor or sign) is far off. */
#define FD_K 10
#define FD_H 5e-4f
static void fd_check(model_t *m, batch_t *b, model_net_t net) {
    if (net == MODEL_G) model_adam(m, MODEL_D)->lr = 0.0f;
    snap_t s;
    snap_take(&s, m);
    step_loss(b, net);
    int nt = model_tensor_count(m);
    int checked = 0, bad = 0, strict_bad = 0, tensors = 0;
    rng_t r;
    rng_seed(&r, 99);
    for (int i = 0; i < nt; i++) {
        const model_tensor_t *gt = model_tensor(m, i);
        if (gt->kind != MODEL_T_GRAD || gt->net != net) continue;
        char pname[80];
        snprintf(pname, sizeof pname, "%s", gt->name + 5); /* strip "GRAD." */
        const model_tensor_t *pt = model_find(m, pname);
        CHECKF(pt != NULL, "no parameter %s", pname);
        if (!pt) continue;
        tensors++;
        /* the largest-gradient element plus a few random ones */
        size_t idx[4], best = 0;
        for (size_t j = 1; j < gt->n; j++)
            if (fabsf(gt->data[j]) > fabsf(gt->data[best])) best = j;
        float gmax = fabsf(gt->data[best]);
        CHECKF(gmax > 0, "%s: gradient is all zero", gt->name);
        idx[0] = best;
        for (int k = 1; k < 4; k++) idx[k] = rng_below(&r, gt->n);
        for (int k = 0; k < 4; k++) {
            size_t j = idx[k];
            snap_restore(&s, m);
            float p0 = pt->data[j];
            double an = 0;
            for (int q = 0; q < FD_K; q++) {
                snap_restore(&s, m);
                pt->data[j] = p0 - FD_H + (q + 0.5f) * (2 * FD_H / FD_K);
                step_loss(b, net);
                an += gt->data[j];
            }
            an /= FD_K;
            snap_restore(&s, m);
            pt->data[j] = p0 + FD_H;
            float lp = step_loss(b, net);
            snap_restore(&s, m);
            pt->data[j] = p0 - FD_H;
            float lm = step_loss(b, net);
            double fd = ((double)lp - lm) / (2.0 * FD_H);
            double scale = fmax(fabs(fd), fabs(an));
            checked++;
            if (fabs(fd - an) > 3e-2 * scale + 3e-3 * gmax + 1e-3) strict_bad++;
            if (fabs(fd - an) > 1e-1 * scale + 1e-2 * gmax + 2e-3) {
                bad++;
                fprintf(stderr, "%s[%zu]: analytic %.6g, numeric %.6g\n", pt->name, j, an, fd);
            }
            if (getenv("FD_VERBOSE")) fprintf(stderr, "%s[%zu]: analytic %.6g, numeric %.6g\n", pt->name, j, an, fd);
        }
    }
    snap_restore(&s, m);
    CHECKF(bad == 0, "%s: %d of %d sampled gradients disagree with finite differences", net ? "D" : "G", bad,
           checked);
    CHECKF(strict_bad * 10 <= checked, "%s: %d of %d sampled gradients outside the strict tolerance",
           net ? "D" : "G", strict_bad, checked);
    CHECK(tensors >= 5);
    snap_free(&s);
}

static void fd_case(model_family_t f, model_loss_t loss) {
    model_desc_t d = small_desc(f, 1, loss);
    int N = 8;
    model_t *m = model_new(&d, N, 7);
    ASSERT(m);
    size_t img = model_image_floats(m);
    float *real = xmalloc(N * img * sizeof(float)), *z = xmalloc((size_t)N * d.z_dim * sizeof(float));
    fill_images(real, N * img, 1);
    fill_normal(z, (size_t)N * d.z_dim, 2, 1.0f);
    int32_t labels[8] = {0, 2, 1, 2, 1, 0, 0, 2}, flabels[8] = {1, 1, 0, 2, 2, 0, 1, 2};
    /* a few ordinary steps first, so the check is not only at init */
    for (int i = 0; i < 2; i++) CHECK(model_train_step(m, real, labels, N, z, flabels, NULL) == 0);
    /* larger embeddings on D make the projection term matter */
    const model_tensor_t *de = model_find(m, "D.embed.weight");
    if (de) fill_normal(de->data, de->n, 3, 0.05f);
    batch_t b = {m, real, z, labels, flabels, N};
    int threads = nn_get_threads();
    nn_set_threads(1); /* tiny GEMMs: thread hand-offs would dominate */
    fd_check(m, &b, MODEL_D);
    fd_check(m, &b, MODEL_G);
    nn_set_threads(threads);
    free(real);
    free(z);
    model_free(m);
}

static void test_fd_dcgan28_cond_bce(void) { fd_case(MODEL_DCGAN28, MODEL_LOSS_BCE); }
static void test_fd_dcgan32_cond_hinge(void) { fd_case(MODEL_DCGAN32, MODEL_LOSS_HINGE); }

/* ---- determinism ------------------------------------------------------------ */

static void test_determinism(void) {
    model_desc_t d = small_desc(MODEL_DCGAN28, 1, MODEL_LOSS_BCE);
    d.g_mult = d.d_mult = 8;
    d.z_dim = 100;
    d.embed_dim = 10;
    int N = 8;
    model_t *a = model_new(&d, N, 42), *b = model_new(&d, N, 42), *c = model_new(&d, N, 43);
    ASSERT(a && b && c);
    size_t img = model_image_floats(a);
    float *real = xmalloc(N * img * sizeof(float)), *z = xmalloc((size_t)N * 100 * sizeof(float));
    int32_t labels[8], flabels[8];
    for (int i = 0; i < N; i++) {
        labels[i] = i % 3;
        flabels[i] = (i * 7 + 1) % 3;
    }
    for (int s = 0; s < 3; s++) {
        fill_images(real, N * img, 10 + s);
        fill_normal(z, (size_t)N * 100, 20 + s, 1.0f);
        CHECK(model_train_step(a, real, labels, N, z, flabels, NULL) == 0);
        CHECK(model_train_step(b, real, labels, N, z, flabels, NULL) == 0);
        CHECK(model_train_step(c, real, labels, N, z, flabels, NULL) == 0);
    }
    int same = 1, differ = 0;
    for (int i = 0; i < model_tensor_count(a); i++) {
        const model_tensor_t *ta = model_tensor(a, i), *tb = model_tensor(b, i), *tc = model_tensor(c, i);
        CHECK(strcmp(ta->name, tb->name) == 0 && ta->n == tb->n);
        if (memcmp(ta->data, tb->data, ta->n * sizeof(float)) != 0) {
            same = 0;
            fprintf(stderr, "%s differs between identical runs\n", ta->name);
        }
        if (ta->kind == MODEL_T_PARAM && memcmp(ta->data, tc->data, ta->n * sizeof(float)) != 0) differ++;
    }
    CHECK(same);
    CHECK(differ > 0); /* another seed gives another model */
    CHECK(model_adam(a, MODEL_G)->t == 3 && model_adam(b, MODEL_D)->t == 3);
    free(real);
    free(z);
    model_free(a);
    model_free(b);
    model_free(c);
}

/* ---- micro-batches ----------------------------------------------------------- */

/* P "processes" (threads, each with its own model) that each compute M/P
 * micro-batches and gather the others' records through shared memory,
 * as MPI_Allgather would. */
#define MB_P 4
typedef struct {
    pthread_barrier_t bar;
    unsigned char *shared;
    /* the gradient sum passed along the "processes", as MPI_Send/Recv
     * and MPI_Bcast would: turn = the process whose recv_prefix may read
     * sum, MB_P = the total is there */
    float *sum;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int turn;
} mb_world_t;

typedef struct {
    mb_world_t *w;
    int rank, M;
    model_t *m;
    const float *real, *z;
    const int32_t *labels, *flabels;
    int N, steps, rc;
} mb_proc_t;

static int mb_gather(void *ctx, void *recs, size_t rec_bytes, int M) {
    mb_proc_t *p = ctx;
    size_t per = (size_t)(M / MB_P) * rec_bytes, off = (size_t)p->rank * per;
    memcpy(p->w->shared + off, (unsigned char *)recs + off, per);
    pthread_barrier_wait(&p->w->bar);
    memcpy(recs, p->w->shared, (size_t)M * rec_bytes);
    pthread_barrier_wait(&p->w->bar);
    return 0;
}

static int mb_recv_prefix(void *ctx, float *acc, size_t n) {
    mb_proc_t *p = ctx;
    mb_world_t *w = p->w;
    pthread_mutex_lock(&w->mu);
    while (w->turn != p->rank) pthread_cond_wait(&w->cv, &w->mu);
    memcpy(acc, w->sum, n * sizeof(float));
    pthread_mutex_unlock(&w->mu);
    return 0;
}

static int mb_share_sum(void *ctx, float *acc, size_t n) {
    mb_proc_t *p = ctx;
    mb_world_t *w = p->w;
    pthread_mutex_lock(&w->mu);
    memcpy(w->sum, acc, n * sizeof(float)); /* to the next one, or the total */
    w->turn = p->rank + 1;
    pthread_cond_broadcast(&w->cv);
    while (w->turn != MB_P) pthread_cond_wait(&w->cv, &w->mu);
    memcpy(acc, w->sum, n * sizeof(float));
    pthread_mutex_unlock(&w->mu);
    pthread_barrier_wait(&w->bar);
    if (p->rank == 0) w->turn = 0;
    pthread_barrier_wait(&w->bar);
    return 0;
}

static void *mb_proc_run(void *arg) {
    mb_proc_t *p = arg;
    int k = p->M / MB_P;
    model_split_t sp = {p->M, p->rank * k, (p->rank + 1) * k, mb_gather, mb_recv_prefix, mb_share_sum, p};
    for (int s = 0; s < p->steps && !p->rc; s++)
        p->rc = model_train_step_split(p->m, p->real + (size_t)s * p->N * model_image_floats(p->m),
                                       p->labels, p->N, p->z + (size_t)s * p->N * model_desc(p->m)->z_dim,
                                       p->flabels, &sp, NULL);
    return NULL;
}

/* Number of state tensors (not gradients) that differ between a and b. */
static int state_diff(model_t *a, model_t *b) {
    int n = 0;
    for (int i = 0; i < model_tensor_count(a); i++) {
        const model_tensor_t *ta = model_tensor(a, i), *tb = model_tensor(b, i);
        if (ta->kind != MODEL_T_GRAD && memcmp(ta->data, tb->data, ta->n * sizeof(float)) != 0) n++;
    }
    return n;
}

/* M = 4 micro-batches in one call and in 4 processes of one micro-batch
 * each give bit-identical models (and M = 1 through the split call equals
 * model_train_step); M = 4 differs from M = 1 (ghost batch norm). */
static void mb_case(int conditional, model_loss_t loss) {
    model_desc_t d = small_desc(MODEL_DCGAN28, conditional, loss);
    d.g_mult = d.d_mult = 6;
    d.z_dim = 12;
    const int N = 16, M = 4, S = 3;
    model_t *one = model_new(&d, N, 7), *whole = model_new(&d, N, 7), *m1 = model_new(&d, N, 7);
    model_t *procs[MB_P];
    for (int r = 0; r < MB_P; r++) procs[r] = model_new(&d, N, 7);
    size_t img = model_image_floats(one);
    float *real = xmalloc((size_t)S * N * img * sizeof(float)), *z = xmalloc((size_t)S * N * 12 * sizeof(float));
    fill_images(real, (size_t)S * N * img, 3);
    fill_normal(z, (size_t)S * N * 12, 4, 1.0f);
    int32_t labels[16], flabels[16];
    for (int i = 0; i < N; i++) {
        labels[i] = i % 3;
        flabels[i] = (i * 5 + 2) % 3;
    }
    model_split_t sp4 = {M, 0, M, NULL, NULL, NULL, NULL}, sp1 = {1, 0, 1, NULL, NULL, NULL, NULL};
    model_stats_t st4, st1;
    for (int s = 0; s < S; s++) {
        const float *rs = real + (size_t)s * N * img, *zs = z + (size_t)s * N * 12;
        CHECK(model_train_step_split(whole, rs, labels, N, zs, flabels, &sp4, &st4) == 0);
        CHECK(model_train_step_split(m1, rs, labels, N, zs, flabels, &sp1, &st1) == 0);
        CHECK(model_train_step(one, rs, labels, N, zs, flabels, NULL) == 0);
    }
    mb_world_t w;
    /* a broken gather can leave a "process" stuck at the barrier while
     * another returned: fail (SIGALRM) rather than hang */
    alarm(120);
    pthread_barrier_init(&w.bar, NULL, MB_P);
    w.shared = xmalloc((size_t)16 << 20);
    w.sum = xmalloc((size_t)16 << 20);
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    w.turn = 0;
    mb_proc_t pr[MB_P];
    pthread_t th[MB_P];
    for (int r = 0; r < MB_P; r++) {
        pr[r] = (mb_proc_t){&w, r, M, procs[r], real, z, labels, flabels, N, S, 0};
        ASSERT(pthread_create(&th[r], NULL, mb_proc_run, &pr[r]) == 0);
    }
    for (int r = 0; r < MB_P; r++) {
        pthread_join(th[r], NULL);
        CHECK(pr[r].rc == 0);
    }
    for (int r = 0; r < MB_P; r++) CHECKF(state_diff(whole, procs[r]) == 0, "process %d differs", r);
    CHECK(state_diff(one, m1) == 0);
    CHECK(state_diff(whole, one) > 0);
    CHECK(isfinite(st4.loss_d) && isfinite(st4.loss_g) && st4.d_real > 0 && st4.d_real < 1);
    alarm(0);
    pthread_barrier_destroy(&w.bar);
    free(w.shared);
    free(w.sum);
    free(real);
    free(z);
    model_free(one);
    model_free(whole);
    model_free(m1);
    for (int r = 0; r < MB_P; r++) model_free(procs[r]);
}

static void test_micro_batches_cond(void) { mb_case(1, MODEL_LOSS_BCE); }
static void test_micro_batches_hinge(void) { mb_case(0, MODEL_LOSS_HINGE); }

/* ---- families, names, inference ------------------------------------------------ */

static void check_shape(model_t *m, const char *name, int ndim, int64_t a, int64_t b, int64_t c, int64_t e) {
    const model_tensor_t *t = model_find(m, name);
    CHECKF(t != NULL, "missing tensor %s", name);
    if (!t) return;
    int64_t want[4] = {a, b, c, e};
    CHECKF(t->ndim == ndim, "%s: ndim %d, want %d", name, t->ndim, ndim);
    for (int i = 0; i < ndim; i++)
        CHECKF(t->shape[i] == want[i], "%s: dim %d is %lld, want %lld", name, i, (long long)t->shape[i],
               (long long)want[i]);
}

static void family_case(model_family_t f, int channels, int conditional) {
    model_desc_t d = small_desc(f, conditional, MODEL_LOSS_BCE);
    d.channels = channels;
    int N = 3, S = d.height;
    model_t *m = model_new(&d, N, 5);
    CHECKF(m != NULL, "model_new %s", model_family_name(f));
    if (!m) return;
    CHECK(model_image_floats(m) == (size_t)channels * S * S);
    int zin = d.z_dim + (conditional ? d.embed_dim : 0);
    if (f == MODEL_DCGAN28) {
        check_shape(m, "G.net_0.weight", 4, zin, 16, 7, 7);
        check_shape(m, "G.net_6.weight", 4, 8, channels, 4, 4);
        check_shape(m, "D.net_5.weight", 4, 1, 16, 7, 7);
        check_shape(m, "D.net_3.running_var", 1, 16, 0, 0, 0);
    } else if (f == MODEL_DCGAN32) {
        check_shape(m, "G.net_0.weight", 4, zin, 16, 4, 4);
        check_shape(m, "G.net_9.weight", 4, 4, channels, 4, 4);
        check_shape(m, "D.net_0.weight", 4, 4, channels, 4, 4);
        check_shape(m, "D.net_8.weight", 4, 1, 16, 4, 4);
        check_shape(m, "EMA.G.net_7.running_mean", 1, 4, 0, 0, 0);
    } else {
        check_shape(m, "G.net_0.weight", 4, zin, 32, 4, 4);
        check_shape(m, "G.net_12.weight", 4, 4, channels, 4, 4);
        check_shape(m, "D.net_11.weight", 4, 1, 32, 4, 4);
        check_shape(m, "OPT.D.v.net_9.bias", 1, 32, 0, 0, 0);
    }
    if (conditional) {
        check_shape(m, "G.embed.weight", 2, 3, 5, 0, 0);
        check_shape(m, "D.embed.weight", 2, 3, f == MODEL_DCGAN64 ? 32 : 16, 0, 0);
    } else {
        CHECK(model_find(m, "G.embed.weight") == NULL);
    }
    /* names unique, and every PARAM has its GRAD, OPT m/v twins */
    size_t np[2] = {0, 0};
    for (int i = 0; i < model_tensor_count(m); i++) {
        const model_tensor_t *t = model_tensor(m, i);
        for (int j = 0; j < i; j++) CHECKF(strcmp(t->name, model_tensor(m, j)->name) != 0, "dup %s", t->name);
        if (t->kind == MODEL_T_PARAM) {
            char n2[96];
            np[t->net] += t->n;
            snprintf(n2, sizeof n2, "GRAD.%s", t->name);
            CHECKF(model_find(m, n2) != NULL, "missing %s", n2);
            snprintf(n2, sizeof n2, "OPT.%c.m.%s", t->name[0], t->name + 2);
            CHECKF(model_find(m, n2) != NULL, "missing %s", n2);
            snprintf(n2, sizeof n2, "OPT.%c.v.%s", t->name[0], t->name + 2);
            CHECKF(model_find(m, n2) != NULL, "missing %s", n2);
            if (t->net == MODEL_G) {
                snprintf(n2, sizeof n2, "EMA.%s", t->name);
                CHECKF(model_find(m, n2) != NULL, "missing %s", n2);
            }
        }
    }
    CHECK(np[0] == model_param_count(m, MODEL_G) && np[1] == model_param_count(m, MODEL_D));
    size_t bytes = model_memory_bytes(&d, N);
    CHECKF(bytes > 4 * (np[0] + np[1]) * sizeof(float) && bytes < 64u << 20, "model_memory_bytes %zu", bytes);
    CHECK(model_memory_bytes(&d, 2 * N) > bytes && model_memory_bytes(&d, 0) == 0);

    size_t img = model_image_floats(m);
    float *real = xmalloc(N * img * sizeof(float)), *z = xmalloc((size_t)N * d.z_dim * sizeof(float));
    fill_images(real, N * img, 1);
    fill_normal(z, (size_t)N * d.z_dim, 2, 1.0f);
    int32_t labels[3] = {0, 1, 2};
    model_stats_t st;
    for (int s = 0; s < 3; s++) CHECK(model_train_step(m, real, labels, N, z, labels, &st) == 0);
    CHECK(isfinite(st.loss_d) && isfinite(st.loss_g) && st.grad_norm_d > 0 && st.grad_norm_g > 0);
    /* generation: 7 images through a max batch of 3, values in [-1, 1];
     * eval-mode BN makes each image independent of its chunk */
    int G = 7;
    float *zz = xmalloc((size_t)G * d.z_dim * sizeof(float)), *out = xmalloc(G * img * sizeof(float));
    float *one = xmalloc(img * sizeof(float));
    int32_t gl[7] = {0, 1, 2, 0, 1, 2, 2};
    fill_normal(zz, (size_t)G * d.z_dim, 9, 1.0f);
    CHECK(model_generate(m, zz, gl, G, 1, out) == 0);
    int inrange = 1;
    for (size_t i = 0; i < G * img; i++) inrange &= out[i] >= -1.0f && out[i] <= 1.0f;
    CHECK(inrange);
    CHECK(model_generate(m, zz + 6 * d.z_dim, gl + 6, 1, 1, one) == 0);
    double e = 0;
    for (size_t i = 0; i < img; i++) e = fmax(e, fabs(one[i] - out[6 * img + i]));
    CHECKF(e < 1e-5, "image 6 alone differs from image 6 in a batch by %g", e);
    CHECK(model_generate(m, zz, gl, 1, 0, one) == 0);
    e = 0;
    for (size_t i = 0; i < img; i++) e = fmax(e, fabs(one[i] - out[i]));
    CHECKF(e > 0, "EMA and raw G give identical images after 3 steps");
    float logits[7];
    CHECK(model_discriminate(m, out, gl, G, logits) == 0);
    int fin = 1;
    for (int i = 0; i < G; i++) fin &= isfinite(logits[i]);
    CHECK(fin);
    if (conditional) {
        int32_t badl[3] = {0, 3, 1};
        CHECK(model_train_step(m, real, badl, N, z, labels, NULL) == GB_EFORMAT);
        CHECK(model_train_step(m, real, labels, N, z, NULL, NULL) == GB_EFORMAT);
        CHECK(model_generate(m, zz, badl, 3, 0, out) == GB_EFORMAT);
        CHECK(model_adam(m, MODEL_D)->t == 3);
    }
    free(real);
    free(z);
    free(zz);
    free(out);
    free(one);
    model_free(m);
}

static void test_families(void) {
    family_case(MODEL_DCGAN28, 1, 0);
    family_case(MODEL_DCGAN28, 3, 1);
    family_case(MODEL_DCGAN32, 3, 0);
    family_case(MODEL_DCGAN32, 1, 1);
    family_case(MODEL_DCGAN64, 3, 1);
}

/* Training actually learns something: D separates constant-ish real data
 * from G's output within a few steps (loss_d falls). */
static void test_training_moves(void) {
    model_desc_t d = small_desc(MODEL_DCGAN28, 0, MODEL_LOSS_BCE);
    int N = 8;
    model_t *m = model_new(&d, N, 3);
    size_t img = model_image_floats(m);
    float *real = xmalloc(N * img * sizeof(float)), *z = xmalloc((size_t)N * d.z_dim * sizeof(float));
    for (size_t i = 0; i < N * img; i++) real[i] = (i % 28) < 14 ? 0.8f : -0.8f;
    model_adam(m, MODEL_D)->lr = 2e-3f;
    model_stats_t st0, st;
    for (int s = 0; s < 30; s++) {
        fill_normal(z, (size_t)N * d.z_dim, 100 + s, 1.0f);
        CHECK(model_train_step(m, real, NULL, N, z, NULL, s ? &st : &st0) == 0);
    }
    CHECKF(st.loss_d < st0.loss_d, "loss_d %g -> %g", st0.loss_d, st.loss_d);
    CHECKF(st.d_real > st.d_fake, "D(x) %g, D(G(z)) %g", st.d_real, st.d_fake);
    free(real);
    free(z);
    model_free(m);
}

/* A NaN anywhere makes the step fail with GB_ENUMERIC before the
 * optimizer touches the weights it would poison. */
static void test_numeric_failure(void) {
    model_desc_t d = small_desc(MODEL_DCGAN28, 0, MODEL_LOSS_BCE);
    int N = 4;
    model_t *m = model_new(&d, N, 3);
    size_t img = model_image_floats(m);
    float *real = xmalloc(N * img * sizeof(float)), *z = xmalloc((size_t)N * d.z_dim * sizeof(float));
    fill_images(real, N * img, 1);
    fill_normal(z, (size_t)N * d.z_dim, 2, 1.0f);
    CHECK(model_train_step(m, real, NULL, N, z, NULL, NULL) == 0);
    const model_tensor_t *dw = model_find(m, "D.net_2.weight"), *gw = model_find(m, "G.net_3.weight");
    float *dsave = xmalloc(dw->n * sizeof(float)), *gsave = xmalloc(gw->n * sizeof(float));
    memcpy(dsave, dw->data, dw->n * sizeof(float));
    memcpy(gsave, gw->data, gw->n * sizeof(float));
    real[5] = NAN; /* a corrupt input image */
    model_stats_t st;
    CHECK(model_train_step(m, real, NULL, N, z, NULL, &st) == GB_ENUMERIC);
    CHECK(!isfinite(st.loss_d) || !isfinite(st.grad_norm_d));
    CHECK(memcmp(dsave, dw->data, dw->n * sizeof(float)) == 0);
    CHECK(memcmp(gsave, gw->data, gw->n * sizeof(float)) == 0);
    CHECK(model_adam(m, MODEL_D)->t == 1 && model_adam(m, MODEL_G)->t == 1);
    real[5] = 0.0f;
    gw->data[7] = INFINITY; /* a poisoned generator */
    CHECK(model_train_step(m, real, NULL, N, z, NULL, &st) == GB_ENUMERIC);
    CHECK(memcmp(dsave, dw->data, dw->n * sizeof(float)) == 0);
    free(real);
    free(z);
    free(dsave);
    free(gsave);
    model_free(m);
}

/* ---- descriptions --------------------------------------------------------------- */

static void test_desc(void) {
    {   /* step FLOP from the stage table; dcgan28 width 32: 73,758,720 multiply-adds */
        model_desc_t f;
        model_desc_default(&f, MODEL_DCGAN28);
        CHECK(model_step_flop(&f) == 2.0 * 73758720);
        f.g_mult = 0;
        CHECK(model_step_flop(&f) == 0);
    }
    char err[256];
    model_desc_t d;
    model_family_t f;
    model_loss_t l;
    CHECK(model_family_parse("dcgan64", &f) == 0 && f == MODEL_DCGAN64);
    CHECK(model_family_parse("dcgan", &f) == GB_EFORMAT);
    CHECK(model_loss_parse("hinge", &l) == 0 && l == MODEL_LOSS_HINGE);
    CHECK(model_loss_parse("wgan", &l) == GB_EFORMAT);
    CHECK(strcmp(model_family_name(MODEL_DCGAN32), "dcgan32") == 0);
    CHECK(strcmp(model_loss_name(MODEL_LOSS_BCE), "bce") == 0);
    model_desc_default(&d, MODEL_DCGAN32);
    CHECK(d.height == 32 && d.width == 32 && d.g_mult == 32 && d.z_dim == 100);
    CHECK(model_desc_check(&d, err, sizeof err) == 0);

#define BAD(field, value, needle)                                                                 \
    do {                                                                                          \
        model_desc_t b_ = d;                                                                      \
        b_.field = value;                                                                         \
        err[0] = 0;                                                                               \
        CHECK(model_desc_check(&b_, err, sizeof err) == GB_EFORMAT);                              \
        CHECKF(strstr(err, needle) != NULL, "message '%s' lacks '%s'", err, needle);              \
        CHECK(model_new(&b_, 4, 1) == NULL);                                                      \
    } while (0)
    BAD(height, 28, "image size");
    BAD(channels, 2, "channels");
    BAD(g_mult, 0, "g_mult");
    BAD(d_mult, MODEL_MAX_WIDTH + 1, "d_mult");
    BAD(z_dim, -1, "z_dim");
    BAD(num_classes, 3, "num_classes");
    BAD(embed_dim, 3, "embed_dim");
    BAD(conditional, 2, "conditional");
    BAD(family, (model_family_t)7, "family");
    BAD(loss, (model_loss_t)9, "loss");
    d.conditional = 1;
    d.num_classes = 2;
    d.embed_dim = 0;
    CHECK(model_desc_check(&d, err, sizeof err) == GB_EFORMAT && strstr(err, "embed_dim"));
    d.embed_dim = 8;
    char *names[2] = {"shirt", NULL};
    d.class_names = names;
    CHECK(model_desc_check(&d, err, sizeof err) == GB_EFORMAT && strstr(err, "class_names[1]"));
    names[1] = "boot";
    CHECK(model_desc_check(&d, err, sizeof err) == 0);
    CHECK(model_new(&d, 0, 1) == NULL);
    model_t *m = model_new(&d, 2, 1);
    CHECK(m != NULL);
    names[0] = "changed";
    const model_desc_t *md = model_desc(m);
    CHECK(md->class_names && strcmp(md->class_names[0], "shirt") == 0 && strcmp(md->class_names[1], "boot") == 0);
    CHECK(md->class_names != d.class_names && model_max_batch(m) == 2);
    model_desc_t cp;
    model_desc_copy(&cp, md);
    CHECK(strcmp(cp.class_names[1], "boot") == 0 && cp.class_names != md->class_names);
    model_desc_release(&cp);
    CHECK(cp.class_names == NULL);
    model_free(m);
    model_free(NULL);
}

int main(void) {
    nn_set_threads(0);
    RUN(test_desc);
    RUN(test_families);
    RUN(test_determinism);
    RUN(test_micro_batches_cond);
    RUN(test_micro_batches_hinge);
    RUN(test_training_moves);
    RUN(test_numeric_failure);
    RUN(test_fd_dcgan28_cond_bce);
    RUN(test_fd_dcgan32_cond_hinge);
    return test_done();
}
