/* test_parsers.c - the request-body parsers: base64, multipart, v1 JSON, V2 infer, and the
 * response builders (float round trip, top-k order, JSON escaping). */
#include <string.h>

#include "server/api/b64.h"
#include "server/api/json_scan.h"
#include "server/api/multipart.h"
#include "server/sbuf.h"
#include "tests/unit/testutil.h"
#include "server/api/v1.h"
#include "server/api/v2.h"

static void test_b64(void **state)
{
    (void)state;
    unsigned char out[64];
    size_t n;
    assert_int_equal(b64_decode("aGVsbG8=", 8, out, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "hello", 5);
    assert_int_equal(b64_decode("aGVs\nbG8", 8, out, &n), 0); /* no padding, whitespace */
    assert_int_equal(n, 5);
    assert_int_equal(b64_decode("_-8=", 4, out, &n), 0); /* URL-safe */
    assert_int_equal(b64_decode("a", 1, out, &n), -1);
    assert_int_equal(b64_decode("aGVsbG8=x", 9, out, &n), -1);
    assert_int_equal(b64_decode("a$==", 4, out, &n), -1);
    assert_int_equal(b64_decode("", 0, out, &n), 0);
    assert_int_equal(n, 0);
}

#define CT "multipart/form-data; boundary=XyZ"

static void test_multipart(void **state)
{
    (void)state;
    static const char body[] = "preamble\r\n--XyZ\r\n"
                               "Content-Disposition: form-data; name=\"top_k\"\r\n\r\n3\r\n"
                               "--XyZ\r\nContent-Disposition: form-data; name=\"a\"; "
                               "filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
                               "AAA\r\nBB\r\n--XyZ\r\nContent-Type: image/png\r\n\r\n"
                               "PNGDATA\r\n--XyZ--\r\nepilogue";
    blob *p;
    int n;
    long k;
    char err[128];
    assert_int_equal(multipart_parse(CT, (const unsigned char *)body, sizeof body - 1, 8, &p, &n,
                                     &k, err, sizeof err),
                     PARSE_OK);
    assert_int_equal(n, 2);
    assert_int_equal(k, 3);
    assert_int_equal(p[0].len, 7);
    assert_memory_equal(p[0].data, "AAA\r\nBB", 7);
    assert_memory_equal(p[1].data, "PNGDATA", 7);
    blobs_free(p, n);
    assert_int_equal(multipart_parse(CT, (const unsigned char *)body, sizeof body - 1, 1, &p, &n,
                                     &k, err, sizeof err),
                     PARSE_ETOOMANY);
    static const char unterminated[] = "--XyZ\r\n\r\nabc";
    assert_int_equal(multipart_parse(CT, (const unsigned char *)unterminated,
                                     sizeof unterminated - 1, 8, &p, &n, &k, err, sizeof err),
                     PARSE_EINVAL);
    assert_int_equal(multipart_parse("multipart/form-data", (const unsigned char *)body,
                                     sizeof body - 1, 8, &p, &n, &k, err, sizeof err),
                     PARSE_EINVAL);
    char bnd[80];
    assert_int_equal(
        multipart_boundary("multipart/form-data; charset=x; boundary=\"a b\"", bnd, sizeof bnd), 0);
    assert_string_equal(bnd, "a b");
    static const char empty[] = "--XyZ--\r\n";
    assert_int_equal(multipart_parse(CT, (const unsigned char *)empty, sizeof empty - 1, 8, &p, &n,
                                     &k, err, sizeof err),
                     PARSE_EINVAL);
}

static void test_v1_json(void **state)
{
    (void)state;
    blob *b;
    int n;
    long k;
    char err[128];
    const char *ok = "{\"instances\":[{\"b64\":\"aGVsbG8=\"},{\"img\":{\"b64\":\"AQID\"}}],"
                     "\"top_k\":2}";
    assert_int_equal(v1_parse_json(ok, strlen(ok), 4, &b, &n, &k, err, sizeof err), PARSE_OK);
    assert_int_equal(n, 2);
    assert_int_equal(k, 2);
    assert_memory_equal(b[0].data, "hello", 5);
    assert_int_equal(b[1].len, 3);
    blobs_free(b, n);
    assert_int_equal(v1_parse_json(ok, strlen(ok), 1, &b, &n, &k, err, sizeof err), PARSE_ETOOMANY);
    const char *bad[] = {"{",
                         "[]",
                         "{\"instances\":[]}",
                         "{\"instances\":[{\"b64\":1}]}",
                         "{\"instances\":[{\"b64\":\"@\"}]}",
                         "{\"instances\":[{\"b64\":\"AA==\"}],\"top_k\":-1}",
                         "{\"instances\":[{\"b64\":\"AA==\"}],\"top_k\":1.5}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(v1_parse_json(bad[i], strlen(bad[i]), 4, &b, &n, &k, err, sizeof err),
                         PARSE_EINVAL);
}

static void test_v1_format(void **state)
{
    (void)state;
    const float probs[4] = {0.1f, 0.4f, 0.4f, 0.1000000015f};
    const char *labels[4] = {"a\"q", "b", "c", "d"};
    int idx[4];
    assert_int_equal(v1_top_k(probs, 4, 2, idx), 2);
    assert_int_equal(idx[0], 1); /* ties: lower index first */
    assert_int_equal(idx[1], 2);
    assert_int_equal(v1_top_k(probs, 4, 0, idx), 4);
    assert_int_equal(v1_top_k(probs, 4, 99, idx), 4);
    sbuf b;
    sbuf_init(&b, 1 << 16);
    assert_int_equal(v1_format(&b, "m", 1, labels, 4, probs, 1, 0), 0);
    assert_non_null(strstr(b.p, "\"label\":\"a\\\"q\""));
    /* %.9g gives back the exact float */
    const char *s = strstr(b.p, "\"index\":3,\"label\":\"d\",\"score\":");
    assert_non_null(s);
    float back = strtof(s + strlen("\"index\":3,\"label\":\"d\",\"score\":"), NULL);
    assert_true(back == probs[3]);
    sbuf_free(&b);
    sbuf_init(&b, 10); /* the cap holds */
    assert_int_not_equal(v1_format(&b, "m", 0, NULL, 4, probs, 1, 0), 0);
    sbuf_free(&b);
}

static void test_v2(void **state)
{
    (void)state;
    v2_infer r;
    char err[160];
    const char *fp = "{\"id\":\"x\",\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
                     "\"shape\":[1,3,2,2],\"data\":[[1,2,3,4],[5,6,7,8],[9,10,11,12]]}],"
                     "\"outputs\":[{\"name\":\"logits\"}]}";
    assert_int_equal(v2_parse_infer(fp, strlen(fp), strlen(fp), 2, 2, 4, &r, err, sizeof err),
                     PARSE_OK);
    assert_int_equal(r.kind, V2_FP32);
    assert_int_equal(r.n, 1);
    assert_true(r.fp32[11] == 12.0f);
    assert_string_equal(r.id, "x");
    assert_true(r.nouts == 1 && r.outs[0].which == V2_LOGITS);
    sbuf b, bin;
    sbuf_init(&b, 4096);
    sbuf_init(&bin, 4096);
    float logits[2] = {1.5f, -2}, probs[2] = {0.9f, 0.1f};
    r.n = 1;
    assert_int_equal(v2_format_infer(&b, &bin, "m", &r, logits, probs, 2, NULL), 0);
    assert_int_equal(bin.len, 0);
    assert_non_null(strstr(b.p, "\"name\":\"logits\",\"datatype\":\"FP32\",\"shape\":[1,2],"
                                "\"data\":[1.5,-2]"));
    sbuf_free(&b);
    sbuf_free(&bin);
    v2_infer_free(&r);
    const char *by = "{\"inputs\":[{\"name\":\"image\",\"datatype\":\"BYTES\",\"shape\":[2],"
                     "\"data\":[\"aGVsbG8=\",{\"b64\":\"AQID\"}]}]}";
    assert_int_equal(v2_parse_infer(by, strlen(by), strlen(by), 2, 2, 4, &r, err, sizeof err),
                     PARSE_OK);
    assert_int_equal(r.kind, V2_BYTES);
    assert_int_equal(r.n, 2);
    assert_memory_equal(r.imgs[0].data, "hello", 5);
    assert_true(r.nouts == 1 && r.outs[0].which == V2_PROBS);
    v2_infer_free(&r);
    const char *bad[] = {
        "{}",
        "{\"inputs\":[]}",
        "{\"inputs\":[{\"datatype\":\"FP32\",\"shape\":[1,3,2,2],\"data\":[1]}]}",
        "{\"inputs\":[{\"datatype\":\"FP32\",\"shape\":[1,3,3,3],\"data\":[]}]}",
        "{\"inputs\":[{\"datatype\":\"INT8\",\"shape\":[1],\"data\":[1]}]}",
        "{\"inputs\":[{\"datatype\":\"BYTES\",\"shape\":[2],\"data\":[\"AA==\"]}]}",
        "{\"inputs\":[{\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"@@\"]}]}",
        ("{\"inputs\":[{\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"AA==\"]}],"
         "\"outputs\":[{\"name\":\"nope\"}]}"),
        "{\"inputs\":[{\"datatype\":\"FP32\",\"shape\":[0,3,2,2],\"data\":[]}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st =
            v2_parse_infer(bad[i], strlen(bad[i]), strlen(bad[i]), 2, 2, 4, &r, err, sizeof err);
        if (st != PARSE_EINVAL) fail_msg("case %zu: status %d", i, st);
        v2_infer_free(&r);
    }
    const char *many = "{\"inputs\":[{\"datatype\":\"BYTES\",\"shape\":[9],\"data\":[]}]}";
    assert_int_equal(v2_parse_infer(many, strlen(many), strlen(many), 2, 2, 4, &r, err, sizeof err),
                     PARSE_ETOOMANY);
}

/* The binary tensor extension: a JSON header of json_len bytes, then the inputs' bytes; and
 * binary and classification outputs. */
static void test_v2_binary(void **state)
{
    (void)state;
    v2_infer r;
    char err[200], body[512];
    const char *j = "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,3,1,1],"
                    "\"parameters\":{\"binary_data_size\":12}}],\"outputs\":[{\"name\":"
                    "\"probabilities\",\"parameters\":{\"classification\":2,\"binary_data\":true}},"
                    "{\"name\":\"logits\"}]}";
    size_t jl = strlen(j);
    const unsigned char f[12] = {0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0xc0}; /* 1 2 -3 */
    memcpy(body, j, jl);
    memcpy(body + jl, f, 12);
    assert_int_equal(v2_parse_infer(body, jl + 12, jl, 1, 3, 4, &r, err, sizeof err), PARSE_OK);
    assert_true(r.fp32[0] == 1.0f && r.fp32[1] == 2.0f && r.fp32[2] == -3.0f);
    assert_int_equal(r.nouts, 2);
    assert_true(r.outs[0].binary && r.outs[0].classification == 2 && !r.outs[1].binary);
    assert_true(v2_has_binary(&r));
    sbuf b, bin;
    sbuf_init(&b, 4096);
    sbuf_init(&bin, 4096);
    float logits[3] = {1, 2, -3}, probs[3] = {0.25f, 0.5f, 0.25f};
    const char *labels[3] = {"cat", "dog", "eel"};
    assert_int_equal(v2_format_infer(&b, &bin, "m", &r, logits, probs, 3, labels), 0);
    assert_non_null(strstr(b.p,
                           "{\"name\":\"probabilities\",\"datatype\":\"BYTES\",\"shape\":[1,2],"
                           "\"parameters\":{\"binary_data_size\":36}}"));
    assert_int_equal(bin.len, 36);
    assert_memory_equal(bin.p,
                        "\x0e\0\0\0"
                        "0.500000:1:dog"
                        "\x0e\0\0\0"
                        "0.250000:0:cat",
                        36);
    sbuf_free(&b);
    sbuf_free(&bin);
    v2_infer_free(&r);
    /* BYTES: two elements, each a 4-byte little-endian length and its bytes */
    j = "{\"inputs\":[{\"name\":\"image\",\"datatype\":\"BYTES\",\"shape\":[2],"
        "\"parameters\":{\"binary_data_size\":13}}]}";
    jl = strlen(j);
    memcpy(body, j, jl);
    memcpy(body + jl, "\x02\0\0\0hi\x03\0\0\0abc", 13);
    assert_int_equal(v2_parse_infer(body, jl + 13, jl, 1, 3, 4, &r, err, sizeof err), PARSE_OK);
    assert_int_equal(r.imgs[1].len, 3);
    assert_memory_equal(r.imgs[1].data, "abc", 3);
    v2_infer_free(&r);
    size_t cut[] = {jl + 12, jl + 14}; /* element cut short; a byte past the last element */
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(v2_parse_infer(body, cut[i], jl, 1, 3, 4, &r, err, sizeof err),
                         PARSE_EINVAL);
        assert_non_null(strstr(err, "binary_data_size"));
    }
    const char *bad[] = {
        "{\"parameters\":{\"priority\":1},\"inputs\":[]}",
        ("{\"inputs\":[{\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"AA==\"],"
         "\"parameters\":{\"foo\":1}}]}"),
        ("{\"inputs\":[{\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"AA==\"]}],"
         "\"outputs\":[{\"name\":\"logits\",\"parameters\":{\"classification\":4}}]}"),
        ("{\"inputs\":[{\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"AA==\"]}],"
         "\"outputs\":[{\"name\":\"logits\"},{\"name\":\"logits\"}]}"),
        ("{\"inputs\":[{\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"AA==\"],"
         "\"parameters\":{\"binary_data_size\":0}}]}"),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st =
            v2_parse_infer(bad[i], strlen(bad[i]), strlen(bad[i]), 1, 3, 4, &r, err, sizeof err);
        if (st != PARSE_EINVAL) fail_msg("case %zu: status %d", i, st);
        v2_infer_free(&r);
    }
}

