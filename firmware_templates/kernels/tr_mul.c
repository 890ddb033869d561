/*
 * tr_mul.c - TFLite MUL for int8 tensors, bit-exact with TFLite Micro.
 *
 * TFLM's int8 MUL (reference_integer_ops::Mul): (x - zp1) * (y - zp2) in int32,
 * requantized once with the precomputed multiplier, offset, clamped to the fused
 * activation. Parameters come in a params array (see tr_mul_params_t for the order).
 */
#include "tr_common.h"

typedef struct {
    int32_t input1_offset, input2_offset, output_offset;
    int32_t output_multiplier, output_shift;
    int32_t activation_min, activation_max;
} tr_mul_params_t;

/* Copied into locals so the int8 stores do not force reloads of the parameters. */
static tr_mul_params_t tr_mul_unpack(const int32_t *p)
{
    tr_mul_params_t q;
    q.input1_offset = p[0];
    q.input2_offset = p[1];
    q.output_offset = p[2];
    q.output_multiplier = p[3];
    q.output_shift = p[4];
    q.activation_min = p[5];
    q.activation_max = p[6];
    return q;
}

TR_INLINE int8_t tr_mul_element(int8_t x, int8_t y, const tr_mul_params_t *q)
{
    const int32_t product = (q->input1_offset + x) * (q->input2_offset + y);
    return tr_requantize(product, q->output_multiplier, q->output_shift, q->output_offset, q->activation_min,
                         q->activation_max);
}

/* TFLite MUL, int8, both inputs of the output's shape. output may be input1 (in place). */
TR_KERNEL void tr_mul_int8(const int8_t *input1, const int8_t *input2, int8_t *output, int32_t size, const int32_t *params)
{
    const tr_mul_params_t q = tr_mul_unpack(params);
    for (int32_t i = 0; i < size; i++) {
        output[i] = tr_mul_element(input1[i], input2[i], &q);
    }
}

/* TFLite MUL, int8, with broadcasting (TFLM's BroadcastMul4DSlow). shape holds the
 * output's 4 dimensions, then input1's 4 strides, then input2's (0 where broadcast).
 * output may be input1 when input1 has the output's shape. */
TR_KERNEL void tr_mul_broadcast_int8(const int8_t *input1, const int8_t *input2, int8_t *output, const int32_t *shape, const int32_t *params)
{
    const tr_mul_params_t q = tr_mul_unpack(params);
    const int32_t *dims = shape, *stride1 = shape + 4, *stride2 = shape + 8;
    for (int32_t d0 = 0; d0 < dims[0]; d0++) {
        for (int32_t d1 = 0; d1 < dims[1]; d1++) {
            for (int32_t d2 = 0; d2 < dims[2]; d2++) {
                const int8_t *a = input1 + d0 * stride1[0] + d1 * stride1[1] + d2 * stride1[2];
                const int8_t *b = input2 + d0 * stride2[0] + d1 * stride2[1] + d2 * stride2[2];
                for (int32_t d3 = 0; d3 < dims[3]; d3++) {
                    *output++ = tr_mul_element(a[d3 * stride1[3]], b[d3 * stride2[3]], &q);
                }
            }
        }
    }
}
