/*
 * bench_frame.h - framing of the benchmark protocol: COBS, CRC-16, packets.
 *
 * A frame on the wire is COBS(packet) followed by 0x00, where packet is
 * type | seq | session | length u16 LE | body | CRC-16/CCITT-FALSE u16 LE.
 * The zero delimiter lets the reader resynchronise after noise; the CRC rejects
 * corrupted frames, which are dropped (the host times out and retries).
 */
#ifndef BENCH_FRAME_H
#define BENCH_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "bench_protocol.h"

typedef struct {
    uint8_t type;
    uint8_t seq;
    uint8_t session;
    uint16_t length;
    const uint8_t *body; /* points into the reader's buffer until the next read */
} bench_packet_t;

uint16_t bench_crc16(const uint8_t *data, size_t length);

/* Returns the encoded length (at most length + length / 254 + 1); out holds no zero. */
size_t bench_cobs_encode(const uint8_t *in, size_t length, uint8_t *out);
/* Returns the decoded length, or -1 if `in` is not valid COBS or does not fit in capacity. */
int bench_cobs_decode(const uint8_t *in, size_t length, uint8_t *out, size_t capacity);

/* Blocks until a valid packet arrives; invalid frames are counted and skipped. */
void bench_read_packet(bench_packet_t *packet);
/* Frames that failed COBS, length or CRC checks since boot. */
uint32_t bench_bad_frames(void);

/* Encodes and writes one frame (body may be NULL when length is 0). */
void bench_send_packet(uint8_t type, uint8_t seq, uint8_t session, const uint8_t *body, uint16_t length);

#endif /* BENCH_FRAME_H */
