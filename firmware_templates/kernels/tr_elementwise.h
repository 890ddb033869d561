/*
 * tr_elementwise.h - what the two-input elementwise kernels (ADD/SUB, MUL) share: the
 * requantization of a result to the output, and the walk over a 4-D broadcast.
 */
#ifndef TR_ELEMENTWISE_H
#define TR_ELEMENTWISE_H

#include "tr_common.h"

/* The output side of TFLM's int8 ADD and MUL: a result rescaled, offset and clamped to the
 * fused activation. Read from 5 int32: multiplier, shift, zero point, activation min, max. */
typedef struct {
    int32_t multiplier, shift, zero_point, activation_min, activation_max;
} tr_output_params_t;

TR_INLINE tr_output_params_t tr_output_params(const int32_t *p)
{
    tr_output_params_t q;
    q.multiplier = p[0];
    q.shift = p[1];
    q.zero_point = p[2];
    q.activation_min = p[3];
    q.activation_max = p[4];
    return q;
}

/* TFLM's MultiplyByQuantizedMultiplier(SmallerThanOneExp) + zero point + clamp, which
 * tr_requantize equals for the multipliers QuantizeMultiplier produces. */
TR_INLINE int8_t tr_output_requantize(int32_t value, const tr_output_params_t *q)
{
    return tr_requantize(value, q->multiplier, q->shift, q->zero_point, q->activation_min, q->activation_max);
}

/* One kernel's loop over `count` output elements, reading input1 every step1 elements and
 * input2 every step2 (1 for plain elementwise, 0 to repeat a broadcast value). */
typedef void (*tr_elementwise_row_t)(const int8_t *input1, int32_t step1, const int8_t *input2, int32_t step2,
                                     int8_t *output, int32_t count, const void *params);

/* Two inputs broadcast to a 4-D output, in TFLM's Broadcast{Add,Mul}4DSlow order: `row` runs
 * once per innermost row of the output. shape holds the output's 4 dimensions, then
 * input1's 4 strides, then input2's (0 where that input is broadcast). */
TR_INLINE void tr_broadcast_rows(const int8_t *input1, const int8_t *input2, int8_t *output, const int32_t *shape,
                                 tr_elementwise_row_t row, const void *params)
{
    const int32_t *dims = shape, *stride1 = shape + 4, *stride2 = shape + 8;
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
