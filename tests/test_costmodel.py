"""The on-device cost model and the device side of the rank search (no QEMU here; see
test_costmodel_qemu.py for predictions checked against measurements)."""

from __future__ import annotations

import numpy as np
import pytest

from toolchain.compress.budget import Candidate
from toolchain.compress.costs import _op, add_device_costs, device_costs, layer_shapes, select_within
from toolchain.errors import BudgetError
from toolchain.firmware.boards import load_board
from toolchain.firmware.costfit import fit_core
from toolchain.firmware.costmodel import CostModel, core_of, load_cost_model


def _fc_rows(shapes, cost):
    return [
        {"kernel": "tr_fc", "shapes": [_op("fc", p, i, o, p * i)], "count": cost(p, i, o)}
        for p, i, o in shapes
    ]


def test_fit_recovers_a_blocked_loop_cost_on_unseen_shapes():
    # a kernel that runs rows in pairs, outputs in groups of four, inputs in words of four
    def cost(p, i, o):
        return 40 + p * (12 + (o // 4) * (20 + 9 * (i // 4) + 5 * (i % 4)) + (o % 4) * (15 + 4 * i))

    rng = np.random.default_rng(0)
    grid = [tuple(int(v) for v in rng.integers(1, 200, 3)) for _ in range(120)]
    fitted = fit_core(_fc_rows(grid, cost))
    model = CostModel("m4", fitted["kernels"], fitted["fusions"])
    for p, i, o in [(1, 77, 33), (7, 13, 150), (3, 190, 5)]:
        predicted, known = model.predict_call("tr_fc", [_op("fc", p, i, o, p * i)])
        assert known
        assert predicted == pytest.approx(cost(p, i, o), rel=0.02)
    assert fitted["fusions"] == {"fc": "tr_fc"}


def test_every_measured_core_has_a_fit_and_boards_map_to_cores():
    assert {core_of(load_board(b)) for b in ("qemu_m4", "qemu_m3", "qemu_m33")} == {"m4", "m3", "m33"}
    assert core_of(load_board("nano33")) == "m4"
    assert core_of(load_board("pico")) == "m3"  # no DSP: the plain-C path
    assert load_cost_model("pico").borrowed_from == "m3"
    for board in ("qemu_m4", "qemu_m3", "qemu_m33"):
        model = load_cost_model(board)
        assert "tr_fully_connected_int8" in model.kernels
        dense = model.predict_layers([_op("fc", 1, 256, 128, 256)])
        assert (
            0.5 < dense / (256 * 128) < 5.0
        )  # instructions per MAC of a dense layer (the M4 row stream: 0.96)


def test_generic_path_costs_more_than_the_dsp_path():
    shape = [_op("fc", 1, 256, 128, 256)]
    assert load_cost_model("qemu_m3").predict_layers(shape) > load_cost_model("qemu_m4").predict_layers(shape)


def _dense_info(inputs: int, outputs: int):
    import keras

    from toolchain.compress.layers import describe_layer

    model = keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(outputs, name="thin")])
    return describe_layer(0, model.layers[0])


def test_a_layer_is_kept_whole_where_every_factored_form_is_slower():
    info = _dense_info(16, 16)
    device = device_costs("qemu_m4")
    keep = device.vector(info, None, ())["instructions"]
    # ranks that still save parameters (r * 32 < 256) but, through two calls, cost more instructions
    slower = [r for r in range(1, 8) if device.vector(info, "svd", (r,))["instructions"] > keep]
    assert slower, "a 16x16 layer factored near its parameter break-even should be slower"
    table = {"thin": [Candidate(None, (), 0.0, 272, 256, 320)]}
    table["thin"] += [Candidate("svd", (r,), 0.1, 32 * r + 16, 32 * r, 32 * r + 64) for r in slower]
    notes = add_device_costs(table, {"thin": info}, device)
    assert [c.method for c in table["thin"]] == [None]
    assert "kept whole" in notes["thin"] and "slower" in notes["thin"] and "qemu_m4" in notes["thin"]


def test_factored_forms_that_are_faster_stay_candidates():
    info = _dense_info(256, 128)
    device = device_costs("qemu_m4")
    table = {"wide": [Candidate(None, (), 0.0, 0, 0, 0), Candidate("svd", (8,), 0.2, 0, 0, 0)]}
    assert add_device_costs(table, {"wide": info}, device) == {}
    keep, factored = table["wide"]
    assert factored.instructions < 0.3 * keep.instructions
    assert factored.flash_bytes < keep.flash_bytes


def test_layer_shapes_follow_the_factored_layers():
    info = _dense_info(64, 32)
    assert [(s["kind"], s["i"], s["o"]) for s in layer_shapes(info, "svd", (4,))] == [
        ("fc", 64, 4),
        ("fc", 4, 32),
    ]


