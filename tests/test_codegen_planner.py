"""Memory planner: no two live buffers share a byte, never worse than TFLM's greedy order,
and close to the lower bound (the largest set of buffers alive at one time)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from toolchain.codegen.planner import ALIGNMENT, Buffer, _align, _place_in_order, check_plan, plan

buffer_specs = st.lists(
    st.tuples(st.integers(1, 5000), st.integers(0, 12), st.integers(0, 6)), min_size=1, max_size=25
)


def _buffers(specs) -> list[Buffer]:
    return [Buffer(f"b{i}", n, first, first + length) for i, (n, first, length) in enumerate(specs)]


def _lower_bound(buffers: list[Buffer]) -> int:
    steps = range(min(b.first for b in buffers), max(b.last for b in buffers) + 1)
    return max(sum(_align(b.nbytes) for b in buffers if b.first <= t <= b.last) for t in steps)


@settings(max_examples=200, deadline=None)
@given(buffer_specs)
def test_plan_is_valid_and_not_worse_than_tflm_greedy(specs) -> None:
    buffers = _buffers(specs)
    size = plan(buffers)
    check_plan(buffers)
    assert all(b.offset + b.nbytes <= size for b in buffers)
    assert size % ALIGNMENT == 0
    assert size >= _lower_bound(buffers)
    tflm_order = sorted(_buffers(specs), key=lambda b: (-b.nbytes, b.first))
    assert size <= _place_in_order(tflm_order)[1]


def test_chain_reuses_memory() -> None:
    # a -> b -> c -> d, each alive for two consecutive ops: two buffers suffice.
    buffers = [
        Buffer("a", 1000, -1, 0),
        Buffer("b", 1000, 0, 1),
        Buffer("c", 1000, 1, 2),
        Buffer("d", 1000, 2, 3),
    ]
    assert plan(buffers) == 2 * _align(1000)
    check_plan(buffers)
    assert buffers[0].offset == buffers[2].offset


def test_check_plan_catches_overlap() -> None:
    a, b = Buffer("a", 32, 0, 1, offset=0), Buffer("b", 32, 1, 2, offset=16)
    try:
        check_plan([a, b])
    except AssertionError as exc:
        assert "a and b overlap" in str(exc)
    else:
        raise AssertionError("overlap not detected")
