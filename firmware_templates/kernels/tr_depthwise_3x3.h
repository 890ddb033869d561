/*
 * tr_depthwise_3x3.h - TFLite DEPTHWISE_CONV_2D, 3x3, depth multiplier 1, no dilation, a stride
 * of 1 or 2 across the row (any stride down), any channel count: the MobileNet / DS-CNN case.
 *
 * Four channels at a time. Each input row those channels need is widened once into scratch as,
 * per output column j (input columns x .. x + 2, x = j * stride_w - pad_left), six words: four
 * words pairing columns x and x + 1 of one channel as int16 (channel 0, 1, 2, 3; x low), then
 * column x + 2 as (channel 0, channel 2) and (channel 1, channel 3). A kernel row of an output
 * pixel is then one SMLAD per channel for taps 0 and 1 and one SMLAxy per channel for tap 2.
 */
#ifndef TR_DEPTHWISE_3X3_H
#define TR_DEPTHWISE_3X3_H

#include "tr_params.h"

/* Words of one stored column of one group of four channels in scratch. */
#define TR_DW3_COLUMN_WORDS 6

/* `filter_words`: per group of four channels (the last zero-padded), per kernel row, six words
 * matching a stored column: (w[0][c], w[1][c]) as int16 for channels 0, 1, 2, 3, then
 * (w[2][0], w[2][2]) and (w[2][1], w[2][3]). Where `requant.doubled` is set the weights and
 * the bias are doubled, so the accumulators come out doubled for tr_requantize_doubled. */
typedef struct {
    tr_conv_geometry geometry;   /* k_h = k_w = 3, dil = 1, stride_w 1 or 2; the kernel's frame (below) */
    int32_t transposed;          /* 1: the frame's rows are the image's columns (geometry, weights
                                    and padding given transposed): a tall, narrow image then runs as
                                    a few long rows, and each row's bookkeeping is paid fewer times */
    int32_t input_zero_point;    /* what padding reads as */
    const int32_t *filter_words; /* [(out_c + 3) / 4][3][6] */
    const int32_t *bias;         /* [out_c], the input zero point folded in (doubled: see above);
                                    NULL where group_constants holds the biases */
    tr_requant_params requant;   /* general or doubled form; its arrays NULL where group_constants
                                    holds them (output_offset and the clamp range always set) */
    const int32_t *group_constants; /* NULL, or per group of four channels (the last zero-padded)
                                       TR_DW3_GROUP_CONSTANTS words, the order the DSP path's
                                       assembly row loop reads them by LDM: per channel the doubled
                                       form's multiplier, rounding constant and right shift, then
                                       the four (doubled) biases. Set where that loop runs (doubled
                                       form, clamp range all of int8, generated for a DSP target),
                                       and then the call's only copy of its biases and
                                       requantization: the plain C form reads it too */
} tr_depthwise_3x3_params;

/* Words per group of four channels in `group_constants`. */
#define TR_DW3_GROUP_CONSTANTS 16

/* Scratch bytes the kernel needs: four rows (three input rows and a row of zero points) of
 * out_w stored columns. */
#define TR_DW3_SCRATCH_BYTES(out_w) (4 * (out_w) * TR_DW3_COLUMN_WORDS * 4)

/* Two entry points, one per requantization form, so each call runs one straight path (and the
 * cost model sees two kernels): the general form, and the doubled form (`requant.doubled` set). */
void tr_depthwise_conv_3x3_int8(const tr_depthwise_3x3_params *params, const int8_t *input, int8_t *output,
                                int8_t *scratch);
void tr_depthwise_conv_3x3_doubled_int8(const tr_depthwise_3x3_params *params, const int8_t *input,
                                        int8_t *output, int8_t *scratch);

#endif /* TR_DEPTHWISE_3X3_H */
