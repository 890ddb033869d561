/*
 * tr_mul.h - TFLite MUL for int8 tensors, bit-exact with TFLite Micro
 * (reference_integer_ops::Mul): (x - zp1) * (y - zp2) in int32, requantized once.
 */
#ifndef TR_MUL_H
#define TR_MUL_H

#include "tr_params.h"

typedef struct {
    int32_t size;                 /* elements (tr_mul_int8) */
    tr_broadcast_shape broadcast; /* the output's shape and input strides (tr_mul_broadcast_int8) */
    int32_t input1_offset, input2_offset; /* minus the inputs' zero points */
    tr_tensor_requant output;
} tr_mul_params;

/* Both inputs of the output's shape. output may be input1 (in place). */
void tr_mul_int8(const tr_mul_params *params, const int8_t *input1, const int8_t *input2, int8_t *output);

/* With broadcasting (TFLM's BroadcastMul4DSlow). output may be input1 when input1 has the
 * output's shape. */
void tr_mul_broadcast_int8(const tr_mul_params *params, const int8_t *input1, const int8_t *input2,
                           int8_t *output);

#endif /* TR_MUL_H */
