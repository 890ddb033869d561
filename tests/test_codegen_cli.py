"""`tinyrank codegen` / `tinyrank verify`: registered sub-commands, reports, errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from toolchain.codegen.cli import register
from toolchain.errors import TinyrankError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinyrank")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--report")
    register(parser.add_subparsers(dest="command"), common)
    return parser


def _run(argv: list[str]) -> dict:
    args = _parser().parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import keras

    from toolchain.convert import convert_model
    from toolchain.data import save_dataset

    folder = tmp_path_factory.mktemp("codegen_cli")
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((12,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]
    )
    x = np.random.default_rng(1).normal(size=(64, 12)).astype(np.float32)
    tflite = folder / "tiny.tflite"
    tflite.write_bytes(convert_model(model, x, samples=64))
    data = save_dataset(folder / "tiny.npz", x_train=x, y_train=np.zeros(64, np.int64))
    return tflite, data


def test_codegen_command_writes_sources_and_prints_table(tiny, tmp_path: Path, capsys) -> None:
    tflite, _ = tiny
    info = _run(["codegen", str(tflite), "--out", str(tmp_path / "gen"), "--prefix", "tiny"])
    assert (tmp_path / "gen" / "model.c").is_file()
    assert json.loads((tmp_path / "gen" / "model_info.json").read_text())["prefix"] == "tiny"
    assert info["macs"] == 12 * 8 + 8 * 3
    out = capsys.readouterr().out
    assert "FULLY_CONNECTED" in out and "arena" in out


def test_verify_command_reports_bit_exact(tiny, capsys) -> None:
    tflite, data = tiny
    report = _run(["verify", str(tflite), "--data", str(data), "--samples", "40"])
    assert report["samples"] == 40 and report["mismatches"] == 0
    assert "0 mismatching output bytes" in capsys.readouterr().out


def test_verify_command_fails_on_wrong_data_shape(tiny, tmp_path: Path) -> None:
    from toolchain.data import save_dataset

    tflite, _ = tiny
    bad = save_dataset(
        tmp_path / "bad.npz", x_train=np.zeros((4, 7), np.float32), y_train=np.zeros(4, np.int64)
    )
    with pytest.raises(TinyrankError, match=r"shape \(7,\); the model tiny.tflite expects \(12,\)"):
        _run(["verify", str(tflite), "--data", str(bad)])


def test_help_has_an_example() -> None:
    parser = _parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("codegen", "verify"):
        assert "example: tinyrank " + name in subparsers.choices[name].format_help()


def test_verify_report_is_written_when_outputs_differ(tiny, tmp_path: Path, monkeypatch) -> None:
    """The report matters most on a mismatch: it is written before the command fails."""
    from toolchain import oracle

    tflite, data = tiny
    real_run = oracle.run

    def off_by_one(model, x):  # a reference one code away from what the generated C computes
        return [np.clip(o.astype(np.int16) + 1, -128, 127).astype(np.int8) for o in real_run(model, x)]

    monkeypatch.setattr(oracle, "run", off_by_one)
    report_path = tmp_path / "verify.json"
    with pytest.raises(TinyrankError, match="differs from TFLite Micro"):
        _run(["verify", str(tflite), "--data", str(data), "--samples", "8", "--report", str(report_path)])
    report = json.loads(report_path.read_text())
    assert report["bit_exact"] is False and report["mismatched_samples"] == 8
    assert report["first_mismatch"]["tflm"] == report["first_mismatch"]["generated"] + 1
