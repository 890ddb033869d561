/*
 * tr_pool.c - TFLite AVERAGE_POOL_2D and MAX_POOL_2D for int8 NHWC tensors,
 * bit-exact with TFLite Micro's reference kernels (reference_integer_ops/pooling.h).
 *
 * geometry = {batches, in_h, in_w, channels, out_h, out_w, filter_h, filter_w,
 *             stride_h, stride_w, pad_h, pad_w}, computed by the code generator.
 * The window is clipped to the input: padding cells are neither summed nor counted.
 * Channels are the innermost loop (they are contiguous in NHWC), TR_POOL_BLOCK at a
 * time with their accumulators on the stack.
 */
#include "tr_common.h"

#define TR_POOL_BLOCK 16

/* Both pools: for each output pixel, reduce its clipped window (sum or max) channel
 * block by channel block, then divide (average only) and clamp. Inlined into each
 * kernel with `average` constant. */
TR_INLINE void tr_pool_int8(const int8_t *input, int8_t *output, const int32_t *g, int32_t act_min, int32_t act_max, const int average)
{
    const int32_t in_h = g[1], in_w = g[2], channels = g[3];
    int32_t acc[TR_POOL_BLOCK];
    for (int32_t b = 0; b < g[0]; b++) {
        for (int32_t oy = 0; oy < g[4]; oy++) {
            const int32_t in_y = oy * g[8] - g[10];
            const int32_t y_start = tr_max_i32(0, -in_y), y_end = tr_min_i32(g[6], in_h - in_y);
            for (int32_t ox = 0; ox < g[5]; ox++) {
                const int32_t in_x = ox * g[9] - g[11];
                const int32_t x_start = tr_max_i32(0, -in_x), x_end = tr_min_i32(g[7], in_w - in_x);
                const int32_t count = (y_end - y_start) * (x_end - x_start);
                for (int32_t c0 = 0; c0 < channels; c0 += TR_POOL_BLOCK) {
                    const int32_t n = tr_min_i32(TR_POOL_BLOCK, channels - c0);
                    for (int32_t k = 0; k < n; k++) {
                        acc[k] = average ? 0 : INT8_MIN;
                    }
                    for (int32_t fy = y_start; fy < y_end; fy++) {
                        for (int32_t fx = x_start; fx < x_end; fx++) {
                            const int8_t *cell = input + (((b * in_h + in_y + fy) * in_w + in_x + fx) * channels + c0);
                            for (int32_t k = 0; k < n; k++) {
                                acc[k] = average ? acc[k] + cell[k] : tr_max_i32(acc[k], cell[k]);
                            }
                        }
                    }
                    for (int32_t k = 0; k < n; k++) {
                        int32_t value = acc[k];
                        if (average && count > 0) {
                            /* round half away from zero, as TFLM */
                            value = value > 0 ? (value + count / 2) / count : (value - count / 2) / count;
                        }
                        *output++ = tr_clamp_to_int8(value, act_min, act_max);
                    }
                }
            }
        }
    }
}

/* TFLite AVERAGE_POOL_2D, int8: the window mean rounded half away from zero, clamped. */
TR_KERNEL void tr_average_pool_int8(const int8_t *input, int8_t *output, const int32_t *geometry, int32_t act_min, int32_t act_max)
{
    tr_pool_int8(input, output, geometry, act_min, act_max, 1);
}

/* TFLite MAX_POOL_2D, int8: the window maximum, clamped to the fused activation. */
TR_KERNEL void tr_max_pool_int8(const int8_t *input, int8_t *output, const int32_t *geometry, int32_t act_min, int32_t act_max)
{
    tr_pool_int8(input, output, geometry, act_min, act_max, 0);
}
