"""Saving and loading: whole models, weights alone, and training checkpoints.

    model.save("model.rnnkit")                    # architecture, weights, compile settings
    model = rnnkit.load_model("model.rnnkit")     # predicts, or fits on from where it stopped
    model.save_weights("model.weights.h5")        # weights only
    model.load_weights("model.weights.h5")        # into a model built like the saved one

`save_model` writes rnnkit's own format for every name but "*.keras", which gets Keras 3's
`.keras` format (rnnkit.keras_io.keras_file), so that `keras.saving.load_model` opens it.
`load_model` tells the formats apart by content: rnnkit's archive, a Keras 3 `.keras` file,
or a Keras 2 / tf.keras HDF5 model (rnnkit.keras_io.legacy_h5); Keras files pass through an
allowlist of the classes rnnkit implements, and nothing named in them is imported or run.
Weights files are rnnkit's whatever the suffix (".weights.h5" holds safetensors too).
An rnnkit model file is a zip archive:

    rnnkit.json            {"format": "rnnkit.model", "format_version": 1,
                            "rnnkit_version": ..., "torch_version": ...}
    config.json            layers.serialize(model): the architecture
    model.safetensors      the weights in model.weights order, keyed by index and path:
                           "0000:simple_rnn/simple_rnn_cell/kernel", ...
    compile.json           optimizer, loss and metrics given to compile()    (if compiled)
    optimizer.safetensors  the optimizer's tensors (Adam's moments, ...)    (if trained)
    optimizer.json         iterations, learning rate, param groups, other optimizer state

A weights file (`save_weights`) is one safetensors file with the keys of model.safetensors
and the metadata `{"format": "rnnkit.weights", "format_version": "1", ...}`; its suffix
does not matter, so ".weights.h5" holds safetensors too. A training checkpoint
(`save_checkpoint`, for BackupAndRestore) is an archive with format "rnnkit.checkpoint":
the weights, the optimizer files, `rng.safetensors` and `checkpoint.json` (epoch, extra,
the random number generators' states); saved by many processes, also each other rank's
`rng.rank{r}.safetensors` and its states in checkpoint.json's `other_ranks`.

Loading runs no code from the file: json and safetensors parse it, never pickle or
torch.load. It stays bounded by the file: only a path to a regular file is opened, members
are read when needed, each within 100x its compressed size (16 MiB whatever the ratio; JSON
at most 256 MiB), and a model's architecture is first built with shape-only weights (torch's
meta device) and checked against the weights the file holds, so that its config cannot
allocate more. A corrupt or hostile file is a ValueError naming it.

Saving writes a temporary file `.{name}.{8 hex}.tmp` beside the target, flushes it to disk
and renames it over the target, so an error or a crash never leaves a half-written file.
Through a symlink it writes the file the link points to; a replaced file keeps its
permission bits; the temporaries of saves killed midway are removed by the next save there.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import random
import re
import reprlib
import secrets
import shutil
import stat
import time
import warnings
import zipfile
import zlib

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

import numpy as np
import safetensors
import safetensors.torch
import torch

from rnnkit import distribution, layers, losses, metrics, optimizers
from rnnkit.layers._base import META_WEIGHTS, Layer, shape_str

FORMAT_VERSION = 1  # raised only when readers of the older version could not read the files
MANIFEST = "rnnkit.json"
MODEL_FORMAT = "rnnkit.model"
WEIGHTS_FORMAT = "rnnkit.weights"
CHECKPOINT_FORMAT = "rnnkit.checkpoint"
_READER_OF = {
    MODEL_FORMAT: "rnnkit.load_model(path)",
    WEIGHTS_FORMAT: "model.load_weights(path)",
    CHECKPOINT_FORMAT: "load_checkpoint(model, path)",
}


# ------------------------------------------------------------------------------- models


@distribution.rank_zero_writes
def save_model(model, filepath, overwrite=True) -> None:
    """Save a model's architecture, weights and, if compiled, how it trains, to one file.

    Args:
        model: a `Sequential` or functional `Model` (or a class of yours with
            get_config/from_config, loaded with `custom_objects=`).
        filepath: the file to write: "model.keras" in Keras 3's format, any other name
            ("model.rnnkit") in rnnkit's.
        overwrite: replace an existing file (default); False raises FileExistsError instead.

    A compiled model also keeps its optimizer, loss and metrics, and the optimizer's state
    once it has trained, so that `load_model(...).fit(...)` continues exactly. What
    `model.metadata` holds (JSON values: a tokenizer's vocabulary, a scaler's settings) is
    saved too and comes back as `load_model(...).metadata`.

    Example:
        >>> import os, tempfile
        >>> from rnnkit import Sequential, load_model
        >>> from rnnkit.layers import Dense
        >>> model = Sequential([Dense(2, input_shape=(3,))])
        >>> path = os.path.join(tempfile.mkdtemp(), "model.rnnkit")
        >>> model.save(path)
        >>> [w.shape for w in load_model(path).get_weights()]
        [(3, 2), (2,)]
    """
    if os.fspath(filepath).lower().endswith(".keras"):
        from rnnkit import keras_io

        return keras_io.save_keras(model, filepath, overwrite)
    config = _to_json(layers.serialize(model), f"model '{model.name}': get_config()")
    compile_config = _compile_config(model) if getattr(model, "compiled", False) else None
    metadata = getattr(model, "metadata", None)
    metadata = _to_json(metadata, f"model '{model.name}': metadata") if metadata else None
    with _zip_writer(filepath, overwrite) as archive:
        archive.writestr(MANIFEST, _manifest(MODEL_FORMAT))
        archive.writestr("config.json", config)
        _write_tensors(archive, "model.safetensors", _weight_tensors(model))
        if compile_config is not None:
            archive.writestr("compile.json", compile_config)
            if model.optimizer.built:
                _write_optimizer(archive, model.optimizer)
        if metadata is not None:
            archive.writestr("metadata.json", metadata)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Rebuild a model that `save_model` (or `model.save`), Keras 3 or Keras 2 wrote.

    Args:
        filepath: the file `model.save(...)` wrote: rnnkit's, a Keras 3 `.keras` file or a
            Keras 2 / tf.keras `.h5` model file.
        custom_objects: `{"ClassName": cls, "function_name": fn}` for layers, losses,
            metrics or optimizers of your own.
        compile: compile the model as it was saved and restore the optimizer's state;
            False returns an uncompiled model.
        safe_mode: accepted for Keras compatibility; loading never runs code from the file.

    Example:
        >>> import os, tempfile
        >>> from rnnkit import Sequential
        >>> from rnnkit.layers import Dense
        >>> model = Sequential([Dense(1, input_shape=(2,))])
        >>> model.compile(optimizer="adam", loss="mse")
        >>> path = os.path.join(tempfile.mkdtemp(), "model.rnnkit")
        >>> model.save(path)
        >>> load_model(path).loss
        MeanSquaredError(name='mse')
    """
    del safe_mode
    custom_objects = custom_objects or {}
    kind = _file_kind(filepath)
    if kind != "rnnkit":
        from rnnkit import keras_io

        load = keras_io.load_keras if kind == "keras" else keras_io.load_legacy_h5
        return load(_existing_file(filepath), custom_objects, compile)
    with _open_archive(filepath, (MODEL_FORMAT,)) as archive:
        path = archive.path
        config = archive.json("config.json")
        _check_dtypes(path, config)
        model = _model_sized_by_file(
            path, config, archive.tensors("model.safetensors"), custom_objects
        )
        if compile and "compile.json" in archive:
            _restore_compile(model, archive, custom_objects)
        if "metadata.json" in archive:
            model.metadata = _metadata(archive)
    return model


