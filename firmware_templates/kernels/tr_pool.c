/*
 * tr_pool.c - TFLite AVERAGE_POOL_2D and MAX_POOL_2D for int8 NHWC tensors (tr_pool.h).
 * Channels are the innermost loop (they are contiguous in NHWC), TR_POOL_BLOCK at a time
 * with their accumulators on the stack.
 */
#include "tr_pool.h"

#include "tr_requantize.h"

#define TR_POOL_BLOCK 16

/* Both pools: for each output pixel, reduce its clipped window (sum or max) channel
 * block by channel block, then divide (average only) and clamp. Inlined into each
 * kernel with `average` constant. */
TR_INLINE void tr_pool_int8(const tr_pool_params *params, const int8_t *input, int8_t *output, const int average)
{
    const tr_conv_geometry *g = &params->geometry;
    const int32_t in_h = g->in_h, in_w = g->in_w, channels = g->in_c;
    const int32_t act_min = params->act_min, act_max = params->act_max;
    int32_t acc[TR_POOL_BLOCK];
    for (int32_t b = 0; b < g->batches; b++) {
        for (int32_t oy = 0; oy < g->out_h; oy++) {
            const int32_t in_y = oy * g->stride_h - g->pad_top;
            const int32_t y_start = tr_max_i32(0, -in_y), y_end = tr_min_i32(g->k_h, in_h - in_y);
            for (int32_t ox = 0; ox < g->out_w; ox++) {
                const int32_t in_x = ox * g->stride_w - g->pad_left;
                const int32_t x_start = tr_max_i32(0, -in_x), x_end = tr_min_i32(g->k_w, in_w - in_x);
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

TR_KERNEL void tr_average_pool_int8(const tr_pool_params *params, const int8_t *input, int8_t *output)
{
    tr_pool_int8(params, input, output, 1);
}

TR_KERNEL void tr_max_pool_int8(const tr_pool_params *params, const int8_t *input, int8_t *output)
{
    tr_pool_int8(params, input, output, 0);
}
