/*
 * port.h - what the benchmark application needs from a board, and nothing more.
 *
 * Each board family (QEMU mps2, Arduino mbed, ...) implements these functions in
 * runtime/ports/<family>/ and calls bench_main() once clocks, the UART and the
 * counter are up. Keeping the interface this small is what lets one benchmark
 * application run unchanged on every board and in QEMU.
 */
#ifndef PORT_H
#define PORT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Implemented by the benchmark application; never returns. */
void bench_main(void);

/* Blocking read of one byte from the host link (UART / USB CDC). The host side
 * owns all timeouts, so the device may simply wait. */
uint8_t port_read_byte(void);

/* Write bytes to the host link; returns when they are queued or sent. */
void port_write(const uint8_t *data, size_t length);

/* Re-arm the counter right before a measured region... */
void port_counter_start(void);
/* ...and read the units elapsed since port_counter_start() (handles wrap-around).
 * Units are BOARD_COUNTER_UNIT: CPU cycles (DWT) or instructions (QEMU icount). */
uint32_t port_counter_elapsed(void);

/* Stack bounds for the high-water mark: [low, high). The port paints
 * [low, current SP - guard) with PORT_STACK_PAINT before bench_main() runs. */
#define PORT_STACK_PAINT 0xA5A5A5A5u
void port_stack_bounds(uintptr_t *low, uintptr_t *high);

/* Bytes of statically allocated RAM (.data + .bss, arena included). */
uint32_t port_static_ram_bytes(void);

/* Leave the program: a semihosting exit in QEMU, a reset or halt on a board. */
void port_exit(int status);

#ifdef __cplusplus
}
#endif

#endif /* PORT_H */
