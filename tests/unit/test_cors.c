/* test_cors.c - cors_allow_origins: exact origin matching, the routes that take part, and
 * the setting's parsing from a file (JSON array), a flag and the environment. */
#include <string.h>

#include "server/config.h"
#include "server/cors.h"
#include "tests/unit/testutil.h"

static void test_origin_matching(void **state)
{
    (void)state;
    const char *list = "http://a.example,https://b.example:8443";
    assert_true(cors_origin_allowed(list, "http://a.example"));
    assert_true(cors_origin_allowed(list, "https://b.example:8443"));
    assert_false(cors_origin_allowed(list, "http://a.exampl"));      /* a prefix */
    assert_false(cors_origin_allowed(list, "http://a.example.com")); /* a longer one */
    assert_false(cors_origin_allowed(list, "https://b.example"));    /* another port */
    assert_false(cors_origin_allowed(list, "HTTP://A.EXAMPLE"));     /* bytes, not case */
    assert_false(cors_origin_allowed(list, ""));
    assert_false(cors_origin_allowed(list, NULL));
    assert_false(cors_origin_allowed("", "http://a.example"));
    assert_false(cors_origin_allowed(list, "http://a.example,https://b.example:8443"));
}

static void test_routes(void **state)
{
    (void)state;
    assert_true(cors_route("v1_predict"));
    assert_true(cors_route("v1_models"));
    assert_true(cors_route("v2_infer"));
    assert_false(cors_route("page"));
    assert_false(cors_route("healthz"));
    assert_false(cors_route("metrics"));
    assert_false(cors_route(NULL));
}

static void test_setting(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    config_defaults(&c);
    assert_string_equal(c.cors_allow_origins, "");
    assert_int_equal(c.ui, 1);
    static const char file[] =
        "{\"ui\": false, \"cors_allow_origins\": [\"http://a\", \"http://b:1\"]}";
    assert_int_equal(config_parse_json(file, sizeof file - 1, &c, err, sizeof err), 0);
    assert_string_equal(c.cors_allow_origins, "http://a,http://b:1");
    assert_int_equal(c.ui, 0);
    assert_int_equal(config_set(&c, -1, "cors_allow_origins", "http://c", err, sizeof err), 0);
    assert_string_equal(c.cors_allow_origins, "http://c");
    assert_int_equal(config_set(&c, -1, "cors_allow_origins", "", err, sizeof err), 0);
    assert_string_equal(c.cors_allow_origins, "");
    static const char *const bad_text[] = {"http://a, http://b", "http://a,", ",http://a",
                                           "http://a,,http://b"};
    for (size_t i = 0; i < sizeof bad_text / sizeof *bad_text; i++) {
        err[0] = 0;
        assert_int_not_equal(config_set(&c, -1, "cors_allow_origins", bad_text[i], err, sizeof err),
                             0);
        assert_non_null(strstr(err, "cors_allow_origins"));
    }
    static const char *const bad_json[] = {
        "{\"cors_allow_origins\": [\"\"]}", "{\"cors_allow_origins\": [\"a,b\"]}",
        "{\"cors_allow_origins\": [1]}", "{\"cors_allow_origins\": 1}"};
    for (size_t i = 0; i < sizeof bad_json / sizeof *bad_json; i++) {
        err[0] = 0;
        assert_int_not_equal(
            config_parse_json(bad_json[i], strlen(bad_json[i]), &c, err, sizeof err), 0);
        assert_non_null(strstr(err, "cors_allow_origins"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_origin_matching),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_setting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
