/* cli.h - the subcommands of build/xbnserve. Each takes the arguments after its own name
 * (argv[0] is the subcommand) and returns the process exit code: 0 ok, 1 failure, 2 usage. */
#ifndef XBN_CLI_H
#define XBN_CLI_H

#include "engine/engine.h"
#include "cli/args.h"
#include "image/preprocess.h"

/* Size of every error message buffer in cli/: a path and a decoder's or loader's message. */
#define CLI_ERR_MAX 512

int cmd_predict(int argc, char **argv);    /* cli/predict.c: offline classification */
int cmd_inspect(int argc, char **argv);    /* cli/predict.c: print the op plan */
int cmd_preprocess(int argc, char **argv); /* cli/preprocess.c: image -> .npy */
int cmd_bench(int argc, char **argv);      /* cli/bench.c: engine throughput */

/* model_load, then the model's preprocess spec (image/preprocess.h: the file's metadata over
 * the defaults), so a file with a bad spec is refused like any other bad file. On failure
 * prints "CMD: message" on stderr and returns -1 with *m NULL; on success *m is the caller's
 * (model_free). */
int cli_load_model(const char *cmd, const char *path, const model_load_opts *opts, model **m,
                   preprocess_spec *pre);
/* --gemm NAME (NULL: not given) into opts->gemm; CLI_GO_ON, or the usage error's exit code. */
int cli_gemm(const cli_cmd *cmd, const char *name, model_load_opts *opts);

#endif
