"""Rebuilding a Keras model with some layers replaced by chains of layers.

Works on the model's config (the same JSON a `.keras` file holds), so Sequential and
functional models (branches, residual adds, several inputs and outputs) keep their
topology: a replaced layer's first factor takes over its inputs, and its last factor keeps
its name, so every consumer and model output still finds it. Weights of untouched layers
are copied by name.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from toolchain.compress.replacements import LayerSpec
from toolchain.errors import ModelError

FOLDABLE = ("Dense", "Conv2D", "DepthwiseConv2D")


def is_sequential(model: Any) -> bool:
    return type(model).__name__ == "Sequential"


def call_count(model: Any, layer: Any) -> int:
    """How many times the model calls `layer` (a Sequential calls each layer once; Keras
    records an extra node for it when the model is rebuilt, so nodes cannot be counted)."""
    if is_sequential(model):
        return 1
    return max(len(getattr(layer, "_inbound_nodes", [])), 1)


def _entry(spec: LayerSpec, inbound: list | None) -> dict:
    entry: dict[str, Any] = {
        "module": "keras.layers",
        "class_name": spec.class_name,
        "config": spec.config,
        "registered_name": None,
    }
    if inbound is not None:
        entry["name"] = spec.config["name"]
        entry["inbound_nodes"] = inbound
    return entry


def _tensor_ref(layer_name: str, ndim: int) -> list[dict]:
    """An inbound-node list meaning "called on the first output of `layer_name`".

    Keras only needs the rank of the shape here; the real shape comes from calling the layer.
    """
    history = {
        "class_name": "__keras_tensor__",
        "config": {"shape": [None] * ndim, "dtype": "float32", "keras_history": [layer_name, 0, 0]},
    }
    return [{"args": [history], "kwargs": {}}]


def _input_ndim(inbound: list) -> int:
    """Rank of the first input tensor of a layer's (single) inbound node."""
    found: list[dict] = []
    _collect_histories(inbound, found)
    return len(found[0]["shape"])


def _collect_histories(node: Any, found: list[dict]) -> None:
    """Every serialized keras tensor config (a dict with `keras_history`) under `node`."""
    if isinstance(node, dict):
        if "keras_history" in node:
            found.append(node)
        for value in node.values():
            _collect_histories(value, found)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _collect_histories(value, found)


def _output_refs(config: dict) -> list:
    """The model outputs as [layer, node, tensor] refs (Keras stores one output unwrapped)."""
    refs = config.get("output_layers") or []
    return [refs] if refs and isinstance(refs[0], str) else list(refs)


def _rename_history(node: Any, renames: dict[str, str]) -> Any:
    """Point every keras_history that names a removed layer at its replacement."""
    if isinstance(node, dict):
        if "keras_history" in node and node["keras_history"][0] in renames:
            node["keras_history"][0] = renames[node["keras_history"][0]]
        for value in node.values():
            _rename_history(value, renames)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _rename_history(value, renames)
    return node


def rebuild(model: Any, replace: dict[str, list[LayerSpec]], remove: dict[str, str] | None = None) -> Any:
    """A new model where layer `name` becomes the chain `replace[name]`; `remove` maps
    dropped layers (folded batch norms) to the layer whose output stands in for theirs."""
    import keras

    remove = remove or {}
    config = copy.deepcopy(model.get_config())
    sequential = is_sequential(model)
    layers = []
    for entry in config["layers"]:
        name = entry["config"].get("name") if sequential else entry["name"]
        if name in remove:
            continue
        if name not in replace:
            layers.append(entry)
            continue
        chain = replace[name]
        if sequential:
            layers.extend(_entry(spec, None) for spec in chain)
            continue
        inbound = entry["inbound_nodes"]
        ndim = _input_ndim(inbound)
        for spec in chain:
            layers.append(_entry(spec, inbound))
            inbound = _tensor_ref(spec.config["name"], ndim)
    config["layers"] = layers
    if remove and not sequential:
        _rename_history(config["layers"], remove)
        refs = [[remove.get(ref[0], ref[0]), *ref[1:]] for ref in _output_refs(config)]
        single = config["output_layers"] and isinstance(config["output_layers"][0], str)
        config["output_layers"] = refs[0] if single else refs
    try:
        new = (keras.Sequential if sequential else keras.Model).from_config(config)
    except Exception as exc:  # Keras reports config problems with many types
        cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelError(f"model '{model.name}': could not rebuild the factored model ({cause})") from exc
    _load_weights(new, model, replace)
    return new


