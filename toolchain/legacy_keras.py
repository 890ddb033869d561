"""Keras 2 `.h5` files in Keras 3: the config keys Keras 2 wrote that Keras 3 refuses.

Public pretrained models (MLPerf Tiny's among them) are Keras 2 `.h5` files. Their layer
configs carry a few keys Keras 3 no longer accepts, such as `groups: 1` on DepthwiseConv2D.
Where the value is the one that changes nothing, the key is dropped before loading; any
other value is refused with the layer and the key named.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from toolchain.errors import ModelError

ANY = object()  # every value is harmless (an implementation choice, or shape information only)
_GROUPS_ONE = {"groups": (1,)}
_RNN = {"time_major": (False,), "implementation": ANY}

# layer class -> {Keras-2-only key: values with which dropping the key changes nothing}
KERAS2_ONLY_KEYS: dict[str, dict[str, Any]] = {
    "DepthwiseConv1D": _GROUPS_ONE,
    "DepthwiseConv2D": _GROUPS_ONE,
    "SeparableConv1D": _GROUPS_ONE,
    "SeparableConv2D": _GROUPS_ONE,
    "Conv1DTranspose": _GROUPS_ONE,
    "Conv2DTranspose": _GROUPS_ONE,
    "Conv3DTranspose": _GROUPS_ONE,
    "LSTM": _RNN,
    "GRU": _RNN,
    "SimpleRNN": {"time_major": (False,)},
    "BatchNormalization": {"fused": ANY, "virtual_batch_size": (None,)},
    "Embedding": {"input_length": ANY},
}


def _layers(node: Any) -> list[dict[str, Any]]:
    """Every {'class_name', 'config'} layer entry in a (possibly nested) model config."""
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("class_name"), str) and isinstance(node.get("config"), dict):
            found.append(node)
        for value in node.values():
            found += _layers(value)
    elif isinstance(node, list):
        for value in node:
            found += _layers(value)
    return found


def drop_keras2_keys(config: dict[str, Any], source: str) -> list[str]:
    """Remove harmless Keras-2-only keys from `config` in place; returns 'layer.key' for each.

    Raises ModelError naming the layer and key when a value would change the model.
    """
    dropped = []
    for layer in _layers(config):
        rules = KERAS2_ONLY_KEYS.get(layer["class_name"], {})
        cfg = layer["config"]
        for key, harmless in rules.items():
            if key not in cfg:
                continue
            if harmless is not ANY and cfg[key] not in harmless:
                raise ModelError(
                    f"model file {source}: layer '{cfg.get('name', '?')}' ({layer['class_name']}) has the "
                    f"Keras 2 option {key}={cfg[key]!r}, which Keras 3 cannot load; supported: "
                    f"{key}={harmless[0]!r} (dropped on loading)"
                )
            del cfg[key]
            dropped.append(f"{cfg.get('name', '?')}.{key}")
    return dropped


def cleaned_h5_copy(path: Path, work_dir: Path) -> Path:
    """`path` itself when its model config needs no change, else a cleaned copy in `work_dir`.

    The input file is never written to.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except OSError as exc:
        raise ModelError(f"model file {path}: not a readable HDF5 file ({exc})") from exc
    if raw is None:
        return path
    config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    if not drop_keras2_keys(config, str(path)):
        return path
    copy = work_dir / path.name
    shutil.copyfile(path, copy)
    with h5py.File(copy, "r+") as f:
        f.attrs["model_config"] = json.dumps(config)
    return copy


def unknown_key_message(cause: str, config_source: Path) -> str | None:
    """For Keras 3's 'Unrecognized keyword arguments passed to X: {...}', the layers and keys at fault."""
    import re

    match = re.search(r"Unrecognized keyword arguments passed to (\w+): \{([^}]*)\}", cause)
    if not match:
        return None
    cls, keys = match.group(1), re.findall(r"'(\w+)'", match.group(2))
    names = []
    if config_source.suffix == ".h5":
        try:
            import h5py

            with h5py.File(config_source, "r") as f:
                config = json.loads(f.attrs["model_config"])
            names = [
                str(layer["config"].get("name"))
                for layer in _layers(config)
                if layer["class_name"] == cls and any(k in layer["config"] for k in keys)
            ]
        except (OSError, KeyError, ValueError):
            names = []
    where = f"layer '{names[0]}' ({cls})" if names else f"a {cls} layer"
    return (
        f"{where} has config keys Keras 3 does not know: {', '.join(keys)} "
        "(a Keras 2 model; re-save it with Keras 3 or drop the keys)"
    )
