/* portowner.c - see portowner.h.
 *
 * /proc/net/tcp prints each address as the raw 32-bit words of the kernel's structure
 * (%08X of a big-endian value read as a native word), so a parsed word compares directly
 * with s_addr / s6_addr32 as they sit in memory, whatever the host's byte order.
 */
#include "server/portowner.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/num.h"

#define TCP_LISTEN 0x0A /* the kernel's TCP_LISTEN, as /proc/net/tcp prints the state */

typedef struct {
    uint32_t a[4]; /* address words as in memory; IPv4 uses a[0] */
    unsigned port, state, uid;
    unsigned long inode;
} tcp_line;

/* One socket line of /proc/net/tcp (words = 1) or tcp6 (words = 4). 0, or -1 for the header. */
static int parse_line(const char *s, int words, tcp_line *t)
{
    char hex[33];
    if (sscanf(s, " %*u: %32[0-9A-Fa-f]:%x %*s %x %*s %*s %*s %u %*d %lu", hex, &t->port, &t->state,
               &t->uid, &t->inode) != 5 ||
        strlen(hex) != (size_t)words * 8)
        return -1;
    for (int i = 0; i < words; i++) {
        char w[9];
        memcpy(w, hex + 8 * i, 8);
        w[8] = 0;
        t->a[i] = (uint32_t)strtoul(w, NULL, 16);
    }
    return 0;
}

/* How well a listener matches `ours`: 3 the same address, 2 the IPv4 wildcard on either
 * side, 1 the IPv6 wildcard (it conflicts unless IPV6_V6ONLY, which /proc does not show),
 * 0 no conflict. */
static int conflict(const tcp_line *t, int words, uint32_t ours)
{
    uint32_t v4 = t->a[0];
    if (words == 4) {
        if (!t->a[0] && !t->a[1] && !t->a[2] && !t->a[3]) return 1;
        if (t->a[0] || t->a[1] || t->a[2] != htonl(0xffff)) return 0; /* not v4-mapped */
        v4 = t->a[3];
    }
    if (v4 == ours) return 3;
    return !v4 || !ours ? 2 : 0;
}

static void format_addr(const tcp_line *t, int words, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    inet_ntop(words == 4 ? AF_INET6 : AF_INET, t->a, ip, sizeof ip);
    snprintf(buf, len, words == 4 ? "[%s]:%u" : "%s:%u", ip, t->port);
}

/* Scan one /proc/net file; keep the best match in *best / *rank. -1 if it cannot be read. */
static int scan_net(const char *path, int words, uint32_t ours, unsigned port, portowner *o,
                    int *rank)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        tcp_line t;
        if (parse_line(line, words, &t) || t.state != TCP_LISTEN || t.port != port) continue;
        int r = conflict(&t, words, ours);
        if (!r) continue;
        o->sockets++;
        if (r > *rank) {
            *rank = r;
            o->inode = t.inode;
            o->uid = t.uid;
            format_addr(&t, words, o->addr, sizeof o->addr);
        }
    }
    fclose(f);
    return 0;
}

/* 1 if the directory stream `fds` (a /proc/PID/fd) holds the link `want`. */
static int holds(DIR *fds, const char *want)
{
    struct dirent *e;
    while ((e = readdir(fds))) {
        char link[64];
        ssize_t n = readlinkat(dirfd(fds), e->d_name, link, sizeof link - 1);
        if (n <= 0) continue;
        link[n] = 0;
        if (!strcmp(link, want)) return 1;
    }
    return 0;
}

static void find_pid(portowner *o)
{
    char want[48];
    snprintf(want, sizeof want, "socket:[%lu]", o->inode);
    DIR *proc = opendir("/proc");
    if (!proc) return;
    struct dirent *e;
    while (!o->pid && (e = readdir(proc))) {
        if (!isdigit((unsigned char)e->d_name[0])) continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/%s/fd", e->d_name);
        DIR *fds = opendir(path);
        if (!fds) {
            if (errno == EACCES || errno == EPERM) o->hidden++; /* ENOENT: it just exited */
            continue;
        }
        int pid;
        if (holds(fds, want) && !num_parse_int(e->d_name, 1, INT_MAX, &pid)) o->pid = pid;
        closedir(fds);
    }
    closedir(proc);
    if (!o->pid) return;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", o->pid);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(o->comm, sizeof o->comm, f)) snprintf(o->comm, sizeof o->comm, "?");
    if (f) fclose(f);
    o->comm[strcspn(o->comm, "\n")] = 0;
}

int portowner_find(struct in_addr addr, int port, portowner *o)
{
    memset(o, 0, sizeof *o);
    int rank = 0;
    if (scan_net("/proc/net/tcp", 1, addr.s_addr, (unsigned)port, o, &rank)) return -1;
    scan_net("/proc/net/tcp6", 4, addr.s_addr, (unsigned)port, o, &rank); /* absent without IPv6 */
    if (o->sockets) find_pid(o);
    return 0;
}

void portowner_describe(const portowner *o, const char *ours, char *buf, size_t len)
{
    if (!o->sockets) {
        snprintf(buf, len, "a socket that /proc/net/tcp and tcp6 do not list as listening");
        return;
    }
    int n;
    if (o->pid)
        n = snprintf(buf, len, "pid %d (%s)", o->pid, o->comm);
    else if (o->hidden)
        n = snprintf(buf, len, "a process of uid %u whose /proc/PID/fd this user cannot read",
                     o->uid);
    else
        n = snprintf(buf, len, "no process visible here (uid %u, socket inode %lu)", o->uid,
                     o->inode);
    if (n < 0 || (size_t)n >= len) return;
    if (strcmp(o->addr, ours)) n += snprintf(buf + n, len - (size_t)n, " listening on %s", o->addr);
    if (n < 0 || (size_t)n >= len) return;
    if (o->sockets > 1)
        snprintf(buf + n, len - (size_t)n, " and %d more listening socket%s", o->sockets - 1,
                 o->sockets > 2 ? "s" : "");
}
