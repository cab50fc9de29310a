/* test_parsers.c - the request-body parsers: base64, multipart, v1 JSON, V2 infer, and the
 * response builders (float round trip, top-k order, JSON escaping); the .npy header. */
#include <string.h>

#include "cli/npy.h"
#include "server/api/b64.h"
#include "server/api/json_scan.h"
#include "server/api/multipart.h"
#include "server/sbuf.h"
#include "tests/unit/testutil.h"
#include "server/api/v1.h"
#include "server/api/v2.h"

/* An independent encoder (RFC 4648 section 4, standard alphabet, padded). */
static size_t ref_b64_encode(const unsigned char *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n) v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = a[v >> 18 & 63];
        out[o++] = a[v >> 12 & 63];
        out[o++] = i + 1 < n ? a[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? a[v & 63] : '=';
    }
    out[o] = 0;
    return o;
}

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
    assert_int_equal(n, 2);
    assert_memory_equal(out, "\xff\xef", 2);
    assert_int_equal(b64_decode("a", 1, out, &n), -1);
    assert_int_equal(b64_decode("aGVsbG8=x", 9, out, &n), -1);
    assert_int_equal(b64_decode("a$==", 4, out, &n), -1);
    assert_int_equal(b64_decode("", 0, out, &n), 0);
    assert_int_equal(n, 0);
}

/* The padding rule (b64.h): optional, and when present exactly the '=' that complete the
 * last quad. Each valid case decodes to the given bytes; each invalid one is refused. */
static void test_b64_padding(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int len; /* decoded bytes */
        const char *bytes;
    } ok[] = {
        {"AA==", 1, "\0"},
        {"AA", 1, "\0"},
        {"AAA=", 2, "\0\0"},
        {"AAA", 2, "\0\0"},
        {"AAAA", 3, "\0\0\0"},
        {"aGVsbA==", 4, "hell"},
        {"aGVsbA", 4, "hell"},
        {"aGVsbG8=", 5, "hello"},
        {"aGVsbG8", 5, "hello"},
        {"aGVsbG8h", 6, "hello!"},
        {"aGVsbA==\r\n", 4, "hell"},     /* whitespace after the padding */
        {" aG Vs\tbA =\n= ", 4, "hell"}, /* whitespace anywhere, even between the '=' */
        {"/w==", 1, "\xff"},
        {"_w==", 1, "\xff"}, /* URL-safe alphabet, padded */
        {"-_8", 2, "\xfb\xff"},
        {"", 0, ""},
    };
    static const char *const bad[] = {
        "=",         "==",       "===",    "====",     /* padding without data */
        "A",         "A=",       "A==",    "A===",     /* a lone character in the last quad */
        "AAAAA",     "AAAAA===", "AAAA=",  "AAAA==",   /* a lone one again; full quad + "=" */
        "AAAA===",   "AAAA====", "AA=",    "AA===",    /* too few / too many after two */
        "AA====",    "AAA==",    "AAA===", "AA==AA==", /* ...after three; data after padding */
        "AA==A",     "AAA=A",    "A=AA",   "AA=A",     /* '=' inside the data */
        "aGVsbG8=x", "a$==",     "AA==!",  "AA.A",     /* bytes outside the alphabet */
    };
    unsigned char out[64];
    size_t n;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        n = 999;
        if (b64_decode(ok[i].in, strlen(ok[i].in), out, &n) != 0)
            fail_msg("'%s' refused, expected %d bytes", ok[i].in, ok[i].len);
        if (n != (size_t)ok[i].len || memcmp(out, ok[i].bytes, n))
            fail_msg("'%s' decoded to %zu bytes, expected %d", ok[i].in, n, ok[i].len);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (b64_decode(bad[i], strlen(bad[i]), out, &n) != -1) fail_msg("'%s' accepted", bad[i]);
    /* b64_decode_alloc applies the same rule */
    unsigned char *p = NULL;
    assert_int_equal(b64_decode_alloc("AAAA=", 5, &p, &n), -1);
    assert_null(p);
    assert_int_equal(b64_decode_alloc("AAA=", 4, &p, &n), 0);
    assert_int_equal(n, 2);
    free(p);
}

/* Random data of every length mod 3, encoded by the reference: decodes back padded and
 * unpadded; one '=' more, or one less than the padding needs, is refused. */
