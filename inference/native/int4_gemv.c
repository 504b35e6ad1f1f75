/* y = x W^T for a few rows of fp32 x, straight from torch's CPU int4pack layout, on AVX2 + FMA.
 *
 * Decode multiplies one row by every weight. torch's int4 kernel takes bf16 activations, and on a
 * CPU without native bf16 (AVX2) it spent 155-183 us on one row of a 1536x576 weight: more than an
 * fp32 matmul over the same weight unquantized (111-162 us), on an AMD EPYC (Zen 3), 1 thread. This
 * kernel: 86-101 us (docs/benchmarks.md).
 *
 * Layout (see int4_dequant.c; 32-row blocks are AVX2's, other block sizes are refused with -1):
 * per block of 32 output rows, per input column, 16 bytes whose low
 * nibbles are rows 0..15 and high nibbles rows 16..31; scales_zeros: bf16 [k/group, n, 2]. With
 * w = (q - 8) * s + z over a group G of columns,
 *     y[r] = sum_G  s[G,r] * (sum_{c in G} x[c] q[r,c]  -  8 X_G)  +  z[G,r] * X_G,   X_G = sum_{c in G} x[c],
 * so the inner loop is one broadcast of x[c] and four FMAs into 32 row accumulators per column, and
 * the scales are applied once per group. A bf16 (s, z) pair read as one 32-bit lane gives s as
 * lane << 16 and z as lane & 0xffff0000; the accumulators hold even and odd rows apart (below), so
 * each group first gathers 8 rows' pairs with one shuffle and one permute.
 *
 * Sums run in another order than torch's kernel (and in fp32 throughout), so results agree to
 * rounding, not bit for bit. Only built where the compiler targets AVX2 and FMA; elsewhere
 * engram_int4_gemv_f32 returns -2 and callers keep torch's kernel.
 */
#include <stdint.h>
#include <stdlib.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

/* The 16 bytes of a column widened to 16-bit lanes (one shuffle), read as 8 32-bit lanes: lane t
 * holds bytes 2t and 2t+1, so shifts and masks give rows 2t (acc[0]), 2t+1 (acc[1]), 16+2t (acc[2])
 * and 17+2t (acc[3]) without further shuffles; apply_group and store_rows undo the interleaving. */
static inline void column(const uint8_t *bytes, float x, __m256 acc[4]) {
    const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)bytes));
    const __m256i nib = _mm256_set1_epi32(0x0f);
    const __m256 xv = _mm256_set1_ps(x);
    acc[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v, nib)), xv, acc[0]);
    acc[1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(v, 16), nib)), xv, acc[1]);
    acc[2] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(v, 4), nib)), xv, acc[2]);
    acc[3] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v, 20)), xv, acc[3]);
}

/* (s, z) lanes of rows first, first+2, ..., first+14 (even = 0) or first+1, ..., first+15 (odd) */
static inline __m256i strided_pairs(const uint16_t *sz16, int odd) {
    const __m256 a = _mm256_loadu_ps((const float *)sz16), b = _mm256_loadu_ps((const float *)(sz16 + 16));
    /* per 128-bit lane: [a0 a2 b0 b2 | a4 a6 b4 b6], then 64-bit chunks reordered to rows in order */
    const __m256 mixed = odd ? _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))
                             : _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_si256(_mm256_permute4x64_pd(_mm256_castps_pd(mixed), _MM_SHUFFLE(3, 1, 2, 0)));
}

/* out[p] += s * (acc[p] - 8 X) + z * X for the 32 rows starting at `row`, group g (acc's order) */
static inline void apply_group(const uint16_t *scales_zeros, int64_t n, int64_t g, int64_t row,
                               const __m256 acc[4], float xsum, __m256 out[4]) {
    const __m256i high = _mm256_set1_epi32((int)0xffff0000u);
    const __m256 xs = _mm256_set1_ps(xsum), x8 = _mm256_set1_ps(8.0f * xsum);
    for (int p = 0; p < 4; p++) {
        const __m256i sz = strided_pairs(scales_zeros + (g * n + row + 16 * (p / 2)) * 2, p % 2);
        const __m256 s = _mm256_castsi256_ps(_mm256_slli_epi32(sz, 16));
        const __m256 z = _mm256_castsi256_ps(_mm256_and_si256(sz, high));
        out[p] = _mm256_fmadd_ps(s, _mm256_sub_ps(acc[p], x8), out[p]);
        out[p] = _mm256_fmadd_ps(z, xs, out[p]);
    }
}

/* 16 rows from their even (e) and odd (o) halves, in row order */
static inline void store_rows(float *y, __m256 e, __m256 o) {
    const __m256 lo = _mm256_unpacklo_ps(e, o), hi = _mm256_unpackhi_ps(e, o);  /* [0 1 2 3|8 9 10 11], [4..7|12..15] */
    _mm256_storeu_ps(y, _mm256_permute2f128_ps(lo, hi, 0x20));
    _mm256_storeu_ps(y + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
}

int engram_int4_gemv_f32(const uint8_t *packed, const uint16_t *scales_zeros, const float *x, float *y,
                         int64_t m, int64_t n, int64_t k, int64_t block, int64_t group) {
    if (block != 32 || group <= 0 || k % group || n % 32 || m <= 0)
        return -1;
    const int64_t groups = k / group;
    float *xsums = malloc((size_t)(m * groups) * sizeof *xsums);
    if (xsums == NULL)
        return -3;
    for (int64_t i = 0; i < m * groups; i++) {
        float sum = 0.0f;
        for (int64_t c = 0; c < group; c++)
            sum += x[i * group + c];
        xsums[i] = sum;
    }
    for (int64_t b = 0; b < n / 32; b++) {
        const uint8_t *pb = packed + b * k * 16;
        for (int64_t i = 0; i < m; i++) {
            const float *xi = x + i * k;
            __m256 out[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
            for (int64_t g = 0; g < groups; g++) {
                __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                                 _mm256_setzero_ps()};
                for (int64_t c = g * group; c < (g + 1) * group; c++)
                    column(pb + c * 16, xi[c], acc);
                apply_group(scales_zeros, n, g, b * 32, acc, xsums[i * groups + g], out);
            }
            store_rows(y + i * n + b * 32, out[0], out[1]);
            store_rows(y + i * n + b * 32 + 16, out[2], out[3]);
        }
    }
    free(xsums);
    return 0;
}

#else

int engram_int4_gemv_f32(const uint8_t *packed, const uint16_t *scales_zeros, const float *x, float *y,
                         int64_t m, int64_t n, int64_t k, int64_t block, int64_t group) {
    (void)packed; (void)scales_zeros; (void)x; (void)y; (void)m; (void)n; (void)k; (void)block; (void)group;
    return -2;
}

#endif
