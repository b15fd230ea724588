/* model.c - DCGAN generator/discriminator pairs and their training step.
 *
 * Both networks are a short chain of "stages": a (transposed) convolution,
 * optionally followed by batch norm, then an activation (G: ReLU, tanh at
 * the end; D: LeakyReLU 0.2, nothing after the final logit conv). A family
 * is just a table of stage shapes (family_layout), so one forward and one
 * backward routine per network serve every family.
 *
 * Memory (llm.c style): one block per kind, allocated in model_new:
 *   params  [G params | D params]      grads, adam_m, adam_v: same layout
 *   bufs    [G BN stats | D BN stats]  (running_mean, running_var)
 *   ema     [G params | G BN stats]
 *   acts    every activation, BN saved statistics and gradient ping-pong
 *           buffers, sized for max_batch, and the convolution workspace,
 *           sized for a chunk of images (stage_chunk). Hidden activations
 *           and their gradients are mostly channel-major (stage_lays).
 * Layers hold offsets into a net's parameter/buffer slice, not pointers,
 * so the same forward code runs on G's live weights or on the EMA copy.
 *
 * The D step runs real forward+backward, then fake forward+backward: the
 * two passes are independent (the parameters change only at the Adam step
 * after both), so one set of D activation buffers serves both, and the
 * running statistics are updated in the golden order (real, fake, fake).
 *
 * Micro-batches (model_train_step_split, model.h): each step runs per
 * micro-batch on offset views of the same buffers (view_t), writes what
 * the micro-batch contributes (BN batch statistics, loss sums) into its
 * own record and its gradient into the running sum g_0 + g_1 + ... in
 * micro-batch order; the running statistics are applied from the records
 * too. Processes exchange the records (a few KiB) and pass the gradient
 * sum along a chain in micro-batch order, so nobody holds M gradients:
 * the first process folds as it goes (one spare gradient), the others
 * keep their own until the sum before them arrives. A whole batch is the
 * case M = 1. */
#include "base.h"
#include "err.h"
#include "model.h"
#include "nn_extra.h"
#include "rng.h"
#include "textenc.h"

#include <math.h>

#define MODEL_MAX_STAGES 6
#define MODEL_NAME_MAX 64

/* One stage: conv (or convT) [+ BN] [+ activation]. */
typedef struct {
    int transposed;
    int C, H, W, K, KH, KW, S, P, OH, OW; /* per-image shapes */
    int bn;                               /* BN after the conv */
    int seq;                              /* index in the nn.Sequential ("net_<seq>") */
    size_t w_off, gamma_off, beta_off;    /* in the net's parameter slice */
    size_t rm_off, rv_off;                /* in the net's buffer slice */
    size_t stat_off;                      /* BN: batch mean at [stat_off, +K), unbiased
                                             variance at [stat_off+K, +K) of the net's
                                             statistics record (micro-batches) */
    nn_lay_t lay, alay;                   /* where out (lay), act (alay) and their gradients keep
                                             plane (n, k): channel-major (K, max_batch, OH*OW) or
                                             NCHW; the same without BN; stage_lays */
    float *out;                           /* conv output, N images */
    float *act;                           /* BN output (== out without BN); activation in place */
    float *mean, *rstd;                   /* BN saved statistics: K per micro-batch slot,
                                             max_batch slots (slot j at j*K) */
} stage_t;

typedef struct {
    int L;                           /* number of stages */
    stage_t st[MODEL_MAX_STAGES];
    int has_embed;
    int has_text;                    /* text model: <net>.text.weight (emb_dim, T) */
    int emb_dim;                     /* G: E; D: F (channels of the last hidden map) */
    size_t embed_off;                /* in the net's parameter slice (class table or text projection) */
    int aux;                         /* D of a text model: A classes of its auxiliary classifier, or 0 */
    size_t aux_off;                  /* aux.weight (A, emb_dim) then aux.bias (A), in the slice */
    size_t np, nb;                   /* parameter and buffer counts */
    size_t nstat;                    /* doubles of one pass's BN batch statistics */
    float *p, *g, *am, *av, *buf;    /* this net's slices of the blocks */
} net_t;

struct model {
    model_desc_t desc;
    int max_batch;
    int zin;                         /* G input channels: Z (+ E) */
    int cond;                        /* 0 none, COND_CLASS, COND_TEXT */
    int tdim;                        /* T of a text model, else 0 */
    size_t img;                      /* C*H*W */
    net_t net[2];
    adam_t adam[2];
    float ema_decay;
    /* blocks */
    float *params, *grads, *adam_m, *adam_v, *bufs, *ema, *acts;
    /* scratch inside acts */
    float *zin_buf;                  /* (N, Zin) G input when conditional */
    float *gemb;                     /* (N, E) label embeddings / their gradients */
    float *hsum;                     /* (N, F) D's last hidden map summed over space */
    float *demb;                     /* (N, F) D embeddings / their gradients */
    float *demb2;                    /* text: (N, F) D projection of the mismatched texts */
    float *tmis;                     /* text: (N, T) the mismatched texts */
    float *dtmis;                    /* text: (N, T) their gradient */
    float *hdl;                      /* text: (N, F) scratch, hsum * dlogit */
    float *tint_g, *tint_d;          /* text, GAN-INT: (N, T) interpolated texts of G and of D */
    float *dtint;                    /* text, GAN-INT: (N, T) gradient of G's */
    float interp;                    /* text: weight of the GAN-INT term of loss_g (0 = off) */
    float contrast;                  /* text: weight of the contrastive terms (0 = off) */
    float *cdh, *cde;                /* text, contrastive: (N, F) its gradients w.r.t. hsum, demb */
    float *cws;                      /* text, contrastive: contrast_ws_floats(N, F) */
    float modeseek;                  /* text: weight of the mode-seeking term (0 = off) */
    float aux;                       /* text with aux_classes: weight of the classifier terms (0 = off) */
    float *alog;                     /* text, aux: (N, A) classifier logits, then their gradient */
    float *adh;                      /* text, aux: (N, F) the terms' gradient w.r.t. hsum (+ cdh) */
    int32_t *alab;                   /* text, aux: (N) the fakes' labels (mode seeking pairs them) */
    int32_t *fsrc;                   /* text: (N) the caption each fake is drawn from (mode seeking pairs) */
    float *tms_g, *tms_d;            /* text, mode seeking: (N, T) the fakes' texts, halves paired */
    float *dtms;                     /* text, mode seeking: (N, T) a gradient w.r.t. one of them */
    float *pp[2];                    /* gradient ping-pong, max activation size */
    float *dfake;                    /* (N, C, H, W) gradient of loss_g w.r.t. fake */
    float *logit[4];                 /* (N) real, fake (D step), fake (G step), real+mismatched (text) */
    float *dlogit;                   /* (N) */
    float *dlogit2;                  /* (N) text: of the mismatched logits */
    float *ws;                       /* convolution workspace */
    int last_n;
    /* micro-batch records (model_train_step_split): M records of
     * max(rec_bytes(1), rec_bytes(2)) bytes, grown on demand */
    unsigned char *rec;
    size_t rec_cap;
    /* gradients of this process's micro-batches that cannot go straight
     * into the nets' sum (see model_train_step_split): slots of
     * grad_stride bytes, grown on demand */
    unsigned char *gscr;
    size_t gscr_cap;
    /* tensor table */
    int nt;
    model_tensor_t *tab;
    char (*names)[MODEL_NAME_MAX];
};

#define COND_CLASS 1
#define COND_TEXT 2

/* ======================= descriptions ======================= */

static const int family_size[3] = {28, 32, 64};

const char *model_family_name(model_family_t f) {
    switch (f) {
    case MODEL_DCGAN28: return "dcgan28";
    case MODEL_DCGAN32: return "dcgan32";
    case MODEL_DCGAN64: return "dcgan64";
    }
    return "?";
}

int model_family_parse(const char *s, model_family_t *out) {
    for (int f = 0; f < 3; f++)
        if (s && strcmp(s, model_family_name((model_family_t)f)) == 0) {
            *out = (model_family_t)f;
            return 0;
        }
    return GB_EFORMAT;
}

const char *model_loss_name(model_loss_t l) {
    switch (l) {
    case MODEL_LOSS_BCE: return "bce";
    case MODEL_LOSS_HINGE: return "hinge";
    }
    return "?";
}

int model_loss_parse(const char *s, model_loss_t *out) {
    if (s && strcmp(s, "bce") == 0) *out = MODEL_LOSS_BCE;
    else if (s && strcmp(s, "hinge") == 0) *out = MODEL_LOSS_HINGE;
    else return GB_EFORMAT;
    return 0;
}

int model_default_embed_dim(int z_dim) { return z_dim >= 20 ? z_dim / 10 : 1; }

void model_desc_default(model_desc_t *d, model_family_t family) {
    memset(d, 0, sizeof *d);
    d->family = family;
    d->height = d->width = ((unsigned)family < 3) ? family_size[family] : 28;
    d->channels = 1;
    d->g_mult = d->d_mult = 32;
    d->z_dim = 100;
    d->loss = MODEL_LOSS_BCE;
}

#define DESC_FAIL(...)                                        \
    do {                                                      \
        if (err && errlen) snprintf(err, errlen, __VA_ARGS__); \
        return GB_EFORMAT;                                    \
    } while (0)

int model_desc_check(const model_desc_t *d, char *err, size_t errlen) {
    if ((unsigned)d->family > MODEL_DCGAN64) DESC_FAIL("model family %d: unknown", (int)d->family);
    int sz = family_size[d->family];
    if (d->height != sz || d->width != sz)
        DESC_FAIL("model %s: image size %dx%d, the family makes %dx%d", model_family_name(d->family),
                  d->width, d->height, sz, sz);
    if (d->channels != 1 && d->channels != 3) DESC_FAIL("model channels %d: must be 1 or 3", d->channels);
    if (d->g_mult < 1 || d->g_mult > MODEL_MAX_WIDTH)
        DESC_FAIL("model g_mult %d: must be in 1..%d", d->g_mult, MODEL_MAX_WIDTH);
    if (d->d_mult < 1 || d->d_mult > MODEL_MAX_WIDTH)
        DESC_FAIL("model d_mult %d: must be in 1..%d", d->d_mult, MODEL_MAX_WIDTH);
    if (d->z_dim < 1 || d->z_dim > MODEL_MAX_Z) DESC_FAIL("model z_dim %d: must be in 1..%d", d->z_dim, MODEL_MAX_Z);
    if ((unsigned)d->loss > MODEL_LOSS_HINGE) DESC_FAIL("model loss %d: unknown", (int)d->loss);
    if (d->conditional != 0 && d->conditional != 1) DESC_FAIL("model conditional %d: must be 0 or 1", d->conditional);
    if (d->text_dim < 0 || d->text_dim > MODEL_MAX_Z)
        DESC_FAIL("model text_dim %d: must be in 0..%d", d->text_dim, MODEL_MAX_Z);
    if (d->text_dim > 0) {
        if (d->conditional) DESC_FAIL("text model (text_dim %d): conditional must be 0 (no class labels)", d->text_dim);
        if (d->num_classes != 0) DESC_FAIL("text model num_classes %d: must be 0", d->num_classes);
        if (d->embed_dim < 1 || d->embed_dim > MODEL_MAX_Z)
            DESC_FAIL("text model embed_dim %d: must be in 1..%d", d->embed_dim, MODEL_MAX_Z);
        if (d->aux_classes < 0 || d->aux_classes > MODEL_MAX_CLASSES)
            DESC_FAIL("text model aux_classes %d: must be in 0..%d", d->aux_classes, MODEL_MAX_CLASSES);
    } else if (d->aux_classes != 0) {
        DESC_FAIL("model aux_classes %d: only text models have an auxiliary classifier", d->aux_classes);
    } else if (d->conditional) {
        if (d->num_classes < 1 || d->num_classes > MODEL_MAX_CLASSES)
            DESC_FAIL("conditional model num_classes %d: must be in 1..%d", d->num_classes, MODEL_MAX_CLASSES);
        if (d->embed_dim < 1 || d->embed_dim > MODEL_MAX_Z)
            DESC_FAIL("conditional model embed_dim %d: must be in 1..%d", d->embed_dim, MODEL_MAX_Z);
    } else {
        if (d->num_classes != 0) DESC_FAIL("unconditional model num_classes %d: must be 0", d->num_classes);
        if (d->embed_dim != 0) DESC_FAIL("unconditional model embed_dim %d: must be 0", d->embed_dim);
    }
    if (d->class_names)
        for (int i = 0; i < d->num_classes; i++)
            if (!d->class_names[i]) DESC_FAIL("model class_names[%d]: missing", i);
    return 0;
}

