/* run_sup.c - the supervisor of gambar-run: start, watch, restart, stop.
 *
 * One thread, one poll loop (zmq_poll, so the metrics SUB socket of the
 * status line sits beside plain fds): a self-pipe for signals, each
 * child's pidfd (readable when it exits) and the read end of the pipe
 * that carries its stdout+stderr. Every decision is made in the loop, so
 * there is no racing signal handler logic.
 *
 * No orphans, ever: each child gets its own process group (so the whole
 * group can be signalled, and a terminal's Ctrl-C reaches only us), asks
 * the kernel for SIGKILL when we die (PR_SET_PDEATHSIG) and then checks
 * that we are still its parent (we could have died before the prctl).
 * The pids go to run_dir/pids as they start.
 *
 * Restarts: a crashed instance is restarted after 1, 2, 4 ... s (capped
 * at 60 s; start_retries in a row, then the pipeline stops). A stage
 * restarted with restart_args (gambar-train: --resume) also restarts the
 * stages that take their start batch from it (start_batch_from), first,
 * with --start-batch asked from `gambar-train --resume
 * --print-start-batch --ckpt-dir DIR`, so the data stream continues at
 * exactly the batch the checkpoint needs.
 *
 * A trainer with ranks = N is one child, mpirun (its argv is in the plan):
 * it is signalled, restarted and judged by its exit status like any
 * stage; mpirun passes the stop signal on to the ranks (each in its own
 * process group). --print-start-batch is asked of gambar-train itself. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "base.h"
#include "ckpt.h"
#include "err.h"
#include "log.h"
#include "run.h"
#include "stream.pb-c.h"
#include "wire.h"
#include "wire_conn.h"

extern char **environ;

#define TAIL_LINES 12
#define LINE_MAX_BYTES 4096
#define BACKOFF_MAX 60.0
#define STABLE_SECONDS 60.0 /* up this long: the backoff starts again at 1 s */

typedef enum { I_WAITING, I_RUNNING, I_BACKOFF, I_DONE, I_STOPPED } istate_t;

typedef struct {
    int stage, replica;
    istate_t state;
    pid_t pid;
    int pidfd, outfd, logfd;
    char line[LINE_MAX_BYTES];
    size_t nline;
    char tail[TAIL_LINES][256];
    int ntail;
    int restarts;       /* crashes in a row */
    int starts;         /* starts in all */
    double started_at, restart_at;
    int expect_exit;    /* we stopped it on purpose (to restart it) */
    int last_status;    /* exit status, 128+sig for a signal */
    int failed;         /* an optional stage that failed for good */
    int with_leader;    /* stopped to be started again with its start_batch_from stage */
    char label[96];     /* "train" or "augment.1" */
} inst_t;

typedef struct {
    pipeline_t *pl;
    const char *run_dir;
    inst_t *in;
    int nin;
    int *first;         /* first instance of each stage */
    int *started;       /* stage started (all replicas spawned once) */
    int sigpipe[2];
    int stopping;       /* 0 running, 1 orderly stop, 2 forced */
    int result;         /* exit status once decided (-1 = not yet) */
    int stop_pos;       /* position in reverse order being stopped */
    double stop_deadline;
    int stop_signalled;
    /* status line */
    int tty;
    void *zctx;
    wire_conn_t *sub; /* the status line's metrics, connected to every Metric channel */
    char status[256];
    double st_step, st_epoch, st_ips, st_lossd, st_lossg, st_fid, st_kid;
    char st_extra[128];
    int status_shown;
} run_t;

static int sig_fd = -1;
static void on_signal(int sig) {
    int e = errno;
    unsigned char b = (unsigned char)sig;
    if (sig_fd >= 0 && write(sig_fd, &b, 1) < 0) {
    }
    errno = e;
}

