/* pages.c - large allocations on 2 MB pages where the kernel gives them. See pages.h. */
#include "engine/pages.h"

#include <stdlib.h>
#include <sys/mman.h>

#define HUGE_PAGE_BYTES ((size_t)2 << 20)

void *pages_alloc(size_t bytes)
{
    if (bytes < HUGE_PAGE_BYTES) return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    bytes = (bytes + HUGE_PAGE_BYTES - 1) & ~(HUGE_PAGE_BYTES - 1);
    void *p = aligned_alloc(HUGE_PAGE_BYTES, bytes);
    if (p) madvise(p, bytes, MADV_HUGEPAGE); /* advice only: on failure, 4 KB pages */
    return p;
}