void model_desc_copy(model_desc_t *dst, const model_desc_t *src) {
    model_desc_t t = *src;
    t.class_names = NULL;
    if (src->class_names && src->num_classes > 0) {
        t.class_names = xcalloc((size_t)src->num_classes, sizeof(char *));
        for (int i = 0; i < src->num_classes; i++)
            t.class_names[i] = xstrdup(src->class_names[i] ? src->class_names[i] : "");
    }
    *dst = t;
}

void model_desc_release(model_desc_t *d) {
    if (!d || !d->class_names) return;
    for (int i = 0; i < d->num_classes; i++) free(d->class_names[i]);
    free(d->class_names);
    d->class_names = NULL;
}

/* ======================= layout ======================= */

/* Fill the stage shapes of both nets for d (offsets and buffers later). */
static void family_layout(const model_desc_t *d, int zin, net_t *G, net_t *D) {
    int g = d->g_mult, dd = d->d_mult, C = d->channels;
    int gch[6], dch[6], ng, nd, k0;
    if (d->family == MODEL_DCGAN28) {
        ng = 3; gch[0] = 4 * g; gch[1] = 2 * g; gch[2] = C; k0 = 7;
        nd = 3; dch[0] = 2 * dd; dch[1] = 4 * dd; dch[2] = 1;
    } else if (d->family == MODEL_DCGAN32) {
        ng = 4; gch[0] = 4 * g; gch[1] = 2 * g; gch[2] = g; gch[3] = C; k0 = 4;
        nd = 4; dch[0] = dd; dch[1] = 2 * dd; dch[2] = 4 * dd; dch[3] = 1;
    } else {
        ng = 5; gch[0] = 8 * g; gch[1] = 4 * g; gch[2] = 2 * g; gch[3] = g; gch[4] = C; k0 = 4;
        nd = 5; dch[0] = dd; dch[1] = 2 * dd; dch[2] = 4 * dd; dch[3] = 8 * dd; dch[4] = 1;
    }
    memset(G, 0, sizeof *G);
    memset(D, 0, sizeof *D);
    G->L = ng;
    int c = zin, h = 1;
    for (int i = 0; i < ng; i++) {
        stage_t *s = &G->st[i];
        s->transposed = 1;
        s->C = c; s->H = s->W = h; s->K = gch[i];
        if (i == 0) { s->KH = s->KW = k0; s->S = 1; s->P = 0; }
        else { s->KH = s->KW = 4; s->S = 2; s->P = 1; }
        s->OH = s->OW = (h - 1) * s->S - 2 * s->P + s->KH;
        s->bn = i < ng - 1;
        s->seq = 3 * i;
        c = s->K; h = s->OH;
    }
    ASSERT(h == d->height && c == C);
    D->L = nd;
    c = C; h = d->height;
    int seq = 0;
    for (int i = 0; i < nd; i++) {
        stage_t *s = &D->st[i];
        s->C = c; s->H = s->W = h; s->K = dch[i];
        if (i == nd - 1) { s->KH = s->KW = h; s->S = 1; s->P = 0; }
        else { s->KH = s->KW = 4; s->S = 2; s->P = 1; }
        s->OH = s->OW = (h + 2 * s->P - s->KH) / s->S + 1;
        s->bn = i > 0 && i < nd - 1;
        s->seq = seq;
        seq += s->bn ? 3 : 2;
        c = s->K; h = s->OH;
    }
    ASSERT(h == 1 && c == 1);
    D->emb_dim = D->st[nd - 1].C;
}

static void stage_conv(const stage_t *s, int N, conv_t *cv) {
    int rc = s->transposed ? convT_init(cv, N, s->C, s->H, s->W, s->K, s->KH, s->KW, s->S, s->P)
                           : conv_init(cv, N, s->C, s->H, s->W, s->K, s->KH, s->KW, s->S, s->P);
    ASSERT(rc == 0 && cv->OH == s->OH && cv->OW == s->OW);
}

static size_t stage_out(const stage_t *s) { return (size_t)s->K * s->OH * s->OW; }

/* Layouts (nn.h nn_lay_t). A net's hidden activations are channel-major:
 * the convolutions' GEMMs read and write them in place (a channel's images
 * are one matrix row), where NCHW cost a copy of every conv output, conv
 * output gradient and transposed-conv input (issue 11: ~5% of a step),
 * and batch norm's channels are contiguous. NCHW where rows per image are
 * what is read or written: a net's last output (G's images, D's logits),
 * the nets' inputs (latents, images), a dense layer's output (G's first)
 * and, through batch norm, which changes the layout on its way, the input
 * of a dense layer (D's last): no copy between layouts anywhere. Gradient
 * buffers (pp) use their tensor's layout from offset 0; activations from
 * the view's first sample. */
static int stage_dense(const stage_t *s) {
    return s->P == 0 && (s->transposed ? s->H == 1 && s->W == 1 : s->KH == s->H && s->KW == s->W);
}

static void stage_lays(net_t *n, int i, int max_batch) {
    stage_t *s = &n->st[i];
    const size_t L = (size_t)s->OH * s->OW;
    const int last = i == n->L - 1;
    const nn_lay_t nchw = nn_lay_nchw(s->K, L), cm = nn_lay_cm(max_batch, L);
    if (!s->bn) {
        s->lay = s->alay = last ? nchw : cm;
        return;
    }
    s->lay = last || stage_dense(s) ? nchw : cm;
    s->alay = last || stage_dense(&n->st[i + 1]) ? nchw : cm;
}

/* Convolutions run on at most stage_chunk(s) images per call, so that the
 * workspace (im2col matrix and relayed copy, linear in the images) stays
 * within MODEL_WS_FLOATS: unfolding DCGAN-28's middle layers for a whole
 * batch of 64 took 13.8 MiB, a quarter of the model's memory (issue 11:
 * the trainer's RSS). The chunk is the largest power of two that fits, a
 * function of the stage's shape only (never of the batch, the micro-batch
 * placement or the number of MPI ranks), so results stay bit-identical
 * between runs; weight gradients accumulate over the chunks (the conv
 * routines add into dw). */
#define MODEL_WS_FLOATS ((size_t)1 << 19) /* 2 MiB */

static size_t stage_ws_floats(const stage_t *s, int N) {
    conv_t cv;
    stage_conv(s, N, &cv);
    return s->transposed ? convT2d_ws_floats(&cv) : conv2d_ws_floats(&cv);
}

static int stage_chunk(const stage_t *s) {
    size_t per = stage_ws_floats(s, 1);
    int c = 1;
    while (c < (1 << 20) && (size_t)(2 * c) * per <= MODEL_WS_FLOATS) c *= 2;
    return c;
}

/* Forward of stage s's convolution on N images x into y, chunk by chunk
 * (nn_conv.c: *_chunks). */
static void stage_conv_forward(model_t *m, const stage_t *s, int N, const float *x, nn_lay_t xl, const float *w,
                               float *y) {
    conv_t cv;
    stage_conv(s, N, &cv);
    const int c = GB_MIN(stage_chunk(s), N);
    if (s->transposed) convT2d_forward_chunks(&cv, c, x, xl, w, y, s->lay, m->ws);
    else conv2d_forward_chunks(&cv, c, x, xl, w, y, s->lay, m->ws);
}

/* Backward of stage s's convolution: dx (may be NULL) written, dw (may be
 * NULL) accumulated, chunk by chunk. */
static void stage_conv_backward(model_t *m, const stage_t *s, int N, const float *x, nn_lay_t xl, const float *w,
                                const float *dy, float *dx, float *dw) {
    conv_t cv;
    stage_conv(s, N, &cv);
    const int c = GB_MIN(stage_chunk(s), N);
    if (s->transposed) convT2d_backward_chunks(&cv, c, x, xl, w, dy, s->lay, dx, dw, m->ws);
    else conv2d_backward_chunks(&cv, c, x, xl, w, dy, s->lay, dx, dw, m->ws);
}

/* The input layout of stage i of net n: the previous stage's act, or the
 * net's NCHW input (G: latents (N, Zin), D: images). */
static nn_lay_t stage_in_lay(const net_t *n, int i) {
    const stage_t *s = &n->st[i];
    return i > 0 ? n->st[i - 1].alay : nn_lay_nchw(s->C, (size_t)s->H * s->W);
}

/* LeakyReLU forward (dy NULL: y = f(y) in place at y) or backward (dx =
 * f'(y) dy) on N samples of a stage's output (a stage without BN: lay is
 * alay): one call per channel's contiguous run of a channel-major view,
 * or one for all when the samples are contiguous (NCHW, or the view is
 * the whole channel-major buffer). */
static void stage_lrelu(const stage_t *s, int N, float alpha, float *y, const float *dy, float *dx) {
    size_t L = (size_t)s->OH * s->OW, run = (size_t)N * L;
    int runs = s->K;
    if (s->lay.sc == run || s->K == 1 || s->lay.sn == (size_t)s->K * L) { /* contiguous */
        run *= (size_t)s->K;
        runs = 1;
    }
    for (int k = 0; k < runs; k++) {
        size_t o = (size_t)k * s->lay.sc;
        if (dy) lrelu_backward(run, alpha, y + o, dy + o, dx + o);
        else lrelu_forward(run, alpha, y + o, y + o);
    }
}

/* ======================= tensor table ======================= */

static void tab_add(model_t *m, model_tensor_kind_t kind, model_net_t net, const char *name, int ndim,
                    const int64_t *shape, float *data) {
    model_tensor_t *t = &m->tab[m->nt];
    size_t len = strlen(name);
    ASSERT(len < MODEL_NAME_MAX);
    memcpy(m->names[m->nt], name, len + 1);
    t->name = m->names[m->nt];
    t->kind = kind;
    t->net = net;
    t->ndim = ndim;
    t->n = 1;
    for (int i = 0; i < 4; i++) {
        t->shape[i] = i < ndim ? shape[i] : 0;
        if (i < ndim) t->n *= (size_t)shape[i];
    }
    t->data = data;
    m->nt++;
}

/* Call fn for every parameter (buffers = 0) or buffer (buffers = 1) of
 * net, in slice order, with its short name ("net_0.weight"), shape and
 * offset. Also used to compute the offsets (fn NULL, assign = 1). */
typedef struct {
    char name[32];
    int ndim;
    int64_t shape[4];
    size_t off;
    int init; /* 0 conv weight, 1 gamma, 2 beta, 3 running mean, 4 running var, 5 G embed, 6 D embed,
                 7 G text, 8 D text, 9 D aux weight (2 for its bias) */
} tdesc_t;