def _file_kind(filepath) -> str:
    """ "keras" for a Keras 3 .keras zip, "h5" for an HDF5 file, else "rnnkit" (by content)."""
    path = _existing_file(filepath)
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "h5"
    if not head.startswith(b"PK") or not zipfile.is_zipfile(path):
        return "rnnkit"
    with contextlib.suppress(zipfile.BadZipFile, OSError):
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
        if MANIFEST not in names and {"config.json", "model.weights.h5"} <= names:
            return "keras"
    return "rnnkit"


def _model_sized_by_file(path: str, config, weights: dict, custom_objects: dict):
    """The model of config.json with `weights` in it, built for real only once they fit.

    The architecture is first built with shape-only weights (`_meta_weights`) and compared
    with the file's: a 4.7 KB file whose config asks for SimpleRNN(60000) is refused there,
    instead of allocating 14 GB. A config cannot allocate more than its file holds.
    """
    with _meta_weights():
        skeleton = _rebuild(path, config, custom_objects)
    if skeleton.built or weights:  # an unbuilt model was saved without weights
        _checked_weights(skeleton, weights, f"'{path}'")
    model = _rebuild(path, config, custom_objects)
    if model.built or weights:
        _assign_weights(model, weights, f"'{path}'")
    return model


def _rebuild(path: str, config, custom_objects: dict):
    try:
        return _deserialize_model(config, custom_objects)
    except (KeyError, TypeError, ValueError, IndexError, RecursionError, RuntimeError) as err:
        # RuntimeError: torch's, e.g. weights of an integer dtype, which cannot train
        raise ValueError(f"'{path}': cannot rebuild the model from config.json: {err}") from err


@contextlib.contextmanager
def _meta_weights():
    """Layers built inside get weights on torch's meta device: shapes, no memory, no values."""
    token = META_WEIGHTS.set(True)
    try:
        yield
    finally:
        META_WEIGHTS.reset(token)


def _check_dtypes(path: str, config) -> None:
    """Refuse a layer dtype torch has no tensors of ("object", "str") with the file's name."""
    pending = [config]  # a loop, not recursion: the JSON may be nested deep
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            dtype = value.get("dtype")
            if isinstance(dtype, str) and not isinstance(getattr(torch, dtype, None), torch.dtype):
                raise ValueError(
                    f"'{path}': config.json gives layer {reprlib.repr(value.get('name'))} dtype "
                    f"{reprlib.repr(dtype)}, which is no torch dtype; the file is corrupt or was "
                    "edited. Layers take dtypes such as 'float32' or 'float64'."
                )
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


def _metadata(archive) -> dict:
    metadata = archive.json("metadata.json")
    if not isinstance(metadata, dict):
        raise ValueError(
            f"'{archive.path}': metadata.json holds {type(metadata).__name__}, not an object."
        )
    return metadata


def _deserialize_model(config, custom_objects: dict):
    """`layers.deserialize`, except that a model's from_config gets `custom_objects` too.

    `layers.deserialize` calls `from_config(config)`, so the layers inside a Sequential or
    functional model would not find classes of the user's; the models' from_config takes
    custom_objects for exactly that.
    """
    from rnnkit import models  # here: rnnkit.models imports this module

    name = config.get("class_name") if isinstance(config, dict) else None
    classes = {"Sequential": models.Sequential, "Functional": models.Functional}
    cls = custom_objects.get(name) or classes.get(name)
    if cls is not None and "custom_objects" in inspect.signature(cls.from_config).parameters:
        return cls.from_config(dict(config.get("config", {})), custom_objects)
    return layers.deserialize(config, custom_objects)


# ------------------------------------------------------------------------------ weights


