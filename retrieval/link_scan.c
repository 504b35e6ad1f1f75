/* Linking's scan: each new note's nearest rows among its scope's, from 8-bit codes.
 *
 * A new note is compared with every earlier note of its scope (a user's 1,000 at 100k notes),
 * and those rows lie anywhere in the matrix. Scoring them from the float vectors reads 1.5 kB a
 * row: a batch of 256 notes over 100 scopes reads the whole 150 MB matrix, and that bandwidth was
 * the scan's cost. Here each row is scored from 384 bytes of codes, the best `r` by code are
 * scored again from the floats, and the best `k` of those are returned, by score then row.
 *
 * Codes: row x is stored as c = round(x / s) + 128 with s = max|x| / 127 (uint8, `scales` holds
 * s). A query is rounded the same way to 7 bits (|q| <= 63), so that the integer products of one
 * 16-bit pair never saturate in maddubs (2 * 255 * 63 < 32767); the integer dot is exact, so
 * every instruction set below gives the same shortlist.
 *
 * Returns 0; -1 when the arguments are out of range, -2 when memory runs out (the caller raises).
 */
#include <stdint.h>
#include <stdlib.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#ifndef AHEAD
#define AHEAD 8
#endif

/* The rows are scattered (a user's among everyone's), so the hardware prefetcher cannot guess
 * them: asking for a row some rows ahead overlaps the cache misses instead of taking them one by one. */
static inline void prefetch(const void *p, int64_t bytes) {
    for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch((const char *)p + b);
}

typedef struct {
    float score;
    int64_t row;
} item;

/* a ranks below b: a lower score, or the same score and a higher row */
static inline int below(item a, item b) { return a.score < b.score || (a.score == b.score && a.row > b.row); }

static void sift_down(item *h, int64_t n, int64_t i) {
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && below(h[l], h[w])) w = l;
        if (r < n && below(h[r], h[w])) w = r;
        if (w == i) return;
        item t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* keeps the best `cap` items seen; h[0] is the worst of them */
static void offer(item *h, int64_t *n, int64_t cap, item x) {
    if (*n < cap) {
        int64_t i = (*n)++;
        h[i] = x;
        while (i > 0) {
            int64_t p = (i - 1) / 2;
            if (!below(h[i], h[p])) break;
            item t = h[i];
            h[i] = h[p];
            h[p] = t;
            i = p;
        }
    } else if (below(h[0], x)) {
        h[0] = x;
        sift_down(h, *n, 0);
    }
}

static int best_first(const void *a, const void *b) {
    item x = *(const item *)a, y = *(const item *)b;
    return below(y, x) ? -1 : (below(x, y) ? 1 : 0);
}

/* sum of (c[d] - 128) * q[d]: the offset is taken out by the caller with the query's sum */
static int32_t dot_u8s8(const uint8_t *c, const int8_t *q, int64_t dim) {
    int64_t d = 0;
    int32_t sum = 0;
#if defined(__AVX512BW__)
    __m512i acc = _mm512_setzero_si512();
#if !defined(__AVX512VNNI__)
    const __m512i ones = _mm512_set1_epi16(1);
#endif
    for (; d + 64 <= dim; d += 64) {
        __m512i a = _mm512_loadu_si512((const void *)(c + d)), b = _mm512_loadu_si512((const void *)(q + d));
#if defined(__AVX512VNNI__)
        acc = _mm512_dpbusd_epi32(acc, a, b);
#else
        acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(a, b), ones));
#endif
    }
    sum += _mm512_reduce_add_epi32(acc);
#endif
#if defined(__AVX2__)
    __m256i acc2 = _mm256_setzero_si256();
    const __m256i ones2 = _mm256_set1_epi16(1);
    for (; d + 32 <= dim; d += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(c + d)), b = _mm256_loadu_si256((const __m256i *)(q + d));
        acc2 = _mm256_add_epi32(acc2, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), ones2));
    }
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc2), _mm256_extracti128_si256(acc2, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    sum += _mm_cvtsi128_si32(s);
#endif
    for (; d < dim; d++) sum += (int32_t)c[d] * (int32_t)q[d];
    return sum;
}

