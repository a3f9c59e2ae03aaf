"""Keras 3's `.keras` file, read and written: a zip of three members.

    metadata.json      {"keras_version": "3.15.1", "date_saved": ...; rnnkit adds
                       "rnnkit_metadata": model.metadata when it has one (a forecast's
                       scalers, a tokenizer), which Keras leaves alone}
    config.json        the model: {"module", "class_name", "config", ..., "compile_config"}
    model.weights.h5   HDF5: each weight at the path `_paths` gives ("layers/dense/vars/0"),
                       the optimizer's variables at "optimizer/vars/0", ...: iterations,
                       the learning rate, then each trainable weight's slots in turn
                       (Adam: momentum, velocity)

Reading runs nothing from the file: config.json is parsed against `_config`'s allowlist and
the weights are read with h5py, each checked against the shape the rebuilt model expects.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import zipfile
import zlib

import numpy as np
import torch

from rnnkit.keras_io import _config, _paths

KERAS_VERSION = "3.15.1"  # the Keras whose files these are, and which the tests load them with
_MEMBERS = ("metadata.json", "config.json", "model.weights.h5")


# ----------------------------------------------------------------------------- reading


def load_keras(path: str, custom_objects: dict | None = None, compile: bool = True):
    """The rnnkit model of a `.keras` file Keras 3 wrote (or `save_keras`)."""
    from rnnkit import saving

    path = saving._existing_file(path)
    with _open_zip(path) as archive:
        missing = [m for m in _MEMBERS[1:] if m not in archive]
        if missing:
            raise ValueError(
                f"'{path}' is a zip archive without {missing[0]}, so it is no Keras .keras "
                "file (nor rnnkit's, which holds rnnkit.json). Save the model again."
            )
        config = archive.json("config.json")
        weights = archive.read("model.weights.h5")
        about = archive.json("metadata.json") if "metadata.json" in archive else {}
    if not isinstance(config, dict):
        raise ValueError(f"'{path}': config.json holds {type(config).__name__}, not an object.")
    where = f"'{path}': config.json"
    model_config = _config.from_keras(
        {k: v for k, v in config.items() if k != "compile_config"}, where, custom_objects
    )
    saving._check_dtypes(path, model_config)
    with _h5(weights, path) as h5:
        model = _model_sized_by_file(path, model_config, custom_objects or {}, h5)
        compile_config = config.get("compile_config")
        if compile and compile_config:
            _compile(model, compile_config, where, custom_objects)
            if "optimizer" in h5:
                _restore_optimizer(model, h5, path)
    extra = about.get("rnnkit_metadata") if isinstance(about, dict) else None
    if isinstance(extra, dict):
        model.metadata = extra
    return model


@contextlib.contextmanager
def _open_zip(path: str):
    from rnnkit import saving

    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise saving._not_an_archive(path, err) from err
    with zf:
        yield saving._Archive(path, zf)


def _model_sized_by_file(path: str, config, custom_objects: dict, h5):
    """The model of `config` with the weights of `h5`, built for real only once the shapes
    of a shape-only build (torch's meta device) match the file's: a small file cannot make
    rnnkit allocate a huge model."""
    from rnnkit import saving

    with saving._meta_weights():
        skeleton = saving._rebuild(path, config, custom_objects)
    for dataset, weight in _paths.weight_paths(skeleton):
        _check_shape(_node(h5, dataset, path).shape, weight, f"'{path}': {dataset}: ")
    model = saving._rebuild(path, config, custom_objects)
    for dataset, weight in _paths.weight_paths(model):
        _assign(weight, _dataset(h5, dataset, path), f"'{path}': {dataset}: ")
    return model


@contextlib.contextmanager
def _h5(data: bytes, path: str):
    import h5py

    try:
        f = h5py.File(io.BytesIO(data), "r")
    except (OSError, ValueError) as err:
        raise ValueError(
            f"'{path}': model.weights.h5 is not a readable HDF5 file ({err}); the file is "
            "corrupt or truncated. Save it again."
        ) from err
    with f:
        yield f


def _node(h5, name: str, path: str):
    import h5py

    node = h5.get(name)
    if not isinstance(node, h5py.Dataset):
        raise ValueError(
            f"'{path}': model.weights.h5 has no weight {name!r}, which the model of "
            "config.json needs; the file is incomplete or its config and weights disagree."
        )
    if node.dtype.kind not in "fiub":
        raise ValueError(f"'{path}': weight {name!r} has dtype {node.dtype}, not a number.")
    return node


def _dataset(h5, name: str, path: str) -> np.ndarray:
    return _node(h5, name, path)[()]


def _check_shape(shape, weight, where: str) -> None:
    if tuple(shape) != tuple(weight.shape):
        raise ValueError(
            f"{where}weight of shape {tuple(shape)} in the file where the model expects "
            f"{tuple(weight.shape)}; the file's config and weights disagree."
        )


def _assign(weight, value: np.ndarray, where: str = "") -> None:
    _check_shape(value.shape, weight, where)
    with torch.no_grad():
        weight.copy_(torch.from_numpy(np.ascontiguousarray(value)).to(weight.dtype))


def _compile(model, compile_config: dict, where: str, custom_objects) -> None:
    from rnnkit import losses, optimizers

    settings = _config.from_keras(compile_config, where + " compile_config", custom_objects)
    try:
        optimizer = settings.get("optimizer")
        if isinstance(optimizer, dict) and optimizer["class_name"] in (custom_objects or {}):
            optimizer = custom_objects[optimizer["class_name"]].from_config(optimizer["config"])
        else:
            optimizer = optimizers.get(optimizer)
        loss = settings.get("loss")
        loss = losses.get(loss) if isinstance(loss, dict) else loss
        model.compile(
            optimizer=optimizer,
            loss=loss,
            metrics=settings.get("metrics"),
            weighted_metrics=settings.get("weighted_metrics"),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{where}: cannot restore the compile() settings ({err}). Load with "
            "compile=False and call model.compile(...) yourself."
        ) from err


def _slots(optimizer) -> list[str]:
    names = getattr(optimizer.torch_optimizer, "_slot_names", None)
    group = optimizer.torch_optimizer.param_groups[0]
    return list(names(group)) if names else []


def _restore_optimizer(model, h5, path: str) -> None:
    """Keras' `optimizer/vars/*` -> rnnkit's optimizer: iterations and each weight's slots."""
    optimizer = model.optimizer
    optimizer.build(model.trainable_weights)
    slots = _slots(optimizer)
    count = len(h5["optimizer/vars"]) if "optimizer/vars" in h5 else 0
    expected = 2 + len(slots) * len(model.trainable_weights)
    if count != expected or "velocity_hat" in slots:
        raise ValueError(
            f"'{path}': the optimizer state has {count} variables; rnnkit's "
            f"{type(optimizer).__name__} of this model has {expected}. Load with "
            "compile=False, or compile again and train from a fresh optimizer."
        )
    iterations = int(_dataset(h5, "optimizer/vars/0", path))
    state = optimizer.torch_optimizer.state
    index = 2
    for weight in model.trainable_weights:
        for slot in slots:
            value = _dataset(h5, f"optimizer/vars/{index}", path)
            _assign(state[weight][slot], value, f"'{path}': optimizer/vars/{index}: ")
            index += 1
    optimizer.iterations = iterations
    for group in optimizer.torch_optimizer.param_groups:
        group["step"] = iterations


# ----------------------------------------------------------------------------- writing


def save_keras(model, filepath, overwrite: bool = True) -> None:
    """Write `model` as a Keras 3 `.keras` file that `keras.saving.load_model` opens."""
    from rnnkit import layers, saving

    if not model.built:
        saving._require_built(model, "be saved as a Keras file")
    config = _config.to_keras(layers.serialize(model))
    config["build_config"] = {"input_shape": None}
    if getattr(model, "compiled", False):
        config["compile_config"] = _compile_config(model)
    weights = _weights_h5(model)
    metadata = {
        "keras_version": KERAS_VERSION,
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
    }
    if getattr(model, "metadata", None):  # what rnnkit's commands need to use the model
        metadata["rnnkit_metadata"] = json.loads(
            saving._to_json(model.metadata, f"model '{model.name}': metadata")
        )
    with saving._zip_writer(filepath, overwrite) as archive:
        archive.writestr("metadata.json", json.dumps(metadata))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", weights, compress_type=zipfile.ZIP_STORED)


def _compile_config(model) -> dict:
    from rnnkit import saving

    own = json.loads(saving._compile_config(model))
    optimizer = own["optimizer"]
    loss = own["loss"]
    if "function" in loss:
        raise ValueError(
            f"Cannot save model '{model.name}' as a Keras file: its loss is your function "
            f"{loss['function']!r}, which Keras would have to import. Save to '.rnnkit'."
        )
    return {
        "optimizer": {
            "module": "keras.optimizers",
            "class_name": optimizer["class_name"],
            "config": optimizer["config"],
            "registered_name": None,
        },
        "loss": {"module": "keras.losses", **loss, "registered_name": None},
        "loss_weights": None,
        "metrics": own["metrics"] or None,
        "weighted_metrics": own["weighted_metrics"] or None,
        "run_eagerly": False,
        "steps_per_execution": 1,
        "jit_compile": False,
    }


def _weights_h5(model) -> bytes:
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        for group, layer, own in _paths.keras_groups(model):
            g = h5.require_group(f"{group}vars")
            g.attrs["name"] = layer.name
            for i, weight in enumerate(own):
                g.create_dataset(str(i), data=weight.detach().cpu().numpy())
        _paths.weight_paths(model)  # refuses weights outside the walk
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and optimizer.built:
            _write_optimizer(h5, model, optimizer)
    return buffer.getvalue()


def _write_optimizer(h5, model, optimizer) -> None:
    slots = _slots(optimizer)
    g = h5.require_group("optimizer/vars")
    g.attrs["name"] = optimizer.name
    g.create_dataset("0", data=np.asarray(optimizer.iterations, dtype=np.int64))
    g.create_dataset("1", data=np.asarray(optimizer.learning_rate, dtype=np.float32))
    state = optimizer.torch_optimizer.state
    index = 2
    for weight in model.trainable_weights:
        for slot in slots:
            value = state[weight].get(slot) if weight in state else None
            data = torch.zeros_like(weight) if value is None else value
            g.create_dataset(str(index), data=data.detach().cpu().numpy())
            index += 1
