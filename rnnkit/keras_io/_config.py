"""Keras' model configs <-> rnnkit's, through an allowlist: nothing named in a file is imported.

Keras 3 writes every object as `{"module", "class_name", "config", "registered_name"}`, a
dtype as a `DTypePolicy` object and a call's inputs as `__keras_tensor__` objects; Keras 2
(tf.keras) writes `{"class_name", "config"}`, dtype names and inbound nodes as lists. rnnkit's
configs are Keras' with the layers' constructor arguments, so translating is renaming those
wrappers and dropping the few keys rnnkit does not take. A class is accepted only when its
module is Keras' own and its name is one rnnkit implements, or when the caller passed it in
`custom_objects`; anything else (a `Lambda`, `__lambda__` code, a module of another package)
is a ValueError naming the file and the item.
"""

from __future__ import annotations

import reprlib

# Keys of Keras configs that rnnkit's constructors do not take, and the value they must have
# to mean nothing (None: any value is harmless, e.g. Keras 2's cuDNN choice `implementation`).
_IGNORED_KEYS = {
    "quantization_config": None,
    "build_config": None,
    "compile_config": None,
    "shared_object_id": None,
    "implementation": None,
    "time_major": False,
    "sparse": False,
    "ragged": False,
    "optional": False,
}
_OPTIONAL = {"sparse", "ragged", "optional", "time_major"}  # keys that must be False

# Keras modules whose objects rnnkit rebuilds from its own classes, by class name.
_KERAS_MODULES = ("keras", "tensorflow.keras", "tf_keras")
_OBJECT_KEYS = {"module", "class_name", "config", "registered_name"}


class KerasConfigError(ValueError):
    """A Keras config rnnkit refuses: an item outside the allowlist, or malformed."""


def from_keras(config, where: str, custom_objects: dict | None = None):
    """A Keras model config (3 or 2) -> rnnkit's `layers.serialize` form; refuses the unknown.

    Args:
        config: the parsed JSON of `config.json` (.keras) or the `model_config` attribute (.h5).
        where: the file, for error messages: "'m.keras': config.json".
        custom_objects: names the caller vouches for, which may come from any module.
    """
    from rnnkit import layers

    known = set(layers._registry()) | set(custom_objects or {})
    return _Translator(where, known, custom_objects or {}).value(config, "model")


