/* wire_sec.h - CURVE encryption and authentication for tcp:// endpoints.
 *
 * Why: without it anyone who can reach a socket is trusted: one empty
 * EndOfStream ends a trainer, any peer can push batches or metrics. With a
 * keys folder loaded, every tcp:// socket wire_open makes speaks ZeroMQ's
 * CURVE (RFC 26): the binding side is the CURVE server and accepts only
 * clients whose public key is in the folder's authorized/ list (checked by
 * a ZAP handler, RFC 27, that this module runs in a thread per ZeroMQ
 * context and that logs each refused peer address with the reason, at most
 * once a minute per address); the connecting side is a CURVE client that
 * checks the server's public key. ipc:// and inproc:// are left alone
 * (local, guarded by file permissions).
 *
 * Keys folder (Z85 text, one 40-character key per file, '#' lines are
 * comments; every file mode 0600, the folder 0700):
 *   id.secret            this program's secret key (refused if group/other
 *                        may read it)
 *   id.public            its public key (checked against id.secret if
 *                        present)
 *   server.public        the public key connecting sockets expect of the
 *                        servers they reach (default: id.public, i.e. one
 *                        key pair shared by the whole run)
 *   authorized/NAME.public  client public keys that binding sockets accept
 * gambar-run makes one such folder per run (RUN_DIR/keys, one key pair as
 * both server and client identity, itself in authorized/) and passes it to
 * every stage as GAMBAR_CURVE_KEYS.
 *
 * The refuse rule: a tcp:// endpoint whose host is not loopback
 * (127.0.0.0/8, ::1, localhost), bound or connected, needs keys unless the
 * program was given --insecure; wire_sec_init refuses it (exit 2) before
 * the program does any work, and wire_sec_apply refuses it again at
 * wire_open time in case a program did not list the endpoint. */
#ifndef GB_WIRE_SEC_H
#define GB_WIRE_SEC_H

#include "cli.h"

#include <stdbool.h>
#include <stddef.h>

#define WIRE_SEC_ENV "GAMBAR_CURVE_KEYS"
#define WIRE_SEC_ZAP_DOMAIN "gambar"

/* Where WIRE_SEC_CLI_OPTS store their values. */
extern const char *wire_sec_opt_keys;
extern bool wire_sec_opt_insecure;

/* The two options of every program that opens sockets; put them in its
 * cli_opt_t table and call wire_sec_init after cli_parse. */
#define WIRE_SEC_CLI_OPTS                                                                                          \
    {"curve-keys", 0, CLI_STR, &wire_sec_opt_keys, "DIR",                                                      \
     "CURVE keys for tcp:// endpoints (default $" WIRE_SEC_ENV "; see SECURITY)", NULL},                      \
    {"insecure", 0, CLI_FLAG, &wire_sec_opt_insecure, NULL,                                                    \
     "allow tcp:// to a non-loopback address without CURVE keys", NULL}

/* Load the keys named by --curve-keys (or $GAMBAR_CURVE_KEYS when the
 * option was not given; an empty value means none) and check each of
 * endpoints[0..n) (NULL entries are skipped; an entry may be a comma list)
 * against the refuse rule.
 * On any failure prints the reason in cli_usage_error's style and exits 2. */
void wire_sec_init(const cli_spec_t *spec, const char *const *endpoints, int n);

/* Load a keys folder (see above) as the process's security settings.
 * Returns 0, or an errno / GB_E* code with the reason (naming the file) in
 * why. Not thread-safe: call before opening sockets. */
int wire_sec_load(const char *dir, char *why, size_t whylen);

/* Whether keys are loaded. */
bool wire_sec_enabled(void);

/* 1 when endpoint ("@"/">" prefix allowed) is tcp:// and every host in it
 * is loopback, 0 when it is tcp:// with a host that is not (or cannot be
 * told: "*", an interface or host name), -1 when it is not tcp://. */
int wire_sec_loopback(const char *endpoint);

/* Apply the settings to socket sock of context ctx before it binds (bind
 * = 1) or connects to endpoint (without prefix). Starts the context's ZAP
 * handler when a server socket is the first. Returns 0, EACCES when the
 * refuse rule forbids the endpoint, or an errno from ZeroMQ (all logged). */
int wire_sec_apply(void *ctx, void *sock, int bind, const char *endpoint);

/* Make a new keys folder dir (created 0700 if missing; its parent must
 * exist) with a fresh key pair as id.secret, id.public, server.public and
 * authorized/self.public, all 0600. Returns 0, EEXIST when dir/id.secret
 * exists already (nothing written), or an errno with the reason in why. */
int wire_sec_keygen(const char *dir, char *why, size_t whylen);

/* Peers the ZAP handlers of this process have refused so far. */
unsigned long wire_sec_refused(void);

#endif
