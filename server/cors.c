/* cors.c - see cors.h. */
#include "server/cors.h"

#include <string.h>

int cors_origin_allowed(const char *list, const char *origin)
{
    if (!list || !origin || !*origin) return 0;
    size_t n = strlen(origin);
    for (const char *p = list; *p;) {
        size_t k = strcspn(p, ",");
        if (k == n && !strncmp(p, origin, n)) return 1;
        p += k + (p[k] == ',');
    }
    return 0;
}

int cors_route(const char *endpoint)
{
    return endpoint && (!strncmp(endpoint, "v1_", 3) || !strncmp(endpoint, "v2_", 3));
}
