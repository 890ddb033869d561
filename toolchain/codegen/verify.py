"""Host verification: compile the generated C with gcc, run it, compare with TFLite Micro.

The harness reads int8 samples on stdin and writes the int8 outputs on stdout, so one
process runs every sample. Correct means every output byte equals the `tflite_micro`
interpreter's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.errors import BuildError, DataError, TinyrankError
from toolchain.processes import run_tool

COMPILE_TIMEOUT_S = 300
RUN_TIMEOUT_S = 300
WARNING_FLAGS = ["-Wall", "-Wextra"]
SANITIZE_FLAGS = [
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
    "-g",
]

HARNESS = r"""
/* Host harness: samples on stdin, outputs on stdout (tinyrank verify). */
#include <stdio.h>
#include <string.h>
#include "model.h"

static const int input_sizes[] = { %(input_sizes)s };
static const int output_sizes[] = { %(output_sizes)s };

int main(void)
{
    static int8_t sample[%(max_input)d];
    for (;;) {
        for (int i = 0; i < %(PREFIX)s_NUM_INPUTS; ++i) {
            size_t got = fread(sample, 1, (size_t)input_sizes[i], stdin);
            if (got == 0 && i == 0) {
                return 0;
            }
            if (got != (size_t)input_sizes[i]) {
                fprintf(stderr, "short sample\n");
                return 3;
            }
            memcpy(%(prefix)s_input(i), sample, (size_t)input_sizes[i]);
        }
        if (%(prefix)s_invoke() != 0) {
            fprintf(stderr, "invoke failed\n");
            return 4;
        }
        for (int i = 0; i < %(PREFIX)s_NUM_OUTPUTS; ++i) {
            fwrite(%(prefix)s_output(i), 1, (size_t)output_sizes[i], stdout);
        }
    }
}
"""


def _compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise BuildError("no host C compiler found (gcc); install gcc or set CC")
    return cc


def build_host(
    gen_dir: str | os.PathLike,
    info: dict[str, Any],
    exe: str | os.PathLike,
    *,
    sanitize: bool = False,
    extra_flags: list[str] | None = None,
) -> Path:
    """Compile a generated model folder plus the stdin/stdout harness into `exe`."""
    gen = Path(gen_dir)
    prefix = info["prefix"]
    harness = HARNESS % {
        "input_sizes": ", ".join(str(t["size"]) for t in info["inputs"]),
        "output_sizes": ", ".join(str(t["size"]) for t in info["outputs"]),
        "max_input": max(t["size"] for t in info["inputs"]),
        "prefix": prefix,
        "PREFIX": prefix.upper(),
    }
    main_c = Path(exe).with_suffix(".harness.c")
    main_c.write_text(harness)
    sources = sorted(str(p) for p in gen.glob("*.c"))
    cmd = [
        _compiler(),
        "-std=c99",
        "-O2",
        *WARNING_FLAGS,
        *(SANITIZE_FLAGS if sanitize else []),
        *(extra_flags or []),
        f"-I{gen}",
        *sources,
        str(main_c),
        "-o",
        str(exe),
    ]
    result = run_tool(cmd, timeout_s=COMPILE_TIMEOUT_S, what=f"host compile of {gen}")
    if result.returncode != 0:
        first = next((line for line in result.stderr.splitlines() if "error" in line), result.stderr[-300:])
        raise BuildError(f"host compile of {gen} failed: {first.strip()}")
    return Path(exe)


def run_host(exe: str | os.PathLike, x_int8: np.ndarray, info: dict[str, Any]) -> list[np.ndarray]:
    """Run every sample through the host binary; one (N, size) int8 array per output."""
    n = len(x_int8)
    result = run_tool(
        [str(exe)],
        timeout_s=RUN_TIMEOUT_S,
        what=f"{exe} running {n} samples",
        input=np.ascontiguousarray(x_int8).tobytes(),
        text=False,
    )
    if result.returncode != 0:
        tail = result.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise BuildError(f"{exe} exited with status {result.returncode}: {' | '.join(tail)}")
    sizes = [t["size"] for t in info["outputs"]]
    raw = np.frombuffer(result.stdout, np.int8)
    if raw.size != n * sum(sizes):
        raise BuildError(f"{exe} wrote {raw.size} bytes for {n} samples; expected {n * sum(sizes)}")
    per_sample = raw.reshape(n, sum(sizes))
    bounds = np.cumsum([0, *sizes])
    return [per_sample[:, bounds[i] : bounds[i + 1]] for i in range(len(sizes))]


def _as_int8_samples(x: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    from toolchain.oracle import quantize_input

    edge = info["inputs"][0]
    x = np.asarray(x)
    if x.ndim >= 1 and int(np.prod(x.shape[1:], dtype=np.int64)) == edge["size"]:
        pass
    elif int(np.prod(x.shape, dtype=np.int64)) == edge["size"]:
        x = x.reshape(1, *x.shape)
    else:
        raise DataError(
            f"samples of shape {tuple(x.shape[1:])} do not match the model input "
            f"'{edge['name']}' of shape {edge['shape']}"
        )
    return quantize_input(x, edge["scale"], edge["zero_point"]).reshape(len(x), edge["size"])


def verify(
    tflite_path: str | os.PathLike,
    x: np.ndarray,
    *,
    sanitize: bool = False,
    prefix: str = "tr",
    work_dir: str | os.PathLike | None = None,
    extra_flags: list[str] | None = None,
    tflm_arena: bool = True,
    fuse: bool | None = None,
    dsp: bool = True,
) -> dict[str, Any]:
    """Generate, compile for the host, run every sample of `x` and compare with TFLite Micro.

    `x` holds int8 samples, or float samples quantized with the input's scale and zero point.
    `dsp=False` checks the plain C path's generation (codegen --no-dsp; the host runs plain C).
    Returns {'samples', 'outputs', 'mismatches' (bytes), 'mismatched_samples', 'first_mismatch',
    'bit_exact', 'arena_bytes', 'tflm_arena_bytes'}.
    """
    from toolchain import oracle
    from toolchain.codegen import generate

    with tempfile.TemporaryDirectory(prefix="tinyrank-verify-", dir=work_dir) as tmp:
        gen = Path(tmp) / "gen"
        info = generate(tflite_path, gen, prefix=prefix, tflm_arena=tflm_arena, fuse=fuse, dsp=dsp)
        if len(info["inputs"]) != 1:
            raise TinyrankError(
                f"{tflite_path}: verify supports models with one input; this one has {len(info['inputs'])}"
            )
        samples = _as_int8_samples(x, info)
        exe = build_host(gen, info, Path(tmp) / "model_host", sanitize=sanitize, extra_flags=extra_flags)
        ours = run_host(exe, samples, info)
    float_input = info["inputs"][0]["tflite_dtype"] == "float32"
    if float_input and np.asarray(x).dtype == np.int8:
        raise TinyrankError(f"{tflite_path}: the model takes float input; give float samples")
    expected = oracle.run(tflite_path, np.asarray(x).reshape(len(samples), -1) if float_input else samples)
    return compare(_as_model_outputs(ours, info), expected, info)


def _as_model_outputs(ours: list[np.ndarray], info: dict[str, Any]) -> list[np.ndarray]:
    """Dequantize the outputs that are float in the .tflite (their DEQUANTIZE was left to the caller)."""
    from toolchain.codegen.quant import tflm_dequantize

    return [
        tflm_dequantize(a, edge["scale"], edge["zero_point"]) if edge["tflite_dtype"] == "float32" else a
        for a, edge in zip(ours, info["outputs"], strict=True)
    ]


def compare(ours: list[np.ndarray], expected: list[np.ndarray], info: dict[str, Any]) -> dict[str, Any]:
    """Byte-for-byte comparison report of generated-C outputs against TFLM's."""
    mismatches = 0
    bad_samples: set[int] = set()
    first = None
    for index, (a, b) in enumerate(zip(ours, expected, strict=True)):
        b = b.reshape(a.shape)
        diff = a != b
        mismatches += int(diff.sum())
        rows = np.nonzero(diff.any(axis=1))[0]
        bad_samples.update(rows.tolist())
        if first is None and rows.size:
            s = int(rows[0])
            col = int(np.nonzero(diff[s])[0][0])
            first = {
                "output": index,
                "sample": s,
                "position": col,
                "generated": a[s, col].item(),
                "tflm": b[s, col].item(),
                "max_abs_diff": np.abs(a.astype(np.float64) - b.astype(np.float64)).max().item(),
            }
    return {
        "samples": int(len(ours[0])) if ours else 0,
        "outputs": len(ours),
        "mismatches": mismatches,
        "mismatched_samples": len(bad_samples),
        "first_mismatch": first,
        "bit_exact": mismatches == 0,
        "arena_bytes": info["arena_bytes"],
        "tflm_arena_bytes": info["tflm_arena_bytes"],
        "weights_bytes": info["weights_bytes"],
        "kernels": [op["kernel"] for op in info["ops"]],
    }