static void test_b64_round_trip(void **state)
{
    (void)state;
    test_rng r = {13};
    unsigned char data[64], out[64];
    char enc[128];
    for (int len = 0; len <= 40; len++)
        for (int rep = 0; rep < 8; rep++) {
            for (int i = 0; i < len; i++) data[i] = (unsigned char)rng_u32(&r);
            size_t e = ref_b64_encode(data, (size_t)len, enc), n = 999;
            size_t pad = (size_t)(len % 3 ? 3 - len % 3 : 0);
            assert_int_equal(b64_decode(enc, e, out, &n), 0);
            assert_int_equal(n, (size_t)len);
            assert_memory_equal(out, data, (size_t)len);
            n = 999; /* unpadded */
            assert_int_equal(b64_decode(enc, e - pad, out, &n), 0);
            assert_int_equal(n, (size_t)len);
            assert_memory_equal(out, data, (size_t)len);
            enc[e] = '=', enc[e + 1] = 0; /* one '=' too many */
            if (b64_decode(enc, e + 1, out, &n) != -1) fail_msg("len %d: extra '=' accepted", len);
            if (pad == 2 && b64_decode(enc, e - 1, out, &n) != -1)
                fail_msg("len %d: one '=' of two accepted", len);
        }
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
    /* a first delimiter differing from the boundary in its last byte is not one */
    static const char near[] = "--XyQ\r\nContent-Type: image/png\r\n\r\nPNGDATA\r\n--XyZ--\r\n";
    assert_int_equal(multipart_parse(CT, (const unsigned char *)near, sizeof near - 1, 8, &p, &n,
                                     &k, err, sizeof err),
                     PARSE_EINVAL);
    static const char empty[] = "--XyZ--\r\n";
    assert_int_equal(multipart_parse(CT, (const unsigned char *)empty, sizeof empty - 1, 8, &p, &n,
                                     &k, err, sizeof err),
                     PARSE_EINVAL);
}

/* Text fields against image parts: a part with a name, no filename and no image type is a
 * field; an unknown field is refused by name; an image part keeps its name for errors. */
static void test_multipart_fields(void **state)
{
    (void)state;
    static const char ok[] = "--XyZ\r\nContent-Disposition: form-data; name=\"top_k\"\r\n"
                             "Content-Type: text/plain\r\n\r\n2\r\n"
                             "--XyZ\r\nContent-Disposition: form-data; name=\"pic\"; "
                             "filename=\"notes.txt\"\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
                             "--XyZ\r\nContent-Disposition: form-data; name=\"raw\"\r\n"
                             "Content-Type: image/png\r\n\r\nP\r\n--XyZ--\r\n";
    blob *p = NULL;
    int n = 0;
    long k = -1;
    char err[160];
    assert_int_equal(multipart_parse(CT, (const unsigned char *)ok, sizeof ok - 1, 8, &p, &n, &k,
                                     err, sizeof err),
                     PARSE_OK);
    assert_int_equal(n, 2);
    assert_int_equal(k, 2);
    assert_int_equal(p[0].name_len, 3);
    assert_memory_equal(p[0].name, "pic", 3);
    assert_memory_equal(p[0].data, "hi", 2);
    assert_int_equal(p[1].name_len, 3);
    assert_memory_equal(p[1].name, "raw", 3);
    blobs_free(p, n);
    static const char unknown[] = "--XyZ\r\nContent-Disposition: form-data; name=\"topk\"\r\n\r\n"
                                  "2\r\n--XyZ\r\nContent-Type: image/png\r\n\r\nP\r\n--XyZ--\r\n";
    assert_int_equal(multipart_parse(CT, (const unsigned char *)unknown, sizeof unknown - 1, 8, &p,
                                     &n, &k, err, sizeof err),
                     PARSE_EINVAL);
    assert_non_null(strstr(err, "unknown form field 'topk'"));
}

/* The top_k form field: a non-negative integer (server/num.h), space around it allowed. */
static void test_multipart_top_k(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        long want; /* -2: refused */
    } cases[] = {{"0", 0},
                 {" 7\t", 7},
                 {"\r\n12 ", 12},
                 {"9223372036854775807", 9223372036854775807L},
                 {"9223372036854775808", -2},
                 {"-1", -2},
                 {"3x", -2},
                 {"0x3", -2},
                 {"", -2},
                 {"  ", -2},
                 {"3 4", -2}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[256], err[128];
        int len = snprintf(body, sizeof body,
                           "--XyZ\r\nContent-Disposition: form-data; name=\"top_k\"\r\n\r\n%s"
                           "\r\n--XyZ\r\nContent-Type: image/png\r\n\r\nP\r\n--XyZ--\r\n",
                           cases[i].value);
        blob *p = NULL;
        int n = 0;
        long k = -5;
        int st = multipart_parse(CT, (const unsigned char *)body, (size_t)len, 8, &p, &n, &k, err,
                                 sizeof err);
        if (cases[i].want == -2) {
            if (st != PARSE_EINVAL || !strstr(err, "top_k"))
                fail_msg("top_k '%s': status %d, '%s'", cases[i].value, st, err);
        } else if (st != PARSE_OK || k != cases[i].want) {
            fail_msg("top_k '%s': status %d, k %ld", cases[i].value, st, k);
        }
        blobs_free(p, n);
    }
}

