"""The static memory plan: every activation tensor and scratch buffer gets an arena offset.

Buffers whose lifetimes (first to last op that touches them, inclusive) overlap must not
overlap in memory. Placement is TFLite Micro's greedy strategy (largest first, lowest
offset that fits) plus a few other orders; the smallest arena wins, so the plan is never
worse than TFLM's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

ALIGNMENT = 16


@dataclass
class Buffer:
    """A block of the arena: one tensor (or a group of aliased tensors), or a scratch buffer."""

    name: str
    nbytes: int
    first: int  # first op index that writes or reads it (-1: before the first op, a graph input)
    last: int  # last op index that reads it (len(ops): after the last op, a graph output)
    offset: int = -1
    members: list[str] = field(default_factory=list)

    def overlaps_in_time(self, other: Buffer) -> bool:
        return self.first <= other.last and other.first <= self.last


def _align(n: int, alignment: int = ALIGNMENT) -> int:
    return (n + alignment - 1) // alignment * alignment


def _place_in_order(buffers: list[Buffer]) -> tuple[list[int], int]:
    """Greedy placement in the given order; returns offsets (same order) and the arena size."""
    placed: list[tuple[Buffer, int]] = []
    offsets: list[int] = []
    for buf in buffers:
        live = sorted((off, off + _align(b.nbytes)) for b, off in placed if b.overlaps_in_time(buf))
        candidate = 0
        for start, end in live:
            if candidate + _align(buf.nbytes) <= start:
                break
            candidate = max(candidate, end)
        placed.append((buf, candidate))
        offsets.append(candidate)
    size = max((off + _align(b.nbytes) for b, off in placed), default=0)
    return offsets, size


_ORDERS: dict[str, Callable[[Buffer], tuple]] = {
    "largest first (TFLM greedy)": lambda b: (-b.nbytes, b.first),
    "longest lifetime first": lambda b: (-(b.last - b.first), -b.nbytes),
    "earliest first": lambda b: (b.first, -b.nbytes),
    "largest area first": lambda b: (-b.nbytes * (b.last - b.first + 1), b.first),
}


def plan(buffers: Iterable[Buffer]) -> int:
    """Set every buffer's offset; returns the arena size in bytes (a multiple of ALIGNMENT)."""
    items = [b for b in buffers if b.nbytes > 0]
    best: tuple[int, list[Buffer], list[int]] | None = None
    for key in _ORDERS.values():
        order = sorted(items, key=key)
        offsets, size = _place_in_order(order)
        if best is None or size < best[0]:
            best = (size, order, offsets)
    if best is None:
        return 0
    size, order, offsets = best
    for buf, off in zip(order, offsets, strict=True):
        buf.offset = off
    return size


def check_plan(buffers: list[Buffer]) -> None:
    """Assert that no two buffers alive at the same time share a byte (used by tests)."""
    items = [b for b in buffers if b.nbytes > 0]
    for i, a in enumerate(items):
        if a.offset < 0 or a.offset % ALIGNMENT:
            raise AssertionError(f"buffer {a.name} has offset {a.offset}")
        for b in items[i + 1 :]:
            if a.overlaps_in_time(b) and a.offset < b.offset + b.nbytes and b.offset < a.offset + a.nbytes:
                raise AssertionError(f"buffers {a.name} and {b.name} overlap in time and memory")
