"""The cost model against QEMU: predictions on shapes outside the fitting grid, and a latency
budget asked of compress met by the firmware it leads to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from toolchain.firmware.costfit import BOARDS, generate_model, measure_calls
from toolchain.firmware.costgrid import fitting_grid, held_out
from toolchain.firmware.costmodel import load_cost_model, signature

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

PER_OP = 0.10  # the targets: within 10% per op and 5% per model
PER_MODEL = 0.05


@pytest.fixture(scope="module")
def held_out_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, list[Path]]:
    """{dsp: generated folders}: each core measured on the C generated for it, as deploy does."""
    work = tmp_path_factory.mktemp("held_out")
    models = [build() for build in held_out()]
    return {dsp: [generate_model(model, work, model.name, dsp) for model in models] for dsp in (True, False)}


def _grid_shapes() -> set[str]:
    """Every layer shape the grid fits on (the held-out models must avoid them all)."""
    shapes = set()
    for build in fitting_grid():
        for layer in build().layers:
            config = layer.get_config()
            shapes.add(f"{type(layer).__name__} {layer.output.shape[1:]} {config.get('kernel_size')}")
    return shapes


def test_held_out_models_use_shapes_outside_the_grid(held_out_dirs):
    grid = _grid_shapes()
    for build in held_out():
        for layer in build().layers[1:]:
            key = f"{type(layer).__name__} {layer.output.shape[1:]} {layer.get_config().get('kernel_size')}"
            if type(layer).__name__ in ("Dense", "Conv2D", "DepthwiseConv2D") and layer.output.shape[-1] > 12:
                assert key not in grid


@pytest.mark.parametrize("core", sorted(BOARDS))
def test_predictions_on_held_out_shapes(held_out_dirs, core):
    from toolchain.firmware import load_board

    board = BOARDS[core]
    model = load_cost_model(board)
    for gen in held_out_dirs[load_board(board).has_dsp]:
        calls = measure_calls(gen, board)
        predicted = [model.predict_call(call["kernel"], call["shapes"]) for call in calls]
        assert all(known for _, known in predicted), "every kernel of the held-out models is fitted"
        for call, (value, _) in zip(calls, predicted, strict=True):
            error = abs(value - call["count"]) / call["count"]
            assert error <= PER_OP, (
                f"{gen.name} on {board}: {call['kernel']} {signature(call['shapes'])} {error:.1%}"
            )
        total = sum(value for value, _ in predicted)
        measured = sum(call["count"] for call in calls)
        assert abs(total - measured) / measured <= PER_MODEL, (
            f"{gen.name} on {board}: {total:.0f} vs {measured}"
        )


def _random_mlp():
    import keras

    keras.utils.set_random_seed(3)
    inp = keras.Input((64,))
    x = keras.layers.Dense(160, activation="relu", name="wide_1")(inp)
    x = keras.layers.Dense(96, activation="relu", name="wide_2")(x)
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax", name="classes")(x), name="mlp")


def test_latency_budget_is_met_in_qemu(tmp_path):
    from toolchain.bench.measure import run_samples
    from toolchain.codegen import generate
    from toolchain.compress import compress
    from toolchain.convert import convert_model
    from toolchain.firmware import build

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 64)).astype(np.float32)
    data = {"x_train": x, "y_train": rng.integers(0, 10, 200)}
    small, report = compress(_random_mlp(), data, board="qemu_m4", target_latency=0.4)
    budget = report["budget"]["limits"]["instructions"]
    (tmp_path / "small.tflite").write_bytes(convert_model(small, x, samples=64))
    generate(tmp_path / "small.tflite", tmp_path / "gen", tflm_arena=False)
    build(tmp_path / "gen", "qemu_m4")
    q = rng.integers(-128, 128, size=(1, 64), dtype=np.int8)
    measured = run_samples(tmp_path / "gen", "qemu_m4", q)["counts"][0]
    assert measured <= 1.05 * budget, f"{measured} instructions for a budget of {budget}"
    assert measured >= 0.5 * budget  # the search spent the budget on accuracy, not far below it
    assert report["budget"]["predicted_instructions"] == pytest.approx(measured, rel=PER_MODEL)
