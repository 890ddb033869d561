/*
 * tr_add.h - TFLite ADD and SUB for int8 tensors, bit-exact with TFLite Micro.
 *
 * TFLM's int8 ADD (reference_integer_ops::AddFunc) shifts each input left by 20 bits,
 * rescales it to twice the larger input scale, adds, then rescales the sum to the output
 * and clamps to the fused activation; SUB (SubElementwise) subtracts instead. The
 * per-input rescaling depends on one int8 value only, so the generator tabulates it.
 */
#ifndef TR_ADD_H
#define TR_ADD_H

#include "tr_params.h"

typedef struct {
    int32_t size;                 /* elements (tr_add_int8) */
    tr_broadcast_shape broadcast; /* the output's shape and input strides (tr_add_broadcast_int8) */
    /* input1's rescaled value of v at [v + 128], input2's at [256 + v + 128] (negated for SUB) */
    const int32_t *input_tables;
    tr_tensor_requant output;     /* the sum to the output; shift <= 0 */
} tr_add_params;

/* Both inputs of the output's shape. output may be input1 (in place). */
void tr_add_int8(const tr_add_params *params, const int8_t *input1, const int8_t *input2, int8_t *output);

/* With broadcasting (TFLM's BroadcastAdd4DSlow). output may be input1 when input1 has the
 * output's shape. */
void tr_add_broadcast_int8(const tr_add_params *params, const int8_t *input1, const int8_t *input2,
                           int8_t *output);

#endif /* TR_ADD_H */
