"""Memory planner: no two live buffers share a byte, close to the lower bound (the largest set
of buffers alive at one time), and never above the arena TFLite Micro records for the same
model (its `tflite_micro` interpreter's recording allocator)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolchain import oracle
from toolchain.codegen.generator import lower_graph
from toolchain.codegen.graph import parse
from toolchain.codegen.planner import ALIGNMENT, Buffer, align, check_plan, plan

buffer_specs = st.lists(
    st.tuples(st.integers(1, 5000), st.integers(0, 12), st.integers(0, 6)), min_size=1, max_size=25
)


def _buffers(specs) -> list[Buffer]:
    return [Buffer(f"b{i}", n, first, first + length) for i, (n, first, length) in enumerate(specs)]


def _lower_bound(buffers: list[Buffer]) -> int:
    steps = range(min(b.first for b in buffers), max(b.last for b in buffers) + 1)
    return max(sum(align(b.nbytes) for b in buffers if b.first <= t <= b.last) for t in steps)


@settings(max_examples=200, deadline=None)
@given(buffer_specs)
def test_plan_is_valid_and_above_the_lower_bound(specs) -> None:
    buffers = _buffers(specs)
    size = plan(buffers)
    check_plan(buffers)
    assert all(b.offset + b.nbytes <= size for b in buffers)
    assert size % ALIGNMENT == 0
    assert size >= _lower_bound(buffers)


# MLPerf Tiny architectures (random weights) with different liveness: a chain of dense layers,
# a plain CNN, and residual blocks whose skip tensors stay alive across several ops.
TFLM_MODELS = ("fc_autoencoder", "ds_cnn", "resnet8")


@pytest.fixture(scope="module", params=TFLM_MODELS)
def tflite(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from benchmarks.mlperf_tiny import build_tflite

    data, _ = build_tflite(request.param, samples=8)
    path = tmp_path_factory.mktemp("planner") / f"{request.param}.tflite"
    path.write_bytes(data)
    return path


def test_tensor_plan_fits_in_the_arena_tflite_micro_records(tflite: Path) -> None:
    """TFLite Micro plans the same tensors with its greedy planner; its recorded `head` (the
    planned part of its arena, without persistent allocations) is the figure to beat.

    Scratch buffers are left out: tinyrank's kernels ask for different ones than TFLM's, and so
    are in-place row kernels (TFLM has none; tests/test_codegen_inplace.py covers them).
    """
    recorded = oracle.arena_usage(tflite)
    model = lower_graph(parse(tflite), fuse=False, in_place=False)
    tensors = [
        Buffer(b.name, b.nbytes, b.first, b.last) for b in model.buffers if b.name.startswith("tensor ")
    ]
    assert tensors
    size = plan(tensors)
    check_plan(tensors)
    assert size <= recorded.head, (size, recorded)
    # Reuse is what is being compared: without it, the tensors would not fit TFLM's arena.
    assert sum(align(b.nbytes) for b in tensors) > recorded.head


def test_chain_reuses_memory() -> None:
    # a -> b -> c -> d, each alive for two consecutive ops: two buffers suffice.
    buffers = [
        Buffer("a", 1000, -1, 0),
        Buffer("b", 1000, 0, 1),
        Buffer("c", 1000, 1, 2),
        Buffer("d", 1000, 2, 3),
    ]
    assert plan(buffers) == 2 * align(1000)
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


def test_group_holds_each_piece_only_while_it_lives() -> None:
    # an in-place chain a -> b: a (1000 B, ops 0-1) at the group's end, b (2000 B, ops 1-2) from its
    # start; c (1000 B, op 0 only) fits below a while b does not exist yet
    group = Buffer("ab", 2000, 0, 2, pieces=[(1008, 1000, 0, 1), (0, 2000, 1, 2)])
    c = Buffer("c", 1000, 0, 0)
    assert plan([group, c]) == 2016
    check_plan([group, c])
    assert c.offset + 1008 <= group.offset + 1008  # c lies where b will be, below a
    # without pieces the group would hold all 2000 B at op 0 too
    assert plan([Buffer("ab", 2000, 0, 2), Buffer("c", 1000, 0, 0)]) == 2000 + 1008


def test_check_plan_sees_pieces() -> None:
    group = Buffer("ab", 2000, 0, 2, offset=0, pieces=[(1008, 1000, 0, 1), (0, 2000, 1, 2)])
    check_plan([group, Buffer("c", 1000, 0, 0, offset=0)])
    with pytest.raises(AssertionError, match="overlap"):
        check_plan([group, Buffer("c", 1000, 0, 0, offset=512)])
