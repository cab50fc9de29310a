/* preprocess.c - `xbnserve preprocess`: write the input tensor an image becomes, as .npy.
 *
 * The spec comes from --model (the model file's "preprocess" metadata) or, without one, the
 * torchvision default; each spec flag then overrides one key. The flags are the spec's keys
 * written as words, so they are handed to the image layer's one parser as the JSON object
 * they stand for ({"crop": 300}), which checks them as it checks a model file or the
 * config: tests and debugging need no model file. The output is float32 [1, 3, S, S],
 * exactly what the engine receives.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/npy.h"
#include "engine/engine.h"
#include "image/image.h"
#include "server/num.h"

#define PP_MAX_LIMIT (1LL << 40) /* --max-bytes, --max-pixels: far above any image */
#define PP_MAX_REPEAT 1000000    /* --time */

typedef struct {
    const char *model, *image, *out;
    preprocess_spec over; /* the spec flags, parsed: the fields in over_set */
    unsigned over_set;    /* PRE_* bits of the flags given */
    long long max_bytes, max_pixels, repeat;
    double margin; /* 0: IMG_DCT_MARGIN, < 0: no DCT scaling */
} pp_args;

/* The spec flags as typed, before they become JSON. */
typedef struct {
    const char *mode, *resize, *crop, *mean, *std;
    int bgr, exif; /* -1: not given */
    int no_dct;
} pp_flags;

static void pp_usage(FILE *f)
{
    fprintf(f,
            "usage: xbnserve preprocess [--model MODEL] [options] IMAGE -o OUT.npy\n"
            "  --model PATH          take the preprocess spec from a model file; without it:\n"
            "                        shorter_crop 256 -> 224, RGB, ImageNet mean/std, EXIF on\n"
            "  --mode shorter_crop|direct   --resize R   --crop S\n"
            "  --rgb | --bgr         plane order\n"
            "  --mean a,b,c  --std a,b,c    per plane, [0,1] scale: x = (p/255 - mean)/std\n"
            "  --exif | --no-exif    apply the EXIF orientation tag or not\n"
            "  --max-bytes N  --max-pixels N   limits (defaults %u, %ld)\n"
            "  --dct-margin F        DCT-scaling margin (default %g); --no-dct: full decode\n"
            "  --time N              also decode N more times and print ms per image\n",
            IMG_DEFAULT_MAX_BYTES, IMG_DEFAULT_MAX_PIXELS, IMG_DCT_MARGIN);
}

/* Add `key`: the number in `text`, or with `list` an array of the comma-separated numbers
 * in it. 0, or -1 when a number is malformed (its range is the spec parser's to check). */
static int add_numbers(cJSON *o, const char *key, const char *text, int list)
{
    char tok[NUM_MAX_CHARS + 1];
    cJSON *arr = list ? cJSON_AddArrayToObject(o, key) : NULL;
    if (list && !arr) return -1;
    for (const char *p = text;; p++) {
        size_t n = strcspn(p, list ? "," : "");
        double v;
        if (n >= sizeof tok) return -1;
        memcpy(tok, p, n);
        tok[n] = 0;
        if (num_parse_double(tok, -HUGE_VAL, HUGE_VAL, &v)) return -1;
        cJSON *num = cJSON_CreateNumber(v);
        if (!num || !(arr ? cJSON_AddItemToArray(arr, num) : cJSON_AddItemToObject(o, key, num))) {
            cJSON_Delete(num);
            return -1;
        }
        p += n;
        if (!*p) return 0;
    }
}

/* The spec flags given, as a preprocess JSON object into *out. CLI_GO_ON, or the exit code
 * after a message. */
static int flags_json(const cli_cmd *c, const pp_flags *f, cJSON **out)
{
    const struct {
        const char *flag, *key, *text;
        int list;
    } nums[] = {{"--resize", "resize", f->resize, 0},
                {"--crop", "crop", f->crop, 0},
                {"--mean", "mean", f->mean, 1},
                {"--std", "std", f->std, 1}};
    int rc = 1;
    cJSON *o = cJSON_CreateObject();
    if (!o || (f->mode && !cJSON_AddStringToObject(o, "resize_mode", f->mode)) ||
        (f->bgr >= 0 && !cJSON_AddStringToObject(o, "channel_order", f->bgr ? "BGR" : "RGB")) ||
        (f->exif >= 0 && !cJSON_AddBoolToObject(o, "exif_orient", f->exif))) {
        fprintf(stderr, "%s: out of memory\n", c->name);
        goto fail;
    }
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        if (nums[i].text && add_numbers(o, nums[i].key, nums[i].text, nums[i].list)) {
            rc = cli_usage_error(c, "bad value for %s: '%.60s' (expected %s)", nums[i].flag,
                                 nums[i].text, nums[i].list ? "numbers a,b,c" : "a number");
            goto fail;
        }
    *out = o;
    return CLI_GO_ON;
fail:
    cJSON_Delete(o);
    return rc;
}

