"""UNIDIRECTIONAL_SEQUENCE_LSTM (int8, int16 cell state) from a Keras LSTM to bit-exact C.

Two tf_keras models converted to full int8 here (tests/helpers/lstm_models.py): one LSTM
followed by Dense (the converter adds a STRIDED_SLICE of the last time step) and a stacked
pair (return_sequences into a second LSTM). Generated C must equal TFLite Micro byte for byte
on the host and in QEMU on the Cortex-M4 (DSP path) and Cortex-M3 (generic path); the state
tensors and gate scratch must be in the static plan; LSTM variants codegen does not run must
be refused with one line naming the op.
"""

from __future__ import annotations

import dataclasses
import io
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.budget import build_checked
from tests.helpers.lstm_models import converted, sequences
from toolchain.errors import UnsupportedError

LSTM = "UNIDIRECTIONAL_SEQUENCE_LSTM"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{'single', 'stacked'}: the converted .tflite files (one conversion each per module)."""
    out = tmp_path_factory.mktemp("lstm")
    paths = {}
    for name, stacked in (("single", False), ("stacked", True)):
        paths[name] = out / f"{name}.tflite"
        paths[name].write_bytes(converted(stacked))
    return paths


def test_converter_fuses_keras_lstm_into_int8_sequence_lstm(models):
    from toolchain.codegen.graph import parse

    graph = parse(models["stacked"])
    lstms = [op for op in graph.ops if op.opcode == LSTM]
    assert len(lstms) == 2
    for op, units in zip(lstms, (12, 8), strict=True):
        assert len(op.inputs) == 24
        assert op.options["fused_activation_function"] == "TANH" and not op.options["time_major"]
        weights = [op.inputs[i] for i in range(1, 9)]
        assert all(w.dtype == "int8" and w.data is not None and w.shape[0] == units for w in weights)
        assert all(op.inputs[i].dtype == "int32" for i in range(12, 16))
        hidden, cell = op.inputs[18], op.inputs[19]
        assert hidden.is_variable and hidden.dtype == "int8"
        assert cell.is_variable and cell.dtype == "int16"
        assert all(op.inputs[i] is None for i in (9, 10, 11, 16, 17, 20, 21, 22, 23))
    assert "STRIDED_SLICE" in {op.opcode for op in parse(models["single"]).ops}


@pytest.mark.parametrize("name", ["single", "stacked"])
def test_lstm_is_bit_exact_on_the_host(models, name):
    from toolchain.codegen.verify import verify

    x = sequences(40, seed=11)
    x[20:] *= 4  # past the calibrated range: saturated inputs and gates, large cell states
    result = verify(models[name], x)
    assert result["mismatches"] == 0 and result["bit_exact"], result["first_mismatch"]


def test_oracle_starts_every_sample_from_zero_state(models):
    """TFLM keeps variable tensors across Invoke; the oracle resets them so a sample's output
    does not depend on the one before (as in the generated C and in Keras)."""
    from tflite_micro.python.tflite_micro import runtime

    from toolchain import oracle

    x = sequences(3, seed=2)
    alone = oracle.run(models["single"], x[2:3])[0]
    after_others = oracle.run(models["single"], x)[0]
    assert np.array_equal(alone[0], after_others[2])
    # without the reset the state leaks from one Invoke into the next
    interp = runtime.Interpreter.from_bytes(models["single"].read_bytes())
    sample = oracle.quantize_input(x[2:3], *_input_quantization(models["single"]))
    outputs = []
    for _ in range(2):
        interp.set_input(sample.reshape(1, 8, 6), 0)
        interp.invoke()
        outputs.append(np.array(interp.get_output(0)).copy())
    assert not np.array_equal(outputs[0], outputs[1])


def _input_quantization(path: Path) -> tuple[float, int]:
    from toolchain.codegen.graph import parse

    t = parse(path).inputs[0]
    return float(t.scale[0]), int(t.zero_point[0])


def test_state_and_gate_scratch_are_in_the_static_plan(models, tmp_path):
    from toolchain import codegen
    from toolchain.codegen.graph import parse

    info = codegen.generate(models["stacked"], tmp_path / "gen")
    state_indices = [
        op.inputs[i].index for op in parse(models["stacked"]).ops if op.opcode == LSTM for i in (18, 19)
    ]
    states = [info["tensors"][i] for i in state_indices]
    assert [t["dtype"] for t in states] == ["int8", "int16"] * 2
    for t in states:
        assert t["storage"] == "arena" and t["arena_offset"] is not None
        assert t["arena_offset"] + t["bytes"] <= info["arena_bytes"]
    lstm_ops = [op["index"] for op in info["ops"] if op["opcode"] == LSTM]
    scratch = {s["op_index"]: s["bytes"] for s in info["scratch"]}
    assert [scratch[i] for i in lstm_ops] == [4 * 2 * 12, 4 * 2 * 8]  # four int16 gate vectors
    source = "".join(p.read_text() for p in (tmp_path / "gen").glob("*.c"))
    assert "malloc" not in source and "tr_lstm_int8(" in source


@pytest.mark.parametrize("target", ["host", "cortex-m4", "cortex-m3"])
def test_lstm_c_compiles_without_warnings(models, target, tmp_path):
    """tr_lstm.c and tr_slice.c under the strict flags of tests/test_codegen_warnings.py."""
    from tests.test_codegen_warnings import STRICT, TARGETS
    from toolchain import codegen

    gen = tmp_path / "gen"
    codegen.generate(models["stacked"], gen, tflm_arena=False)
    codegen.generate(models["single"], tmp_path / "single", tflm_arena=False)
    sources = sorted(str(p) for p in gen.glob("*.c")) + [str(tmp_path / "single" / "tr_slice.c")]
    result = subprocess.run(
        [*TARGETS[target], *STRICT, f"-I{gen}", "-c", *sources],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and not result.stderr, result.stderr


def _mutated(path: Path, position: int) -> object:
    """The graph with LSTM input `position` (an optional, absent input) set to a weight tensor."""
    from toolchain.codegen.graph import parse

    graph = parse(path)
    op = next(op for op in graph.ops if op.opcode == LSTM)
    inputs = list(op.inputs)
    inputs[position] = op.inputs[1]
    ops = [dataclasses.replace(o, inputs=inputs) if o is op else o for o in graph.ops]
    return dataclasses.replace(graph, ops=ops)


@pytest.mark.parametrize(
    ("position", "what"),
    [(9, "peephole weights"), (16, "projection weights"), (20, "layer normalisation coefficients")],
)
def test_lstm_variants_are_refused_with_one_line(models, position, what):
    from toolchain.codegen.generator import lower_graph

    with pytest.raises(UnsupportedError) as err:
        lower_graph(_mutated(models["single"], position))
    message = str(err.value)
    assert "\n" not in message
    assert f"op 0 ({LSTM})" in message and what in message and f"inputs [{position}]" in message


def test_state_shared_by_two_lstms_is_refused(models):
    """The kernel clears its state on entry; TFLM would hand the first LSTM's state to the second."""
    from toolchain.codegen.generator import lower_graph
    from toolchain.codegen.graph import parse
    from toolchain.errors import ModelError

    graph = parse(models["stacked"])
    first, second = (op for op in graph.ops if op.opcode == LSTM)
    inputs = list(second.inputs)
    inputs[18] = first.inputs[18]
    ops = [dataclasses.replace(o, inputs=inputs) if o is second else o for o in graph.ops]
    with pytest.raises(ModelError, match="op 1 .*variable tensor that is not its own recurrent state"):
        lower_graph(dataclasses.replace(graph, ops=ops))


