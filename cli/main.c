/* main.c - dispatch `xbnserve SUBCOMMAND ...` to the subcommand's function. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "server/serve.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: xbnserve COMMAND [options]\n"
               "  serve       run the HTTP daemon (serve --help)\n"
               "  predict     classify images or .npy tensors offline\n"
               "  inspect     print a model's op plan\n"
               "  preprocess  write the input tensor an image becomes, as .npy\n"
               "  bench       measure the engine alone on synthetic input\n");
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"serve", serve_main},
                {"predict", cmd_predict},
                {"inspect", cmd_inspect},
                {"bench", cmd_bench},
                {"preprocess", cmd_preprocess}};
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "xbnserve: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
