/* listener.c - see listener.h. */
#include "server/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/portowner.h"

/* The message for a failed bind or listen; with EADDRINUSE on a given port, who holds it. */
static void refused(const char *addr, int port, int reuse_port, int e, char *err, size_t errlen)
{
    char ours[80];
    snprintf(ours, sizeof ours, "%s:%d", addr, port);
    if (e != EADDRINUSE || port == 0) { /* port 0 in use: no ephemeral port left */
        snprintf(err, errlen, "cannot listen on %s: %s", ours, strerror(e));
        return;
    }
    char who[256];
    struct in_addr a;
    portowner o;
    if (inet_pton(AF_INET, addr, &a) != 1 || portowner_find(a, port, &o))
        snprintf(who, sizeof who, "a process not known (/proc/net/tcp unreadable)");
    else
        portowner_describe(&o, ours, who, sizeof who);
    if (reuse_port)
        snprintf(err, errlen,
                 "cannot listen on %s: address in use by %s, which does not share it (sharing "
                 "needs reuse_port on both daemons, run by the same user)",
                 ours, who);
    else
        snprintf(err, errlen,
                 "cannot listen on %s: address in use by %s; to share a port on purpose, start "
                 "both daemons with reuse_port",
                 ours, who);
}

int listener_bind(const char *addr, int port, int reuse_port, int *bound_port, char *err,
                  size_t errlen)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        snprintf(err, errlen, "listen_address: '%s' is not an IPv4 address", addr);
        return -1;
    }
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one)) ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa))
        goto fail;
    socklen_t n = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &n)) goto fail;
    *bound_port = ntohs(sa.sin_port);
    return fd;
fail:
    refused(addr, port, reuse_port, errno, err, errlen); /* bound, not listening: not listed */
    if (fd >= 0) close(fd);
    return -1;
}

int listener_listen(int fd, const char *addr, int port, int reuse_port, char *err, size_t errlen)
{
    if (!listen(fd, SOMAXCONN)) return 0;
    refused(addr, port, reuse_port, errno, err, errlen);
    return -1;
}

int listener_migrates(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_migrate_req", "r");
    int v = -1;
    if (!f) return -1;
    if (fscanf(f, "%d", &v) != 1) v = -1;
    fclose(f);
    return v;
}
