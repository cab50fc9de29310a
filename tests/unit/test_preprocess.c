/* test_preprocess.c - the preprocess spec's one parser (image/preprocess.h): defaults, keys
 * applied one by one, each key's range at its thresholds, unknown and repeated keys, the
 * model file's cross-key rule, and the messages naming the key. */
#include <string.h>

#include "image/limits.h"
#include "image/preprocess.h"
#include "tests/unit/testutil.h"

#define ERR_MAX 256

static const preprocess_spec torch224 = {
    RESIZE_SHORTER_CROP, 256, 224, 0, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}, 1};

static void assert_spec_equal(const preprocess_spec *a, const preprocess_spec *b)
{
    assert_int_equal(a->mode, b->mode);
    assert_int_equal(a->resize, b->resize);
    assert_int_equal(a->crop, b->crop);
    assert_int_equal(a->bgr, b->bgr);
    assert_memory_equal(a->mean, b->mean, sizeof a->mean);
    assert_memory_equal(a->std, b->std, sizeof a->std);
    assert_int_equal(a->exif_orient, b->exif_orient);
}

/* Parse `json` over the torch 224 defaults; 0 or -1, the spec, the bits and the message. */
static int parse(const char *json, preprocess_spec *p, unsigned *set, char *err)
{
    *p = torch224;
    *set = 0;
    err[0] = 0;
    return preprocess_parse_text(json, strlen(json), p, set, "m.preprocess", err, ERR_MAX);
}

static void expect_error(const char *json, const char *msg)
{
    preprocess_spec p;
    unsigned set;
    char err[ERR_MAX];
    assert_int_equal(parse(json, &p, &set, err), -1);
    assert_int_equal(set, 0); /* nothing reported as set by a failed parse */
    if (!strstr(err, msg)) fail_msg("%s: error '%s' does not say '%s'", json, err, msg);
}

static void test_defaults(void **state)
{
    (void)state;
    preprocess_spec p, want = torch224;
    preprocess_defaults(&p, 224);
    assert_spec_equal(&p, &want);
    preprocess_defaults(&p, 32); /* shorter side still 256 */
    want.crop = 32;
    assert_spec_equal(&p, &want);
    preprocess_defaults(&p, 300); /* never a resize below the crop */
    want.resize = want.crop = 300;
    assert_spec_equal(&p, &want);
}

static void test_only_present_keys(void **state)
{
    (void)state;
    preprocess_spec p, want = torch224;
    unsigned set;
    char err[ERR_MAX];
    assert_int_equal(parse("{\"crop\": 192, \"channel_order\": \"BGR\"}", &p, &set, err), 0);
    want.crop = 192;
    want.bgr = 1;
    assert_spec_equal(&p, &want);
    assert_int_equal(set, PRE_CROP | PRE_ORDER);
    assert_int_equal(parse("{}", &p, &set, err), 0);
    assert_spec_equal(&p, &torch224);
    assert_int_equal(set, 0);
}

static void test_every_key(void **state)
{
    (void)state;
    /* tools/xbnmodels.py's keras ResNet50 spec ("caffe"), as the tools write it */
    const char *json = "{\"resize_mode\": \"direct\", \"resize\": 300, \"crop\": 300, "
                       "\"channel_order\": \"BGR\", \"mean\": [0.40760392156862744, "
                       "0.45796470588235294, 0.48501960784313725], \"std\": [0.00392156862745098, "
                       "0.00392156862745098, 0.00392156862745098], \"exif_orient\": false}";
    preprocess_spec p;
    unsigned set;
    char err[ERR_MAX];
    assert_int_equal(parse(json, &p, &set, err), 0);
    preprocess_spec want = {
        RESIZE_DIRECT,
        300,
        300,
        1,
        {(float)0.40760392156862744, (float)0.45796470588235294, (float)0.48501960784313725},
        {(float)0.00392156862745098, (float)0.00392156862745098, (float)0.00392156862745098},
        0};
    assert_spec_equal(&p, &want);
    assert_int_equal(set,
                     PRE_MODE | PRE_RESIZE | PRE_CROP | PRE_ORDER | PRE_MEAN | PRE_STD | PRE_EXIF);
    /* a second parse applies over the first, keeping what it does not name */
    const char *over = "{\"resize_mode\": \"shorter_crop\", \"resize\": 320}";
    assert_int_equal(preprocess_parse_text(over, strlen(over), &p, &set, "x", err, sizeof err), 0);
    assert_int_equal(p.mode, RESIZE_SHORTER_CROP);
    assert_int_equal(p.resize, 320);
    assert_int_equal(p.crop, 300);
}

static void test_sides_at_thresholds(void **state)
{
    (void)state;
    preprocess_spec p;
    unsigned set;
    char err[ERR_MAX];
    assert_int_equal(parse("{\"crop\": 1, \"resize\": 4096}", &p, &set, err), 0);
    assert_int_equal(p.crop, 1);
    assert_int_equal(p.resize, PREPROCESS_MAX_SIDE);
    const char *msg = "m.preprocess.crop must be an integer in [1, 4096]";
    expect_error("{\"crop\": 0}", msg);
    expect_error("{\"crop\": 4097}", msg);
    expect_error("{\"crop\": -224}", msg);
    expect_error("{\"crop\": 224.5}", msg);
    expect_error("{\"crop\": \"224\"}", msg);
    expect_error("{\"crop\": 1e300}", msg);
    expect_error("{\"resize\": 4097}", "m.preprocess.resize must be an integer in [1, 4096]");
}