static int pidfd_open_(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

/* ------------------------------------------------------------------ */
/* Output. */

static void status_clear(run_t *R) {
    if (R->tty && R->status_shown) {
        fputs("\r\033[K", stderr);
        R->status_shown = 0;
    }
}

static void status_draw(run_t *R) {
    if (!R->tty || !R->sub || R->stopping) return;
    if (R->st_step <= 0 && !R->st_extra[0]) return;
    snprintf(R->status, sizeof R->status, "[step %.0f epoch %.0f | %.0f img/s | loss_d %.3f loss_g %.3f%s%s]",
             R->st_step, R->st_epoch, R->st_ips, R->st_lossd, R->st_lossg, R->st_extra[0] ? " | " : "", R->st_extra);
    fprintf(stderr, "\r\033[K%s", R->status);
    R->status_shown = 1;
}

/* A message of gambar-run itself, on the console. */
static void say(run_t *R, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(run_t *R, const char *fmt, ...) {
    status_clear(R);
    va_list ap;
    va_start(ap, fmt);
    fputs("gambar-run: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
}

static void inst_line(run_t *R, inst_t *in, const char *s, size_t n) {
    status_clear(R);
    fprintf(stderr, "%-8s| %.*s\n", in->label, (int)n, s);
    if (in->logfd >= 0) {
        if (write(in->logfd, s, n) < 0 || write(in->logfd, "\n", 1) < 0) {
        }
    }
    int k = in->ntail % TAIL_LINES;
    snprintf(in->tail[k], sizeof in->tail[k], "%.*s", (int)(n > 255 ? 255 : n), s);
    in->ntail++;
}

/* Read what is available on in->outfd. Returns 1 when it read something,
 * 2 when nothing is there now (a grandchild may still hold the pipe), 0 at
 * EOF (fd closed). */
static int inst_read(run_t *R, inst_t *in) {
    char buf[8192];
    ssize_t n = read(in->outfd, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 2;
    if (n <= 0) {
        if (in->nline) inst_line(R, in, in->line, in->nline);
        in->nline = 0;
        close(in->outfd);
        in->outfd = -1;
        return 0;
    }
    for (ssize_t i = 0; i < n; i++) {
        char c = buf[i];
        if (c == '\n' || c == '\r') {
            if (in->nline) inst_line(R, in, in->line, in->nline);
            in->nline = 0;
        } else {
            if (in->nline == sizeof in->line) {
                inst_line(R, in, in->line, in->nline);
                in->nline = 0;
            }
            in->line[in->nline++] = c;
        }
    }
    fflush(stderr);
    return 1;
}

static void print_tail(run_t *R, inst_t *in) {
    int n = in->ntail < TAIL_LINES ? in->ntail : TAIL_LINES;
    if (!n) return;
    status_clear(R);
    fprintf(stderr, "gambar-run: last lines of %s/logs/%s.log:\n", R->run_dir, in->label);
    for (int i = in->ntail - n; i < in->ntail; i++) fprintf(stderr, "    %s\n", in->tail[i % TAIL_LINES]);
}

/* ------------------------------------------------------------------ */
/* Starting. */

/* Run argv (execvp: a path, or a name looked up on PATH) with its stdout
 * read into buf (cap >= 1 bytes, NUL-terminated; output beyond cap - 1
 * bytes is read and dropped, so the child never blocks on a full pipe)
 * and, when quiet, its stderr sent to /dev/null. The child dies with
 * gambar-run. Returns its wait status, or -1 when it could not be
 * started (buf is then ""). */
static int run_capture(char *const argv[], int quiet, char *buf, size_t cap) {
    buf[0] = 0;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return -1;
    pid_t me = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != me) _exit(127);
        dup2(p[1], 1);
        if (quiet) {
            int nul = open("/dev/null", O_WRONLY);
            if (nul >= 0) dup2(nul, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    size_t got = 0;
    char drop[512];
    for (;;) {
        ssize_t n = got < cap - 1 ? read(p[0], buf + got, cap - 1 - got) : read(p[0], drop, sizeof drop);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (got < cap - 1) got += (size_t)n;
    }
    buf[got] = 0;
    close(p[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return st;
}

/* Ask `gambar-train --resume --print-start-batch --ckpt-dir DIR` for the
 * batch the trainer needs next. Returns 0 and *out, or -1 (logged). */
static int query_start_batch(run_t *R, const pl_stage_t *tr, unsigned long long *out) {
    char *argv[] = {tr->program, "--resume", "--print-start-batch", "--ckpt-dir", tr->ckpt_dir, "-q", NULL};
    char buf[128];
    int st = run_capture(argv, 0, buf, sizeof buf);
    char *e;
    unsigned long long v = strtoull(buf, &e, 10);
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || e == buf) {
        say(R, "cannot get the start batch from %s --print-start-batch --ckpt-dir %s", tr->program, tr->ckpt_dir);
        return -1;
    }
    *out = v;
    return 0;
}

/* Replace ${latest:STAGE} in a with the newest valid checkpoint of
 * STAGE's --ckpt-dir. Returns a new string, or NULL (reported). */
static char *subst_latest(run_t *R, const char *a) {
    const char *p = strstr(a, "${latest:");
    if (!p) return xstrdup(a);
    const char *e = strchr(p, '}');
    if (!e) return xstrdup(a);
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)(e - p - 9), p + 9);
    const pl_stage_t *src = NULL;
    for (int i = 0; i < R->pl->nstages; i++)
        if (!strcmp(R->pl->stages[i].name, name)) src = &R->pl->stages[i];
    if (!src || !src->ckpt_dir) {
        say(R, "${latest:%s}: stage '%s' has no --ckpt-dir", name, name);
        return NULL;
    }
    char path[4096];
    int rc = ckpt_find_latest(src->ckpt_dir, path, sizeof path, NULL, NULL);
    if (rc) {
        say(R, "${latest:%s}: no valid checkpoint in %s (%s)", name, src->ckpt_dir, err_str(rc));
        return NULL;
    }
    size_t n = (size_t)(p - a) + strlen(path) + strlen(e + 1) + 1;
    char *r = xmalloc(n);
    snprintf(r, n, "%.*s%s%s", (int)(p - a), a, path, e + 1);
    return r;
}

static int has_arg(char **argv, const char *a) {
    for (int i = 0; argv[i]; i++)
        if (!strcmp(argv[i], a)) return 1;
    return 0;
}

/* A stage under mpirun (ranks = N): mpirun forwards to the ranks on other
 * hosts only the variables named with -x. The plan names the stage's own
 * environment; add "-x NAME" for every other GAMBAR_* variable gambar-run
 * passes on (GAMBAR_CURVE_KEYS, log settings, ...), before the program
 * (argv[st->launch_argc]). Returns the new argv (argv freed, *argc
 * updated); *words gets the new strings, for mpi_free_x. */
static char **mpi_forward_env(const pl_stage_t *st, const pl_inst_t *pi, char **argv, int *argc, char ***words) {
    int n = 0;
    for (int i = 0; environ[i]; i++) n += !strncmp(environ[i], "GAMBAR_", 7);
    char **out = xcalloc((size_t)(*argc + 2 * n + 1), sizeof(char *));
    char **w = xcalloc((size_t)n + 1, sizeof(char *));
    int k = 0, nw = 0;
    for (int i = 0; i < st->launch_argc && i < *argc; i++) out[k++] = argv[i];
    for (int i = 0; environ[i]; i++) {
        if (strncmp(environ[i], "GAMBAR_", 7)) continue;
        size_t kl = strcspn(environ[i], "=");
        int own = 0;
        for (int j = 0; j < pi->nenv; j++)
            if (!strncmp(pi->env[j], environ[i], kl + 1)) own = 1;
        if (own) continue;
        w[nw] = xmalloc(kl + 1);
        memcpy(w[nw], environ[i], kl);
        w[nw][kl] = 0;
        out[k++] = "-x";
        out[k++] = w[nw++];
    }
    for (int i = st->launch_argc; i < *argc; i++) out[k++] = argv[i];
    out[k] = NULL;
    free(argv);
    *argc = k;
    *words = w;
    return out;
}

static void mpi_free_x(char **w) {
    for (int i = 0; w && w[i]; i++) free(w[i]);
    free(w);
}

/* Fork and exec one instance. restart: add the stage's restart_args.
 * Returns 0 or -1 (reported). */
static int inst_start(run_t *R, inst_t *in, int restart) {
    pl_stage_t *st = &R->pl->stages[in->stage];
    pl_inst_t *pi = &st->inst[in->replica];
    /* argv: the plan's, plus restart args, plus --start-batch */
    int cap = pi->argc + st->nrestart_args + 4;
    char **argv = xcalloc((size_t)cap, sizeof(char *));
    int argc = 0;
    char **owned = xcalloc((size_t)cap, sizeof(char *));
    for (int i = 0; i < pi->argc; i++) {
        owned[i] = subst_latest(R, pi->argv[i]);
        if (!owned[i]) {
            for (int j = 0; j < i; j++) free(owned[j]);
            free(owned);
            free(argv);
            return -1;
        }
        argv[argc++] = owned[i];
    }
    if (restart)
        for (int i = 0; i < st->nrestart_args; i++)
            if (!has_arg(argv, st->restart_args[i])) argv[argc++] = st->restart_args[i];
    char sb[32];
    if (st->start_batch_from >= 0) {
        unsigned long long k;
        if (query_start_batch(R, &R->pl->stages[st->start_batch_from], &k) != 0) {
            for (int j = 0; j < pi->argc; j++) free(owned[j]);
            free(owned);
            free(argv);
            return -1;
        }
        snprintf(sb, sizeof sb, "%llu", k);
        argv[argc++] = "--start-batch";
        argv[argc++] = sb;
    }
    argv[argc] = NULL;
    /* environment: ours, overridden by the stage's */
    int ne = 0;
    while (environ[ne]) ne++;
    char **mpi_x = NULL; /* "-x NAME" words added under mpirun */
    if (st->ranks) argv = mpi_forward_env(st, pi, argv, &argc, &mpi_x);
    char **envp = xcalloc((size_t)(ne + pi->nenv + 3), sizeof(char *));
    int k = 0;
    for (int i = 0; i < ne; i++) {
        size_t kl = strcspn(environ[i], "=");
        int over = 0;
        for (int j = 0; j < pi->nenv; j++)
            if (!strncmp(pi->env[j], environ[i], kl + 1)) over = 1;
        if (!over) envp[k++] = environ[i];
    }
    for (int j = 0; j < pi->nenv; j++) envp[k++] = pi->env[j];
    if (st->ranks && getuid() == 0) {
        /* mpirun refuses to run as root without these */
        envp[k++] = "OMPI_ALLOW_RUN_AS_ROOT=1";
        envp[k++] = "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1";
    }
    envp[k] = NULL;

    if (in->logfd < 0) {
        char path[4096];
        snprintf(path, sizeof path, "%s/logs/%s.log", R->run_dir, in->label);
        in->logfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (in->logfd < 0) say(R, "%s: cannot open: %s", path, strerror(errno));
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        say(R, "pipe: %s", strerror(errno));
        for (int j = 0; j < pi->argc; j++) free(owned[j]);
        free(owned);
        free(argv);
        free(envp);
        mpi_free_x(mpi_x);
        return -1;
    }
    pid_t me = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        say(R, "fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        for (int j = 0; j < pi->argc; j++) free(owned[j]);
        free(owned);
        free(argv);
        free(envp);
        mpi_free_x(mpi_x);
        return -1;
    }
    if (pid == 0) {
        /* child: only async-signal-safe calls from here on */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != me) _exit(127);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        dup2(p[1], 1);
        dup2(p[1], 2);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        sigaction(SIGPIPE, &sa, NULL);
        sigaction(SIGCHLD, &sa, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(argv[0], argv, envp);
        const char msg[] = "gambar-run: exec failed\n";
        if (write(2, msg, sizeof msg - 1) < 0) {
        }
        _exit(127);
    }
    setpgid(pid, pid); /* also in the parent: no race with the first kill */
    close(p[1]);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    in->pid = pid;
    in->outfd = p[0];
    in->pidfd = pidfd_open_(pid);
    in->state = I_RUNNING;
    in->started_at = gb_now();
    in->expect_exit = 0;
    in->starts++;
    run_dir_record_pid(R->run_dir, st->name, in->replica, (int)pid);
    if (in->logfd >= 0) {
        char hdr[8192];
        int n = snprintf(hdr, sizeof hdr, "--- gambar-run: start %d, pid %d:", in->starts, (int)pid);
        for (int i = 0; argv[i] && n < (int)sizeof hdr - 2; i++)
            n += snprintf(hdr + n, sizeof hdr - (size_t)n, " %s", argv[i]);
        if (n > (int)sizeof hdr - 2) n = (int)sizeof hdr - 2;
        hdr[n++] = '\n';
        if (write(in->logfd, hdr, (size_t)n) < 0) {
        }
    }
    say(R, "%s %s (pid %d)%s", restart ? "restarted" : "started", in->label, (int)pid,
        restart && st->nrestart_args ? " with restart args" : "");
    for (int j = 0; j < pi->argc; j++) free(owned[j]);
    free(owned);
    free(argv);
    free(envp);
    mpi_free_x(mpi_x);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Exits. */

/* Reap in (its pidfd said it exited, or we waited for it). */
static void inst_reap(run_t *R, inst_t *in, int block) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int rc;
    do {
        rc = waitid(P_PID, (id_t)in->pid, &si, WEXITED | (block ? 0 : WNOHANG));
    } while (rc < 0 && errno == EINTR);
    if (rc < 0 || si.si_pid == 0) return; /* not yet */
    /* what the stage left behind in its process group goes with it */
    kill(-in->pid, SIGKILL);
    while (in->outfd >= 0 && inst_read(R, in) == 1) {
    }
    if (in->pidfd >= 0) close(in->pidfd);
    in->pidfd = -1;
    in->pid = 0;
    in->last_status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
    in->state = I_STOPPED;
}

static void describe_status(int st, char *buf, size_t n) {
    if (st >= 128)
        snprintf(buf, n, "killed by signal %d (%s)", st - 128, strsignal(st - 128));
    else
        snprintf(buf, n, "exit status %d", st);
}

/* After a crash, clear LMDB reader slots the dead process left: run
 * `mdb_stat -rr DB` for each --db argument of the stage and report its
 * "N stale readers cleared" line (nothing when mdb_stat is missing). */
static void check_readers(run_t *R, const pl_stage_t *st, int replica) {
    char **argv = st->inst[replica].argv;
    for (int i = 1; argv[i] && argv[i + 1]; i++) {
        if (strcmp(argv[i], "--db")) continue;
        char *cmd[] = {"mdb_stat", "-rr", argv[i + 1], NULL};
        char out[4096];
        if (run_capture(cmd, 1, out, sizeof out) < 0) return;
        char *line = strstr(out, "stale readers cleared");
        if (line) {
            while (line > out && line[-1] != '\n') line--;
            while (*line == ' ') line++;
            char *e = strchr(line, '\n');
            if (e) *e = 0;
            say(R, "%s: LMDB reader check of %s (mdb_stat -rr): %s", st->name, argv[i + 1], line);
        }
    }
}

static void begin_stop(run_t *R, int result) {
    if (R->stopping) return;
    R->stopping = 1;
    R->result = result;
    R->stop_pos = R->pl->nstages - 1;
    R->stop_signalled = 0;
}

static void kill_all(run_t *R) {
    for (int i = 0; i < R->nin; i++)
        if (R->in[i].pid > 0) kill(-R->in[i].pid, SIGKILL);
}

static int stage_live(run_t *R, int s) {
    int n = 0;
    pl_stage_t *st = &R->pl->stages[s];
    for (int r = 0; r < st->replicas; r++) n += R->in[R->first[s] + r].pid > 0;
    return n;
}

/* Stop instances of stages that take their start batch from stage s, so
 * they start again with the batch s needs. */
static void stop_followers(run_t *R, int s) {
    for (int f = 0; f < R->pl->nstages; f++) {
        if (R->pl->stages[f].start_batch_from != s) continue;
        for (int r = 0; r < R->pl->stages[f].replicas; r++) {
            inst_t *in = &R->in[R->first[f] + r];
            if (in->state == I_WAITING) continue; /* not started yet: its own turn comes */
            if (in->pid > 0) kill(-in->pid, R->pl->stages[f].stop_signal);
            in->state = in->pid > 0 ? I_RUNNING : I_BACKOFF;
            in->restart_at = 1e300; /* started with their leader */
            in->expect_exit = 1;
            in->with_leader = 1;
        }
    }
}

static void restart_followers(run_t *R, int s) {
    for (int f = 0; f < R->pl->nstages; f++) {
        if (R->pl->stages[f].start_batch_from != s) continue;
        for (int r = 0; r < R->pl->stages[f].replicas; r++) {
            inst_t *in = &R->in[R->first[f] + r];
            if (!in->with_leader) continue;
            in->with_leader = 0;
            if (in->pid > 0) {
                kill(-in->pid, SIGKILL);
                inst_reap(R, in, 1);
            }
            if (inst_start(R, in, 1) != 0) begin_stop(R, GB_EXIT_FAIL);
        }
    }
}

/* A stage failed for good: stop the pipeline with status, or, for an
 * optional stage, go on without it. */
static void fail_stage(run_t *R, inst_t *in, int status) {
    pl_stage_t *st = &R->pl->stages[in->stage];
    if (st->optional) {
        say(R, "%s is optional: going on without it", in->label);
        in->state = I_DONE;
        in->failed = 1;
        return;
    }
    begin_stop(R, status);
}

static void on_exit_(run_t *R, inst_t *in) {
    pl_stage_t *st = &R->pl->stages[in->stage];
    char why[128];
    describe_status(in->last_status, why, sizeof why);
    if (R->stopping) {
        say(R, "%s stopped (%s)", in->label, why);
        return;
    }
    if (in->expect_exit) {
        in->state = I_BACKOFF; /* restarted with its leader */
        return;
    }
    int ok = in->last_status == 0;
    if (ok && (st->kind == PL_JOB || st->restart != PL_RESTART_ALWAYS)) {
        say(R, "%s finished", in->label);
        in->state = I_DONE;
        return;
    }
    say(R, "%s %s: %s", st->kind == PL_JOB ? "job" : "service", in->label, why);
    if (!ok) check_readers(R, st, in->replica);
    if (st->restart == PL_RESTART_NO || (ok && st->restart == PL_RESTART_ON_FAILURE)) {
        print_tail(R, in);
        say(R, "%s failed with %s%s", in->label, why, st->optional ? "" : "; stopping the pipeline");
        fail_stage(R, in, in->last_status ? in->last_status : GB_EXIT_FAIL);
        return;
    }
    if (gb_now() - in->started_at >= STABLE_SECONDS) in->restarts = 0;
    double delay = 1.0;
    for (int i = 0; i < in->restarts; i++) delay *= 2;
    if (delay > BACKOFF_MAX) delay = BACKOFF_MAX;
    if (in->restarts >= st->start_retries) {
        print_tail(R, in);
        say(R, "%s crashed %d times in a row (start_retries = %d); giving up%s", in->label, in->restarts + 1,
            st->start_retries, st->optional ? "" : " and stopping the pipeline");
        fail_stage(R, in, st->kind == PL_JOB && in->last_status ? in->last_status : GB_EXIT_FAIL);
        return;
    }
    in->restarts++;
    in->state = I_BACKOFF;
    in->restart_at = gb_now() + delay;
    say(R, "restarting %s in %.0f s (restart %d of at most %d)", in->label, delay, in->restarts, st->start_retries);
    stop_followers(R, in->stage);
}

/* ------------------------------------------------------------------ */
/* The loop. */

static int deps_ready(run_t *R, int s) {
    pl_stage_t *st = &R->pl->stages[s];
    for (int i = 0; i < st->nafter; i++) {
        int d = st->after[i];
        if (!R->started[d]) return 0;
        if (R->pl->stages[d].kind == PL_JOB)
            for (int r = 0; r < R->pl->stages[d].replicas; r++)
                if (R->in[R->first[d] + r].state != I_DONE) return 0;
    }
    return 1;
}

static void start_ready(run_t *R) {
    for (int k = 0; k < R->pl->nstages && !R->stopping; k++) {
        int s = R->pl->order[k];
        if (R->started[s] || !deps_ready(R, s)) continue;
        R->started[s] = 1;
        for (int r = 0; r < R->pl->stages[s].replicas; r++)
            if (inst_start(R, &R->in[R->first[s] + r], 0) != 0) {
                begin_stop(R, GB_EXIT_FAIL);
                return;
            }
    }
}

/* Orderly stop: one stage at a time, in reverse start order. */
static void stop_step(run_t *R) {
    while (R->stop_pos >= 0) {
        int s = R->pl->order[R->stop_pos];
        pl_stage_t *st = &R->pl->stages[s];
        if (!stage_live(R, s)) {
            R->stop_pos--;
            R->stop_signalled = 0;
            continue;
        }
        if (!R->stop_signalled) {
            say(R, "stopping %s (SIG%s, up to %.0f s)", st->name, sigabbrev_np(st->stop_signal), st->stop_timeout);
            for (int r = 0; r < st->replicas; r++) {
                inst_t *in = &R->in[R->first[s] + r];
                if (in->pid > 0) kill(-in->pid, st->stop_signal);
            }
            R->stop_signalled = 1;
            R->stop_deadline = gb_now() + st->stop_timeout;
        } else if (gb_now() >= R->stop_deadline) {
            say(R, "%s did not stop within %.0f s: SIGKILL", st->name, st->stop_timeout);
            for (int r = 0; r < st->replicas; r++) {
                inst_t *in = &R->in[R->first[s] + r];
                if (in->pid > 0) kill(-in->pid, SIGKILL);
            }
            R->stop_deadline = gb_now() + 5;
        }
        return;
    }
}

/* True when the pipeline has done its work: every job succeeded (and,
 * with exit_when = all or without any job, every service ended too). */
static int all_jobs_done(run_t *R) {
    int jobs = 0;
    for (int s = 0; s < R->pl->nstages; s++) jobs += R->pl->stages[s].kind == PL_JOB;
    for (int i = 0; i < R->nin; i++) {
        if (!jobs && R->in[i].state != I_DONE) return 0;
        pl_stage_t *st = &R->pl->stages[R->in[i].stage];
        if (st->kind == PL_JOB && R->in[i].state != I_DONE) return 0;
        if (R->pl->exit_all && R->in[i].state != I_DONE) return 0;
    }
    return 1;
}

static int any_live(run_t *R) {
    for (int i = 0; i < R->nin; i++)
        if (R->in[i].pid > 0) return 1;
    return 0;
}

static void metrics_open(run_t *R) {
    if (!R->tty) return;
    for (int c = 0; c < R->pl->nchans; c++) {
        pl_chan_t *ch = &R->pl->chans[c];
        if (!ch->type || strcmp(ch->type, "gambar.Metric") || !ch->bind_producer) continue;
        if (!R->zctx) R->zctx = zmq_ctx_new();
        if (!R->zctx) return;
        char ep[4200];
        snprintf(ep, sizeof ep, ">%s", ch->endpoint);
        if (!R->sub) {
            if (wire_conn_open(R->zctx, ZMQ_SUB, ep, 0, WIRE_MAX_SMALL_BYTES, 0, "status line", &R->sub) != 0)
                return;
            wire_conn_subscribe(R->sub, "gambar.Metric");
        } else {
            wire_conn_connect(R->sub, ep);
        }
    }
}

static void metrics_read(run_t *R) {
    static const ProtobufCMessageDescriptor *const acc[] = {&gambar__metric__descriptor};
    wire_stats_t ws = {0};
    wire_msg_t *m = NULL;
    int got = 0;
    while (wire_recv(wire_conn_socket(R->sub), acc, 1, WIRE_MAX_SMALL_BYTES, 0, &m, &ws) == 0 || m) {
        if (!m) continue;
        Gambar__Metric *mt = (Gambar__Metric *)m->msg;
        if (mt->name) {
            if (!strcmp(mt->name, "loss_d")) R->st_lossd = mt->value;
            else if (!strcmp(mt->name, "loss_g")) R->st_lossg = mt->value;
            else if (!strcmp(mt->name, "images_per_second")) R->st_ips = mt->value;
            else if (!strcmp(mt->name, "fid")) R->st_fid = mt->value;
            else if (!strcmp(mt->name, "kid")) R->st_kid = mt->value;
            if (R->st_fid > 0)
                snprintf(R->st_extra, sizeof R->st_extra, "fid %.2f kid %.3f", R->st_fid, R->st_kid);
            if (mt->stage && !strcmp(mt->stage, "train")) {
                R->st_step = (double)mt->step;
                R->st_epoch = mt->epoch;
            }
        }
        wire_msg_destroy(&m);
        got = 1;
    }
    if (got) status_draw(R);
}

int run_supervise(pipeline_t *pl, const char *run_dir) {
    run_t R0 = {.pl = pl, .run_dir = run_dir, .result = -1}, *R = &R0;
    for (int s = 0; s < pl->nstages; s++) R->nin += pl->stages[s].replicas;
    R->in = xcalloc((size_t)R->nin, sizeof(inst_t));
    R->first = xcalloc((size_t)pl->nstages, sizeof(int));
    R->started = xcalloc((size_t)pl->nstages, sizeof(int));
    for (int s = 0, k = 0; s < pl->nstages; s++) {
        R->first[s] = k;
        for (int r = 0; r < pl->stages[s].replicas; r++, k++) {
            inst_t *in = &R->in[k];
            in->stage = s;
            in->replica = r;
            in->pidfd = in->outfd = in->logfd = -1;
            if (pl->stages[s].replicas > 1)
                snprintf(in->label, sizeof in->label, "%s.%d", pl->stages[s].name, r);
            else
                snprintf(in->label, sizeof in->label, "%s", pl->stages[s].name);
        }
    }
    if (pipe2(R->sigpipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        log_error("pipe: %s", strerror(errno));
        return GB_EXIT_FAIL;
    }
    sig_fd = R->sigpipe[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL); /* terminal gone: stop in order too */
    signal(SIGPIPE, SIG_IGN);
    R->tty = isatty(2) && !getenv("NO_COLOR");
    say(R, "run folder %s (plan in plan.txt, logs in logs/)", run_dir);
    metrics_open(R);

    zmq_pollitem_t *items = xcalloc((size_t)(2 * R->nin + 2), sizeof(zmq_pollitem_t));
    int *map = xcalloc((size_t)(2 * R->nin + 2), sizeof(int)); /* poll item -> instance */
    for (;;) {
        if (!R->stopping) start_ready(R);
        if (!R->stopping && all_jobs_done(R)) {
            say(R, "all %s done", pl->exit_all ? "stages" : "jobs");
            begin_stop(R, 0);
        }
        if (R->stopping == 1) stop_step(R);
        if (R->stopping && !any_live(R)) break;
        /* poll set */
        int ni = 0;
        items[ni++] = (zmq_pollitem_t){.fd = R->sigpipe[0], .events = ZMQ_POLLIN};
        if (R->sub) { /* replaced here when a producer broke the protocol */
            wire_conn_check(R->sub);
            items[ni++] = (zmq_pollitem_t){.socket = wire_conn_socket(R->sub), .events = ZMQ_POLLIN};
        }
        int base = ni;
        for (int i = 0; i < R->nin; i++) {
            if (R->in[i].outfd >= 0) {
                map[ni - base] = i;
                items[ni++] = (zmq_pollitem_t){.fd = R->in[i].outfd, .events = ZMQ_POLLIN};
            }
            if (R->in[i].pidfd >= 0) {
                map[ni - base] = i;
                items[ni++] = (zmq_pollitem_t){.fd = R->in[i].pidfd, .events = ZMQ_POLLIN};
            }
        }
        double now = gb_now(), next = now + 1.0;
        for (int i = 0; i < R->nin; i++)
            if (R->in[i].state == I_BACKOFF && R->in[i].restart_at < next) next = R->in[i].restart_at;
        if (R->stopping == 1 && R->stop_signalled && R->stop_deadline < next) next = R->stop_deadline;
        long tmo = (long)((next - now) * 1000);
        if (tmo < 0) tmo = 0;
        int rc = zmq_poll(items, ni, tmo);
        if (rc < 0 && errno != EINTR) {
            say(R, "poll: %s", zmq_strerror(errno));
            kill_all(R);
            break;
        }
        if (rc > 0 && (items[0].revents & ZMQ_POLLIN)) {
            unsigned char b;
            while (read(R->sigpipe[0], &b, 1) == 1) {
                if (R->stopping) {
                    say(R, "second %s: killing every stage now", b == SIGINT ? "Ctrl-C" : "signal");
                    kill_all(R);
                    R->stopping = 2;
                    R->result = GB_EXIT_INTERRUPTED;
                } else {
                    say(R, "%s: stopping the stages in reverse order (again to force)",
                        b == SIGINT ? "Ctrl-C" : b == SIGHUP ? "SIGHUP" : "SIGTERM");
                    begin_stop(R, GB_EXIT_INTERRUPTED);
                }
            }
        }
        if (rc > 0 && R->sub && (items[1].revents & ZMQ_POLLIN)) metrics_read(R);
        for (int k = base; rc > 0 && k < ni; k++) {
            if (!(items[k].revents & (ZMQ_POLLIN | ZMQ_POLLERR))) continue;
            inst_t *in = &R->in[map[k - base]];
            if (items[k].fd == in->outfd && in->outfd >= 0) {
                inst_read(R, in);
            } else if (items[k].fd == in->pidfd && in->pidfd >= 0) {
                inst_reap(R, in, 0);
                if (in->pid == 0) on_exit_(R, in);
            }
        }
        if (R->stopping == 2) {
            for (int i = 0; i < R->nin; i++)
                if (R->in[i].pid > 0) inst_reap(R, &R->in[i], 1);
            break;
        }
        /* restarts that are due */
        now = gb_now();
        for (int i = 0; i < R->nin && !R->stopping; i++) {
            inst_t *in = &R->in[i];
            if (in->state != I_BACKOFF || in->restart_at > now) continue;
            restart_followers(R, in->stage);
            if (!R->stopping && inst_start(R, in, 1) != 0) begin_stop(R, GB_EXIT_FAIL);
        }
        status_draw(R);
    }
    status_clear(R);
    /* drain output of what already ended */
    for (int i = 0; i < R->nin; i++) {
        while (R->in[i].outfd >= 0 && inst_read(R, &R->in[i]) == 1) {
        }
        if (R->in[i].outfd >= 0) close(R->in[i].outfd);
        if (R->in[i].logfd >= 0) close(R->in[i].logfd);
        if (R->in[i].pidfd >= 0) close(R->in[i].pidfd);
    }
    wire_conn_close(&R->sub);
    if (R->zctx) zmq_ctx_term(R->zctx);
    int result = R->result < 0 ? 0 : R->result;
    if (result == 0)
        say(R, "done; everything is in %s", run_dir);
    else if (result == GB_EXIT_INTERRUPTED)
        say(R, "interrupted; the run folder %s can be resumed by running the same command with --run-dir", run_dir);
    else
        say(R, "failed (exit status %d); logs in %s/logs", result, run_dir);
    free(items);
    free(map);
    free(R->in);
    free(R->first);
    free(R->started);
    close(R->sigpipe[0]);
    close(R->sigpipe[1]);
    sig_fd = -1;
    return result;
}
