"""Run generated C on an emulated Cortex-M (QEMU mps2 boards) without the firmware stage.

A bare-metal program of its own (vector table, reset handler, semihosting output) runs
every sample embedded in flash and prints the outputs in hex, plus the instructions
spent in `tr_invoke` (QEMU's `-icount shift=0` makes one instruction one nanosecond and
the CMSDK timer ticks at 25 MHz: 40 instructions a tick). This is how codegen checks that
the Cortex-M4 DSP path and the Cortex-M3 generic path are bit-exact, and how the codegen
benchmark counts instructions; the benchmark firmware of `tinyrank build` is separate.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.errors import BuildError, DeviceError

CC = "arm-none-eabi-gcc"
QEMU = "qemu-system-arm"
BUILD_TIMEOUT_S = 300
RUN_TIMEOUT_S = 120
INSTRUCTIONS_PER_TICK = 40


@dataclass(frozen=True)
class Core:
    machine: str
    cflags: tuple[str, ...]


CORES = {
    "cortex-m4": Core("mps2-an386", ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard")),
    "cortex-m3": Core("mps2-an385", ("-mcpu=cortex-m3", "-mfloat-abi=soft")),
}

LINKER_SCRIPT = """
MEMORY { FLASH (rx) : ORIGIN = 0x00000000, LENGTH = 4M
         RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 4M }
ENTRY(reset_handler)
SECTIONS {
  .vectors : { KEEP(*(.vectors)) } > FLASH
  .text : { *(.text*) *(.rodata*) . = ALIGN(4); } > FLASH
  .ARM.exidx : { *(.ARM.exidx*) } > FLASH
  __data_load = .;
  .data : AT(__data_load) { __data_start = .; *(.data*) . = ALIGN(4); __data_end = .; } > RAM
  .bss (NOLOAD) : { __bss_start = .; *(.bss*) *(COMMON) . = ALIGN(4); __bss_end = .; } > RAM
  __stack_top = ORIGIN(RAM) + LENGTH(RAM);
}
"""

MAIN = r"""
/* Bare-metal check program: run every embedded sample, print outputs and instruction counts. */
#include <stdint.h>
#include <string.h>
#include "model.h"

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;

static const int8_t samples[%(n)d][%(size)d] = { %(samples)s };

static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static char line[%(line)d];
static const char hex[] = "0123456789abcdef";

static void put_hex(char **p, uint32_t value, int digits)
{
    for (int i = digits - 1; i >= 0; --i) {
        *(*p)++ = hex[(value >> (4 * i)) & 0xFu];
    }
}

#define TIMER0 ((volatile uint32_t *)0x40000000u)

#ifdef TR_PROFILE
static uint32_t op_start, op_ticks[%(PREFIX)s_NUM_OPS > 0 ? %(PREFIX)s_NUM_OPS : 1];
void tr_profile_op_begin(int op) { (void)op; op_start = TIMER0[1]; }
void tr_profile_op_end(int op) { op_ticks[op] += op_start - TIMER0[1]; }
#endif

int main(void)
{
    TIMER0[2] = 0xFFFFFFFFu; /* RELOAD */
    TIMER0[1] = 0xFFFFFFFFu; /* VALUE */
    TIMER0[0] = 1u;          /* enable */
    for (int s = 0; s < %(n)d; ++s) {
        memcpy(%(prefix)s_input(0), samples[s], %(size)d);
        uint32_t start = TIMER0[1];
        int status = %(prefix)s_invoke();
        uint32_t ticks = start - TIMER0[1];
        char *p = line;
        put_hex(&p, (uint32_t)status, 2);
        *p++ = ' ';
        put_hex(&p, ticks, 8);
        *p++ = ' ';
        const int8_t *out = %(prefix)s_output(0);
        for (int i = 0; i < %(PREFIX)s_OUTPUT0_SIZE; ++i) {
            put_hex(&p, (uint8_t)out[i], 2);
        }
        *p++ = '\n';
        *p = 0;
        semihost(0x04, line); /* SYS_WRITE0 */
    }
#ifdef TR_PROFILE
    for (int op = 0; op < %(PREFIX)s_NUM_OPS; ++op) {
        char *p = line;
        *p++ = 'o';
        *p++ = 'p';
        *p++ = ' ';
        put_hex(&p, (uint32_t)op, 4);
        *p++ = ' ';
        put_hex(&p, op_ticks[op], 8);
        *p++ = '\n';
        *p = 0;
        semihost(0x04, line);
    }
#endif
    static const uint32_t exit_block[2] = { 0x20026u, 0u };
    semihost(0x20, exit_block); /* SYS_EXIT_EXTENDED, status 0 */
    return 0;
}

