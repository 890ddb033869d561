/*
 * tr_tanh.c - TFLite TANH for int8 tensors, bit-exact with TFLite Micro.
 *
 * table[x + 128] is TFLM's output for input x (reference_integer_ops::Tanh with
 * gemmlowp's fixed-point tanh, output in Q0.7), computed by the code generator for
 * this op's input quantization.
 */
#include "tr_common.h"

/* TFLite TANH, int8 -> int8 (output scale 1/128, zero point 0). In place is fine. */
TR_KERNEL void tr_tanh_int8(const int8_t *input, int8_t *output, int32_t size, const int8_t *table)
{
    for (int32_t i = 0; i < size; i++) {
        output[i] = table[input[i] + 128];
    }
}
