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
 *           activation min, activation max} (tr_output_params_t).
 */
#include "tr_elementwise.h"

typedef struct {
    const int32_t *table1, *table2; /* indexed by the int8 value itself */
    tr_output_params_t output;
} tr_add_params_t;

static tr_add_params_t tr_add_params(const int32_t *input_tables, const int32_t *params)
{
    tr_add_params_t p;
    p.table1 = input_tables + 128;
    p.table2 = input_tables + 256 + 128;
    p.output = tr_output_params(params);
    return p;
}

/* A row of ADD/SUB (tr_elementwise_row_t). The parameters are copied into locals: the int8
 * output stores may alias anything, so the compiler would otherwise reload them after each store. */
TR_INLINE void tr_add_row(const int8_t *input1, int32_t step1, const int8_t *input2, int32_t step2, int8_t *output,
                          int32_t count, const void *params)
{
    const tr_add_params_t p = *(const tr_add_params_t *)params;
    for (int32_t i = 0; i < count; i++) {
        output[i] = tr_output_requantize(p.table1[input1[i * step1]] + p.table2[input2[i * step2]], &p.output);
    }
}

/* TFLite ADD or SUB, int8, both inputs of the output's shape. output may be input1 (in place). */
TR_KERNEL void tr_add_int8(const int8_t *input1, const int8_t *input2, int8_t *output, int32_t size, const int32_t *input_tables, const int32_t *params)
{
    const tr_add_params_t p = tr_add_params(input_tables, params);
    tr_add_row(input1, 1, input2, 1, output, size, &p);
}

/* TFLite ADD or SUB, int8, with broadcasting (TFLM's BroadcastAdd4DSlow); shape as for
 * tr_broadcast_rows. output may be input1 when input1 has the output's shape. */
TR_KERNEL void tr_add_broadcast_int8(const int8_t *input1, const int8_t *input2, int8_t *output, const int32_t *shape, const int32_t *input_tables, const int32_t *params)
{
    const tr_add_params_t p = tr_add_params(input_tables, params);
    tr_broadcast_rows(input1, input2, output, shape, tr_add_row, &p);
}
