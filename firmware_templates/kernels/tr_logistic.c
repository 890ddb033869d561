/*
 * tr_logistic.c - TFLite LOGISTIC (sigmoid) for int8 tensors, bit-exact with TFLite Micro.
 *
 * table[x + 128] is TFLM's output for input x (reference_integer_ops::Logistic with
 * gemmlowp's fixed-point logistic), computed by the code generator for this op's
 * input quantization, so the device does one lookup per element.
 */
#include "tr_common.h"

/* TFLite LOGISTIC, int8 -> int8 (output scale 1/256, zero point -128). In place is fine. */
TR_KERNEL void tr_logistic_int8(const int8_t *input, int8_t *output, int32_t size, const int8_t *table)
{
    for (int32_t i = 0; i < size; i++) {
        output[i] = table[input[i] + 128];
    }
}