def test_float_lstm_is_refused_naming_the_op(tmp_path):
    import tensorflow as tf

    from tests.helpers.lstm_models import lstm_model
    from toolchain import codegen

    model = lstm_model(stacked=False)
    traced = tf.function(lambda x: model(x)).get_concrete_function(tf.TensorSpec([1, 8, 6], tf.float32))
    path = tmp_path / "float.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([traced], model).convert())
    with pytest.raises(UnsupportedError) as err:
        codegen.generate(path, tmp_path / "gen")
    message = str(err.value)
    assert "\n" not in message and f"({LSTM}): float LSTM is not supported" in message
    assert not (tmp_path / "gen").exists()


def test_keras3_lstm_is_refused_by_convert_with_a_clear_message():
    import keras

    from toolchain.convert import convert_model

    x = keras.Input((8, 6))
    model = keras.Model(x, keras.layers.Dense(2)(keras.layers.GRU(4, name="gru_1")(x)))
    with pytest.raises(UnsupportedError, match="recurrent layer .gru_1. \\(GRU\\).*unroll=True"):
        convert_model(model, sequences(20), samples=10)


def test_strided_slice_needs_evenly_spaced_runs():
    from toolchain.codegen.ops.strided_slice import runs

    assert runs(np.arange(56, 64)) == (1, 8, 56, 0)  # the last time step of [1, 8, 8]
    assert runs(np.array([1, 2, 5, 6, 9, 10])) == (3, 2, 1, 4)
    assert runs(np.array([0, 1, 4])) is None  # runs of 2 and 1
    assert runs(np.array([0, 3, 4])) is None


@pytest.mark.qemu
@pytest.mark.timeout(600)
@pytest.mark.parametrize("board", ["qemu_m4", "qemu_m3"])  # DSP path; generic path
def test_stacked_lstm_is_bit_exact_in_qemu(models, board, tmp_path):
    from rich.console import Console

    from toolchain import codegen
    from toolchain.bench.measure import run_benchmark
    from toolchain.bench.report import print_report
    from toolchain.data import save_dataset

    gen = tmp_path / "gen"
    codegen.generate(models["stacked"], gen)
    x = sequences(16, seed=23)
    data = save_dataset(
        tmp_path / "data.npz", x_train=x[:8], y_train=np.zeros(8, int), x_test=x[8:], y_test=np.zeros(8, int)
    )
    build_checked(gen, board)
    report = run_benchmark(gen, board, runs=1, dataset=data, per_op=True, estimate_cycles=False)
    assert report["samples"] == 8 and report["matches"] == 8 and report["mismatches"] == []
    rows = [row for row in report["per_op"] if row["opcode"] == LSTM]
    assert len(rows) == 2 and all(row["count"] > 0 for row in rows)
    # the cost model has no LSTM entry: no prediction for those ops, not a wrong one
    assert all("predicted" not in row for row in rows)
    assert report["cost_model"]["unpredicted_ops"] == [row["index"] for row in rows]
    printed = io.StringIO()
    print_report(report, Console(file=printed, width=200))
    assert "without ops 0, 1: no prediction" in printed.getvalue()


def test_per_op_predictions_leave_the_lstm_out(models, tmp_path):
    from toolchain import codegen
    from toolchain.bench.per_op import add_predictions, per_op_rows

    info = codegen.generate(models["stacked"], tmp_path / "gen", tflm_arena=False)
    rows = per_op_rows([1000] * len(info["ops"]), info)
    totals = add_predictions(rows, info, "qemu_m4")
    lstm = [row["index"] for row in rows if row["opcode"] == LSTM]
    assert totals is not None and totals["unpredicted_ops"] == lstm == [0, 1]
    assert totals["measured"] == 1000 * (len(rows) - 2)
    assert all(("predicted" in row) == (row["index"] not in lstm) for row in rows)
