/*
 * tr_lstm.c - TFLite UNIDIRECTIONAL_SEQUENCE_LSTM, int8 x int8 -> int16 gates (tr_lstm.h).
 *
 * The arithmetic is TFLite Micro's integer LSTM step by step: each matmul requantized on its own
 * (reference_integer_ops::FullyConnected to int16), AddElementWise saturating, the int16
 * Logistic/Tanh lookups with interpolation, MulElementwise for the cell and hidden updates,
 * then Clipping. The loops are plain: an LSTM here is a few thousand MACs per step.
 */
#include "tr_lstm.h"

#include <string.h>

#include "tr_dot.h"
#include "tr_requantize.h"

/* TFLite's sigmoid_table_uint16: sigmoid(i / 24) in unsigned 0.16 fixed point (tanh reuses
 * it as 2 * sigmoid(2x) - 1). TFLite's values, not a formula's: bit-exactness needs them. */
static const uint16_t tr_sigmoid_table[256] = {
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149,
    40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369,
    47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169,
    53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370,
    60565, 60753, 60935, 61110, 61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302,
    62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186, 63279, 63368, 63454, 63536,
    63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786,
    64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079,
    65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258,
    65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
    65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474,
    65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498,
    65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522,
    65523, 65523, 65524, 65524, 65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528,
    65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531,
    65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
    65534, 65534, 65534, 65535,
};

TR_INLINE int16_t tr_lstm_saturate16(int32_t x)
{
    return (int16_t)(x < INT16_MIN ? INT16_MIN : (x > INT16_MAX ? INT16_MAX : x));
}

/* TFLM's MultiplyByQuantizedMultiplier (two roundings), branch-free as tr_requantize writes it,
 * without the output offset and clamp: the gates clamp to int16, the products to their range. */
TR_INLINE int32_t tr_lstm_scale(int32_t acc, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift & ~(shift >> 31);
    const int32_t right = left - shift;
    const int32_t x = (int32_t)((uint32_t)acc << left);
    const int32_t high = (int32_t)(((int64_t)x * multiplier + (1LL << 30)) >> 31);
    const int32_t mask = (int32_t)((1u << right) - 1u);
    const int32_t threshold = (mask >> 1) + (int32_t)((uint32_t)high >> 31);
    return (high >> right) + ((high & mask) > threshold);
}

/* out[r] = int16(requantize(bias[r] + weights row r . x)) for r < rows, the row of `cols`
 * int8 weights. Every gate matrix (input or recurrent) is read here and only here, so a
 * low-rank factored pair (U: rows x rank, V: rank x cols) can replace this one call later. */
static void tr_lstm_matmul_int16(const int8_t *weights, int32_t rows, int32_t cols, const tr_lstm_matmul *m,
                                 const int8_t *x, int16_t *out)
{
    for (int32_t r = 0; r < rows; r++, weights += cols) {
        const int32_t acc = tr_dot_int8(m->bias[r], x, weights, (int)cols);
        out[r] = tr_lstm_saturate16(tr_lstm_scale(acc, m->multiplier, m->shift));
    }
}

/* TFLM's int16 Logistic with input_multiplier 0, input_left_shift 0 (Q3.12 in, Q0.15 out). */
static void tr_lstm_sigmoid(int16_t *data, int32_t n)
{
    for (int32_t i = 0; i < n; i++) {
        const int32_t x = (int32_t)data[i] * 3;
        const uint32_t ax = (uint32_t)(x < 0 ? -x : x);
        const uint32_t uh = ax >> 9;
        uint32_t result;
        if (uh >= 255u) {
            result = 0x7FFFu << 10;
        } else {
            const uint32_t ua = tr_sigmoid_table[uh], ub = tr_sigmoid_table[uh + 1u];
            result = (ua << 9) + (ax & 0x1FFu) * (ub - ua);
        }
        result = x >= 0 ? result + (1u << 9) : (1u << 25) - result + (1u << 9) - 1u;
        data[i] = (int16_t)(int32_t)(result >> 10);
    }
}

/* TFLM's int16 Tanh: the input scaled by (multiplier, shift) (3 << left shift, or 3 and a
 * rounding right shift: the caller's power-of-two input scale folded in), Q0.15 out. */
