/* Dequantize torch's CPU int4pack layout to a bf16 (or fp32) weight, in one pass.
 *
 * Eager PyTorch needs five or six passes over the weight for this (unpack the nibbles, convert,
 * scale, offset, round to bf16), 2.2 ms for a 3072x576 weight on the AMX machine against 0.6 ms
 * for the bf16 matmul that follows. A prefill dequantizes every weight of the model once.
 *
 * Input layout (torch's _convert_weight_to_int4pack_for_cpu, checked by the Python tests): per
 * block of `block` output rows, per input column, block/2 bytes whose low nibbles are rows
 * 0..block/2-1 of the block and high nibbles rows block/2..block-1. scales_zeros: bf16
 * [k/group, n, 2] (scale, zero). The weight is w = (q - 8) * scale + zero, computed in fp32 (the
 * product is exact: an integer below 16 times a bf16) and rounded to nearest-even bf16.
 *
 * Output: bf16 [n, k], the layout the PyTorch path produces. Writing W transposed instead was
 * 40% faster here (0.37 against 0.63 ms for 3072x576), but the bf16 matmul then accumulates in
 * another order, and a prefill's logits moved by up to 1.7 (bf16 rounding carried over 30
 * layers); this layout keeps every logit of the PyTorch path, bit for bit.
 * Blocks [blk_begin, blk_end) are written: callers split the blocks between threads.
 *
 * engram_int4_dequant_f32 writes the same weight unrounded, as fp32, for CPUs without native bf16
 * arithmetic (AVX2), where the matmul that follows runs in fp32 (see inference/compute_dtype.py).
 *
 * Per block the packed bytes (k * block/2) stay in L1 while its rows are written in turn.
 */
#include <stdint.h>
#include <string.h>


static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += 0x7FFFu + ((u >> 16) & 1u); /* round to nearest, ties to even (weights are finite) */
    return (uint16_t)(u >> 16);
}

/* out[idx] = v, as bf16 or as fp32; `f32` is a constant in each caller, so the branch folds away */
static inline void put(void *out, int64_t idx, float v, const int f32) {
    if (f32)
        ((float *)out)[idx] = v;
    else
        ((uint16_t *)out)[idx] = f32_to_bf16(v);
}

static inline int dequant(const uint8_t *packed, const uint16_t *scales_zeros, void *out,
                          int64_t n, int64_t k, int64_t block, int64_t group,
                          int64_t blk_begin, int64_t blk_end, const int f32) {
    if (block <= 0 || block % 2 || group <= 0 || k % group || n % block)
        return -1;
    const int64_t half = block / 2;
    for (int64_t b = blk_begin; b < blk_end; b++) {
        const uint8_t *pb = packed + b * k * half;
        /* rows jj and jj + half share each byte: low and high nibble */
        for (int64_t jj = 0; jj < half; jj++) {
            const int64_t lo_row = b * block + jj, hi_row = lo_row + half;
            for (int64_t g = 0; g < k / group; g++) {
                const uint16_t *lo_sz = scales_zeros + (g * n + lo_row) * 2;
                const uint16_t *hi_sz = scales_zeros + (g * n + hi_row) * 2;
                const float lo_s = bf16_to_f32(lo_sz[0]), lo_z = bf16_to_f32(lo_sz[1]);
                const float hi_s = bf16_to_f32(hi_sz[0]), hi_z = bf16_to_f32(hi_sz[1]);
                for (int64_t col = g * group; col < (g + 1) * group; col++) {
                    const uint8_t byte = pb[col * half + jj];
                    put(out, lo_row * k + col, (float)((byte & 15) - 8) * lo_s + lo_z, f32);
                    put(out, hi_row * k + col, (float)((byte >> 4) - 8) * hi_s + hi_z, f32);
                }
            }
        }
    }
    return 0;
}

int engram_int4_dequant(const uint8_t *packed, const uint16_t *scales_zeros, uint16_t *out,
                        int64_t n, int64_t k, int64_t block, int64_t group,
                        int64_t blk_begin, int64_t blk_end) {
    return dequant(packed, scales_zeros, out, n, k, block, group, blk_begin, blk_end, 0);
}

int engram_int4_dequant_f32(const uint8_t *packed, const uint16_t *scales_zeros, float *out,
                            int64_t n, int64_t k, int64_t block, int64_t group,
                            int64_t blk_begin, int64_t blk_end) {
    return dequant(packed, scales_zeros, out, n, k, block, group, blk_begin, blk_end, 1);
}
