/* json_scan.c - see json_scan.h. */
#include "server/api/json_scan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_structural(char c)
{
    return c == ',' || c == ':' || c == '"' || c == '[' || c == ']' || c == '{' || c == '}';
}

/* Index just past the string opening at s[i], or 0 when it is unterminated or holds the
 * escape \u0000: cJSON's strings are C strings, so whatever followed the NUL would be
 * dropped unseen (a base64 image cut short, say). */
static size_t string_end(const char *s, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        if (s[i] == '\\' && n - i > 5 && s[i + 1] == 'u' && !memcmp(s + i + 2, "0000", 4)) return 0;
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return 0;
}

/* Index just past the value starting at s[i]: a container through its closing bracket, a
 * string, or a scalar token (at least one character). 0 when it does not end. */
static size_t value_end(const char *s, size_t n, size_t i)
{
    if (s[i] == '"') return string_end(s, n, i);
    if (s[i] != '[' && s[i] != '{') {
        do i++;
        while (i < n && !is_ws(s[i]) && !is_structural(s[i]));
        return i;
    }
    int depth = 0;
    while (i < n) {
        if (s[i] == '"') {
            if (!(i = string_end(s, n, i))) return 0;
            continue;
        }
        if (s[i] == '[' || s[i] == '{')
            depth++;
        else if ((s[i] == ']' || s[i] == '}') && --depth == 0)
            return i + 1;
        i++;
    }
    return 0;
}

typedef struct {
    char kind;      /* '{' or '[' */
    char want_key;  /* object: the next string is a key */
    char key_match; /* object: the current member's key is the one looked for here */
    char hot;       /* '[': the root's array_key member; '{': an element of that array */
} level;

int json_scan(const char *s, size_t n, const char *array_key, const char *key, json_scan_result *r)
{
    level st[JSON_SCAN_MAX_DEPTH];
    int d = 0;
    memset(r, 0, sizeof *r);
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        level *top = d ? &st[d - 1] : NULL;
        if (is_ws(c) || c == ':') {
            i++;
            continue;
        }
        if (c == ',') {
            if (top && top->kind == '{') top->want_key = 1;
            i++;
            continue;
        }
        if (c == '}' || c == ']') {
            if (!top || top->kind != (c == '}' ? '{' : '[')) return -1;
            d--;
            i++;
            continue;
        }
        if (c == '"' && top && top->kind == '{' && top->want_key) {
            size_t e = string_end(s, n, i);
            if (!e) return -1;
            const char *want = d == 1 ? array_key : top->hot ? key : NULL;
            top->key_match =
                want && e - i - 2 == strlen(want) && !memcmp(s + i + 1, want, e - i - 2);
            top->want_key = 0;
            i = e;
            continue;
        }
        /* a value starts at i */
        if (!r->found && top && top->kind == '{' && top->hot && top->key_match) {
            size_t e = value_end(s, n, i);
            if (!e) return -1;
            r->found = 1, r->lo = i, r->hi = e;
            i = e;
            continue;
        }
        r->values++;
        if (c == '{' || c == '[') {
            if (d == JSON_SCAN_MAX_DEPTH) return -1;
            level l = {c, c == '{', 0, 0};
            if (c == '[' && d == 1 && top->kind == '{' && top->key_match) l.hot = 1;
            if (c == '{' && top && top->kind == '[' && top->hot) l.hot = 1;
            st[d++] = l;
            i++;
            continue;
        }
        size_t e = value_end(s, n, i);
        if (!e) return -1;
        i = e;
    }
    return d == 0 ? 0 : -1;
}

typedef struct {
    const char *s;
    size_t n, i;
    float *dst;
    size_t cap, got;
} reader;

static void skip_ws(reader *p)
{
    while (p->i < p->n && is_ws(p->s[p->i])) p->i++;
}

static int digit(const reader *p)
{
    return p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9';
}

/* One number in JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int number(reader *p)
{
    size_t b = p->i;
    if (p->i < p->n && p->s[p->i] == '-') p->i++;
    if (!digit(p)) return -1;
    if (p->s[p->i] == '0')
        p->i++;
    else
        while (digit(p)) p->i++;
    if (p->i < p->n && p->s[p->i] == '.') {
        p->i++;
        if (!digit(p)) return -1;
        while (digit(p)) p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (!digit(p)) return -1;
        while (digit(p)) p->i++;
    }
    char buf[64];
    size_t len = p->i - b;
    if (len >= sizeof buf || p->got == p->cap) return -1;
    memcpy(buf, p->s + b, len);
    buf[len] = 0;
    /* Past FLT_MAX the cast gives an infinity, which the model would turn into NaNs. */
    float v = (float)strtod(buf, NULL);
    if (!isfinite(v)) return -1;
    p->dst[p->got++] = v;
    return 0;
}

static int array(reader *p, int depth)
{
    if (depth == 0 || p->i >= p->n || p->s[p->i] != '[') return -1;
    p->i++;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == ']') {
        p->i++;
        return 0;
    }
    for (;;) {
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == '[' ? array(p, depth - 1) : number(p)) return -1;
        skip_ws(p);
        if (p->i >= p->n) return -1;
        char c = p->s[p->i++];
        if (c == ']') return 0;
        if (c != ',') return -1;
    }
}

int json_numbers(const char *s, size_t n, int max_depth, float *dst, size_t cap, size_t *count)
{
    reader p = {s, n, 0, dst, cap, 0};
    skip_ws(&p);
    int rc = array(&p, max_depth);
    skip_ws(&p);
    *count = p.got;
    return rc || p.i != n ? -1 : 0;
}

/* An object among o and its descendants with a key twice. Objects in requests have a few
 * keys, so the pairwise comparison stays small; arrays are only walked. */
static int has_duplicate_key(const cJSON *o)
{
    for (const cJSON *a = o->child; a; a = a->next) {
        if (cJSON_IsObject(o))
            for (const cJSON *b = a->next; b; b = b->next)
                if (!strcmp(a->string, b->string)) return 1;
        if ((cJSON_IsObject(a) || cJSON_IsArray(a)) && has_duplicate_key(a)) return 1;
    }
    return 0;
}

cJSON *json_parse_strict(const char *s, size_t n)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    if (!root) return NULL;
    while (end < s + n && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')) end++;
    if (end != s + n || has_duplicate_key(root)) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}
