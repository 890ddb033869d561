/*
 * port_qemu_mps2.c - port.h for the QEMU machines: the mps2 boards (Cortex-M3/M4/M33) and the
 * microbit (Cortex-M0).
 *
 * Host link: UART0, polled (the host side owns timeouts): the CMSDK APB UART on mps2, the
 * nRF51 UART on the microbit.
 * Counter: SysTick on the processor clock. QEMU runs with `-icount shift=0`, so one
 * instruction is one nanosecond of virtual time and a SysTick tick lasts
 * BOARD_INSTRUCTIONS_PER_TICK_NUM / _DEN instructions (40 at 25 MHz, 62.5 at 16 MHz); timing the spin to a
 * tick edge at both ends and subtracting the port's own calls makes counts the region's
 * instructions to +-4, identical run to run.
 * DWT CYCCNT reads 0 in QEMU, hence SysTick. The 24-bit SysTick wraps every 2^24 ticks,
 * so its interrupt counts wraps to make long runs measurable.
 * Exit: semihosting SYS_EXIT_EXTENDED, whose status QEMU returns as its own.
 */
#include <stdint.h>

#include "board_config.h"
#include "port.h"
#include "port_qemu_mps2.h"

#if defined(BOARD_UART_NRF51)
/* nRF51 UART (the microbit machine): tasks start the receiver and transmitter; an event
 * register says a byte arrived or left. */
#define UART_REG(offset) (*(volatile uint32_t *)(BOARD_UART_BASE + (offset)))
#define UART_STARTRX UART_REG(0x000u)
#define UART_STARTTX UART_REG(0x008u)
#define UART_RXDRDY UART_REG(0x108u)
#define UART_TXDRDY UART_REG(0x11Cu)
#define UART_ENABLE UART_REG(0x500u)
#define UART_RXD UART_REG(0x518u)
#define UART_TXD UART_REG(0x51Cu)
#define UART_ENABLE_ON 4u
#else
/* CMSDK APB UART registers (the mps2 machines). */
#define UART_DATA (*(volatile uint32_t *)(BOARD_UART_BASE + 0x00u))
#define UART_STATE (*(volatile uint32_t *)(BOARD_UART_BASE + 0x04u))
#define UART_CTRL (*(volatile uint32_t *)(BOARD_UART_BASE + 0x08u))
#define UART_BAUDDIV (*(volatile uint32_t *)(BOARD_UART_BASE + 0x10u))
#define UART_STATE_TX_FULL 0x1u
#define UART_STATE_RX_FULL 0x2u
#define UART_CTRL_TX_EN 0x1u
#define UART_CTRL_RX_EN 0x2u
#endif

/* SysTick registers (the same address on every Cortex-M). */
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_CSR_ENABLE 0x1u
#define SYST_CSR_TICKINT 0x2u
#define SYST_CSR_CLKSOURCE_CPU 0x4u
/* SysTick's reload value: the full 24 bits. Tests build with a small one to exercise the
 * wrap counting in milliseconds instead of seconds. */
#ifndef QEMU_MPS2_SYSTICK_RELOAD
#define QEMU_MPS2_SYSTICK_RELOAD 0x00FFFFFFu
#endif
#define SYST_MAX QEMU_MPS2_SYSTICK_RELOAD

/* Semihosting operations. */
#define SYS_WRITE0 0x04
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u

extern uint32_t __data_start__, __bss_end__;
extern uint32_t __stack_limit__, __stack_top__;

static volatile uint32_t systick_wraps;
static uint64_t counter_start_ticks;
/* Instructions an empty start/elapsed pair counts (the port's own), measured at boot and
 * subtracted, so a region's count is the region's instructions alone (+-2). */
static uint32_t counter_overhead;

#if defined(BOARD_UART_NRF51)
void qemu_mps2_uart_init(void)
{
    UART_ENABLE = UART_ENABLE_ON;
    UART_STARTTX = 1u;
    UART_STARTRX = 1u;
}

/* Clear the event before reading RXD: reading it re-raises the event while bytes remain. */
uint8_t port_read_byte(void)
{
    while (UART_RXDRDY == 0u) {
    }
    UART_RXDRDY = 0u;
    return (uint8_t)UART_RXD;
}

/* One byte at a time: a byte written while the previous one is pending is dropped. */
void port_write(const uint8_t *data, size_t length)
{
    for (size_t i = 0; i < length; ++i) {
        UART_TXD = data[i];
        while (UART_TXDRDY == 0u) {
        }
        UART_TXDRDY = 0u;
    }
}
#else
void qemu_mps2_uart_init(void)
{
    UART_BAUDDIV = 16u; /* the smallest legal divider; QEMU does not pace the UART */
    UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN;
}

