/* num.c - see num.h. Integers are accumulated by hand (strtoll would skip leading space and
 * accept what follows a number); doubles are checked for their syntax first, then strtod
 * reads them, so their value is the C library's correctly rounded one. */
#include "server/num.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int num_parse_ll_n(const char *s, size_t n, long long lo, long long hi, long long *out)
{
    size_t i = 0;
    int neg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i == n) return -1;
    /* the magnitude's bound: -LLONG_MIN does not fit a long long, it does fit unsigned */
    unsigned long long limit = neg ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX, mag = 0;
    for (; i < n; i++) {
        if (!is_digit(s[i])) return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (mag > (limit - d) / 10) return -1;
        mag = mag * 10 + d;
    }
    long long v;
    if (!neg)
        v = (long long)mag;
    else if (mag == (unsigned long long)LLONG_MAX + 1)
        v = LLONG_MIN;
    else
        v = -(long long)mag;
    if (v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int num_parse_ll(const char *s, long long lo, long long hi, long long *out)
{
    return num_parse_ll_n(s, strlen(s), lo, hi, out);
}

int num_parse_int(const char *s, int lo, int hi, int *out)
{
    long long v;
    if (num_parse_ll(s, lo, hi, &v)) return -1;
    *out = (int)v;
    return 0;
}

/* [sign] (digits [. [digits]] | . digits) [(e|E) [sign] digits], the whole string. */
static int decimal_syntax(const char *s)
{
    size_t i = 0, int_digits = 0, frac_digits = 0;
    if (s[i] == '+' || s[i] == '-') i++;
    for (; is_digit(s[i]); i++) int_digits++;
    if (s[i] == '.') {
        for (i++; is_digit(s[i]); i++) frac_digits++;
    }
    if (int_digits + frac_digits == 0) return 0;
    if (s[i] == 'e' || s[i] == 'E') {
        i++;
        if (s[i] == '+' || s[i] == '-') i++;
        if (!is_digit(s[i])) return 0;
        while (is_digit(s[i])) i++;
    }
    return s[i] == 0;
}

int num_parse_double(const char *s, double lo, double hi, double *out)
{
    if (strnlen(s, NUM_MAX_CHARS + 1) > NUM_MAX_CHARS || !decimal_syntax(s)) return -1;
    errno = 0;
    double v = strtod(s, NULL);
    if (errno || !isfinite(v) || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}
