/*
 * tr_add.c - TFLite ADD and SUB for int8 tensors (tr_add.h): two table lookups and one
 * requantization per element.
 */
#include "tr_add.h"

#include "tr_elementwise.h"

typedef struct {
    const int32_t *table1, *table2; /* indexed by the int8 value itself */
    tr_tensor_requant output;
} tr_add_row_params;

static tr_add_row_params tr_add_row_params_of(const tr_add_params *params)
{
    tr_add_row_params p;
    p.table1 = params->input_tables + 128;
    p.table2 = params->input_tables + 256 + 128;
    p.output = params->output;
    return p;
}

/* A row of ADD/SUB (tr_elementwise_row_t). The parameters are copied into locals: the int8
 * output stores may alias anything, so the compiler would otherwise reload them after each store. */
TR_INLINE void tr_add_row(const int8_t *input1, int32_t step1, const int8_t *input2, int32_t step2, int8_t *output,
                          int32_t count, const void *params)
{
    const tr_add_row_params p = *(const tr_add_row_params *)params;
    for (int32_t i = 0; i < count; i++) {
        output[i] = tr_output_requantize(p.table1[input1[i * step1]] + p.table2[input2[i * step2]], &p.output);
    }
}

TR_KERNEL void tr_add_int8(const tr_add_params *params, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    const tr_add_row_params p = tr_add_row_params_of(params);
    tr_add_row(input1, 1, input2, 1, output, params->size, &p);
}

TR_KERNEL void tr_add_broadcast_int8(const tr_add_params *params, const int8_t *input1, const int8_t *input2,
                                     int8_t *output)
{
    const tr_add_row_params p = tr_add_row_params_of(params);
    tr_broadcast_rows(input1, input2, output, &params->broadcast, tr_add_row, &p);
}