static void test_values(void **state)
{
    (void)state;
    preprocess_spec p;
    unsigned set;
    char err[ERR_MAX];
    assert_int_equal(parse("{\"std\": [1e-30, 1, 2], \"mean\": [-5, 0, 1e30]}", &p, &set, err), 0);
    assert_true(p.std[0] == 1e-30f && p.mean[0] == -5 && p.mean[2] == 1e30f);
    const char *mean = "m.preprocess.mean must be 3 finite numbers";
    expect_error("{\"mean\": [0.5, 0.5]}", mean);
    expect_error("{\"mean\": [0.5, 0.5, 0.5, 0.5]}", mean);
    expect_error("{\"mean\": [0.5, \"0.5\", 0.5]}", mean);
    expect_error("{\"mean\": [0.5, 1e999, 0.5]}", mean); /* cJSON reads it as inf */
    expect_error("{\"mean\": 0.5}", mean);
    const char *std = "m.preprocess.std must be 3 finite positive numbers";
    expect_error("{\"std\": [0.5, 0, 0.5]}", std);
    expect_error("{\"std\": [0.5, -0.5, 0.5]}", std);
    expect_error("{\"std\": [0.5, 1e-50, 0.5]}", std); /* 0 as a float */
    expect_error("{\"std\": [0.5, 0.5, -1e999]}", std);
    expect_error("{\"resize_mode\": \"crop\"}",
                 "m.preprocess.resize_mode must be \"shorter_crop\" or \"direct\"");
    expect_error("{\"resize_mode\": 1}", "resize_mode must be");
    expect_error("{\"channel_order\": \"rgb\"}",
                 "m.preprocess.channel_order must be \"RGB\" or \"BGR\"");
    expect_error("{\"exif_orient\": 1}", "m.preprocess.exif_orient must be true or false");
    assert_int_equal(parse("{\"exif_orient\": false}", &p, &set, err), 0);
    assert_int_equal(p.exif_orient, 0);
}

static void test_structure(void **state)
{
    (void)state;
    expect_error("{\"crop\": 224, \"crpo\": 224}", "m.preprocess.crpo: unknown key");
    expect_error("{\"crop\": 224, \"crop\": 192}", "m.preprocess.crop: given twice");
    expect_error("[1, 2]", "m.preprocess must be a JSON object");
    expect_error("{not json", "m.preprocess must be a JSON object");
    expect_error("", "m.preprocess must be a JSON object");
    char err[ERR_MAX];
    preprocess_spec p = torch224;
    assert_int_equal(preprocess_parse(NULL, &p, NULL, "w", err, sizeof err), -1);
    assert_string_equal(err, "w must be a JSON object");
}

static void test_apply(void **state)
{
    (void)state;
    preprocess_spec dst = torch224, src = {RESIZE_DIRECT, 9, 8, 1, {1, 2, 3}, {4, 5, 6}, 0};
    preprocess_apply(&dst, &src, 0);
    assert_spec_equal(&dst, &torch224);
    preprocess_apply(&dst, &src, PRE_CROP | PRE_STD);
    preprocess_spec want = torch224;
    want.crop = 8;
    memcpy(want.std, src.std, sizeof want.std);
    assert_spec_equal(&dst, &want);
    preprocess_apply(&dst, &src, PRE_MODE | PRE_RESIZE | PRE_ORDER | PRE_MEAN | PRE_EXIF);
    assert_spec_equal(&dst, &src);
}

static void test_model_rule(void **state)
{
    (void)state;
    preprocess_spec p;
    char err[ERR_MAX];
    assert_int_equal(preprocess_from_model(NULL, 224, &p, err, sizeof err), 0);
    assert_spec_equal(&p, &torch224);
    /* resize == crop passes, one below fails; direct mode has no such rule */
    assert_int_equal(preprocess_from_model("{\"resize\": 224}", 224, &p, err, sizeof err), 0);
    assert_int_equal(preprocess_from_model("{\"resize\": 223}", 224, &p, err, sizeof err), -1);
    assert_string_equal(err, "metadata preprocess: resize 223 is smaller than crop 224");
    assert_int_equal(preprocess_from_model("{\"resize\": 223, \"resize_mode\": \"direct\"}", 224,
                                           &p, err, sizeof err),
                     0);
    assert_int_equal(preprocess_from_model("{\"crop\": 0}", 224, &p, err, sizeof err), -1);
    assert_string_equal(err, "metadata preprocess.crop must be an integer in [1, 4096]");
    assert_int_equal(preprocess_from_model("{not json", 224, &p, err, sizeof err), -1);
    assert_string_equal(err, "metadata preprocess must be a JSON object");
    /* the rule is the model file's: a spec built by hand may pad */
    p = torch224;
    p.resize = 160;
    assert_int_equal(preprocess_check(&p, "x", err, sizeof err), -1);
    p.mode = RESIZE_DIRECT;
    assert_int_equal(preprocess_check(&p, "x", err, sizeof err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),  cmocka_unit_test(test_only_present_keys),
        cmocka_unit_test(test_every_key), cmocka_unit_test(test_sides_at_thresholds),
        cmocka_unit_test(test_values),    cmocka_unit_test(test_structure),
        cmocka_unit_test(test_apply),     cmocka_unit_test(test_model_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
