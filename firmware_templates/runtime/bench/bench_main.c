/*
 * bench_main.c - the device side of the tinyrank benchmark: a command loop that lets the
 * host set inputs, run the model N times under the board's counter, read outputs back,
 * and collect per-run and per-op counts and the stack high-water mark.
 *
 * Uses only port.h (the board), model.h (the generated model, prefix "tr") and
 * board_config.h; the same file runs on every board, in QEMU and on the host in tests.
 */
#include <stdint.h>

#include "bench_frame.h"
#include "bench_protocol.h"
#include "board_config.h"
#include "bench_model.h"
#include "port.h"

#if TR_NUM_INPUTS > 4 || TR_NUM_OUTPUTS > 4
#error "the benchmark app handles at most 4 inputs and 4 outputs"
#endif

static const uint32_t input_sizes[TR_NUM_INPUTS] = {
    TR_INPUT0_SIZE,
#if TR_NUM_INPUTS > 1
    TR_INPUT1_SIZE,
#endif
#if TR_NUM_INPUTS > 2
    TR_INPUT2_SIZE,
#endif
#if TR_NUM_INPUTS > 3
    TR_INPUT3_SIZE,
#endif
};

static const uint32_t output_sizes[TR_NUM_OUTPUTS] = {
    TR_OUTPUT0_SIZE,
#if TR_NUM_OUTPUTS > 1
    TR_OUTPUT1_SIZE,
#endif
#if TR_NUM_OUTPUTS > 2
    TR_OUTPUT2_SIZE,
#endif
#if TR_NUM_OUTPUTS > 3
    TR_OUTPUT3_SIZE,
#endif
};

/* The host's inputs are kept here and copied into the model before every run: the memory
 * plan may reuse an input's bytes for a later tensor, so a second run on the same input
 * tensor would compute on garbage (and a retried INVOKE would return wrong outputs). */
#if TR_NUM_INPUTS > 1
#define BENCH_INPUT1_BYTES TR_INPUT1_SIZE
#else
#define BENCH_INPUT1_BYTES 0
#endif
#if TR_NUM_INPUTS > 2
#define BENCH_INPUT2_BYTES TR_INPUT2_SIZE
#else
#define BENCH_INPUT2_BYTES 0
#endif
#if TR_NUM_INPUTS > 3
#define BENCH_INPUT3_BYTES TR_INPUT3_SIZE
#else
#define BENCH_INPUT3_BYTES 0
#endif
#define SAVED_INPUT_BYTES (TR_INPUT0_SIZE + BENCH_INPUT1_BYTES + BENCH_INPUT2_BYTES + BENCH_INPUT3_BYTES)
static int8_t bench_saved_inputs[SAVED_INPUT_BYTES];

/* HELLO tells the host whether model.c calls the per-op hooks (built with TR_PROFILE). */
#ifdef TR_PROFILE
#define BENCH_FEATURES BENCH_FEATURE_PER_OP
#else
#define BENCH_FEATURES 0
#endif

#define OP_SLOTS (TR_NUM_OPS > 0 ? TR_NUM_OPS : 1)
/* Counts per STATS / OP_TIMES reply: first u16, count u16, then u32 each. */
#define COUNTS_PER_REPLY ((BENCH_MAX_BODY - 4) / 4)

/* Every static of the app is named bench_*, so the host can tell the app's RAM from the
 * model's in the ELF's symbol table. */
static uint8_t bench_session;         /* token from the last HELLO; 0 until then, so a reset shows */
static uint32_t bench_run_counts[BENCH_MAX_RUNS];
static uint16_t bench_runs_done;      /* runs of the last INVOKE; 0 before the first */
static uint32_t bench_op_counts[OP_SLOTS]; /* per op: the least over the runs of the last per-op INVOKE */
static uint32_t bench_op_run_total;   /* sum of the op counts of the run in progress */
static int bench_profiling;
static uint8_t bench_reply[BENCH_MAX_BODY];

/* --- little-endian helpers ------------------------------------------------------ */

static uint8_t *put_u16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    return p + 2;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
    p = put_u16(p, v & 0xFFFFu);
    return put_u16(p, v >> 16);
}

static uint32_t get_u16(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8);
}

static uint32_t get_u32(const uint8_t *p)
{
    return get_u16(p) | (get_u16(p + 2) << 16);
}

static uint8_t *put_string(uint8_t *p, const char *s)
{
    uint8_t *length = p++;
    uint8_t n = 0;
    while (s[n] != '\0' && n < 32) {
        *p++ = (uint8_t)s[n];
        n++;
    }
    *length = n;
    return p;
}

/* --- inputs -------------------------------------------------------------------------- */

static int8_t *saved_input(uint32_t index)
{
    uint32_t offset = 0;
    for (uint32_t i = 0; i < index; i++) {
        offset += input_sizes[i];
    }
    return bench_saved_inputs + offset;
}

