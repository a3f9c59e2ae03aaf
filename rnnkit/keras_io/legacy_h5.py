"""Keras 2 / tf.keras HDF5 model files (`model.save("m.h5")`), read only.

    /                     attrs: model_config (JSON), training_config (JSON), keras_version
    /model_weights        attrs: layer_names
    /model_weights/lstm   attrs: weight_names ["lstm/lstm_cell/kernel:0", ...], in the
                          order of the layer's weights; each name is a dataset below it

The model is rebuilt from model_config through `_config`'s allowlist (nothing is imported or
run), then each layer takes its datasets in order, checked against its weights' shapes.
The optimizer's state is not read (Keras 2 names it by variable, not by weight); a
compiled file comes back compiled with a fresh optimizer.
"""

from __future__ import annotations

import contextlib
import json

import numpy as np
import torch

from rnnkit.keras_io import _config


def load_legacy_h5(path: str, custom_objects: dict | None = None, compile: bool = True):
    """The rnnkit model of a Keras 2 `.h5` model file."""
    from rnnkit import saving

    custom_objects = custom_objects or {}
    with _h5(path) as h5:
        config = _json_attr(h5, "model_config", path)
        model_config = _config.from_keras(config, f"'{path}': model_config", custom_objects)
        _unwrap_single_io(model_config)
        saving._check_dtypes(path, model_config)
        layers = _layer_weights(h5, path)
        with saving._meta_weights():
            skeleton = saving._rebuild(path, model_config, custom_objects)
        _fill(skeleton, layers, path, assign=False)
        model = saving._rebuild(path, model_config, custom_objects)
        _fill(model, layers, path, assign=True)
        if compile and "training_config" in h5.attrs:
            _compile(model, _json_attr(h5, "training_config", path), path, custom_objects)
    return model


def _unwrap_single_io(config) -> None:
    """Keras 2 lists a model's one input or output as `[[name, 0, 0]]` and means the tensor,
    not a list of one, as Keras 3's `[name, 0, 0]`."""
    inner = config.get("config") if isinstance(config, dict) else None
    if not isinstance(inner, dict):
        return
    for key in ("input_layers", "output_layers"):
        refs = inner.get(key)
        if isinstance(refs, list) and len(refs) == 1 and isinstance(refs[0], list):
            inner[key] = refs[0]
    for layer in inner.get("layers") or []:
        _unwrap_single_io(layer)


@contextlib.contextmanager
def _h5(path: str):
    import h5py

    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as err:
        raise ValueError(
            f"'{path}' is not a readable HDF5 file ({err}); it is corrupt or truncated. "
            "Save the model again."
        ) from err
    with f:
        if "model_config" not in f.attrs or "model_weights" not in f:
            raise ValueError(
                f"'{path}' is an HDF5 file without model_config and model_weights, so it is "
                "no Keras 2 model file (a weights-only file? rebuild the model and use "
                "model.set_weights)."
            )
        yield f


def _json_attr(h5, name: str, path: str):
    value = h5.attrs[name]
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    try:
        return json.loads(str(value))
    except (ValueError, RecursionError) as err:
        raise ValueError(f"'{path}': attribute {name} is not valid JSON ({err}).") from err


def _names(attrs, key: str) -> list[str]:
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in attrs.get(key, [])]


def _layer_weights(h5, path: str) -> dict[str, list]:
    """`{layer name: [dataset, ...]}` in each layer's weight order, datasets not yet read."""
    import h5py

    group = h5["model_weights"]
    out = {}
    for layer in _names(group.attrs, "layer_names"):
        datasets = []
        for name in _names(group[layer].attrs, "weight_names") if layer in group else []:
            node = group[layer].get(name)
            if not isinstance(node, h5py.Dataset) or node.dtype.kind not in "fiub":
                raise ValueError(
                    f"'{path}': weight {layer}/{name} is missing or not numeric; the file is "
                    "incomplete or corrupt. Save the model again."
                )
            datasets.append((f"{layer}/{name}", node))
        out[layer] = datasets
    return out


def _fill(model, layers: dict, path: str, assign: bool) -> None:
    for layer in model.layers:
        own = layer.weights
        saved = layers.get(layer.name, [])
        if len(saved) != len(own):
            raise ValueError(
                f"'{path}': layer '{layer.name}' has {len(saved)} weight(s) in the file and "
                f"{len(own)} in the model of model_config; the file is corrupt."
            )
        for (name, node), weight in zip(saved, own):
            if tuple(node.shape) != tuple(weight.shape):
                raise ValueError(
                    f"'{path}': weight {name} is {tuple(node.shape)} in the file, but the "
                    f"model of model_config expects {tuple(weight.shape)}; the file is corrupt."
                )
            if assign:
                value = np.ascontiguousarray(node[()])
                with torch.no_grad():
                    weight.copy_(torch.from_numpy(value).to(weight.dtype))


def _compile(model, training: dict, path: str, custom_objects: dict) -> None:
    from rnnkit import losses, optimizers

    settings = _config.from_keras(training, f"'{path}': training_config", custom_objects)
    try:
        optimizer = settings["optimizer_config"]
        name = optimizer["class_name"].removeprefix("Custom>")  # tf.keras' own Adam
        optimizer = {"class_name": name, "config": _optimizer_config(optimizer["config"])}
        loss = settings.get("loss")
        metrics = settings.get("metrics") or []
        metrics = metrics[0] if metrics and isinstance(metrics[0], list) else metrics
        model.compile(
            optimizer=optimizers.get(optimizer),
            loss=losses.get(loss) if isinstance(loss, dict) else loss,
            metrics=[_metric(m) for m in metrics],
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"'{path}': cannot restore the compile() settings of training_config ({err}). "
            "Load with compile=False and call model.compile(...) yourself."
        ) from err


def _metric(entry):
    """Keras 2 writes metrics=["mae"] as a MeanMetricWrapper named "mae"; rnnkit takes names."""
    if isinstance(entry, dict) and entry.get("class_name") == "MeanMetricWrapper":
        return entry["config"]["name"]
    return entry


def _optimizer_config(config: dict) -> dict:
    """Keras 2 optimizer configs carry `is_legacy_optimizer`, `jit_compile` and decay keys."""
    drop = {"is_legacy_optimizer", "jit_compile", "decay"}
    return {k: v for k, v in config.items() if k not in drop}
