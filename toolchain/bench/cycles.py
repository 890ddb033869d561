"""Estimated Cortex-M4 cycles for firmware measured in QEMU, where only instructions can be counted.

QEMU under `-icount shift=0` counts instructions exactly, but a real Cortex-M4 does not run one
instruction a cycle: loads, multiple loads, taken branches and divisions cost more. A kernel must
not look fast by using fewer but slower instructions, so `tinyrank bench` also runs one inference
with QEMU's execution trace on (`-d exec,nochain,in_asm`, filtered to the model's own functions),
replays it through a timing table, and reports the cycles per instruction (CPI) of the model's
code as executed. Estimated cycles are then the measured instructions times that CPI.

The timing model (Cortex-M4 Technical Reference Manual, zero wait-state memory, no cache):
- most instructions, including MUL/MLA, SMLAD/SMLABB, long multiplies and SSAT: 1 cycle;
- a load (LDR, LDRB, LDRH, LDRSB, LDRSH): 2 cycles, 1 when it follows another load or store
  (their address and data phases pipeline);
- a store with an immediate offset: 1 cycle; with a register offset: 2;
- LDRD/STRD: 3; LDM/STM/PUSH/POP of N registers: 1 + N;
- a taken branch (B, BL, BX, BLX, CBZ/CBNZ, POP or LDR into PC, a write to PC): 3 more cycles in
  all (1 + a pipeline refill of 2); a conditional branch that is not taken: 1;
- SDIV/UDIV: 12, the worst case of the 2-12 the manual gives (data dependent).
Flash wait states (the Nano 33 BLE's nRF52840 has none at 64 MHz; STM32 parts have some above
24 MHz) and bus contention are not modelled: these are estimates, labelled as such everywhere.
Functions outside the model (memcpy, the benchmark app) are not traced.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchain.errors import DeviceError

TIMING_MODEL = "Cortex-M4, zero wait states"
# The port's counter, reached through the per-op hooks: its spins to a tick edge are what the
# measured count subtracts, so they are not traced either.
COUNTER_FUNCTIONS = frozenset({"port_counter_start", "port_counter_elapsed"})
BRANCH_TAKEN_CYCLES = 3
DIVIDE_CYCLES = 12

_CONDITIONS = (
    "eq",
    "ne",
    "cs",
    "hs",
    "cc",
    "lo",
    "mi",
    "pl",
    "vs",
    "vc",
    "hi",
    "ls",
    "ge",
    "lt",
    "gt",
    "le",
    "al",
)
_LOADS = {"ldr", "ldrb", "ldrh", "ldrsb", "ldrsh", "ldrex", "ldrexb", "ldrexh", "ldrt", "ldrbt", "ldrht"}
_STORES = {"str", "strb", "strh", "strex", "strexb", "strexh", "strt", "strbt", "strht"}
_MULTIPLE = {"ldm", "ldmia", "ldmfd", "ldmdb", "stm", "stmia", "stmea", "stmdb", "stmfd", "push", "pop"}
_MULTIPLE |= {"vpush", "vpop", "vldm", "vstm", "vldmia", "vstmia", "vstmdb"}
_BRANCHES = {"b", "bl", "bx", "blx", "cbz", "cbnz", "tbb", "tbh"}
_DIVIDES = {"sdiv", "udiv"}
_INSTRUCTION = re.compile(r"^0x([0-9a-f]+):\s+((?:[0-9a-f]{4}\s?)+)\s+(\S+)\s*(.*)$")
_TRACE = re.compile(r"^Trace \d+: (0x[0-9a-f]+) \[[0-9a-f]+/([0-9a-f]+)/")


@dataclass(frozen=True)
class Instruction:
    address: int
    size: int
    mnemonic: str  # without width or condition suffix: "ldr", "smlad", "b"
    operands: str
    conditional: bool


@dataclass
class CycleEstimate:
    """Instructions and estimated cycles of the traced code, in all and per function."""

    instructions: int = 0
    cycles: int = 0
    by_function: dict[str, list[int]] = field(default_factory=dict)  # name -> [instructions, cycles]
    by_class: Counter = field(default_factory=Counter)  # instruction class -> cycles

    @property
    def cpi(self) -> float:
        return self.cycles / self.instructions if self.instructions else 1.0

    def function_cpi(self, names: Iterable[str]) -> float | None:
        """CPI over the named functions (a kernel file's functions), None if none of them ran."""
        counts = [self.by_function[n] for n in names if n in self.by_function]
        instructions = sum(c[0] for c in counts)
        return sum(c[1] for c in counts) / instructions if instructions else None


def base_mnemonic(text: str) -> tuple[str, bool]:
    """('ldr', False) for 'ldr.w'; ('b', True) for 'bne'; ('mov', True) for 'movgt' (inside an IT block)."""
    name = text.lower().split(".")[0]
    if name in _LOADS | _STORES | _MULTIPLE | _BRANCHES | _DIVIDES:
        return name, False
    for cond in _CONDITIONS:
        stem = name[: -len(cond)]
        if name.endswith(cond) and stem and not name.startswith("it"):
            known = stem in _LOADS | _STORES | _MULTIPLE | _BRANCHES | _DIVIDES
            if known or stem in ("mov", "add", "sub", "cmp", "and", "orr", "eor", "mvn", "lsl", "lsr", "asr"):
                return stem, True
            if stem in ("bl", "bx"):
                return stem, True
    return name, False


def _register_count(operands: str) -> int:
    """Registers in a register list such as '{r4, r5, r6, lr}' or '{r4-r7}' (ranges counted in full)."""
    inside = operands[operands.find("{") + 1 : operands.find("}")] if "{" in operands else ""
    count = 0
    for part in filter(None, (p.strip() for p in inside.split(","))):
        if "-" in part:
            low, high = (int(re.sub(r"\D", "", r) or 0) for r in part.split("-"))
            count += abs(high - low) + 1
        else:
            count += 1
    return max(count, 1)


def writes_pc(instruction: Instruction) -> bool:
    """True for instructions that always change the flow: POP {.., pc}, LDR pc, MOV pc, BX, BL, B."""
    name, ops = instruction.mnemonic, instruction.operands.replace(" ", "")
    if name in ("bl", "blx", "bx", "tbb", "tbh") or (name == "b" and not instruction.conditional):
        return True
    if name in ("pop", "ldm", "ldmia", "ldmfd") and "pc" in ops:
        return True
    return name not in _BRANCHES and (ops.startswith("pc,") or ops == "pc")


def instruction_cycles(
    instruction: Instruction, previous: Instruction | None, taken: bool
) -> tuple[int, str]:
    """(cycles, class) of one executed instruction under the timing model in the module docstring."""
    name = instruction.mnemonic
    previous_is_memory = previous is not None and previous.mnemonic in _LOADS | _STORES
    if name in _MULTIPLE:
        cycles, kind = 1 + _register_count(instruction.operands), "load/store multiple"
        if "pc" in instruction.operands:
            cycles, kind = cycles + BRANCH_TAKEN_CYCLES - 1, "branch"
        return cycles, kind
    if name in ("ldrd", "strd"):
        return 3, "load/store multiple"
    if name in _LOADS:
        if "pc" in instruction.operands.split(",")[0]:
            return 2 + BRANCH_TAKEN_CYCLES - 1, "branch"
        return (1 if previous_is_memory else 2), "load"
    if name in _STORES:
        register_offset = re.search(r"\[\w+,\s*[a-z]", instruction.operands) is not None
        return (2 if register_offset else 1), "store"
    if name in _DIVIDES:
        return DIVIDE_CYCLES, "divide"
    if name in _BRANCHES or writes_pc(instruction):
        return (BRANCH_TAKEN_CYCLES if taken else 1), "branch"
    return 1, "other"


def parse_block(lines: Iterable[str]) -> list[Instruction]:
    """The instructions of one translation block from QEMU's `in_asm` log."""
    block = []
    for line in lines:
        match = _INSTRUCTION.match(line.strip())
        if match:
            address, encoding, mnemonic, operands = match.groups()
            name, conditional = base_mnemonic(mnemonic)
            size = 2 * len(encoding.split())
            block.append(Instruction(int(address, 16), size, name, operands.strip(), conditional))
    return block


def replay(log_lines: Iterable[str]) -> CycleEstimate:
    """Replay a `-d exec,nochain,in_asm` log: every executed block's instructions through the timing table.

    Blocks are told apart by QEMU's host pointer, not by address: under -icount QEMU may
    translate a shorter block at the same address to stop at the right instruction.
    """
    blocks: dict[str, list[Instruction]] = {}
    names: dict[str, str] = {}
    executed: list[str] = []
    pending: list[str] = []
    pending_name = "?"
    for line in log_lines:
        if line.startswith("IN:"):
            pending, pending_name = [], line[3:].strip() or "?"
        elif line.startswith("0x"):
            pending.append(line)
        elif line.startswith("Trace"):
            match = _TRACE.match(line)
            if match is None:
                continue
            key = match.group(1)
            if pending:
                blocks[key], names[key] = parse_block(pending), pending_name
                pending = []
            executed.append(key)
    return _estimate(blocks, names, executed)


def _estimate(
    blocks: dict[str, list[Instruction]], names: dict[str, str], executed: list[str]
) -> CycleEstimate:
    estimate = CycleEstimate()
    previous: Instruction | None = None
    starts = {key: block[0].address for key, block in blocks.items() if block}
    for position, key in enumerate(executed):
        block = blocks.get(key)
        if not block:
            continue
        following = starts.get(executed[position + 1]) if position + 1 < len(executed) else None
        fallthrough = block[-1].address + block[-1].size
        cycles = 0
        for index, instruction in enumerate(block):
            last = index == len(block) - 1
            taken = writes_pc(instruction) or (last and following is not None and following != fallthrough)
            spent, kind = instruction_cycles(instruction, previous, taken)
            cycles += spent
            estimate.by_class[kind] += spent
            previous = instruction
        totals = estimate.by_function.setdefault(names.get(key, "?"), [0, 0])
        totals[0] += len(block)
        totals[1] += cycles
        estimate.instructions += len(block)
        estimate.cycles += cycles
    return estimate


# ---------------------------------------------------------------- which code is the model's


def _nm(path: Path, prefix: str) -> list[str]:
    result = subprocess.run(
        [f"{prefix}nm", "-S", "--defined-only", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise DeviceError(f"{prefix}nm {path}: {result.stderr.strip() or 'failed'}")
    return result.stdout.splitlines()


def model_functions(elf: Path, prefix: str = "arm-none-eabi-") -> dict[str, list[str]]:
    """{object file stem: its function names} for the generated model's objects next to the ELF.

    PlatformIO compiles `src/model/*.c` into `.pio/build/<env>/src/model/*.o`; those are the
    model and its kernels, everything else is the benchmark app, the port and the C library.
    """
    objects = sorted((elf.parent / "src" / "model").glob("*.o"))
    if not objects:
        raise DeviceError(f"{elf.parent / 'src' / 'model'}: no model objects; rebuild with `tinyrank build`")
    found = {}
    for obj in objects:
        found[obj.stem] = [
            line.split()[-1]
            for line in _nm(obj, prefix)
            if line.split()[-2:-1] in (["T"], ["t"], ["W"], ["w"])
        ]
    return found


def function_ranges(elf: Path, names: Iterable[str], prefix: str = "arm-none-eabi-") -> list[tuple[int, int]]:
    """(start, size) of each named function in the linked ELF (Thumb bit cleared), sorted."""
    wanted = set(names)
    ranges = set()
    for line in _nm(elf, prefix):
        parts = line.split()
        # T/t: functions; W/w: the kernels, which are weak so two models can link into one firmware
        if len(parts) == 4 and parts[2] in "TtWw" and parts[3] in wanted and int(parts[1], 16) > 0:
            ranges.add((int(parts[0], 16) & ~1, int(parts[1], 16)))
    return sorted(ranges)


def trace_arguments(ranges: list[tuple[int, int]]) -> list[str]:
    """Extra qemu-system-arm arguments that log every executed block of the given address ranges.

    The log goes to QEMU's stderr, which is unbuffered: a log file (`-D`) loses its buffered
    tail when QEMU is stopped by a signal.
    """
    spec = ",".join(f"0x{start:x}+0x{size:x}" for start, size in ranges)
    return ["-d", "exec,nochain,in_asm", "-dfilter", spec]


_CALL = re.compile(r"^\s*[0-9a-f]+:\s.*\t(?:bl|blx|b\.w|b)\s+[0-9a-f]+ <([^>+]+)>")
_FUNCTION = re.compile(r"^[0-9a-f]+ <([^>]+)>:$")


def call_graph(elf: Path, prefix: str = "arm-none-eabi-") -> dict[str, set[str]]:
    """{function: the functions it calls or tail-calls}, from the ELF's disassembly."""
    result = subprocess.run(
        [f"{prefix}objdump", "-d", str(elf)], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise DeviceError(f"{prefix}objdump {elf}: {result.stderr.strip() or 'failed'}")
    graph: dict[str, set[str]] = {}
    current = ""
    for line in result.stdout.splitlines():
        function = _FUNCTION.match(line)
        if function:
            current = function.group(1)
            graph.setdefault(current, set())
            continue
        call = _CALL.match(line)
        if call and current and call.group(1) != current:
            graph[current].add(call.group(1))
    return graph


def reachable(graph: dict[str, set[str]], roots: Iterable[str]) -> set[str]:
    """The roots and every function they reach: the C library and profiling hooks the model calls."""
    found, pending = set(), list(roots)
    while pending:
        name = pending.pop()
        if name not in found:
            found.add(name)
            pending.extend(graph.get(name, ()))
    return found


def trace_one_inference(board: Any, elf: Path, inputs: list[bytes], timeout_s: float = 5.0) -> CycleEstimate:
    """Run one inference in QEMU with the execution trace on; replay it through the timing model.

    Traced: the model's functions and everything they call (memcpy, libgcc helpers, the
    benchmark app's per-op hooks), which is what the measured count covers.
    """
    roots = [name for names in model_functions(elf).values() for name in names]
    traced = reachable(call_graph(elf), roots) - COUNTER_FUNCTIONS
    return _trace(board, elf, inputs, sorted(traced), timeout_s)


def _trace(
    board: Any, elf: Path, inputs: list[bytes], functions: list[str], timeout_s: float
) -> CycleEstimate:
    from toolchain.bench.client import BenchClient
    from toolchain.firmware.emulators import QemuSession

    ranges = function_ranges(elf, functions)
    if not ranges:
        raise DeviceError(f"{elf}: none of the model's functions were found in the ELF")
    with QemuSession(board, elf, extra_args=trace_arguments(ranges)) as qemu:
        client = BenchClient.open(qemu.url, baudrate=board.baud, timeout=timeout_s)
        try:
            client.hello()
            for index, data in enumerate(inputs):
                client.set_input(index, data)
            status, _count = client.invoke(1)
            client.hello()  # one more round trip: the traced inference is over and logged
        finally:
            client.close()
        qemu.stop()
        if status != 0:
            raise DeviceError(f"{elf}: tr_invoke returned {status} in the traced run")
        estimate = replay(qemu.stderr_lines())
    if estimate.instructions == 0:
        raise DeviceError(f"QEMU traced none of the model's code for {elf}")
    return estimate


def kernel_cpi(estimate: CycleEstimate, functions: dict[str, list[str]]) -> dict[str, float]:
    """{model object stem (e.g. 'tr_depthwise_conv'): CPI of its functions} for the objects that ran."""
    found = {}
    for stem, names in functions.items():
        cpi = estimate.function_cpi(names)
        if cpi is not None:
            found[stem] = round(cpi, 4)
    return found


def summary(estimate: CycleEstimate, measured_instructions: float, functions: dict[str, list[str]]) -> dict:
    """The report section: CPI of the traced inference and the estimated cycles of the measured one."""
    return {
        "timing_model": TIMING_MODEL,
        "traced_instructions": estimate.instructions,
        "traced_cycles": estimate.cycles,
        "cycles_per_instruction": round(estimate.cpi, 4),
        "estimated_cycles": int(round(measured_instructions * estimate.cpi)),
        "cycles_by_class": dict(estimate.by_class),
        "kernel_cpi": kernel_cpi(estimate, functions),
    }