/* float dot with independent partial sums, so the compiler keeps several vector chains */
static float dot_f32(const float *a, const float *b, int64_t dim) {
    float part[8] = {0};
    int64_t d = 0;
    for (; d + 8 <= dim; d += 8)
        for (int l = 0; l < 8; l++) part[l] += a[d + l] * b[d + l];
    float sum = 0.f;
    for (; d < dim; d++) sum += a[d] * b[d];
    for (int l = 0; l < 8; l++) sum += part[l];
    return sum;
}

/* `queries` [m, dim] floats; query j is scored against rows[0 .. ends[j]) of `rows`;
 * out_rows / out_scores [m, k], padded with row -1 where a query has fewer rows */
int engram_link_topk(const uint8_t *codes, const float *scales, const float *vectors, int64_t dim,
                     const int64_t *rows, int64_t n, const int64_t *ends, const float *queries, int64_t m,
                     int64_t r, int64_t k, int64_t *out_rows, float *out_scores) {
    if (dim <= 0 || m <= 0 || k <= 0 || r < k || n < 0) return -1;
    for (int64_t j = 0; j < m; j++)
        if (ends[j] < 0 || ends[j] > n) return -1;
    int8_t *qcodes = malloc((size_t)(m * dim));
    int32_t *qoffsets = malloc(sizeof(int32_t) * (size_t)m);
    item *heaps = malloc(sizeof(item) * (size_t)(m * r));
    int64_t *sizes = calloc((size_t)m, sizeof(int64_t));
    if (!qcodes || !qoffsets || !heaps || !sizes) {
        free(qcodes), free(qoffsets), free(heaps), free(sizes);
        return -2;
    }
    int64_t last = 0;
    for (int64_t j = 0; j < m; j++) {
        const float *q = queries + j * dim;
        float top = 0.f;
        for (int64_t d = 0; d < dim; d++) top = q[d] > top ? q[d] : (-q[d] > top ? -q[d] : top);
        /* the query's scale is the same for all its rows, so the shortlist's order does not need it */
        const float scale = top > 0.f ? top / 63.f : 1.f;
        int32_t total = 0;
        for (int64_t d = 0; d < dim; d++) {
            float x = q[d] / scale;
            int8_t v = (int8_t)(x >= 0.f ? x + 0.5f : x - 0.5f);  /* |x| <= 63: no overflow */
            qcodes[j * dim + d] = v;
            total += v;
        }
        qoffsets[j] = 128 * total;
        if (ends[j] > last) last = ends[j];
    }
    for (int64_t i = 0; i < last; i++) {
        const uint8_t *c = codes + rows[i] * dim;
        if (i + AHEAD < last) prefetch(codes + rows[i + AHEAD] * dim, dim);
        for (int64_t j = 0; j < m; j++) {
            if (i >= ends[j]) continue;
            float approx = (float)(dot_u8s8(c, qcodes + j * dim, dim) - qoffsets[j]) * scales[rows[i]];
            offer(heaps + j * r, sizes + j, r, (item){approx, rows[i]});
        }
    }
    for (int64_t j = 0; j < m; j++)
        for (int64_t t = 0; t < sizes[j]; t++) prefetch(vectors + heaps[j * r + t].row * dim, dim * (int64_t)sizeof(float));
    for (int64_t j = 0; j < m; j++) {
        item *h = heaps + j * r;
        for (int64_t t = 0; t < sizes[j]; t++) h[t].score = dot_f32(vectors + h[t].row * dim, queries + j * dim, dim);
        qsort(h, (size_t)sizes[j], sizeof(item), best_first);
        for (int64_t t = 0; t < k; t++) {
            out_rows[j * k + t] = t < sizes[j] ? h[t].row : -1;
            out_scores[j * k + t] = t < sizes[j] ? h[t].score : 0.f;
        }
    }
    free(qcodes), free(qoffsets), free(heaps), free(sizes);
    return 0;
}
