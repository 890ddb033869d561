/*
 * bench_protocol.h - message types and limits of the tinyrank benchmark protocol.
 *
 * Mirrors toolchain/bench/protocol.py; bump BENCH_PROTOCOL_VERSION in both when the
 * layout of any message changes, so an old firmware is refused with a clear message
 * instead of being misread.
 */
#ifndef BENCH_PROTOCOL_H
#define BENCH_PROTOCOL_H

#ifndef BENCH_PROTOCOL_VERSION
#define BENCH_PROTOCOL_VERSION 1
#endif

/* Largest body in one frame; the host splits tensors into chunks of this size. */
#define BENCH_MAX_BODY 256
/* type, seq, session, length u16 */
#define BENCH_HEADER_SIZE 5
#define BENCH_CRC_SIZE 2
#define BENCH_MAX_PACKET (BENCH_HEADER_SIZE + BENCH_MAX_BODY + BENCH_CRC_SIZE)
/* COBS adds one byte per 254 plus one. */
#define BENCH_MAX_FRAME (BENCH_MAX_PACKET + BENCH_MAX_PACKET / 254 + 2)

/* Most runs one INVOKE may time; the per-run counts are kept for STATS. */
#ifndef BENCH_MAX_RUNS
#define BENCH_MAX_RUNS 64
#endif

/* Requests; a reply carries the request's type | BENCH_REPLY. */
#define BENCH_HELLO 0x01
#define BENCH_SET_INPUT 0x02
#define BENCH_INVOKE 0x03
#define BENCH_GET_OUTPUT 0x04
#define BENCH_STATS 0x05
#define BENCH_OP_TIMES 0x06
#define BENCH_REPLY 0x80
/* Frames the device sends on its own. */
#define BENCH_INVOKE_STARTED 0x90
#define BENCH_BOOT 0xB0
#define BENCH_ERROR 0xEE

/* Error codes (first byte of an ERROR body, then a u32 detail). */
#define BENCH_ERR_UNKNOWN_COMMAND 1
#define BENCH_ERR_BAD_BODY 2
#define BENCH_ERR_BAD_INDEX 3
#define BENCH_ERR_BAD_RANGE 4
#define BENCH_ERR_TOO_MANY_RUNS 5
#define BENCH_ERR_NOT_RUN 6

/* INVOKE flags */
#define BENCH_INVOKE_PER_OP 0x01

/* HELLO feature bits */
#define BENCH_FEATURE_PER_OP 0x01

#endif /* BENCH_PROTOCOL_H */