static void tr_lstm_tanh(const int16_t *in, int16_t *out, int32_t n, int32_t multiplier, int32_t shift)
{
    const int32_t round = shift > 0 ? (int32_t)1 << (shift - 1) : 0;
    for (int32_t i = 0; i < n; i++) {
        const int32_t x = ((int32_t)in[i] * multiplier + round) >> shift;
        const uint32_t ax = (uint32_t)(x < 0 ? -x : x);
        const uint32_t uh = ax >> 8;
        int32_t result;
        if (uh >= 255u) {
            result = 0xFFFF << 8;
        } else {
            const uint32_t ua = tr_sigmoid_table[uh], ub = tr_sigmoid_table[uh + 1u];
            result = (int32_t)((ua << 8) + (ax & 0xFFu) * (ub - ua));
        }
        result = x >= 0 ? result - (1 << 23) + (1 << 7) : -result + (1 << 23) + (1 << 7) - 1;
        out[i] = (int16_t)(result >> 8);
    }
}

/* TFLM's MulElementwise of two int16 (symmetric) values, requantized and clamped. */
TR_INLINE int32_t tr_lstm_product(int32_t a, int32_t b, const tr_lstm_mul *m)
{
    const int32_t r = m->output_offset + tr_lstm_scale(a * b, m->multiplier, m->shift);
    return r < m->act_min ? m->act_min : (r > m->act_max ? m->act_max : r);
}

/* gate = activation(input matmul + recurrent matmul), TFLM's CalculateLstmGate. */
static void tr_lstm_gate_step(const tr_lstm_params *p, const tr_lstm_gate *g, int tanh_gate, const int8_t *x,
                              const int8_t *h, int16_t *gate, int16_t *partial)
{
    const int32_t units = p->units;
    tr_lstm_matmul_int16(g->input.weights, units, p->input_depth, &g->input, x, gate);
    tr_lstm_matmul_int16(g->recurrent.weights, units, units, &g->recurrent, h, partial);
    for (int32_t i = 0; i < units; i++) {
        gate[i] = tr_lstm_saturate16((int32_t)gate[i] + (int32_t)partial[i]);
    }
    if (tanh_gate) {
        tr_lstm_tanh(gate, gate, units, 3, 0); /* Q3.12: TFLM's Tanh at cell_state_scale_power -12 */
    } else {
        tr_lstm_sigmoid(gate, units);
    }
}

/* One time step of one sequence: TFLM's LstmStep (batch of one). */
static void tr_lstm_step(const tr_lstm_params *p, const int8_t *x, int8_t *h, int16_t *c, int8_t *out,
                         int16_t *scratch)
{
    const int32_t units = p->units;
    int16_t *forget = scratch, *input = scratch + units, *cell_gate = scratch + 2 * units;
    int16_t *partial = scratch + 3 * units;
    tr_lstm_gate_step(p, &p->forget_gate, 0, x, h, forget, partial);
    tr_lstm_gate_step(p, &p->input_gate, 0, x, h, input, partial);
    tr_lstm_gate_step(p, &p->cell_gate, (int)p->cell_gate_tanh, x, h, cell_gate, partial);
    for (int32_t i = 0; i < units; i++) { /* UpdateLstmCell */
        int32_t cell = tr_lstm_product(forget[i], c[i], &p->forget_times_cell);
        cell = tr_lstm_saturate16(cell + tr_lstm_product(input[i], cell_gate[i], &p->input_times_cell));
        if (p->use_cell_clip) {
            cell = tr_max_i32(tr_min_i32(p->cell_clip, cell), -p->cell_clip);
        }
        c[i] = (int16_t)cell;
    }
    int16_t *output_gate = input, *cell_tanh = forget;
    tr_lstm_gate_step(p, &p->output_gate, 0, x, h, output_gate, partial);
    tr_lstm_tanh(c, cell_tanh, units, p->cell_tanh_multiplier, p->cell_tanh_shift);
    for (int32_t i = 0; i < units; i++) { /* UpdateLstmHidden */
        h[i] = (int8_t)tr_lstm_product(cell_tanh[i], output_gate[i], &p->hidden);
    }
    memcpy(out, h, (size_t)units);
}

TR_KERNEL void tr_lstm_int8(const tr_lstm_params *params, const int8_t *input, int8_t *hidden_state,
                            int16_t *cell_state, int8_t *output, int16_t *scratch)
{
    const int32_t batches = params->batches, steps = params->time_steps, units = params->units;
    /* TFLM's ResetVariableTensors: the hidden state at its zero point (real 0), the cell state 0 */
    memset(hidden_state, (int)(int8_t)params->hidden.output_offset, (size_t)(batches * units));
    memset(cell_state, 0, (size_t)(batches * units) * sizeof(int16_t));
    for (int32_t b = 0; b < batches; b++) {
        for (int32_t t = 0; t < steps; t++) {
            const int32_t row = params->time_major ? t * batches + b : b * steps + t;
            tr_lstm_step(params, input + row * params->input_depth, hidden_state + b * units,
                         cell_state + b * units, output + row * units, scratch);
        }
    }
}
