/*
 * main.cpp - port.h for the Arduino boards (Nano 33 BLE, Nucleo L4R5ZI, Pico, Teensy 4.1).
 *
 * The host link is `Serial` (USB CDC on these boards), or PORT_SERIAL if defined: the
 * Renode build uses Serial1, the hardware UART, which Renode models (USB it does not).
 * The counter is the DWT cycle counter where the core has one (M3/M4/M7/M33); the
 * Cortex-M0+ has none and its SysTick belongs to the RTOS, so there micros() is scaled to
 * CPU cycles (1 us resolution). setup() brings the board up and never returns:
 * bench_main() runs the benchmark loop.
 */
#include <Arduino.h>

extern "C" {
#include "board_config.h"
#include "port.h"
}

#ifndef PORT_SERIAL
#define PORT_SERIAL Serial
#endif

/* Bytes left unpainted below the stack pointer, so painting never touches live frames. */
static const uintptr_t kStackPaintGuard = 64u;

static uintptr_t stack_low;
static uintptr_t stack_high;
static uint32_t counter_start;

#if defined(BOARD_COUNTER_DWT)
#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#define DWT_LAR (*(volatile uint32_t *)0xE0001FB0u)
#define DEMCR_TRCENA (1u << 24)
#define DWT_CTRL_CYCCNTENA 1u
#define DWT_LAR_UNLOCK 0xC5ACCE55u

static void counter_init(void)
{
    DEMCR |= DEMCR_TRCENA;
    DWT_LAR = DWT_LAR_UNLOCK; /* the Cortex-M7 locks the DWT after reset */
    DWT_CYCCNT = 0u;
    DWT_CTRL |= DWT_CTRL_CYCCNTENA;
}

static uint32_t counter_now(void)
{
    return DWT_CYCCNT;
}
#else
static void counter_init(void)
{
}

static uint32_t counter_now(void)
{
    return (uint32_t)micros() * (BOARD_CLOCK_HZ / 1000000u);
}
#endif

/* Paint BOARD_STACK_BYTES below the current stack pointer: the part of the main thread's
 * stack the benchmark and the model's kernels run in. */
static void __attribute__((noinline)) paint_stack(void)
{
    uintptr_t sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    stack_high = sp;
    stack_low = sp - BOARD_STACK_BYTES;
    for (volatile uint32_t *word = (volatile uint32_t *)stack_low; (uintptr_t)word < sp - kStackPaintGuard; ++word) {
        *word = PORT_STACK_PAINT;
    }
}

/* Linker symbols for .data/.bss: mbed-based cores (Nano 33 BLE, Pico) name them one way,
 * Teensyduino and STM32duino the other. Weak, so the missing pair reads as 0. */
extern "C" {
extern uint32_t __data_start__ __attribute__((weak));
extern uint32_t __bss_end__ __attribute__((weak));
extern uint32_t _sdata __attribute__((weak));
extern uint32_t _ebss __attribute__((weak));
}

extern "C" uint8_t port_read_byte(void)
{
    while (PORT_SERIAL.available() <= 0) {
        yield();
    }
    return (uint8_t)PORT_SERIAL.read();
}

extern "C" void port_write(const uint8_t *data, size_t length)
{
    PORT_SERIAL.write(data, length);
}

extern "C" void port_counter_start(void)
{
    counter_start = counter_now();
}

extern "C" uint32_t port_counter_elapsed(void)
{
    return counter_now() - counter_start; /* unsigned arithmetic handles one wrap */
}

extern "C" void port_stack_bounds(uintptr_t *low, uintptr_t *high)
{
    *low = stack_low;
    *high = stack_high;
}

extern "C" uint32_t port_static_ram_bytes(void)
{
    if (&__data_start__ != nullptr && &__bss_end__ != nullptr) {
        return (uint32_t)((uintptr_t)&__bss_end__ - (uintptr_t)&__data_start__);
    }
    if (&_sdata != nullptr && &_ebss != nullptr) {
        return (uint32_t)((uintptr_t)&_ebss - (uintptr_t)&_sdata);
    }
    return 0u; /* unknown core layout: the host falls back to the ELF's figure */
}

extern "C" void port_exit(int status)
{
    (void)status; /* a board has nobody to return a status to: halt with the link open */
    PORT_SERIAL.flush();
    for (;;) {
        delay(1000);
    }
}

void setup()
{
    PORT_SERIAL.begin(BOARD_BAUD);
    while (!PORT_SERIAL) {
        /* USB CDC: wait until the host opens the port, so no output is lost */
    }
    counter_init();
    paint_stack();
    bench_main();
}

void loop()
{
}
