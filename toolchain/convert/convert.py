"""Stage 2: Keras model -> full-int8 TFLite flatbuffer.

A microcontroller without an FPU (and a code generator without float kernels) needs every
op in int8: int8 input and output, per-channel int8 weights, int32 biases. The TensorFlow
converter quietly leaves an op in float when it cannot quantize it, so the result is
checked afterwards and an op that stayed float is an error naming it. The float and int8
accuracy are reported side by side so the cost of quantization is visible.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.data import Dataset, check_input_shape, check_labels, load_dataset, score_outputs
from toolchain.errors import ModelError, TinyrankError, UnsupportedError
from toolchain.fileio import atomic_write_bytes, check_distinct
from toolchain.models import load_keras_model, model_input_shape, predict_outputs

# Tensor types a full-int8 model may hold: int8 activations and weights, int32 biases and shapes.
ALLOWED_TENSOR_TYPES = ("INT8", "INT32")
# Ops whose int8 form keeps an int16 state tensor: TFLite's integer LSTM holds its cell state in int16.
INT16_STATE_OPS = ("UNIDIRECTIONAL_SEQUENCE_LSTM",)


@contextlib.contextmanager
def _captured_output() -> Iterator[list[str]]:
    """Silence the converter's C++ and Python chatter, keeping it for an error message.

    TensorFlow's converter writes straight to file descriptors 1 and 2 from C++, so
    redirecting `sys.stdout` is not enough.
    """
    log: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield log
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            log.extend(sink.read().decode("utf-8", "replace").splitlines())


def representative_samples(x_train: np.ndarray, samples: int = 300, seed: int = 0) -> np.ndarray:
    """A fixed-seed shuffled subset of `x_train` for calibrating activation ranges."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x_train))[:samples]
    return np.asarray(x_train[order], dtype=np.float32)


def convert_model(model: Any, x_calib: np.ndarray, *, samples: int = 300, seed: int = 0) -> bytes:
    """Convert a Keras model to a full-int8 flatbuffer and check nothing stayed float.

    A recurrent model that does not convert as it is gets a second try traced with a batch of
    one: TensorFlow's converter fuses a (tf_keras) LSTM into UNIDIRECTIONAL_SEQUENCE_LSTM only
    from a graph whose shapes are all static (with a dynamic batch it fails on the layer's
    TensorList ops). An unrolled Keras 3 LSTM converts on the first try, to plain ops.
    """
    calib = representative_samples(x_calib, samples, seed)
    recurrent = recurrent_layers(model)
    tries = [_keras_converter, _batch_one_converter] if recurrent else [_keras_converter]
    flatbuffer: bytes | None = None
    error: Exception | None = None
    log: list[str] = []
    for make in tries:
        flatbuffer, error, log = _convert(make(model), calib)
        if error is None:
            break
    if error is not None:
        if recurrent:
            raise UnsupportedError(
                f"model '{model.name}': recurrent layer '{recurrent[0].name}' "
                f"({type(recurrent[0]).__name__}) did not convert to int8: TensorFlow's converter fuses "
                "only tf_keras (Keras 2) LSTM layers into UNIDIRECTIONAL_SEQUENCE_LSTM; a Keras 3 "
                "LSTM, GRU or SimpleRNN converts only unrolled (unroll=True), to plain ops"
            ) from error
        detail = [line for line in log if "error" in line.lower()][:3] or [str(error).splitlines()[0]]
        raise UnsupportedError(
            f"model '{model.name}': the TFLite converter could not make it full-int8: "
            + " | ".join(detail)[:400]
        ) from error
    assert flatbuffer is not None
    check_full_int8(flatbuffer)
    return bytes(flatbuffer)


