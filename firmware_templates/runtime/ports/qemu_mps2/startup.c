/*
 * startup.c - reset handler and vector table for the QEMU mps2 boards (AN385 Cortex-M3,
 * AN386 Cortex-M4F, AN505 Cortex-M33 in secure state).
 *
 * QEMU loads the ELF and starts at the vector table the linker put at the start of
 * FLASH. There is no clock tree to configure: copy .data, clear .bss, turn on the FPU
 * where there is one, paint the stack for the high-water mark, then hand over to the
 * port (UART, counter) and the benchmark application.
 */
#include <stdint.h>

#include "port.h"
#include "port_qemu_mps2.h"

/* Symbols from linker.ld. */
extern uint32_t __data_load__, __data_start__, __data_end__;
extern uint32_t __bss_start__, __bss_end__;
extern uint32_t __stack_limit__, __stack_top__;

void Reset_Handler(void);
void Default_Handler(void);
void HardFault_Handler(void);

/* Bytes left unpainted below the current stack pointer, so painting never writes over
 * the frame doing the painting. */
#define STACK_PAINT_GUARD 64u

static void copy_data_and_clear_bss(void)
{
    const uint32_t *src = &__data_load__;
    for (uint32_t *dst = &__data_start__; dst < &__data_end__; ++dst) {
        *dst = *src++;
    }
    for (uint32_t *dst = &__bss_start__; dst < &__bss_end__; ++dst) {
        *dst = 0u;
    }
}

static void enable_fpu(void)
{
#if defined(__ARM_FP)
    /* CPACR: full access to coprocessors 10 and 11 (the FPU). */
    volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
    *cpacr |= (0xFu << 20);
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
}

static void paint_stack(void)
{
    uintptr_t sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    volatile uint32_t *word = &__stack_limit__;
    while ((uintptr_t)word < sp - STACK_PAINT_GUARD) {
        *word++ = PORT_STACK_PAINT;
    }
}

void Reset_Handler(void)
{
    copy_data_and_clear_bss();
    enable_fpu();
    paint_stack();
    qemu_mps2_uart_init();
    qemu_mps2_counter_init();
    bench_main();
    port_exit(0); /* bench_main() should not return; if it does, leave cleanly. */
}

/* Any unexpected fault or interrupt: say so on the semihosting console and exit 1, so a
 * test sees a failure instead of a hang. */
void Default_Handler(void)
{
    qemu_mps2_semihost_write0("tinyrank: unexpected exception\n");
    port_exit(1);
}

void HardFault_Handler(void)
{
    qemu_mps2_semihost_write0("tinyrank: hard fault\n");
    port_exit(1);
}

#define NUM_EXTERNAL_IRQS 32

typedef void (*vector_t)(void);

/* Core exceptions, then the first external interrupts (all unused). */
__attribute__((section(".isr_vector"), used)) const vector_t vector_table[16 + NUM_EXTERNAL_IRQS] = {
    (vector_t)(uintptr_t)&__stack_top__, /* initial stack pointer */
    Reset_Handler,
    Default_Handler,   /* NMI */
    HardFault_Handler, /* HardFault */
    HardFault_Handler, /* MemManage */
    HardFault_Handler, /* BusFault */
    HardFault_Handler, /* UsageFault */
    HardFault_Handler, /* SecureFault (v8-M) */
    0, 0, 0,           /* reserved */
    Default_Handler,   /* SVCall */
    Default_Handler,   /* DebugMonitor */
    0,                 /* reserved */
    Default_Handler,   /* PendSV */
    qemu_mps2_systick_handler,
    [16 ... 16 + NUM_EXTERNAL_IRQS - 1] = Default_Handler,
};