class _Translator:
    def __init__(self, where: str, known: set, custom: dict):
        self.where, self.known, self.custom = where, known, custom

    def fail(self, item: str, why: str) -> KerasConfigError:
        return KerasConfigError(
            f"{self.where}: {item} {why}. rnnkit rebuilds only Keras' own layers, "
            "optimizers, losses, metrics, initializers, regularizers and constraints that it "
            "implements, and never imports or runs code named in a file; for a class of your "
            "own pass custom_objects={'Name': YourClass}."
        )

    def value(self, value, item: str):
        if isinstance(value, list):
            return [self.value(v, f"{item}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, dict):
            return value
        if value.get("class_name") == "__keras_tensor__":
            history = (value.get("config") or {}).get("keras_history")
            if not (isinstance(history, list) and len(history) == 3):
                raise self.fail(item, "is a tensor reference without a keras_history")
            return {"__tensor__": history}
        if "class_name" in value and "config" in value:
            return self.object(value, item)
        return {k: self.value(v, f"{item}.{k}") for k, v in value.items()}

    def object(self, entry: dict, item: str) -> dict:
        name = entry["class_name"]
        label = f"{item} {reprlib.repr(name)}"
        if not isinstance(name, str) or name in ("__lambda__", "Lambda", "function"):
            if name == "function" and isinstance(entry.get("config"), str):
                return entry["config"]  # an activation or loss by name: "relu"
            raise self.fail(label, "is Python code (a lambda or a function object)")
        module, registered = entry.get("module"), entry.get("registered_name")
        if name not in self.custom:
            if module is not None and not (
                isinstance(module, str) and module.split(".")[0] in _KERAS_MODULES
            ):
                raise self.fail(label, f"comes from module {reprlib.repr(module)}, not Keras")
            if registered not in (None, name) and not str(registered).startswith("keras"):
                raise self.fail(label, f"is registered as {reprlib.repr(registered)}")
        if name in ("DTypePolicy", "FloatDTypePolicy"):
            return self.dtype(entry, item)
        config = entry["config"]
        if isinstance(config, dict):
            config = self.layer_config(name, config, label) if name in self.known else config
            config = {k: self.value(v, f"{item}.{k}") for k, v in config.items()}
        if "inbound_nodes" in entry:
            return self.layer_entry(entry, config, label)
        return {"class_name": name, "config": config}

    def dtype(self, entry: dict, item: str) -> str:
        name = (entry.get("config") or {}).get("name")
        if name not in ("float16", "bfloat16", "float32", "float64"):
            raise self.fail(f"{item} dtype policy {reprlib.repr(name)}", "is not a plain dtype")
        return name

    def layer_config(self, name: str, config: dict, label: str) -> dict:
        config = dict(config)
        for key in list(config):
            if key not in _IGNORED_KEYS:
                continue
            value = config.pop(key)
            if key in _OPTIONAL and value:
                raise self.fail(f"{label} option {key}={value!r}", "is not supported by rnnkit")
            if key == "quantization_config" and value is not None:
                raise self.fail(f"{label} quantization", "is not supported by rnnkit")
        if name == "InputLayer" and "batch_input_shape" in config:
            config["batch_shape"] = config.pop("batch_input_shape")  # Keras 2's InputLayer
        return config

    def layer_entry(self, entry: dict, config, label: str) -> dict:
        nodes = []
        for node in entry.get("inbound_nodes") or []:
            if isinstance(node, list):  # Keras 2: [[layer, node, tensor, kwargs], ...]
                refs = [{"__tensor__": list(ref[:3])} for ref in node]
                kwargs = node[-1][3] if node and len(node[-1]) > 3 else {}
                args = [refs[0] if len(refs) == 1 else refs]
            elif isinstance(node, dict):
                args = self.value(node.get("args", []), f"{label} inputs")
                kwargs = node.get("kwargs") or {}
            else:
                raise self.fail(label, "has an inbound node that is neither a list nor a dict")
            kwargs = {
                k: self.value(v, f"{label} call argument {k}")
                for k, v in kwargs.items()
                if not (k == "training" or (k == "mask" and v is None))
            }
            nodes.append({"args": args, "kwargs": kwargs})
        out = {"class_name": entry["class_name"], "config": config, "inbound_nodes": nodes}
        out["name"] = entry.get("name", config.get("name") if isinstance(config, dict) else None)
        return out


# ------------------------------------------------------------------------ rnnkit -> Keras 3

_SUBMODULES = (
    ("_initializer", "keras.initializers"),
    ("_regularizer", "keras.regularizers"),
    ("_constraint", "keras.constraints"),
)
_LAYER_KEYS = {"layer", "backward_layer", "cell", "cells", "layers"}


def to_keras(config: dict) -> dict:
    """rnnkit's `layers.serialize(model)` -> the config.json of a Keras 3 `.keras` file."""
    return _keras_object(config, "keras.layers")


def _keras_object(entry: dict, module: str) -> dict:
    name = entry["class_name"]
    config = entry["config"]
    if module == "keras.layers" and isinstance(config, dict):
        config = _keras_layer_config(name, config)
    if name == "Functional":
        module, registered = "keras.src.models.functional", "Functional"
    elif name == "Sequential":
        module, registered = "keras", None
    else:
        registered = None
    out = {"module": module, "class_name": name, "config": config, "registered_name": registered}
    if "inbound_nodes" in entry:
        out["name"] = entry["name"]
        out["inbound_nodes"] = [_keras_node(node, entry["name"]) for node in entry["inbound_nodes"]]
    return out


def _keras_layer_config(name: str, config: dict) -> dict:
    out = {}
    for key, value in config.items():
        if key == "activity_regularizer" and value is None:
            continue
        if key == "layers" and name in ("Functional", "Sequential"):
            value = [_keras_object(v, "keras.layers") for v in value]
        elif key in _LAYER_KEYS and isinstance(value, dict):
            value = _keras_object(value, "keras.layers")
        elif key == "cells":
            value = [_keras_object(v, "keras.layers") for v in value]
        elif isinstance(value, dict) and "class_name" in value:
            module = next((m for suffix, m in _SUBMODULES if key.endswith(suffix)), None)
            if module is None:
                raise ValueError(
                    f"Cannot write layer {name} '{config.get('name')}' as Keras: its argument "
                    f"{key} holds an object ({value['class_name']}) with no Keras equivalent."
                )
            value = {**value, "module": module, "registered_name": None}
        out[key] = value
    if name == "InputLayer":
        out.pop("trainable", None)
    return out


def _keras_node(node: dict, layer: str) -> list:
    """rnnkit's `{"args", "kwargs"}` -> Keras' list form `[[layer, node, tensor, kwargs], ...]`,
    which Keras 3 still reads and which needs no tensor shapes."""
    kwargs = node.get("kwargs") or {}
    if any("__tensor__" in str(v) for v in kwargs.values()) or len(node["args"]) != 1:
        raise ValueError(
            f"Cannot write layer '{layer}' as Keras: it is called with tensors as keyword "
            "arguments or several positional inputs, which rnnkit writes only to its own "
            "format. Save to a '.rnnkit' file instead."
        )
    arg = node["args"][0]
    refs = arg if isinstance(arg, list) else [arg]
    entries = [list(ref["__tensor__"]) for ref in refs]
    if entries:
        entries[-1] = [*entries[-1], kwargs]
    return entries
