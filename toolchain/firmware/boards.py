"""Boards: one TOML file in `boards/` per board, read into a `Board`.

Adding a board is adding a file; nothing in the code lists boards. A file is checked
when it is read (unknown or missing keys, wrong types, an unknown core) so a typo fails
with the file and key named instead of surfacing later as a strange compiler flag.
Emulated boards carry a `[qemu]` table (machine, CPU, UART address, SysTick scale) and a
`[memory]` table (QEMU's real memories, which the linker script caps at the budget).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from toolchain.errors import TinyrankError

BOARDS_DIR = Path(__file__).resolve().parents[2] / "boards"

# gcc flags for each core: the CPU, then the float ABI that goes with its FPU (if any).
CORE_CPU = {
    "cortex-m0": "cortex-m0",
    "cortex-m0plus": "cortex-m0plus",
    "cortex-m3": "cortex-m3",
    "cortex-m4f": "cortex-m4",
    "cortex-m7": "cortex-m7",
    "cortex-m33": "cortex-m33",
}
CORES_WITH_DSP = {"cortex-m4f", "cortex-m7", "cortex-m33"}
COUNTERS = {"dwt", "systick"}
FAMILIES = {"qemu_mps2", "arduino"}


@dataclass(frozen=True)
class MemoryMap:
    """Where QEMU's memories are; the board's budget is capped on top by the linker script."""

    flash_origin: int
    flash_size: int
    ram_origin: int
    ram_size: int


@dataclass(frozen=True)
class Board:
    id: str
    name: str
    mcu: str
    core: str
    clock_hz: int
    flash_bytes: int
    ram_bytes: int
    has_dsp: bool
    fpu: str  # "" when the core has none
    family: str  # which folder of firmware_templates/runtime/ports/ implements port.h
    pio_platform: str
    pio_board: str
    pio_framework: str  # "" for bare-metal (QEMU) boards
    upload_protocol: str
    baud: int
    counter: str  # "dwt" or "systick"
    stack_bytes: int  # stack reserved for the benchmark app and the model's kernels
    runtime_flash_bytes: int = 16_384  # start-up, UART, libc, benchmark app; framework on real boards
    runtime_ram_bytes: int = 4_096  # their .data/.bss and buffers
    renode_platform: str = ""  # Renode platform description (.repl) modelling the MCU, if any
    qemu_machine: str | None = None  # None for real boards
    qemu_cpu: str | None = None
    uart_base: int | None = None
    uart_kind: str = "cmsdk"  # the emulated UART: "cmsdk" (mps2 machines) or "nrf51" (microbit)
    instructions_per_tick: float | None = None  # 62.5 on the microbit's 16 MHz SysTick
    memory: MemoryMap | None = None
    path: Path | None = None

    @property
    def is_emulated(self) -> bool:
        return self.qemu_machine is not None

    @property
    def tick_fraction(self) -> tuple[int, int]:
        """`instructions_per_tick` as numerator and denominator, for integer arithmetic on the device."""
        fraction = Fraction(self.instructions_per_tick or 1).limit_denominator(1000)
        return fraction.numerator, fraction.denominator

    @property
    def counter_unit(self) -> str:
        """QEMU under -icount counts instructions; real boards count CPU cycles."""
        return "instructions" if self.is_emulated else "cycles"

    def compile_flags(self) -> list[str]:
        """gcc target flags for this board's core and FPU, as the QEMU builds and CI's cross-compile use."""
        cpu = CORE_CPU[self.core]
        if self.core == "cortex-m33" and not self.has_dsp:
            cpu += "+nodsp"
        flags = [f"-mcpu={cpu}", "-mthumb"]
        if self.core in ("cortex-m0", "cortex-m0plus"):
            flags.append("-masm-syntax-unified")  # inline assembly is read as divided syntax on Thumb-1
        if self.fpu:
            flags += [f"-mfpu={self.fpu}", "-mfloat-abi=hard"]
        else:
            flags += ["-mfloat-abi=soft"]
        return flags


_REQUIRED = [f.name for f in dataclasses.fields(Board) if f.default is dataclasses.MISSING]
_OPTIONAL_TOP = {"runtime_flash_bytes", "runtime_ram_bytes", "renode_platform"}
_QEMU_KEYS = {"machine", "cpu", "uart_base", "instructions_per_tick"}
_QEMU_OPTIONAL = {"uart"}
UART_KINDS = {"cmsdk", "nrf51"}
_MEMORY_KEYS = {f.name for f in dataclasses.fields(MemoryMap)}


def _expect(path: Path, key: str, value: Any, kind: type | tuple[type, ...]) -> None:
    # bool is an int in Python; a TOML `true` where a number belongs is still a typo.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TinyrankError(f"board file {path}: key '{key}' is {value!r}, expected {_kind_name(kind)}")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(
        {int: "an integer", float: "a number", str: "a string", bool: "true/false", dict: "a table"}[k]
        for k in kinds
    )


def _table(path: Path, raw: dict, name: str, keys: set[str], optional: set[str] = frozenset()) -> dict | None:
    table = raw.pop(name, None)
    if table is None:
        return None
    _expect(path, name, table, dict)
    unknown = sorted(set(table) - keys - optional)
    missing = sorted(keys - set(table))
    if unknown or missing:
        raise TinyrankError(
            f"board file {path}: table [{name}] has unknown keys {unknown} / lacks keys {missing}; "
            f"it needs exactly {sorted(keys)}"
        )
    return table


def _parse(path: Path) -> Board:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TinyrankError(f"board file {path}: cannot read it ({exc})") from exc

    qemu = _table(path, raw, "qemu", _QEMU_KEYS, _QEMU_OPTIONAL)
    memory = _table(path, raw, "memory", _MEMORY_KEYS)
    field_types = {f.name: f.type for f in dataclasses.fields(Board)}
    allowed = set(_REQUIRED) | _OPTIONAL_TOP
    for key in sorted(raw):
        if key not in allowed:
            raise TinyrankError(
                f"board file {path}: unknown key '{key}' (known keys: {', '.join(sorted(allowed))})"
            )
    for key in _REQUIRED:
        if key not in raw:
            raise TinyrankError(f"board file {path}: missing key '{key}'")
    for key, value in raw.items():
        declared = field_types[key]
        kind = bool if declared == "bool" else int if declared == "int" else str
        _expect(path, key, value, kind)

    if raw["id"] != path.stem:
        raise TinyrankError(f"board file {path}: id '{raw['id']}' must match the file name '{path.stem}'")
    if raw["core"] not in CORE_CPU:
        raise TinyrankError(f"board file {path}: core '{raw['core']}' is not one of {', '.join(CORE_CPU)}")
    if raw["has_dsp"] and raw["core"] not in CORES_WITH_DSP:
        raise TinyrankError(f"board file {path}: has_dsp = true but {raw['core']} has no DSP instructions")
    if raw["counter"] not in COUNTERS:
        raise TinyrankError(f"board file {path}: counter '{raw['counter']}' must be 'dwt' or 'systick'")
    if raw["family"] not in FAMILIES:
        raise TinyrankError(
            f"board file {path}: family '{raw['family']}' must be one of {', '.join(sorted(FAMILIES))}"
        )
    for key in ("clock_hz", "flash_bytes", "ram_bytes", "baud", "stack_bytes"):
        if raw[key] <= 0:
            raise TinyrankError(f"board file {path}: key '{key}' must be positive, got {raw[key]}")
    if (raw["family"] == "qemu_mps2") != (qemu is not None and memory is not None):
        raise TinyrankError(
            f"board file {path}: family 'qemu_mps2' needs [qemu] and [memory] tables, and only it may have them"
        )

    extra: dict[str, Any] = {}
    if qemu is not None and memory is not None:
        for key, value in {**qemu, **memory}.items():
            kind: type | tuple[type, ...] = str if key in ("machine", "cpu", "uart") else int
            _expect(path, key, value, (int, float) if key == "instructions_per_tick" else kind)
        if qemu.get("uart", "cmsdk") not in UART_KINDS:
            raise TinyrankError(
                f"board file {path}: [qemu] uart must be one of {', '.join(sorted(UART_KINDS))}"
            )
        if not qemu["instructions_per_tick"] > 0:
            raise TinyrankError(f"board file {path}: [qemu] instructions_per_tick must be positive")
        if memory["flash_size"] < raw["flash_bytes"] or memory["ram_size"] < raw["ram_bytes"]:
            raise TinyrankError(
                f"board file {path}: the budget ({raw['flash_bytes']} B flash, {raw['ram_bytes']} B RAM) is "
                f"larger than QEMU's memories ({memory['flash_size']} B, {memory['ram_size']} B)"
            )
        extra = {
            "qemu_machine": qemu["machine"],
            "qemu_cpu": qemu["cpu"],
            "uart_base": qemu["uart_base"],
            "uart_kind": qemu.get("uart", "cmsdk"),
            "instructions_per_tick": qemu["instructions_per_tick"],
            "memory": MemoryMap(**memory),
        }
    return Board(**raw, **extra, path=path)


def list_boards(boards_dir: Path = BOARDS_DIR) -> list[Board]:
    """Every board file, sorted by id."""
    return [_parse(path) for path in sorted(boards_dir.glob("*.toml"))]


def load_board(board_id: str | Board, boards_dir: Path = BOARDS_DIR) -> Board:
    """The board called `board_id` (a Board passes through, so callers may take either)."""
    if isinstance(board_id, Board):
        return board_id
    path = boards_dir / f"{board_id}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in boards_dir.glob("*.toml")))
        raise TinyrankError(f"unknown board '{board_id}': no {path}; known boards: {known}")
    return _parse(path)
