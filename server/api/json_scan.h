/* json_scan.h - one pass over a JSON text that counts its values and finds one member, and a
 * reader for arrays of numbers: what keeps cJSON's memory bounded.
 *
 * cJSON builds a node (~80 bytes) per value, so 32 MB of "0," would cost 1.3 GB. v1.c and
 * v2.c therefore count the values first (json_scan) and refuse a body with more than a
 * request could need before cJSON sees it. V2's input "data", where an FP32 tensor has one
 * value per element, is cut out of the text and read on its own: FP32 numbers straight
 * into floats (json_numbers), BYTES strings by cJSON once they are counted.
 *
 * Neither allocates. Both are pure functions over (s, n) and are fuzzed through v1/v2.
 */
#ifndef XBN_JSON_SCAN_H
#define XBN_JSON_SCAN_H

#include <cJSON.h>
#include <stddef.h>

#define JSON_SCAN_MAX_DEPTH 64

typedef struct {
    size_t values; /* objects, arrays, strings, numbers and literals, the found value excluded */
    int found;     /* the member was found: its value is s[lo, hi) */
    size_t lo, hi;
} json_scan_result;

/* Count the values of s[0, n) and locate the value of member `key` of the objects that are
 * elements of the root object's array member `array_key` (V2: inputs[*].data); the first such
 * value only, which is not counted. Pass NULL keys to only count. Keys are compared byte for
 * byte, so an escaped spelling does not match (its value is then counted like any other).
 * Only strings and nesting are checked; cJSON or json_numbers checks the rest. Returns 0, or
 * -1 when a string is unterminated or holds the escape \u0000 (cJSON's C strings would end
 * there), brackets do not match or nesting passes JSON_SCAN_MAX_DEPTH. */
int json_scan(const char *s, size_t n, const char *array_key, const char *key, json_scan_result *r);

/* Read s[0, n) (whitespace around allowed), a JSON array whose elements are numbers or such
 * arrays, at most max_depth arrays deep, into dst[0, cap) in text order; *count = numbers
 * read. Each number is (float)strtod of its text, as cJSON's valuedouble cast to float.
 * Returns 0, or -1 on anything else (other values, invalid JSON, a number longer than 63
 * characters, a number outside float range) or more than cap numbers. */
int json_numbers(const char *s, size_t n, int max_depth, float *dst, size_t cap, size_t *count);

/* cJSON's tree of s[0, n), held to what a request must be: one JSON value and nothing after
 * it but whitespace (cJSON alone stops after the first value), and no object with a key
 * twice (cJSON keeps both and lookups find the first, so such a body is ambiguous). Call it
 * after json_scan has bounded the values and the nesting. NULL when the text is refused;
 * the tree is the caller's (cJSON_Delete). */
cJSON *json_parse_strict(const char *s, size_t n);

#endif
