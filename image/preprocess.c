/* preprocess.c - the preprocess spec's defaults and its one parser; see preprocess.h.
 *
 * One table row per key: its name, its PRE_* bit and the function that checks and applies
 * its value. A key's message says what the value must be, so the row holds that too. */
#include "image/preprocess.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "image/limits.h"

typedef int (*key_fn)(const cJSON *v, preprocess_spec *p);

static int side(const cJSON *v, int *out)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 1 && v->valuedouble <= PREPROCESS_MAX_SIDE) ||
        v->valuedouble != (double)(int)v->valuedouble)
        return -1;
    *out = (int)v->valuedouble;
    return 0;
}

/* Three finite numbers, all > 0 when `positive`. */
static int three(const cJSON *v, float out[3], int positive)
{
    float f[3];
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 3) return -1;
    for (int i = 0; i < 3; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble)) return -1;
        f[i] = (float)e->valuedouble;
        if (positive && !(f[i] > 0)) return -1;
    }
    memcpy(out, f, sizeof f);
    return 0;
}

static int key_mode(const cJSON *v, preprocess_spec *p)
{
    const char *s = cJSON_GetStringValue(v);
    if (s && !strcmp(s, "shorter_crop"))
        p->mode = RESIZE_SHORTER_CROP;
    else if (s && !strcmp(s, "direct"))
        p->mode = RESIZE_DIRECT;
    else
        return -1;
    return 0;
}

static int key_resize(const cJSON *v, preprocess_spec *p)
{
    return side(v, &p->resize);
}

static int key_crop(const cJSON *v, preprocess_spec *p)
{
    return side(v, &p->crop);
}

static int key_order(const cJSON *v, preprocess_spec *p)
{
    const char *s = cJSON_GetStringValue(v);
    if (!s || (strcmp(s, "RGB") && strcmp(s, "BGR"))) return -1;
    p->bgr = !strcmp(s, "BGR");
    return 0;
}

static int key_mean(const cJSON *v, preprocess_spec *p)
{
    return three(v, p->mean, 0);
}

static int key_std(const cJSON *v, preprocess_spec *p)
{
    return three(v, p->std, 1);
}

static int key_exif(const cJSON *v, preprocess_spec *p)
{
    if (!cJSON_IsBool(v)) return -1;
    p->exif_orient = cJSON_IsTrue(v);
    return 0;
}

#define STR_(x) #x
#define STR(x) STR_(x)

static const struct {
    const char *key;
    unsigned bit;
    key_fn apply;
    const char *must; /* what the value must be, for the message */
} keys[] = {
    {"resize_mode", PRE_MODE, key_mode, "\"shorter_crop\" or \"direct\""},
    {"resize", PRE_RESIZE, key_resize, "an integer in [1, " STR(PREPROCESS_MAX_SIDE) "]"},
    {"crop", PRE_CROP, key_crop, "an integer in [1, " STR(PREPROCESS_MAX_SIDE) "]"},
    {"channel_order", PRE_ORDER, key_order, "\"RGB\" or \"BGR\""},
    {"mean", PRE_MEAN, key_mean, "3 finite numbers"},
    {"std", PRE_STD, key_std, "3 finite positive numbers"},
    {"exif_orient", PRE_EXIF, key_exif, "true or false"},
};
#define NKEYS (sizeof keys / sizeof keys[0])

void preprocess_defaults(preprocess_spec *p, int input_size)
{
    *p = (preprocess_spec){RESIZE_SHORTER_CROP,      256, 224, 0, {0.485f, 0.456f, 0.406f},
                           {0.229f, 0.224f, 0.225f}, 1};
    p->crop = input_size;
    if (p->resize < p->crop) p->resize = p->crop;
}

int preprocess_parse(const cJSON *o, preprocess_spec *p, unsigned *set, const char *where,
                     char *err, size_t errlen)
{
    unsigned seen = 0;
    const cJSON *it;
    if (!cJSON_IsObject(o)) {
        snprintf(err, errlen, "%s must be a JSON object", where);
        return -1;
    }
    cJSON_ArrayForEach(it, o)
    {
        size_t k = 0;
        while (k < NKEYS && strcmp(keys[k].key, it->string)) k++;
        if (k == NKEYS) {
            snprintf(err, errlen,
                     "%s.%.40s: unknown key (resize_mode, resize, crop, channel_order, mean, std, "
                     "exif_orient)",
                     where, it->string);
            return -1;
        }
        if (seen & keys[k].bit) {
            snprintf(err, errlen, "%s.%s: given twice", where, keys[k].key);
            return -1;
        }
        if (keys[k].apply(it, p)) {
            snprintf(err, errlen, "%s.%s must be %s", where, keys[k].key, keys[k].must);
            return -1;
        }
        seen |= keys[k].bit;
    }
    if (set) *set |= seen;
    return 0;
}

int preprocess_parse_text(const char *text, size_t n, preprocess_spec *p, unsigned *set,
                          const char *where, char *err, size_t errlen)
{
    cJSON *o = cJSON_ParseWithLength(text, n);
    int rc = preprocess_parse(o, p, set, where, err, errlen);
    cJSON_Delete(o);
    return rc;
}

void preprocess_apply(preprocess_spec *dst, const preprocess_spec *src, unsigned set)
{
    if (set & PRE_MODE) dst->mode = src->mode;
    if (set & PRE_RESIZE) dst->resize = src->resize;
    if (set & PRE_CROP) dst->crop = src->crop;
    if (set & PRE_ORDER) dst->bgr = src->bgr;
    if (set & PRE_MEAN) memcpy(dst->mean, src->mean, sizeof dst->mean);
    if (set & PRE_STD) memcpy(dst->std, src->std, sizeof dst->std);
    if (set & PRE_EXIF) dst->exif_orient = src->exif_orient;
}

int preprocess_check(const preprocess_spec *p, const char *where, char *err, size_t errlen)
{
    if (p->mode == RESIZE_SHORTER_CROP && p->resize < p->crop) {
        snprintf(err, errlen, "%s: resize %d is smaller than crop %d", where, p->resize, p->crop);
        return -1;
    }
    return 0;
}

int preprocess_from_model(const char *metadata, int input_size, preprocess_spec *p, char *err,
                          size_t errlen)
{
    static const char where[] = "metadata preprocess";
    preprocess_defaults(p, input_size);
    if (metadata && preprocess_parse_text(metadata, strlen(metadata), p, NULL, where, err, errlen))
        return -1;
    return preprocess_check(p, where, err, errlen);
}