uint8_t port_read_byte(void)
{
    while ((UART_STATE & UART_STATE_RX_FULL) == 0u) {
    }
    return (uint8_t)UART_DATA;
}

void port_write(const uint8_t *data, size_t length)
{
    for (size_t i = 0; i < length; ++i) {
        while ((UART_STATE & UART_STATE_TX_FULL) != 0u) {
        }
        UART_DATA = data[i];
    }
}
#endif

void qemu_mps2_counter_init(void)
{
    SYST_RVR = SYST_MAX;
    SYST_CVR = 0u;
    SYST_CSR = SYST_CSR_CLKSOURCE_CPU | SYST_CSR_TICKINT | SYST_CSR_ENABLE;
    port_counter_start();
    counter_overhead = port_counter_elapsed();
}

void qemu_mps2_systick_handler(void)
{
    systick_wraps++;
}

/* Ticks since qemu_mps2_counter_init(), as one count that never jumps. SysTick counts
 * RVR..0 then reloads, so a period is SYST_MAX + 1 ticks; its interrupt (the wrap count)
 * fires on reaching 0, so while the counter still reads 0 the tick belongs to the period
 * that just ended. The wrap count is re-read so a wrap between the two reads is not missed.
 * (Unsigned: the very first tick, before the first reload, reads as -1.) */
static uint64_t systick_ticks(void)
{
    uint32_t wraps;
    uint32_t current;
    do {
        wraps = systick_wraps;
        current = SYST_CVR;
    } while (wraps != systick_wraps);
    uint64_t period_start = (uint64_t)wraps * ((uint64_t)SYST_MAX + 1u);
    return current == 0u ? period_start - 1u : period_start + (SYST_MAX - current);
}

/* Spin until SysTick's value changes (a tick edge) and return how many 4-instruction
 * iterations that took. Written in assembly so the iteration length is exact. */
static uint32_t wait_for_tick_edge(void)
{
    uint32_t iterations = 0;
    uint32_t first;
    uint32_t now;
    __asm volatile("ldr %[first], [%[cvr]]\n"
                   "1:\n\t"
                   "adds %[n], %[n], #1\n\t"
                   "ldr %[now], [%[cvr]]\n\t"
                   "cmp %[now], %[first]\n\t"
                   "beq 1b\n"
                   : [n] "+r"(iterations), [first] "=&r"(first), [now] "=&r"(now)
                   : [cvr] "r"(&SYST_CVR)
                   : "cc", "memory");
    return iterations;
}

#define EDGE_LOOP_INSTRUCTIONS 4u

/* Counting starts on a tick edge, and the end is placed within its tick by timing the
 * spin to the next edge, so counts are exact to a few instructions instead of to one
 * tick (40-50 instructions), and repeat exactly run to run. */
__attribute__((noinline)) void port_counter_start(void)
{
    (void)wait_for_tick_edge();
    counter_start_ticks = systick_ticks();
}

__attribute__((noinline)) uint32_t port_counter_elapsed(void)
{
    uint32_t spin = wait_for_tick_edge();
    uint64_t ticks = systick_ticks() - counter_start_ticks;
    uint64_t instructions = ticks * BOARD_INSTRUCTIONS_PER_TICK_NUM / BOARD_INSTRUCTIONS_PER_TICK_DEN;
    uint32_t count = (uint32_t)instructions - spin * EDGE_LOOP_INSTRUCTIONS;
    return count > counter_overhead ? count - counter_overhead : 0u;
}

void port_stack_bounds(uintptr_t *low, uintptr_t *high)
{
    *low = (uintptr_t)&__stack_limit__;
    *high = (uintptr_t)&__stack_top__;
}

uint32_t port_static_ram_bytes(void)
{
    return (uint32_t)((uintptr_t)&__bss_end__ - (uintptr_t)&__data_start__);
}

static int semihost_call(int operation, const void *argument)
{
    register int r0 __asm("r0") = operation;
    register const void *r1 __asm("r1") = argument;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void qemu_mps2_semihost_write0(const char *text)
{
    (void)semihost_call(SYS_WRITE0, text);
}

void port_exit(int status)
{
    const uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)status};
    (void)semihost_call(SYS_EXIT_EXTENDED, block);
    for (;;) {
    }
}
