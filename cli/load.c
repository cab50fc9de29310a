/* load.c - a model file and its preprocess spec, for every command that loads one. */
#include <stdio.h>

#include "cli/cli.h"

int cli_load_model(const char *cmd, const char *path, model **m, preprocess_spec *pre)
{
    char err[CLI_ERR_MAX], msg[CLI_ERR_MAX];
    if (model_load(path, m, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", cmd, err);
        return -1;
    }
    const model_info *in = model_get_info(*m);
    if (preprocess_from_model(in->preprocess_json, in->input_size, pre, msg, sizeof msg)) {
        fprintf(stderr, "%s: %s: %s\n", cmd, path, msg);
        model_free(*m);
        *m = NULL;
        return -1;
    }
    return 0;
}