@distribution.rank_zero_writes
def save_weights(model, filepath, overwrite=True) -> None:
    """Save only the weights, as one safetensors file (whatever the suffix, ".weights.h5" too).

    Keys are `"0000:simple_rnn/simple_rnn_cell/kernel"`: the index in `model.weights`, then
    the weight's path. `safetensors.torch.load_file(filepath)` reads the file anywhere.
    """
    _require_built(model, "save its weights")
    metadata = {**_manifest_dict(WEIGHTS_FORMAT), "format_version": str(FORMAT_VERSION)}
    data = safetensors.torch.save(_weight_tensors(model), metadata=metadata)
    with _atomic_file(filepath, overwrite) as f:
        f.write(data)


def load_weights(model, filepath) -> None:
    """Load weights from `save_weights`, or from a model file of `save_model`, by order.

    The model must be built and have as many weights of the same shapes as the file, in
    the same order; names are not compared, so the layers may be named differently.
    """
    path = _existing_file(filepath)
    _require_built(model, f"load the weights of '{path}'")
    if zipfile.is_zipfile(path):
        with _open_archive(path, (MODEL_FORMAT, CHECKPOINT_FORMAT)) as archive:
            weights = archive.tensors("model.safetensors")
    else:
        with open(path, "rb") as f:
            data = f.read()
        if not _looks_like_safetensors(data):
            raise ValueError(
                f"'{path}' is neither an rnnkit weights file (from model.save_weights) nor an "
                f"rnnkit model file (from model.save). {_what_it_looks_like(data) or ''}".strip()
            )
        weights, metadata = _parse_safetensors(data, f"'{path}'")
        if metadata.get("format") != WEIGHTS_FORMAT:
            raise ValueError(
                f"'{path}' is a safetensors file, but not one rnnkit wrote (its metadata has "
                f"format {metadata.get('format')!r}, not {WEIGHTS_FORMAT!r}). Load weights of "
                "another origin with model.set_weights([...]) in model.weights order."
            )
        _check_version(f"'{path}'", metadata.get("format_version"), metadata)
    _assign_weights(model, weights, f"'{path}'")


def _weight_names(model) -> list[str]:
    """Keras-style paths, `simple_rnn/simple_rnn_cell/kernel`, in `model.weights` order."""
    names = []
    for dotted, _ in model.named_parameters():
        *parents, leaf = dotted.split(".")
        module, path = model, []
        for part in parents:
            module = module.get_submodule(part)
            if isinstance(module, Layer):
                path.append(module.name)
        names.append("/".join([*path, leaf]))
    return names


def _weight_tensors(model) -> dict[str, torch.Tensor]:
    return {
        f"{i:04d}:{name}": weight.detach().cpu().contiguous()
        for i, (name, weight) in enumerate(zip(_weight_names(model), model.weights))
    }


def _assign_weights(model, tensors: dict, where: str) -> None:
    """Check count and shapes against `model.weights`, then copy the tensors in by index."""
    saved = _checked_weights(model, tensors, where)
    with torch.no_grad():
        for param, (_, value) in zip(model.weights, saved):
            param.copy_(value.to(param.dtype))


def _checked_weights(model, tensors: dict, where: str) -> list[tuple[str, torch.Tensor]]:
    """`tensors` in order, once their count and shapes are those of `model.weights`."""
    _require_built(model, f"load the weights of {where}")
    saved = _in_order(tensors, where)
    own, names = model.weights, _weight_names(model)
    fix = (
        " The file was saved from another architecture: build the model with the same "
        "layers, units and input features as the saved one."
    )
    if len(saved) != len(own):
        raise ValueError(
            f"{where} holds {len(saved)} weight(s), but model '{model.name}' has {len(own)}." + fix
        )
    wrong = [
        f"weight {i} is {shape_str(tuple(value.shape))} in the file ({name}) but "
        f"{shape_str(tuple(param.shape))} in the model ({names[i]})"
        for i, ((name, value), param) in enumerate(zip(saved, own))
        if tuple(value.shape) != tuple(param.shape)
    ]
    if wrong:
        raise ValueError(f"{where} does not fit model '{model.name}': {'; '.join(wrong)}." + fix)
    return saved


def _in_order(tensors: dict, where: str) -> list[tuple[str, torch.Tensor]]:
    """`{"0001:b": t1, "0000:a": t0}` -> `[("a", t0), ("b", t1)]`."""
    indexed = {}
    for key, value in tensors.items():
        index, colon, name = key.partition(":")
        if not colon or not index.isdigit():
            raise ValueError(
                f"{where}: tensor {key!r} is not named 'index:path' as rnnkit names weights, "
                "so the file was not written by rnnkit's save_weights or save."
            )
        indexed[int(index)] = (name, value)
    if sorted(indexed) != list(range(len(indexed))):
        raise ValueError(
            f"{where}: the weights are not numbered 0..{len(indexed) - 1}; the file is corrupt."
        )
    return [indexed[i] for i in range(len(indexed))]


def _require_built(model, action: str) -> None:
    if not model.built:
        raise ValueError(
            f"Model '{model.name}' is not built, so its weights do not exist yet and it cannot "
            f"{action}. Build it first: call it once on a batch of data, call "
            "model.build((None, timesteps, features)), or give its first layer "
            "input_shape=(timesteps, features)."
        )


# ------------------------------------------------------------ compile settings, optimizer


def _compile_config(model) -> str:
    loss = model.loss
    loss_entry = {"class_name": type(loss).__name__, "config": loss.get_config()}
    if type(loss) is losses.LossFunctionWrapper:  # a function of the user's, found by name
        loss_entry["function"] = loss.fn.__name__
    metric_entries = _metric_entries(model, model.metric_identifiers)
    weighted_entries = _metric_entries(model, getattr(model, "weighted_metric_identifiers", []))
    optimizer = model.optimizer
    config = {
        "optimizer": {"class_name": type(optimizer).__name__, "config": optimizer.get_config()},
        "loss": loss_entry,
        "metrics": metric_entries,
        "weighted_metrics": weighted_entries,
    }
    return _to_json(config, f"model '{model.name}': the compile() settings")


