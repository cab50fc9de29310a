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
        size_t len = strlen(buf); /* strtok_r would skip an empty item: refused here */
        if (!len || buf[0] == ',' || buf[len - 1] == ',' || strstr(buf, ",,")) goto bad;
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
    return s[0] != '0' && !num_parse_ll(s, 1, 999999999999LL, v);
}

/* Does version v of the directory path have its file? */
static int version_present(const char *path, long long v)
{
    char f[CFG_PATH_MAX + 64];
    struct stat st;
    return !versions_file(path, v, f, sizeof f) && !stat(f, &st) && S_ISREG(st.st_mode);
}

/* Insert v into top[0, *n), ascending, keeping the VERSIONS_MAX highest. */
static void keep_highest(long long *top, int *n, long long v)
{
    if (*n == VERSIONS_MAX) {
        if (v <= top[0]) return;
        memmove(top, top + 1, (VERSIONS_MAX - 1) * sizeof top[0]);
        (*n)--;
    }
    int i = *n;
    while (i > 0 && top[i - 1] > v) {
        top[i] = top[i - 1];
        i--;
    }
    top[i] = v;
    (*n)++;
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
    if (p->kind == VPOL_SPECIFIC) {
        for (int i = 0; i < p->nlist; i++) {
            if (!version_present(path, p->list[i])) {
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
    /* the VERSIONS_MAX highest versions on disk, ascending: latest N (N <= VERSIONS_MAX) and
     * all (at most VERSIONS_MAX served) take theirs from the top */
    long long top[VERSIONS_MAX];
    int nt = 0;
    DIR *d = opendir(path);
    if (!d) {
        snprintf(err, errlen, "%.200s: cannot read the directory", path);
        return -1;
    }
    for (struct dirent *e; (e = readdir(d));) {
        long long v;
        if (version_name(e->d_name, &v) && version_present(path, v)) keep_highest(top, &nt, v);
    }
    closedir(d);
    if (!nt) {
        snprintf(err, errlen, "%.200s: no version folder with %s in it", path, VERSIONS_FILE);
        return -1;
    }
    int keep = p->kind == VPOL_ALL || p->n > nt ? nt : (int)p->n;
    for (int i = nt - keep; i < nt; i++) out[(*n)++] = top[i];
    return 0;
}
