/* cmd_preprocess.c - `xbnserve preprocess`: write the input tensor an image becomes, as .npy.
 *
 * The spec comes from --model (the model file's "preprocess" metadata) or, without one, the
 * torchvision default; each flag below then overrides one field, so tests and debugging need
 * no model file. The output is float32 [1, 3, S, S], exactly what the engine receives.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "engine/engine.h"
#include "image/image.h"
#include "cli/npy.h"

static void usage(FILE *f)
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

static int parse_long(const char *s, long lo, long hi, long *v)
{
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (end == s || *end || errno || x < lo || x > hi) return -1;
    *v = x;
    return 0;
}

static int parse_double(const char *s, double *v)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end || errno) return -1;
    *v = x;
    return 0;
}

static int parse3(const char *s, float v[3])
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    char *save = NULL, *tok = strtok_r(buf, ",", &save);
    for (int i = 0; i < 3; i++, tok = strtok_r(NULL, ",", &save)) {
        double d;
        if (!tok || parse_double(tok, &d)) return -1;
        v[i] = (float)d;
    }
    return tok ? -1 : 0;
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

int cmd_preprocess(int argc, char **argv)
{
    preprocess_spec pre = {RESIZE_SHORTER_CROP,      256, 224, 0, {0.485f, 0.456f, 0.406f},
                           {0.229f, 0.224f, 0.225f}, 1};
    image_limits lim = {IMG_DEFAULT_MAX_BYTES, IMG_DEFAULT_MAX_PIXELS};
    double margin = 0;
    const char *model_path = NULL, *in = NULL, *outp = NULL;
    /* overrides, applied after the model's spec */
    int mode = -1, bgr = -1, exif = -1, has_mean = 0, has_std = 0;
    long resize = 0, crop = 0, v, repeat = 0;
    float mean[3], stdv[3];
    char err[512];
    unsigned char *data = NULL;
    float *x = NULL;
    unsigned char *px = NULL;
    model *m = NULL;
    int rc = 1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--rgb") || !strcmp(a, "--bgr")) {
            bgr = a[2] == 'b', takes = 0;
        } else if (!strcmp(a, "--exif") || !strcmp(a, "--no-exif")) {
            exif = a[2] == 'e', takes = 0;
        } else if (!strcmp(a, "--no-dct")) {
            margin = -1, takes = 0;
        } else if (a[0] == '-' && a[1] && !val) {
            fprintf(stderr, "preprocess: %s needs a value\n", a);
            return 2;
        } else if (!strcmp(a, "--model")) {
            model_path = val;
        } else if (!strcmp(a, "-o")) {
            outp = val;
        } else if (!strcmp(a, "--mode")) {
            if (!strcmp(val, "shorter_crop"))
                mode = RESIZE_SHORTER_CROP;
            else if (!strcmp(val, "direct"))
                mode = RESIZE_DIRECT;
            else
                goto bad;
        } else if (!strcmp(a, "--resize")) {
            if (parse_long(val, 1, 65536, &resize)) goto bad;
        } else if (!strcmp(a, "--crop")) {
            if (parse_long(val, 1, 65536, &crop)) goto bad;
        } else if (!strcmp(a, "--mean")) {
            if (parse3(val, mean)) goto bad;
            has_mean = 1;
        } else if (!strcmp(a, "--std")) {
            if (parse3(val, stdv)) goto bad;
            has_std = 1;
        } else if (!strcmp(a, "--max-bytes")) {
            if (parse_long(val, 1, 1L << 40, &v)) goto bad;
            lim.max_bytes = (size_t)v;
        } else if (!strcmp(a, "--max-pixels")) {
            if (parse_long(val, 1, 1L << 40, &lim.max_pixels)) goto bad;
        } else if (!strcmp(a, "--time")) {
            if (parse_long(val, 1, 1000000, &repeat)) goto bad;
        } else if (!strcmp(a, "--dct-margin")) {
            if (parse_double(val, &margin) || margin == 0) goto bad;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "preprocess: unknown option %s\n", a);
            usage(stderr);
            return 2;
        } else {
            if (in) {
                fprintf(stderr, "preprocess: one image at a time\n");
                return 2;
            }
            in = a, takes = 0;
        }
        i += takes;
        continue;
    bad:
        fprintf(stderr, "preprocess: bad value for %s: '%s'\n", a, val);
        return 2;
    }
    if (!in || !outp) {
        usage(stderr);
        return 2;
    }
    if (model_path) {
        if (model_load(model_path, NULL, &m, err, sizeof err)) {
            fprintf(stderr, "preprocess: %s\n", err);
            goto done;
        }
        pre = model_get_info(m)->pre;
    }
    if (mode >= 0) pre.mode = (resize_mode)mode;
    if (resize) pre.resize = (int)resize;
    if (crop) pre.crop = (int)crop;
    if (bgr >= 0) pre.bgr = bgr;
    if (exif >= 0) pre.exif_orient = exif;
    if (has_mean) memcpy(pre.mean, mean, sizeof mean);
    if (has_std) memcpy(pre.std, stdv, sizeof stdv);

    size_t len = 0, n = (size_t)3 * pre.crop * pre.crop;
    if (!(data = slurp(in, lim.max_bytes, &len, err, sizeof err))) {
        fprintf(stderr, "preprocess: %s\n", err);
        goto done;
    }
    /* The server's two steps, buffers kept across --time runs as the server's are per request
     * (a fresh 150 KB block per run would time this machine's page faults, not the work). */
    if (!(x = malloc(n * sizeof *x)) || !(px = malloc(n))) {
        fprintf(stderr, "preprocess: out of memory\n");
        goto done;
    }
    if (image_to_pixels(data, len, &pre, &lim, margin, px, err, sizeof err)) {
        fprintf(stderr, "preprocess: %s: %s\n", in, err);
        goto done;
    }
    image_normalise(&pre, px, x);
    if (repeat) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (long i = 0; i < repeat; i++) {
            if (image_to_pixels(data, len, &pre, &lim, margin, px, err, sizeof err)) goto done;
            image_normalise(&pre, px, x);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = ((double)(t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
        printf("%.3f ms per image (%ld runs)\n", ms / (double)repeat, repeat);
    }
    long shape[4] = {1, 3, pre.crop, pre.crop};
    if (npy_write_f32(outp, x, 4, shape, err, sizeof err)) {
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