def _metric_entry(identifier):
    """What compile.json keeps of a `metrics=[...]` entry; None when JSON cannot hold it."""
    if isinstance(identifier, str):
        return identifier
    if isinstance(identifier, dict):
        with contextlib.suppress(TypeError, ValueError):
            json.dumps(identifier)
            return identifier
        return None
    if isinstance(identifier, metrics.Metric) and type(identifier) is not (
        metrics.MeanMetricWrapper
    ):
        return {"class_name": type(identifier).__name__, "config": identifier.get_config()}
    return None


def _metric_entries(model, identifiers) -> list:
    entries = []
    for identifier in identifiers:
        entry = _metric_entry(identifier)
        if entry is None:
            warnings.warn(
                f"save_model: metric {identifier!r} of model '{model.name}' is a Python object "
                "that JSON cannot hold, so the loaded model is compiled without it. Compile the "
                "loaded model again to use it, or name the metric by a string.",
                stacklevel=4,
            )
        else:
            entries.append(entry)
    return entries


def _restore_compile(model, archive, custom_objects: dict) -> None:
    path = archive.path
    config = archive.json("compile.json")
    try:
        optimizer = _from_entry(config["optimizer"], custom_objects, optimizers.get)
        loss = _loss_from_entry(config["loss"], custom_objects)
        metric_ids, weighted_ids = (
            [
                _from_entry(m, custom_objects, lambda entry: entry) if isinstance(m, dict) else m
                for m in config.get(key, [])
            ]
            for key in ("metrics", "weighted_metrics")
        )
        model.compile(
            optimizer=optimizer,
            loss=loss,
            metrics=metric_ids,
            weighted_metrics=weighted_ids or None,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"'{path}': cannot restore the compile() settings from compile.json: {err}. Pass "
            "your own classes and functions as custom_objects={'Name': obj}, or load with "
            "compile=False and call model.compile(...) yourself."
        ) from err
    if "optimizer.json" in archive:
        _restore_optimizer(model, archive)


def _from_entry(entry: dict, custom_objects: dict, get):
    """`{"class_name", "config"}` -> an object: a class in custom_objects first, else `get`."""
    cls = custom_objects.get(entry["class_name"])
    if cls is not None:
        return cls.from_config(entry["config"])
    return get({"class_name": entry["class_name"], "config": entry["config"]})


def _loss_from_entry(entry: dict, custom_objects: dict):
    if "function" not in entry:
        return _from_entry(entry, custom_objects, losses.get)
    name = entry["function"]
    if name not in custom_objects:
        raise ValueError(
            f"the loss is your function {name!r}; pass custom_objects={{'{name}': {name}}}"
        )
    return losses.LossFunctionWrapper(custom_objects[name], **entry["config"])


def _write_optimizer(archive, optimizer) -> None:
    """Tensors of the state into optimizer.safetensors, all else into optimizer.json."""
    state = optimizer.state_dict()
    torch_state = state.pop("torch_optimizer")
    tensors, other = {}, {}
    for index, values in torch_state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}/{key}"] = value.detach().cpu().contiguous()
            else:
                other.setdefault(str(index), {})[key] = value
    state.update(param_groups=torch_state["param_groups"], state=other)
    _write_tensors(archive, "optimizer.safetensors", tensors)
    archive.writestr("optimizer.json", _to_json(state, f"optimizer '{optimizer.name}': its state"))


def _restore_optimizer(model, archive) -> None:
    """Load optimizer.json/.safetensors into `model.optimizer`, building it on the model."""
    path = archive.path
    info = archive.json("optimizer.json")
    tensors = archive.tensors("optimizer.safetensors")
    try:
        state = {}
        for key, value in tensors.items():
            index, _, name = key.partition("/")
            state.setdefault(int(index), {})[name] = value
        _check_optimizer_tensors(model, state)
        for index, values in info["state"].items():
            state.setdefault(int(index), {}).update(values)
        state_dict = {
            "optimizer": info["optimizer"],
            "iterations": info["iterations"],
            "learning_rate": info["learning_rate"],
            "torch_optimizer": {"state": state, "param_groups": info["param_groups"]},
        }
        model.optimizer.build(model.trainable_weights)
        model.optimizer.load_state_dict(state_dict)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(
            f"'{path}': the optimizer state does not fit model '{model.name}' and its "
            f"{type(model.optimizer).__name__} ({err}). Compile the model with the optimizer "
            "it was saved with, or load the weights alone with model.load_weights(path)."
        ) from err


def _check_optimizer_tensors(model, state: dict) -> None:
    """Each saved tensor (Adam's moments, ...) belongs to a trainable weight and has its shape
    (or is a scalar): torch would load a wrong one, and the first step would fail inside it."""
    weights = model.trainable_weights
    for index, values in state.items():
        if not 0 <= index < len(weights):
            raise ValueError(
                f"optimizer.safetensors holds state of weight {index}, and the model has "
                f"{len(weights)} trainable weight(s)"
            )
        expected = tuple(weights[index].shape)
        for name, value in values.items():
            if value.ndim and tuple(value.shape) != expected:
                raise ValueError(
                    f"optimizer.safetensors holds {index}/{name} of shape "
                    f"{shape_str(tuple(value.shape))}, but weight {index} is {shape_str(expected)}"
                )


# ---------------------------------------------------------------------------- checkpoints


