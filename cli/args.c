/* args.c - see args.h. */
#include "cli/args.h"

#include <stdarg.h>
#include <string.h>

#include "server/num.h"

int cli_usage_error(const cli_cmd *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", c->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    c->usage(stderr);
    return 2;
}

/* Store `v` per the row; 0, or 2 with the message printed. */
static int set_value(const cli_cmd *c, const cli_opt *o, const char *v)
{
    switch (o->kind) {
    case CLI_ARG_STR:
        *(const char **)o->dst = v;
        return 0;
    case CLI_ARG_INT:
    case CLI_ARG_LLONG: {
        long long x;
        if (num_parse_ll(v, o->lo, o->hi, &x))
            return cli_usage_error(
                c, "bad value for %s: '%.60s' (expected an integer in [%lld, %lld])", o->name, v,
                o->lo, o->hi);
        if (o->kind == CLI_ARG_INT)
            *(int *)o->dst = (int)x;
        else
            *(long long *)o->dst = x;
        return 0;
    }
    case CLI_ARG_DOUBLE:
        if (num_parse_double(v, o->dlo, o->dhi, (double *)o->dst))
            return cli_usage_error(c, "bad value for %s: '%.60s' (expected a number in [%g, %g])",
                                   o->name, v, o->dlo, o->dhi);
        return 0;
    case CLI_ARG_SET:
        break;
    }
    return cli_usage_error(c, "option %s takes no value", o->name);
}

/* The row named by `word` ("--name" or "--name=value"); *value is then the text after '='. */
static const cli_opt *find(const cli_cmd *c, const char *word, const char **value)
{
    const char *eq = strncmp(word, "--", 2) ? NULL : strchr(word, '=');
    size_t n = eq ? (size_t)(eq - word) : strlen(word);
    *value = eq ? eq + 1 : NULL;
    for (size_t i = 0; i < c->nopts; i++)
        if (strlen(c->opts[i].name) == n && !strncmp(c->opts[i].name, word, n)) return &c->opts[i];
    return NULL;
}

int cli_args_parse(const cli_cmd *c, int argc, char **argv, char **operands, int *n)
{
    int only_operands = 0;
    *n = 0;
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i], *v;
        if (only_operands || w[0] != '-' || !w[1]) {
            operands[(*n)++] = argv[i];
            continue;
        }
        if (!strcmp(w, "--")) {
            only_operands = 1;
            continue;
        }
        if (!strcmp(w, "--help") || !strcmp(w, "-h")) {
            c->usage(stdout);
            return 0;
        }
        const cli_opt *o = find(c, w, &v);
        if (!o) return cli_usage_error(c, "unknown option '%.60s'", w);
        if (o->kind == CLI_ARG_SET) {
            if (v) return cli_usage_error(c, "option %s takes no value", o->name);
            *(int *)o->dst = (int)o->lo;
            continue;
        }
        if (!v && i + 1 == argc) return cli_usage_error(c, "option %s needs a value", o->name);
        if (set_value(c, o, v ? v : argv[++i])) return 2;
    }
    return CLI_GO_ON;
}
