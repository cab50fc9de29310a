/* cli.h - the subcommands of build/xbnserve. Each takes the arguments after its own name
 * (argv[0] is the subcommand) and returns the process exit code: 0 ok, 1 failure, 2 usage. */
#ifndef XBN_CLI_H
#define XBN_CLI_H

int cmd_predict(int argc, char **argv);    /* cli/predict.c: offline classification */
int cmd_inspect(int argc, char **argv);    /* cli/predict.c: print the op plan */
int cmd_preprocess(int argc, char **argv); /* cli/preprocess.c: image -> .npy */
int cmd_bench(int argc, char **argv);      /* cli/bench.c: engine throughput */

#endif