def save_checkpoint(model, path, epoch, extra=None) -> None:
    """Save what resuming training needs to repeat the uninterrupted run exactly.

    That is the weights, the optimizer's state (if it has one), `epoch`, `extra` (anything
    JSON holds) and the state of every random number generator training draws from:
    torch's global CPU (and CUDA) generator, numpy's and Python's global ones, and the
    `torch.Generator` of each seeded layer (`layer._generator`, e.g. `Dropout(seed=...)`).

    On many processes (`rnnkit.distribution`) every process must call it: rank 0 writes
    one file holding every process's random state (each draws its own dropout masks, on
    slices of different sizes), and all return once it is written.
    """
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        raise TypeError(f"save_checkpoint: epoch must be an integer; got {epoch!r}.")
    try:
        json.dumps(extra)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"save_checkpoint: extra is stored as JSON, so it may hold only numbers, strings, "
            f"lists and dicts; {err}."
        ) from err
    states = distribution.gather_to_writer(_rng_state(model))  # None except on rank 0
    try:
        if states is not None:
            _write_checkpoint(model, path, epoch, extra, states)
    finally:
        distribution.barrier()  # none reads the file before it is complete


def _write_checkpoint(model, path, epoch, extra, states) -> None:
    """`states`: each rank's `_rng_state`; rank 0's in `rng.safetensors` and checkpoint.json
    as on one process, rank r's in `rng.rank{r}.safetensors` and `other_ranks[r - 1]`."""
    rng_tensors, rng_info = states[0]
    other_ranks = [info for _, info in states[1:]]
    info = {"epoch": epoch, "extra": extra, **rng_info}
    if other_ranks:
        info["other_ranks"] = other_ranks
    info = _to_json(info, "the checkpoint")
    with _zip_writer(path, True) as archive:
        archive.writestr(MANIFEST, _manifest(CHECKPOINT_FORMAT))
        _write_tensors(archive, "model.safetensors", _weight_tensors(model))
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and optimizer.built:
            _write_optimizer(archive, optimizer)
        _write_tensors(archive, "rng.safetensors", rng_tensors)
        for r, (tensors, _) in enumerate(states[1:], start=1):
            _write_tensors(archive, f"rng.rank{r}.safetensors", tensors)
        archive.writestr("checkpoint.json", info)


def load_checkpoint(model, path) -> dict:
    """Restore what `save_checkpoint` saved into `model`; returns `{"epoch", "extra"}`.

    The model must be built like the saved one and, if the checkpoint holds optimizer
    state, compiled with the same optimizer.
    """
    with _open_archive(path, (CHECKPOINT_FORMAT,)) as archive:
        path = archive.path
        info = archive.json("checkpoint.json")
        # This process's own random state, if it was saved; else (one process, or fewer
        # saved than run now) rank 0's.
        r = distribution.rank()
        if 0 < r <= len(info.get("other_ranks", [])):
            rng_tensors = archive.tensors(f"rng.rank{r}.safetensors")
            rng_info = info["other_ranks"][r - 1]
        else:
            rng_tensors, rng_info = archive.tensors("rng.safetensors"), info
        _assign_weights(model, archive.tensors("model.safetensors"), f"'{path}'")
        if "optimizer.json" in archive:
            if getattr(model, "optimizer", None) is None:
                raise ValueError(
                    f"'{path}' holds optimizer state, but model '{model.name}' is not compiled. "
                    "Compile it as it was when the checkpoint was saved, e.g. "
                    "model.compile(optimizer='adam', loss='mse'), then load the checkpoint."
                )
            _restore_optimizer(model, archive)
    try:
        _set_rng_state(model, rng_tensors, rng_info, f"'{path}'")
        return {"epoch": info["epoch"], "extra": info["extra"]}
    except (KeyError, TypeError, RuntimeError) as err:
        raise ValueError(
            f"'{path}': checkpoint.json or rng.safetensors is incomplete ({err!r}); the "
            "checkpoint is corrupt."
        ) from err


def _rng_state(model) -> tuple[dict, dict]:
    """Generator states: tensors for safetensors, the rest as JSON."""
    tensors = {"torch.cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch.cuda.{i}"] = state
    devices = {}  # module path -> device of its generator; None: not created yet
    for module_path, module in model.named_modules():
        if not hasattr(module, "_generator"):
            continue
        generator = module._generator
        devices[module_path] = None if generator is None else str(generator.device)
        if generator is not None:
            tensors[f"generator:{module_path}"] = generator.get_state()
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    numpy_state = {
        "bit_generator": name,
        "keys": keys.tolist(),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached_gaussian),
    }
    version, internal, gauss_next = random.getstate()
    python_state = {"version": version, "internal": list(internal), "gauss_next": gauss_next}
    info = {"numpy_random": numpy_state, "python_random": python_state, "generators": devices}
    return tensors, info


def _set_rng_state(model, tensors: dict, info: dict, where: str) -> None:
    modules = dict(model.named_modules())
    unknown = [p for p in info["generators"] if not hasattr(modules.get(p), "_generator")]
    if unknown:
        raise ValueError(
            f"{where} holds the random generator of layer path {unknown[0]!r}, which model "
            f"'{model.name}' does not have; the checkpoint is from another architecture."
        )
    torch.set_rng_state(tensors["torch.cpu"])
    cuda_count = sum(key.startswith("torch.cuda.") for key in tensors)
    cuda = [tensors[f"torch.cuda.{i}"] for i in range(cuda_count)]
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)
    elif cuda:
        warnings.warn(
            f"{where} holds the random state of {len(cuda)} CUDA device(s), and this machine "
            f"has {torch.cuda.device_count() if torch.cuda.is_available() else 0}; random "
            "numbers drawn on the GPU will not repeat the interrupted run.",
            stacklevel=3,
        )
    state = info["numpy_random"]
    np.random.set_state(
        (
            state["bit_generator"],
            np.asarray(state["keys"], dtype=np.uint32),
            state["pos"],
            state["has_gauss"],
            state["cached_gaussian"],
        )
    )
    state = info["python_random"]
    random.setstate((state["version"], tuple(state["internal"]), state["gauss_next"]))
    for module_path, device in info["generators"].items():
        generator = None
        if device is not None:
            generator = torch.Generator(device=device)
            generator.set_state(tensors[f"generator:{module_path}"])
        modules[module_path]._generator = generator


