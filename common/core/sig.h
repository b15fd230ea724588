/* sig.h - SIGINT/SIGTERM handling for stages.
 *
 * sig_install() makes the first SIGINT or SIGTERM set a flag that the
 * stage's loop polls (finish the current unit of work, save, exit); a
 * second one exits at once with status 130. SIGPIPE is ignored so a
 * closed stdout is an EPIPE error, not a silent death. */
#ifndef GB_SIG_H
#define GB_SIG_H

/* Install the handlers (without SA_RESTART, so blocking calls return
 * EINTR and loops can notice). */
void sig_install(void);
/* Non-zero once a stop was requested; the value is the signal number. */
int sig_stop_requested(void);

#endif
