/* portowner.h - who listens on a TCP port: the answer to "address already in use".
 *
 * portowner_find reads /proc/net/tcp and /proc/net/tcp6 for LISTEN sockets whose address
 * conflicts with an IPv4 addr:port (the same address, or either side the wildcard, or an
 * IPv6 socket on :: or on the v4-mapped address), then scans /proc/PID/fd for the process
 * that holds the best one (the same address first). /proc of another user's process is not
 * readable: the result then says how many could not be inspected, never guesses. Linux only;
 * it reads /proc of the caller's own network and PID namespaces; nothing outlives the call.
 */
#ifndef XBN_PORTOWNER_H
#define XBN_PORTOWNER_H

#include <netinet/in.h>
#include <stddef.h>

typedef struct {
    int sockets;         /* conflicting LISTEN sockets; the fields below describe one of them */
    unsigned long inode; /* its socket inode */
    unsigned uid;        /* the user that created it */
    char addr[64];       /* its local address: "0.0.0.0:8080", "[::]:8080" */
    int pid;             /* a process holding it; 0 if none was found */
    char comm[32];       /* that process's name (/proc/PID/comm), "?" if it exited meanwhile */
    int hidden;          /* processes whose /proc/PID/fd this user could not read */
} portowner;

/* Look up the listeners that conflict with addr:port (addr in network byte order; INADDR_ANY
 * conflicts with every IPv4 address). Returns 0 (o->sockets may be 0), or -1 when
 * /proc/net/tcp cannot be read. */
int portowner_find(struct in_addr addr, int port, portowner *o);

/* The holder in a few words for an error message: "pid 4242 (xbnserve)", "pid 4242
 * (xbnserve) listening on 0.0.0.0:8080" when its address differs from `ours` (text
 * "A.B.C.D:PORT"), or what could not be found and why. */
void portowner_describe(const portowner *o, const char *ours, char *buf, size_t len);

#endif
