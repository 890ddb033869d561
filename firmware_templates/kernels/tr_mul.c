/*
 * tr_mul.c - TFLite MUL for int8 tensors, bit-exact with TFLite Micro.
 *
 * TFLM's int8 MUL (reference_integer_ops::Mul): (x - zp1) * (y - zp2) in int32,
 * requantized once with the precomputed multiplier, offset, clamped to the fused
 * activation.
 *
 * params = {input1 offset (-zp1), input2 offset (-zp2), then the output's multiplier,
 *           shift, zero point, activation min, activation max (tr_output_params_t)}.
 */
#include "tr_elementwise.h"

typedef struct {
    int32_t input1_offset, input2_offset;
    tr_output_params_t output;
} tr_mul_params_t;

static tr_mul_params_t tr_mul_params(const int32_t *params)
{
    tr_mul_params_t p;
    p.input1_offset = params[0];
    p.input2_offset = params[1];
    p.output = tr_output_params(params + 2);
    return p;
}

/* A row of MUL (tr_elementwise_row_t); parameters copied into locals as in tr_add.c. */
TR_INLINE void tr_mul_row(const int8_t *input1, int32_t step1, const int8_t *input2, int32_t step2, int8_t *output,
                          int32_t count, const void *params)
{
    const tr_mul_params_t p = *(const tr_mul_params_t *)params;
    for (int32_t i = 0; i < count; i++) {
        const int32_t product = (p.input1_offset + input1[i * step1]) * (p.input2_offset + input2[i * step2]);
        output[i] = tr_output_requantize(product, &p.output);
    }
}

/* TFLite MUL, int8, both inputs of the output's shape. output may be input1 (in place). */
TR_KERNEL void tr_mul_int8(const int8_t *input1, const int8_t *input2, int8_t *output, int32_t size, const int32_t *params)
{
    const tr_mul_params_t p = tr_mul_params(params);
    tr_mul_row(input1, 1, input2, 1, output, size, &p);
}

/* TFLite MUL, int8, with broadcasting (TFLM's BroadcastMul4DSlow); shape as for
 * tr_broadcast_rows. output may be input1 when input1 has the output's shape. */
TR_KERNEL void tr_mul_broadcast_int8(const int8_t *input1, const int8_t *input2, int8_t *output, const int32_t *shape, const int32_t *params)
{
    const tr_mul_params_t p = tr_mul_params(params);
    tr_broadcast_rows(input1, input2, output, shape, tr_mul_row, &p);
}
