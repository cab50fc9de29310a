/* args.h - the one way the commands of cli/ read their arguments.
 *
 * A command describes its options in a table of cli_opt rows and hands argv to
 * cli_args_parse, which walks it once. An option is `--name VALUE` or `--name=VALUE` (a
 * value-less one is just `--name`); any other word is an operand, collected in order; "--"
 * makes every word after it an operand. A number is read with server/num.h and must lie in
 * the row's range. `--help` or `-h` prints the usage on stdout, and the command exits 0. A
 * mistake prints one line, "CMD: what is wrong", then the usage, on stderr, and the command
 * exits 2: an unknown option, a missing or unexpected value, a value out of range.
 * cli_usage_error does the same for what only the command can check (a missing --model).
 *
 * A new option is one row, written with the CLI_OPT_* macros below, which also check the
 * destination's type: CLI_OPT_STR("--gemm", &a.gemm).
 */
#ifndef XBN_CLI_ARGS_H
#define XBN_CLI_ARGS_H

#include <stddef.h>
#include <stdio.h>

#define CLI_GO_ON (-1) /* cli_args_parse: the command goes on */

typedef enum {
    CLI_ARG_SET,    /* no value: *(int *)dst = lo */
    CLI_ARG_STR,    /* *(const char **)dst = the value */
    CLI_ARG_INT,    /* *(int *)dst, an integer in [lo, hi] */
    CLI_ARG_LLONG,  /* *(long long *)dst, an integer in [lo, hi] */
    CLI_ARG_DOUBLE, /* *(double *)dst, a number in [dlo, dhi] */
} cli_arg_kind;

typedef struct {
    const char *name; /* as typed: "--top-k", "-o" */
    cli_arg_kind kind;
    void *dst;
    long long lo, hi; /* CLI_ARG_INT, CLI_ARG_LLONG; CLI_ARG_SET stores lo */
    double dlo, dhi;  /* CLI_ARG_DOUBLE */
} cli_opt;

/* The rows; `1 ? (d) : (T *)0` makes a destination of another type a compile error. */
#define CLI_OPT_SET(n, d, v)                                                                       \
    {                                                                                              \
        .name = (n), .kind = CLI_ARG_SET, .dst = 1 ? (d) : (int *)0, .lo = (v)                     \
    }
#define CLI_OPT_STR(n, d)                                                                          \
    {                                                                                              \
        .name = (n), .kind = CLI_ARG_STR, .dst = 1 ? (d) : (const char **)0                        \
    }
#define CLI_OPT_INT(n, d, min, max)                                                                \
    {                                                                                              \
        .name = (n), .kind = CLI_ARG_INT, .dst = 1 ? (d) : (int *)0, .lo = (min), .hi = (max)      \
    }
#define CLI_OPT_LLONG(n, d, min, max)                                                              \
    {                                                                                              \
        .name = (n), .kind = CLI_ARG_LLONG, .dst = 1 ? (d) : (long long *)0, .lo = (min),          \
        .hi = (max)                                                                                \
    }
#define CLI_OPT_DOUBLE(n, d, min, max)                                                             \
    {                                                                                              \
        .name = (n), .kind = CLI_ARG_DOUBLE, .dst = 1 ? (d) : (double *)0, .dlo = (min),           \
        .dhi = (max)                                                                               \
    }

typedef struct {
    const char *name;       /* "predict": the messages' prefix */
    void (*usage)(FILE *f); /* the usage text */
    const cli_opt *opts;
    size_t nopts;
} cli_cmd;

/* Parse argv[1..argc) (argv[0] is the command's name) into the table's destinations;
 * operands go to operands[0..*n) (room for argc words; it may be argv itself). Returns
 * CLI_GO_ON, or the exit code the command returns at once: 0 after --help, 2 after a mistake
 * (its message and the usage printed). */
int cli_args_parse(const cli_cmd *c, int argc, char **argv, char **operands, int *n);

/* Print "CMD: message" and the usage on stderr; returns 2, the usage exit code. */
int cli_usage_error(const cli_cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