/* The .npy header's shape (cli/npy.c): each dimension a decimal number (server/num.h). A
 * refused shape comes with the data a lax reading of it would want, so only the shape fails. */
static void test_npy_shape(void **state)
{
    (void)state;
    static const struct {
        const char *shape;
        int ndim; /* -1: refused */
        long dims[3];
        size_t floats; /* data after the header */
    } cases[] = {{"(2, 3)", 2, {2, 3}, 6},
                 {"(3,)", 1, {3}, 3},
                 {"()", 0, {0}, 1},
                 {"(1,2,3)", 3, {1, 2, 3}, 6},
                 {"(0, 5)", 2, {0, 5}, 0},
                 {"(-2, 3)", -1, {0}, 6},
                 {"(+2, 3)", -1, {0}, 6},
                 {"(0x2, 3)", -1, {0}, 6},
                 {"(2 3)", -1, {0}, 6},
                 {"(2,, 3)", -1, {0}, 6},
                 {"(1099511627777,)", -1, {0}, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        static unsigned char buf[256];
        char err[128];
        int hl = snprintf((char *)buf + 10, 128,
                          "{'descr': '<f4', 'fortran_order': False, "
                          "'shape': %s, }\n",
                          cases[i].shape);
        memcpy(buf, "\x93NUMPY\x01\x00", 8);
        buf[8] = (unsigned char)hl;
        buf[9] = 0;
        size_t len = 10 + (size_t)hl + 4 * cases[i].floats;
        memset(buf + 10 + hl, 0, 4 * cases[i].floats);
        float *data = NULL;
        int ndim = -1;
        long shape[NPY_MAX_DIMS];
        int r = npy_parse_f32(buf, len, &data, &ndim, shape, err, sizeof err);
        if (cases[i].ndim < 0) {
            if (r == 0) fail_msg("shape %s accepted", cases[i].shape);
            if (!strstr(err, "bad shape")) fail_msg("shape %s: '%s'", cases[i].shape, err);
        } else {
            if (r) fail_msg("shape %s: %s", cases[i].shape, err);
            assert_int_equal(ndim, cases[i].ndim);
            for (int d = 0; d < ndim; d++) assert_int_equal(shape[d], cases[i].dims[d]);
        }
        free(data);
    }
}

static void test_v1_json(void **state)
{
    (void)state;
    blob *b;
    int n;
    long k;
    v1_form f;
    char err[128];
    const char *ok = "{\"instances\":[{\"b64\":\"aGVsbG8=\"},{\"img\":{\"b64\":\"AQID\"}}],"
                     "\"top_k\":2}";
    assert_int_equal(v1_parse_json(ok, strlen(ok), 4, &b, &n, &k, &f, err, sizeof err), PARSE_OK);
    assert_int_equal(n, 2);
    assert_int_equal(k, 2);
    assert_int_equal(f, V1_ROW);
    assert_memory_equal(b[0].data, "hello", 5);
    assert_int_equal(b[1].len, 3);
    blobs_free(b, n);
    assert_int_equal(v1_parse_json(ok, strlen(ok), 1, &b, &n, &k, &f, err, sizeof err),
                     PARSE_ETOOMANY);
    const char *bad[] = {"{",
                         "[]",
                         "{\"instances\":[]}",
                         "{\"instances\":[{\"b64\":1}]}",
                         "{\"instances\":[{\"b64\":\"@\"}]}",
                         "{\"instances\":[{\"b64\":\"AA==\"}],\"top_k\":-1}",
                         "{\"instances\":[{\"b64\":\"AA==\"}],\"top_k\":1.5}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(v1_parse_json(bad[i], strlen(bad[i]), 4, &b, &n, &k, &f, err, sizeof err),
                         PARSE_EINVAL);
}

/* TF Serving's columnar form: every shape of "inputs" the models can take, each the same two
 * (or one) images as the row form would give, and its errors. */
static void test_v1_json_columnar(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        int n; /* images: "hello", then "\1\2\3" */
    } good[] = {
        {"{\"inputs\":[{\"b64\":\"aGVsbG8=\"},{\"b64\":\"AQID\"}]}", 2},
        {"{\"inputs\":{\"b64\":\"aGVsbG8=\"}}", 1},
        {"{\"inputs\":{\"image_bytes\":[{\"b64\":\"aGVsbG8=\"},{\"b64\":\"AQID\"}]}}", 2},
        {"{\"inputs\":{\"image\":{\"b64\":\"aGVsbG8=\"}}}", 1},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        blob *b;
        int n;
        long k;
        v1_form f;
        char err[128];
        int st =
            v1_parse_json(good[i].body, strlen(good[i].body), 4, &b, &n, &k, &f, err, sizeof err);
        if (st) fail_msg("%s: %s", good[i].body, err);
        assert_int_equal(n, good[i].n);
        assert_int_equal(f, V1_COLUMNAR);
        assert_int_equal(k, -1);
        assert_int_equal(b[0].len, 5);
        assert_memory_equal(b[0].data, "hello", 5);
        if (n == 2) assert_memory_equal(b[1].data, "\1\2\3", 3);
        blobs_free(b, n);
    }
    static const struct {
        const char *body, *err;
    } bad[] = {
        {"{\"instances\":[{\"b64\":\"AQID\"}],\"inputs\":[{\"b64\":\"AQID\"}]}",
         "a body has \"instances\" (row form) or \"inputs\" (columnar form), not both"},
        {"{\"inputs\":[]}", "\"inputs\" is empty"},
        {"{\"inputs\":{\"image\":[]}}", "\"inputs.image\" is empty"},
        {"{\"inputs\":{}}", "\"inputs\" names 0 inputs; the model takes one (the image)"},
        {"{\"inputs\":{\"a\":[],\"b\":[]}}",
         "\"inputs\" names 2 inputs; the model takes one (the image)"},
        {"{\"inputs\":\"AQID\"}",
         "\"inputs\" must be a list of {\"b64\": ...} images or one of them"},
        {"{\"inputs\":{\"image\":\"AQID\"}}",
         "\"inputs.image\" must be a list of {\"b64\": ...} images or one of them"},
        {"{\"inputs\":[\"AQID\"]}", "inputs[0] needs a \"b64\" string"},
        /* a named input inside the tensor is the row form's, not the columnar one's */
        {"{\"inputs\":[{\"image\":{\"b64\":\"AQID\"}}]}", "inputs[0] needs a \"b64\" string"},
        {"{\"inputs\":{\"image\":[{\"b64\":\"AQID\"},{\"b64\":\"@\"}]}}",
         "inputs.image[1].b64 is not valid base64"},
        {"{\"top_k\":1}", "JSON body needs an \"instances\" array or \"inputs\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        blob *b;
        int n;
        long k;
        v1_form f;
        char err[128];
        assert_int_equal(
            v1_parse_json(bad[i].body, strlen(bad[i].body), 4, &b, &n, &k, &f, err, sizeof err),
            PARSE_EINVAL);
        assert_string_equal(err, bad[i].err);
        assert_null(b);
        assert_int_equal(n, 0);
    }
    blob *b;
    int n;
    long k;
    v1_form f;
    char err[128];
    const char *five = "{\"inputs\":[{\"b64\":\"AA\"},{\"b64\":\"AA\"},{\"b64\":\"AA\"},"
                       "{\"b64\":\"AA\"},{\"b64\":\"AA\"}]}";
    assert_int_equal(v1_parse_json(five, strlen(five), 4, &b, &n, &k, &f, err, sizeof err),
                     PARSE_ETOOMANY);
}

static void test_v1_format(void **state)
{
    (void)state;
    const float probs[4] = {0.1f, 0.4f, 0.4f, 0.1000000015f};
    const char *labels[4] = {"a\"q", "b", "c", "d"};
    int idx[5]; /* room for the five-class cases below */
    assert_int_equal(v1_top_k(probs, 4, 2, idx), 2);
    assert_int_equal(idx[0], 1); /* ties: lower index first */
    assert_int_equal(idx[1], 2);
    assert_int_equal(v1_top_k(probs, 4, 0, idx), 4);
    assert_int_equal(v1_top_k(probs, 4, 99, idx), 4);
    /* every position against the full order: 0.1000000015f is the float 0.1f, so classes
     * 1, 2 tie and so do 0, 3 (lower index first) */
    assert_true(probs[0] == probs[3]);
    static const int order[4] = {1, 2, 0, 3};
    assert_memory_equal(idx, order, sizeof order);
    /* the ends: the last class best, the first class worst */
    const float up[5] = {0.01f, 0.1f, 0.2f, 0.3f, 0.39f};
    assert_int_equal(v1_top_k(up, 5, 1, idx), 1);
    assert_int_equal(idx[0], 4);
    assert_int_equal(v1_top_k(up, 5, 0, idx), 5);
    static const int desc[5] = {4, 3, 2, 1, 0};
    assert_memory_equal(idx, desc, sizeof desc);
    const float tie_end[3] = {0.25f, 0.25f, 0.5f};
    assert_int_equal(v1_top_k(tie_end, 3, 2, idx), 2);
    assert_int_equal(idx[0], 2);
    assert_int_equal(idx[1], 0);
    sbuf b;
    sbuf_init(&b, 1 << 16);
    assert_int_equal(v1_format(&b, "m", 1, labels, 4, probs, 1, 0, V1_ROW), 0);
    assert_non_null(strstr(b.p, "\"label\":\"a\\\"q\""));
    /* %.9g gives back the exact float */
    const char *s = strstr(b.p, "\"index\":3,\"label\":\"d\",\"score\":");
    assert_non_null(s);
    float back = strtof(s + strlen("\"index\":3,\"label\":\"d\",\"score\":"), NULL);
    assert_true(back == probs[3]);
    sbuf_free(&b);
    /* the columnar form's answer: the same, its key "outputs" */
    sbuf_init(&b, 1 << 16);
    assert_int_equal(v1_format(&b, "m", 0, NULL, 4, probs, 1, 2, V1_COLUMNAR), 0);
    assert_string_equal(b.p, "{\"model\":\"m\",\"untrained\":false,\"outputs\":[[{\"index\":1,"
                             "\"label\":\"1\",\"score\":0.400000006},{\"index\":2,\"label\":"
                             "\"2\",\"score\":0.400000006}]]}\n");
    sbuf_free(&b);
    sbuf_init(&b, 10); /* the cap holds */
    assert_int_not_equal(v1_format(&b, "m", 0, NULL, 4, probs, 1, 0, V1_ROW), 0);
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
    assert_int_equal(v2_format_infer(&b, &bin, "m", "1", &r, logits, probs, 2, NULL), 0);
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
    assert_int_equal(v2_format_infer(&b, &bin, "m", "1", &r, logits, probs, 3, labels), 0);
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
    /* past float range: an infinity would be served as NaN scores */
    const char *huge[] = {"[1e39]", "[-1e39]", "[3.5e38]", "[1e999]"};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++)
        if (json_numbers(huge[i], strlen(huge[i]), 8, f, 8, &n) != -1) fail_msg("huge %zu", i);
    assert_int_equal(json_numbers("[1e-60]", 7, 8, f, 8, &n), 0); /* underflow is 0, fine */
}