# ---------------------------------------------------------------------- writing, atomically


@contextlib.contextmanager
def _atomic_file(filepath, overwrite: bool):
    """A binary file that replaces `filepath` only once it is complete and on disk.

    Through a symlink it replaces the file the link points to (the link stays a link); a
    replaced file keeps its permission bits, a new one gets 0o666 less the umask.
    """
    path = os.fspath(filepath)
    target = os.path.realpath(path)
    _check_destination(path, target, overwrite)
    mode = _permission_bits(target)
    _remove_abandoned_temporaries(target)
    temporary, f = _create_temporary(path, target, private=mode is not None)
    try:
        _lock(f.fileno(), quietly=True)
        if mode is not None:
            os.chmod(temporary, mode)
        yield f
        f.flush()
        os.fsync(f.fileno())
        if os.name == "nt":  # Windows renames no open file; elsewhere the rename is under lock
            f.close()
        os.replace(temporary, target)
    except BaseException:  # KeyboardInterrupt too: no temporary is left behind
        f.close()  # before removing it: Windows deletes no open file
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise
    finally:
        f.close()
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX)
        dir_fd = os.open(os.path.dirname(target), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _check_destination(path: str, target: str, overwrite: bool) -> None:
    directory = os.path.dirname(target)
    if os.path.isdir(path):
        raise ValueError(f"Cannot save to '{path}': it is a directory. Give a file name.")
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"Cannot save to '{path}': the directory '{directory}' does not exist. Create it "
            f"first: os.makedirs({directory!r}, exist_ok=True)."
        )
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"'{path}' exists; pass overwrite=True to replace it.")


