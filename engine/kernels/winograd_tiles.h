/* winograd_tiles.h - the Winograd transforms of winograd.c, written once for any vector width.
 *
 * winograd.c includes this file once per instruction set, after defining V (the vector type),
 * V_LOAD / V_STORE / V_ZERO / V_SET1 / V_MIN / V_MAX, TARGET (the function attribute) and
 * NAME(f) (the suffixed name); they are undefined at the end. Each inclusion defines that
 * instruction set's entry points of the kernel table, wino_input_* and wino_output_*. Arithmetic is
 * written with operators, so it is the same sequence of operations on every width; channel counts
 * are multiples of 16, so of the V_LANES floats in a V.
 */
#define INLINE static inline __attribute__((always_inline)) TARGET
#define V_LANES ((int)(sizeof(V) / sizeof(float)))

/* 1-D input transform B^T d: `a` values `ds` apart -> `a` values `rs` apart. */
INLINE void NAME(input_1d)(int a, const V *d, int ds, V *r, int rs)
{
    if (a == 4) {
        r[0] = d[0] - d[2 * ds];
        r[rs] = d[ds] + d[2 * ds];
        r[2 * rs] = d[2 * ds] - d[ds];
        r[3 * rs] = d[ds] - d[3 * ds];
        return;
    }
    V d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds], d4 = d[4 * ds], d5 = d[5 * ds];
    V p = d4 - 4.0f * d2, q = d3 - 4.0f * d1, s = d4 - d2, t = 2.0f * (d3 - d1);
    r[0] = 4.0f * d0 - 5.0f * d2 + d4;
    r[rs] = p + q;
    r[2 * rs] = p - q;
    r[3 * rs] = s + t;
    r[4 * rs] = s - t;
    r[5 * rs] = 4.0f * d1 - 5.0f * d3 + d5;
}

/* 1-D output transform A^T x: `a` values `xs` apart -> `a - 2` values `os` apart. */
INLINE void NAME(output_1d)(int a, const V *x, int xs, V *o, int os)
{
    if (a == 4) {
        o[0] = x[0] + x[xs] + x[2 * xs];
        o[os] = x[xs] - x[2 * xs] - x[3 * xs];
        return;
    }
    V p = x[xs] + x[2 * xs], q = x[xs] - x[2 * xs];
    V r = x[3 * xs] + x[4 * xs], s = x[3 * xs] - x[4 * xs];
    o[0] = x[0] + p + r;
    o[os] = q + 2.0f * s;
    o[2 * os] = p + 4.0f * r;
    o[3 * os] = q + 8.0f * s + x[5 * xs];
}

/* Tiles [t_lo, t_hi) of in -> rows t - row0 of v [a*a][rows][cin]. Taps in the padding read
 * as zeros. */
INLINE void NAME(input_tiles)(int a, const float *in, int h, int w, int cin, int t_lo, int t_hi,
                              int row0, int rows, float *v)
{
    int m = a - 2, tw = (w + m - 1) / m;
    size_t pos = (size_t)rows * cin;
    for (int t = t_lo; t < t_hi; t++) {
        const float *src[36];
        int y0 = t / tw * m - 1, x0 = t % tw * m - 1;
        for (int i = 0; i < a; i++)
            for (int j = 0; j < a; j++) {
                int y = y0 + i, x = x0 + j;
                src[i * a + j] =
                    y >= 0 && y < h && x >= 0 && x < w ? in + ((size_t)y * w + x) * cin : NULL;
            }
        float *dst = v + (size_t)(t - row0) * cin;
        for (int c = 0; c < cin; c += V_LANES) {
            V d[36], r[36];
            for (int k = 0; k < a * a; k++) d[k] = src[k] ? V_LOAD(src[k] + c) : V_ZERO();
            for (int j = 0; j < a; j++) NAME(input_1d)(a, d + j, a, r + j, a);
            for (int i = 0; i < a; i++) NAME(input_1d)(a, r + i * a, 1, d + i * a, 1);
            for (int k = 0; k < a * a; k++) V_STORE(dst + k * pos + c, d[k]);
        }
    }
}

