"""TensorFlow Lite Micro as the reference: its outputs and its arena size.

TFLM's reference kernels round requantization twice; LiteRT on the host rounds once and
differs on exact ties. What runs on microcontrollers is TFLM, so generated C is compared
with the `tflite_micro` Python interpreter, never with LiteRT.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolchain.errors import DataError, ModelError

_ALLOCATION_LINE = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")


@dataclass
class ArenaUsage:
    """TFLM's RecordingMicroAllocator figures: total = head (planned tensors) + tail (persistent)."""

    total: int
    head: int
    tail: int


def _model_bytes(model: bytes | str | os.PathLike) -> bytes:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    p = Path(model)
    if not p.is_file():
        raise ModelError(f"model file {p}: no such file")
    return p.read_bytes()


def _interpreter(data: bytes):
    from tflite_micro.python.tflite_micro import runtime

    # Host memory is cheap: give TFLM plenty so the arena never limits which models run.
    arena = 10 * len(data) + (8 << 20)
    try:
        return runtime.Interpreter.from_bytes(data, arena_size=arena)
    except (RuntimeError, ValueError) as exc:
        raise ModelError(f"TFLite Micro cannot load the model: {exc}") from exc


def quantize_input(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Float samples -> int8 with the input tensor's parameters, rounding as TFLM's QUANTIZE
    does (int8 input is returned as is)."""
    from toolchain.codegen.quant import tflm_quantize

    if x.dtype == np.int8:
        return x
    return tflm_quantize(x, scale, zero_point)


def run(model: bytes | str | os.PathLike, x: np.ndarray) -> list[np.ndarray]:
    """Run every sample of `x` (shape (N, *input_shape without batch)) through TFLM.

    For an int8 input, float `x` is quantized with the input tensor's scale and zero point
    first; a float32 input takes `x` as float. Returns one array per model output (int8, or
    float32 for a float output), each of shape (N, output size).
    """
    data = _model_bytes(model)
    interp = _interpreter(data)
    detail = interp.get_input_details(0)
    shape = tuple(int(d) for d in detail["shape"])
    q = detail["quantization_parameters"]
    x = np.asarray(x)
    if x.ndim == 0 or int(np.prod(x.shape[1:], dtype=np.int64)) != int(np.prod(shape, dtype=np.int64)):
        raise DataError(f"samples have shape {x.shape[1:]}; the model's input 0 expects {shape[1:]}")
    if np.dtype(detail["dtype"]) == np.float32:
        x = x.astype(np.float32)
    elif x.dtype != np.int8:
        x = quantize_input(x, float(q["scales"][0]), int(q["zero_points"][0]))
    from toolchain.codegen.graph import parse_bytes

    graph = parse_bytes(data)
    count = len(graph.outputs)
    # TFLM keeps variable tensors (an LSTM's hidden and cell state) from one Invoke to the
    # next; a Keras LSTM starts every sequence from zero state, and so does the generated C
    # (its kernel clears the state on entry). Resetting before each sample keeps samples
    # independent on both sides.
    stateful = any(t.is_variable for t in graph.tensors)
    outputs: list[list[np.ndarray]] = [[] for _ in range(count)]
    for sample in x:
        if stateful:
            interp.reset()
        interp.set_input(sample.reshape(shape), 0)
        interp.invoke()
        for i in range(count):
            outputs[i].append(np.array(interp.get_output(i)).reshape(-1).copy())
    return [np.stack(o) for o in outputs]


def arena_usage(model: bytes | str | os.PathLike, timeout_s: float = 120.0) -> ArenaUsage:
    """TFLM's arena for the model, measured in a child process.

    TFLM's C++ trusts the flatbuffer; a crafted model can crash it. In a child, a crash is a
    clean ModelError naming the signal instead of the end of tinyrank.
    """
    from toolchain.processes import run_tool

    data = _model_bytes(model)
    command = [sys.executable, "-m", "toolchain.oracle", "--arena"]
    result = run_tool(command, timeout_s=timeout_s, what="TFLite Micro arena sizing", input=data, text=False)
    if result.returncode < 0:
        name = signal.Signals(-result.returncode).name
        raise ModelError(
            f"TFLite Micro crashed ({name}) while sizing the model's arena; the model is malformed"
        )
    if result.returncode != 0:
        lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ModelError(
            lines[-1] if lines else f"TFLite Micro arena sizing failed (status {result.returncode})"
        )
    try:
        return ArenaUsage(**json.loads(result.stdout))
    except (ValueError, TypeError) as exc:
        raise ModelError(f"TFLite Micro arena sizing printed no result ({exc})") from exc


def _arena_usage_here(data: bytes) -> ArenaUsage:
    """TFLM's arena for the model, read from its recording allocator's report (in this process).

    The interpreter prints the report from C++ straight to file descriptor 2, so stderr is
    captured at the descriptor level.
    """
    interp = _interpreter(data)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            interp.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        text = sink.read().decode("utf-8", "replace")
    found = {kind: int(n) for kind, n in _ALLOCATION_LINE.findall(text)}
    if "total" not in found:
        raise ModelError("TFLite Micro printed no arena allocation report")
    return ArenaUsage(total=found["total"], head=found.get("head", 0), tail=found.get("tail", 0))


def _main() -> int:
    """`python -m toolchain.oracle --arena`: the model on stdin, its ArenaUsage as JSON on stdout."""
    try:
        usage = _arena_usage_here(sys.stdin.buffer.read())
    except ModelError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps(dataclasses.asdict(usage)))
    return 0


if __name__ == "__main__" and sys.argv[1:] == ["--arena"]:
    sys.exit(_main())
