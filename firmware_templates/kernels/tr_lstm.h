/*
 * tr_lstm.h - TFLite UNIDIRECTIONAL_SEQUENCE_LSTM, int8 activations and weights with an int16
 * cell state (TFLite Micro's integer LSTM, lstm_eval.h), bit-exact with TFLite Micro.
 *
 * Per time step, each gate is two matmuls (input x W, previous hidden state x R), each
 * requantized to int16 Q3.12 with its own multiplier and added with saturation, then
 * sigmoid (or tanh for the cell gate) into Q0.15. The cell state (int16, power-of-two scale)
 * becomes forget * cell + input * cell_gate, clipped; the hidden state is
 * output_gate * tanh(cell), requantized to int8, and is copied to the output sequence.
 */
#ifndef TR_LSTM_H
#define TR_LSTM_H

#include "tr_params.h"

/* One matmul of a gate: `rows` outputs of `cols` int8 inputs, requantized to int16 Q3.12.
 * `weights` are row-major (rows x cols); `bias` holds the gate bias (input matmul only) with
 * the input's zero point folded in (-zp * row sum). */
typedef struct {
    const int8_t *weights;
    const int32_t *bias;
    int32_t multiplier, shift; /* QuantizeMultiplier of input scale * weight scale / 2^-12 */
} tr_lstm_matmul;

/* A gate: its input matmul (over the input features) and recurrent one (over the hidden state). */
typedef struct {
    tr_lstm_matmul input, recurrent;
} tr_lstm_gate;

/* An elementwise int16 x int16 product, requantized (TFLM's MulElementwise). */
typedef struct {
    int32_t multiplier, shift;
    int32_t output_offset;
    int32_t act_min, act_max;
} tr_lstm_mul;

typedef struct {
    int32_t batches, time_steps, input_depth, units;
    int32_t time_major; /* 1: the input is [time, batch, features] */
    tr_lstm_gate input_gate, forget_gate, cell_gate, output_gate;
    int32_t cell_gate_tanh; /* 1: the cell gate's activation is tanh, 0: sigmoid */
    /* tanh of the cell state: (c * multiplier + rounding) >> shift into Q3.12 times 3 */
    int32_t cell_tanh_multiplier, cell_tanh_shift;
    tr_lstm_mul forget_times_cell; /* Q0.15 x cell -> cell */
    tr_lstm_mul input_times_cell;  /* Q0.15 x Q0.15 -> cell */
    tr_lstm_mul hidden;            /* Q0.15 x Q0.15 -> int8 hidden state (its zero point) */
    int32_t use_cell_clip;         /* the op's cell_clip > 0 */
    int32_t cell_clip;             /* then |cell| <= cell_clip (quantized as TFLM does) */
} tr_lstm_params;

/* The int16 scratch the kernel needs: four gate vectors of `units` (TR_LSTM_SCRATCH_BYTES). */
#define TR_LSTM_SCRATCH_BYTES(units) (4 * 2 * (units))

/* Runs the whole sequence. The hidden state (batches x units int8) and the cell state
 * (batches x units int16) are cleared first: every inference is one independent sequence,
 * as for a stateless Keras LSTM. output is [batches, time_steps, units] (or time-major). */
void tr_lstm_int8(const tr_lstm_params *params, const int8_t *input, int8_t *hidden_state, int16_t *cell_state,
                  int8_t *output, int16_t *scratch);

#endif /* TR_LSTM_H */
