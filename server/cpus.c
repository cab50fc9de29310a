/* cpus.c - see cpus.h. */
#include "server/cpus.h"

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "server/num.h"

/* A positive number filling s[0..n) and then only a line end (cgroup files end in one). */
static int positive(const char *s, size_t n, long long *out)
{
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' ')) n--;
    return num_parse_ll_n(s, n, 1, LLONG_MAX, out);
}

/* quota / period CPUs, rounded up. */
static int cpus_of(long long quota, long long period)
{
    long long n = quota / period + (quota % period != 0);
    return n > INT_MAX ? INT_MAX : (int)n;
}

int cpus_from_cpu_max(const char *text)
{
    /* "QUOTA PERIOD\n", QUOTA "max" when there is none */
    const char *sp = strchr(text, ' ');
    long long quota, period;
    if (!sp || positive(sp + 1, strlen(sp + 1), &period)) return -1;
    if (sp - text == 3 && !strncmp(text, "max", 3)) return 0;
    if (positive(text, (size_t)(sp - text), &quota)) return -1;
    return cpus_of(quota, period);
}

static int read_small(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t got = fread(buf, 1, n - 1, f);
    fclose(f);
    buf[got] = 0;
    return 0;
}

/* Smallest quota along the cgroup v2 path of this process; 0 if none. */
static int quota_v2(void)
{
    char line[1024], path[1400], buf[128];
    if (read_small("/proc/self/cgroup", line, sizeof line)) return 0;
    char *p = strstr(line, "0::");
    if (!p) return 0;
    p += 3;
    p[strcspn(p, "\n")] = 0;
    int best = 0;
    for (;;) {
        snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", p);
        if (!read_small(path, buf, sizeof buf)) {
            int q = cpus_from_cpu_max(buf);
            if (q > 0 && (best == 0 || q < best)) best = q;
        }
        char *slash = strrchr(p, '/');
        if (!slash || slash == p) {
            if (*p && strcmp(p, "/")) {
                p[0] = 0; /* finally the root itself */
                continue;
            }
            break;
        }
        *slash = 0;
    }
    return best;
}

static int quota_v1(void)
{
    char a[64], b[64];
    if (read_small("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", a, sizeof a) ||
        read_small("/sys/fs/cgroup/cpu/cpu.cfs_period_us", b, sizeof b))
        return 0;
    long long q, per; /* a quota of -1 is none */
    if (positive(a, strlen(a), &q) || positive(b, strlen(b), &per)) return 0;
    return cpus_of(q, per);
}

int cpus_usable(void)
{
    int n = 0;
    cpu_set_t set;
    if (!sched_getaffinity(0, sizeof set, &set)) n = CPU_COUNT(&set);
    if (n < 1) n = 1;
    int q = quota_v2();
    if (q <= 0) q = quota_v1();
    if (q > 0 && q < n) n = q;
    return n;
}
