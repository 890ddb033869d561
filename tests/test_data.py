"""The .npz data contract: every mistake a user can make is caught up front and named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from toolchain.data import check_input_shape, is_classification, load_dataset, save_dataset
from toolchain.errors import DataError, TinyrankError
from toolchain.fileio import atomic_write_text, check_distinct, write_json_report


def _write(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_loads_all_splits(tmp_path: Path, rng: np.random.Generator) -> None:
    path = save_dataset(
        tmp_path / "d.npz",
        x_train=rng.random((10, 4)),
        y_train=np.arange(10),
        x_test=rng.random((3, 4)),
        y_test=np.arange(3),
    )
    ds = load_dataset(path)
    assert ds.x_train.shape == (10, 4) and ds.has_test
    assert ds.eval_x is ds.x_test and is_classification(ds)


def test_missing_x_train_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.npz", x=np.zeros((2, 2)))
    with pytest.raises(DataError, match="missing key 'x_train'.*found: x"):
        load_dataset(path)


def test_nan_is_named(tmp_path: Path) -> None:
    x = np.zeros((4, 2))
    x[1, 1] = np.nan
    with pytest.raises(DataError, match="'x_train' holds 1 NaN or Inf"):
        load_dataset(_write(tmp_path / "d.npz", x_train=x, y_train=np.zeros(4)))


def test_length_mismatch(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="'x_train' has 4 samples but 'y_train' has 3"):
        load_dataset(_write(tmp_path / "d.npz", x_train=np.zeros((4, 2)), y_train=np.zeros(3)))


def test_not_an_npz(tmp_path: Path) -> None:
    bad = tmp_path / "d.npz"
    bad.write_text("hello")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_dataset(bad)


def test_string_arrays_rejected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="dtype <U1"):
        load_dataset(_write(tmp_path / "d.npz", x_train=np.array(["a", "b"])))


def test_shape_check_names_key_found_and_expected(tmp_path: Path) -> None:
    ds = load_dataset(save_dataset(tmp_path / "d.npz", x_train=np.zeros((5, 8, 8)), y_train=np.zeros(5)))
    check_input_shape(ds, (None, 8, 8))
    with pytest.raises(
        DataError, match=r"'x_train' has samples of shape \(8, 8\); the model expects \(64,\)"
    ):
        check_input_shape(ds, (None, 64))


def test_regression_labels_are_not_classes(tmp_path: Path) -> None:
    ds = load_dataset(save_dataset(tmp_path / "d.npz", x_train=np.zeros((5, 3)), y_train=np.zeros((5, 2))))
    assert not is_classification(ds)


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "sub" / "out.txt", "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_json_report_handles_numpy(tmp_path: Path) -> None:
    path = write_json_report(tmp_path / "r.json", {"a": np.int64(3), "b": np.arange(2), "c": tmp_path})
    assert '"a": 3' in path.read_text() and '"b": [\n    0,\n    1\n  ]' in path.read_text()


def test_output_over_input_refused(tmp_path: Path) -> None:
    src = tmp_path / "m.keras"
    src.write_text("x")
    with pytest.raises(TinyrankError, match="is the input file"):
        check_distinct(src, tmp_path / "." / "m.keras")


def test_class_labels_read_the_task_from_the_labels() -> None:
    from toolchain.data import class_labels

    assert class_labels(np.array([2, 0, 1])).tolist() == [2, 0, 1]
    assert class_labels(np.array([[0, 1], [1, 0]])).tolist() == [1, 0]  # one-hot
    assert class_labels(np.array([[3], [4]])).tolist() == [3, 4]  # a label column
    assert class_labels(np.array([0.5, 1.5])) is None  # regression targets
    assert class_labels(None) is None  # autoencoder


def test_score_outputs_accuracy_or_mse() -> None:
    from toolchain.data import score_outputs

    outputs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert score_outputs(outputs, np.array([0, 1, 1]), outputs) == {"accuracy": 2 / 3}
    x = np.ones((3, 2), np.float32)
    assert score_outputs(x * 3, None, x) == {"mse": 4.0}  # no labels: reconstruction error


def test_labels_outside_the_model_classes(tmp_path: Path) -> None:
    from toolchain.data import check_labels

    data = load_dataset(_write(tmp_path / "d.npz", x_train=np.zeros((3, 2)), y_train=np.array([0, 1, 4])))
    with pytest.raises(
        DataError, match="'y_train' holds class 4; the model has 4 outputs, so labels must be 0..3"
    ):
        check_labels(data, 4)
    check_labels(data, 5)
    negative = load_dataset(_write(tmp_path / "n.npz", x_train=np.zeros((2, 2)), y_train=np.array([0, -1])))
    with pytest.raises(DataError, match="holds class -1"):
        check_labels(negative, 3)
    binary = load_dataset(_write(tmp_path / "b.npz", x_train=np.zeros((2, 2)), y_train=np.array([0, 2])))
    with pytest.raises(DataError, match="labels must be 0..1"):
        check_labels(binary, 1)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_train": np.zeros((0, 4))}, "'x_train' is empty"),
        (
            {
                "x_train": np.zeros((2, 4)),
                "x_test": np.zeros((0, 4)),
                "y_train": np.zeros(2),
                "y_test": np.zeros(0),
            },
            "'x_test' is empty",
        ),
        ({"x_train": np.float32(1.0)}, "single number"),
        ({"x_train": np.zeros((2, 2), np.complex64)}, "expected real numbers"),
        ({"x_train": np.zeros((2, 2), bool)}, "expected real numbers"),
    ],
)
def test_the_contract_refuses(tmp_path: Path, arrays: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_dataset(_write(tmp_path / "d.npz", **arrays))