void reset_handler(void)
{
    uint32_t *src = &__data_load;
    for (uint32_t *dst = &__data_start; dst < &__data_end; ++dst) *dst = *src++;
    for (uint32_t *dst = &__bss_start; dst < &__bss_end; ++dst) *dst = 0;
#if defined(__ARM_FP)
    *(volatile uint32_t *)0xE000ED88u |= (0xFu << 20); /* enable the FPU */
    __asm__ volatile("dsb\n\tisb");
#endif
    main();
    for (;;) {}
}

static void fault_handler(void)
{
    static const uint32_t exit_block[2] = { 0x20026u, 3u };
    semihost(0x04, "fault\n");
    semihost(0x20, exit_block);
    for (;;) {}
}

__attribute__((section(".vectors"), used)) static const void *vectors[16] = {
    &__stack_top, (void *)reset_handler, (void *)fault_handler, (void *)fault_handler,
    (void *)fault_handler, (void *)fault_handler, (void *)fault_handler,
};
"""


@dataclass
class CortexMRun:
    outputs: np.ndarray  # (N, output size) int8
    instructions: list[int]  # per sample, in tr_invoke (40-instruction resolution)
    op_instructions: list[int] | None = None  # per op, summed over the samples (profile builds only)


def available() -> bool:
    return shutil.which(CC) is not None and shutil.which(QEMU) is not None


def build_elf(gen_dir: str | os.PathLike, info: dict[str, Any], samples: np.ndarray, core: str, out_dir: Path,
              *, opt: str = "-O2", extra_flags: list[str] | None = None) -> Path:
    """Cross-compile the generated model plus the check program for `core`."""
    gen = Path(gen_dir)
    size = info["inputs"][0]["size"]
    flat = np.ascontiguousarray(samples, np.int8).reshape(len(samples), size)
    rows = ",\n".join("{" + ",".join(str(int(v)) for v in row) + "}" for row in flat)
    prefix = info["prefix"]
    main = out_dir / "check_main.c"
    main.write_text(MAIN % {"n": len(flat), "size": size, "samples": rows, "prefix": prefix,
                            "PREFIX": prefix.upper(), "line": 2 * info["outputs"][0]["size"] + 32})
    script = out_dir / "check.ld"
    script.write_text(LINKER_SCRIPT)
    elf = out_dir / f"check_{core}.elf"
    cmd = [CC, "-std=c99", opt, "-g0", "-mthumb", *CORES[core].cflags, "-Wall", "-Wextra", "-Werror",
           "-ffunction-sections", "-fdata-sections", "-nostartfiles", "--specs=nano.specs", f"-T{script}",
           "-Wl,--gc-sections", f"-I{gen}", *(extra_flags or []), *sorted(str(p) for p in gen.glob("*.c")),
           str(main), "-o", str(elf)]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"{CC} for {core} timed out after {BUILD_TIMEOUT_S} s") from exc
    if result.returncode != 0:
        first = next((line for line in result.stderr.splitlines() if "error" in line), result.stderr[-300:])
        raise BuildError(f"{CC} for {core} failed: {first.strip()}")
    return elf


def run_elf(elf: Path, core: str, n: int, output_size: int) -> CortexMRun:
    """Run the check program in QEMU (always stopped: subprocess.run kills it on timeout)."""
    cmd = [QEMU, "-M", CORES[core].machine, "-nographic", "-monitor", "none", "-serial", "none",
           "-icount", "shift=0,align=off,sleep=off", "-semihosting-config", "enable=on,target=native",
           "-kernel", str(elf)]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise DeviceError(f"{QEMU} -M {CORES[core].machine} did not finish in {RUN_TIMEOUT_S} s") from exc
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    records = [line.split() for line in lines
               if not line.startswith("op ") and len(line.split()) == 3 and len(line.split()[0]) == 2]
    profile = [int(line.split()[2], 16) * INSTRUCTIONS_PER_TICK for line in lines if line.startswith("op ")]
    if result.returncode != 0 or len(records) != n:
        raise DeviceError(f"{elf.name} on {CORES[core].machine}: exit {result.returncode}, {len(records)} of {n} "
                          f"samples reported ({' | '.join(lines[-2:])})")
    outputs = np.zeros((n, output_size), np.int8)
    instructions = []
    for i, (status, ticks, data) in enumerate(records):
        if int(status, 16) != 0:
            raise DeviceError(f"tr_invoke returned {int(status, 16)} on sample {i}")
        outputs[i] = np.frombuffer(bytes.fromhex(data), np.int8)
        instructions.append(int(ticks, 16) * INSTRUCTIONS_PER_TICK)
    return CortexMRun(outputs, instructions, profile or None)


def run_on_core(gen_dir: str | os.PathLike, info: dict[str, Any], samples: np.ndarray, core: str,
                work_dir: Path, **build_options: Any) -> CortexMRun:
    elf = build_elf(gen_dir, info, samples, core, work_dir, **build_options)
    return run_elf(elf, core, len(samples), info["outputs"][0]["size"])