def _convert(converter: Any, calib: np.ndarray) -> tuple[bytes | None, Exception | None, list[str]]:
    """One full-int8 conversion: (flatbuffer, None, log) or (None, the error, the converter's log)."""
    import tensorflow as tf

    def representative_dataset() -> Iterator[list[np.ndarray]]:
        for sample in calib:
            yield [sample[np.newaxis, ...]]

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with _captured_output() as log:
        try:
            flatbuffer = converter.convert()
        except Exception as exc:  # the converter's errors are long; keep the telling lines
            return None, exc, log
    return bytes(flatbuffer), None, log


def recurrent_layers(model: Any) -> list[Any]:
    """The model's recurrent layers (LSTM, GRU, ...), by class name: Keras 3 and tf_keras alike."""
    return [layer for layer in model.layers if type(layer).__name__ in RECURRENT_LAYERS]


def _keras_converter(model: Any) -> Any:
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(model)


def _batch_one_converter(model: Any) -> Any:
    """The converter of the model traced with a batch of one (every shape static)."""
    import tensorflow as tf

    shape = [1, *model.inputs[0].shape[1:]]
    traced = tf.function(lambda x: model(x)).get_concrete_function(tf.TensorSpec(shape, tf.float32))
    return tf.lite.TFLiteConverter.from_concrete_functions([traced], model)


@dataclass(frozen=True)
class TensorIssue:
    op_index: int
    opcode: str
    tensor: str
    dtype: str


def _enum_names(enum_class: type) -> dict[int, str]:
    return {value: name for name, value in vars(enum_class).items() if not name.startswith("_")}


def find_non_int8(flatbuffer: bytes) -> list[TensorIssue]:
    """Every op input/output whose type is not int8 (or int32 for biases and shapes)."""
    import tflite

    model = tflite.Model.GetRootAsModel(flatbuffer, 0)
    op_names = _enum_names(tflite.BuiltinOperator)
    type_names = _enum_names(tflite.TensorType)
    issues = []
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            opcode = op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
            tensors = [op.Inputs(k) for k in range(op.InputsLength())] + [
                op.Outputs(k) for k in range(op.OutputsLength())
            ]
            for t in tensors:
                if t < 0:
                    continue
                tensor = graph.Tensors(t)
                dtype = type_names.get(tensor.Type(), str(tensor.Type()))
                if dtype == "INT16" and opcode in INT16_STATE_OPS and tensor.IsVariable():
                    continue
                if dtype not in ALLOWED_TENSOR_TYPES:
                    issues.append(TensorIssue(i, opcode, tensor.Name().decode(), dtype))
    return issues


def check_full_int8(flatbuffer: bytes) -> None:
    """Raise naming every op that kept a float (or other non-int8) tensor, with its index."""
    issues = find_non_int8(flatbuffer)
    if not issues:
        return
    by_op: dict[tuple[int, str], list[str]] = {}
    for issue in issues:
        by_op.setdefault((issue.op_index, issue.opcode), []).append(f"'{issue.tensor}' {issue.dtype}")
    listed = " | ".join(f"op {i} ({opcode}): {', '.join(t)}" for (i, opcode), t in by_op.items())
    raise UnsupportedError(
        f"{len(by_op)} ops kept non-int8 tensors after int8 conversion ({len(issues)} tensors): {listed}; "
        "tinyrank needs every op in int8"
    )


