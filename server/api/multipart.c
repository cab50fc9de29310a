/* multipart.c - see multipart.h.
 *
 * Layout: [preamble] "--B" CRLF headers CRLF CRLF data CRLF "--B" ... CRLF "--B--" [epilogue].
 * Parsing walks delimiters with memmem; a part's data is everything between the blank line
 * after its headers and the CRLF that precedes the next delimiter.
 */
#include "server/api/multipart.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/num.h"

int multipart_boundary(const char *ct, char *out, size_t outlen)
{
    if (!ct || strncasecmp(ct, "multipart/form-data", 19)) return PARSE_EINVAL;
    const char *p = ct + 19;
    while (*p) {
        while (*p == ';' || *p == ' ' || *p == '\t') p++;
        if (!strncasecmp(p, "boundary=", 9)) {
            p += 9;
            size_t n = 0;
            if (*p == '"') {
                p++;
                while (p[n] && p[n] != '"') n++;
                if (p[n] != '"') return PARSE_EINVAL;
            } else {
                while (p[n] && p[n] != ';' && p[n] != ' ' && p[n] != '\t') n++;
            }
            if (n == 0 || n > MULTIPART_MAX_BOUNDARY || n + 1 > outlen) return PARSE_EINVAL;
            memcpy(out, p, n);
            out[n] = 0;
            return PARSE_OK;
        }
        while (*p && *p != ';') p++;
    }
    return PARSE_EINVAL;
}

/* Find header `name` (case-insensitive) in hdr[0..n); value span out. */
static int header(const char *hdr, size_t n, const char *name, const char **v, size_t *vn)
{
    size_t ln = strlen(name);
    const char *p = hdr, *end = hdr + n;
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol) eol = end;
        if ((size_t)(eol - p) > ln && !strncasecmp(p, name, ln) && p[ln] == ':') {
            const char *s = p + ln + 1;
            while (s < eol && (*s == ' ' || *s == '\t')) s++;
            *v = s;
            *vn = (size_t)(eol - s);
            return 1;
        }
        p = eol + 2;
    }
    return 0;
}

/* Is the Content-Disposition's name parameter exactly `want`? */
static int disposition_name_is(const char *v, size_t n, const char *want)
{
    size_t wn = strlen(want);
    for (size_t i = 0; i + 5 <= n; i++) {
        if (strncasecmp(v + i, "name=", 5) || (i > 0 && isalnum((unsigned char)v[i - 1]))) continue;
        const char *s = v + i + 5;
        size_t rest = n - i - 5;
        if (rest && *s == '"') {
            s++;
            rest--;
            return rest > wn && !memcmp(s, want, wn) && s[wn] == '"';
        }
        return rest >= wn && !memcmp(s, want, wn) && (rest == wn || s[wn] == ';' || s[wn] == ' ');
    }
    return 0;
}

/* The top_k field's value: a non-negative integer, space around it allowed (form encoders
 * may add a line end). */
static int parse_top_k(const unsigned char *p, size_t n, long *out)
{
    long long v;
    while (n && isspace(p[n - 1])) n--;
    for (; n && isspace(p[0]); n--) p++;
    if (num_parse_ll_n((const char *)p, n, 0, LONG_MAX, &v)) return -1;
    *out = (long)v;
    return 0;
}

/* One function, past 60 lines, because it is one pass of one cursor over the body: delimiter,
 * headers, data, in the order RFC 2046 gives them, with one cleanup of the parts found. */
int multipart_parse(const char *content_type, const unsigned char *body, size_t len, int max_parts,
                    blob **parts, int *nparts, long *top_k, char *err, size_t errlen)
{
    char bnd[MULTIPART_MAX_BOUNDARY + 1], delim[MULTIPART_MAX_BOUNDARY + 5];
    blob *out = NULL;
    int n = 0, st = PARSE_EINVAL;
    *parts = NULL;
    *nparts = 0;
    *top_k = -1;
    if (max_parts < 1) max_parts = 1;
    if (multipart_boundary(content_type, bnd, sizeof bnd)) {
        snprintf(err, errlen, "multipart Content-Type without a valid boundary");
        goto fail;
    }
    size_t dn = (size_t)snprintf(delim, sizeof delim, "\r\n--%s", bnd);
    out = calloc((size_t)max_parts, sizeof *out);
    if (!out) {
        st = PARSE_ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* The first delimiter may start the body without the leading CRLF. */
    const unsigned char *p, *end = body + len;
    if (len >= dn - 2 && !memcmp(body, delim + 2, dn - 2)) {
        p = body + dn - 2;
    } else {
        p = memmem(body, len, delim, dn);
        if (!p) {
            snprintf(err, errlen, "multipart body without its boundary");
            goto fail;
        }
        p += dn;
    }
    for (;;) {
        /* p is just after a delimiter: "--" ends the body, else CRLF starts a part. */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') break;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
            snprintf(err, errlen, "multipart delimiter not followed by CRLF");
            goto fail;
        }
        p += 2;
        const unsigned char *hend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        const unsigned char *data;
        size_t hn;
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') { /* no headers */
            hn = 0;
            data = p + 2;
        } else if (hend) {
            hn = (size_t)(hend - p);
            data = hend + 4;
        } else {
            snprintf(err, errlen, "multipart part without end of headers");
            goto fail;
        }
        const unsigned char *next = memmem(data, (size_t)(end - data), delim, dn);
        if (!next) {
            snprintf(err, errlen, "multipart body not terminated by its closing boundary");
            goto fail;
        }
        const char *v;
        size_t vn;
        int has_ct = header((const char *)p, hn, "content-type", &v, &vn);
        if (!has_ct && header((const char *)p, hn, "content-disposition", &v, &vn) &&
            disposition_name_is(v, vn, "top_k")) {
            if (parse_top_k(data, (size_t)(next - data), top_k)) {
                snprintf(err, errlen, "top_k must be a non-negative integer");
                goto fail;
            }
        } else {
            if (n == max_parts) {
                st = PARSE_ETOOMANY;
                snprintf(err, errlen, "more than %d images in one request", max_parts);
                goto fail;
            }
            out[n].data = data;
            out[n].len = (size_t)(next - data);
            n++;
        }
        p = next + dn;
    }
    if (n == 0) {
        snprintf(err, errlen, "multipart body has no image part");
        goto fail;
    }
    *parts = out;
    *nparts = n;
    return PARSE_OK;
fail:
    free(out);
    return st;
}