def _load_weights(new: Any, old: Any, replace: dict[str, list[LayerSpec]]) -> None:
    given = {spec.config["name"]: spec.weights for chain in replace.values() for spec in chain}
    for layer in new.layers:
        weights = given.get(layer.name)
        if weights is None:
            weights = old.get_layer(layer.name).get_weights()
        if weights:
            layer.set_weights([np.asarray(w, dtype=np.float32) for w in weights])


# --- batch-norm folding -------------------------------------------------------------------


def _functional_links(config: dict) -> tuple[dict[str, list[str]], dict[str, int], set[str]]:
    """For each layer: the layers it reads, how many times its output is read, model outputs."""
    sources: dict[str, list[str]] = {}
    readers: dict[str, int] = {}

    for entry in config["layers"]:
        histories: list[dict] = []
        _collect_histories(entry.get("inbound_nodes", []), histories)
        found = [h["keras_history"][0] for h in histories]
        sources[entry["name"]] = found
        for src in found:
            readers[src] = readers.get(src, 0) + 1
    outputs = {ref[0] for ref in _output_refs(config)}
    for name in outputs:
        readers[name] = readers.get(name, 0) + 1
    return sources, readers, outputs


def foldable_batchnorms(model: Any) -> list[tuple[str, str]]:
    """(batch norm, producer) pairs where the BN only rescales a linear Dense/Conv output."""
    config = model.get_config()
    pairs = []
    if is_sequential(model):
        names = [layer.name for layer in model.layers]
        candidates = [(names[i], names[i - 1]) for i in range(1, len(names))]
        readers: dict[str, int] = {}
        outputs: set[str] = set()
    else:
        sources, readers, outputs = _functional_links(config)
        candidates = [(bn, src[0]) for bn, src in sources.items() if len(src) == 1]
    for bn_name, producer_name in candidates:
        bn, producer = model.get_layer(bn_name), model.get_layer(producer_name)
        if type(bn).__name__ != "BatchNormalization" or type(producer).__name__ not in FOLDABLE:
            continue
        axis = bn.get_config()["axis"]
        rank = len(bn.input.shape)
        if (axis[0] if isinstance(axis, (list, tuple)) else axis) not in (-1, rank - 1):
            continue
        if producer.get_config().get("activation", "linear") != "linear" or bn_name in outputs:
            continue
        if (
            readers.get(producer_name, 1) > 1
            or len(producer._inbound_nodes) > 1
            or len(bn._inbound_nodes) > 1
        ):
            continue
        pairs.append((bn_name, producer_name))
    return pairs


def fold_batchnorm_weights(producer: Any, bn: Any) -> LayerSpec:
    """The producer with the BN's affine map absorbed into its kernel and bias."""
    cfg = bn.get_config()
    weights = list(bn.get_weights())
    gamma = weights.pop(0) if cfg.get("scale", True) else None
    beta = weights.pop(0) if cfg.get("center", True) else None
    mean, var = weights
    scale = (gamma if gamma is not None else 1.0) / np.sqrt(var + cfg["epsilon"])
    shift = (beta if beta is not None else 0.0) - mean * scale
    p_weights = producer.get_weights()
    kernel = p_weights[0]
    bias = (
        p_weights[1]
        if len(p_weights) > 1
        else np.zeros(
            kernel.shape[-1]
            if type(producer).__name__ != "DepthwiseConv2D"
            else kernel.shape[-2] * kernel.shape[-1],
            np.float32,
        )
    )
    if type(producer).__name__ == "DepthwiseConv2D":
        kernel = kernel * scale.reshape(kernel.shape[-2], kernel.shape[-1])
    else:
        kernel = kernel * scale
    p_cfg = copy.deepcopy(producer.get_config())
    p_cfg["use_bias"] = True
    return LayerSpec(
        type(producer).__name__, p_cfg, [kernel.astype(np.float32), (bias * scale + shift).astype(np.float32)]
    )


def fold_batchnorms(model: Any) -> tuple[Any, list[dict]]:
    """Fold every foldable BatchNormalization; returns the new model and what was folded."""
    pairs = foldable_batchnorms(model)
    if not pairs:
        return model, []
    replace = {p: [fold_batchnorm_weights(model.get_layer(p), model.get_layer(bn))] for bn, p in pairs}
    remove = {bn: p for bn, p in pairs}
    folded = rebuild(model, replace, remove)
    return folded, [{"batchnorm": bn, "into": p} for bn, p in pairs]