static int net_tensors(const model_t *m, model_net_t which, int buffers, tdesc_t *out) {
    const net_t *n = &m->net[which];
    int k = 0;
    for (int i = 0; i < n->L; i++) {
        const stage_t *s = &n->st[i];
        if (!buffers) {
            tdesc_t *t = &out[k++];
            snprintf(t->name, sizeof t->name, "net_%d.weight", s->seq);
            t->ndim = 4;
            t->shape[0] = s->transposed ? s->C : s->K;
            t->shape[1] = s->transposed ? s->K : s->C;
            t->shape[2] = s->KH;
            t->shape[3] = s->KW;
            t->off = s->w_off;
            t->init = 0;
            if (s->bn) {
                t = &out[k++];
                snprintf(t->name, sizeof t->name, "net_%d.weight", s->seq + 1);
                t->ndim = 1; t->shape[0] = s->K; t->off = s->gamma_off; t->init = 1;
                t = &out[k++];
                snprintf(t->name, sizeof t->name, "net_%d.bias", s->seq + 1);
                t->ndim = 1; t->shape[0] = s->K; t->off = s->beta_off; t->init = 2;
            }
        } else if (s->bn) {
            tdesc_t *t = &out[k++];
            snprintf(t->name, sizeof t->name, "net_%d.running_mean", s->seq + 1);
            t->ndim = 1; t->shape[0] = s->K; t->off = s->rm_off; t->init = 3;
            t = &out[k++];
            snprintf(t->name, sizeof t->name, "net_%d.running_var", s->seq + 1);
            t->ndim = 1; t->shape[0] = s->K; t->off = s->rv_off; t->init = 4;
        }
    }
    if (!buffers && n->has_embed) {
        tdesc_t *t = &out[k++];
        snprintf(t->name, sizeof t->name, "embed.weight");
        t->ndim = 2;
        t->shape[0] = m->desc.num_classes;
        t->shape[1] = n->emb_dim;
        t->off = n->embed_off;
        t->init = which == MODEL_G ? 5 : 6;
    }
    if (!buffers && n->has_text) {
        tdesc_t *t = &out[k++];
        snprintf(t->name, sizeof t->name, "text.weight");
        t->ndim = 2;
        t->shape[0] = n->emb_dim;
        t->shape[1] = m->tdim;
        t->off = n->embed_off;
        t->init = which == MODEL_G ? 7 : 8;
    }
    if (!buffers && n->aux) {
        tdesc_t *t = &out[k++];
        snprintf(t->name, sizeof t->name, "aux.weight");
        t->ndim = 2;
        t->shape[0] = n->aux;
        t->shape[1] = n->emb_dim;
        t->off = n->aux_off;
        t->init = 9;
        t = &out[k++];
        snprintf(t->name, sizeof t->name, "aux.bias");
        t->ndim = 1;
        t->shape[0] = n->aux;
        t->off = n->aux_off + (size_t)n->aux * n->emb_dim;
        t->init = 2;
    }
    return k;
}

static void build_table(model_t *m) {
    tdesc_t td[4 * MODEL_MAX_STAGES + 4];
    char name[128];
    m->tab = xcalloc(512, sizeof *m->tab);
    m->names = xcalloc(512, sizeof *m->names);
    m->nt = 0;
    for (int kind = MODEL_T_PARAM; kind <= MODEL_T_GRAD; kind++) {
        for (int w = 0; w < 2; w++) {
            net_t *n = &m->net[w];
            if (kind == MODEL_T_EMA && w == MODEL_D) continue;
            for (int buffers = 0; buffers < 2; buffers++) {
                if (buffers && kind != MODEL_T_BUFFER && kind != MODEL_T_EMA) continue;
                if (!buffers && kind == MODEL_T_BUFFER) continue;
                int k = net_tensors(m, (model_net_t)w, buffers, td);
                for (int i = 0; i < k; i++) {
                    float *base = NULL;
                    const char *prefix = "";
                    switch ((model_tensor_kind_t)kind) {
                    case MODEL_T_PARAM: base = n->p; prefix = w ? "D." : "G."; break;
                    case MODEL_T_BUFFER: base = n->buf; prefix = w ? "D." : "G."; break;
                    case MODEL_T_EMA: base = buffers ? m->ema + n->np : m->ema; prefix = "EMA.G."; break;
                    case MODEL_T_ADAM_M: base = n->am; prefix = w ? "OPT.D.m." : "OPT.G.m."; break;
                    case MODEL_T_ADAM_V: base = n->av; prefix = w ? "OPT.D.v." : "OPT.G.v."; break;
                    case MODEL_T_GRAD: base = n->g; prefix = w ? "GRAD.D." : "GRAD.G."; break;
                    }
                    size_t lp = strlen(prefix), ln = strlen(td[i].name);
                    ASSERT(lp + ln < sizeof name);
                    memcpy(name, prefix, lp);
                    memcpy(name + lp, td[i].name, ln + 1);
                    ASSERT(m->nt < 512 && strlen(name) < MODEL_NAME_MAX);
                    tab_add(m, (model_tensor_kind_t)kind, (model_net_t)w, name, td[i].ndim, td[i].shape,
                            base + td[i].off);
                }
            }
        }
    }
}

int model_tensor_count(const model_t *m) { return m->nt; }

const model_tensor_t *model_tensor(const model_t *m, int i) {
    ASSERT(i >= 0 && i < m->nt);
    return &m->tab[i];
}

const model_tensor_t *model_find(const model_t *m, const char *name) {
    for (int i = 0; i < m->nt; i++)
        if (strcmp(m->tab[i].name, name) == 0) return &m->tab[i];
    return NULL;
}

/* ======================= construction ======================= */

/* Assign parameter and buffer offsets within each net's slices. */
static void assign_offsets(model_t *m) {
    for (int w = 0; w < 2; w++) {
        net_t *n = &m->net[w];
        size_t po = 0, bo = 0;
        n->nstat = 0;
        for (int i = 0; i < n->L; i++) {
            stage_t *s = &n->st[i];
            s->w_off = po;
            po += (size_t)s->C * s->K * s->KH * s->KW;
            if (s->bn) {
                s->gamma_off = po; po += (size_t)s->K;
                s->beta_off = po; po += (size_t)s->K;
                s->rm_off = bo; bo += (size_t)s->K;
                s->rv_off = bo; bo += (size_t)s->K;
                s->stat_off = n->nstat; n->nstat += 2 * (size_t)s->K;
            }
        }
        if (n->has_embed) {
            n->embed_off = po;
            po += (size_t)m->desc.num_classes * n->emb_dim;
        }
        if (n->has_text) {
            n->embed_off = po;
            po += (size_t)n->emb_dim * m->tdim;
        }
        if (n->aux) {
            n->aux_off = po;
            po += (size_t)n->aux * (n->emb_dim + 1);
        }
        n->np = po;
        n->nb = bo;
    }
}

/* Lay out (count = 1) or carve (count = 0) the activation block. */
static size_t carve_acts(model_t *m, float *base) {
    size_t off = 0;
    int N = m->max_batch;
#define TAKE(ptr, nfl)                                        \
    do {                                                      \
        size_t n_ = ((size_t)(nfl) + 15) & ~(size_t)15;       \
        if (base) (ptr) = base + off;                         \
        off += n_;                                            \
    } while (0)
    size_t maxact = (size_t)m->zin > m->img ? (size_t)m->zin : m->img;
    size_t ws = 0;
    for (int w = 0; w < 2; w++) {
        net_t *n = &m->net[w];
        for (int i = 0; i < n->L; i++) {
            stage_t *s = &n->st[i];
            size_t so = stage_out(s);
            stage_lays(n, i, N);
            if (so > maxact) maxact = so;
            TAKE(s->out, (size_t)N * so);
            if (s->bn) {
                TAKE(s->act, (size_t)N * so);
                TAKE(s->mean, (size_t)N * s->K);
                TAKE(s->rstd, (size_t)N * s->K);
            } else if (base) {
                s->act = s->out;
            }
            size_t wf = stage_ws_floats(s, GB_MIN(N, stage_chunk(s)));
            if (wf > ws) ws = wf;
        }
    }
    int E = m->net[MODEL_G].emb_dim, F = m->net[MODEL_D].emb_dim;
    if (m->cond) {
        TAKE(m->zin_buf, (size_t)N * m->zin);
        TAKE(m->gemb, (size_t)N * E);
        TAKE(m->hsum, (size_t)N * F);
        TAKE(m->demb, (size_t)N * F);
    }
    if (m->cond == COND_TEXT) {
        int T = m->tdim;
        TAKE(m->demb2, (size_t)N * F);
        TAKE(m->tmis, (size_t)N * T);
        TAKE(m->dtmis, (size_t)N * T);
        TAKE(m->hdl, (size_t)N * F);
        TAKE(m->tint_g, (size_t)N * T);
        TAKE(m->tint_d, (size_t)N * T);
        TAKE(m->dtint, (size_t)N * T);
        TAKE(m->dlogit2, N);
        TAKE(m->cdh, (size_t)N * F);
        TAKE(m->cde, (size_t)N * F);
        TAKE(m->cws, contrast_ws_floats(N, F));
        TAKE(m->tms_g, (size_t)N * T);
        TAKE(m->tms_d, (size_t)N * T);
        TAKE(m->dtms, (size_t)N * T);
        float *ints = NULL; /* int32_t arrays carved as floats, used only as int32_t */
        TAKE(ints, N);
        m->fsrc = (int32_t *)ints;
        int A = m->net[MODEL_D].aux;
        if (A) {
            TAKE(m->alog, (size_t)N * A);
            TAKE(m->adh, (size_t)N * F);
            TAKE(ints, N);
            m->alab = (int32_t *)ints;
        }
    }
    TAKE(m->pp[0], (size_t)N * maxact);
    TAKE(m->pp[1], (size_t)N * maxact);
    TAKE(m->dfake, (size_t)N * m->img);
    for (int i = 0; i < 4; i++) TAKE(m->logit[i], N);
    TAKE(m->dlogit, N);
    TAKE(m->ws, ws);
#undef TAKE
    return off;
}

/* Shapes, offsets and counts of m for desc (already valid) and max_batch;
 * m->desc must be set (a shallow copy is enough). Allocates nothing. */
static void model_layout(model_t *m, int max_batch) {
    const model_desc_t *desc = &m->desc;
    m->max_batch = max_batch;
    m->cond = desc->text_dim > 0 ? COND_TEXT : desc->conditional ? COND_CLASS : 0;
    m->tdim = desc->text_dim;
    m->zin = desc->z_dim + (m->cond ? desc->embed_dim : 0);
    m->img = (size_t)desc->channels * desc->height * desc->width;
    family_layout(desc, m->zin, &m->net[MODEL_G], &m->net[MODEL_D]);
    if (m->cond) {
        int text = m->cond == COND_TEXT;
        m->net[MODEL_G].has_embed = !text;
        m->net[MODEL_G].has_text = text;
        m->net[MODEL_G].emb_dim = desc->embed_dim;
        m->net[MODEL_D].has_embed = !text;
        m->net[MODEL_D].has_text = text;
        m->net[MODEL_D].aux = text ? desc->aux_classes : 0;
    }
    assign_offsets(m);
}