static void test_json_scan(void **state)
{
    (void)state;
    json_scan_result r;
    const char *v2 = "{\"id\":\"x\",\"inputs\":[{\"name\":\"in\",\"data\":[1, [2,3]] ,"
                     "\"shape\":[1]}],\"outputs\":[{\"data\":[9]}],\"data\":[8]}";
    assert_int_equal(json_scan(v2, strlen(v2), "inputs", "data", &r), 0);
    assert_true(r.found);
    assert_int_equal(r.hi - r.lo, strlen("[1, [2,3]]"));
    assert_memory_equal(v2 + r.lo, "[1, [2,3]]", r.hi - r.lo);
    /* root, "x", inputs, {}, "in", shape, 1, outputs, {}, [9], 9, [8], 8 */
    assert_int_equal(r.values, 13);
    assert_int_equal(json_scan(v2, strlen(v2), NULL, NULL, &r), 0);
    assert_true(!r.found && r.values == 18);
    /* brackets and quotes inside strings; a scalar value; an escaped key does not match */
    const char *q = "{\"inputs\":[{\"name\":\"a\\\"]}[\",\"data\":\"x\"}]}";
    assert_int_equal(json_scan(q, strlen(q), "inputs", "data", &r), 0);
    assert_true(r.found);
    assert_memory_equal(q + r.lo, "\"x\"", 3);
    const char *esc = "{\"inputs\":[{\"d\\u0061ta\":[1,2,3]}]}";
    assert_int_equal(json_scan(esc, strlen(esc), "inputs", "data", &r), 0);
    assert_true(!r.found && r.values == 7);
    const char *bad[] = {"{\"a\":[}", "[1,2", "\"abc", "]", "{\"inputs\":[{\"data\":[1,2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (json_scan(bad[i], strlen(bad[i]), "inputs", "data", &r) != -1) fail_msg("case %zu", i);
    char deep[200];
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    assert_int_equal(json_scan(deep, 130, NULL, NULL, &r), -1);
    assert_int_equal(json_scan(deep + 1, 128, NULL, NULL, &r), 0);
}

static void test_json_numbers(void **state)
{
    (void)state;
    float f[8];
    size_t n;
    const char *ok = " [[1.5e-3, -0],[ 3.4028235e38 ,2E+2, 0.1], [], 7] ";
    assert_int_equal(json_numbers(ok, strlen(ok), 8, f, 8, &n), 0);
    assert_int_equal(n, 6);
    const float want[6] = {1.5e-3f, -0.0f, 3.4028235e38f, 200.0f, 0.1f, 7.0f};
    for (int i = 0; i < 6; i++) assert_true(f[i] == want[i]);
    const char *bad[] = {"[1,]",  "[01]",    "[1 2]",  "[-]",   "[1.]", "[.5]",
                         "[1e]",  "[\"1\"]", "[true]", "[1] x", "1",    "[[1]",
                         "[NaN]", "[+1]",    "",       "[1]]",  "{}",   "[1,2,3,4,5,6,7,8,9]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (json_numbers(bad[i], strlen(bad[i]), 8, f, 8, &n) != -1) fail_msg("case %zu", i);
    assert_int_equal(json_numbers("[[[1]]]", 7, 2, f, 8, &n), -1); /* deeper than allowed */
    assert_int_equal(json_numbers("[[[1]]]", 7, 3, f, 8, &n), 0);
}

/* cJSON never sees more values than the images need: a body of many small numbers is
 * refused before it would cost ~80 bytes of tree per value. */
static void test_json_value_bound(void **state)
{
    (void)state;
    size_t many = 200000;
    char *body = malloc(64 + 2 * many), err[160];
    for (int kind = 0; kind < 3; kind++) {
        const char *head = kind == 0   ? "{\"instances\":["
                           : kind == 1 ? "{\"parameters\":{\"x\":["
                                       : "{\"inputs\":[{\"d\\u0061ta\":[";
        size_t k = strlen(head);
        memcpy(body, head, k);
        for (size_t i = 0; i < many; i++) body[k++] = '0', body[k++] = ',';
        const char *tail = kind == 0 ? "0]}" : kind == 1 ? "0]}}" : "0]}]}";
        memcpy(body + k, tail, strlen(tail));
        k += strlen(tail);
        int st;
        if (kind == 0) {
            blob *b;
            int n;
            long tk;
            st = v1_parse_json(body, k, 4, &b, &n, &tk, err, sizeof err);
        } else {
            v2_infer r;
            st = v2_parse_infer(body, k, k, 2, 2, 4, &r, err, sizeof err);
        }
        if (st != PARSE_ETOOMANY) fail_msg("kind %d: status %d (%s)", kind, st, err);
    }
    free(body);
}

static void test_sbuf(void **state)
{
    (void)state;
    sbuf b;
    sbuf_init(&b, 1 << 20);
    sbuf_json_str(&b, "a\nb\x01\\");
    assert_string_equal(b.p, "\"a\\u000ab\\u0001\\\\\"");
    for (int i = 0; i < 1000; i++) sbuf_printf(&b, "%0300d", i);
    assert_int_equal(b.err, 0);
    /* valid UTF-8 passes; a stray continuation, an overlong form, a surrogate and a cut
     * sequence each become U+FFFD per byte */
    sbuf u;
    sbuf_init(&u, 4096);
    sbuf_json_str(&u, "\xc3\xa9\xf0\x9f\x98\x80|\x80|\xc0\xaf|\xed\xa0\x80|\xe2\x82");
    assert_string_equal(u.p, "\"\xc3\xa9\xf0\x9f\x98\x80|\\ufffd|\\ufffd\\ufffd|"
                             "\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd\"");
    sbuf_free(&u);
    size_t len;
    char *p = sbuf_take(&b, &len);
    assert_non_null(p);
    assert_int_equal(len, 18 + 300000);
    free(p);
    sbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64),
        cmocka_unit_test(test_multipart),
        cmocka_unit_test(test_v1_json),
        cmocka_unit_test(test_v1_format),
        cmocka_unit_test(test_v2),
        cmocka_unit_test(test_v2_binary),
        cmocka_unit_test(test_json_scan),
        cmocka_unit_test(test_json_numbers),
        cmocka_unit_test(test_json_value_bound),
        cmocka_unit_test(test_sbuf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
