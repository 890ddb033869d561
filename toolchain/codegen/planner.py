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
    # (offset in the buffer, bytes, first, last) of each tensor of an in-place group: the group
    # holds each tensor's bytes only while that tensor lives. Empty: the whole buffer, always.
    pieces: list[tuple[int, int, int, int]] = field(default_factory=list)

    def parts(self) -> list[tuple[int, int, int, int]]:
        """(offset in the buffer, aligned bytes, first, last) of the blocks the buffer holds."""
        if not self.pieces:
            return [(0, align(self.nbytes), self.first, self.last)]
        return [(at, align(n), first, last) for at, n, first, last in self.pieces]


def align(n: int, alignment: int = ALIGNMENT) -> int:
    """n bytes rounded up to whole alignment units (where the planner may place a block)."""
    return (n + alignment - 1) // alignment * alignment


def _place_in_order(buffers: list[Buffer]) -> tuple[list[int], int]:
    """Greedy placement in the given order; returns offsets (same order) and the arena size.

    A buffer goes to the lowest offset where none of its blocks meets a block already placed
    that is alive at the same time."""
    placed: list[tuple[int, int, int, int]] = []  # start, end, first, last of every placed block
    offsets: list[int] = []
    size = 0
    for buf in buffers:
        parts = buf.parts()
        # offsets of `buf` that would make one of its blocks meet a placed one: (lo, hi) open
        forbidden = sorted(
            (start - at - n, end - at)
            for at, n, first, last in parts
            for start, end, begins, ends in placed
            if first <= ends and begins <= last
        )
        candidate = 0
        for lo, hi in forbidden:
            if candidate <= lo:
                break
            candidate = max(candidate, hi)
        placed += [(candidate + at, candidate + at + n, first, last) for at, n, first, last in parts]
        offsets.append(candidate)
        size = max(size, candidate + max(at + n for at, n, _, _ in parts))
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
    """Assert that no two blocks alive at the same time share a byte (used by tests)."""
    items = [b for b in buffers if b.nbytes > 0]
    for i, a in enumerate(items):
        if a.offset < 0 or a.offset % ALIGNMENT:
            raise AssertionError(f"buffer {a.name} has offset {a.offset}")
        for b in items[i + 1 :]:
            for at, n, first, last in a.parts():
                for bt, m, begins, ends in b.parts():
                    start, other = a.offset + at, b.offset + bt
                    if first <= ends and begins <= last and start < other + m and other < start + n:
                        raise AssertionError(f"buffers {a.name} and {b.name} overlap in time and memory")
