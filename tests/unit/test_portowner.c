/* test_portowner.c - who holds a port, read from /proc, against sockets this test binds:
 * the same address, the wildcards on either side, IPv6 and v4-mapped listeners, a bound
 * socket that does not listen, several listeners on one port, and a lookup by a user who
 * may not read the holder's /proc/PID/fd. */
#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "server/portowner.h"
#include "tests/unit/testutil.h"

#define COMM "test_portowner" /* this binary's name, as /proc/PID/comm shows it */

/* A TCP socket of `family` bound to ip:port (port 0: any); listening if `listening`. */
static int sock_at(int family, const char *ip, int port, int reuse_port, int listening)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
        len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
        len = sizeof *a;
    }
    int fd = socket(family, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    int one = 1, zero = 0;
    if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, (struct sockaddr *)&ss, len) || (listening && listen(fd, 4))) {
        close(fd);
        return -1;
    }
    return fd;
}

static int port_of(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    return ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                   : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static unsigned long inode_of(int fd)
{
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    return (unsigned long)st.st_ino;
}

static void find(const char *ip, int port, portowner *o)
{
    struct in_addr a;
    assert_int_equal(inet_pton(AF_INET, ip, &a), 1);
    assert_int_equal(portowner_find(a, port, o), 0);
}

static void expect_text(const portowner *o, const char *ours, const char *want)
{
    char got[256];
    portowner_describe(o, ours, got, sizeof got);
    assert_string_equal(got, want);
}

static void test_same_address(void **state)
{
    (void)state;
    int fd = sock_at(AF_INET, "127.0.0.1", 0, 0, 1);
    assert_true(fd >= 0);
    int port = port_of(fd);
    portowner o;
    find("127.0.0.1", port, &o);
    assert_int_equal(o.sockets, 1);
    assert_int_equal(o.inode, inode_of(fd));
    assert_int_equal(o.uid, geteuid());
    assert_int_equal(o.pid, getpid());
    assert_string_equal(o.comm, COMM);
    char ours[64], want[128];
    snprintf(ours, sizeof ours, "127.0.0.1:%d", port);
    assert_string_equal(o.addr, ours);
    snprintf(want, sizeof want, "pid %d (" COMM ")", (int)getpid());
    expect_text(&o, ours, want);

    /* another loopback address on the same port does not conflict */
    find("127.0.0.2", port, &o);
    assert_int_equal(o.sockets, 0);
    close(fd);
    find("127.0.0.1", port, &o);
    assert_int_equal(o.sockets, 0);
    expect_text(&o, ours, "a socket that /proc/net/tcp and tcp6 do not list as listening");
}

static void test_bound_not_listening(void **state)
{
    (void)state;
    int fd = sock_at(AF_INET, "127.0.0.1", 0, 0, 0);
    assert_true(fd >= 0);
    portowner o;
    find("127.0.0.1", port_of(fd), &o);
    assert_int_equal(o.sockets, 0);
    close(fd);
}

static void test_wildcards(void **state)
{
    (void)state;
    char want[160];
    portowner o;
    int fd = sock_at(AF_INET, "0.0.0.0", 0, 0, 1);
    assert_true(fd >= 0);
    int port = port_of(fd);
    find("127.0.0.1", port, &o);
    assert_int_equal(o.sockets, 1);
    assert_int_equal(o.inode, inode_of(fd));
    snprintf(want, sizeof want, "pid %d (" COMM ") listening on 0.0.0.0:%d", (int)getpid(), port);
    expect_text(&o, "127.0.0.1:1", want);
    close(fd);

    fd = sock_at(AF_INET, "127.0.0.1", 0, 0, 1);
    assert_true(fd >= 0);
    port = port_of(fd);
    find("0.0.0.0", port, &o);
    assert_int_equal(o.sockets, 1);
    assert_int_equal(o.inode, inode_of(fd));
    close(fd);
}

/* Two listeners share a port (SO_REUSEPORT): the one on the same address is named, the
 * other counted, whichever /proc lists first (both orders of creation). */
static void test_several_listeners(void **state)
{
    (void)state;
    for (int lo_first = 0; lo_first < 2; lo_first++) {
        int first = sock_at(AF_INET, lo_first ? "127.0.0.1" : "0.0.0.0", 0, 1, 1);
        assert_true(first >= 0);
        int port = port_of(first);
        int second = sock_at(AF_INET, lo_first ? "0.0.0.0" : "127.0.0.1", port, 1, 1);
        assert_true(second >= 0);
        portowner o;
        find("127.0.0.1", port, &o);
        assert_int_equal(o.sockets, 2);
        assert_int_equal(o.inode, inode_of(lo_first ? first : second));
        char ours[64], want[160];
        snprintf(ours, sizeof ours, "127.0.0.1:%d", port);
        snprintf(want, sizeof want, "pid %d (" COMM ") and 1 more listening socket", (int)getpid());
        expect_text(&o, ours, want);
        close(second);
        close(first);
    }
}

static void test_ipv6(void **state)
{
    (void)state;
    int fd = sock_at(AF_INET6, "::", 0, 0, 1);
    if (fd < 0) skip(); /* no IPv6 here */
    int port = port_of(fd);
    portowner o;
    find("127.0.0.1", port, &o);
    assert_int_equal(o.sockets, 1);
    assert_int_equal(o.inode, inode_of(fd));
    char want[64];
    snprintf(want, sizeof want, "[::]:%d", port);
    assert_string_equal(o.addr, want);
    close(fd);

    fd = sock_at(AF_INET6, "::ffff:127.0.0.1", 0, 0, 1);
    assert_true(fd >= 0);
    port = port_of(fd);
    find("127.0.0.1", port, &o);
    assert_int_equal(o.sockets, 1);
    assert_int_equal(o.inode, inode_of(fd));
    snprintf(want, sizeof want, "[::ffff:127.0.0.1]:%d", port);
    assert_string_equal(o.addr, want);
    find("127.0.0.2", port, &o);
    assert_int_equal(o.sockets, 0);
    close(fd);

    /* /proc/net/tcp (the wildcard) is read before tcp6 (the same address): still named */
    int any = sock_at(AF_INET, "0.0.0.0", 0, 1, 1);
    assert_true(any >= 0);
    port = port_of(any);
    fd = sock_at(AF_INET6, "::ffff:127.0.0.1", port, 1, 1);
    assert_true(fd >= 0);
    find("127.0.0.1", port, &o);
    assert_int_equal(o.sockets, 2);
    assert_int_equal(o.inode, inode_of(fd));
    close(fd);
    close(any);
}

/* A user who may not read this process's /proc/PID/fd learns the socket's uid, not a pid. */
static void test_other_user(void **state)
{
    (void)state;
    if (geteuid() != 0) skip(); /* needs a user to switch to */
    int fd = sock_at(AF_INET, "127.0.0.1", 0, 0, 1);
    assert_true(fd >= 0);
    int port = port_of(fd), p[2];
    assert_int_equal(pipe(p), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(fd); /* the parent alone holds the socket */
        close(p[0]);
        char got[256] = "setuid failed";
        portowner o;
        struct in_addr a = {htonl(INADDR_LOOPBACK)};
        if (!setgroups(0, NULL) && !setresgid(65534, 65534, 65534) &&
            !setresuid(65534, 65534, 65534) && !portowner_find(a, port, &o))
            portowner_describe(&o, "127.0.0.1:0", got, sizeof got);
        ssize_t n = write(p[1], got, strlen(got) + 1);
        _exit(n > 0 ? 0 : 1);
    }
    close(p[1]);
    char got[256] = "";
    ssize_t n = read(p[0], got, sizeof got - 1);
    int st;
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(n > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char want[160];
    snprintf(want, sizeof want,
             "a process of uid 0 whose /proc/PID/fd this user cannot read listening on "
             "127.0.0.1:%d",
             port);
    assert_string_equal(got, want);
    close(p[0]);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_address), cmocka_unit_test(test_bound_not_listening),
        cmocka_unit_test(test_wildcards),    cmocka_unit_test(test_several_listeners),
        cmocka_unit_test(test_ipv6),         cmocka_unit_test(test_other_user),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
