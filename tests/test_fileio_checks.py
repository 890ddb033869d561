"""Checks before work: every output writable, none of them an input, distinct from each other."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from toolchain.errors import TinyrankError
from toolchain.fileio import check_paths, check_writable


def test_an_output_over_an_input_or_a_file_of_an_input_folder(tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    gen = tmp_path / "gen"
    gen.mkdir()
    (gen / "model_info.json").write_text("{}")
    with pytest.raises(TinyrankError, match="is an input of this command"):
        check_paths([model], {"--report": model})
    with pytest.raises(TinyrankError, match="is an input of this command"):
        check_paths([gen], {"--report": gen / "model_info.json"})
    check_paths([model, gen], {"--report": gen / "build.json"}, {"--out": gen / "firmware"})


def test_read_only_folder_is_refused_before_work(tmp_path: Path, monkeypatch) -> None:
    # root may write anywhere, so the permission answer is faked; the path logic is what is tested
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path / "ro")
    (tmp_path / "ro").mkdir()
    with pytest.raises(TinyrankError, match=r"the folder .*ro is not writable"):
        check_writable(tmp_path / "ro" / "new" / "report.json", "--report")
    check_writable(tmp_path / "rw" / "report.json", "--report")


def test_distinct_outputs(tmp_path: Path) -> None:
    with pytest.raises(TinyrankError, match="also given as --out"):
        check_paths([], {"--out": tmp_path / "a.png", "--plot": tmp_path / "a.png"})