/* ---- micro-batch records --------------------------------------------------
 * What one micro-batch contributes to a step besides its gradient, as
 * bytes a caller can move between processes (model_split_t.gather).
 * Phase 1 (the D step):
 *   double sc[REC_SC]   loss_d of the micro-batch, sum of sigmoid(D(x)),
 *                       sum of sigmoid(D(G(z)))
 *   double G statistics (G->nstat), D statistics of the real pass, of the
 *                       fake pass (D->nstat each)
 * Phase 2 (the G step): sc = loss_g, sum of sigmoid(D(G(z))); D statistics
 * of the G step's pass. Gradients travel apart (model_split_t.recv_prefix,
 * share_sum); a spare gradient slot is grad_stride bytes, a multiple of
 * 64, so every micro-batch's gradient but the first (computed in the
 * net's own buffer) has the same alignment whoever computes it. */
#define REC_SC 4
static size_t round64(size_t b) { return (b + 63) & ~(size_t)63; }
static size_t rec_bytes(const model_t *m, int phase) {
    const net_t *G = &m->net[MODEL_G], *D = &m->net[MODEL_D];
    return round64(sizeof(double) * (phase == 1 ? REC_SC + G->nstat + 2 * D->nstat : REC_SC + D->nstat));
}
static size_t rec_max(const model_t *m) { return GB_MAX(rec_bytes(m, 1), rec_bytes(m, 2)); }
static size_t grad_stride(const model_t *m) {
    return round64(sizeof(float) * GB_MAX(m->net[MODEL_D].np, m->net[MODEL_G].np));
}

size_t model_memory_bytes(const model_desc_t *desc, int max_batch) {
    if (max_batch < 1 || model_desc_check(desc, NULL, 0) != 0) return 0;
    model_t t;
    memset(&t, 0, sizeof t);
    t.desc = *desc;
    model_layout(&t, max_batch);
    const net_t *G = &t.net[MODEL_G], *D = &t.net[MODEL_D];
    size_t np = G->np + D->np, nb = G->nb + D->nb;
    return (4 * np + nb + G->np + G->nb + carve_acts(&t, NULL)) * sizeof(float) + rec_max(&t);
}

/* Multiply-adds of one image through one stage's (transposed) conv. */
static double stage_macs(const stage_t *s) {
    double pos = s->transposed ? (double)s->H * s->W : (double)s->OH * s->OW;
    return (double)s->C * s->K * s->KH * s->KW * pos;
}

double model_step_flop(const model_desc_t *desc) {
    if (model_desc_check(desc, NULL, 0) != 0) return 0;
    model_t t;
    memset(&t, 0, sizeof t);
    t.desc = *desc;
    model_layout(&t, 1);
    const net_t *G = &t.net[MODEL_G], *D = &t.net[MODEL_D];
    double g = 0, g_dx0 = stage_macs(&G->st[0]), d = 0, d_dx0 = stage_macs(&D->st[0]);
    for (int i = 0; i < G->L; i++) g += stage_macs(&G->st[i]);
    for (int i = 0; i < D->L; i++) d += stage_macs(&D->st[i]);
    /* model_train_step: G forward; D forward x3; D backward with weight
     * gradients x2 (no dx of the image); D backward to the image without
     * weight gradients; G backward (dx of z only when conditional). */
    int cond = desc->conditional || desc->text_dim > 0;
    double macs = g + 3 * d + 2 * (d + d - d_dx0) + d + (g + g - (cond ? 0 : g_dx0));
    return 2 * macs;
}

model_t *model_new(const model_desc_t *desc, int max_batch, uint64_t seed) {
    if (max_batch < 1 || model_desc_check(desc, NULL, 0) != 0) return NULL;
    model_t *m = xcalloc(1, sizeof *m);
    model_desc_copy(&m->desc, desc);
    model_layout(m, max_batch);
    net_t *G = &m->net[MODEL_G], *D = &m->net[MODEL_D];
    size_t np = G->np + D->np, nb = G->nb + D->nb;
    m->params = gb_xmalloc_aligned(np * sizeof(float));
    m->grads = gb_xmalloc_aligned(np * sizeof(float));
    m->adam_m = gb_xmalloc_aligned(np * sizeof(float));
    m->adam_v = gb_xmalloc_aligned(np * sizeof(float));
    m->bufs = gb_xmalloc_aligned((nb ? nb : 1) * sizeof(float));
    m->ema = gb_xmalloc_aligned((G->np + G->nb) * sizeof(float));
    size_t na = carve_acts(m, NULL);
    m->acts = gb_xmalloc_aligned(na * sizeof(float));
    carve_acts(m, m->acts);
    /* zeroed without being touched: a model built to load a checkpoint
     * into does not hold its activations while the checkpoint is in memory */
    gb_zero_lazy(m->grads, np * sizeof(float));
    gb_zero_lazy(m->adam_m, np * sizeof(float));
    gb_zero_lazy(m->adam_v, np * sizeof(float));
    gb_zero_lazy(m->acts, na * sizeof(float));
    m->rec_cap = rec_max(m);
    m->rec = gb_xmalloc_aligned(m->rec_cap);
    gb_zero_lazy(m->rec, m->rec_cap);
    G->p = m->params; D->p = m->params + G->np;
    G->g = m->grads; D->g = m->grads + G->np;
    G->am = m->adam_m; D->am = m->adam_m + G->np;
    G->av = m->adam_v; D->av = m->adam_v + G->np;
    G->buf = m->bufs; D->buf = m->bufs + G->nb;
    for (int w = 0; w < 2; w++) {
        m->adam[w].lr = 2e-4f;
        m->adam[w].beta1 = 0.5f;
        m->adam[w].beta2 = 0.999f;
        m->adam[w].eps = 1e-8f;
        m->adam[w].t = 0;
    }
    m->ema_decay = 0.999f;
    build_table(m);

    /* initialise G then D, parameters then buffers, in table order */
    rng_t r;
    rng_seed(&r, seed);
    tdesc_t td[4 * MODEL_MAX_STAGES + 4];
    for (int w = 0; w < 2; w++) {
        net_t *n = &m->net[w];
        for (int buffers = 0; buffers < 2; buffers++) {
            int k = net_tensors(m, (model_net_t)w, buffers, td);
            for (int i = 0; i < k; i++) {
                size_t cnt = 1;
                for (int j = 0; j < td[i].ndim; j++) cnt *= (size_t)td[i].shape[j];
                float *p = (buffers ? n->buf : n->p) + td[i].off;
                for (size_t j = 0; j < cnt; j++) {
                    switch (td[i].init) {
                    case 0: p[j] = 0.02f * rng_normal(&r); break;
                    case 1: p[j] = 1.0f + 0.02f * rng_normal(&r); break;
                    case 2: p[j] = 0.0f; break;
                    case 3: p[j] = 0.0f; break;
                    case 4: p[j] = 1.0f; break;
                    case 5: p[j] = rng_normal(&r); break;
                    case 7: p[j] = rng_normal(&r) / sqrtf((float)m->tdim); break;
                    default: p[j] = 0.02f * rng_normal(&r); break;
                    }
                }
            }
        }
    }
    model_ema_reset(m);
    return m;
}

void model_free(model_t *m) {
    if (!m) return;
    model_desc_release(&m->desc);
    free(m->params);
    free(m->grads);
    free(m->adam_m);
    free(m->adam_v);
    free(m->bufs);
    free(m->ema);
    free(m->acts);
    free(m->rec);
    free(m->gscr);
    free(m->tab);
    free(m->names);
    free(m);
}

const model_desc_t *model_desc(const model_t *m) { return &m->desc; }
int model_max_batch(const model_t *m) { return m->max_batch; }
size_t model_image_floats(const model_t *m) { return m->img; }

size_t model_param_count(const model_t *m, model_net_t net) {
    ASSERT(net == MODEL_G || net == MODEL_D);
    return m->net[net].np;
}

adam_t *model_adam(model_t *m, model_net_t net) {
    ASSERT(net == MODEL_G || net == MODEL_D);
    return &m->adam[net];
}

void model_set_ema_decay(model_t *m, float decay) { m->ema_decay = decay; }
float model_ema_decay(const model_t *m) { return m->ema_decay; }

void model_ema_reset(model_t *m) {
    const net_t *G = &m->net[MODEL_G];
    memcpy(m->ema, G->p, G->np * sizeof(float));
    if (G->nb) memcpy(m->ema + G->np, G->buf, G->nb * sizeof(float));
}

#define BN_MOMENTUM 0.1f /* running-statistics momentum of training-mode BN (PyTorch's) */
#define BN_EPS 1e-5f      /* BN's epsilon (PyTorch's) */

/* Extra gradients for d_backward's projection, from a loss on D's pooled
 * features (text models' contrastive term): dh (N, F) w.r.t. hsum, de
 * (N, F) w.r.t. D's projection of the texts; either may be NULL. */
typedef struct {
    const float *dh, *de;
} dextra_t;

/* g_forward is defined below; view_t is explained there. */
typedef struct view view_t;
struct view {
    int n0, N, mb;
    int train;
    float momentum;
    double *stat;
};
static const float *g_forward(model_t *m, const float *p, float *b, const float *z, const int32_t *labels,
                              const float *text, const view_t *v);

void model_ema_restat(model_t *m, int batches, uint64_t seed) {
    ASSERT(batches >= 1);
    ASSERT(m->cond != COND_TEXT); /* model_ema_restat_text */
    const net_t *G = &m->net[MODEL_G];
    if (!G->nb) return;
    int N = m->max_batch, Z = m->desc.z_dim;
    float *z = gb_xmalloc_aligned((size_t)N * (size_t)Z * sizeof(float));
    int32_t *labels = xmalloc((size_t)N * sizeof(int32_t));
    float *eb = m->ema + G->np;
    rng_t r;
    rng_seed(&r, seed);
    for (int k = 0; k < batches; k++) {
        rng_normal_fill(&r, z, (size_t)N * (size_t)Z);
        for (int n = 0; n < N; n++)
            labels[n] = m->desc.conditional ? (int32_t)rng_below(&r, (uint64_t)m->desc.num_classes) : 0;
        /* momentum 1/(k+1): the running statistics become the plain
         * average of the batches' statistics (the first batch replaces
         * whatever was there) */
        const view_t v = {0, N, 0, 1, 1.0f / (float)(k + 1), NULL};
        g_forward(m, m->ema, eb, z, labels, NULL, &v);
    }
    free(z);
    free(labels);
}

void model_ema_restat_text(model_t *m, int batches, uint64_t seed, const float *pool, int n_pool) {
    ASSERT(batches >= 1 && m->cond == COND_TEXT && n_pool >= 1 && pool);
    const net_t *G = &m->net[MODEL_G];
    if (!G->nb) return;
    int N = m->max_batch, Z = m->desc.z_dim, T = m->tdim;
    float *z = gb_xmalloc_aligned((size_t)N * (size_t)Z * sizeof(float));
    float *text = gb_xmalloc_aligned((size_t)N * (size_t)T * sizeof(float));
    float *eb = m->ema + G->np;
    rng_t r;
    rng_seed(&r, seed);
    for (int k = 0; k < batches; k++) {
        rng_normal_fill(&r, z, (size_t)N * (size_t)Z);
        for (int n = 0; n < N; n++)
            memcpy(text + (size_t)n * T, pool + (size_t)rng_below(&r, (uint64_t)n_pool) * T,
                   (size_t)T * sizeof(float));
        const view_t v = {0, N, 0, 1, 1.0f / (float)(k + 1), NULL};
        g_forward(m, m->ema, eb, z, NULL, text, &v);
    }
    free(z);
    free(text);
}

const float *model_fake(const model_t *m) {
    const net_t *G = &m->net[MODEL_G];
    return G->st[G->L - 1].out;
}

const float *model_logits(const model_t *m, int which) {
    ASSERT(which >= 0 && which < 3 + (m->cond == COND_TEXT));
    return m->logit[which];
}

/* ======================= forward / backward ======================= */

