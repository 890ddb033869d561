"""CONV_2D over one to three input channels (a network's first layer) runs tr_conv_first_int8, and
it is bit-exact with TFLite Micro on the host (plain C), on the Cortex-M4 and M33 (DSP path: kernel
rows copied a word at a time, both columns of a pixel pair widened in one pass) and on the Cortex-M3
(plain C, the general im2col loop).

The cases: the three benchmark first layers at smaller sizes (DS-CNN's 10x4 stride 2 over one
channel, ResNet-8's 3x3 over RGB, MobileNet's 3x3 stride 2 over RGB), two channels, SAME and VALID,
runs shorter than a word (3x3 over one channel: every pixel tap by tap), longer than three words
(5x5 over RGB), dilation (tap by tap), output channels not a multiple of four, an odd pixel count
(the last pixel alone), a non-zero input zero point read as padding, kernels taller or wider
than the image (no window inside it), TFLite's general requantization (not the doubled form) and
every activation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers.budget import build_checked
from tests.test_codegen_random_graphs import _check, build_conv
from toolchain.codegen.graph import parse
from toolchain.codegen.ops import conv

BASE = {
    "depthwise": False,
    "multiplier": 1,
    "dil_h": 1,
    "dil_w": 1,
    "per_channel": True,
    "bias": True,
    "act": "RELU",
    "in_zp": -9,
    "out_zp": -128,
    "in_scale": 0.05,
    "out_scale": 0.3,
    "seed": 11,
}


def _conv(
    hwc: tuple[int, int, int],
    kernel: tuple[int, int],
    stride: int,
    padding: str,
    out_c: int,
    **changes: object,
) -> dict:
    """The drawn parameters (tests/test_codegen_random_graphs.build_conv) of one convolution."""
    (h, w, c), (k_h, k_w) = hwc, kernel
    geometry = {"h": h, "w": w, "c": c, "k_h": k_h, "k_w": k_w, "stride_h": stride, "stride_w": stride}
    return {**geometry, "padding": padding, "out_c": out_c, **changes}


# name -> the convolution (BASE's quantization unless changed)
CASES = {
    "ds_cnn_10x4_stride2": _conv((25, 10, 1), (10, 4), 2, "SAME", 64),
    "resnet_3x3_rgb": _conv((11, 9, 3), (3, 3), 1, "SAME", 16),
    "mobilenet_3x3_rgb_stride2": _conv((14, 13, 3), (3, 3), 2, "SAME", 8),
    "two_channels_valid_6_out": _conv((9, 8, 2), (3, 3), 1, "VALID", 6, act="NONE", out_zp=3),
    "one_channel_3x3_stride2_odd_pixels": _conv((9, 9, 1), (3, 3), 2, "SAME", 5, act="RELU6", out_scale=0.03),
    "rgb_5x5_zero_point_padding": _conv((8, 7, 3), (5, 5), 1, "SAME", 7, in_zp=50, act="NONE", out_zp=-5),
    "two_channels_stride2_valid_general_requant": _conv(
        (10, 11, 2), (2, 3), 2, "VALID", 3, act="NONE", out_scale=0.0001, in_zp=127
    ),
    "rgb_dilated": _conv((9, 10, 3), (3, 3), 1, "SAME", 4, dil_h=2, dil_w=2, act="RELU_N1_TO_1", out_zp=0),
    # no window lies inside the image: every pixel is an edge pixel
    "kernel_taller_than_image": _conv((6, 10, 1), (10, 4), 2, "SAME", 4, in_zp=-100),
    "kernel_wider_than_image": _conv((7, 3, 2), (3, 5), 1, "SAME", 5, in_zp=77),
}
ARENA_CASES = ("mobilenet_3x3_rgb_stride2", "rgb_5x5_zero_point_padding", "ds_cnn_10x4_stride2")


def _params(case: str) -> dict:
    return {**BASE, **CASES[case]}


@pytest.mark.parametrize("case", sorted(CASES))
def test_first_layer_kernel_is_bit_exact_on_the_host(tmp_path: Path, case: str) -> None:
    p = _params(case)
    path = build_conv(p, tmp_path / "conv.tflite")
    assert conv.is_first_layer(parse(path).ops[0])
    report = _check(path, p["seed"])
    assert report["kernels"] == ["tr_conv_first_int8"]


def test_more_channels_and_pointwise_keep_their_kernels(tmp_path: Path) -> None:
    four = build_conv({**_params("resnet_3x3_rgb"), "c": 4}, tmp_path / "four.tflite")
    pointwise = build_conv({**_params("resnet_3x3_rgb"), "k_h": 1, "k_w": 1}, tmp_path / "pw.tflite")
    assert _check(four, 1)["kernels"] == ["tr_conv_int8"]
    assert _check(pointwise, 1)["kernels"] == ["tr_fully_connected_int8"]


@pytest.mark.parametrize("case", ARENA_CASES)
def test_first_layer_kernel_needs_no_more_arena(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its columns are whole words; the scratch rounds to the general kernel's (16-byte buffers)."""
    from toolchain.codegen import generate

    path = build_conv(_params(case), tmp_path / "conv.tflite")
    first = generate(path, tmp_path / "first", tflm_arena=False)
    monkeypatch.setattr(conv, "FIRST_LAYER_MAX_CHANNELS", 0)
    general = generate(path, tmp_path / "general", tflm_arena=False)
    assert [op["kernel"] for op in first["ops"]] == ["tr_conv_first_int8"]
    assert [op["kernel"] for op in general["ops"]] == ["tr_conv_int8"]
    assert first["arena_bytes"] == general["arena_bytes"]


@pytest.mark.qemu
@pytest.mark.parametrize("board", ["qemu_m4", "qemu_m33", "qemu_m3"])  # DSP paths; plain C on the M3
def test_first_layer_kernel_is_bit_exact_in_qemu(tmp_path: Path, pio_build_cache: Path, board: str) -> None:
    from toolchain import oracle
    from toolchain.bench.measure import run_samples
    from toolchain.codegen import generate

    for case in sorted(CASES):
        path = build_conv(_params(case), tmp_path / f"{case}.tflite")
        shape = parse(path).inputs[0].shape
        x = np.random.default_rng(3).integers(-128, 128, size=(3, *shape), dtype=np.int8)
        gen = tmp_path / case
        generate(path, gen, tflm_arena=False)
        build_checked(gen, board)
        outputs = run_samples(gen, board, x)["outputs"][0]
        np.testing.assert_array_equal(outputs, oracle.run(path, x)[0], err_msg=f"{case} on {board}")