def _permission_bits(target: str) -> int | None:
    """The mode bits of the file a save replaces; None when there is none yet."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        return None


def _create_temporary(path: str, target: str, private: bool):
    """Open a new `.{name}.{8 hex}.tmp` beside `target`: `(its path, the open binary file)`.

    `private` (when replacing a file): created 0o600, so that the content of a 0600 file is
    never readable by others while it is written; the caller then gives it the old bits.
    """
    directory, name = os.path.split(target)
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(temporary, flags, 0o600 if private else 0o666)  # less the umask
    except OSError as err:  # the message names the file asked for, not the hidden temporary
        raise OSError(
            err.errno,
            f"Cannot save '{path}': cannot create a file in the folder '{directory}' "
            f"({err.strerror or err}). Save it into a folder you can write to, or make this "
            "one writable.",
        ) from err
    return temporary, os.fdopen(fd, "wb")


def _remove_abandoned_temporaries(target: str) -> None:
    """Delete the temporaries that saves of `target` killed midway (SIGKILL, power cut) left.

    Only names `.{name}.{8 hex}.tmp` are candidates. Another process may be saving the same
    path right now, so a candidate is abandoned only when no process holds the lock its
    writer takes from creation to rename (flock: the kernel drops it when the writer dies,
    however it dies), and it is older than `_ABANDONED_AFTER_S` (a writer creates, then
    locks). Without flock (Windows), an open file cannot be deleted, which spares a live
    writer's temporary just the same.
    """
    directory, name = os.path.split(target)
    pattern = re.compile(rf"\.{re.escape(name)}\.[0-9a-f]{{8}}\.tmp")
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in filter(pattern.fullmatch, entries):
        candidate = os.path.join(directory, entry)
        with contextlib.suppress(OSError):  # gone already, or not ours to delete: leave it
            if _abandoned(candidate):
                os.remove(candidate)


_ABANDONED_AFTER_S = 5.0


def _abandoned(temporary: str) -> bool:
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temporary, flags)  # non-blocking: a FIFO of that name must not hang a save
    try:
        info = os.fstat(fd)
        old = time.time() - info.st_mtime > _ABANDONED_AFTER_S
        return stat.S_ISREG(info.st_mode) and old and _lock(fd)
    finally:
        os.close(fd)  # a lock just taken goes with it; the writer is gone, so nobody waits


def _lock(fd: int, quietly: bool = False) -> bool:
    """Take the exclusive flock on `fd` without waiting; False when another process holds it.

    `quietly`: a file system without flock raises nothing (the writer saves unlocked; the
    cleaners on it then never find its temporaries abandoned).
    """
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        if not quietly:
            raise
    return True


def atomic_write(filepath, data: bytes) -> None:
    """Write `data` to `filepath` so that it is either the old file or the whole new one."""
    with _atomic_file(filepath, overwrite=True) as f:
        f.write(data)


def write_outputs(directory, model, scores: dict, files: dict | None = None) -> dict[str, str]:
    """What a training command leaves behind: `model.rnnkit`, `metrics.json` (`scores`), and
    any other `files` (`{"plot": ("forecast.png", png)}`) in `directory`: all of them or none,
    as `write_folder` writes them.

    Returns `{"model": path, "metrics": path, **{key: path}}`.
    """
    encoded = json.dumps(scores, indent=2, default=str).encode()  # fails before any write
    return write_folder(directory, {"metrics": ("metrics.json", encoded), **(files or {})}, model)


def write_folder(directory, files: dict, model=None) -> dict[str, str]:
    """`files` (`{key: (name, bytes)}`) and, unless `model` is None, `model.rnnkit` into
    `directory`: all of them or none.

    Everything is written into a hidden folder first and moved into place only once complete,
    so a full disk or an error partway leaves `directory` as it was. A new `directory` appears
    whole, by one rename. An existing one is never swapped or emptied (it may be `.`, a link,
    a mount point, or hold files of yours): each new file replaces its namesake by one atomic
    rename, and everything else in the folder stays as it was.

    Returns `{"model": path, **{key: path}}` (no "model" when `model` is None).

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> paths = write_folder(folder + "/report", {"notes": ("notes.txt", b"h_t")})
        >>> open(paths["notes"]).read()
        'h_t'
    """
    names = {"model": "model.rnnkit"} if model is not None else {}
    names |= {key: name for key, (name, _) in files.items()}
    target = os.fspath(directory)
    if os.path.exists(target) and not os.path.isdir(target):
        raise ValueError(f"Cannot write the outputs to '{target}': it is a file. Give a folder.")
    exists = os.path.isdir(target)
    # Staged on the file system the files end up on, where a rename is atomic.
    home = target if exists else os.path.dirname(os.path.abspath(target))
    staging = os.path.join(home, f".rnnkit-outputs.{secrets.token_hex(4)}.tmp")
    try:
        _write_staged(staging, model, files, target)
        if exists:
            for name in names.values():
                os.replace(os.path.join(staging, name), os.path.join(target, name))
        else:
            os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # the half-written run, if it was not moved
    return {key: os.path.join(target, name) for key, name in names.items()}


def _write_staged(staging: str, model, contents: dict, target: str) -> None:
    """The outputs into the new folder `staging`; an OSError names `target`, not `staging`."""
    try:
        os.makedirs(os.path.dirname(staging), exist_ok=True)
        os.mkdir(staging)
        if model is not None:
            model.save(os.path.join(staging, "model.rnnkit"))
        for name, data in contents.values():
            atomic_write(os.path.join(staging, name), data)
    except OSError as err:
        if err.errno is None:  # one of rnnkit's own messages, which names its file already
            raise
        raise OSError(
            err.errno,
            f"Cannot write the outputs to '{target}': {err.strerror}. Nothing was "
            "written, the folder is as it was; free some space, or choose a folder you can "
            "write to.",
        ) from err


@contextlib.contextmanager
def _zip_writer(filepath, overwrite: bool):
    with (
        _atomic_file(filepath, overwrite) as f,
        zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        yield archive


def _write_tensors(archive, name: str, tensors: dict) -> None:
    # Stored, not deflated: float weights barely compress, and it keeps saving fast.
    data = safetensors.torch.save(tensors)
    archive.writestr(name, data, compress_type=zipfile.ZIP_STORED)


def _manifest_dict(file_format: str) -> dict:
    import rnnkit  # here: rnnkit/__init__ is still running when this module is imported

    return {
        "format": file_format,
        "format_version": FORMAT_VERSION,
        "rnnkit_version": rnnkit.__version__,
        "torch_version": torch.__version__,
    }


def _manifest(file_format: str) -> str:
    return json.dumps(_manifest_dict(file_format), indent=2)


def _to_json(value, what: str) -> str:
    try:
        return json.dumps(value, indent=2)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"Cannot save {what}: {err}. Saved settings must be numbers, strings, lists and "
            "dicts; use names, rnnkit classes and rnnkit.schedules rather than Python functions "
            "(or save the weights alone with model.save_weights(path))."
        ) from err


# ------------------------------------------------------------------------------- reading


def _existing_file(filepath) -> str:
    path = os.fspath(filepath)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No such file: '{path}' (working directory '{os.getcwd()}'). Check the path, or "
            "save the model first with model.save(path)."
        )
    if os.path.isdir(path):
        raise ValueError(
            f"'{path}' is a directory; rnnkit saves a model as one file written by "
            "model.save('model.rnnkit'). It cannot read Keras or TensorFlow SavedModel folders."
        )
    if not stat.S_ISREG(os.stat(path).st_mode):  # /dev/zero never ends, a FIFO may never open
        raise ValueError(
            f"'{path}' is not a regular file (a device, a pipe or a socket); rnnkit reads the "
            "files model.save(path) writes. Copy the data into a file and load that."
        )
    return path


# What one member may decompress to: a small file must not claim gigabytes of memory (a
# 1 MB zip can hold a 1 GiB member of zeros). The size a member's header claims is checked
# first, then the reading itself stops one byte past the limit, whatever the header said.
_SMALL_MEMBER_BYTES = 16 * 2**20  # read whatever its compression ratio: memory stays small
_MEMBER_RATIO = 100  # rnnkit's JSON deflates 5-30x, its tensors are stored (1x); zip bombs ~1000x
_JSON_MEMBER_BYTES = 256 * 2**20  # json.loads of more would take gigabytes


class _Archive:
    """An open rnnkit zip file: members are read when asked for, each within its cap."""

    def __init__(self, path: str, zf: zipfile.ZipFile):
        self.path = path
        self._zip = zf
        self._size = os.path.getsize(path)
        self._members = {info.filename: info for info in zf.infolist()}

    def __contains__(self, name: str) -> bool:
        return name in self._members

    def names(self) -> list[str]:
        return sorted(self._members)

    def read(self, name: str) -> bytes:
        if name not in self._members:
            raise ValueError(f"'{self.path}' has no {name}: the file is incomplete. Save it again.")
        info = self._members[name]
        limit = self._limit(info)
        if info.file_size > limit:
            raise self._too_big(name, limit)
        try:
            data = self._read_at_most(info, limit + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as err:
            raise ValueError(  # RuntimeError: encrypted; NotImplementedError: unknown method
                f"'{self.path}': {name} cannot be read ({err}); the file is corrupt. Save it again."
            ) from err
        if len(data) > limit:
            raise self._too_big(name, limit)
        return data

    def _read_at_most(self, info: zipfile.ZipInfo, size: int) -> bytes:
        """The member's first `size` bytes, 1 MiB at a time: one read(size) lets zlib inflate
        `size` bytes at once, before zipfile cuts them to the size its header claims."""
        chunks, left = [], size
        with self._zip.open(info) as member:
            while left > 0 and (chunk := member.read(min(left, 2**20))):
                chunks.append(chunk)
                left -= len(chunk)
        return b"".join(chunks)

    def json(self, name: str):
        return _parse_json(self.read(name), f"'{self.path}': {name}")

    def tensors(self, name: str) -> dict[str, torch.Tensor]:
        return _parse_safetensors(self.read(name), f"'{self.path}' ({name})")[0]

    def _limit(self, info: zipfile.ZipInfo) -> int:
        compressed = min(info.compress_size, self._size)  # a header may lie; the file cannot
        limit = max(_SMALL_MEMBER_BYTES, _MEMBER_RATIO * compressed)
        return min(limit, _JSON_MEMBER_BYTES) if info.filename.endswith(".json") else limit

    def _too_big(self, name: str, limit: int) -> ValueError:
        return ValueError(
            f"'{self.path}': {name} decompresses to more than {limit:,} bytes, the most a "
            f"member of this {self._size:,}-byte file may take; the file is corrupt or was made "
            "to exhaust memory. Load only files you trust, or save the model again."
        )


@contextlib.contextmanager
def _open_archive(filepath, formats: tuple[str, ...]):
    """Open an rnnkit zip file as an `_Archive` and check that its manifest names one of
    `formats`. Members are read from it later, on demand, so it stays open meanwhile."""
    path = _existing_file(filepath)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise _not_an_archive(path, err) from err
    with zf:
        archive = _Archive(path, zf)
        _check_manifest(archive, formats)
        yield archive


def _not_an_archive(path: str, err: Exception) -> ValueError:
    with open(path, "rb") as f:
        head = f.read(4096)
    looks_like = _what_it_looks_like(head)
    if looks_like and not head.startswith(b"PK"):  # another kind of file, complete
        return ValueError(f"'{path}' is not an rnnkit model file. {looks_like}")
    return ValueError(
        f"'{path}' is not an rnnkit file: it is not a zip archive, or it is truncated "
        f"({err}). "
        + (looks_like or "rnnkit model files are zip archives written by model.save(path).")
    )


def _check_manifest(archive: _Archive, formats: tuple[str, ...]) -> None:
    path = archive.path
    if MANIFEST not in archive:
        if {"metadata.json", "model.weights.h5"} & set(archive.names()):
            raise ValueError(
                f"'{path}' is a Keras .keras file (it holds {', '.join(archive.names())} and "
                f"no {MANIFEST}), which this function does not read. Load the whole model "
                "with rnnkit.load_model(path), then copy its weights if you need them in "
                "another model: model.set_weights(loaded.get_weights())."
            )
        raise ValueError(
            f"'{path}' is a zip archive without {MANIFEST}, so rnnkit did not write it; rnnkit "
            "reads only files written by model.save, model.save_weights and save_checkpoint."
        )
    manifest = archive.json(MANIFEST)
    file_format = manifest.get("format") if isinstance(manifest, dict) else None
    if not isinstance(file_format, str) or file_format not in formats:
        wanted = " or ".join(repr(f) for f in formats)
        reader = _READER_OF.get(file_format) if isinstance(file_format, str) else None
        hint = (
            f" Read it with {reader}."
            if reader
            else " It was not written by rnnkit's save functions."
        )
        raise ValueError(
            f"'{path}' holds format {reprlib.repr(file_format)}, and this function reads "
            f"{wanted}.{hint}"
        )
    _check_version(f"'{path}'", manifest.get("format_version"), manifest)


def _check_version(where: str, version, manifest: dict) -> None:
    # safetensors metadata are strings; a longer one is no version (and int() of over 4300
    # digits raises)
    if isinstance(version, str) and version.isdigit() and len(version) < 10:
        version = int(version)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(
            f"{where}: format_version {reprlib.repr(version)} is not valid; the file is corrupt."
        )
    if version > FORMAT_VERSION:
        import rnnkit

        written_by = str(manifest.get("rnnkit_version", "unknown"))[:40]
        raise ValueError(
            f"{where} was written in format version {reprlib.repr(version)} by a newer rnnkit "
            f"({written_by}); this rnnkit ({rnnkit.__version__}) "
            f"reads versions up to {FORMAT_VERSION}. Upgrade: pip install -U rnnkit."
        )


def _parse_json(data: bytes, where: str):
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        # ValueError: JSONDecodeError, and a number of over 4300 digits; RecursionError:
        # arrays or objects nested thousands deep
        raise ValueError(
            f"{where} is not valid JSON ({err}); the file is corrupt. Save it again."
        ) from err


def _parse_safetensors(data: bytes, where: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and metadata of a safetensors file: an 8-byte header size, a JSON header, data."""
    try:
        if len(data) < 8:
            raise ValueError(f"{len(data)} bytes, shorter than the 8-byte header size")
        header_size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_size].decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        tensors = safetensors.torch.load(data)
    except (ValueError, UnicodeDecodeError, RecursionError, safetensors.SafetensorError) as err:
        raise ValueError(
            f"{where} is not a valid safetensors file: it is corrupt or truncated ({err}). "
            "Save it again."
        ) from err
    metadata = header.get("__metadata__")
    return tensors, metadata if isinstance(metadata, dict) else {}


def _looks_like_safetensors(data: bytes) -> bool:
    return len(data) > 8 and data[8:9] == b"{"


def _what_it_looks_like(head: bytes) -> str | None:
    """A sentence on what a file that rnnkit cannot read seems to be, for error messages."""
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return (
            "It is an HDF5 file, as Keras writes for .h5 models and .weights.h5 weights; "
            "rnnkit.load_model(path) reads a Keras 2 .h5 model, and rnnkit's weights files "
            "are the ones its own model.save_weights writes."
        )
    if head.startswith(b"PK"):
        return (
            "It starts like a zip archive but is cut short or damaged: if it was copied or "
            "downloaded, check that the copy is complete, or save the model again."
        )
    if _looks_like_safetensors(head):
        return (
            "It is a safetensors weights file; load it with model.load_weights(path) into a "
            "model built like the saved one."
        )
    return None
