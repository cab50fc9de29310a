/* versions.h - a model's versions on disk and the policy that picks the ones served.
 *
 * A model's `path` is either one .safetensors file (the model has one version, 1) or a
 * directory of numbered version folders laid out as TF Serving and Triton do:
 *   dir/1/model.safetensors, dir/2/model.safetensors, ...
 * The file inside is always named model.safetensors (a fixed name, as Triton's model.onnx:
 * no guessing between several files); a folder without it, or whose name is not a plain
 * positive number, is not a version. The per-model setting `version_policy` (TF Serving's
 * names) picks what is served: {"latest": N} (the default, latest 1), {"specific": [1, 3]},
 * {"all": true}. As text (flags, environment, the effective configuration) it reads
 * "latest:N", "specific:1,3", "all".
 *
 * Pure functions of their arguments and the file system: any thread may call them.
 */
#ifndef XBN_VERSIONS_H
#define XBN_VERSIONS_H

#include <stddef.h>

#include "server/limits.h"

#define VERSIONS_MAX 16       /* versions one model serves at once */
#define VERSIONS_TEXT_MAX 128 /* a policy as text */
#define VERSIONS_FILE "model.safetensors"

enum { VPOL_LATEST, VPOL_SPECIFIC, VPOL_ALL };

typedef struct {
    int kind;                     /* VPOL_* */
    long long n;                  /* VPOL_LATEST: how many */
    long long list[VERSIONS_MAX]; /* VPOL_SPECIFIC: the versions, as given */
    int nlist;
} version_policy;

/* Parse the text form ("" is latest:1). 0, or -1 with err set. */
int versions_policy_parse(const char *text, version_policy *p, char *err, size_t errlen);

/* The versions of path that policy p serves, ascending, into out[VERSIONS_MAX]; *n of them.
 * A plain file is version 1 whatever the policy. 0, or -1 with err set (unreadable path, no
 * version, a specific version missing). */
int versions_resolve(const char *path, const version_policy *p, long long *out, int *n, char *err,
                     size_t errlen);

/* The file of version v of path into buf: path itself for a plain file. 0, or -1 when it
 * does not fit. */
int versions_file(const char *path, long long v, char *buf, size_t n);

#endif
