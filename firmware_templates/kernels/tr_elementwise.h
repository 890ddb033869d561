/*
 * tr_elementwise.h - what the two-input elementwise kernels (ADD/SUB, MUL) share: the
 * requantization of a result to the output, and the walk over a 4-D broadcast.
 */
#ifndef TR_ELEMENTWISE_H
#define TR_ELEMENTWISE_H

#include "tr_requantize.h"

/* TFLM's MultiplyByQuantizedMultiplier(SmallerThanOneExp) + zero point + clamp, which
 * tr_requantize equals for the multipliers QuantizeMultiplier produces. */
TR_INLINE int8_t tr_output_requantize(int32_t value, const tr_tensor_requant *q)
{
    return tr_requantize(value, q->multiplier, q->shift, q->output_offset, q->act_min, q->act_max);
}

/* One kernel's loop over `count` output elements, reading input1 every step1 elements and
 * input2 every step2 (1 for plain elementwise, 0 to repeat a broadcast value). */
typedef void (*tr_elementwise_row_t)(const int8_t *input1, int32_t step1, const int8_t *input2, int32_t step2,
                                     int8_t *output, int32_t count, const void *params);

/* Two inputs broadcast to a 4-D output, in TFLM's Broadcast{Add,Mul}4DSlow order: `row` runs
 * once per innermost row of the output. */
TR_INLINE void tr_broadcast_rows(const int8_t *input1, const int8_t *input2, int8_t *output,
                                 const tr_broadcast_shape *shape, tr_elementwise_row_t row, const void *params)
{
    const int32_t *dims = shape->dims, *stride1 = shape->stride1, *stride2 = shape->stride2;
    for (int32_t d0 = 0; d0 < dims[0]; d0++) {
        for (int32_t d1 = 0; d1 < dims[1]; d1++) {
            for (int32_t d2 = 0; d2 < dims[2]; d2++) {
                const int8_t *a = input1 + d0 * stride1[0] + d1 * stride1[1] + d2 * stride1[2];
                const int8_t *b = input2 + d0 * stride2[0] + d1 * stride2[1] + d2 * stride2[2];
                row(a, stride1[3], b, stride2[3], output, dims[3], params);
                output += dims[3];
            }
        }
    }
}

#endif /* TR_ELEMENTWISE_H */
