/*
 * tr_add.c - TFLite ADD and SUB for int8 tensors, bit-exact with TFLite Micro.
 *
 * TFLM's int8 ADD (reference_integer_ops::AddFunc) shifts each input left by 20 bits,
 * rescales it to twice the larger input scale, adds, then rescales the sum to the
 * output and clamps to the fused activation; SUB (SubElementwise) subtracts instead.
 * The per-input rescaling depends on one int8 value only, so the code generator
 * tabulates it: input_tables[v + 128] for input1 and input_tables[256 + v + 128] for
 * input2 (negated for SUB). The device requantizes the sum.
 *
 * params = {output multiplier, output shift (<= 0), output zero point,
 *           activation min, activation max}.
 */
#include "tr_common.h"

typedef struct {
    int32_t multiplier, shift, zero_point, activation_min, activation_max;
} tr_add_output_t;

/* Copied into locals: the int8 output stores may alias anything, so the compiler
 * would otherwise reload every parameter after each store. */
static tr_add_output_t tr_add_unpack(const int32_t *params)
{
    tr_add_output_t q;
    q.multiplier = params[0];
    q.shift = params[1];
    q.zero_point = params[2];
    q.activation_min = params[3];
    q.activation_max = params[4];
    return q;
}

/* The sum requantized to the output (TFLM's MultiplyByQuantizedMultiplierSmallerThanOneExp,
 * which tr_requantize equals for the multipliers QuantizeMultiplier produces). */
TR_INLINE int8_t tr_add_element(int32_t scaled1, int32_t scaled2, const tr_add_output_t *q)
{
    return tr_requantize(scaled1 + scaled2, q->multiplier, q->shift, q->zero_point, q->activation_min,
                         q->activation_max);
}

/* TFLite ADD or SUB, int8, both inputs of the output's shape. output may be input1 (in place). */
TR_KERNEL void tr_add_int8(const int8_t *input1, const int8_t *input2, int8_t *output, int32_t size, const int32_t *input_tables, const int32_t *params)
{
    const tr_add_output_t q = tr_add_unpack(params);
    const int32_t *table1 = input_tables + 128, *table2 = input_tables + 256 + 128;
    for (int32_t i = 0; i < size; i++) {
        output[i] = tr_add_element(table1[input1[i]], table2[input2[i]], &q);
    }
}

/* TFLite ADD or SUB, int8, with broadcasting (TFLM's BroadcastAdd4DSlow). shape holds the
 * output's 4 dimensions, then input1's 4 strides, then input2's (0 where broadcast).
 * output may be input1 when input1 has the output's shape. */
TR_KERNEL void tr_add_broadcast_int8(const int8_t *input1, const int8_t *input2, int8_t *output, const int32_t *shape, const int32_t *input_tables, const int32_t *params)
{
    const tr_add_output_t q = tr_add_unpack(params);
    const int32_t *table1 = input_tables + 128, *table2 = input_tables + 256 + 128;
    const int32_t *dims = shape, *stride1 = shape + 4, *stride2 = shape + 8;
    for (int32_t d0 = 0; d0 < dims[0]; d0++) {
        for (int32_t d1 = 0; d1 < dims[1]; d1++) {
            for (int32_t d2 = 0; d2 < dims[2]; d2++) {
                const int8_t *a = input1 + d0 * stride1[0] + d1 * stride1[1] + d2 * stride1[2];
                const int8_t *b = input2 + d0 * stride2[0] + d1 * stride2[1] + d2 * stride2[2];
                for (int32_t d3 = 0; d3 < dims[3]; d3++) {
                    *output++ = tr_add_element(table1[a[d3 * stride1[3]]], table2[b[d3 * stride2[3]]], &q);
                }
            }
        }
    }
}
