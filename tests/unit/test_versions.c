/* test_versions.c - version policies (server/versions.h) parsed at their edges, and resolved
 * against a temporary directory: which folders count as versions, latest N past the number on
 * disk, more versions on disk than one model serves, specific ones missing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/versions.h"
#include "tests/unit/testutil.h"

static void test_policy_parse(void **state)
{
    (void)state;
    version_policy p;
    char err[256];
    assert_int_equal(versions_policy_parse("", &p, err, sizeof err), 0);
    assert_int_equal(p.kind, VPOL_LATEST);
    assert_int_equal(p.n, 1);
    assert_int_equal(versions_policy_parse("latest:16", &p, err, sizeof err), 0);
    assert_int_equal(p.n, 16);
    assert_int_equal(versions_policy_parse("all", &p, err, sizeof err), 0);
    assert_int_equal(p.kind, VPOL_ALL);
    assert_int_equal(versions_policy_parse("specific:3,1,3", &p, err, sizeof err), 0);
    assert_int_equal(p.kind, VPOL_SPECIFIC);
    assert_int_equal(p.nlist, 3);
    assert_int_equal(p.list[0], 3);
    assert_int_equal(p.list[1], 1);
    static const char *const bad[] = {"latest:0",  "latest:17",  "latest:",       "latest:1x",
                                      "specific:", "specific:0", "specific:1,,2", "specific:-1",
                                      "All",       "newest",     "latest"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        assert_int_equal(versions_policy_parse(bad[i], &p, err, sizeof err), -1);
        assert_non_null(strstr(err, "version_policy"));
    }
}

static void put(const char *root, const char *sub, int with_file)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, sub);
    assert_int_equal(mkdir(p, 0700), 0);
    if (!with_file) return;
    snprintf(p, sizeof p, "%s/%s/%s", root, sub, VERSIONS_FILE);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fclose(f);
}

static int resolve(const char *root, const char *policy, long long *out, int *n)
{
    version_policy p;
    char err[512];
    assert_int_equal(versions_policy_parse(policy, &p, err, sizeof err), 0);
    return versions_resolve(root, &p, out, n, err, sizeof err);
}

static void test_resolve(void **state)
{
    (void)state;
    char root[] = "/tmp/xbn_test_versions_XXXXXX";
    assert_non_null(mkdtemp(root));
    long long v[VERSIONS_MAX];
    int n;
    assert_int_equal(resolve(root, "all", v, &n), -1); /* no version yet */
    assert_int_equal(n, 0);
    put(root, "2", 1);
    put(root, "10", 1);
    put(root, "9", 0);  /* no model file */
    put(root, "07", 1); /* leading zero */
    put(root, "x1", 1); /* not a number */
    put(root, "0", 1);  /* not positive */
    assert_int_equal(resolve(root, "", v, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0], 10);
    assert_int_equal(resolve(root, "latest:5", v, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(v[0], 2);
    assert_int_equal(v[1], 10);
    assert_int_equal(resolve(root, "specific:10,2", v, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(v[0], 2);
    assert_int_equal(resolve(root, "specific:2,9", v, &n), -1);
    /* more on disk than one model serves: the highest VERSIONS_MAX */
    for (int i = 100; i < 100 + VERSIONS_MAX + 3; i++) {
        char s[16];
        snprintf(s, sizeof s, "%d", i);
        put(root, s, 1);
    }
    assert_int_equal(resolve(root, "all", v, &n), 0);
    assert_int_equal(n, VERSIONS_MAX);
    for (int i = 0; i < VERSIONS_MAX; i++) assert_int_equal(v[i], 103 + i);
    assert_int_equal(resolve(root, "latest:2", v, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(v[1], 100 + VERSIONS_MAX + 2);
    char f[600];
    assert_int_equal(versions_file(root, 2, f, sizeof f), 0);
    assert_non_null(strstr(f, "/2/" VERSIONS_FILE));
    /* a plain file: version 1 whatever the policy, and itself */
    snprintf(f, sizeof f, "%s/2/%s", root, VERSIONS_FILE);
    assert_int_equal(resolve(f, "latest:3", v, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0], 1);
    char g[600];
    assert_int_equal(versions_file(f, 1, g, sizeof g), 0);
    assert_string_equal(f, g);
    char cmd[640];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_parse),
        cmocka_unit_test(test_resolve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