static void restore_inputs(void)
{
    for (int i = 0; i < TR_NUM_INPUTS; i++) {
        const int8_t *from = saved_input((uint32_t)i);
        int8_t *to = tr_input(i);
        for (uint32_t k = 0; k < input_sizes[i]; k++) {
            to[k] = from[k];
        }
    }
}

/* --- per-op hooks, called by model.c when compiled with TR_PROFILE ---------------- */

void tr_profile_op_begin(int op)
{
    (void)op;
    if (bench_profiling) {
        port_counter_start();
    }
}

void tr_profile_op_end(int op)
{
    if (!bench_profiling) {
        return;
    }
    uint32_t elapsed = port_counter_elapsed();
    bench_op_run_total += elapsed;
    if (op >= 0 && op < TR_NUM_OPS && elapsed < bench_op_counts[op]) {
        bench_op_counts[op] = elapsed;
    }
}

/* --- measurements ------------------------------------------------------------------ */

/* Bytes of stack ever used: the port painted it at boot, so scan up from the low end
 * for the first word that is no longer the paint. */
static uint32_t stack_high_water(void)
{
    uintptr_t low = 0;
    uintptr_t high = 0;
    port_stack_bounds(&low, &high);
    const volatile uint32_t *word = (const volatile uint32_t *)((low + 3u) & ~(uintptr_t)3u);
    while ((uintptr_t)word < high && *word == PORT_STACK_PAINT) {
        word++;
    }
    return (uint32_t)(high - (uintptr_t)word);
}

static uint32_t stack_size(void)
{
    uintptr_t low = 0;
    uintptr_t high = 0;
    port_stack_bounds(&low, &high);
    return (uint32_t)(high - low);
}

/* --- command handlers: each sends its reply, or an ERROR ---------------------------- */

static void send_error(uint8_t seq, uint8_t code, uint32_t detail)
{
    uint8_t body[5];
    body[0] = code;
    put_u32(body + 1, detail);
    bench_send_packet(BENCH_ERROR, seq, bench_session, body, sizeof body);
}

static void handle_hello(const bench_packet_t *req)
{
    if (req->length < 1) {
        send_error(req->seq, BENCH_ERR_BAD_BODY, req->length);
        return;
    }
    bench_session = req->body[0];
    uint8_t *p = bench_reply;
    p = put_u16(p, BENCH_PROTOCOL_VERSION);
    p = put_u32(p, (uint32_t)TR_MODEL_HASH);
    p = put_u32(p, (uint32_t)BOARD_CLOCK_HZ);
    p = put_u32(p, (uint32_t)TR_ARENA_SIZE);
    p = put_u32(p, port_static_ram_bytes());
    p = put_u32(p, stack_size());
    p = put_u32(p, stack_high_water());
    p = put_u16(p, BENCH_MAX_BODY);
    p = put_u16(p, BENCH_MAX_RUNS);
    p = put_u16(p, TR_NUM_OPS);
    *p++ = TR_NUM_INPUTS;
    *p++ = TR_NUM_OUTPUTS;
    *p++ = BENCH_FEATURES;
    for (int i = 0; i < TR_NUM_INPUTS; i++) {
        p = put_u32(p, input_sizes[i]);
    }
    for (int i = 0; i < TR_NUM_OUTPUTS; i++) {
        p = put_u32(p, output_sizes[i]);
    }
    p = put_string(p, BOARD_COUNTER_UNIT);
    p = put_string(p, BOARD_ID);
    bench_send_packet(BENCH_HELLO | BENCH_REPLY, req->seq, bench_session, bench_reply, (uint16_t)(p - bench_reply));
}

/* Checks index/offset/length of a tensor access; sends the ERROR and returns 0 if bad. */
static int check_range(uint8_t seq, uint32_t index, uint32_t count, const uint32_t *sizes, uint32_t offset,
                       uint32_t length)
{
    if (index >= count) {
        send_error(seq, BENCH_ERR_BAD_INDEX, index);
        return 0;
    }
    if (offset > sizes[index] || length > sizes[index] - offset) {
        send_error(seq, BENCH_ERR_BAD_RANGE, offset + length);
        return 0;
    }
    return 1;
}

static void handle_set_input(const bench_packet_t *req)
{
    if (req->length < 5) {
        send_error(req->seq, BENCH_ERR_BAD_BODY, req->length);
        return;
    }
    uint32_t index = req->body[0];
    uint32_t offset = get_u32(req->body + 1);
    uint32_t length = req->length - 5u;
    if (!check_range(req->seq, index, TR_NUM_INPUTS, input_sizes, offset, length)) {
        return;
    }
    int8_t *saved = saved_input(index);
    for (uint32_t i = 0; i < length; i++) {
        saved[offset + i] = (int8_t)req->body[5 + i];
    }
    bench_send_packet(BENCH_SET_INPUT | BENCH_REPLY, req->seq, bench_session, 0, 0);
}

