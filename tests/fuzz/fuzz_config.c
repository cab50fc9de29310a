/* fuzz_config.c - libFuzzer driver: the configuration (config_parse_json, config_validate,
 * config_load over file + environment + flags, config_print).
 *
 * Input: sections separated by two NUL bytes: the JSON file, then flag words (NUL-separated,
 * the words after `serve`), then environment entries ("XBNSERVE_KEY=VALUE", NUL-separated).
 * The file goes to a memfd that config_load reads through --config /proc/self/fd/N; words
 * naming another config file are dropped, so the driver never reads anything else. Checks:
 * a failure always has a message; a success validates and prints.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "server/config.h"

#define MAX_WORDS 64

/* Split s[0..n) at NULs into words (each NUL-terminated in a copy). Returns the count. */
static int split(const char *s, size_t n, char **words, int max)
{
    int k = 0;
    size_t i = 0;
    while (i < n && k < max) {
        size_t j = i;
        while (j < n && s[j]) j++;
        words[k] = strndup(s + i, j - i);
        if (!words[k]) break;
        if (strstr(words[k], "config")) { /* --config, --check-config, XBNSERVE_CONFIG */
            free(words[k]);
            words[k] = NULL;
        } else {
            k++;
        }
        i = j + 1;
    }
    return k;
}

static const char *find2(const char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (!s[i] && !s[i + 1]) return s + i;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data, *end = s + size;
    const char *e1 = find2(s, size);
    size_t jlen = e1 ? (size_t)(e1 - s) : size;

    /* 1. The pure parser on the JSON section alone. */
    static config c;
    char err[512];
    err[0] = 0;
    config_defaults(&c);
    if (config_parse_json(s, jlen, &c, err, sizeof err)) {
        if (!err[0]) abort();
    } else if (c.nmodels < 0 || c.nmodels > CFG_MAX_MODELS) {
        abort();
    } else {
        err[0] = 0;
        if (config_validate(&c, err, sizeof err) && !err[0]) abort();
    }

    /* 2. config_load: file (memfd) + flags + environment. */
    const char *a0 = e1 ? e1 + 2 : end;
    const char *e2 = a0 < end ? find2(a0, (size_t)(end - a0)) : NULL;
    size_t alen = a0 < end ? (e2 ? (size_t)(e2 - a0) : (size_t)(end - a0)) : 0;
    const char *v0 = e2 ? e2 + 2 : end;
    size_t vlen = v0 < end ? (size_t)(end - v0) : 0;
    int fd = memfd_create("fuzzcfg", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (jlen && write(fd, s, jlen) != (ssize_t)jlen) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    char *argv[MAX_WORDS + 4] = {"serve", "--config", path};
    char *envp[MAX_WORDS + 1] = {0};
    int argc = 3 + split(a0, alen, argv + 3, MAX_WORDS);
    int nenv = split(v0, vlen, envp, MAX_WORDS);
    argv[argc] = NULL;
    config_opts o;
    err[0] = 0;
    if (config_load(argc, argv, envp, &c, &o, err, sizeof err)) {
        if (!err[0]) abort();
    } else if (!o.help) {
        char *buf = NULL;
        size_t blen = 0;
        FILE *f = open_memstream(&buf, &blen);
        if (f) {
            config_print(&c, f);
            fclose(f);
        }
        free(buf);
    }
    for (int i = 3; i < argc; i++) free(argv[i]);
    for (int i = 0; i < nenv; i++) free(envp[i]);
    close(fd);
    return 0;
}
