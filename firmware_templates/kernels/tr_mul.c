/*
 * tr_mul.c - TFLite MUL for int8 tensors (tr_mul.h).
 */
#include "tr_mul.h"

#include "tr_elementwise.h"

/* A row of MUL (tr_elementwise_row_t); parameters copied into locals as in tr_add.c. */
TR_INLINE void tr_mul_row(const int8_t *input1, int32_t step1, const int8_t *input2, int32_t step2, int8_t *output,
                          int32_t count, const void *params)
{
    const tr_mul_params p = *(const tr_mul_params *)params;
    for (int32_t i = 0; i < count; i++) {
        const int32_t product = (p.input1_offset + input1[i * step1]) * (p.input2_offset + input2[i * step2]);
        output[i] = tr_output_requantize(product, &p.output);
    }
}

TR_KERNEL void tr_mul_int8(const tr_mul_params *params, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    tr_mul_row(input1, 1, input2, 1, output, params->size, params);
}

TR_KERNEL void tr_mul_broadcast_int8(const tr_mul_params *params, const int8_t *input1, const int8_t *input2,
                                     int8_t *output)
{
    tr_broadcast_rows(input1, input2, output, &params->broadcast, tr_mul_row, params);
}
