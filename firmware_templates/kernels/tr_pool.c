/*
 * tr_pool.c - TFLite AVERAGE_POOL_2D and MAX_POOL_2D for int8 NHWC tensors,
 * bit-exact with TFLite Micro's reference kernels (reference_integer_ops/pooling.h).
 *
 * geometry = {batches, in_h, in_w, channels, out_h, out_w, filter_h, filter_w,
 *             stride_h, stride_w, pad_h, pad_w}, computed by the code generator.
 * The window is clipped to the input: padding cells are neither summed nor counted.
 */
#include "tr_common.h"

/* Both pools: for each output value, reduce its clipped window (sum or max), then
 * divide (average only) and clamp. Inlined into each kernel with `average` constant. */
TR_INLINE void tr_pool_int8(const int8_t *input, int8_t *output, const int32_t *g, int32_t act_min, int32_t act_max, const int average)
{
    const int32_t in_h = g[1], in_w = g[2], channels = g[3];
    for (int32_t b = 0; b < g[0]; b++) {
        for (int32_t oy = 0; oy < g[4]; oy++) {
            const int32_t in_y = oy * g[8] - g[10];
            const int32_t y_start = tr_max_i32(0, -in_y), y_end = tr_min_i32(g[6], in_h - in_y);
            for (int32_t ox = 0; ox < g[5]; ox++) {
                const int32_t in_x = ox * g[9] - g[11];
                const int32_t x_start = tr_max_i32(0, -in_x), x_end = tr_min_i32(g[7], in_w - in_x);
                const int32_t count = (y_end - y_start) * (x_end - x_start);
                /* offset of input (b, in_y, in_x, 0); negative when the window starts in the padding */
                const int32_t origin = ((b * in_h + in_y) * in_w + in_x) * channels;
                for (int32_t c = 0; c < channels; c++) {
                    int32_t acc = average ? 0 : INT8_MIN;
                    for (int32_t fy = y_start; fy < y_end; fy++) {
                        const int32_t row = origin + fy * in_w * channels + c;
                        for (int32_t fx = x_start; fx < x_end; fx++) {
                            const int32_t value = input[row + fx * channels];
                            acc = average ? acc + value : tr_max_i32(acc, value);
                        }
                    }
                    if (average && count > 0) {
                        /* round half away from zero, as TFLM */
                        acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    }
                    *output++ = tr_clamp_to_int8(acc, act_min, act_max);
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