/* CLI_GO_ON with *a filled, or the exit code. */
static int pp_parse(int argc, char **argv, pp_args *a)
{
    pp_flags f = {.bgr = -1, .exif = -1};
    char msg[CLI_ERR_MAX];
    cJSON *o = NULL;
    int n;
    *a = (pp_args){0};
    const cli_opt opts[] = {
        CLI_OPT_STR("--model", &a->model),
        CLI_OPT_STR("-o", &a->out),
        CLI_OPT_STR("--mode", &f.mode),
        CLI_OPT_STR("--resize", &f.resize),
        CLI_OPT_STR("--crop", &f.crop),
        CLI_OPT_SET("--rgb", &f.bgr, 0),
        CLI_OPT_SET("--bgr", &f.bgr, 1),
        CLI_OPT_STR("--mean", &f.mean),
        CLI_OPT_STR("--std", &f.std),
        CLI_OPT_SET("--exif", &f.exif, 1),
        CLI_OPT_SET("--no-exif", &f.exif, 0),
        CLI_OPT_LLONG("--max-bytes", &a->max_bytes, 1, PP_MAX_LIMIT),
        CLI_OPT_LLONG("--max-pixels", &a->max_pixels, 1, PP_MAX_LIMIT),
        CLI_OPT_DOUBLE("--dct-margin", &a->margin, 0.01, 1000),
        CLI_OPT_SET("--no-dct", &f.no_dct, 1),
        CLI_OPT_LLONG("--time", &a->repeat, 1, PP_MAX_REPEAT),
    };
    const cli_cmd cmd = {"preprocess", pp_usage, opts, sizeof opts / sizeof opts[0]};
    int rc = cli_args_parse(&cmd, argc, argv, argv, &n);
    if (rc != CLI_GO_ON) return rc;
    if (f.no_dct) a->margin = -1;
    if ((rc = flags_json(&cmd, &f, &o)) != CLI_GO_ON) return rc;
    rc = preprocess_parse(o, &a->over, &a->over_set, "preprocess", msg, sizeof msg);
    cJSON_Delete(o);
    if (rc) return cli_usage_error(&cmd, "%s", msg);
    if (n != 1) return cli_usage_error(&cmd, n ? "one image at a time" : "no IMAGE given");
    if (!a->out) return cli_usage_error(&cmd, "-o OUT.npy is required");
    a->image = argv[0];
    return CLI_GO_ON;
}

/* Read a whole file of at most max bytes into a malloc'd buffer. */
static unsigned char *slurp(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    unsigned char *buf = NULL;
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f || fstat(fileno(f), &st)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if ((unsigned long long)st.st_size > max) {
        snprintf(err, errlen, "%s: %lld bytes, over the limit of %zu", path, (long long)st.st_size,
                 max);
        goto fail;
    }
    *len = (size_t)st.st_size;
    if (!(buf = malloc(*len ? *len : 1)) || fread(buf, 1, *len, f) != *len) {
        snprintf(err, errlen, "%s: read failed", path);
        goto fail;
    }
    fclose(f);
    return buf;
fail:
    free(buf);
    if (f) fclose(f);
    return NULL;
}

/* The server's two steps (image_to_pixels, image_normalise) into px and x, then with --time
 * `repeat` more runs, timed. Buffers are kept across runs as the server's are per request (a
 * fresh 150 KB block per run would time this machine's page faults, not the work). */
static int pp_run(const pp_args *a, const preprocess_spec *pre, const image_limits *lim,
                  const unsigned char *data, size_t len, unsigned char *px, float *x)
{
    char err[CLI_ERR_MAX];
    struct timespec t0, t1;
    if (image_to_pixels(data, len, pre, lim, a->margin, px, err, sizeof err)) {
        fprintf(stderr, "preprocess: %s: %s\n", a->image, err);
        return -1;
    }
    image_normalise(pre, px, x);
    if (!a->repeat) return 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long long i = 0; i < a->repeat; i++) {
        if (image_to_pixels(data, len, pre, lim, a->margin, px, err, sizeof err)) return -1;
        image_normalise(pre, px, x);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = ((double)(t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
    printf("%.3f ms per image (%lld runs)\n", ms / (double)a->repeat, a->repeat);
    return 0;
}

int cmd_preprocess(int argc, char **argv)
{
    pp_args a;
    preprocess_spec pre;
    char err[CLI_ERR_MAX];
    unsigned char *data = NULL, *px = NULL;
    float *x = NULL;
    model *m = NULL;
    size_t len = 0;
    int rc = pp_parse(argc, argv, &a);
    if (rc != CLI_GO_ON) return rc;
    rc = 1;
    if (!a.model)
        preprocess_defaults(&pre, 224);
    else if (cli_load_model("preprocess", a.model, NULL, &m, &pre))
        goto done;
    preprocess_apply(&pre, &a.over, a.over_set);
    image_limits lim = {.max_bytes = a.max_bytes ? (size_t)a.max_bytes : IMG_DEFAULT_MAX_BYTES,
                        .max_pixels = a.max_pixels ? (long)a.max_pixels : IMG_DEFAULT_MAX_PIXELS};
    size_t n = (size_t)3 * pre.crop * pre.crop;
    if (!(data = slurp(a.image, lim.max_bytes, &len, err, sizeof err))) {
        fprintf(stderr, "preprocess: %s\n", err);
        goto done;
    }
    if (!(x = malloc(n * sizeof *x)) || !(px = malloc(n))) {
        fprintf(stderr, "preprocess: out of memory\n");
        goto done;
    }
    if (pp_run(&a, &pre, &lim, data, len, px, x)) goto done;
    long shape[4] = {1, 3, pre.crop, pre.crop};
    if (npy_write_f32(a.out, x, 4, shape, err, sizeof err)) {
        fprintf(stderr, "preprocess: %s\n", err);
        goto done;
    }
    rc = 0;
done:
    free(data);
    free(x);
    free(px);
    model_free(m);
    return rc;
}
