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

/* The Content-Disposition parameter `key` (a whole parameter name: "name" is not found in
 * "filename"): its value, unquoted, into *s, *sn. 1 if present. */
static int disposition_param(const char *v, size_t n, const char *key, const char **s, size_t *sn)
{
    size_t kn = strlen(key);
    for (size_t i = 0; i + kn + 1 <= n; i++) {
        if (strncasecmp(v + i, key, kn) || v[i + kn] != '=' ||
            (i > 0 && v[i - 1] != ';' && v[i - 1] != ' ' && v[i - 1] != '\t'))
            continue;
        const char *p = v + i + kn + 1, *end = v + n;
        if (p < end && *p == '"') {
            p++;
            const char *q = memchr(p, '"', (size_t)(end - p));
            *s = p;
            *sn = q ? (size_t)(q - p) : (size_t)(end - p);
        } else {
            const char *q = p;
            while (q < end && *q != ';' && *q != ' ' && *q != '\t') q++;
            *s = p;
            *sn = (size_t)(q - p);
        }
        return 1;
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

/* One part: its headers hdr[0, hn) and its data. */
typedef struct {
    const char *hdr;
    size_t hn;
    const unsigned char *data;
    size_t len;
} part;

enum { PART_FOUND = 0, PART_END = 1 }; /* next_part, besides PARSE_EINVAL */

/* Just after the first delimiter, which may start the body without its leading CRLF; NULL
 * when there is none. */
static const unsigned char *after_first_delimiter(const unsigned char *body, size_t len,
                                                  const char *delim, size_t dn)
{
    if (len >= dn - 2 && !memcmp(body, delim + 2, dn - 2)) return body + dn - 2;
    const unsigned char *p = memmem(body, len, delim, dn);
    return p ? p + dn : NULL;
}

/* *p is just after a delimiter: "--" ends the body (PART_END); otherwise CRLF starts a part,
 * read into *pt, and *p moves past the delimiter that ends it (PART_FOUND). */
static int next_part(const unsigned char **p, const unsigned char *end, const char *delim,
                     size_t dn, part *pt, char *err, size_t errlen)
{
    const unsigned char *q = *p;
    if (end - q >= 2 && q[0] == '-' && q[1] == '-') return PART_END;
    while (q < end && (*q == ' ' || *q == '\t')) q++;
    if (end - q < 2 || q[0] != '\r' || q[1] != '\n') {
        snprintf(err, errlen, "multipart delimiter not followed by CRLF");
        return PARSE_EINVAL;
    }
    q += 2;
    const unsigned char *hend = memmem(q, (size_t)(end - q), "\r\n\r\n", 4);
    pt->hdr = (const char *)q;
    if (end - q >= 2 && q[0] == '\r' && q[1] == '\n') { /* no headers */
        pt->hn = 0;
        pt->data = q + 2;
    } else if (hend) {
        pt->hn = (size_t)(hend - q);
        pt->data = hend + 4;
    } else {
        snprintf(err, errlen, "multipart part without end of headers");
        return PARSE_EINVAL;
    }
    const unsigned char *next = memmem(pt->data, (size_t)(end - pt->data), delim, dn);
    if (!next) {
        snprintf(err, errlen, "multipart body not terminated by its closing boundary");
        return PARSE_EINVAL;
    }
    pt->len = (size_t)(next - pt->data);
    *p = next + dn;
    return PART_FOUND;
}

/* Is a Content-Type an image's? image/..., or application/octet-stream as file pickers send
 * for an unknown extension. */
static int image_type(const char *v, size_t n)
{
    return (n >= 6 && !strncasecmp(v, "image/", 6)) ||
           (n >= 24 && !strncasecmp(v, "application/octet-stream", 24));
}

/* One part. A part with a form name, no filename and no image Content-Type is a text field:
 * top_k is read, any other is refused naming it (a misspelt "topk" would otherwise be
 * silently ignored). Any other part is the next image: with a filename or an image type, or
 * without Content-Disposition at all (no name to read it as a field by). */
static int take_part(const part *pt, blob *out, int *n, int max_parts, long *top_k, char *err,
                     size_t errlen)
{
    const char *v, *name = NULL, *fn;
    size_t vn, name_len = 0, fnn;
    const char *ctv = NULL;
    size_t ctn = 0;
    int has_ct = header(pt->hdr, pt->hn, "content-type", &ctv, &ctn);
    int has_cd = header(pt->hdr, pt->hn, "content-disposition", &v, &vn);
    if (has_cd) disposition_param(v, vn, "name", &name, &name_len);
    int is_field = has_cd && name && !disposition_param(v, vn, "filename", &fn, &fnn) &&
                   !(has_ct && image_type(ctv, ctn));
    if (is_field) {
        if (name_len != 5 || memcmp(name, "top_k", 5)) {
            char safe[48];
            size_t k = 0;
            for (; k < name_len && k + 1 < sizeof safe; k++)
                safe[k] = name[k] > 0x20 && name[k] < 0x7f && name[k] != '\'' ? name[k] : '?';
            safe[k] = 0;
            snprintf(err, errlen,
                     "unknown form field '%s' (the field is top_k; an image part needs a filename "
                     "or an image Content-Type)",
                     safe);
            return PARSE_EINVAL;
        }
        if (*top_k >= 0) {
            snprintf(err, errlen, "top_k is given twice");
            return PARSE_EINVAL;
        }
        if (parse_top_k(pt->data, pt->len, top_k)) {
            snprintf(err, errlen, "top_k must be a non-negative integer");
            return PARSE_EINVAL;
        }
        return PARSE_OK;
    }
    if (*n == max_parts) {
        snprintf(err, errlen, "more than %d images in one request", max_parts);
        return PARSE_ETOOMANY;
    }
    out[*n] = (blob){.data = pt->data, .len = pt->len, .name = name, .name_len = name_len};
    (*n)++;
    return PARSE_OK;
}

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
    const unsigned char *p = after_first_delimiter(body, len, delim, dn);
    if (!p) {
        snprintf(err, errlen, "multipart body without its boundary");
        goto fail;
    }
    part pt;
    int found;
    while ((found = next_part(&p, body + len, delim, dn, &pt, err, errlen)) == PART_FOUND)
        if ((st = take_part(&pt, out, &n, max_parts, top_k, err, errlen))) goto fail;
    st = PARSE_EINVAL;
    if (found != PART_END) goto fail;
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