/* A body the value counter cannot read never reaches cJSON, whose tree would cost ~40 bytes
 * per input byte before it found the stray bracket at the end. */
static void test_v1_unscannable(void **state)
{
    (void)state;
    size_t many = 100000;
    char *body = malloc(64 + 2 * many), err[160];
    size_t k = 0;
    memcpy(body, "{\"instances\":[", 14);
    k = 14;
    for (size_t i = 0; i < many / 2; i++) body[k++] = '0', body[k++] = ',';
    memcpy(body + k, "0]}]", 4);
    k += 4;
    blob *b;
    int n;
    long tk;
    v1_form f;
    assert_int_equal(v1_parse_json(body, k, 4, &b, &n, &tk, &f, err, sizeof err), PARSE_EINVAL);
    assert_string_equal(err, "body is not a JSON object");
    free(body);
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
            v1_form f;
            st = v1_parse_json(body, k, 4, &b, &n, &tk, &f, err, sizeof err);
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
        cmocka_unit_test(test_b64_padding),
        cmocka_unit_test(test_b64_round_trip),
        cmocka_unit_test(test_multipart),
        cmocka_unit_test(test_multipart_top_k),
        cmocka_unit_test(test_multipart_fields),
        cmocka_unit_test(test_npy_shape),
        cmocka_unit_test(test_v1_json),
        cmocka_unit_test(test_v1_json_columnar),
        cmocka_unit_test(test_v1_format),
        cmocka_unit_test(test_v2),
        cmocka_unit_test(test_v2_binary),
        cmocka_unit_test(test_json_scan),
        cmocka_unit_test(test_json_numbers),
        cmocka_unit_test(test_v1_unscannable),
        cmocka_unit_test(test_json_value_bound),
        cmocka_unit_test(test_sbuf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
