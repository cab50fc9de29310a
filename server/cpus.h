/* cpus.h - how many CPUs this process may really use: the affinity mask, capped by the
 * cgroup CPU quota (v2 cpu.max, walking up the hierarchy; v1 cpu.cfs_quota_us/period_us),
 * rounded up. Used to size thread pools by default instead of the host's core count.
 */
#ifndef XBN_CPUS_H
#define XBN_CPUS_H

/* CPUs usable by this process, >= 1. Reads /proc and /sys; never fails. */
int cpus_usable(void);

/* Quota in CPUs from a cgroup v2 cpu.max line ("max 100000" -> 0 = unlimited,
 * "150000 100000" -> 2 (rounded up)). -1 if unparsable. Pure. */
int cpus_from_cpu_max(const char *text);

#endif
