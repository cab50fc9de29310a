/* num.h - the one range-checked parser of numbers written as text: settings (flags, XBNSERVE_*
 * variables), command-line options, multipart form fields, .npy headers, cgroup files.
 *
 * A number is the whole string, nothing else: no leading or trailing space, no hex, no
 * octal, no "inf" or "nan"; an optional sign, decimal digits and, for num_parse_double, an
 * optional fraction and exponent. A value outside [lo, hi], or one the type cannot hold
 * (overflow; for doubles also underflow), is refused. On success *out is set and 0 returned;
 * on failure -1, and *out is untouched. Callers write their own message, naming the key and
 * the range. Doubles are read with strtod in the "C" locale (xbnserve never calls setlocale),
 * so a number is the nearest double to its decimal text.
 *
 * Why here: the CLI and the server parse text numbers, and both may include server/ (the
 * layers' rule: cli -> server, image, engine/engine.h; server -> image). image/ reads only
 * binary fields (JPEG, PNG, EXIF) and keeps no parser; the engine, which may include nothing
 * above itself, reads its two metadata numbers on its own.
 */
#ifndef XBN_NUM_H
#define XBN_NUM_H

#include <stddef.h>

/* Longest text num_parse_double reads (a longer one is refused): far more digits than a double
 * carries, so only padding is refused. */
#define NUM_MAX_CHARS 64

int num_parse_ll(const char *s, long long lo, long long hi, long long *out);
/* The same over s[0..n), which need not be NUL-terminated. */
int num_parse_ll_n(const char *s, size_t n, long long lo, long long hi, long long *out);
int num_parse_int(const char *s, int lo, int hi, int *out);
/* A finite double in [lo, hi]. */
int num_parse_double(const char *s, double lo, double hi, double *out);

#endif
