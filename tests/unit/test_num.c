/* test_num.c - the text number parser (server/num.h) at its thresholds: min, max, one past
 * each, overflow, trailing garbage, empty, leading space, hex, and NaN / inf for doubles. */
#include <limits.h>
#include <string.h>

#include "server/num.h"
#include "tests/unit/testutil.h"

/* 0 and the value, or -1 with *out untouched (checked with a sentinel). */
static int ll(const char *s, long long lo, long long hi, long long *v)
{
    *v = 12345;
    int r = num_parse_ll(s, lo, hi, v);
    if (r) assert_int_equal(*v, 12345);
    return r;
}

static void test_ll_range(void **state)
{
    (void)state;
    long long v;
    assert_int_equal(ll("1", 1, 65535, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(ll("65535", 1, 65535, &v), 0);
    assert_int_equal(v, 65535);
    assert_int_equal(ll("0", 1, 65535, &v), -1);
    assert_int_equal(ll("65536", 1, 65535, &v), -1);
    assert_int_equal(ll("-5", -5, 5, &v), 0);
    assert_int_equal(v, -5);
    assert_int_equal(ll("-6", -5, 5, &v), -1);
    assert_int_equal(ll("+5", -5, 5, &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(ll("007", 0, 10, &v), 0); /* decimal, not octal */
    assert_int_equal(v, 7);
}

static void test_ll_limits_and_overflow(void **state)
{
    (void)state;
    long long v;
    assert_int_equal(ll("9223372036854775807", LLONG_MIN, LLONG_MAX, &v), 0);
    assert_true(v == LLONG_MAX);
    assert_int_equal(ll("9223372036854775808", LLONG_MIN, LLONG_MAX, &v), -1);
    assert_int_equal(ll("-9223372036854775808", LLONG_MIN, LLONG_MAX, &v), 0);
    assert_true(v == LLONG_MIN);
    assert_int_equal(ll("-9223372036854775809", LLONG_MIN, LLONG_MAX, &v), -1);
    assert_int_equal(ll("99999999999999999999999", LLONG_MIN, LLONG_MAX, &v), -1);
    /* 2^32 + 1 does not wrap into a small value */
    assert_int_equal(ll("4294967297", 0, 100, &v), -1);
}

static void test_ll_syntax(void **state)
{
    (void)state;
    long long v;
    const char *bad[] = {"",   "+",    "-",   " 5",  "5 ",    "5\n", "\t5", "5x",
                         "x5", "0x10", "1e3", "1.0", "1,000", "--5", "+-5", "5-"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (ll(bad[i], LLONG_MIN, LLONG_MAX, &v) != -1) fail_msg("'%s' was accepted", bad[i]);
    /* bounded: only s[0..n) is read, and a NUL inside it is garbage */
    v = 0;
    assert_int_equal(num_parse_ll_n("123456", 3, 0, 1000, &v), 0);
    assert_int_equal(v, 123);
    assert_int_equal(num_parse_ll_n("12\0"
                                    "3",
                                    4, 0, 1000, &v),
                     -1);
    assert_int_equal(num_parse_ll_n("12", 0, 0, 1000, &v), -1);
}

static void test_int(void **state)
{
    (void)state;
    int v = 7;
    assert_int_equal(num_parse_int("2147483647", INT_MIN, INT_MAX, &v), 0);
    assert_int_equal(v, INT_MAX);
    assert_int_equal(num_parse_int("-2147483648", INT_MIN, INT_MAX, &v), 0);
    assert_int_equal(v, INT_MIN);
    v = 7;
    assert_int_equal(num_parse_int("2147483648", INT_MIN, INT_MAX, &v), -1);
    assert_int_equal(num_parse_int("-2147483649", INT_MIN, INT_MAX, &v), -1);
    assert_int_equal(v, 7);
}

static int dbl(const char *s, double lo, double hi, double *v)
{
    *v = 12345;
    int r = num_parse_double(s, lo, hi, v);
    if (r) assert_true(*v == 12345);
    return r;
}

static void test_double(void **state)
{
    (void)state;
    double v;
    assert_int_equal(dbl("0.01", 0.01, 3600, &v), 0);
    assert_true(v == 0.01);
    assert_int_equal(dbl("3600", 0.01, 3600, &v), 0);
    assert_true(v == 3600);
    assert_int_equal(dbl("0.0099999", 0.01, 3600, &v), -1);
    assert_int_equal(dbl("3600.0001", 0.01, 3600, &v), -1);
    /* the nearest double to the decimal text, as the compiler reads the same literal */
    const struct {
        const char *s;
        double want;
    } ok[] = {{"0.485", 0.485},
              {"-0.229", -0.229},
              {"+1.5", 1.5},
              {".5", .5},
              {"5.", 5.},
              {"1e3", 1e3},
              {"2.5E-3", 2.5E-3},
              {"1e+2", 1e+2},
              {"0.1", 0.1},
              {"123456789012345678", 123456789012345678.0},
              {"1.7976931348623157e308", 1.7976931348623157e308}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (dbl(ok[i].s, -HUGE_VAL, HUGE_VAL, &v)) fail_msg("'%s' was refused", ok[i].s);
        if (v != ok[i].want) fail_msg("'%s' read as %.17g", ok[i].s, v);
    }
}

static void test_double_refused(void **state)
{
    (void)state;
    double v;
    const char *bad[] = {"",       " 1",   "1 ",       "1\n", "1x",    "x",      ".",   "-",
                         "+.",     "e5",   "1e",       "1e+", "0x10",  "0x1p3",  "nan", "NAN",
                         "inf",    "-inf", "Infinity", "1,5", "1e400", "-1e400", /* overflow */
                         "1e-400",                                               /* underflow */
                         "1.2.3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (dbl(bad[i], -HUGE_VAL, HUGE_VAL, &v) != -1) fail_msg("'%s' was accepted", bad[i]);
    char longest[NUM_MAX_CHARS + 2];
    memset(longest, '0', sizeof longest);
    longest[NUM_MAX_CHARS] = 0;
    assert_int_equal(dbl(longest, 0, 1, &v), 0);
    assert_true(v == 0);
    longest[NUM_MAX_CHARS] = '0';
    longest[NUM_MAX_CHARS + 1] = 0;
    assert_int_equal(dbl(longest, 0, 1, &v), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ll_range),  cmocka_unit_test(test_ll_limits_and_overflow),
        cmocka_unit_test(test_ll_syntax), cmocka_unit_test(test_int),
        cmocka_unit_test(test_double),    cmocka_unit_test(test_double_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
