/* test_pages.c - the engine's large allocations (engine/pages.h): line-aligned, and from 2 MB
 * on 2 MB pages when the kernel's transparent huge pages allow it, read back from what the
 * kernel reports for the mapping (/proc/self/smaps). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pages.h"
#include "tests/unit/testutil.h"

#define MB ((size_t)1 << 20)

/* The mode the kernel runs transparent huge pages in: "always", "madvise", "never", or "" when
 * it has none. */
static void thp_mode(char *mode, size_t len)
{
    char line[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    mode[0] = 0;
    if (!f) return;
    if (fgets(line, sizeof line, f)) {
        char *open = strchr(line, '['), *close = open ? strchr(open, ']') : NULL;
        if (close) snprintf(mode, len, "%.*s", (int)(close - open - 1), open + 1);
    }
    fclose(f);
}

/* kB of huge pages the kernel reports for the mapping that holds p; -1 when not found. */
static long anon_huge_kb(const void *p)
{
    char line[256];
    long kb = -1;
    int in_map = 0;
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in_map = (uintptr_t)p >= lo && (uintptr_t)p < hi;
            continue;
        }
        if (in_map && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1) break;
    }
    fclose(f);
    return kb;
}

static void test_small_on_a_line(void **state)
{
    (void)state;
    for (size_t n = 1; n < 2 * MB; n = n * 7 + 3) {
        unsigned char *p = pages_alloc(n);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 64, 0);
        memset(p, 0xab, n);
        free(p);
    }
}

static void test_large_on_huge_pages(void **state)
{
    (void)state;
    char mode[32];
    size_t n = 5 * MB + 123;
    unsigned char *p = pages_alloc(n);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % (2 * MB), 0);
    memset(p, 1, 6 * MB); /* rounded up to whole 2 MB pages: all of it is ours */
    thp_mode(mode, sizeof mode);
    if (strcmp(mode, "always") && strcmp(mode, "madvise")) {
        free(p);
        skip(); /* no transparent huge pages on this kernel: 4 KB pages, as any allocation */
    }
    /* three 2 MB pages, each faulted whole; at least one, should memory be too fragmented */
    long kb = anon_huge_kb(p);
    free(p);
    assert_true(kb >= 2048);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_on_a_line),
        cmocka_unit_test(test_large_on_huge_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
