/*
 * bench_frame.c - COBS framing and CRC-16 for the benchmark protocol (see bench_frame.h).
 */
#include "bench_frame.h"

#include "port.h"

static uint8_t bench_rx_frame[BENCH_MAX_FRAME];
static uint8_t bench_rx_packet[BENCH_MAX_PACKET];
static uint8_t bench_tx_packet[BENCH_MAX_PACKET];
static uint8_t bench_tx_frame[BENCH_MAX_FRAME + 1];
static uint32_t bench_bad_frame_count;

uint16_t bench_crc16(const uint8_t *data, size_t length)
{
    /* CRC-16/CCITT-FALSE bit by bit: slower than a table, but 512 bytes smaller. */
    uint16_t crc = 0xFFFFu;
    for (size_t i = 0; i < length; i++) {
        crc ^= (uint16_t)(data[i] << 8);
        for (int bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

size_t bench_cobs_encode(const uint8_t *in, size_t length, uint8_t *out)
{
    size_t code_at = 0; /* where the current block's length byte goes */
    size_t out_len = 1;
    uint8_t code = 1;
    for (size_t i = 0; i < length; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = out_len++;
            code = 1;
            continue;
        }
        out[out_len++] = in[i];
        if (++code == 0xFF) {
            out[code_at] = code;
            code_at = out_len++;
            code = 1;
        }
    }
    out[code_at] = code;
    return out_len;
}

int bench_cobs_decode(const uint8_t *in, size_t length, uint8_t *out, size_t capacity)
{
    size_t i = 0;
    size_t out_len = 0;
    while (i < length) {
        uint8_t code = in[i];
        if (code == 0 || i + code > length) {
            return -1;
        }
        for (size_t k = i + 1; k < i + code; k++) {
            if (in[k] == 0 || out_len >= capacity) {
                return -1;
            }
            out[out_len++] = in[k];
        }
        i += code;
        if (code != 0xFF && i < length) {
            if (out_len >= capacity) {
                return -1;
            }
            out[out_len++] = 0;
        }
    }
    return (int)out_len;
}

/* Checks the header, length and CRC of a decoded packet. */
static int parse_packet(const uint8_t *raw, int length, bench_packet_t *packet)
{
    if (length < BENCH_HEADER_SIZE + BENCH_CRC_SIZE) {
        return -1;
    }
    uint16_t body_length = (uint16_t)(raw[3] | (raw[4] << 8));
    if (body_length != length - BENCH_HEADER_SIZE - BENCH_CRC_SIZE) {
        return -1;
    }
    size_t crc_at = (size_t)length - BENCH_CRC_SIZE;
    uint16_t crc = (uint16_t)(raw[crc_at] | (raw[crc_at + 1] << 8));
    if (bench_crc16(raw, crc_at) != crc) {
        return -1;
    }
    packet->type = raw[0];
    packet->seq = raw[1];
    packet->session = raw[2];
    packet->length = body_length;
    packet->body = raw + BENCH_HEADER_SIZE;
    return 0;
}

void bench_read_packet(bench_packet_t *packet)
{
    size_t length = 0;
    int overflow = 0;
    for (;;) {
        uint8_t byte = port_read_byte();
        if (byte != 0) {
            if (length < sizeof bench_rx_frame) {
                bench_rx_frame[length++] = byte;
            } else {
                overflow = 1;
            }
            continue;
        }
        if (length == 0 && !overflow) {
            continue; /* back-to-back delimiters: the host flushes with a leading zero */
        }
        int decoded = overflow ? -1 : bench_cobs_decode(bench_rx_frame, length, bench_rx_packet, sizeof bench_rx_packet);
        if (decoded >= 0 && parse_packet(bench_rx_packet, decoded, packet) == 0) {
            return;
        }
        bench_bad_frame_count++;
        length = 0;
        overflow = 0;
    }
}

uint32_t bench_bad_frames(void)
{
    return bench_bad_frame_count;
}

void bench_send_packet(uint8_t type, uint8_t seq, uint8_t session, const uint8_t *body, uint16_t length)
{
    if (length > BENCH_MAX_BODY) {
        length = BENCH_MAX_BODY; /* a bug in the caller; the host sees a short reply */
    }
    bench_tx_packet[0] = type;
    bench_tx_packet[1] = seq;
    bench_tx_packet[2] = session;
    bench_tx_packet[3] = (uint8_t)(length & 0xFF);
    bench_tx_packet[4] = (uint8_t)(length >> 8);
    for (uint16_t i = 0; i < length; i++) {
        bench_tx_packet[BENCH_HEADER_SIZE + i] = body[i];
    }
    size_t crc_at = BENCH_HEADER_SIZE + (size_t)length;
    uint16_t crc = bench_crc16(bench_tx_packet, crc_at);
    bench_tx_packet[crc_at] = (uint8_t)(crc & 0xFF);
    bench_tx_packet[crc_at + 1] = (uint8_t)(crc >> 8);
    size_t frame_length = bench_cobs_encode(bench_tx_packet, crc_at + BENCH_CRC_SIZE, bench_tx_frame);
    bench_tx_frame[frame_length++] = 0;
    port_write(bench_tx_frame, frame_length);
}
