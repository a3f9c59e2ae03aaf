"""`Model`: a graph of layers from `Input(...)` to outputs (the functional API).

    inputs = Input(shape=(T, D))
    x = SimpleRNN(8)(inputs)
    outputs = Dense(1)(x)
    model = Model(inputs, outputs)

Calling layers on `Input(...)` recorded graph nodes; `Model` walks them back
from the outputs, orders them, and replays them on real tensors when called.
Subclassing `Model` and writing `call()` yourself works too.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rnnkit import _tree
from rnnkit.layers._base import (
    META_WEIGHTS,
    Layer,
    _map_shapes,
    shape_str,
    to_tensor,
    unique_name,
)
from rnnkit.layers._graph import Node, SymbolicTensor
from rnnkit.layers._input import InputLayer
from rnnkit.saving import load_weights, save_model, save_weights
from rnnkit.training import compile_model, evaluate_model, fit_model
from rnnkit.training._data import check_count, input_dtype, num_samples, take, to_tensors
from rnnkit.training._memory import keep_freed_memory


class Model(Layer):
    """A model: `Model(inputs, outputs)` from symbolic tensors, or a subclass with `call()`.

    Args:
        inputs: an `Input(...)` tensor, or a list/dict of them.
        outputs: the symbolic tensor(s) computed from `inputs` by calling layers.
        name: the model's name.

    Example:
        >>> from rnnkit.layers import Dense, Input, SimpleRNN
        >>> inputs = Input(shape=(20, 3))
        >>> model = Model(inputs, Dense(1)(SimpleRNN(8)(inputs)))
        >>> model.count_params()
        105
    """

    # A model leaves integer inputs as they are: its first layers decide (an Embedding reads
    # them as ids, a Dense casts them).
    casts_integer_inputs = False

    def __new__(cls, *args, **kwargs):
        # As in Keras, Model(inputs, outputs) makes a `Functional` (a Model subclass).
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            cls = Functional
        return super().__new__(cls, *args, **kwargs)

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        functional = inputs is not None or outputs is not None
        if name is None and functional and type(self) is Functional:
            name = unique_name("functional")
        super().__init__(name=name, trainable=trainable, **kwargs)
        self.optimizer = None
        self.loss = None
        self.compiled = False
        self.stop_training = False
        # JSON-ready facts saved with the model (a tokenizer, a scaler, the columns it reads).
        self.metadata: dict = {}
        self._nodes: list[Node] = []
        self.inputs = self.outputs = None
        if functional:
            self._init_graph(inputs, outputs)

    # ------------------------------------------------------------------ graph
    def _init_graph(self, inputs, outputs) -> None:
        if inputs is None or outputs is None:
            raise ValueError(
                "Model(inputs, outputs) needs both the Input(...) tensors and "
                "the output tensors computed from them."
            )
        for role, struct in (("inputs", inputs), ("outputs", outputs)):
            for t in _tree.flatten(struct):
                if not isinstance(t, SymbolicTensor):
                    raise TypeError(
                        f"Model {role} must be symbolic tensors from Input(...) and layer "
                        f"calls on them; got {type(t).__name__}."
                    )
        for t in _tree.flatten(inputs):
            if not isinstance(t.node.layer, InputLayer):
                raise ValueError(
                    f"Model inputs must come straight from Input(...); {t.name!r} was produced "
                    f"by layer '{t.node.layer.name}'."
                )
        self._input_struct, self._output_struct = inputs, outputs
        self.inputs, self.outputs = _tree.flatten(inputs), _tree.flatten(outputs)
        nodes = _nodes_in_order(self.outputs)
        missing = [
            n.layer.name
            for n in nodes
            if isinstance(n.layer, InputLayer)
            and all(n.layer is not t.node.layer for t in self.inputs)
        ]
        if missing:
            raise ValueError(
                f"Model '{self.name}': the outputs depend on Input {missing[0]!r}, which is not "
                "in inputs. Add it: Model(inputs=[...], outputs=...)."
            )
        self._nodes = [n for n in nodes if not isinstance(n.layer, InputLayer)]
        self._layer_list = nn.ModuleList(_layers_in_keras_order(nodes, self.outputs))
        _check_unique_names(self.name, list(self._layer_list))
        self.built = True
        self._build_input_shape = _tree.map_structure(lambda t: t.shape, inputs)

    @property
    def layers(self) -> list[Layer]:
        if "_layer_list" in self._modules:
            return list(self._layer_list)
        return [m for m in self.children() if isinstance(m, Layer)]

    @property
    def input_shape(self):
        return _tree.map_structure(lambda t: t.shape, self._input_struct) if self.inputs else None

    @property
    def output_shape(self):
        return _tree.map_structure(lambda t: t.shape, self._output_struct) if self.outputs else None

    def reset_states(self) -> None:
        """Zero the carried state of every stateful layer (Keras 2's `model.reset_states()`).

        Call it between independent streams, e.g. after each epoch or before
        predicting a new series with a `stateful=True` model.
        """
        for module in self.modules():
            if (
                module is not self
                and getattr(module, "stateful", False)
                and hasattr(module, "reset_states")
                and not isinstance(module, Model)
            ):
                module.reset_states()

    reset_state = reset_states

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by `name` or by position `index` in `model.layers`."""
        layers = self.layers
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ValueError(
                    f"Model '{self.name}' has {len(layers)} layers; index {index} is out of range."
                )
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(
            f"Model '{self.name}' has no layer named {name!r}; its layers are: "
            f"{', '.join(repr(layer.name) for layer in layers)}."
        )

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(
                f"Model '{self.name}' is not built yet, so its weights do not exist. "
                + _how_to_build()
            )
        return super().count_params()

    # ------------------------------------------------------------------- call
    def weights_device(self) -> torch.device | None:
        """The device the weights are on (None before there are any).

        One weight is kept to ask, which spares walking every module on each call:
        `.to(...)` moves weights in place, and `_apply` (what `.to` runs) and changes to
        the layers forget it.
        """
        probe = self.__dict__.get("_device_probe")
        if probe is None:
            probe = next(self.parameters(), None)
            if probe is None:
                return None
            self.__dict__["_device_probe"] = probe
        return probe.device

    def _inference(self):
        """The no-autograd context for predict: `torch.inference_mode` (it skips autograd's
        bookkeeping on every op, ~20 us a call on a small RNN) where nothing made inside
        outlives the call; `torch.no_grad` while the model is not built (weights made in
        inference mode could never train) or when a stateful layer keeps its states."""
        stateful = self.__dict__.get("_has_stateful")
        if stateful is None:
            stateful = any(getattr(m, "stateful", False) for m in self.modules())
            self.__dict__["_has_stateful"] = stateful
        return torch.inference_mode() if self.built and not stateful else torch.no_grad()

    def _forget_lookups(self) -> None:
        """Forget what `weights_device` and `_inference` looked up (the layers changed)."""
        self.__dict__.pop("_device_probe", None)
        self.__dict__.pop("_has_stateful", None)

    def _apply(self, *args, **kwargs):
        self._forget_lookups()
        return super()._apply(*args, **kwargs)

    def check_input_shape(self, shape) -> None:
        if not self.inputs:
            return
        given = shape if len(self.inputs) > 1 else [shape]
        if isinstance(given, dict):
            given = [given.get(t.name) for t in self.inputs]
        if len(given) != len(self.inputs):
            raise ValueError(
                f"Model '{self.name}' has {len(self.inputs)} inputs "
                f"({', '.join(repr(t.name) for t in self.inputs)}); got {len(given)}. Pass a "
                "list in that order, or a dict keyed by input name."
            )
        for t, s in zip(self.inputs, given):
            if (
                not isinstance(s, tuple)
                or len(s) != len(t.shape)
                or any(
                    want is not None and got is not None and want != got
                    for want, got in zip(t.shape[1:], s[1:])
                )
            ):
                if isinstance(s, tuple) and len(s) != len(t.shape):
                    self._check_in_first_layers(t, s)
                raise ValueError(
                    f"Model '{self.name}': input {t.name!r} expects shape {shape_str(t.shape)} "
                    f"(None = any size); got {s if not isinstance(s, tuple) else shape_str(s)}."
                )

    def _check_in_first_layers(self, t, shape) -> None:
        """Let the layers that read input `t` first judge `shape`, of the wrong rank: their
        messages say more than the model's (a missing time axis, and the reshape that adds
        it)."""
        for layer in self.layers:
            if any(node.args and node.args[0] is t for node in layer.inbound_nodes):
                try:
                    layer.check_input_shape(shape)
                except ValueError as err:
                    raise ValueError(f"Model '{self.name}': {err}") from None

    def _convert_inputs(self, inputs):
        if not self.inputs:
            return super()._convert_inputs(inputs)
        device = self.weights_device()
        if isinstance(inputs, dict):
            inputs = [
                inputs[t.name] if t.name in inputs else _missing(self, t, inputs)
                for t in self.inputs
            ]
        flat = [inputs] if len(self.inputs) == 1 else list(inputs)
        flat = (
            [
                to_tensor(x, t.dtype, device)
                if not isinstance(x, torch.Tensor) or x.is_floating_point() and x.dtype != t.dtype
                else x
                for x, t in zip(flat, self.inputs)
            ]
            if len(flat) == len(self.inputs)
            else flat
        )
        return flat[0] if len(self.inputs) == 1 else flat

    def call(self, inputs, training=False):
        if not self._nodes and not self.inputs:
            raise NotImplementedError(
                f"Model '{self.name}' has no graph: build it as Model(inputs, outputs), or "
                "subclass Model and define call()."
            )
        flat = [inputs] if len(self.inputs) == 1 else list(inputs)
        values = {id(t): x for t, x in zip(self.inputs, flat)}

        def value_of(v):
            return values[id(v)] if isinstance(v, SymbolicTensor) else v

        for node in self._nodes:
            args = _tree.map_structure(value_of, node.args)
            kwargs = _tree.map_structure(value_of, node.kwargs)
            kwargs.setdefault("training", training)
            out = node.layer(*args, **kwargs)
            for sym, val in zip(node.output_tensors, _tree.flatten(out)):
                values[id(sym)] = val
        return _tree.map_structure(lambda t: values[id(t)], self._output_struct)

    def compute_output_shape(self, input_shape):
        return _tree.map_structure(lambda t: t.shape, self._output_struct)

    def _attach_masks(self, inputs, outputs, mask) -> None:
        """The layers inside already attached their masks to the outputs."""

    # --------------------------------------------------------------- training
    compile = compile_model
    fit = fit_model
    evaluate = evaluate_model
    save = save_model
    save_weights = save_weights
    load_weights = load_weights

    # ---------------------------------------------------------------- predict
    def predict(self, x, batch_size=None, verbose=0, steps=None):
        """Outputs for `x` as numpy arrays, computed in batches (default 32) with dropout off."""
        del verbose, steps
        batch_size = 32 if batch_size is None else check_count("predict", "batch_size", batch_size)
        # numpy / pandas / nested lists -> tensors, as fit takes them (a list of arrays is
        # several inputs; a nested list of numbers is one)
        device = self.weights_device()
        keep_freed_memory(device)
        x = to_tensors(x, device, dtype=input_dtype(self))
        count = num_samples(x)
        if 0 < count <= batch_size:  # one batch: no slicing, no concatenation
            with self._inference():
                outputs = self(x, training=False)
            result = _tree.map_structure(lambda t: t.detach().cpu().numpy(), outputs)
            return list(result) if isinstance(result, tuple) else result
        outs = []
        with self._inference():
            for start in range(0, count, batch_size):
                batch = take(x, slice(start, start + batch_size))
                outs.append(
                    _tree.map_structure(
                        lambda t: t.detach().cpu().numpy(), self(batch, training=False)
                    )
                )
        if not outs:
            raise ValueError("predict got 0 samples.")
        if _tree.is_nested(outs[0]):
            return [np.concatenate([o[i] for o in outs]) for i in range(len(outs[0]))]
        return np.concatenate(outs)

    # ----------------------------------------------------------------- export
    def export(self, filepath, format="onnx"):  # noqa: A002 (Keras 3's argument name)
        """Write the model for inference engines; returns the path written.

        Args:
            filepath: where to write, e.g. `"model.onnx"`.
            format: `"onnx"`: an ONNX graph with dynamic batch and time axes, which ONNX
                Runtime runs with the numbers `predict` gives (see `rnnkit.export`).

        Example:
            >>> import os, tempfile
            >>> from rnnkit.layers import GRU, Dense, Input
            >>> inputs = Input(shape=(14, 6))
            >>> model = Model(inputs, Dense(1)(GRU(16)(inputs)))
            >>> path = model.export(os.path.join(tempfile.mkdtemp(), "m.onnx"))
        """
        if format != "onnx":
            raise ValueError(
                f"Model '{self.name}'.export: format={format!r} is not one rnnkit writes; use "
                "format='onnx' (or model.save('m.keras') for Keras' own format)."
            )
        from rnnkit.export import export_onnx

        return export_onnx(self, filepath)

    # ---------------------------------------------------------------- summary
    def summary(self, line_length=None, print_fn=None, show_trainable=False):
        """Print the layers, output shapes and parameter counts, as Keras does."""
        from rnnkit.models._summary import print_summary

        print_summary(
            self, line_length=line_length, print_fn=print_fn, show_trainable=show_trainable
        )

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict:
        if not self.inputs:  # a subclass with call(): its weights come from calling it
            config = super().get_config()
            if self.built and self._build_input_shape is not None:
                config["build_input_shape"] = self._build_input_shape
            return config
        from rnnkit.layers import serialize

        local = {
            id(node): i
            for layer in self.layers
            for i, node in enumerate(n for n in layer.inbound_nodes if self._owns(n))
        }

        def ref(v):
            if isinstance(v, SymbolicTensor):
                return {"__tensor__": [v.node.layer.name, local[id(v.node)], v.index]}
            return v

        layers = []
        for layer in self.layers:
            entry = serialize(layer)
            entry["name"] = layer.name
            entry["inbound_nodes"] = [
                {
                    "args": _tree.map_structure(ref, list(n.args)),
                    "kwargs": _tree.map_structure(ref, n.kwargs),
                }
                for n in layer.inbound_nodes
                if self._owns(n) and not isinstance(layer, InputLayer)
            ]
            layers.append(entry)
        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": layers,
            "input_layers": _tree.map_structure(lambda t: ref(t)["__tensor__"], self._input_struct),
            "output_layers": _tree.map_structure(
                lambda t: ref(t)["__tensor__"], self._output_struct
            ),
        }

    def _owns(self, node) -> bool:
        return isinstance(node.layer, InputLayer) or any(node is n for n in self._nodes)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from rnnkit.layers import deserialize

        if "layers" not in config:
            config = dict(config)
            shape = config.pop("build_input_shape", None)
            model = cls(**config)
            if shape is not None:
                _build_by_calling(model, shape)
            return model
        layers = {}
        outputs = {}  # (layer name, node index) -> outputs of that call
        pending = []
        for entry in config["layers"]:
            layer = deserialize(entry, custom_objects)
            layers[entry["name"]] = layer
            if isinstance(layer, InputLayer):
                outputs[(layer.name, 0)] = layer.output
            pending.extend((layer, i, node) for i, node in enumerate(entry["inbound_nodes"]))

        def resolve(v):
            if isinstance(v, dict) and "__tensor__" in v:
                name, node_index, tensor_index = v["__tensor__"]
                return _tree.flatten(outputs[(name, node_index)])[tensor_index]
            return v

        def ready(node):
            refs = [
                v
                for v in _tree.flatten([node["args"], node["kwargs"]])
                if isinstance(v, dict) and "__tensor__" in v
            ]
            return all((r["__tensor__"][0], r["__tensor__"][1]) in outputs for r in refs)

        while pending:
            progress = [p for p in pending if ready(p[2])]
            if not progress:
                raise ValueError(
                    "Model config has nodes whose inputs never appear; the config "
                    "is corrupt or incomplete."
                )
            for item in progress:
                layer, i, node = item
                args = [_resolve_tree(resolve, a) for a in node["args"]]
                kwargs = {k: _resolve_tree(resolve, v) for k, v in node["kwargs"].items()}
                outputs[(layer.name, i)] = layer(*args, **kwargs)
                pending.remove(item)

        def tensor(ref):
            return _tree.flatten(outputs[(ref[0], ref[1])])[ref[2]]

        inputs = _map_refs(tensor, config["input_layers"])
        outs = _map_refs(tensor, config["output_layers"])
        return cls(inputs, outs, name=config.get("name"), trainable=config.get("trainable", True))


