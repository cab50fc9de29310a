/* listener.h - the daemon's listening socket: bound first, listening later.
 *
 * listener_bind creates an IPv4 TCP socket bound to addr:port. SO_REUSEADDR is always set,
 * so a restart does not wait for the previous run's connections in TIME_WAIT; it never lets
 * two sockets listen on one port. SO_REUSEPORT is set only with reuse_port, and then the
 * kernel's rule applies: sockets share a port only if every one of them set SO_REUSEPORT
 * and they belong to the same user; new connections are spread over them. A bind refused
 * because the port is taken names the process that holds it (portowner.h).
 *
 * Binding and listening are two steps so that a daemon can claim its port before loading
 * its models and join a shared port's listeners only once it can answer (serve.c).
 */
#ifndef XBN_LISTENER_H
#define XBN_LISTENER_H

#include <stddef.h>

/* Bind addr:port (port 0: any free port). Returns the socket, the caller's to close, with
 * the bound port in *bound_port; or -1 with the reason in err. */
int listener_bind(const char *addr, int port, int reuse_port, int *bound_port, char *err,
                  size_t errlen);

/* Start listening on a socket from listener_bind (addr, port, reuse_port as given to it,
 * for the message). 0, or -1 with the reason in err; the socket stays the caller's. */
int listener_listen(int fd, const char *addr, int port, int reuse_port, char *err, size_t errlen);

/* net.ipv4.tcp_migrate_req of this network namespace: 1 if the connections waiting in a
 * closing SO_REUSEPORT listener's queue move to another listener of the port, 0 if they
 * are reset, -1 if unknown (kernels before 5.14). */
int listener_migrates(void);

#endif