static int labels_ok(const model_t *m, const int32_t *labels, int N) {
    if (m->cond == COND_TEXT) return 0; /* the *_text calls */
    if (!m->desc.conditional) return 1;
    if (!labels) return 0;
    for (int i = 0; i < N; i++)
        if (labels[i] < 0 || labels[i] >= m->desc.num_classes) return 0;
    return 1;
}

/* Where a forward/backward pass works: samples [n0, n0+N) of the
 * activation buffers (a micro-batch of the step, or the whole batch with
 * n0 = 0), BN saved statistics in slot mb, and, for training-mode BN, a
 * statistics record (stat: the batch statistics go there and the running
 * statistics are left alone) or none (stat NULL: the running statistics are
 * updated with momentum at once). A micro-batch always lands at the same
 * offset whichever process computes it, so every process runs the same
 * arithmetic on the same alignment. */

static inline const int32_t *lab_at(const int32_t *labels, int n0) { return labels ? labels + n0 : NULL; }

/* Batch norm of one stage's convolution output s->out into s->act (both at
 * v's samples), then the activation act (BN_ACT_*, LeakyReLU slope
 * alpha) in the same pass. p: the net's parameters, b: its buffers. */
static void stage_bn_forward(stage_t *s, const view_t *v, const float *p, float *b, int act, float alpha) {
    bn_t bn = {v->N, s->K, s->OH * s->OW, BN_EPS, v->momentum, act, alpha, s->lay, s->alay};
    size_t off = (size_t)v->n0 * s->lay.sn, aoff = (size_t)v->n0 * s->alay.sn;
    float *mean = s->mean + (size_t)v->mb * s->K, *rstd = s->rstd + (size_t)v->mb * s->K;
    if (v->train && v->stat)
        bn_forward_train_stats(&bn, s->out + off, p + s->gamma_off, p + s->beta_off, s->act + aoff, mean, rstd,
                               v->stat + s->stat_off, v->stat + s->stat_off + s->K);
    else if (v->train)
        bn_forward_train(&bn, s->out + off, p + s->gamma_off, p + s->beta_off, s->act + aoff, mean, rstd,
                         b + s->rm_off, b + s->rv_off);
    else
        bn_forward_eval(&bn, s->out + off, p + s->gamma_off, p + s->beta_off, b + s->rm_off, b + s->rv_off,
                        s->act + aoff);
}

/* Apply one pass's recorded batch statistics to net's running statistics
 * (what the pass would have done with stat NULL). */
static void net_stats_apply(net_t *n, const double *stat) {
    bn_t bn = {0, 0, 0, BN_EPS, BN_MOMENTUM, BN_ACT_NONE, 0.0f, {0, 0}, {0, 0}};
    for (int i = 0; i < n->L; i++) {
        const stage_t *s = &n->st[i];
        if (s->bn)
            bn_running_update(&bn, s->K, stat + s->stat_off, stat + s->stat_off + s->K, n->buf + s->rm_off,
                              n->buf + s->rv_off);
    }
}

/* Text projection: out[n,k] = sum_t W[k,t] x[n,t], W (K, T), x (N, T),
 * out (N, K). Plain loops in a fixed order (small; no BLAS, so no thread
 * count dependence). */
static void text_proj(int N, int K, int T, const float *W, const float *x, float *out) {
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            const float *w = W + (size_t)k * T, *xn = x + (size_t)n * T;
            float acc = 0;
            for (int t = 0; t < T; t++) acc += w[t] * xn[t];
            out[(size_t)n * K + k] = acc;
        }
}

/* Backward of text_proj from dout (N, K): dW += dout^T x when dW is not
 * NULL, dx += dout W when dx is not NULL. */
static void text_proj_backward(int N, int K, int T, const float *W, const float *x, const float *dout, float *dW,
                               float *dx) {
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            float g = dout[(size_t)n * K + k];
            const float *xn = x + (size_t)n * T, *w = W + (size_t)k * T;
            if (dW) {
                float *dw = dW + (size_t)k * T;
                for (int t = 0; t < T; t++) dw[t] += g * xn[t];
            }
            if (dx) {
                float *dxn = dx + (size_t)n * T;
                for (int t = 0; t < T; t++) dxn[t] += g * w[t];
            }
        }
}

/* G forward on v->N latent vectors z (the view's own, z[0] is sample
 * v->n0) with parameters p and buffers b (the live net or the EMA copy).
 * Returns the output (N,C,H,W) at the view's samples, tanh applied. */
static const float *g_forward(model_t *m, const float *p, float *b, const float *z, const int32_t *labels,
                              const float *text, const view_t *v) {
    net_t *G = &m->net[MODEL_G];
    const int N = v->N;
    const float *x = z;
    if (m->cond) {
        int Z = m->desc.z_dim, E = G->emb_dim;
        float *gemb = m->gemb + (size_t)v->n0 * E, *zin = m->zin_buf + (size_t)v->n0 * m->zin;
        if (m->cond == COND_TEXT) text_proj(N, E, m->tdim, p + G->embed_off, text, gemb);
        else embed_forward(N, E, p + G->embed_off, labels, gemb);
        for (int n = 0; n < N; n++) {
            memcpy(zin + (size_t)n * m->zin, z + (size_t)n * Z, (size_t)Z * sizeof(float));
            memcpy(zin + (size_t)n * m->zin + Z, gemb + (size_t)n * E, (size_t)E * sizeof(float));
        }
        x = zin;
    }
    for (int i = 0; i < G->L; i++) {
        stage_t *s = &G->st[i];
        size_t off = (size_t)v->n0 * s->lay.sn;
        stage_conv_forward(m, s, N, x, stage_in_lay(G, i), p + s->w_off, s->out + off);
        if (s->bn) {
            stage_bn_forward(s, v, p, b, BN_ACT_RELU, 0.0f);
        } else {
            ASSERT(i == G->L - 1); /* tanh on the NCHW images */
            tanh_forward((size_t)N * stage_out(s), s->out + off, s->out + off);
        }
        x = s->act + (size_t)v->n0 * s->alay.sn;
    }
    return G->st[G->L - 1].out + (size_t)v->n0 * m->img;
}

/* G backward from dfake (the view's N images) into grad, G's gradient
 * (accumulated), after g_forward on the same view (its activations and BN
 * slot must be intact). */
static void g_backward(model_t *m, const float *z, const int32_t *labels, const float *text, const view_t *v,
                       const float *dfake, float *grad, float *dtext) {
    net_t *G = &m->net[MODEL_G];
    const int N = v->N;
    const float *p = G->p;
    float *cur = m->pp[0], *oth = m->pp[1], *t;
    stage_t *last = &G->st[G->L - 1];
    tanh_backward((size_t)N * m->img, last->out + (size_t)v->n0 * m->img, dfake, cur);
    for (int i = G->L - 1; i >= 0; i--) {
        stage_t *s = &G->st[i];
        if (s->bn) { /* and ReLU's backward; from act's layout to out's, so not in place */
            size_t off = (size_t)v->n0 * s->lay.sn, aoff = (size_t)v->n0 * s->alay.sn;
            bn_t bn = {N, s->K, s->OH * s->OW, BN_EPS, 0.1f, BN_ACT_RELU, 0.0f, s->lay, s->alay};
            bn_backward_act(&bn, s->out + off, s->act + aoff, p + s->gamma_off, s->mean + (size_t)v->mb * s->K,
                            s->rstd + (size_t)v->mb * s->K, cur, oth, grad + s->gamma_off, grad + s->beta_off);
            t = cur; cur = oth; oth = t;
        }
        const float *x = i > 0 ? G->st[i - 1].act + (size_t)v->n0 * G->st[i - 1].alay.sn
                               : (m->cond ? m->zin_buf + (size_t)v->n0 * m->zin : z);
        int need_dx = i > 0 || m->cond;
        stage_conv_backward(m, s, N, x, stage_in_lay(G, i), p + s->w_off, cur, need_dx ? oth : NULL,
                            grad + s->w_off);
        t = cur; cur = oth; oth = t;
    }
    if (m->cond) {
        /* cur = d(zin) (N, Z+E): the embedding part goes to G.embed (or
         * G.text and the text) */
        int Z = m->desc.z_dim, E = G->emb_dim;
        float *gemb = m->gemb + (size_t)v->n0 * E;
        for (int n = 0; n < N; n++)
            memcpy(gemb + (size_t)n * E, cur + (size_t)n * m->zin + Z, (size_t)E * sizeof(float));
        if (m->cond == COND_TEXT) {
            if (dtext) memset(dtext, 0, (size_t)N * m->tdim * sizeof(float));
            text_proj_backward(N, E, m->tdim, p + G->embed_off, text, gemb, grad + G->embed_off, dtext);
        } else {
            embed_backward(N, E, labels, gemb, grad + G->embed_off);
        }
    }
}

/* D forward on x (the view's N images); logits (N). Text models: text
 * (N, T) is each image's text; with text2 (N, T) also logits2 (N), the
 * same images with the other texts (the features are computed once). */
static void d_forward(model_t *m, const float *x, const int32_t *labels, const float *text, const float *text2,
                      const view_t *v, float *logits, float *logits2) {
    net_t *D = &m->net[MODEL_D];
    const int N = v->N;
    const float *p = D->p;
    float *b = D->buf;
    for (int i = 0; i < D->L; i++) {
        stage_t *s = &D->st[i];
        size_t off = (size_t)v->n0 * s->lay.sn;
        stage_conv_forward(m, s, N, x, stage_in_lay(D, i), p + s->w_off, s->out + off);
        /* BN stages are hidden ones: LeakyReLU follows, fused into BN */
        if (s->bn) stage_bn_forward(s, v, p, b, BN_ACT_LRELU, 0.2f);
        else if (i < D->L - 1) stage_lrelu(s, N, 0.2f, s->act + off, NULL, NULL);
        x = s->act + (size_t)v->n0 * s->alay.sn;
    }
    const stage_t *last = &D->st[D->L - 1];
    memcpy(logits, last->out + (size_t)v->n0 * last->lay.sn, (size_t)N * sizeof(float));
    if (text2) memcpy(logits2, logits, (size_t)N * sizeof(float));
    if (m->cond) {
        /* projection: logit += <embed[y], sum_hw h> (text: <W_d c, sum_hw h>) */
        const stage_t *hs = &D->st[D->L - 2];
        int F = D->emb_dim, HW = hs->OH * hs->OW;
        float *demb = m->demb + (size_t)v->n0 * F, *hsum = m->hsum + (size_t)v->n0 * F;
        float *demb2 = text2 ? m->demb2 + (size_t)v->n0 * F : NULL;
        const float *act = hs->act + (size_t)v->n0 * hs->alay.sn;
        if (m->cond == COND_TEXT) {
            text_proj(N, F, m->tdim, p + D->embed_off, text, demb);
            if (text2) text_proj(N, F, m->tdim, p + D->embed_off, text2, demb2);
        } else {
            embed_forward(N, F, p + D->embed_off, labels, demb);
        }
        for (int n = 0; n < N; n++) {
            double acc = 0, acc2 = 0;
            for (int c = 0; c < F; c++) {
                const float *h = act + nn_lay_at(hs->alay, n, c);
                float sum = 0;
                for (int k = 0; k < HW; k++) sum += h[k];
                hsum[(size_t)n * F + c] = sum;
                acc += (double)sum * demb[(size_t)n * F + c];
                if (demb2) acc2 += (double)sum * demb2[(size_t)n * F + c];
            }
            logits[n] += (float)acc;
            if (demb2) logits2[n] += (float)acc2;
        }
    }
}

