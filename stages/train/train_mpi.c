/* train_mpi.c - gambar-train's MPI glue (data parallelism over ranks).
 *
 * Why one module: the rest of the trainer calls tmpi_* functions that are
 * no-ops (or plain local work) when the program was not started by
 * mpirun, so a plain gambar-train never calls MPI_Init and behaves exactly
 * as before. Under mpirun (OMPI_COMM_WORLD_SIZE set) rank 0 is the whole
 * trainer of old (sockets, reorder window, checkpoints, metrics) and
 * broadcasts to the other ranks, in this order, what they need:
 *   MODEL  the model description, batch capacity, seed, micro-batch count
 *          and every state tensor, Adam state and EMA decay (sent when the
 *          model is built, loaded or grown: no shared file system needed);
 *   STEP   step number, images and labels of one accepted global batch;
 *   STOP   the end (with rank 0's exit status).
 * Each rank derives z and fake labels for the whole batch from
 * rng_derive(seed, step) itself and computes its M/N micro-batches; their
 * records (losses, BN statistics) are gathered in place (MPI_Allgather)
 * and the gradient sum goes along the ranks in order (MPI_Send/MPI_Recv
 * rank r to r + 1, then MPI_Bcast from the last rank), so every rank
 * makes the same float operations in the same order (model.h,
 * model_split_t). Per rank and step that sends one gradient of each net
 * where the Allgather of gradients moved M - M/N.
 *
 * Failure: MPI_ERRORS_RETURN on MPI_COMM_WORLD; every call is checked and
 * a failure logs "rank R: MPI_X (what) failed: REASON; a peer rank died?"
 * and exits 6 (GB_EXIT_PEER). A rank killed outright makes mpirun tear
 * the job down (its default), so no rank waits forever. */
#include "base.h"
#include "err.h"
#include "log.h"
#include "train.h"

#include <mpi.h>
#include <stdlib.h>
#include <unistd.h>

static int g_on, g_rank, g_size;
static double g_comm; /* seconds inside MPI calls */

int tmpi_init(int *argc, char ***argv) {
    if (!getenv("OMPI_COMM_WORLD_SIZE")) {
        g_size = 1;
        return 0;
    }
    if (MPI_Init(argc, argv) != MPI_SUCCESS) {
        log_error("MPI_Init failed (started by mpirun?)");
        return GB_EPEER;
    }
    g_on = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    char host[MPI_MAX_PROCESSOR_NAME];
    int hl = 0;
    MPI_Get_processor_name(host, &hl);
    log_info("MPI rank %d of %d on %s, pid %d", g_rank, g_size, host, (int)getpid());
    return 0;
}

int tmpi_active(void) { return g_on && g_size > 1; }
int tmpi_rank(void) { return g_rank; }
int tmpi_size(void) { return g_size; }
double tmpi_comm_seconds(void) { return g_comm; }

void tmpi_finalize(void) {
    if (g_on) MPI_Finalize();
    g_on = 0;
}

static void mpi_fail(const char *call, const char *what, int rc) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
    log_error("rank %d: %s (%s) failed: %s; a peer rank died?", g_rank, call, what, msg);
    exit(GB_EXIT_PEER);
}

void tmpi_bcast(void *buf, size_t bytes, const char *what) {
    if (!tmpi_active()) return;
    double t0 = gb_now();
    unsigned char *p = buf;
    while (bytes) { /* MPI counts are ints */
        int n = bytes > (1u << 30) ? 1 << 30 : (int)bytes;
        int rc = MPI_Bcast(p, n, MPI_BYTE, 0, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) mpi_fail("MPI_Bcast", what, rc);
        p += n;
        bytes -= (size_t)n;
    }
    g_comm += gb_now() - t0;
}

int tmpi_gather(void *ctx, void *recs, size_t rec_bytes, int M) {
    (void)ctx;
    if (!tmpi_active()) return 0;
    size_t per = (size_t)(M / g_size) * rec_bytes;
    if (per > (size_t)INT32_MAX) {
        log_error("rank %d: %zu bytes of micro-batch records per rank: over MPI's int count", g_rank, per);
        exit(GB_EXIT_FAIL);
    }
    double t0 = gb_now();
    int rc = MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, recs, (int)per, MPI_BYTE, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) mpi_fail("MPI_Allgather", "micro-batch records", rc);
    g_comm += gb_now() - t0;
    return 0;
}

