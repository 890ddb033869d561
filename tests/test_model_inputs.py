"""The model files users actually have: Keras 2 `.h5`, SavedModel folders, `.tflite`, and folders
passed where a file is expected."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from toolchain.errors import ModelError
from toolchain.models import load_keras_model


def _keras2_config(node):
    """A Keras 3 config rewritten the way Keras 2 wrote it (dtype strings, batch_input_shape,
    no module paths) plus `groups: 1` on DepthwiseConv2D, the key MLPerf Tiny's .h5 files carry."""
    if isinstance(node, list):
        return [_keras2_config(v) for v in node]
    if not isinstance(node, dict):
        return node
    if node.get("class_name") == "DTypePolicy":
        return node["config"]["name"]
    node = {
        k: _keras2_config(v)
        for k, v in node.items()
        if k not in ("module", "registered_name", "build_config")
    }
    if node.get("class_name") == "InputLayer":
        node["config"]["batch_input_shape"] = node["config"].pop("batch_shape")
        node["config"].pop("optional", None)
    if node.get("class_name") == "DepthwiseConv2D":
        node["config"]["groups"] = 1
    return node


def _edit_h5(path: Path, edit) -> None:
    import h5py

    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        f.attrs["model_config"] = json.dumps(edit(config))
        f.attrs["keras_version"] = "2.13.1"


@pytest.fixture(scope="module")
def keras2_h5(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    import keras

    keras.utils.set_random_seed(5)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            layers.DepthwiseConv2D(3, padding="same", name="dw"),
            layers.ReLU(6.0),
            layers.GlobalAveragePooling2D(),
            layers.Dense(4, name="dense"),
        ]
    )
    path = tmp_path_factory.mktemp("keras2") / "vww_like.h5"
    model.save(path)
    _edit_h5(path, _keras2_config)
    return path, model


def test_keras2_h5_with_groups_one_loads_and_computes_the_same(keras2_h5) -> None:
    path, original = keras2_h5
    before = path.read_bytes()
    loaded = load_keras_model(path)
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(original(x)), rtol=1e-6, atol=1e-6)
    assert path.read_bytes() == before  # the key is dropped from a copy, never from the user's file


def _set_key(layer_class: str, key: str, value):
    def edit(config):
        for layer in config["config"]["layers"]:
            if layer["class_name"] == layer_class:
                layer["config"][key] = value
        return config

    return edit


def test_keras2_key_that_would_change_the_model_names_layer_and_key(keras2_h5, tmp_path: Path) -> None:
    path = tmp_path / "groups3.h5"
    shutil.copyfile(keras2_h5[0], path)
    _edit_h5(path, _set_key("DepthwiseConv2D", "groups", 3))
    with pytest.raises(ModelError, match=r"layer 'dw' \(DepthwiseConv2D\) has the Keras 2 option groups=3"):
        load_keras_model(path)


def test_unknown_config_key_is_named_with_its_layer(keras2_h5, tmp_path: Path) -> None:
    path = tmp_path / "odd_key.h5"
    shutil.copyfile(keras2_h5[0], path)
    _edit_h5(path, _set_key("Dense", "legacy_flag", True))
    with pytest.raises(
        ModelError, match=r"layer 'dense' \(Dense\) has config keys Keras 3 does not know: legacy_flag"
    ):
        load_keras_model(path)


def test_folder_where_a_file_is_expected_says_so(tmp_path: Path) -> None:
    from toolchain.deploy.pipeline import model_kind

    with pytest.raises(ModelError, match="is a folder, not a file"):
        load_keras_model(tmp_path)
    with pytest.raises(ModelError, match="is a folder without saved_model.pb"):
        model_kind(tmp_path)


def test_deploy_takes_tflite_and_savedmodel(tmp_path: Path) -> None:
    from toolchain.deploy.pipeline import model_kind

    (tmp_path / "m.tflite").write_bytes(b"TFL3")
    (tmp_path / "m.onnx").write_bytes(b"")
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"")
    assert model_kind(tmp_path / "m.tflite") == "tflite"
    assert model_kind(tmp_path / "sm") == "savedmodel"
    with pytest.raises(ModelError, match="expected a .keras, .h5 or .tflite"):
        model_kind(tmp_path / "m.onnx")


def test_savedmodel_folder_converts_to_a_bit_exact_int8_model(tmp_path: Path) -> None:
    import keras

    from toolchain.codegen.verify import verify
    from toolchain.convert import convert_file
    from toolchain.data import save_dataset

    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [keras.Input((12,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]
    )
    folder = tmp_path / "saved"
    model.export(folder, verbose=False)
    x = np.random.default_rng(2).normal(size=(64, 12)).astype(np.float32)
    data = save_dataset(tmp_path / "d.npz", x_train=x, y_train=np.zeros(64, np.int64))
    report = convert_file(folder, data, tmp_path / "m.tflite", samples=64)
    assert report["tflite_bytes"] > 0
    assert report["int8_vs_float_max_abs"] < 0.2
    assert verify(tmp_path / "m.tflite", x[:16])["bit_exact"]
