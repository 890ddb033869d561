"""What the device should answer: TFLite Micro's outputs as the int8 codes the firmware sends.

The firmware always takes and returns int8 tensors: a model with float input and output
has its QUANTIZE and DEQUANTIZE at the edges left to the host. The reference therefore
runs the .tflite on the samples as the model takes them (float samples for a float input)
and turns each float output back into the int8 code TFLite Micro dequantized, so device
and reference are compared code for code.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from toolchain.errors import DataError


def output_codes(values: np.ndarray, edge: dict[str, Any]) -> np.ndarray:
    """The int8 codes behind a float output of TFLite Micro's DEQUANTIZE.

    DEQUANTIZE computes scale * (q - zero_point), so dividing by the scale and rounding gives
    q back exactly (the rounding error of the product is far below half a code).
    """
    codes = np.rint(np.asarray(values, np.float64) / float(np.float32(edge["scale"])))
    return np.clip(codes + int(edge["zero_point"]), -128, 127).astype(np.int8)


def host_reference(tflite: str | os.PathLike, x: np.ndarray, info: dict[str, Any]) -> list[np.ndarray]:
    """TFLite Micro's outputs for every sample of `x`, as int8 codes: one (N, size) array per output.

    `x` holds the samples as the data set has them (float, or int8 codes for an int8 input).
    """
    from toolchain import oracle

    x = np.asarray(x)
    float_input = info["inputs"][0].get("tflite_dtype") == "float32"
    if float_input and x.dtype == np.int8:
        raise DataError(
            f"{tflite}: the model takes float input, but the samples are int8; give float samples"
        )
    outputs = oracle.run(tflite, x)
    return [
        output_codes(values, edge) if edge.get("tflite_dtype") == "float32" else values
        for values, edge in zip(outputs, info["outputs"], strict=True)
    ]