#define TMPI_TAG_SUM 11 /* the gradient sum passed along the chain */

static int count_of(size_t n, const char *what) {
    if (n > (size_t)INT32_MAX) {
        log_error("rank %d: %zu floats of %s: over MPI's int count", g_rank, n, what);
        exit(GB_EXIT_FAIL);
    }
    return (int)n;
}

int tmpi_recv_prefix(void *ctx, float *acc, size_t n) {
    (void)ctx;
    double t0 = gb_now();
    int rc = MPI_Recv(acc, count_of(n, "gradient sum"), MPI_FLOAT, g_rank - 1, TMPI_TAG_SUM, MPI_COMM_WORLD,
                      MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) mpi_fail("MPI_Recv", "gradient sum from the rank before", rc);
    g_comm += gb_now() - t0;
    return 0;
}

int tmpi_share_sum(void *ctx, float *acc, size_t n) {
    (void)ctx;
    if (!tmpi_active()) return 0;
    double t0 = gb_now();
    int cnt = count_of(n, "gradient sum");
    if (g_rank < g_size - 1) {
        int rc = MPI_Send(acc, cnt, MPI_FLOAT, g_rank + 1, TMPI_TAG_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) mpi_fail("MPI_Send", "gradient sum to the next rank", rc);
    }
    int rc = MPI_Bcast(acc, cnt, MPI_FLOAT, g_size - 1, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) mpi_fail("MPI_Bcast", "gradient sum from the last rank", rc);
    g_comm += gb_now() - t0;
    return 0;
}

/* ---- the model -------------------------------------------------------------- */

typedef struct {
    int32_t family, height, width, channels, g_mult, d_mult, z_dim, conditional, num_classes, embed_dim, loss;
    int32_t max_batch, micro;
    uint64_t seed;
    float ema;
    adam_t adam[2];
} tmpi_model_hdr_t;

void tmpi_send_model(model_t *m, uint64_t seed, int micro) {
    const model_desc_t *d = model_desc(m);
    tmpi_model_hdr_t h;
    memset(&h, 0, sizeof h);
    h.family = d->family;
    h.height = d->height;
    h.width = d->width;
    h.channels = d->channels;
    h.g_mult = d->g_mult;
    h.d_mult = d->d_mult;
    h.z_dim = d->z_dim;
    h.conditional = d->conditional;
    h.num_classes = d->num_classes;
    h.embed_dim = d->embed_dim;
    h.loss = d->loss;
    h.max_batch = model_max_batch(m);
    h.micro = micro;
    h.seed = seed;
    h.ema = model_ema_decay(m);
    h.adam[0] = *model_adam(m, MODEL_G);
    h.adam[1] = *model_adam(m, MODEL_D);
    tmpi_bcast(&h, sizeof h, "model header");
    for (int i = 0; i < model_tensor_count(m); i++) {
        const model_tensor_t *t = model_tensor(m, i);
        if (t->kind != MODEL_T_GRAD) tmpi_bcast(t->data, t->n * sizeof(float), "model tensors");
    }
}

model_t *tmpi_recv_model(uint64_t *seed, int *micro) {
    tmpi_model_hdr_t h;
    tmpi_bcast(&h, sizeof h, "model header");
    model_desc_t d;
    memset(&d, 0, sizeof d);
    d.family = (model_family_t)h.family;
    d.height = h.height;
    d.width = h.width;
    d.channels = h.channels;
    d.g_mult = h.g_mult;
    d.d_mult = h.d_mult;
    d.z_dim = h.z_dim;
    d.conditional = h.conditional;
    d.num_classes = h.num_classes;
    d.embed_dim = h.embed_dim;
    d.loss = (model_loss_t)h.loss;
    model_t *m = model_new(&d, h.max_batch, h.seed);
    if (!m) {
        log_error("rank %d: rank 0 sent an impossible model description", g_rank);
        exit(GB_EXIT_FAIL);
    }
    for (int i = 0; i < model_tensor_count(m); i++) {
        const model_tensor_t *t = model_tensor(m, i);
        if (t->kind != MODEL_T_GRAD) tmpi_bcast(t->data, t->n * sizeof(float), "model tensors");
    }
    model_set_ema_decay(m, h.ema);
    *model_adam(m, MODEL_G) = h.adam[0];
    *model_adam(m, MODEL_D) = h.adam[1];
    *seed = h.seed;
    *micro = h.micro;
    return m;
}
