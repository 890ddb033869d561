"""`deploy` builds and measures the original and the compressed model on the same board in one
run and reports them side by side (end to end in QEMU)."""

from __future__ import annotations

import json

import pytest

from toolchain.deploy.cli import compress_options
from toolchain.deploy.compare import comparison

pytestmark = [pytest.mark.qemu, pytest.mark.slow]


def test_deploy_reports_original_and_compressed_side_by_side(tmp_path, digits_mlp, digits_npz, capsys):
    from toolchain.deploy.cli import print_deploy_summary
    from toolchain.deploy.pipeline import deploy

    from toolchain.data import load_dataset, save_dataset

    digits = load_dataset(digits_npz)  # fewer samples: every one is checked on the device, twice
    small = save_dataset(
        tmp_path / "small.npz",
        x_train=digits.x_train[:400],
        y_train=digits.y_train[:400],
        x_test=digits.x_test[:60],
        y_test=digits.y_test[:60],
    )
    options = {"board": "qemu_m4", "target_latency": 0.7, "finetune_epochs": 2}
    report = deploy(digits_mlp, small, "qemu_m4", tmp_path / "out", compress_options=options, runs=2)
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["original"]["bench"]["latency"]["median"] == report["original"]["bench"]["latency"]["median"]
    rows = {row["what"]: row for row in report["comparison"]}
    latency = rows["instructions per inference"]
    assert latency["compressed"] <= 0.7 * 1.05 * latency["original"]
    assert latency["ratio"] == pytest.approx(latency["compressed"] / latency["original"], abs=1e-3)
    assert rows["flash"]["compressed"] < rows["flash"]["original"]
    for what in ("accuracy, float", "accuracy, int8 on the host", "accuracy, int8 on the device"):
        assert 0.5 < rows[what]["original"] <= 1.0 and 0.3 < rows[what]["compressed"] <= 1.0
    assert report["original"]["bench"]["matches"] == report["original"]["bench"]["samples"]
    assert report["bench"]["matches"] == report["bench"]["samples"]
    print_deploy_summary(report)
    out = capsys.readouterr().out
    assert "original (int8)" in out and "compressed (int8)" in out and "ratio" in out


def test_deploy_passes_every_budget_flag_and_fits_the_board_by_default():
    import argparse

    from toolchain.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["deploy", "m.keras", "--data", "d.npz", "--board", "qemu_m3"])
    assert compress_options(args) == {"board": "qemu_m3"}
    args = parser.parse_args(
        ["deploy", "m.keras", "--data", "d.npz", "--target-latency", "0.5", "--method", "auto", "--distill"]
    )
    assert compress_options(args) == {"method": "auto", "target_latency": 0.5, "distill": True, "board": "qemu_m4"}
    args = parser.parse_args(["deploy", "m.keras", "--data", "d.npz", "--ranks", "dense_1=8"])
    assert compress_options(args) == {"ranks": "dense_1=8"}
    assert isinstance(args, argparse.Namespace)


def test_comparison_ratios_and_missing_figures():
    report = {
        "compress": {"params": {"before": 100, "after": 25}},
        "convert": {"float": {"accuracy": 0.9}, "int8": {"accuracy": 0.88}},
        "build": {"flash_bytes": 500},
        "bench": {"accuracy": 0.88, "ram_bytes": 90, "latency": {"unit": "cycles", "median": 300}},
        "original": {
            "convert": {"float": {"accuracy": 0.95}, "int8": {"accuracy": 0.94}},
            "build": None,
            "does_not_fit": "too big",
        },
    }
    rows = {row["what"]: row for row in comparison(report)}
    assert rows["parameters"]["ratio"] == 0.25
    assert rows["cycles per inference"]["original"] is None and rows["cycles per inference"]["ratio"] is None
    assert rows["accuracy, float"]["ratio"] == pytest.approx(0.9 / 0.95, abs=1e-4)
