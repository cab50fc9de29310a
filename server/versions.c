/* versions.c - see versions.h. */
#include "server/versions.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "server/num.h"

int versions_policy_parse(const char *text, version_policy *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    p->kind = VPOL_LATEST;
    p->n = 1;
    if (!*text) return 0;
    if (!strcmp(text, "all")) {
        p->kind = VPOL_ALL;
        return 0;
    }
    if (!strncmp(text, "latest:", 7)) {
        if (num_parse_ll(text + 7, 1, VERSIONS_MAX, &p->n)) goto bad;
        return 0;
    }
    if (!strncmp(text, "specific:", 9)) {
        p->kind = VPOL_SPECIFIC;
        char buf[VERSIONS_TEXT_MAX];
        snprintf(buf, sizeof buf, "%s", text + 9);
        char *save = NULL;
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (p->nlist == VERSIONS_MAX || num_parse_ll(t, 1, 1000000000000LL, &p->list[p->nlist]))
                goto bad;
            p->nlist++;
        }
        if (p->nlist) return 0;
    }
bad:
    snprintf(err, errlen,
             "version_policy: expected {\"latest\": N} (N in [1, %d]), {\"specific\": [v, ...]} or "
             "{\"all\": true}, got '%.60s'",
             VERSIONS_MAX, text);
    return -1;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int versions_file(const char *path, long long v, char *buf, size_t n)
{
    struct stat st;
    int w;
    if (!stat(path, &st) && S_ISDIR(st.st_mode))
        w = snprintf(buf, n, "%s/%lld/%s", path, v, VERSIONS_FILE);
    else
        w = snprintf(buf, n, "%s", path);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

/* A version folder's name: digits only, no leading zero, > 0. */
static int version_name(const char *s, long long *v)
{
    if (s[0] < '1' || s[0] > '9' || strspn(s, "0123456789") != strlen(s) || strlen(s) > 12)
        return 0;
    *v = strtoll(s, NULL, 10);
    return 1;
}

int versions_resolve(const char *path, const version_policy *p, long long *out, int *n, char *err,
                     size_t errlen)
{
    struct stat st;
    *n = 0;
    if (stat(path, &st)) {
        snprintf(err, errlen, "%.200s: cannot read", path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        out[0] = 1;
        *n = 1;
        return 0;
    }
    /* every version on disk; ascending */
    long long have[256];
    int nh = 0;
    DIR *d = opendir(path);
    if (!d) {
        snprintf(err, errlen, "%.200s: cannot read the directory", path);
        return -1;
    }
    for (struct dirent *e; (e = readdir(d)) && nh < (int)(sizeof have / sizeof have[0]);) {
        long long v;
        char f[CFG_PATH_MAX + 64];
        if (!version_name(e->d_name, &v)) continue;
        if (versions_file(path, v, f, sizeof f) || stat(f, &st) || !S_ISREG(st.st_mode)) continue;
        have[nh++] = v;
    }
    closedir(d);
    qsort(have, (size_t)nh, sizeof have[0], cmp_ll);
    if (p->kind == VPOL_SPECIFIC) {
        for (int i = 0; i < p->nlist; i++) {
            int found = 0;
            for (int j = 0; j < nh; j++) found |= have[j] == p->list[i];
            if (!found) {
                snprintf(err, errlen, "%.200s: version %lld (version_policy specific) not found",
                         path, p->list[i]);
                return -1;
            }
            int dup = 0;
            for (int j = 0; j < *n; j++) dup |= out[j] == p->list[i];
            if (!dup) out[(*n)++] = p->list[i];
        }
        qsort(out, (size_t)*n, sizeof out[0], cmp_ll);
        return 0;
    }
    if (!nh) {
        snprintf(err, errlen, "%.200s: no version folder with %s in it", path, VERSIONS_FILE);
        return -1;
    }
    int keep = p->kind == VPOL_ALL ? nh : (int)(p->n < nh ? p->n : nh);
    if (keep > VERSIONS_MAX) keep = VERSIONS_MAX; /* the highest ones */
    for (int i = nh - keep; i < nh; i++) out[(*n)++] = have[i];
    return 0;
}
