/* load.c - a model file and its preprocess spec, for every command that loads one. */
#include <stdio.h>

#include "cli/cli.h"

int cli_load_model(const char *cmd, const char *path, const model_load_opts *opts, model **m,
                   preprocess_spec *pre)
{
    char err[CLI_ERR_MAX], msg[CLI_ERR_MAX];
    if (model_load(path, opts, m, err, sizeof err)) {
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

int cli_gemm(const cli_cmd *cmd, const char *name, model_load_opts *opts)
{
    if (name && engine_gemm_parse(name, &opts->gemm))
        return cli_usage_error(cmd, "--gemm must be auto, avx512, avx2 or blas");
    return CLI_GO_ON;
}