class Functional(Model):
    """What `Model(inputs, outputs)` creates: a model defined by its graph of layers."""


def _resolve_tree(fn, value):
    if isinstance(value, dict) and "__tensor__" in value:
        return fn(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_resolve_tree(fn, v) for v in value)
    return value


def _map_refs(fn, refs):
    """`[name, node, tensor]` -> tensor; a list of such -> list of tensors."""
    if len(refs) == 3 and isinstance(refs[0], str):
        return fn(refs)
    return [_map_refs(fn, r) for r in refs]


def _missing(model, t, inputs):
    raise ValueError(
        f"Model '{model.name}' needs input {t.name!r}; the dict has keys {sorted(inputs)}."
    )


def _how_to_build() -> str:
    return (
        "Give it an input shape: start with Input(shape=(timesteps, features)), pass "
        "input_shape=(timesteps, features) to the first layer, call "
        "model.build((None, timesteps, features)), or call the model on data once."
    )


def _nodes_in_order(outputs) -> list[Node]:
    """Every node the outputs depend on, each after the nodes that feed it."""
    order, seen = [], set()

    def visit(node):
        if id(node) in seen:
            return
        seen.add(id(node))
        for t in node.input_tensors:
            visit(t.node)
        order.append(node)

    for t in outputs:
        visit(t.node)
    return order