/* D backward from dlogits (N) after d_forward on the same x and view
 * (with text2: from dlogits and dlogits2, the two logits' gradients).
 * Parameter gradients are accumulated into grad unless it is NULL; dx
 * (N,C,H,W) is written when not NULL. Text models: the gradients of the
 * texts are ADDED to dtext (and dtext2) when not NULL. */
static void d_backward(model_t *m, const float *x, const int32_t *labels, const float *text, const float *text2,
                       const view_t *v, const float *dlogits, const float *dlogits2, float *grad, float *dx,
                       float *dtext, float *dtext2, const dextra_t *xg) {
    net_t *D = &m->net[MODEL_D];
    const int N = v->N;
    const float *p = D->p;
    float *cur = m->pp[0], *oth = m->pp[1], *t;
    memcpy(cur, dlogits, (size_t)N * sizeof(float));
    if (text2)
        for (int n = 0; n < N; n++) cur[n] += dlogits2[n];
    for (int i = D->L - 1; i >= 0; i--) {
        stage_t *s = &D->st[i];
        size_t off = (size_t)v->n0 * s->lay.sn;
        if (s->bn) { /* LeakyReLU and BN in one pass (d_forward); from act's layout to out's */
            bn_t bn = {N, s->K, s->OH * s->OW, BN_EPS, 0.1f, BN_ACT_LRELU, 0.2f, s->lay, s->alay};
            size_t aoff = (size_t)v->n0 * s->alay.sn;
            bn_backward_act(&bn, s->out + off, s->act + aoff, p + s->gamma_off, s->mean + (size_t)v->mb * s->K,
                            s->rstd + (size_t)v->mb * s->K, cur, oth, grad ? grad + s->gamma_off : NULL,
                            grad ? grad + s->beta_off : NULL);
            t = cur; cur = oth; oth = t;
        } else if (i < D->L - 1) {
            stage_lrelu(s, N, 0.2f, s->act + off, cur, oth);
            t = cur; cur = oth; oth = t;
        }
        const float *xin = i > 0 ? D->st[i - 1].act + (size_t)v->n0 * D->st[i - 1].alay.sn : x;
        float *dxin = i > 0 ? oth : dx;
        stage_conv_backward(m, s, N, xin, stage_in_lay(D, i), p + s->w_off, cur, dxin,
                            grad ? grad + s->w_off : NULL);
        if (i == D->L - 1 && m->cond) {
            /* projection: dh[n,c,:] += dl[n] e[y_n,c]; dembed[y_n] += dl[n] hsum[n] */
            const stage_t *hs = &D->st[D->L - 2];
            int F = D->emb_dim, HW = hs->OH * hs->OW;
            float *demb = m->demb + (size_t)v->n0 * F, *hsum = m->hsum + (size_t)v->n0 * F;
            float *demb2 = text2 ? m->demb2 + (size_t)v->n0 * F : NULL;
            for (int n = 0; n < N; n++) {
                float dl = dlogits[n], dl2 = demb2 ? dlogits2[n] : 0.0f;
                for (int c = 0; c < F; c++) {
                    float val = dl * demb[(size_t)n * F + c];
                    if (demb2) val += dl2 * demb2[(size_t)n * F + c];
                    if (xg && xg->dh) val += xg->dh[(size_t)n * F + c];
                    float *dh = oth + nn_lay_at(hs->alay, n, c);
                    for (int k = 0; k < HW; k++) dh[k] += val;
                }
            }
            if (m->cond == COND_TEXT) {
                /* logit = <W c, hsum>: dW += (dl hsum) c^T, dc += W^T (dl hsum) */
                float *hdl = m->hdl + (size_t)v->n0 * F, *gw = grad ? grad + D->embed_off : NULL;
                for (int pass = 0; pass < (text2 ? 2 : 1); pass++) {
                    const float *dlp = pass ? dlogits2 : dlogits;
                    float *dtp = pass ? dtext2 : dtext;
                    if (!gw && !dtp) continue;
                    for (size_t j = 0; j < (size_t)N * F; j++) hdl[j] = hsum[j] * dlp[j / (size_t)F];
                    if (!pass && xg && xg->de)
                        for (size_t j = 0; j < (size_t)N * F; j++) hdl[j] += xg->de[j];
                    text_proj_backward(N, F, m->tdim, p + D->embed_off, pass ? text2 : text, hdl, gw, dtp);
                }
            } else if (grad) {
                for (size_t j = 0; j < (size_t)N * F; j++) hsum[j] *= dlogits[j / (size_t)F];
                embed_backward(N, F, labels, hsum, grad + D->embed_off);
            }
        }
        t = cur; cur = oth; oth = t;
    }
}

static double sum_sigmoid(const float *l, int N) {
    double s = 0;
    for (int i = 0; i < N; i++) s += 1.0 / (1.0 + exp(-(double)l[i]));
    return s;
}

/* The update that ends each net's part of a training step: the L2 norm
 * of net `which`'s gradients into *norm, then one Adam step. Returns
 * GB_ENUMERIC, without updating, when loss or the norm is not finite. */
static int net_adam_step(model_t *m, int which, float loss, float *norm) {
    net_t *n = &m->net[which];
    *norm = (float)sqrt(nn_sumsq(n->np, n->g));
    if (!isfinite(loss) || !isfinite(*norm)) return GB_ENUMERIC;
    adam_begin(&m->adam[which]);
    adam_update(&m->adam[which], n->np, n->p, n->g, n->am, n->av);
    return 0;
}

/* G's exponential moving average after its update; buffers are copied. */
static void ema_step(model_t *m) {
    const net_t *G = &m->net[MODEL_G];
    ema_update(G->np, m->ema_decay, m->ema, G->p);
    if (G->nb) memcpy(m->ema + G->np, G->buf, G->nb * sizeof(float));
}

int model_train_step(model_t *m, const float *real, const int32_t *labels, int N, const float *z,
                     const int32_t *fake_labels, model_stats_t *stats) {
    const model_split_t whole = {1, 0, 1, NULL, NULL, NULL, NULL};
    return model_train_step_split(m, real, labels, N, z, fake_labels, &whole, stats);
}

/* The loss of one side on n logits; writes dlogits. which: 0 real (D
 * step), 1 fake (D step), 2 fake (G step). */
static float side_loss(const model_t *m, int which, int n, const float *l, float *dl) {
    int hinge = m->desc.loss == MODEL_LOSS_HINGE;
    switch (which) {
    case 0: return hinge ? hinge_d_real((size_t)n, l, dl) : bce_logits((size_t)n, l, 1.0f, dl);
    case 1: return hinge ? hinge_d_fake((size_t)n, l, dl) : bce_logits((size_t)n, l, 0.0f, dl);
    default: return hinge ? hinge_g((size_t)n, l, dl) : bce_logits((size_t)n, l, 1.0f, dl);
    }
}

static void grad_add(float *acc, const float *g, size_t np) {
    for (size_t i = 0; i < np; i++) acc[i] += g[i];
}

/* Where micro-batch j's gradient is computed: the first micro-batch of
 * the batch straight into the sum (the net's gradient buffer acc); the
 * first process's others into one spare slot, added to the sum at once;
 * another process's into a slot each, kept until the sum of the
 * micro-batches before them arrives (fold_rest). */
static float *grad_slot(model_t *m, const model_split_t *sp, int j, float *acc) {
    if (j == 0) return acc;
    return (float *)(m->gscr + (size_t)(sp->lo > 0 ? j - sp->lo : 0) * grad_stride(m));
}

/* The end of the sum g_0 + g_1 + ... + g_{M-1}, in that order, then
 * * 1/M when M > 1: on a process after the first, the sum of the
 * micro-batches before lo arrives and this process's gradients are added
 * in order; then the process holding the last micro-batch shares the
 * total. The same float operations whatever process computed which
 * micro-batch (the first process added its own already, as it went). */
static int fold_rest(model_t *m, const model_split_t *sp, float *acc, size_t np) {
    if (sp->lo > 0) {
        int rc = sp->recv_prefix(sp->ctx, acc, np);
        if (rc) return rc;
        for (int j = sp->lo; j < sp->hi; j++) grad_add(acc, grad_slot(m, sp, j, acc), np);
    }
    if (sp->share_sum) {
        int rc = sp->share_sum(sp->ctx, acc, np);
        if (rc) return rc;
    }
    if (sp->M > 1) {
        const float inv = 1.0f / (float)sp->M;
        for (size_t i = 0; i < np; i++) acc[i] *= inv;
    }
    return 0;
}