class Int8Model:
    """Host inference of an int8 flatbuffer with LiteRT, for accuracy (not bit-exactness).

    LiteRT differs from TFLite Micro on rounding ties, so it is fine for measuring accuracy
    but the codegen stage checks bytes against the `tflite_micro` interpreter instead.
    """

    def __init__(self, flatbuffer: bytes) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        # The plain builtin kernels: no XNNPACK delegate (and none of its start-up notice on stderr).
        self._interpreter = Interpreter(
            model_content=flatbuffer,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        self._interpreter.allocate_tensors()
        self.input = self._interpreter.get_input_details()[0]
        self.output = self._interpreter.get_output_details()[0]

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Float -> int8 as on the device: TFLite Micro's rounding (half away from zero)."""
        from toolchain.oracle import quantize_input

        scale, zero_point = self.input["quantization"]
        return quantize_input(np.asarray(x, np.float32), float(scale), int(zero_point))

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        scale, zero_point = self.output["quantization"]
        return (q.astype(np.float32) - zero_point) * scale

    def predict_int8(self, x_int8: np.ndarray) -> np.ndarray:
        """Raw int8 outputs, one sample at a time (converted models have batch size 1)."""
        outputs = []
        for sample in x_int8:
            # samples are independent sequences: an LSTM's state starts from zero for each
            self._interpreter.reset_all_variables()
            self._interpreter.set_tensor(self.input["index"], sample[np.newaxis, ...])
            self._interpreter.invoke()
            outputs.append(self._interpreter.get_tensor(self.output["index"])[0].copy())
        return np.stack(outputs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.dequantize(self.predict_int8(self.quantize(x)))


def evaluate(model: Any, flatbuffer: bytes, dataset: Dataset) -> dict[str, Any]:
    """Float (Keras) and int8 (LiteRT) scores on `x_test` (or `x_train` when there is no test split)."""
    x = np.asarray(dataset.eval_x, np.float32)
    float_out = predict_outputs(model, x)[0]
    int8_out = Int8Model(flatbuffer).predict(x)
    return {
        "split": "test" if dataset.has_test else "train",
        "samples": len(x),
        "float": score_outputs(float_out, dataset.eval_y, x),
        "int8": score_outputs(int8_out, dataset.eval_y, x),
        "int8_vs_float_max_abs": float(np.max(np.abs(int8_out.reshape(float_out.shape) - float_out))),
    }


RECURRENT_LAYERS = ("LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D")


def check_recurrent_batch(model: Any, model_path: Path) -> None:
    """TensorFlow's converter crashes the process on a recurrent layer with a fixed batch size."""
    batch = model.inputs[0].shape[0]
    recurrent = [layer.name for layer in model.layers if type(layer).__name__ in RECURRENT_LAYERS]
    if recurrent and batch is not None:
        raise UnsupportedError(
            f"model file {model_path}: recurrent layer '{recurrent[0]}' with a fixed batch size of {batch}; "
            "rebuild the model with keras.Input(shape=...) (no batch_size) so the converter can handle it"
        )


def check_convertible(model: Any, dataset: Dataset, model_path: Path) -> None:
    """What convert needs of a model and its data, checked before the converter (which may crash
    the process) runs: one input and output, the data's shape and labels, no fixed-batch RNN."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(
            f"model file {model_path}: convert supports one input and one output "
            f"(found {len(model.inputs)} and {len(model.outputs)})"
        )
    check_input_shape(dataset, model_input_shape(model), where=f"model {model_path.name}")
    check_recurrent_batch(model, model_path)
    if model.outputs[0].shape[-1] is not None:
        check_labels(dataset, int(model.outputs[0].shape[-1]), where=f"model {model_path.name}")


def convert_file(
    model_path: str | Path, data_path: str | Path, out_path: str | Path, *, samples: int = 300, seed: int = 0
) -> dict[str, Any]:
    """The `tinyrank convert` stage on files: read, convert, evaluate, write atomically."""
    model_path, out_path = Path(model_path), Path(out_path)
    if out_path.suffix != ".tflite":
        raise TinyrankError(f"output {out_path}: name the output *.tflite")
    check_distinct(model_path, out_path)
    dataset = load_dataset(data_path)
    model = load_keras_model(model_path)
    check_convertible(model, dataset, model_path)
    flatbuffer = convert_model(model, dataset.x_train, samples=samples, seed=seed)
    scores = evaluate(model, flatbuffer, dataset)
    atomic_write_bytes(out_path, flatbuffer)
    return {
        "stage": "convert",
        "model": str(model_path),
        "tflite": str(out_path),
        "tflite_bytes": len(flatbuffer),
        "calibration_samples": min(samples, len(dataset.x_train)),
        **scores,
    }