def _check_unique_names(model: str, layers: list) -> None:
    """Weights are saved under their layer's name, so two layers may not share one."""
    seen: dict[str, int] = {}
    for layer in layers:
        seen[layer.name] = seen.get(layer.name, 0) + 1
    repeated = [name for name, count in seen.items() if count > 1]
    if repeated:
        raise ValueError(
            f"Model '{model}': the name {repeated[0]!r} is used {seen[repeated[0]]} times; every "
            "layer in a model needs its own name. Leave name= out to get unique names, or "
            "give each layer a different one."
        )


def _layers_in_keras_order(nodes, outputs) -> list[Layer]:
    """Layers sorted as Keras sorts them: deepest (closest to the inputs) first."""
    depth: dict[int, int] = {}
    for node in reversed(nodes):
        d = depth.setdefault(id(node), 0)
        for t in node.input_tensors:
            depth[id(t.node)] = max(depth.get(id(t.node), 0), d + 1)
    layer_depth: dict[int, int] = {}
    first_seen: dict[int, int] = {}
    layers: dict[int, Layer] = {}
    for i, node in enumerate(nodes):
        key = id(node.layer)
        layers[key] = node.layer
        first_seen.setdefault(key, i)
        layer_depth[key] = max(layer_depth.get(key, 0), depth[id(node)])
    return [layers[k] for k in sorted(layers, key=lambda k: (-layer_depth[k], first_seen[k]))]


def _build_by_calling(model, shape) -> None:
    """Make a subclassed model's weights, as its first call did: call it on zeros of the
    `shape` it was built for (unknown sizes as 1). While a file is being sized (META_WEIGHTS),
    the zeros are shapes only too."""
    device = "meta" if META_WEIGHTS.get() else None

    def zeros(s):
        return torch.zeros([1 if n is None else n for n in s], dtype=model.dtype, device=device)

    inputs = _map_shapes(zeros, _as_shapes(shape))
    with torch.no_grad():
        model(inputs)


def _as_shapes(value):
    """JSON's lists back into shape tuples: `[[null, 3, 2], [null, 4]]` -> two shapes."""
    if isinstance(value, (list, tuple)) and all(n is None or isinstance(n, int) for n in value):
        return tuple(value)
    return [_as_shapes(v) for v in value]