int model_train_step_split(model_t *m, const float *real, const int32_t *labels, int N, const float *z,
                           const int32_t *fake_labels, const model_split_t *sp, model_stats_t *stats) {
    ASSERT(N >= 1 && N <= m->max_batch);
    const int M = sp->M;
    ASSERT(M >= 1 && N % M == 0 && sp->lo >= 0 && sp->lo < sp->hi && sp->hi <= M);
    ASSERT(sp->gather ? sp->recv_prefix && sp->share_sum : sp->lo == 0 && sp->hi == M);
    if (!labels_ok(m, labels, N) || !labels_ok(m, fake_labels, N)) return GB_EFORMAT;
    net_t *G = &m->net[MODEL_G], *D = &m->net[MODEL_D];
    const int b = N / M, Z = m->desc.z_dim;
    const size_t img = m->img;
    model_stats_t st;
    memset(&st, 0, sizeof st);
    m->last_n = N;
    size_t r1 = rec_bytes(m, 1), r2 = rec_bytes(m, 2);
    if ((size_t)M * GB_MAX(r1, r2) > m->rec_cap) {
        free(m->rec);
        m->rec_cap = (size_t)M * GB_MAX(r1, r2);
        m->rec = gb_xmalloc_aligned(m->rec_cap);
        memset(m->rec, 0, m->rec_cap);
    }
    /* spare gradient slots (grad_slot): none for one micro-batch, one for
     * the first process, one per micro-batch for the others (DCGAN-28,
     * M = 4 on one process: 3.3 MiB where M whole gradients took 13) */
    size_t nslot = (size_t)(sp->lo > 0 ? sp->hi - sp->lo : sp->hi - 1);
    if (nslot * grad_stride(m) > m->gscr_cap) {
        free(m->gscr);
        m->gscr_cap = nslot * grad_stride(m);
        m->gscr = gb_xmalloc_aligned(m->gscr_cap);
    }
    unsigned char *R = m->rec;
    view_t v = {0, b, 0, 1, BN_MOMENTUM, NULL};

    /* 1-2. per micro-batch: fake = G(z); D on real, then on fake; D's
     * gradient and every pass's BN statistics into the record */
    for (int j = sp->lo; j < sp->hi; j++) {
        unsigned char *rec = R + (size_t)j * r1;
        double *sc = (double *)rec, *gst = sc + REC_SC, *dst_r = gst + G->nstat, *dst_f = dst_r + D->nstat;
        float *gd = grad_slot(m, sp, j, D->g);
        int n0 = j * b;
        memset(gd, 0, D->np * sizeof(float));
        v.n0 = n0;
        v.mb = j;
        v.stat = gst;
        const float *fake = g_forward(m, G->p, G->buf, z + (size_t)n0 * Z, lab_at(fake_labels, n0), NULL, &v);
        float *l0 = m->logit[0] + n0, *l1 = m->logit[1] + n0, *dl = m->dlogit + n0;
        v.stat = dst_r;
        d_forward(m, real + (size_t)n0 * img, lab_at(labels, n0), NULL, NULL, &v, l0, NULL);
        float lr = side_loss(m, 0, b, l0, dl);
        d_backward(m, real + (size_t)n0 * img, lab_at(labels, n0), NULL, NULL, &v, dl, NULL, gd, NULL, NULL, NULL,
                   NULL);
        v.stat = dst_f;
        d_forward(m, fake, lab_at(fake_labels, n0), NULL, NULL, &v, l1, NULL);
        float lf = side_loss(m, 1, b, l1, dl);
        d_backward(m, fake, lab_at(fake_labels, n0), NULL, NULL, &v, dl, NULL, gd, NULL, NULL, NULL, NULL);
        sc[0] = lr + lf;
        sc[1] = sum_sigmoid(l0, b);
        sc[2] = sum_sigmoid(l1, b);
        if (sp->lo == 0 && j > 0) grad_add(D->g, gd, D->np);
    }
    if (sp->gather) {
        int rc = sp->gather(sp->ctx, R, r1, M);
        if (rc) return rc;
    }
    double s_loss = 0, s_real = 0, s_fake = 0;
    for (int j = 0; j < M; j++) {
        const double *sc = (const double *)(R + (size_t)j * r1), *gst = sc + REC_SC;
        s_loss += sc[0];
        s_real += sc[1];
        s_fake += sc[2];
        net_stats_apply(G, gst);
        net_stats_apply(D, gst + G->nstat);
        net_stats_apply(D, gst + G->nstat + D->nstat);
    }
    int frc = fold_rest(m, sp, D->g, D->np);
    if (frc) return frc;
    st.loss_d = (float)(s_loss / M);
    st.d_real = (float)(s_real / N);
    st.d_fake = (float)(s_fake / N);
    if (net_adam_step(m, MODEL_D, st.loss_d, &st.grad_norm_d)) goto numeric;

    /* 3. G step through the updated D, per micro-batch; G's activations of
     * micro-batch j are still those of its forward in 1 */
    for (int j = sp->lo; j < sp->hi; j++) {
        unsigned char *rec = R + (size_t)j * r2;
        double *sc = (double *)rec;
        float *gg = grad_slot(m, sp, j, G->g);
        int n0 = j * b;
        memset(gg, 0, G->np * sizeof(float));
        v.n0 = n0;
        v.mb = j;
        v.stat = sc + REC_SC;
        const float *fake = G->st[G->L - 1].out + (size_t)n0 * img;
        float *l2 = m->logit[2] + n0, *dl = m->dlogit + n0, *dfake = m->dfake + (size_t)n0 * img;
        d_forward(m, fake, lab_at(fake_labels, n0), NULL, NULL, &v, l2, NULL);
        sc[0] = side_loss(m, 2, b, l2, dl);
        sc[1] = sum_sigmoid(l2, b);
        d_backward(m, fake, lab_at(fake_labels, n0), NULL, NULL, &v, dl, NULL, NULL, dfake, NULL, NULL, NULL);
        g_backward(m, z + (size_t)n0 * Z, lab_at(fake_labels, n0), NULL, &v, dfake, gg, NULL);
        if (sp->lo == 0 && j > 0) grad_add(G->g, gg, G->np);
    }
    if (sp->gather) {
        int rc = sp->gather(sp->ctx, R, r2, M);
        if (rc) return rc;
    }
    double s_lg = 0, s_fg = 0;
    for (int j = 0; j < M; j++) {
        const double *sc = (const double *)(R + (size_t)j * r2);
        s_lg += sc[0];
        s_fg += sc[1];
        net_stats_apply(D, sc + REC_SC);
    }
    frc = fold_rest(m, sp, G->g, G->np);
    if (frc) return frc;
    st.loss_g = (float)(s_lg / M);
    st.d_fake_g = (float)(s_fg / N);
    if (net_adam_step(m, MODEL_G, st.loss_g, &st.grad_norm_g)) goto numeric;

    /* 4. EMA */
    ema_step(m);
    if (stats) *stats = st;
    return 0;
numeric:
    if (stats) *stats = st;
    return GB_ENUMERIC;
}

/* ======================= text models ======================= */

/* The contrastive loss on the pass d_forward just made (m->hsum: the
 * images' pooled D features, m->demb: D's projection of their texts);
 * its gradients times m->contrast into m->cdh (and into m->cde when
 * with_text). Returns the unweighted loss. */
static float contrast_scaled(model_t *m, int N, int with_text) {
    int F = m->net[MODEL_D].emb_dim;
    float lc = contrast_cos(N, F, m->hsum, m->demb, MODEL_CONTRAST_TAU, m->cdh, with_text ? m->cde : NULL, m->cws);
    for (size_t j = 0; j < (size_t)N * F; j++) {
        m->cdh[j] *= m->contrast;
        if (with_text) m->cde[j] *= m->contrast;
    }
    return lc;
}

/* Rows of T floats: dst row i = src row idx[i], i < N (a batch's texts
 * re-dealt: the mismatched captions, mode seeking's pairs). */
static void gather_rows(float *dst, const float *src, const int32_t *idx, int N, int T) {
    for (int i = 0; i < N; i++) memcpy(dst + (size_t)i * T, src + (size_t)idx[i] * T, (size_t)T * sizeof(float));
}

/* The gradient of gather_rows: dst row idx[i] += g row i, in order i. */
static void scatter_add_rows(float *dst, const float *g, const int32_t *idx, int N, int T) {
    for (int i = 0; i < N; i++) {
        float *d = dst + (size_t)idx[i] * T;
        const float *src = g + (size_t)i * T;
        for (int k = 0; k < T; k++) d[k] += src[k];
    }
}

/* The mode-seeking term (model.h) on fakes i and h + i, i < h: returns
 * 1 / (lz + eps) and adds m->modeseek times its gradient into dfake. */
static float mode_seek(model_t *m, const float *fake, const float *z, int h, float *dfake) {
    const size_t img = m->img;
    const int Z = m->desc.z_dim;
    double sf = 0, sz = 0;
    for (size_t j = 0; j < (size_t)h * img; j++) sf += fabsf(fake[(size_t)h * img + j] - fake[j]);
    for (size_t j = 0; j < (size_t)h * Z; j++) sz += fabsf(z[(size_t)h * Z + j] - z[j]);
    const double df = sf / ((double)h * img), dz = sz / ((double)h * Z);
    const double loss = 1.0 / (df / dz + MODEL_MODESEEK_EPS);
    /* d(w loss)/d|f[h+i] - f[i]| for every element */
    const float g = (float)(-m->modeseek * loss * loss / (dz * (double)h * (double)img));
    for (size_t j = 0; j < (size_t)h * img; j++) {
        float d = fake[(size_t)h * img + j] - fake[j];
        float sg = d > 0 ? g : d < 0 ? -g : 0.0f;
        dfake[(size_t)h * img + j] += sg;
        dfake[j] -= sg;
    }
    return (float)loss;
}

/* The auxiliary classifier (TAC-GAN; model.h) on the pass d_forward just
 * made: logits = hsum Wa^T + ba against labels; m->aux times d loss /
 * d hsum into dh (overwritten), plus m->cdh when with_cdh (the
 * contrastive term's, so one extra gradient goes into d_backward); when
 * grad, m->aux times the gradients of D's aux.weight and aux.bias are
 * added there. Returns the unweighted mean cross-entropy. */
static float aux_term(model_t *m, int N, const int32_t *labels, float *dh, int with_cdh, float *grad) {
    const net_t *D = &m->net[MODEL_D];
    const int A = D->aux, F = D->emb_dim;
    const float *w = D->p + D->aux_off, *b = w + (size_t)A * F;
    linear_forward(N, F, A, m->hsum, w, b, m->alog);
    float loss = softmax_ce(N, A, m->alog, labels, m->alog, NULL);
    for (size_t j = 0; j < (size_t)N * A; j++) m->alog[j] *= m->aux;
    linear_backward(N, F, A, m->hsum, w, m->alog, dh, grad ? grad + D->aux_off : NULL,
                    grad ? grad + D->aux_off + (size_t)A * F : NULL);
    if (with_cdh)
        for (size_t j = 0; j < (size_t)N * F; j++) dh[j] += m->cdh[j];
    return loss;
}