def _cand(name_error, flash, instructions, ram=0.0):
    method, error = name_error
    c = Candidate(method, (1,) if method else (), error, 0, 0, 0)
    c.flash_bytes, c.instructions, c.ram_bytes = flash, instructions, ram
    return c


def test_selection_meets_flash_latency_and_ram_together():
    table = {
        "a": [
            _cand((None, 0.0), 100, 100, 50),
            _cand(("svd", 0.1), 50, 60, 50),
            _cand(("svd", 0.5), 20, 30, 50),
        ],
        "b": [
            _cand((None, 0.0), 100, 100, 90),
            _cand(("svd", 0.2), 40, 40, 40),
            _cand(("svd", 0.3), 30, 30, 40),
        ],
    }
    limits = {"flash_bytes": 200.0, "instructions": 120.0, "ram_bytes": 60.0}
    choice = select_within(table, limits, {"flash_bytes": 10.0, "instructions": 10.0})
    assert choice["b"].method == "svd"  # keeping b whole needs 90 B of RAM > 60
    assert sum(c.instructions for c in choice.values()) + 10 <= 120
    assert sum(c.error for c in choice.values()) == pytest.approx(0.3)  # a at 0.1, b at 0.2: the least error
    with pytest.raises(BudgetError, match="instructions"):
        select_within(table, {"instructions": 50.0}, {"instructions": 10.0})


def _dw_shape(h: int, w: int, channels: int, stride: int) -> dict:
    out_h, out_w = -(-h // stride), -(-w // stride)
    return {
        "kind": "dw",
        "p": out_h * out_w,
        "i": 9,
        "o": channels,
        "k": 9,
        "in": h * w * channels,
        "out": out_h * out_w * channels,
        "rows_in": h,
        "rows": out_h,
        "w": out_w,
    }


def test_the_row_by_row_depthwise_kernel_is_fitted_on_its_own_loops():
    # the 3x3 depthwise kernel: per group of four channels, each input row widened once (a cost per
    # stored column and per input column), then every output row and pixel; the last partial group
    # slower, by the channels it holds
    kernel = "tr_depthwise_conv_3x3_doubled_int8"

    def cost(s):
        g, v = s["o"] // 4, s["o"] % 4
        in_w = s["in"] // (s["rows_in"] * s["o"])
        groups = g + (v > 0)
        rows = g * s["rows_in"] * (30 * s["w"] + 9 * in_w) + (v > 0) * s["rows_in"] * s["w"] * (40 + 12 * v)
        return (
            50
            + 45 * s["w"]
            + groups * (60 + 150 * s["rows"])
            + rows
            + s["p"] * (80 * g + (v > 0) * (90 + 20 * v))
        )

    rng = np.random.default_rng(1)
    shapes = [
        _dw_shape(
            int(rng.integers(2, 30)),
            int(rng.integers(2, 30)),
            int(rng.integers(1, 40)),
            int(rng.integers(1, 3)),
        )
        for _ in range(60)
    ]
    fitted = fit_core([{"kernel": kernel, "shapes": [s], "count": cost(s)} for s in shapes])
    assert fitted["kernels"][kernel]["terms"][:2] == ["1", "w"]  # its own terms, not the matmul blocks
    model = CostModel("m4", fitted["kernels"], fitted["fusions"])
    for h, w, c, stride in [(49, 10, 64, 1), (31, 3, 7, 2), (5, 96, 2, 2)]:
        shape = _dw_shape(h, w, c, stride)
        predicted, known = model.predict_call(kernel, [shape])
        assert known
        assert predicted == pytest.approx(cost(shape), rel=0.01)
    # a shape without its rows (an older model_info.json) falls back to the generic model, flagged
    old = {k: v for k, v in _dw_shape(8, 8, 8, 1).items() if k not in ("rows_in", "rows", "w")}
    assert model.predict_call(kernel, [old])[1] is False


def test_depthwise_ops_carry_their_rows(tmp_path):
    import keras

    from toolchain.codegen.graph import parse
    from toolchain.codegen.shapes import op_shape
    from toolchain.convert import convert_model

    keras.utils.set_random_seed(0)
    inp = keras.Input((9, 7, 8))
    model = keras.Model(inp, keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(inp))
    x = np.random.default_rng(0).normal(size=(8, 9, 7, 8)).astype(np.float32)
    (tmp_path / "dw.tflite").write_bytes(convert_model(model, x, samples=8))
    (op,) = [op for op in parse(tmp_path / "dw.tflite").ops if op.opcode == "DEPTHWISE_CONV_2D"]
    shape = op_shape(op)
    assert (shape["rows_in"], shape["rows"], shape["w"], shape["p"]) == (9, 5, 4, 20)