/* Rows t - row0 of prod [a*a][rows][cout] -> tiles [t_lo, t_hi) of out, with bias and clamp;
 * edge tiles cropped. */
INLINE void NAME(output_tiles)(int a, const float *prod, int row0, int rows, int h, int w, int cout,
                               const gemm_epilogue *e, int t_lo, int t_hi, float *out)
{
    int m = a - 2, tw = (w + m - 1) / m;
    size_t pos = (size_t)rows * cout;
    V lo = V_SET1(e->lo), hi = V_SET1(e->hi);
    for (int t = t_lo; t < t_hi; t++) {
        int y0 = t / tw * m, x0 = t % tw * m;
        const float *src = prod + (size_t)(t - row0) * cout;
        for (int c = 0; c < cout; c += V_LANES) {
            V x[36], r[24], o[16];
            for (int k = 0; k < a * a; k++) x[k] = V_LOAD(src + k * pos + c);
            for (int j = 0; j < a; j++) NAME(output_1d)(a, x + j, a, r + j, a);
            for (int i = 0; i < m; i++) NAME(output_1d)(a, r + i * a, 1, o + i * m, 1);
            V bias = e->bias ? V_LOAD(e->bias + c) : V_ZERO();
            for (int i = 0; i < m && y0 + i < h; i++)
                for (int j = 0; j < m && x0 + j < w; j++) {
                    V val = V_MIN(V_MAX(o[i * m + j] + bias, lo), hi);
                    V_STORE(out + ((size_t)(y0 + i) * w + x0 + j) * cout + c, val);
                }
        }
    }
}

/* The transforms with the tile size a compile-time constant, so the loops unroll. */
TARGET static void NAME(input_f2)(const float *in, int h, int w, int cin, int t_lo, int t_hi,
                                  int row0, int rows, float *v)
{
    NAME(input_tiles)(4, in, h, w, cin, t_lo, t_hi, row0, rows, v);
}

TARGET static void NAME(input_f4)(const float *in, int h, int w, int cin, int t_lo, int t_hi,
                                  int row0, int rows, float *v)
{
    NAME(input_tiles)(6, in, h, w, cin, t_lo, t_hi, row0, rows, v);
}

TARGET static void NAME(output_f2)(const float *prod, int row0, int rows, int h, int w, int cout,
                                   const gemm_epilogue *e, int t_lo, int t_hi, float *out)
{
    NAME(output_tiles)(4, prod, row0, rows, h, w, cout, e, t_lo, t_hi, out);
}

TARGET static void NAME(output_f4)(const float *prod, int row0, int rows, int h, int w, int cout,
                                   const gemm_epilogue *e, int t_lo, int t_hi, float *out)
{
    NAME(output_tiles)(6, prod, row0, rows, h, w, cout, e, t_lo, t_hi, out);
}

/* The table's entry points: the tile size picks the unrolled transform. */
void NAME(wino_input)(int m, const float *in, int h, int w, int cin, int t_lo, int t_hi, int row0,
                      int rows, float *v)
{
    ENGINE_ASSERT((m == 2 || m == 4) && cin % V_LANES == 0);
    ENGINE_ASSERT(t_lo >= row0 && t_hi - row0 <= rows);
    (m == 4 ? NAME(input_f4) : NAME(input_f2))(in, h, w, cin, t_lo, t_hi, row0, rows, v);
}

void NAME(wino_output)(int m, const float *prod, int row0, int rows, int h, int w, int cout,
                       const gemm_epilogue *e, int t_lo, int t_hi, float *out)
{
    ENGINE_ASSERT((m == 2 || m == 4) && cout % V_LANES == 0 && !e->res);
    ENGINE_ASSERT(t_lo >= row0 && t_hi - row0 <= rows);
    (m == 4 ? NAME(output_f4) : NAME(output_f2))(prod, row0, rows, h, w, cout, e, t_lo, t_hi, out);
}

#undef INLINE
#undef V_LANES
#undef V
#undef V_LOAD
#undef V_STORE
#undef V_ZERO
#undef V_SET1
#undef V_MIN
#undef V_MAX
#undef TARGET
#undef NAME