int model_train_step_text(model_t *m, const float *real, const int32_t *labels, const float *text,
                          const int32_t *mismatch, int N, const float *z, const float *text_g, float *dtext_d,
                          float *dtext_g, model_stats_t *stats) {
    if (m->cond != COND_TEXT || N < 2 || !text || !text_g || !mismatch) return GB_EFORMAT;
    ASSERT(N <= m->max_batch);
    for (int i = 0; i < N; i++)
        if (mismatch[i] < 0 || mismatch[i] >= N || mismatch[i] == i) return GB_EFORMAT;
    const int aux = m->aux > 0 && m->net[MODEL_D].aux > 0;
    if (aux) {
        if (!labels) return GB_EFORMAT;
        for (int i = 0; i < N; i++)
            if (labels[i] < 0 || labels[i] >= m->net[MODEL_D].aux) return GB_EFORMAT;
    }
    net_t *G = &m->net[MODEL_G], *D = &m->net[MODEL_D];
    const int T = m->tdim;
    model_stats_t st;
    memset(&st, 0, sizeof st);
    m->last_n = N;
    /* whole batch, training mode, running statistics updated by each pass
     * (G, D real, D fake, D fake of the G step) */
    const view_t v = {0, N, 0, 1, BN_MOMENTUM, NULL};
    float *l0 = m->logit[0], *l1 = m->logit[1], *l2 = m->logit[2], *l3 = m->logit[3];
    float *dl = m->dlogit, *dl2 = m->dlogit2;
    /* mode seeking pairs fake h + i with fake i: the same caption (G's and
     * D's), another z */
    const int h = m->modeseek > 0 ? N / 2 : 0;
    /* fsrc[i]: the caption fake i is drawn from */
    for (int i = 0; i < N; i++) m->fsrc[i] = i >= h && i < 2 * h ? i - h : i;
    const float *tg = text_g, *tf = text;
    if (h) {
        gather_rows(m->tms_g, text_g, m->fsrc, N, T);
        gather_rows(m->tms_d, text, m->fsrc, N, T);
        tg = m->tms_g;
        tf = m->tms_d;
    }
    if (aux)
        for (int i = 0; i < N; i++) m->alab[i] = labels[m->fsrc[i]];

    /* 1. fake = G(z, tg) */
    const float *fake = g_forward(m, G->p, G->buf, z, NULL, tg, &v);

    /* 2. D step: (real, text) and (real, mismatched) from one pass, then
     * (fake, text) */
    gather_rows(m->tmis, text, mismatch, N, T);
    memset(D->g, 0, D->np * sizeof(float));
    if (dtext_d) {
        memset(dtext_d, 0, (size_t)N * T * sizeof(float));
        memset(m->dtmis, 0, (size_t)N * T * sizeof(float));
    }
    d_forward(m, real, NULL, text, m->tmis, &v, l0, l3);
    float lr = side_loss(m, 0, N, l0, dl);
    float lm = side_loss(m, 1, N, l3, dl2);
    for (int i = 0; i < N; i++) dl2[i] *= 0.5f;
    /* contrastive: each real image's D features must pick its own caption
     * out of the batch's (trains D and, through D's projection, the text) */
    float lc = m->contrast > 0 ? contrast_scaled(m, N, 1) : 0.0f;
    /* auxiliary classifier: D's features of each real image must tell its
     * class (trains D and its classifier) */
    float la = aux ? aux_term(m, N, labels, m->adh, m->contrast > 0, D->g) : 0.0f;
    const dextra_t cx = {aux ? m->adh : m->cdh, m->contrast > 0 ? m->cde : NULL};
    d_backward(m, real, NULL, text, m->tmis, &v, dl, dl2, D->g, NULL, dtext_d, dtext_d ? m->dtmis : NULL,
               m->contrast > 0 || aux ? &cx : NULL);
    d_forward(m, fake, NULL, tf, NULL, &v, l1, NULL);
    float lf = side_loss(m, 1, N, l1, dl);
    for (int i = 0; i < N; i++) dl[i] *= 0.5f;
    if (h && dtext_d) memset(m->dtms, 0, (size_t)N * T * sizeof(float));
    d_backward(m, fake, NULL, tf, NULL, &v, dl, NULL, D->g, NULL, h && dtext_d ? m->dtms : dtext_d, NULL, NULL);
    if (h && dtext_d) scatter_add_rows(dtext_d, m->dtms, m->fsrc, N, T);
    if (dtext_d) scatter_add_rows(dtext_d, m->dtmis, mismatch, N, T);
    st.loss_d = lr + 0.5f * (lm + lf) + m->contrast * lc + m->aux * la;
    st.aux_real = la;
    st.d_real = (float)(sum_sigmoid(l0, N) / N);
    st.d_mismatch = (float)(sum_sigmoid(l3, N) / N);
    st.d_fake = (float)(sum_sigmoid(l1, N) / N);
    if (net_adam_step(m, MODEL_D, st.loss_d, &st.grad_norm_d)) goto numeric;

    /* 3. G step through the updated D */
    memset(G->g, 0, G->np * sizeof(float));
    d_forward(m, fake, NULL, tf, NULL, &v, l2, NULL);
    st.loss_g = side_loss(m, 2, N, l2, dl);
    st.d_fake_g = (float)(sum_sigmoid(l2, N) / N);
    /* contrastive on the fakes: G's image must pick its caption (only G
     * learns from it: D's features and projection are held) */
    if (m->contrast > 0) st.loss_g += m->contrast * contrast_scaled(m, N, 0);
    /* auxiliary classifier on the fakes: G must draw its caption's class
     * (only G learns from it) */
    if (aux) {
        st.aux_fake = aux_term(m, N, m->alab, m->adh, m->contrast > 0, NULL);
        st.loss_g += m->aux * st.aux_fake;
    }
    const dextra_t gx = {aux ? m->adh : m->cdh, NULL};
    d_backward(m, fake, NULL, tf, NULL, &v, dl, NULL, NULL, m->dfake, NULL, NULL,
               m->contrast > 0 || aux ? &gx : NULL);
    if (h) st.loss_g += m->modeseek * mode_seek(m, fake, z, h, m->dfake);
    g_backward(m, z, NULL, tg, &v, m->dfake, G->g, h && dtext_g ? m->dtms : dtext_g);
    if (h && dtext_g) {
        memset(dtext_g, 0, (size_t)N * T * sizeof(float));
        scatter_add_rows(dtext_g, m->dtms, m->fsrc, N, T);
    }
    if (m->interp > 0) {
        /* GAN-INT: G also draws from the midpoints of each caption and its
         * mismatched one, and is scored by D on those pairs (D does not
         * train on them); the same z. G's midpoint comes from text_g, D's
         * from text, so each gradient keeps its owner (model.h). */
        for (int i = 0; i < N; i++) {
            const float *a = text_g + (size_t)i * T, *b = text_g + (size_t)mismatch[i] * T;
            const float *c = text + (size_t)i * T, *d = text + (size_t)mismatch[i] * T;
            for (int k = 0; k < T; k++) {
                m->tint_g[(size_t)i * T + k] = 0.5f * (a[k] + b[k]);
                m->tint_d[(size_t)i * T + k] = 0.5f * (c[k] + d[k]);
            }
        }
        const float *fi = g_forward(m, G->p, G->buf, z, NULL, m->tint_g, &v);
        float *lint = m->dlogit2; /* free after the D step */
        d_forward(m, fi, NULL, m->tint_d, NULL, &v, lint, NULL);
        float li = side_loss(m, 2, N, lint, dl);
        for (int i = 0; i < N; i++) dl[i] *= m->interp;
        d_backward(m, fi, NULL, m->tint_d, NULL, &v, dl, NULL, NULL, m->dfake, NULL, NULL, NULL);
        g_backward(m, z, NULL, m->tint_g, &v, m->dfake, G->g, dtext_g ? m->dtint : NULL);
        if (dtext_g)
            for (int i = 0; i < N; i++) {
                float *a = dtext_g + (size_t)i * T, *b = dtext_g + (size_t)mismatch[i] * T;
                const float *g = m->dtint + (size_t)i * T;
                for (int k = 0; k < T; k++) {
                    a[k] += 0.5f * g[k];
                    b[k] += 0.5f * g[k];
                }
            }
        st.loss_g += m->interp * li;
    }
    if (net_adam_step(m, MODEL_G, st.loss_g, &st.grad_norm_g)) goto numeric;

    /* 4. EMA */
    ema_step(m);
    if (stats) *stats = st;
    return 0;
numeric:
    if (stats) *stats = st;
    return GB_ENUMERIC;
}

void model_set_text_interp(model_t *m, float weight) {
    ASSERT(m->cond == COND_TEXT && weight >= 0 && isfinite(weight));
    m->interp = weight;
}

float model_text_interp(const model_t *m) { return m->interp; }

void model_set_text_contrast(model_t *m, float weight) {
    ASSERT(m->cond == COND_TEXT && weight >= 0 && isfinite(weight));
    m->contrast = weight;
}

float model_text_contrast(const model_t *m) { return m->contrast; }

void model_set_text_modeseek(model_t *m, float weight) {
    ASSERT(m->cond == COND_TEXT && weight >= 0 && isfinite(weight));
    m->modeseek = weight;
}

float model_text_modeseek(const model_t *m) { return m->modeseek; }

void model_set_text_aux(model_t *m, float weight) {
    ASSERT(m->cond == COND_TEXT && weight >= 0 && isfinite(weight));
    ASSERT(weight == 0 || m->net[MODEL_D].aux > 0);
    m->aux = weight;
}

float model_text_aux(const model_t *m) { return m->aux; }

void model_scale_text_init(model_t *m, float gain) {
    ASSERT(m->cond == COND_TEXT && gain > 0 && isfinite(gain));
    net_t *G = &m->net[MODEL_G];
    size_t n = (size_t)G->emb_dim * (size_t)m->tdim;
    for (size_t i = 0; i < n; i++) G->p[G->embed_off + i] *= gain;
    model_ema_reset(m);
}

int model_generate_text(model_t *m, const float *z, const float *text, int N, int use_ema, float *out) {
    ASSERT(N >= 1);
    if (m->cond != COND_TEXT || !text) return GB_EFORMAT;
    net_t *G = &m->net[MODEL_G];
    const float *p = use_ema ? m->ema : G->p;
    float *b = use_ema ? m->ema + G->np : G->buf;
    for (int i0 = 0; i0 < N; i0 += m->max_batch) {
        int n = GB_MIN(m->max_batch, N - i0);
        const view_t v = {0, n, 0, 0, BN_MOMENTUM, NULL};
        const float *y = g_forward(m, p, b, z + (size_t)i0 * m->desc.z_dim, NULL, text + (size_t)i0 * m->tdim, &v);
        memcpy(out + (size_t)i0 * m->img, y, (size_t)n * m->img * sizeof(float));
    }
    return 0;
}

int model_discriminate_text(model_t *m, const float *x, const float *text, int N, float *logits) {
    ASSERT(N >= 1);
    if (m->cond != COND_TEXT || !text) return GB_EFORMAT;
    for (int i0 = 0; i0 < N; i0 += m->max_batch) {
        int n = GB_MIN(m->max_batch, N - i0);
        const view_t v = {0, n, 0, 0, BN_MOMENTUM, NULL};
        d_forward(m, x + (size_t)i0 * m->img, NULL, text + (size_t)i0 * m->tdim, NULL, &v, logits + i0, NULL);
    }
    return 0;
}

int model_encode_texts(struct tenc *e, const char *const *texts, int n, float *out, char *err, size_t errlen) {
    int B = tenc_max_batch(e), D = tenc_out_dim(e);
    for (int i0 = 0; i0 < n; i0 += B) {
        int k = GB_MIN(B, n - i0);
        char why[256];
        int rc = tenc_forward(e, texts + i0, k, out + (size_t)i0 * D, why, sizeof why);
        if (rc) {
            if (err && errlen) snprintf(err, errlen, "texts %d..%d: %s", i0, i0 + k - 1, why);
            return rc;
        }
    }
    return 0;
}

/* ======================= inference ======================= */

int model_generate(model_t *m, const float *z, const int32_t *labels, int N, int use_ema, float *out) {
    ASSERT(N >= 1);
    if (!labels_ok(m, labels, N)) return GB_EFORMAT;
    net_t *G = &m->net[MODEL_G];
    const float *p = use_ema ? m->ema : G->p;
    float *b = use_ema ? m->ema + G->np : G->buf;
    for (int i0 = 0; i0 < N; i0 += m->max_batch) {
        int n = GB_MIN(m->max_batch, N - i0);
        const view_t v = {0, n, 0, 0, BN_MOMENTUM, NULL};
        const float *y = g_forward(m, p, b, z + (size_t)i0 * m->desc.z_dim,
                                   m->desc.conditional ? labels + i0 : NULL, NULL, &v);
        memcpy(out + (size_t)i0 * m->img, y, (size_t)n * m->img * sizeof(float));
    }
    return 0;
}

void model_gen_layers(const model_t *m, int use_ema, model_gen_t *out) {
    _Static_assert(MODEL_GEN_MAX_LAYERS == MODEL_MAX_STAGES, "one bound on the number of stages");
    const net_t *G = &m->net[MODEL_G];
    const float *p = use_ema ? m->ema : G->p, *b = use_ema ? m->ema + G->np : G->buf;
    memset(out, 0, sizeof *out);
    out->L = G->L;
    for (int i = 0; i < G->L; i++) {
        const stage_t *s = &G->st[i];
        model_gen_layer_t *l = &out->layer[i];
        ASSERT(s->transposed && s->KH == s->KW && s->H == s->W);
        l->Cin = s->C;
        l->K = s->K;
        l->H = s->H;
        l->W = s->W;
        l->OH = s->OH;
        l->OW = s->OW;
        l->k = s->KH;
        l->stride = s->S;
        l->pad = s->P;
        l->weight = p + s->w_off;
        l->bn = s->bn;
        if (s->bn) {
            l->gamma = p + s->gamma_off;
            l->beta = p + s->beta_off;
            l->mean = b + s->rm_off;
            l->var = b + s->rv_off;
        }
    }
    out->z_dim = m->desc.z_dim;
    out->embed_dim = m->cond ? G->emb_dim : 0;
    out->text_dim = G->has_text ? m->tdim : 0;
    out->text_weight = G->has_text ? p + G->embed_off : NULL;
    out->num_classes = G->has_embed ? m->desc.num_classes : 0;
    out->embed = G->has_embed ? p + G->embed_off : NULL;
    out->bn_eps = BN_EPS;
    out->channels = m->desc.channels;
    out->height = m->desc.height;
    out->width = m->desc.width;
}

int model_discriminate(model_t *m, const float *x, const int32_t *labels, int N, float *logits) {
    ASSERT(N >= 1);
    if (!labels_ok(m, labels, N)) return GB_EFORMAT;
    for (int i0 = 0; i0 < N; i0 += m->max_batch) {
        int n = GB_MIN(m->max_batch, N - i0);
        const view_t v = {0, n, 0, 0, BN_MOMENTUM, NULL};
        d_forward(m, x + (size_t)i0 * m->img, m->desc.conditional ? labels + i0 : NULL, NULL, NULL, &v, logits + i0,
                  NULL);
    }
    return 0;
}