static void handle_invoke(const bench_packet_t *req)
{
    if (req->length < 3) {
        send_error(req->seq, BENCH_ERR_BAD_BODY, req->length);
        return;
    }
    uint32_t runs = get_u16(req->body);
    if (runs == 0 || runs > BENCH_MAX_RUNS) {
        send_error(req->seq, BENCH_ERR_TOO_MANY_RUNS, runs);
        return;
    }
    int per_op = (req->body[2] & BENCH_INVOKE_PER_OP) != 0;
    /* Tell the host the request arrived, so it can wait longer for the work itself. */
    bench_send_packet(BENCH_INVOKE_STARTED, req->seq, bench_session, req->body, 2);

    int32_t status = 0;
    if (per_op) {
        for (int op = 0; op < OP_SLOTS; op++) {
            bench_op_counts[op] = UINT32_MAX;
        }
    }
    for (uint32_t run = 0; run < runs; run++) {
        int result;
        restore_inputs(); /* outside the measured region */
        if (per_op) {
            /* The op hooks re-arm the counter, so the run's count is the sum of its ops. */
            bench_op_run_total = 0;
            bench_profiling = 1;
            result = tr_invoke();
            bench_profiling = 0;
            bench_run_counts[run] = bench_op_run_total;
        } else {
            port_counter_start();
            result = tr_invoke();
            bench_run_counts[run] = port_counter_elapsed();
        }
        if (result != 0 && status == 0) {
            status = result;
        }
    }
    bench_runs_done = (uint16_t)runs;

    uint8_t *p = bench_reply;
    p = put_u32(p, (uint32_t)status);
    p = put_u16(p, runs);
    p = put_u32(p, stack_high_water());
    p = put_u32(p, bench_bad_frames());
    bench_send_packet(BENCH_INVOKE | BENCH_REPLY, req->seq, bench_session, bench_reply, (uint16_t)(p - bench_reply));
}

static void handle_get_output(const bench_packet_t *req)
{
    if (req->length < 7) {
        send_error(req->seq, BENCH_ERR_BAD_BODY, req->length);
        return;
    }
    uint32_t index = req->body[0];
    uint32_t offset = get_u32(req->body + 1);
    uint32_t length = get_u16(req->body + 5);
    if (length > BENCH_MAX_BODY) {
        send_error(req->seq, BENCH_ERR_BAD_RANGE, length);
        return;
    }
    if (!check_range(req->seq, index, TR_NUM_OUTPUTS, output_sizes, offset, length)) {
        return;
    }
    const int8_t *tensor = tr_output((int)index);
    for (uint32_t i = 0; i < length; i++) {
        bench_reply[i] = (uint8_t)tensor[offset + i];
    }
    bench_send_packet(BENCH_GET_OUTPUT | BENCH_REPLY, req->seq, bench_session, bench_reply, (uint16_t)length);
}

/* STATS and OP_TIMES: a page of u32 counts starting at `first`. */
static void send_counts(const bench_packet_t *req, const uint32_t *counts, uint32_t total)
{
    if (req->length < 2) {
        send_error(req->seq, BENCH_ERR_BAD_BODY, req->length);
        return;
    }
    uint32_t first = get_u16(req->body);
    if (first > total) {
        send_error(req->seq, BENCH_ERR_BAD_RANGE, first);
        return;
    }
    uint32_t count = total - first;
    if (count > COUNTS_PER_REPLY) {
        count = COUNTS_PER_REPLY;
    }
    uint8_t *p = bench_reply;
    p = put_u16(p, first);
    p = put_u16(p, count);
    for (uint32_t i = 0; i < count; i++) {
        p = put_u32(p, counts[first + i]);
    }
    bench_send_packet(req->type | BENCH_REPLY, req->seq, bench_session, bench_reply, (uint16_t)(p - bench_reply));
}

static void handle(const bench_packet_t *req)
{
    switch (req->type) {
    case BENCH_HELLO:
        handle_hello(req);
        break;
    case BENCH_SET_INPUT:
        handle_set_input(req);
        break;
    case BENCH_INVOKE:
        handle_invoke(req);
        break;
    case BENCH_GET_OUTPUT:
        handle_get_output(req);
        break;
    case BENCH_STATS:
    case BENCH_OP_TIMES:
        if (bench_runs_done == 0) {
            send_error(req->seq, BENCH_ERR_NOT_RUN, 0);
        } else if (req->type == BENCH_STATS) {
            send_counts(req, bench_run_counts, bench_runs_done);
        } else {
            send_counts(req, bench_op_counts, TR_NUM_OPS);
        }
        break;
    default:
        send_error(req->seq, BENCH_ERR_UNKNOWN_COMMAND, req->type);
        break;
    }
}

void bench_main(void)
{
    /* Announce the (re)start: a host mid-run knows the device forgot its inputs. */
    bench_send_packet(BENCH_BOOT, 0, 0, 0, 0);
    bench_packet_t request;
    for (;;) {
        bench_read_packet(&request);
        handle(&request);
    }
}
